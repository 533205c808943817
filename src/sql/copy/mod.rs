//! COPY's data formats: PostgreSQL's text and CSV formats, read record by record from a
//! stream of bytes ([`reader`]) and written row by row ([`writer`]).
//!
//! COPY moves many rows through one statement, so its formats live beside the SQL, and
//! the rows it reads go into the table through the insert path INSERT uses
//! (`execution::copy`): defaults, NOT NULL, keys and indexes behave as for INSERT. The
//! options are checked here once, with PostgreSQL's messages and SQLSTATEs, so the
//! reader and writer can trust them.

pub mod reader;
pub mod writer;

use crate::error::{Error, Result};

/// The data format of a COPY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's text format: tab-separated, backslash escapes, `\N` for NULL.
    Text,
    /// Comma-separated values with quoting (RFC 4180 and PostgreSQL's extensions).
    Csv,
}

/// Which columns COPY TO quotes in CSV even when they do not need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForceQuote {
    /// None beyond those that need it.
    None,
    /// Every non-NULL value (`FORCE_QUOTE *`).
    All,
    /// The named columns' non-NULL values.
    Columns(Vec<String>),
}

/// Whether COPY reads rows into a table or writes rows out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyDirection {
    /// `COPY ... FROM STDIN`.
    From,
    /// `COPY ... TO STDOUT`.
    To,
}

/// COPY's options as the statement gave them, before defaults and checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeclaredCopyOptions {
    /// FORMAT.
    pub format: Option<CopyFormat>,
    /// DELIMITER.
    pub delimiter: Option<char>,
    /// NULL.
    pub null: Option<String>,
    /// HEADER.
    pub header: Option<bool>,
    /// QUOTE.
    pub quote: Option<char>,
    /// ESCAPE.
    pub escape: Option<char>,
    /// FORCE_QUOTE.
    pub force_quote: Option<ForceQuote>,
    /// FORCE_NOT_NULL.
    pub force_not_null: Option<Vec<String>>,
    /// FORCE_NULL.
    pub force_null: Option<Vec<String>>,
    /// FREEZE: accepted and ignored (rows are visible at commit either way).
    pub freeze: Option<bool>,
}

/// Sets an option once; a second mention is PostgreSQL's "conflicting or redundant
/// options" (42601).
pub fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(Error::Syntax {
            message: "conflicting or redundant options".into(),
            position: None,
        });
    }
    *slot = Some(value);
    Ok(())
}

/// COPY's options, checked, with each format's defaults filled in. The delimiter,
/// quote and escape are single ASCII bytes (PostgreSQL requires one-byte characters).
#[derive(Clone, Debug, PartialEq)]
pub struct CopyOptions {
    /// Text or CSV.
    pub format: CopyFormat,
    /// Separates fields: tab in text, comma in CSV.
    pub delimiter: u8,
    /// The field that means NULL: `\N` in text, an unquoted empty field in CSV.
    pub null: String,
    /// Whether the first line holds column names (skipped FROM, written TO).
    pub header: bool,
    /// CSV's quote character.
    pub quote: u8,
    /// CSV's escape character inside quotes (the quote itself by default).
    pub escape: u8,
    /// COPY TO's forced quoting (CSV).
    pub force_quote: ForceQuote,
    /// COPY FROM's columns whose null string is never NULL (CSV).
    pub force_not_null: Vec<String>,
    /// COPY FROM's columns whose quoted null string is NULL too (CSV).
    pub force_null: Vec<String>,
}

