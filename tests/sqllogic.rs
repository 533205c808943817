//! SQL logic tests: every `tests/slt/*.slt` file runs against Tessera and, as a
//! cross-check of the expected results, against a real PostgreSQL 15. A result that
//! PostgreSQL would not give fails the PostgreSQL run, so expected results cannot drift
//! into "whatever Tessera does". Where Tessera deliberately differs from PostgreSQL the
//! file says so in a comment and fences the record with `onlyif tessera` / `skipif tessera`.
//!
//! `TESSERA_SLT_REWRITE=1 cargo test --test sqllogic postgres` rewrites the expected
//! results of every file from PostgreSQL's answers (review the diff before committing).

mod common;

use sqllogictest::{DBOutput, DefaultColumnType, Runner};
use std::path::PathBuf;

/// A Tessera session speaking to the sqllogictest runner.
struct TesseraDb {
    session: tessera::Session,
}

fn render(value: &tessera::Value) -> String {
    match value {
        tessera::Value::Null => "NULL".into(),
        tessera::Value::Text(s) if s.is_empty() => "(empty)".into(),
        other => other.to_string(),
    }
}

impl sqllogictest::DB for TesseraDb {
    type Error = tessera::Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, tessera::Error> {
        let mut results = self.session.execute(sql)?;
        let result = results
            .pop()
            .ok_or_else(|| tessera::Error::Internal("no statement".into()))?;
        if result.returns_rows {
            Ok(DBOutput::Rows {
                types: vec![DefaultColumnType::Any; result.columns.len()],
                rows: result
                    .rows
                    .iter()
                    .map(|row| row.values().iter().map(render).collect())
                    .collect(),
            })
        } else {
            Ok(DBOutput::StatementComplete(result.affected.unwrap_or(0)))
        }
    }

    fn engine_name(&self) -> &str {
        "tessera"
    }

    fn error_sql_state(error: &tessera::Error) -> Option<String> {
        Some(error.sqlstate().to_string())
    }
}

/// A PostgreSQL connection speaking to the sqllogictest runner (text results, exactly as
/// PostgreSQL prints them).
struct PostgresDb {
    client: postgres::Client,
}

/// A PostgreSQL error. It displays as `(SQLSTATE)` so that rewriting expected results
/// writes `statement error (SQLSTATE)` records, which both engines are checked against.
#[derive(Debug)]
struct PostgresError {
    code: String,
    message: String,
}

impl std::fmt::Display for PostgresError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({})", self.code)
    }
}

impl std::error::Error for PostgresError {}

impl From<postgres::Error> for PostgresError {
    fn from(error: postgres::Error) -> Self {
        let message = error
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_else(|| error.to_string());
        PostgresError {
            code: error
                .code()
                .map(|c| c.code().to_string())
                .unwrap_or_else(|| "XX000".into()),
            message,
        }
    }
}

impl sqllogictest::DB for PostgresDb {
    type Error = PostgresError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PostgresError> {
        let mut rows = Vec::new();
        let mut columns = None;
        let mut affected = 0;
        for message in self.client.simple_query(sql)? {
            match message {
                postgres::SimpleQueryMessage::RowDescription(description) => {
                    columns = Some(description.len())
                }
                postgres::SimpleQueryMessage::Row(row) => {
                    columns = Some(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| match row.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(text) => text.to_string(),
                            })
                            .collect(),
                    );
                }
                postgres::SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(affected),
        })
    }

    fn engine_name(&self) -> &str {
        "postgres"
    }

    fn error_sql_state(error: &PostgresError) -> Option<String> {
        let _ = &error.message; // shown by Debug when a run fails
        Some(error.code.clone())
    }
}

/// The rewriter writes `statement error (XXXXX)` back as the regex `\(XXXXX\)`; turn
/// those into SQLSTATE expectations again, which both engines are checked against.
fn restore_sqlstate_records(file: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let restored: Vec<String> = text
        .lines()
        .map(|line| {
            let code = line
                .strip_prefix("statement error \\(")
                .and_then(|rest| rest.strip_suffix("\\)"));
            match code {
                Some(code)
                    if code.len() == 5
                        && code
                            .bytes()
                            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) =>
                {
                    format!("statement error ({code})")
                }
                _ => line.to_string(),
            }
        })
        .collect();
    std::fs::write(file, restored.join("\n") + "\n").map_err(|e| e.to_string())
}

fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

/// Every .slt file passes on Tessera (each file gets a fresh database; the file's
/// `connection` blocks are separate sessions on it).
#[test]
fn tessera_passes_slt_files() {
    let mut failures = Vec::new();
    for file in slt_files() {
        let database = tessera::Database::temporary().expect("temporary database");
        let mut runner = Runner::new(move || {
            let session = database.session();
            async move { Ok(TesseraDb { session }) }
        });
        runner.add_label("tessera");
        if let Err(e) = runner.run_file(&file) {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// PostgreSQL gives the expected results of every .slt file (outside the records fenced
/// off as deliberate differences), which proves the expectations are PostgreSQL's.
#[test]
fn postgres_agrees_with_slt_files() {
    let server = common::Postgres::start();
    let rewrite = std::env::var_os("TESSERA_SLT_REWRITE").is_some();
    let mut failures = Vec::new();
    for (n, file) in slt_files().into_iter().enumerate() {
        let database = format!("slt_{n}");
        let mut admin = postgres::Client::connect(&server.url("postgres"), postgres::NoTls)
            .expect("connect to PostgreSQL");
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .expect("create database");
        let url = server.url(&database);
        let mut runner = Runner::new(move || {
            let url = url.clone();
            async move {
                let client = postgres::Client::connect(&url, postgres::NoTls)
                    .map_err(PostgresError::from)?;
                Ok(PostgresDb { client })
            }
        });
        runner.add_label("postgres");
        let outcome = if rewrite {
            futures::executor::block_on(runner.update_test_file(
                &file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            ))
            .map_err(|e| e.to_string())
            .and_then(|()| restore_sqlstate_records(&file))
        } else {
            runner.run_file(&file).map_err(|e| e.to_string())
        };
        if let Err(e) = outcome {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
