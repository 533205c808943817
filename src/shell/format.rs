//! Printing results as psql does: aligned tables (and `\x` expanded records), CSV in the
//! shape of `psql --csv`, and JSON for programs.

use crate::session::{CopyResult, QueryResult};
use crate::types::{DataType, Value};
use std::fmt::Write;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// psql's aligned table.
    Table,
    /// psql's `--csv`: a header line, then one line per row.
    Csv,
    /// One JSON array of objects per result.
    Json,
}

/// Renders one result; statements without rows render as their command tag.
pub fn render(result: &QueryResult, format: OutputFormat, expanded: bool) -> String {
    match &result.copy {
        // COPY TO STDOUT prints its data alone; COPY FROM STDIN prints once loaded.
        Some(CopyResult::Data { lines, .. }) => return lines.concat(),
        Some(CopyResult::WaitingForData { .. }) => return String::new(),
        None => {}
    }
    if !result.returns_rows {
        return format!("{}\n", result.tag);
    }
    let rendered = match format {
        OutputFormat::Table if expanded => expanded_table(result),
        OutputFormat::Table => aligned_table(result, true),
        OutputFormat::Csv => csv(result),
        OutputFormat::Json => json(result),
    };
    match (format, result.affected) {
        // A data change's RETURNING rows are followed by its tag, as psql prints them.
        (OutputFormat::Table, Some(_)) => format!("{rendered}{}\n", result.tag),
        _ => rendered,
    }
}

fn cell(value: &Value) -> String {
    // NULL prints as nothing, as in psql's default \pset null ''.
    value.to_string()
}