impl DeclaredCopyOptions {
    /// Fills in defaults and checks the combination as PostgreSQL does.
    pub fn resolve(self, direction: CopyDirection) -> Result<CopyOptions> {
        let format = self.format.unwrap_or(CopyFormat::Text);
        let csv = format == CopyFormat::Csv;
        let only_csv = |given: bool, what: &str| -> Result<()> {
            if given && !csv {
                return Err(Error::FeatureNotSupported(format!(
                    "COPY {what} available only in CSV mode"
                )));
            }
            Ok(())
        };
        only_csv(self.quote.is_some(), "quote")?;
        only_csv(self.escape.is_some(), "escape")?;
        only_csv(self.force_quote.is_some(), "force quote")?;
        only_csv(self.force_not_null.is_some(), "force not null")?;
        only_csv(self.force_null.is_some(), "force null")?;
        let wrong_direction = |given: bool, what: &str, used: &str| -> Result<()> {
            if given {
                return Err(Error::FeatureNotSupported(format!(
                    "COPY {what} only available using COPY {used}"
                )));
            }
            Ok(())
        };
        let from = direction == CopyDirection::From;
        wrong_direction(self.force_quote.is_some() && from, "force quote", "TO")?;
        wrong_direction(
            self.force_not_null.is_some() && !from,
            "force not null",
            "FROM",
        )?;
        wrong_direction(self.force_null.is_some() && !from, "force null", "FROM")?;
        let delimiter = one_byte(
            self.delimiter.unwrap_or(if csv { ',' } else { '\t' }),
            "delimiter",
        )?;
        let quote = one_byte(self.quote.unwrap_or('"'), "quote")?;
        let escape = match self.escape {
            Some(escape) => one_byte(escape, "escape")?,
            None => quote,
        };
        let null = self
            .null
            .unwrap_or_else(|| if csv { String::new() } else { "\\N".into() });
        check_delimiter(delimiter, csv)?;
        if null.contains(['\r', '\n']) {
            return Err(Error::InvalidParameterValue(
                "COPY null representation cannot use newline or carriage return".into(),
            ));
        }
        if null.as_bytes().contains(&delimiter) {
            return Err(Error::InvalidParameterValue(
                "COPY delimiter must not appear in the NULL specification".into(),
            ));
        }
        if csv && delimiter == quote {
            return Err(Error::InvalidParameterValue(
                "COPY delimiter and quote must be different".into(),
            ));
        }
        if csv && null.as_bytes().contains(&quote) {
            return Err(Error::InvalidParameterValue(
                "CSV quote character must not appear in the NULL specification".into(),
            ));
        }
        Ok(CopyOptions {
            format,
            delimiter,
            null,
            header: self.header.unwrap_or(false),
            quote,
            escape,
            force_quote: self.force_quote.unwrap_or(ForceQuote::None),
            force_not_null: self.force_not_null.unwrap_or_default(),
            force_null: self.force_null.unwrap_or_default(),
        })
    }
}

/// The byte of a one-byte option character.
fn one_byte(character: char, what: &str) -> Result<u8> {
    u8::try_from(character)
        .ok()
        .filter(u8::is_ascii)
        .ok_or_else(|| {
            Error::FeatureNotSupported(format!("COPY {what} must be a single one-byte character"))
        })
}

/// PostgreSQL's limits on the delimiter: never a line break, and in text format never
/// a character its escapes or NULL marker use.
fn check_delimiter(delimiter: u8, csv: bool) -> Result<()> {
    if delimiter == b'\n' || delimiter == b'\r' {
        return Err(Error::InvalidParameterValue(
            "COPY delimiter cannot be newline or carriage return".into(),
        ));
    }
    if !csv && b"\\.abcdefghijklmnopqrstuvwxyz0123456789".contains(&delimiter) {
        return Err(Error::InvalidParameterValue(format!(
            "COPY delimiter cannot be \"{}\"",
            delimiter as char
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each format gets PostgreSQL's defaults.
    #[test]
    fn defaults_follow_the_format() {
        let text = DeclaredCopyOptions::default()
            .resolve(CopyDirection::From)
            .unwrap();
        assert_eq!((text.delimiter, text.null.as_str()), (b'\t', "\\N"));
        let csv = DeclaredCopyOptions {
            format: Some(CopyFormat::Csv),
            ..Default::default()
        }
        .resolve(CopyDirection::To)
        .unwrap();
        assert_eq!((csv.delimiter, csv.null.as_str()), (b',', ""));
        assert_eq!((csv.quote, csv.escape), (b'"', b'"'));
    }

    /// Combinations PostgreSQL refuses are refused with its SQLSTATEs.
    #[test]
    fn bad_combinations_are_refused() {
        let refused = |options: DeclaredCopyOptions, direction| {
            options
                .resolve(direction)
                .unwrap_err()
                .sqlstate()
                .to_string()
        };
        let quote_in_text = DeclaredCopyOptions {
            quote: Some('\''),
            ..Default::default()
        };
        assert_eq!(refused(quote_in_text, CopyDirection::From), "0A000");
        let same = DeclaredCopyOptions {
            format: Some(CopyFormat::Csv),
            delimiter: Some('"'),
            ..Default::default()
        };
        assert_eq!(refused(same, CopyDirection::From), "22023");
        let letter = DeclaredCopyOptions {
            delimiter: Some('a'),
            ..Default::default()
        };
        assert_eq!(refused(letter, CopyDirection::From), "22023");
        let wide = DeclaredCopyOptions {
            delimiter: Some('é'),
            ..Default::default()
        };
        assert_eq!(refused(wide, CopyDirection::From), "0A000");
        let force_quote_from = DeclaredCopyOptions {
            format: Some(CopyFormat::Csv),
            force_quote: Some(ForceQuote::All),
            ..Default::default()
        };
        assert_eq!(refused(force_quote_from, CopyDirection::From), "0A000");
        let mut twice = DeclaredCopyOptions::default();
        set_once(&mut twice.header, true).unwrap();
        assert_eq!(
            set_once(&mut twice.header, false).unwrap_err().sqlstate(),
            "42601"
        );
    }
}
