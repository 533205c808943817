//! COPY's translation: both of PostgreSQL's option syntaxes (`WITH (FORMAT csv, HEADER)`
//! and the older `WITH CSV HEADER DELIMITER ','` that psql's `\copy` passes through) into
//! one set of checked options. Only the client's streams are offered (`FROM STDIN`,
//! `TO STDOUT`): a server-side file or program would let any client read and write the
//! server's files, which PostgreSQL reserves for superusers.

use super::{ident, is_word, object_name, translate_query, unsupported};
use crate::error::Result;
use crate::sql::ast::{Copy, CopyRelation, Statement};
use crate::sql::copy::{set_once, CopyDirection, CopyFormat, DeclaredCopyOptions, ForceQuote};
use sqlparser::ast as sp;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Word};

/// PostgreSQL spells a boolean option's value in many ways (`FREEZE ON`, `HEADER 1`,
/// pgbench's `with (freeze on)`); sqlparser knows only TRUE and FALSE. Rewrites the
/// others where a FREEZE or HEADER option starts (after `(` or `,`).
pub(super) fn spell_boolean_options(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    if !tokens.iter().any(|token| is_word(token, "copy")) {
        return tokens; // the common case costs one scan, no allocation
    }
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let mut out = tokens;
    for window in significant.windows(3) {
        let [before, option, value] = [window[0], window[1], window[2]];
        let starts_option = matches!(out[before].token, Token::LParen | Token::Comma);
        if !starts_option || !(is_word(&out[option], "freeze") || is_word(&out[option], "header")) {
            continue;
        }
        let truth = match &out[value].token {
            Token::Number(n, _) if n == "1" => true,
            Token::Number(n, _) if n == "0" => false,
            _ if is_word(&out[value], "on") => true,
            _ if is_word(&out[value], "off") => false,
            _ => continue,
        };
        let (word, keyword) = if truth {
            ("TRUE", Keyword::TRUE)
        } else {
            ("FALSE", Keyword::FALSE)
        };
        out[value].token = Token::Word(Word {
            value: word.into(),
            quote_style: None,
            keyword,
        });
    }
    out
}

/// Most tokens looked at for the end of a COPY statement (COPY statements are short).
const MAX_COPY_TOKENS: usize = 10_000;

/// sqlparser reads whatever follows `COPY ... FROM STDIN;` as inline data, so a
/// statement after it would vanish unseen; such a query string is refused instead (the
/// data comes through the COPY protocol, further statements in their own query).
pub(super) fn refuse_statements_after_copy_in(parser: &sqlparser::parser::Parser) -> Result<()> {
    let mut stdin = false;
    for n in 1..MAX_COPY_TOKENS {
        let token = parser.peek_nth_token(n);
        match token.token {
            Token::EOF => return Ok(()),
            Token::SemiColon => {
                let after = parser.peek_nth_token(n + 1).token;
                if stdin && after != Token::EOF && after != Token::SemiColon {
                    return Err(unsupported(
                        "COPY FROM STDIN followed by more statements or inline data in one \
                         query string; send its data through the COPY protocol and the \
                         statements separately",
                    ));
                }
                return Ok(());
            }
            _ => stdin |= is_word(&token, "stdin"),
        }
    }
    Ok(())
}

/// Translates sqlparser's COPY.
pub(super) fn translate_copy(statement: sp::Statement) -> Result<Statement> {
    let sp::Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        values,
    } = statement
    else {
        return Err(unsupported("this statement as COPY"));
    };
    let direction = match (to, &target) {
        (false, sp::CopyTarget::Stdin) => CopyDirection::From,
        (true, sp::CopyTarget::Stdout) => CopyDirection::To,
        _ => {
            return Err(unsupported(
                "COPY to or from a server file or program; use FROM STDIN or TO STDOUT \
                 (psql's \\copy reads and writes the client's files)",
            ))
        }
    };
    if !values.is_empty() {
        return Err(unsupported(
            "COPY data inline in the statement text; send it through the COPY protocol",
        ));
    }
    let relation = match source {
        sp::CopySource::Table {
            table_name,
            columns,
        } => CopyRelation::Table {
            name: object_name(&table_name)?,
            columns: (!columns.is_empty()).then(|| columns.iter().map(ident).collect()),
        },
        sp::CopySource::Query(query) => CopyRelation::Query(Box::new(translate_query(*query)?)),
    };
    let mut declared = DeclaredCopyOptions::default();
    for option in options {
        declare(&mut declared, option)?;
    }
    for option in legacy_options {
        declare_legacy(&mut declared, option)?;
    }
    Ok(Statement::Copy(Copy {
        relation,
        direction,
        options: declared.resolve(direction)?,
    }))
}

fn idents(columns: &[sp::Ident]) -> Vec<String> {
    columns.iter().map(ident).collect()
}

/// One option of the `WITH (...)` list.
fn declare(declared: &mut DeclaredCopyOptions, option: sp::CopyOption) -> Result<()> {
    match option {
        sp::CopyOption::Format(name) => set_once(&mut declared.format, format(&name)?),
        sp::CopyOption::Freeze(freeze) => set_once(&mut declared.freeze, freeze),
        sp::CopyOption::Delimiter(delimiter) => set_once(&mut declared.delimiter, delimiter),
        sp::CopyOption::Null(null) => set_once(&mut declared.null, null),
        sp::CopyOption::Header(header) => set_once(&mut declared.header, header),
        sp::CopyOption::Quote(quote) => set_once(&mut declared.quote, quote),
        sp::CopyOption::Escape(escape) => set_once(&mut declared.escape, escape),
        sp::CopyOption::ForceQuote(columns) => set_once(
            &mut declared.force_quote,
            ForceQuote::Columns(idents(&columns)),
        ),
        sp::CopyOption::ForceNotNull(columns) => {
            set_once(&mut declared.force_not_null, idents(&columns))
        }
        sp::CopyOption::ForceNull(columns) => set_once(&mut declared.force_null, idents(&columns)),
        sp::CopyOption::Encoding(encoding) => utf8_only(&encoding),
    }
}

