//! What the shell runs statements on: an embedded [`Session`], or a Tessera (or any
//! PostgreSQL) server reached over the wire with `tessera shell --connect URL`.
//!
//! Both give the shell the same [`QueryResult`]s, so output formats, meta-commands and
//! error reports are identical either way. The remote side uses the `postgres` crate's
//! extended protocol: each statement is prepared (which yields its result columns and
//! their types, needed to align numbers as psql does) and then run with binary results,
//! decoded into Tessera values and printed by the same code as embedded results.
//!
//! Trade-off: the postgres crate hides the server's command tag and transaction status,
//! so the remote backend rebuilds the tag from the statement (parsed locally with the
//! same parser the server uses) and the row count, and tracks the transaction status
//! from the statements it ran. It connects without TLS for now.

use crate::error::{Error, RemoteError, Result};
use crate::session::{QueryResult, Row, Session, TransactionStatus};
use crate::shell::splitter::StatementSplitter;
use crate::sql::planner::OutputColumn;
use crate::types::{DataType, ElementType, Value, TEXT};
use postgres::types::Type;
use std::sync::{Arc, Mutex};

/// Something the shell can run SQL on.
pub trait Backend {
    /// Runs every statement in `sql`, handing each result to `on_result` as it completes;
    /// stops at the first error.
    fn execute_each(&mut self, sql: &str, on_result: &mut dyn FnMut(QueryResult)) -> Result<()>;
    /// Where the connection stands with respect to transactions (for the prompt).
    fn transaction_status(&self) -> TransactionStatus;
    /// The nodes' controls, when the backend runs a local cluster (`tessera demo`).
    fn node_control(&mut self) -> Option<&mut dyn super::demo::NodeControl> {
        None
    }
    /// Whether a COPY FROM STDIN waits for its data (see [`Backend::copy_data`]).
    fn copy_in_progress(&self) -> bool {
        false
    }
    /// Sends the next chunk of a COPY FROM STDIN's data.
    fn copy_data(&mut self, _data: &[u8]) -> Result<()> {
        Err(copy_not_offered())
    }
    /// Ends a COPY FROM STDIN's data; returns its `COPY n`.
    fn copy_done(&mut self) -> Result<QueryResult> {
        Err(copy_not_offered())
    }
}

fn copy_not_offered() -> Error {
    Error::FeatureNotSupported("COPY FROM STDIN is not supported by this connection".into())
}

impl Backend for Session {
    fn execute_each(&mut self, sql: &str, on_result: &mut dyn FnMut(QueryResult)) -> Result<()> {
        Session::execute_each(self, sql, &[], on_result)
    }

    fn copy_in_progress(&self) -> bool {
        Session::copy_in_progress(self)
    }

    fn copy_data(&mut self, data: &[u8]) -> Result<()> {
        Session::copy_data(self, data)
    }

    fn copy_done(&mut self) -> Result<QueryResult> {
        Session::copy_done(self)
    }

    fn transaction_status(&self) -> TransactionStatus {
        Session::transaction_status(self)
    }
}

/// A connection to a server.
pub struct Remote {
    client: postgres::Client,
    status: TransactionStatus,
    notices: Arc<Mutex<Vec<String>>>,
}

/// A server's error (or a connection failure) as a Tessera error with its SQLSTATE.
fn remote_error(error: postgres::Error) -> Error {
    match error.as_db_error() {
        Some(db) => {
            let remote = Error::Remote(Box::new(RemoteError {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
                position: match db.position() {
                    Some(postgres::error::ErrorPosition::Original(p)) => Some(*p),
                    _ => None,
                },
            }));
            match db.where_() {
                Some(context) => remote.with_context(context),
                None => remote,
            }
        }
        // Not from the server: the connection failed (08006, connection_failure). The
        // causes say why ("error performing TLS handshake" alone does not).
        None => Error::Remote(Box::new(RemoteError {
            code: "08006".into(),
            message: with_causes(&error),
            detail: None,
            hint: None,
            position: None,
        })),
    }
}

