//! Backslash meta-commands: `\?`, `\q`, `\d`, `\d NAME`, `\dt`, `\di`, `\timing`, `\x`.
//! Listings are built as ordinary query results so they print in every output format.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::session::{QueryResult, Row};
use crate::sql::planner::OutputColumn;
use crate::types::{Value, TEXT};

/// What a meta-command asks the shell to do.
pub enum MetaAction {
    /// Print these results.
    Show(Vec<QueryResult>),
    /// Print this text.
    Print(String),
    /// Toggle timing; the text says the new state.
    ToggleTiming,
    /// Toggle expanded output.
    ToggleExpanded,
    /// Leave the shell.
    Quit,
}

/// Help text for `\?`.
pub const HELP: &str = "\
General
  \\q                     quit the shell
  \\?                     show this help

Informational
  \\d                     list tables
  \\d NAME                describe a table (columns, types, indexes)
  \\dt                    list tables
  \\di                    list indexes

Formatting
  \\x                     toggle expanded output (one record per block)
  \\timing                toggle printing how long each statement took

SQL statements end with ';' and may span several lines.
";

/// Runs a meta-command line (starting with `\`).
pub fn run(line: &str, catalog: &Catalog) -> Result<MetaAction> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or_default();
    let argument = words.next();
    match (command, argument) {
        ("\\q" | "\\quit", _) => Ok(MetaAction::Quit),
        ("\\?" | "\\help", _) => Ok(MetaAction::Print(HELP.to_string())),
        ("\\timing", _) => Ok(MetaAction::ToggleTiming),
        ("\\x", _) => Ok(MetaAction::ToggleExpanded),
        ("\\d" | "\\dt" | "\\d+" | "\\dt+", None) => {
            Ok(MetaAction::Show(vec![list_tables(catalog)]))
        }
        ("\\di" | "\\di+", None) => Ok(MetaAction::Show(vec![list_indexes(catalog)])),
        ("\\d" | "\\d+", Some(name)) => describe(catalog, &name.to_lowercase().replace('"', "")),
        _ => Err(Error::Syntax {
            message: format!("invalid command {command}; try \\? for help"),
            position: None,
        }),
    }
}

fn listing(title: &str, headers: &[&str], rows: Vec<Vec<String>>) -> QueryResult {
    QueryResult {
        tag: title.to_string(),
        columns: headers
            .iter()
            .map(|h| OutputColumn {
                name: h.to_string(),
                data_type: TEXT,
            })
            .collect(),
        rows: rows
            .into_iter()
            .map(|r| Row::new(r.into_iter().map(Value::Text).collect()))
            .collect(),
        returns_rows: true,
        affected: None,
        notices: Vec::new(),
    }
}

fn list_tables(catalog: &Catalog) -> QueryResult {
    let rows = catalog
        .tables()
        .map(|t| {
            vec![
                "public".to_string(),
                t.name.clone(),
                "table".to_string(),
                "tessera".to_string(),
            ]
        })
        .collect();
    listing(
        "List of relations",
        &["Schema", "Name", "Type", "Owner"],
        rows,
    )
}

fn list_indexes(catalog: &Catalog) -> QueryResult {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        if !table.has_hidden_row_id() {
            rows.push(vec![
                "public".into(),
                table.primary_key_name(),
                "index".into(),
                "tessera".into(),
                table.name.clone(),
            ]);
        }
        for index in &table.indexes {
            rows.push(vec![
                "public".into(),
                index.name.clone(),
                "index".into(),
                "tessera".into(),
                table.name.clone(),
            ]);
        }
    }
    rows.sort();
    listing(
        "List of relations",
        &["Schema", "Name", "Type", "Owner", "Table"],
        rows,
    )
}

fn describe(catalog: &Catalog, name: &str) -> Result<MetaAction> {
    let table = catalog.table(name).ok_or_else(|| {
        Error::UndefinedTable(format!("{name}\" (no relation found named \"{name}"))
    })?;
    let rows = table
        .columns
        .iter()
        .filter(|c| !c.hidden)
        .map(|c| {
            let default = match &c.default {
                None => String::new(),
                Some(Value::Text(s)) => {
                    format!("'{}'::{}", s.replace('\'', "''"), c.data_type.sql_name())
                }
                Some(v) => v.to_string(),
            };
            vec![
                c.name.clone(),
                c.data_type.sql_name(),
                if c.nullable {
                    String::new()
                } else {
                    "not null".into()
                },
                default,
            ]
        })
        .collect();
    let columns = listing(
        &format!("Table \"public.{}\"", table.name),
        &["Column", "Type", "Nullable", "Default"],
        rows,
    );
    let mut indexes = Vec::new();
    let names = |positions: &[usize]| {
        positions
            .iter()
            .map(|&i| table.columns[i].name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !table.has_hidden_row_id() {
        indexes.push(format!(
            "    \"{}\" PRIMARY KEY ({})",
            table.primary_key_name(),
            names(&table.primary_key)
        ));
    }
    for index in &table.indexes {
        let kind = if index.unique { " UNIQUE" } else { "" };
        indexes.push(format!(
            "    \"{}\"{kind} ({})",
            index.name,
            names(&index.columns)
        ));
    }
    let mut text = format!("Table \"public.{}\"\n", table.name);
    text.push_str(&crate::shell::format::aligned_table(&columns, false));
    if !indexes.is_empty() {
        text.push_str("Indexes:\n");
        text.push_str(&indexes.join("\n"));
        text.push('\n');
    }
    text.push('\n');
    Ok(MetaAction::Print(text))
}
