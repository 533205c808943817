//! Reads COPY FROM's data: bytes arrive in chunks of any size (the protocol's CopyData
//! messages need not align with lines), and whole records come out, split into fields,
//! with PostgreSQL's escapes, quoting, NULL markers, header line and `\.` end marker.
//!
//! Only the record being assembled is buffered, so memory stays bounded however much
//! is copied; a record longer than [`MAX_RECORD_BYTES`] is refused rather than grown
//! without limit. Every error names the line, as PostgreSQL's CONTEXT does.

use super::{CopyFormat, CopyOptions};
use crate::error::{Error, Result};

/// Longest record accepted: far beyond any real row, short of exhausting memory.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Longest stretch of a record an error's context quotes (PostgreSQL quotes 100 bytes).
const CONTEXT_BYTES: usize = 100;

/// One record of COPY data.
#[derive(Debug)]
pub struct Record {
    /// The record's line number (the header, when there is one, is line 1).
    pub line: u64,
    /// The fields, one per target column, `None` for NULL.
    pub fields: Vec<Option<String>>,
    raw: Vec<u8>,
}

impl Record {
    /// PostgreSQL's CONTEXT naming only the record's line.
    pub fn line_context(&self, relation: &str) -> String {
        format!("COPY {relation}, line {}", self.line)
    }

    /// PostgreSQL's CONTEXT for an error about the whole record.
    pub fn context(&self, relation: &str) -> String {
        format!(
            "COPY {relation}, line {}: \"{}\"",
            self.line,
            quoted(&self.raw)
        )
    }
}

/// PostgreSQL's CONTEXT for an error about one field.
pub fn field_context(relation: &str, line: u64, column: &str, value: &str) -> String {
    format!(
        "COPY {relation}, line {line}, column {column}: \"{}\"",
        quoted(value.as_bytes())
    )
}

/// At most [`CONTEXT_BYTES`] of `raw`, as text, with `...` when cut.
fn quoted(raw: &[u8]) -> String {
    if raw.len() <= CONTEXT_BYTES {
        return String::from_utf8_lossy(raw).into_owned();
    }
    format!("{}...", String::from_utf8_lossy(&raw[..CONTEXT_BYTES]))
}

/// Splits a stream of COPY data into records (see the module documentation).
pub struct RecordReader {
    options: CopyOptions,
    relation: String,
    columns: Vec<String>,
    force_not_null: Vec<bool>,
    force_null: Vec<bool>,
    buffer: Vec<u8>,
    /// Where the record being assembled starts in `buffer`.
    start: usize,
    /// How much of that record was scanned for its end already.
    scanned: usize,
    /// CSV: the scan is inside quotes.
    in_quote: bool,
    /// Text: the scan's last byte was a backslash.
    escaped: bool,
    line: u64,
    /// The `\.` end marker was read: whatever follows is ignored.
    ended: bool,
}

impl RecordReader {
    /// A reader of records with one field per column of `columns` (the COPY's target
    /// columns, in order) for `relation` (named in errors).
    pub fn new(options: CopyOptions, relation: &str, columns: Vec<String>) -> Result<Self> {
        let mask = |names: &[String], option: &str| -> Result<Vec<bool>> {
            for name in names {
                if !columns.contains(name) {
                    return Err(Error::InvalidColumnReference(format!(
                        "{option} column \"{name}\" not referenced by COPY"
                    )));
                }
            }
            Ok(columns.iter().map(|c| names.contains(c)).collect())
        };
        let force_not_null = mask(&options.force_not_null, "FORCE_NOT_NULL")?;
        let force_null = mask(&options.force_null, "FORCE_NULL")?;
        Ok(RecordReader {
            options,
            relation: relation.to_string(),
            columns,
            force_not_null,
            force_null,
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            in_quote: false,
            escaped: false,
            line: 0,
            ended: false,
        })
    }

    /// Adds the next chunk of data.
    pub fn push(&mut self, data: &[u8]) {
        if self.ended {
            return;
        }
        if self.start > 0 && self.start * 2 >= self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(data);
    }