/// An error's message followed by those of its causes.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

impl Remote {
    /// Connects to `url` (`postgres://user[:password]@host:port/db` or libpq's
    /// `key=value` form). Without a password in the URL, `PGPASSWORD` is used; failing
    /// that, a terminal is asked, if the server wants one.
    pub fn connect(url: &str) -> Result<Remote> {
        let (rest, tls_options) = super::tls::split_tls_options(url)?;
        let mut config: postgres::Config = rest.parse().map_err(|e| {
            Error::InvalidParameterValue(format!("invalid connection URL \"{url}\": {e}"))
        })?;
        config.ssl_mode(tls_options.mode.negotiation());
        let tls = super::tls::connector(&tls_options)?;
        if config.get_password().is_none() {
            if let Ok(password) = std::env::var("PGPASSWORD") {
                config.password(password);
            }
        }
        let notices: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&notices);
        config.notice_callback(move |notice| {
            if let Ok(mut notices) = sink.lock() {
                notices.push(notice.message().to_string());
            }
        });
        let client = match config.connect(tls.clone()) {
            Err(e) if e.to_string().contains("password missing") && is_terminal() => {
                let password = rpassword::prompt_password("Password: ")
                    .map_err(|e| Error::Io(format!("cannot read the password: {e}")))?;
                config.password(password);
                config.connect(tls).map_err(remote_error)?
            }
            other => other.map_err(remote_error)?,
        };
        Ok(Remote {
            client,
            status: TransactionStatus::Idle,
            notices,
        })
    }

    fn run_one(&mut self, sql: &str) -> Result<QueryResult> {
        let statement = self.client.prepare(sql).map_err(remote_error)?;
        let mut result = if statement.columns().is_empty() {
            let count = self.client.execute(&statement, &[]).map_err(remote_error)?;
            command_result(sql, count)
        } else {
            let rows = self.client.query(&statement, &[]).map_err(remote_error)?;
            rows_result(&statement, &rows)?
        };
        if let Ok(mut notices) = self.notices.lock() {
            result.notices.append(&mut notices);
        }
        Ok(result)
    }

    fn track(&mut self, outcome: &Result<QueryResult>) {
        self.status = match outcome {
            Ok(result) => match result.tag.as_str() {
                "BEGIN" => TransactionStatus::InTransaction,
                "COMMIT" | "ROLLBACK" => TransactionStatus::Idle,
                _ => self.status,
            },
            Err(_) if self.status == TransactionStatus::Idle => TransactionStatus::Idle,
            Err(_) => TransactionStatus::Failed,
        };
    }
}

fn is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

impl Backend for Remote {
    fn execute_each(&mut self, sql: &str, on_result: &mut dyn FnMut(QueryResult)) -> Result<()> {
        let mut splitter = StatementSplitter::new();
        let mut statements = splitter.push(sql);
        statements.extend(splitter.take_rest());
        for statement in statements {
            let outcome = self.run_one(&statement);
            self.track(&outcome);
            on_result(outcome?);
        }
        Ok(())
    }

    fn transaction_status(&self) -> TransactionStatus {
        self.status
    }
}

/// The command tag PostgreSQL would have sent for a statement that returns no rows.
fn command_result(sql: &str, count: u64) -> QueryResult {
    let name = crate::sql::parser::parse(sql)
        .ok()
        .and_then(|statements| statements.first().map(crate::session::statement_name))
        .map(str::to_string)
        .unwrap_or_else(|| {
            sql.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_uppercase()
        });
    let (tag, affected) = match name.as_str() {
        "INSERT" => (format!("INSERT 0 {count}"), Some(count)),
        "UPDATE" | "DELETE" => (format!("{name} {count}"), Some(count)),
        _ => (name, None),
    };
    let mut result = QueryResult::command(tag);
    result.affected = affected;
    result
}

