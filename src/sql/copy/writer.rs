//! Writes COPY TO's data: each row as one line of text or CSV, values in PostgreSQL's
//! text output form, escaped or quoted so that COPY FROM with the same options reads
//! back exactly the same rows.

use super::{CopyFormat, CopyOptions, ForceQuote};
use crate::types::Value;

/// Turns rows into lines of COPY data.
pub struct RecordWriter {
    options: CopyOptions,
    /// Per column: quote every non-NULL value (CSV's FORCE_QUOTE).
    force_quote: Vec<bool>,
}

impl RecordWriter {
    /// A writer for rows whose columns are `columns`, in order.
    pub fn new(options: CopyOptions, columns: &[String]) -> RecordWriter {
        let force_quote = columns
            .iter()
            .map(|column| match &options.force_quote {
                ForceQuote::None => false,
                ForceQuote::All => true,
                ForceQuote::Columns(names) => names.contains(column),
            })
            .collect();
        RecordWriter {
            options,
            force_quote,
        }
    }

    /// The header line (column names), when HEADER was asked for.
    pub fn header(&self, columns: &[String]) -> Option<String> {
        if !self.options.header {
            return None;
        }
        let mut line = String::new();
        for (i, name) in columns.iter().enumerate() {
            if i > 0 {
                line.push(self.options.delimiter as char);
            }
            self.push_field(&mut line, name, false);
        }
        line.push('\n');
        Some(line)
    }

    /// One row as a line, newline included.
    pub fn row(&self, values: &[Value]) -> String {
        let mut line = String::new();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                line.push(self.options.delimiter as char);
            }
            if value.is_null() {
                line.push_str(&self.options.null);
                continue;
            }
            let forced = self.force_quote.get(i).copied().unwrap_or(false);
            self.push_field(&mut line, &value.to_string(), forced);
        }
        line.push('\n');
        line
    }

    fn push_field(&self, line: &mut String, text: &str, forced: bool) {
        match self.options.format {
            CopyFormat::Text => self.push_text(line, text),
            CopyFormat::Csv => self.push_csv(line, text, forced),
        }
    }

    /// Text format: backslash escapes for the backslash, the delimiter and control
    /// characters that would break the line.
    fn push_text(&self, line: &mut String, text: &str) {
        let delimiter = self.options.delimiter as char;
        for character in text.chars() {
            match character {
                '\\' => line.push_str("\\\\"),
                '\n' => line.push_str("\\n"),
                '\r' => line.push_str("\\r"),
                '\t' => line.push_str("\\t"),
                '\u{8}' => line.push_str("\\b"),
                '\u{c}' => line.push_str("\\f"),
                '\u{b}' => line.push_str("\\v"),
                c if c == delimiter => {
                    line.push('\\');
                    line.push(c);
                }
                c => line.push(c),
            }
        }
    }

    /// CSV: quoted when forced or when the value holds the delimiter, the quote, a line
    /// break, is the null string (so that it does not read back as NULL), or is `\.`.
    fn push_csv(&self, line: &mut String, text: &str, forced: bool) {
        let CopyOptions {
            delimiter,
            quote,
            escape,
            ..
        } = self.options;
        let (quote, escape) = (quote as char, escape as char);
        let needs_quotes = forced
            || text == self.options.null
            || text == "\\."
            || text
                .chars()
                .any(|c| c == delimiter as char || c == quote || c == '\n' || c == '\r');
        if !needs_quotes {
            line.push_str(text);
            return;
        }
        line.push(quote);
        for character in text.chars() {
            if character == quote || character == escape {
                line.push(escape);
            }
            line.push(character);
        }
        line.push(quote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::copy::reader::RecordReader;
    use crate::sql::copy::{CopyDirection, DeclaredCopyOptions};

    fn options(format: CopyFormat, direction: CopyDirection) -> CopyOptions {
        DeclaredCopyOptions {
            format: Some(format),
            header: Some(true),
            ..Default::default()
        }
        .resolve(direction)
        .unwrap()
    }

    /// What COPY TO writes, COPY FROM with the same options reads back unchanged, in
    /// both formats, awkward characters, empty strings and NULLs included.
    #[test]
    fn written_rows_read_back() {
        let columns = vec!["a".to_string(), "b".to_string()];
        let rows = vec![
            vec![
                Value::Text("tab\there".into()),
                Value::Text("back\\slash".into()),
            ],
            vec![Value::Text("line\nbreak\r".into()), Value::Null],
            vec![
                Value::Text(String::new()),
                Value::Text("\"quoted\", comma".into()),
            ],
            vec![Value::Text("\\.".into()), Value::Text("\\N".into())],
        ];
        for format in [CopyFormat::Text, CopyFormat::Csv] {
            let writer = RecordWriter::new(options(format, CopyDirection::To), &columns);
            let mut data = writer.header(&columns).unwrap();
            for row in &rows {
                data.push_str(&writer.row(row));
            }
            let mut reader =
                RecordReader::new(options(format, CopyDirection::From), "t", columns.clone())
                    .unwrap();
            reader.push(data.as_bytes());
            let mut read = Vec::new();
            while let Some(record) = reader.next_record(true).unwrap() {
                read.push(
                    record
                        .fields
                        .into_iter()
                        .map(|f| f.map_or(Value::Null, Value::Text))
                        .collect::<Vec<_>>(),
                );
            }
            assert_eq!(read, rows, "{format:?}: {data}");
        }
    }

    /// Values print in PostgreSQL's text output form; CSV quotes only what needs it.
    #[test]
    fn csv_quotes_only_what_needs_it() {
        let columns = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let mut options = options(CopyFormat::Csv, CopyDirection::To);
        options.header = false;
        let writer = RecordWriter::new(options, &columns);
        let row = [
            Value::Integer(7),
            Value::Boolean(true),
            Value::Text("a,b".into()),
        ];
        assert_eq!(writer.row(&row), "7,t,\"a,b\"\n");
    }
}