fn right_aligned(data_type: DataType) -> bool {
    data_type.is_numeric()
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn pad(text: &str, width_wanted: usize, right: bool) -> String {
    let padding = " ".repeat(width_wanted.saturating_sub(width(text)));
    if right {
        format!("{padding}{text}")
    } else {
        format!("{text}{padding}")
    }
}

fn centered(text: &str, width_wanted: usize) -> String {
    let total = width_wanted.saturating_sub(width(text));
    let left = total / 2;
    format!("{}{text}{}", " ".repeat(left), " ".repeat(total - left))
}

/// psql's aligned format: centered headers, numbers right-aligned, and (with `footer`)
/// a `(N rows)` line.
pub fn aligned_table(result: &QueryResult, footer: bool) -> String {
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| row.values().iter().map(cell).collect())
        .collect();
    let widths: Vec<usize> = result
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            cells
                .iter()
                .map(|row| width(&row[i]))
                .chain([width(&column.name)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let header: Vec<String> = result
        .columns
        .iter()
        .zip(&widths)
        .map(|(c, w)| centered(&c.name, *w))
        .collect();
    let _ = writeln!(out, " {} ", header.join(" | "));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "-{}-", rule.join("-+-"));
    let last = result.columns.len().saturating_sub(1);
    for row in &cells {
        // psql pads every column but a left-aligned last one.
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .zip(&result.columns)
            .enumerate()
            .map(|(i, ((text, w), column))| {
                let right = right_aligned(column.data_type);
                if i == last && !right {
                    text.clone()
                } else {
                    pad(text, *w, right)
                }
            })
            .collect();
        let _ = writeln!(out, " {}", line.join(" | "));
    }
    if footer {
        let count = result.rows.len();
        let _ = writeln!(out, "({count} row{})\n", if count == 1 { "" } else { "s" });
    }
    out
}

/// psql's `\x` format: one block per record, `column | value` lines.
fn expanded_table(result: &QueryResult) -> String {
    if result.rows.is_empty() {
        return "(0 rows)\n\n".into();
    }
    let name_width = result
        .columns
        .iter()
        .map(|c| width(&c.name))
        .max()
        .unwrap_or(0);
    let value_width = result
        .rows
        .iter()
        .flat_map(|r| r.values().iter().map(|v| width(&cell(v))))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (n, row) in result.rows.iter().enumerate() {
        let header = format!("-[ RECORD {} ]", n + 1);
        let fill = (name_width + 3 + value_width).saturating_sub(width(&header));
        let _ = writeln!(out, "{header}{}", "-".repeat(fill));
        for (column, value) in result.columns.iter().zip(row.values()) {
            let _ = writeln!(
                out,
                "{} | {}",
                pad(&column.name, name_width, false),
                cell(value)
            );
        }
    }
    out.push('\n');
    out
}

/// One CSV field: quoted when it holds a delimiter, quote or line break, or is the empty
/// string (so that it differs from NULL, which is an empty field).
fn csv_field(value: &Value) -> String {
    if value.is_null() {
        return String::new();
    }
    let text = value.to_string();
    if text.is_empty() || text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv(result: &QueryResult) -> String {
    let mut out = String::new();
    let header: Vec<String> = result
        .columns
        .iter()
        .map(|c| csv_field(&Value::Text(c.name.clone())))
        .collect();
    let _ = writeln!(out, "{}", header.join(","));
    for row in &result.rows {
        let fields: Vec<String> = row.values().iter().map(csv_field).collect();
        let _ = writeln!(out, "{}", fields.join(","));
    }
    out
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::SmallInt(_) | Value::Integer(_) | Value::BigInt(_) => {
            value.as_i64().map_or(serde_json::Value::Null, Into::into)
        }
        Value::Real(_) | Value::Double(_) => value
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(
                || serde_json::Value::String(value.to_string()),
                serde_json::Value::Number,
            ),
        Value::Text(s) => serde_json::Value::String(s.clone()),
        Value::Bytea(_) => serde_json::Value::String(value.to_string()),
        Value::Array { items, .. } => {
            serde_json::Value::Array(items.iter().map(json_value).collect())
        }
    }
}

fn json(result: &QueryResult) -> String {
    let rows: Vec<serde_json::Value> = result
        .rows
        .iter()
        .map(|row| {
            let object = result
                .columns
                .iter()
                .zip(row.values())
                .map(|(c, v)| (c.name.clone(), json_value(v)))
                .collect();
            serde_json::Value::Object(object)
        })
        .collect();
    format!("{}\n", serde_json::Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Row;
    use crate::sql::planner::OutputColumn;
    use crate::types::TEXT;

    fn result() -> QueryResult {
        QueryResult {
            tag: "SELECT 2".into(),
            columns: vec![
                OutputColumn {
                    name: "id".into(),
                    data_type: DataType::Integer,
                },
                OutputColumn {
                    name: "name".into(),
                    data_type: TEXT,
                },
            ],
            rows: vec![
                Row::new(vec![Value::Integer(1), Value::Text("alice".into())]),
                Row::new(vec![Value::Integer(10), Value::Null]),
            ],
            returns_rows: true,
            affected: None,
            notices: vec![],
            copy: None,
        }
    }

    /// The aligned table matches psql's layout byte for byte.
    #[test]
    fn aligned_like_psql() {
        let text = render(&result(), OutputFormat::Table, false);
        assert_eq!(
            text,
            " id | name  \n----+-------\n  1 | alice\n 10 | \n(2 rows)\n\n"
        );
    }

    /// CSV writes NULL as an empty field and the empty string as "".
    #[test]
    fn csv_like_psql() {
        let mut r = result();
        r.rows.push(Row::new(vec![
            Value::Integer(2),
            Value::Text(String::new()),
        ]));
        r.rows.push(Row::new(vec![
            Value::Integer(3),
            Value::Text("a,\"b\"".into()),
        ]));
        let text = render(&r, OutputFormat::Csv, false);
        assert_eq!(text, "id,name\n1,alice\n10,\n2,\"\"\n3,\"a,\"\"b\"\"\"\n");
    }

    /// Expanded output matches psql's `\\x` layout.
    #[test]
    fn expanded_like_psql() {
        let text = render(&result(), OutputFormat::Table, true);
        assert_eq!(
            text,
            "-[ RECORD 1 ]\nid   | 1\nname | alice\n-[ RECORD 2 ]\nid   | 10\nname | \n\n"
        );
    }

    /// JSON keeps types: numbers as numbers, NULL as null.
    #[test]
    fn json_keeps_types() {
        let text = render(&result(), OutputFormat::Json, false);
        assert_eq!(
            text,
            "[{\"id\":1,\"name\":\"alice\"},{\"id\":10,\"name\":null}]\n"
        );
    }
}