/// One option of the pre-9.0 syntax.
fn declare_legacy(declared: &mut DeclaredCopyOptions, option: sp::CopyLegacyOption) -> Result<()> {
    match option {
        sp::CopyLegacyOption::Binary => Err(binary()),
        sp::CopyLegacyOption::Delimiter(delimiter) => set_once(&mut declared.delimiter, delimiter),
        sp::CopyLegacyOption::Null(null) => set_once(&mut declared.null, null),
        sp::CopyLegacyOption::Header => set_once(&mut declared.header, true),
        sp::CopyLegacyOption::Csv(csv_options) => {
            set_once(&mut declared.format, CopyFormat::Csv)?;
            for option in csv_options {
                declare_legacy_csv(declared, option)?;
            }
            Ok(())
        }
        other => Err(unsupported(format!("the COPY option {other}"))),
    }
}

fn declare_legacy_csv(
    declared: &mut DeclaredCopyOptions,
    option: sp::CopyLegacyCsvOption,
) -> Result<()> {
    match option {
        sp::CopyLegacyCsvOption::Header => set_once(&mut declared.header, true),
        sp::CopyLegacyCsvOption::Quote(quote) => set_once(&mut declared.quote, quote),
        sp::CopyLegacyCsvOption::Escape(escape) => set_once(&mut declared.escape, escape),
        sp::CopyLegacyCsvOption::ForceQuote(columns) => {
            let force = if columns.is_empty() {
                ForceQuote::All
            } else {
                ForceQuote::Columns(idents(&columns))
            };
            set_once(&mut declared.force_quote, force)
        }
        sp::CopyLegacyCsvOption::ForceNotNull(columns) => {
            set_once(&mut declared.force_not_null, idents(&columns))
        }
    }
}

fn format(name: &sp::Ident) -> Result<CopyFormat> {
    match ident(name).as_str() {
        "text" => Ok(CopyFormat::Text),
        "csv" => Ok(CopyFormat::Csv),
        "binary" => Err(binary()),
        other => Err(crate::error::Error::InvalidParameterValue(format!(
            "COPY format \"{other}\" not recognized"
        ))),
    }
}

fn binary() -> crate::error::Error {
    unsupported("COPY's binary format; use FORMAT text or FORMAT csv")
}

/// Tessera keeps text as UTF-8 and converts no encodings.
fn utf8_only(encoding: &str) -> Result<()> {
    let normalized = encoding.to_ascii_lowercase().replace(['-', '_'], "");
    if normalized == "utf8" {
        return Ok(());
    }
    Err(unsupported(format!(
        "COPY with ENCODING '{encoding}' (only UTF8)"
    )))
}

#[cfg(test)]
mod tests {
    use crate::sql::ast::{CopyRelation, Statement};
    use crate::sql::copy::{CopyDirection, CopyFormat, ForceQuote};
    use crate::sql::parser::parse;

    fn copy(sql: &str) -> crate::sql::ast::Copy {
        match parse(sql).unwrap().remove(0) {
            Statement::Copy(copy) => copy,
            other => panic!("not a COPY: {other:?}"),
        }
    }

    /// The modern option list and the legacy one give the same options.
    #[test]
    fn both_option_syntaxes() {
        let modern = copy("COPY t (a, b) FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';')");
        let legacy = copy("COPY t (a, b) FROM STDIN WITH CSV HEADER DELIMITER ';'");
        assert_eq!(modern, legacy);
        assert_eq!(modern.options.format, CopyFormat::Csv);
        assert_eq!(modern.options.delimiter, b';');
        assert!(modern.options.header);
        assert_eq!(
            modern.relation,
            CopyRelation::Table {
                name: "t".into(),
                columns: Some(vec!["a".into(), "b".into()])
            }
        );
        let out = copy("COPY (SELECT 1 AS a) TO STDOUT CSV FORCE QUOTE a");
        assert_eq!(out.direction, CopyDirection::To);
        assert_eq!(
            out.options.force_quote,
            ForceQuote::Columns(vec!["a".into()])
        );
        // pgbench's statement.
        let freeze = copy("copy pgbench_accounts from stdin with (freeze on)");
        assert_eq!(freeze.options.format, CopyFormat::Text);
        assert!(copy("COPY t TO STDOUT (HEADER 1)").options.header);
        assert!(
            !copy("COPY t TO STDOUT (FORMAT csv, HEADER off)")
                .options
                .header
        );
    }

    /// Files, programs, binary and repeated options are refused with PostgreSQL's codes.
    #[test]
    fn refusals() {
        let code = |sql: &str| parse(sql).unwrap_err().sqlstate().to_string();
        assert_eq!(code("COPY t FROM '/etc/passwd'"), "0A000");
        assert_eq!(code("COPY t TO PROGRAM 'ls'"), "0A000");
        assert_eq!(code("COPY t FROM STDIN (FORMAT binary)"), "0A000");
        assert_eq!(code("COPY t FROM STDIN (FORMAT xml)"), "22023");
        assert_eq!(code("COPY t FROM STDIN (HEADER, HEADER false)"), "42601");
        assert_eq!(code("COPY t FROM STDOUT"), "0A000");
    }
}
