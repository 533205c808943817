//! Splits input into complete SQL statements the way psql does: a `;` ends a statement
//! unless it is inside a string, a quoted identifier, a comment or a dollar-quoted body.
//! Input may arrive a line at a time; what is not yet complete stays buffered.

/// Lexical state carried between lines.
#[derive(Clone, Debug, PartialEq, Default)]
enum State {
    #[default]
    Normal,
    SingleQuote {
        backslash_escapes: bool,
    },
    DoubleQuote,
    LineComment,
    BlockComment {
        depth: usize,
    },
    DollarQuote {
        tag: String,
    },
}

/// Accumulates input and hands back complete statements.
#[derive(Debug, Default)]
pub struct StatementSplitter {
    buffer: String,
    state: State,
    /// Byte offset in `buffer` up to which the state above has been computed.
    scanned: usize,
}

impl StatementSplitter {
    /// An empty splitter.
    pub fn new() -> StatementSplitter {
        StatementSplitter::default()
    }

    /// Whether part of a statement is waiting for more input.
    pub fn has_partial(&self) -> bool {
        !self.buffer.trim().is_empty()
    }

    /// Takes whatever partial text is buffered (for a final statement without `;`).
    pub fn take_rest(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        self.state = State::Normal;
        self.scanned = 0;
        let trimmed = rest.trim();
        (!trimmed.is_empty() && !is_only_comments(trimmed)).then(|| trimmed.to_string())
    }

    /// Adds text and returns the statements it completes, each with its `;`.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buffer.push_str(text);
        let mut statements = Vec::new();
        let bytes = self.buffer.as_bytes();
        let mut i = self.scanned;
        let mut statement_start = 0;
        while i < bytes.len() {
            let c = bytes[i];
            let next = bytes.get(i + 1).copied();
            match &mut self.state {
                State::Normal => match c {
                    b'\'' => {
                        let escaped = i > 0
                            && matches!(bytes[i - 1], b'e' | b'E')
                            && (i < 2 || !bytes[i - 2].is_ascii_alphanumeric());
                        self.state = State::SingleQuote {
                            backslash_escapes: escaped,
                        };
                    }
                    b'"' => self.state = State::DoubleQuote,
                    b'-' if next == Some(b'-') => {
                        self.state = State::LineComment;
                        i += 1;
                    }
                    b'/' if next == Some(b'*') => {
                        self.state = State::BlockComment { depth: 1 };
                        i += 1;
                    }
                    b'$' => {
                        if let Some(tag) = dollar_tag(&bytes[i..]) {
                            let preceded_by_word = i > 0
                                && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                            if !preceded_by_word {
                                i += tag.len() - 1;
                                self.state = State::DollarQuote { tag };
                            }
                        }
                    }
                    b';' => {
                        let statement = self.buffer[statement_start..=i].trim().to_string();
                        if statement != ";" && !is_only_comments(&statement) {
                            statements.push(statement);
                        }
                        statement_start = i + 1;
                    }
                    _ => {}
                },
                State::SingleQuote { backslash_escapes } => {
                    if *backslash_escapes && c == b'\\' {
                        i += 1;
                    } else if c == b'\'' {
                        if next == Some(b'\'') {
                            i += 1;
                        } else {
                            self.state = State::Normal;
                        }
                    }
                }
                State::DoubleQuote => {
                    if c == b'"' {
                        if next == Some(b'"') {
                            i += 1;
                        } else {
                            self.state = State::Normal;
                        }
                    }
                }
                State::LineComment => {
                    if c == b'\n' {
                        self.state = State::Normal;
                    }
                }
                State::BlockComment { depth } => {
                    if c == b'*' && next == Some(b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.state = State::Normal;
                        }
                    } else if c == b'/' && next == Some(b'*') {
                        *depth += 1;
                        i += 1;
                    }
                }
                State::DollarQuote { tag } => {
                    if bytes[i..].starts_with(tag.as_bytes()) {
                        i += tag.len() - 1;
                        self.state = State::Normal;
                    }
                }
            }
            i += 1;
        }
        self.buffer.drain(..statement_start);
        self.scanned = self.buffer.len();
        statements
    }
}

/// `$tag$` or `$$` at the start of `bytes`, if it is one.
fn dollar_tag(bytes: &[u8]) -> Option<String> {
    let end = bytes[1..].iter().position(|&b| b == b'$')? + 1;
    let tag = &bytes[1..end];
    let valid = tag.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && !tag.first().is_some_and(u8::is_ascii_digit);
    valid.then(|| String::from_utf8_lossy(&bytes[..=end]).into_owned())
}

/// Whether text holds nothing but comments and whitespace (and a final `;`).
fn is_only_comments(text: &str) -> bool {
    let mut rest = text.trim().trim_end_matches(';').trim();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim();
        } else if let Some(after) = rest.strip_prefix("/*") {
            match after.find("*/") {
                Some(end) => rest = after[end + 2..].trim(),
                None => return true,
            }
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Semicolons inside strings, identifiers, comments and dollar quotes do not split.
    #[test]
    fn splits_only_at_real_semicolons() {
        let mut splitter = StatementSplitter::new();
        let statements = splitter
            .push("SELECT 'a;b', \"x;y\" -- c;\n; SELECT $$;$$; SELECT /* ; */ 1; SELECT E'\\';';");
        assert_eq!(
            statements,
            vec![
                "SELECT 'a;b', \"x;y\" -- c;\n;",
                "SELECT $$;$$;",
                "SELECT /* ; */ 1;",
                "SELECT E'\\';';"
            ]
        );
        assert!(!splitter.has_partial());
    }

    /// A statement may span several pushes (lines).
    #[test]
    fn statements_span_lines() {
        let mut splitter = StatementSplitter::new();
        assert!(splitter.push("SELECT 'it''s\n").is_empty());
        assert!(splitter.has_partial());
        assert!(splitter.push("fine'\n").is_empty());
        assert_eq!(splitter.push("; SELECT 2"), vec!["SELECT 'it''s\nfine'\n;"]);
        assert_eq!(splitter.take_rest(), Some("SELECT 2".to_string()));
    }

    /// Lone semicolons and comment-only input produce no statements.
    #[test]
    fn empty_statements_are_dropped() {
        let mut splitter = StatementSplitter::new();
        assert!(splitter.push(";; -- nothing\n").is_empty());
        assert_eq!(splitter.take_rest(), None);
    }
}
