//! Backslash meta-commands: `\?`, `\q`, `\d`, `\d NAME`, `\dt`, `\di`, `\timing`, `\x`,
//! `\cluster`, and `\node` in a demo cluster.
//! Listings are built as ordinary query results so they print in every output format.

use crate::error::{Error, Result};
use crate::session::{QueryResult, Row};
use crate::shell::backend::{query_text, Backend};
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
  \\ds                    list sequences

Cluster
  \\cluster               nodes and groups: role, term, leader, indexes, lag; then
                         each data group's leader, voters and shards (hash ranges)
  \\node                  (tessera demo) the demo's nodes, running or stopped
  \\node stop N           (tessera demo) kill node N, as in a crash
  \\node start N          (tessera demo) start node N again from its data

Formatting
  \\x                     toggle expanded output (one record per block)
  \\timing                toggle printing how long each statement took

SQL statements end with ';' and may span several lines.
";

/// Runs a meta-command line (starting with `\`). Listings are queries on the system
/// views (information_schema, pg_indexes), so they work the same on an embedded
/// database and over the wire.
pub fn run(line: &str, backend: &mut dyn Backend) -> Result<MetaAction> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or_default();
    let argument = words.next();
    if command == "\\node" {
        return node_command(backend, argument, words.next());
    }
    match (command, argument) {
        ("\\q" | "\\quit", _) => Ok(MetaAction::Quit),
        ("\\?" | "\\help", _) => Ok(MetaAction::Print(HELP.to_string())),
        ("\\timing", _) => Ok(MetaAction::ToggleTiming),
        ("\\x", _) => Ok(MetaAction::ToggleExpanded),
        ("\\d" | "\\dt" | "\\d+" | "\\dt+", None) => {
            Ok(MetaAction::Show(vec![list_tables(backend)?]))
        }
        ("\\di" | "\\di+", None) => Ok(MetaAction::Show(vec![list_indexes(backend)?])),
        ("\\ds" | "\\ds+", None) => Ok(MetaAction::Show(vec![list_sequences(backend)?])),
        ("\\cluster", None) => {
            let mut results = Vec::new();
            backend.execute_each("SHOW CLUSTER; SHOW GROUPS", &mut |result| {
                results.push(result)
            })?;
            Ok(MetaAction::Show(results))
        }
        ("\\d" | "\\d+", Some(name)) => describe(backend, &name.to_lowercase().replace('"', "")),
        _ => Err(Error::Syntax {
            message: format!("invalid command {command}; try \\? for help"),
            position: None,
        }),
    }
}

/// `\node`, `\node stop N`, `\node start N`: only in a demo cluster.
fn node_command(
    backend: &mut dyn Backend,
    action: Option<&str>,
    node: Option<&str>,
) -> Result<MetaAction> {
    let Some(control) = backend.node_control() else {
        return Err(Error::FeatureNotSupported(
            "\\node works in a cluster started by `tessera demo`; elsewhere use `tessera cluster`"
                .into(),
        ));
    };
    let id = || {
        node.and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(|| Error::Syntax {
                message: "expected a node number, e.g. \\node stop 2".into(),
                position: None,
            })
    };
    let text = match action {
        None => control.describe(),
        Some("stop") => control.stop(id()?)?,
        Some("start") => control.start(id()?)?,
        Some(other) => {
            return Err(Error::Syntax {
                message: format!("\\node {other}: expected stop or start"),
                position: None,
            })
        }
    };
    Ok(MetaAction::Print(format!("{text}\n")))
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
        copy: None,
    }
}

/// `name` as a SQL string literal.
fn literal(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

fn list_tables(backend: &mut dyn Backend) -> Result<QueryResult> {
    let rows = query_text(
        backend,
        "SELECT schemaname, tablename, 'table', tableowner FROM pg_catalog.pg_tables \
         ORDER BY schemaname, tablename",
    )?;
    Ok(listing(
        "List of relations",
        &["Schema", "Name", "Type", "Owner"],
        rows,
    ))
}

fn list_indexes(backend: &mut dyn Backend) -> Result<QueryResult> {
    let rows = query_text(
        backend,
        "SELECT schemaname, indexname, 'index', 'tessera', tablename FROM pg_catalog.pg_indexes \
         ORDER BY schemaname, indexname",
    )?;
    Ok(listing(
        "List of relations",
        &["Schema", "Name", "Type", "Owner", "Table"],
        rows,
    ))
}

fn list_sequences(backend: &mut dyn Backend) -> Result<QueryResult> {
    let rows = query_text(
        backend,
        "SELECT sequence_schema, sequence_name, 'sequence', 'tessera' \
         FROM information_schema.sequences ORDER BY sequence_schema, sequence_name",
    )?;
    Ok(listing(
        "List of relations",
        &["Schema", "Name", "Type", "Owner"],
        rows,
    ))
}

/// The column list of an index definition `CREATE ... ON t (a, b)`.
fn indexed_columns(definition: &str) -> &str {
    definition
        .rfind(" (")
        .map(|start| definition[start + 2..].trim_end_matches(')'))
        .unwrap_or_default()
}

fn describe(backend: &mut dyn Backend, name: &str) -> Result<MetaAction> {
    let columns = query_text(
        backend,
        &format!(
            "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default, \
             identity_generation \
             FROM information_schema.columns WHERE table_name = {} ORDER BY ordinal_position",
            literal(name)
        ),
    )?;
    if columns.is_empty() {
        return Err(Error::UndefinedTable(format!(
            "{name}\" (no relation found named \"{name}"
        )));
    }
    let rows = columns
        .into_iter()
        .map(|c| {
            let data_type = if c[2].is_empty() {
                c[1].clone()
            } else {
                format!("{}({})", c[1], c[2])
            };
            let nullable = if c[3] == "NO" { "not null" } else { "" };
            let default = match c[5].as_str() {
                "" => c[4].clone(),
                kind => format!("generated {} as identity", kind.to_lowercase()),
            };
            vec![c[0].clone(), data_type, nullable.to_string(), default]
        })
        .collect();
    let columns = listing(
        &format!("Table \"public.{name}\""),
        &["Column", "Type", "Nullable", "Default"],
        rows,
    );
    let primary_keys: Vec<String> = query_text(
        backend,
        &format!(
            "SELECT constraint_name FROM information_schema.table_constraints \
             WHERE table_name = {} AND constraint_type = 'PRIMARY KEY'",
            literal(name)
        ),
    )?
    .into_iter()
    .map(|mut row| row.swap_remove(0))
    .collect();
    let indexes: Vec<String> = query_text(
        backend,
        &format!(
            "SELECT indexname, indexdef FROM pg_catalog.pg_indexes WHERE tablename = {}",
            literal(name)
        ),
    )?
    .into_iter()
    .map(|row| {
        let kind = if primary_keys.contains(&row[0]) {
            " PRIMARY KEY"
        } else if row[1].starts_with("CREATE UNIQUE") {
            " UNIQUE"
        } else {
            ""
        };
        format!("    \"{}\"{kind} ({})", row[0], indexed_columns(&row[1]))
    })
    .collect();
    let mut text = format!("Table \"public.{name}\"\n");
    text.push_str(&crate::shell::format::aligned_table(&columns, false));
    if !indexes.is_empty() {
        text.push_str("Indexes:\n");
        text.push_str(&indexes.join("\n"));
        text.push('\n');
    }
    text.push('\n');
    Ok(MetaAction::Print(text))
}