    /// The next whole record, or `None` when more data is needed (or the data ended).
    /// With `at_end`, no more data will come: what is left is the last record.
    pub fn next_record(&mut self, at_end: bool) -> Result<Option<Record>> {
        loop {
            if self.ended {
                return Ok(None);
            }
            let (content_end, next) = match self.find_end() {
                Some(end) => end,
                None => {
                    let pending = self.buffer.len() - self.start;
                    if pending > MAX_RECORD_BYTES {
                        return Err(Error::ProgramLimitExceeded(format!(
                            "COPY line {} is longer than {MAX_RECORD_BYTES} bytes",
                            self.line + 1
                        )));
                    }
                    if !at_end || pending == 0 {
                        return Ok(None);
                    }
                    (self.buffer.len(), self.buffer.len())
                }
            };
            let mut raw = &self.buffer[self.start..content_end];
            if let [rest @ .., b'\r'] = raw {
                raw = rest;
            }
            let raw = raw.to_vec();
            self.start = next;
            self.scanned = 0;
            self.escaped = false;
            let unterminated = std::mem::take(&mut self.in_quote);
            self.line += 1;
            if raw == b"\\." {
                self.ended = true;
                self.buffer = Vec::new();
                return Ok(None);
            }
            if unterminated {
                return Err(self.record_error(
                    Error::BadCopyFileFormat("unterminated CSV quoted field".into()),
                    &raw,
                ));
            }
            if self.options.header && self.line == 1 {
                continue;
            }
            let fields = match self.options.format {
                CopyFormat::Text => self.text_fields(&raw),
                CopyFormat::Csv => self.csv_fields(&raw),
            }
            .map_err(|error| self.record_error(error, &raw))?;
            self.check_count(&fields)
                .map_err(|error| self.record_error(error, &raw))?;
            return Ok(Some(Record {
                line: self.line,
                fields,
                raw,
            }));
        }
    }

    fn record_error(&self, error: Error, raw: &[u8]) -> Error {
        let record = Record {
            line: self.line,
            fields: Vec::new(),
            raw: raw.to_vec(),
        };
        error.with_context(record.context(&self.relation))
    }

    /// PostgreSQL's errors for a record with too few or too many fields.
    fn check_count(&self, fields: &[Option<String>]) -> Result<()> {
        if fields.len() > self.columns.len() {
            return Err(Error::BadCopyFileFormat(
                "extra data after last expected column".into(),
            ));
        }
        if let Some(missing) = self.columns.get(fields.len()) {
            return Err(Error::BadCopyFileFormat(format!(
                "missing data for column \"{missing}\""
            )));
        }
        Ok(())
    }

    /// Where the record being assembled ends: (end of its content, start of the next),
    /// or `None` if its end has not arrived. Scanning resumes where it stopped.
    fn find_end(&mut self) -> Option<(usize, usize)> {
        let bytes = &self.buffer[self.start..];
        let (quote, escape) = (self.options.quote, self.options.escape);
        let mut i = self.scanned;
        while i < bytes.len() {
            let byte = bytes[i];
            match self.options.format {
                CopyFormat::Text if self.escaped => self.escaped = false,
                CopyFormat::Text if byte == b'\\' => self.escaped = true,
                CopyFormat::Csv if self.in_quote => {
                    if byte == escape && escape != quote {
                        match bytes.get(i + 1) {
                            None => break, // decided by the next byte, still to come
                            Some(&next) if next == quote || next == escape => i += 1,
                            Some(_) => {}
                        }
                    } else if byte == quote {
                        self.in_quote = false;
                    }
                }
                CopyFormat::Csv if byte == quote => self.in_quote = true,
                _ if byte == b'\n' => {
                    let end = self.start + i;
                    return Some((end, end + 1));
                }
                _ => {}
            }
            i += 1;
        }
        self.scanned = i;
        None
    }

    /// Splits a text-format record at unescaped delimiters and decodes each field.
    fn text_fields(&self, raw: &[u8]) -> Result<Vec<Option<String>>> {
        let delimiter = self.options.delimiter;
        let mut fields = Vec::with_capacity(self.columns.len());
        let (mut start, mut i) = (0, 0);
        loop {
            if i >= raw.len() {
                fields.push(self.text_field(&raw[start..])?);
                return Ok(fields);
            }
            if raw[i] == b'\\' {
                i += 2;
            } else if raw[i] == delimiter {
                fields.push(self.text_field(&raw[start..i])?);
                start = i + 1;
                i += 1;
            } else {
                i += 1;
            }
        }
    }