fn rows_result(statement: &postgres::Statement, rows: &[postgres::Row]) -> Result<QueryResult> {
    let columns: Vec<OutputColumn> = statement
        .columns()
        .iter()
        .map(|c| OutputColumn {
            name: c.name().to_string(),
            data_type: crate::server::wire::data_type_of(c.type_()).unwrap_or(TEXT),
        })
        .collect();
    let mut values = Vec::with_capacity(rows.len());
    for row in rows {
        let decoded = (0..columns.len())
            .map(|i| decode(row, i))
            .collect::<Result<Vec<_>>>()?;
        values.push(decoded);
    }
    let mut result = QueryResult::rows(columns, values);
    result.tag = format!("SELECT {}", rows.len());
    Ok(result)
}

fn decode(row: &postgres::Row, index: usize) -> Result<Value> {
    fn get<'a, T: postgres::types::FromSql<'a>>(
        row: &'a postgres::Row,
        index: usize,
    ) -> Result<Option<T>> {
        row.try_get(index).map_err(remote_error)
    }
    let data_type = row.columns()[index].type_();
    let value = match crate::server::wire::data_type_of(data_type) {
        Some(DataType::Boolean) => get::<bool>(row, index)?.map(Value::Boolean),
        Some(DataType::SmallInt) => get::<i16>(row, index)?.map(Value::SmallInt),
        Some(DataType::Integer) => get::<i32>(row, index)?.map(Value::Integer),
        Some(DataType::BigInt) => get::<i64>(row, index)?.map(Value::BigInt),
        Some(DataType::Real) => get::<f32>(row, index)?.map(Value::Real),
        Some(DataType::Double) => get::<f64>(row, index)?.map(Value::Double),
        Some(DataType::Bytea) => get::<Vec<u8>>(row, index)?.map(Value::Bytea),
        Some(DataType::Text { .. }) => get::<String>(row, index)?.map(Value::Text),
        Some(DataType::Array(element)) => decode_array(row, index, element)?,
        None if *data_type == Type::OID => get::<u32>(row, index)?.map(|o| Value::BigInt(o.into())),
        None => {
            return Err(Error::FeatureNotSupported(format!(
                "the shell cannot show values of type {data_type}"
            )))
        }
    };
    Ok(value.unwrap_or(Value::Null))
}

fn decode_array(row: &postgres::Row, index: usize, element: ElementType) -> Result<Option<Value>> {
    fn items<'a, T: postgres::types::FromSql<'a>>(
        row: &'a postgres::Row,
        index: usize,
        to_value: impl Fn(T) -> Value,
    ) -> Result<Option<Vec<Value>>> {
        let items: Option<Vec<Option<T>>> = row.try_get(index).map_err(remote_error)?;
        Ok(items.map(|items| {
            items
                .into_iter()
                .map(|item| item.map_or(Value::Null, &to_value))
                .collect()
        }))
    }
    let items = match element {
        ElementType::Boolean => items(row, index, Value::Boolean)?,
        ElementType::SmallInt => items(row, index, Value::SmallInt)?,
        ElementType::Integer => items(row, index, Value::Integer)?,
        ElementType::BigInt => items(row, index, Value::BigInt)?,
        ElementType::Real => items(row, index, Value::Real)?,
        ElementType::Double => items(row, index, Value::Double)?,
        ElementType::Text => items(row, index, Value::Text)?,
        ElementType::Bytea => items(row, index, Value::Bytea)?,
    };
    Ok(items.map(|items| Value::Array { element, items }))
}

/// Rows of a query run for a meta-command, as text cells.
pub fn query_text(backend: &mut dyn Backend, sql: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    backend.execute_each(sql, &mut |result| {
        rows.extend(result.rows.iter().map(|row: &Row| {
            row.values()
                .iter()
                .map(|v| {
                    if v.is_null() {
                        String::new()
                    } else {
                        v.to_string()
                    }
                })
                .collect()
        }));
    })?;
    Ok(rows)
}