    /// One text-format field: the NULL marker (compared before decoding, as in
    /// PostgreSQL), or the field with its backslash escapes decoded.
    fn text_field(&self, raw: &[u8]) -> Result<Option<String>> {
        if raw == self.options.null.as_bytes() {
            return Ok(None);
        }
        if !raw.contains(&b'\\') {
            return utf8(raw.to_vec()).map(Some);
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let byte = raw[i];
            i += 1;
            if byte != b'\\' || i == raw.len() {
                out.push(byte);
                continue;
            }
            let escaped = raw[i];
            i += 1;
            out.push(match escaped {
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                b'0'..=b'7' => {
                    let mut value = u32::from(escaped - b'0');
                    for _ in 0..2 {
                        match raw.get(i) {
                            Some(&digit @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(digit - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    (value & 0xff) as u8
                }
                b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                    let mut value = 0u8;
                    for _ in 0..2 {
                        match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                            Some(digit) => {
                                value = value * 16 + digit as u8;
                                i += 1;
                            }
                            None => break,
                        }
                    }
                    value
                }
                other => other,
            });
        }
        utf8(out).map(Some)
    }

    /// Splits a CSV record into fields, undoing quoting; a field is NULL when it is the
    /// null string unquoted (never under FORCE_NOT_NULL; quoted too under FORCE_NULL).
    fn csv_fields(&self, raw: &[u8]) -> Result<Vec<Option<String>>> {
        let CopyOptions {
            delimiter,
            quote,
            escape,
            ..
        } = self.options;
        let null = self.options.null.as_bytes();
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut i = 0;
        loop {
            let field_start = i;
            let mut value = Vec::new();
            let (mut quoted, mut in_quote) = (false, false);
            while i < raw.len() {
                let byte = raw[i];
                if in_quote {
                    let next = raw.get(i + 1).copied();
                    if byte == escape && next.is_some_and(|n| n == quote || n == escape) {
                        value.extend(next);
                        i += 2;
                        continue;
                    }
                    if byte == quote {
                        in_quote = false;
                    } else {
                        value.push(byte);
                    }
                } else if byte == delimiter {
                    break;
                } else if byte == quote {
                    (quoted, in_quote) = (true, true);
                } else {
                    value.push(byte);
                }
                i += 1;
            }
            if in_quote {
                return Err(Error::BadCopyFileFormat(
                    "unterminated CSV quoted field".into(),
                ));
            }
            let column = fields.len();
            let flag = |mask: &[bool]| mask.get(column).copied().unwrap_or(false);
            let is_null = if quoted {
                flag(&self.force_null) && value == null
            } else {
                &raw[field_start..i] == null
                    && (!flag(&self.force_not_null) || flag(&self.force_null))
            };
            fields.push(if is_null { None } else { Some(utf8(value)?) });
            if i >= raw.len() {
                return Ok(fields);
            }
            i += 1;
        }
    }
}

/// The field's bytes as text; COPY data is UTF-8, like every text Tessera keeps.
fn utf8(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|error| {
        let bad = error.as_bytes()[error.utf8_error().valid_up_to()];
        Error::InvalidByteSequence(format!(
            "invalid byte sequence for encoding \"UTF8\": 0x{bad:02x}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::copy::{CopyDirection, DeclaredCopyOptions};

    fn reader(options: DeclaredCopyOptions, columns: &[&str]) -> RecordReader {
        let options = options.resolve(CopyDirection::From).unwrap();
        let columns = columns.iter().map(|c| c.to_string()).collect();
        RecordReader::new(options, "t", columns).unwrap()
    }

    fn csv() -> DeclaredCopyOptions {
        DeclaredCopyOptions {
            format: Some(crate::sql::copy::CopyFormat::Csv),
            ..Default::default()
        }
    }

    /// Feeds `data` in chunks of `chunk` bytes and collects every record's fields.
    fn read_all(
        reader: &mut RecordReader,
        data: &[u8],
        chunk: usize,
    ) -> Result<Vec<Vec<Option<String>>>> {
        let mut records = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            reader.push(piece);
            while let Some(record) = reader.next_record(false)? {
                records.push(record.fields);
            }
        }
        while let Some(record) = reader.next_record(true)? {
            records.push(record.fields);
        }
        Ok(records)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    /// Text format: tabs split, escapes decode, `\N` is NULL, `\.` ends the data, and
    /// the result does not depend on how the bytes were chunked.
    #[test]
    fn text_records_decode_whatever_the_chunking() {
        let data = b"1\ta\\tb\\\\c\n2\t\\N\n3\t\\101\\x42\\n\r\n\\.\nignored\tafter\n";
        for chunk in [1, 2, 3, 7, 100] {
            let mut r = reader(DeclaredCopyOptions::default(), &["a", "b"]);
            let records = read_all(&mut r, data, chunk).unwrap();
            assert_eq!(
                records,
                vec![
                    vec![some("1"), some("a\tb\\c")],
                    vec![some("2"), None],
                    vec![some("3"), some("AB\n")],
                ],
                "chunk {chunk}"
            );
        }
    }

    /// The last line needs no newline; a header line is skipped but counted.
    #[test]
    fn header_and_unterminated_last_line() {
        let options = DeclaredCopyOptions {
            header: Some(true),
            ..Default::default()
        };
        let mut r = reader(options, &["a"]);
        let records = read_all(&mut r, b"a\nx\ny", 4).unwrap();
        assert_eq!(records, vec![vec![some("x")], vec![some("y")]]);
    }

    /// CSV: quotes protect delimiters and newlines, doubled quotes are one quote, an
    /// unquoted empty field is NULL but a quoted one is an empty string.
    #[test]
    fn csv_quoting() {
        let data = b"1,\"a,b\",\"say \"\"hi\"\"\"\n2,,\"\"\n3,\"two\nlines\",x\n";
        for chunk in [1, 5, 64] {
            let mut r = reader(csv(), &["a", "b", "c"]);
            let records = read_all(&mut r, data, chunk).unwrap();
            assert_eq!(
                records,
                vec![
                    vec![some("1"), some("a,b"), some("say \"hi\"")],
                    vec![some("2"), None, some("")],
                    vec![some("3"), some("two\nlines"), some("x")],
                ]
            );
        }
    }

    /// A distinct ESCAPE character escapes quotes inside quoted fields, even when the
    /// escape and the quote arrive in different chunks.
    #[test]
    fn csv_escape_character() {
        let mut options = csv();
        options.escape = Some('\\');
        let mut r = reader(options, &["a", "b"]);
        let records = read_all(&mut r, b"\"x\\\"y\",z\n", 1).unwrap();
        assert_eq!(records, vec![vec![some("x\"y"), some("z")]]);
    }

    /// FORCE_NOT_NULL keeps the null string as text; FORCE_NULL makes a quoted one NULL.
    #[test]
    fn csv_force_null_options() {
        let mut options = csv();
        options.force_not_null = Some(vec!["a".into()]);
        options.force_null = Some(vec!["b".into()]);
        let mut r = reader(options, &["a", "b"]);
        let records = read_all(&mut r, b",\"\"\n", 64).unwrap();
        assert_eq!(records, vec![vec![some(""), None]]);
    }

    /// Wrong field counts, unterminated quotes and bad UTF-8 are PostgreSQL's errors,
    /// with the line in the context.
    #[test]
    fn bad_records_name_their_line() {
        let mut r = reader(DeclaredCopyOptions::default(), &["a", "b"]);
        let error = read_all(&mut r, b"1\t2\n3\n", 64).unwrap_err();
        assert_eq!(error.sqlstate(), "22P04");
        assert_eq!(error.to_string(), "missing data for column \"b\"");
        assert_eq!(error.context().as_deref(), Some("COPY t, line 2: \"3\""));

        let mut r = reader(DeclaredCopyOptions::default(), &["a"]);
        let error = read_all(&mut r, b"1\t2\n", 64).unwrap_err();
        assert_eq!(error.to_string(), "extra data after last expected column");

        let mut r = reader(csv(), &["a"]);
        let error = read_all(&mut r, b"\"open\n", 64).unwrap_err();
        assert_eq!(error.to_string(), "unterminated CSV quoted field");

        let mut r = reader(DeclaredCopyOptions::default(), &["a"]);
        let error = read_all(&mut r, b"\xff\n", 64).unwrap_err();
        assert_eq!(error.sqlstate(), "22021");
    }

    /// A FORCE_NOT_NULL column must be one of the COPY's columns.
    #[test]
    fn force_columns_must_be_copied() {
        let mut options = csv();
        options.force_not_null = Some(vec!["z".into()]);
        let options = options.resolve(CopyDirection::From).unwrap();
        let error = RecordReader::new(options, "t", vec!["a".into()])
            .err()
            .unwrap();
        assert_eq!(error.sqlstate(), "42P10");
    }
}
