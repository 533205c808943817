//! COPY in a session: `COPY ... FROM STDIN` loads a stream of text or CSV data into a
//! table, `COPY ... TO STDOUT` writes a table's or query's rows out.
//!
//! COPY FROM is a conversation: the statement opens it ([`CopyResult::WaitingForData`]),
//! the client sends data in chunks of any size ([`Session::copy_data`]), and ends with
//! [`Session::copy_done`] or [`Session::copy_fail`]. Each chunk is parsed as it arrives
//! and its whole records are inserted at once, so only the record being assembled is
//! held as text. The rows go into one transaction — the block's, or one of COPY's own —
//! so a bad record fails the whole COPY, names its line, and loads nothing; in a block
//! the block then fails, as after any failed statement.
//!
//! Trade-off: the transaction buffers its writes until COMMIT (see `txn`), so a COPY
//! holds its rows in memory until then, as a multi-row INSERT does; the wire data,
//! however large, is never held whole.

use super::{QueryResult, Session};
use crate::catalog::Column;
use crate::error::{Error, Result};
use crate::sql::ast::{Copy, CopyDirection, CopyRelation, Statement};
use crate::sql::copy::reader::{field_context, RecordReader};
use crate::sql::copy::writer::RecordWriter;
use crate::sql::copy::CopyFormat;
use crate::sql::execution::copy::{field_value, insert_row};
use crate::sql::parser;
use crate::sql::planner::plan::CopyTarget;
use crate::sql::planner::Planner;
use crate::txn::{Savepoint, Transaction};
use std::io::Read;

/// Records inserted between checks for a cancel request or the statement timeout.
const CHECK_EVERY: u64 = 1024;
/// Bytes read at a time by [`Session::copy_from`].
const READ_CHUNK: usize = 64 << 10;

/// What a COPY hands to its client.
#[derive(Clone, Debug, PartialEq)]
pub enum CopyResult {
    /// COPY FROM STDIN waits for its data: send it with [`Session::copy_data`], then
    /// end with [`Session::copy_done`] (or [`Session::copy_fail`]).
    WaitingForData {
        /// Fields per record.
        columns: usize,
        /// The data's format.
        format: CopyFormat,
    },
    /// COPY TO STDOUT's data, one line per row (a header line first when asked for),
    /// each ending in a newline.
    Data {
        /// Fields per line.
        columns: usize,
        /// The data's format.
        format: CopyFormat,
        /// The lines.
        lines: Vec<String>,
    },
}

/// A COPY FROM STDIN under way.
pub(super) struct CopyIn {
    target: CopyTarget,
    /// The target columns, in the order of each record's fields.
    columns: Vec<Column>,
    relation: String,
    reader: RecordReader,
    rows: u64,
    load: Load,
}

/// Which transaction a COPY FROM loads into.
enum Load {
    /// Its own, committed by `copy_done` (autocommit).
    Own(Box<Transaction>),
    /// The open block's, which stood at this savepoint before the COPY.
    Block(Savepoint),
}

impl Session {
    /// Whether a COPY FROM STDIN is waiting for data.
    pub fn copy_in_progress(&self) -> bool {
        self.copy_in.is_some()
    }

    /// Runs a COPY statement: TO STDOUT answers at once; FROM STDIN opens the
    /// conversation.
    pub(super) fn copy(&mut self, copy: &Copy) -> Result<QueryResult> {
        match copy.direction {
            CopyDirection::To => self.copy_to(copy),
            CopyDirection::From => self.start_copy_in(copy),
        }
    }

    fn start_copy_in(&mut self, copy: &Copy) -> Result<QueryResult> {
        let CopyRelation::Table { name, columns } = &copy.relation else {
            return Err(Error::Internal(
                "COPY FROM a query passed the parser".into(),
            ));
        };
        let load = match self.transaction.as_mut() {
            Some(txn) => {
                // The data cannot be read twice, so the snapshot is confirmed first
                // rather than the statement run again on a confirmed one.
                let confirmed = if txn.is_unconfirmed() {
                    txn.confirm()
                } else {
                    Ok(())
                };
                if let Err(error) = confirmed {
                    self.failed = true;
                    return Err(error);
                }
                Load::Block(txn.savepoint())
            }
            None => Load::Own(Box::new(self.begin_transaction()?)),
        };
        let planned = self.plan_copy_in(copy, name, columns.as_deref());
        let (target, columns, reader) = match planned {
            Ok(planned) => planned,
            Err(error) => {
                self.failed |= matches!(load, Load::Block(_));
                return Err(error);
            }
        };
        let result = CopyResult::WaitingForData {
            columns: columns.len(),
            format: copy.options.format,
        };
        self.copy_in = Some(CopyIn {
            relation: target.table.name.clone(),
            target,
            columns,
            reader,
            rows: 0,
            load,
        });
        let mut answer = QueryResult::command("COPY");
        answer.copy = Some(result);
        Ok(answer)
    }

    /// Where COPY FROM's rows go, the target columns, and the reader of its data.
    fn plan_copy_in(
        &self,
        copy: &Copy,
        name: &str,
        columns: Option<&[String]>,
    ) -> Result<(CopyTarget, Vec<Column>, RecordReader)> {
        let catalog = self.replica.catalog();
        let usable = |_: &crate::catalog::Index| true;
        let target = Planner::new(&catalog, &[], &usable)
            .with_identity(&self.identity)
            .with_sequences(&self.sequences)
            .plan_copy_target(name, columns)?;
        let columns: Vec<Column> = target
            .targets
            .iter()
            .map(|&position| target.table.columns[position].clone())
            .collect();
        let names = columns.iter().map(|c| c.name.clone()).collect();
        let reader = RecordReader::new(copy.options.clone(), &target.table.name, names)?;
        Ok((target, columns, reader))
    }

    /// Takes the next chunk of COPY FROM data (any size, records may span chunks) and
    /// inserts its whole records. An error ends the COPY: nothing it loaded stays, and
    /// later data and the end of data are the client's to stop sending.
    pub fn copy_data(&mut self, data: &[u8]) -> Result<()> {
        let Some(mut copy) = self.copy_in.take() else {
            return Err(no_copy_in_progress());
        };
        copy.reader.push(data);
        match self.load_records(&mut copy, false) {
            Ok(()) => {
                self.copy_in = Some(copy);
                Ok(())
            }
            Err(error) => Err(self.abandon(copy, error)),
        }
    }

    /// Ends COPY FROM's data: the last record is loaded and, outside a block, the
    /// transaction commits. Returns the `COPY n` result.
    pub fn copy_done(&mut self) -> Result<QueryResult> {
        let Some(mut copy) = self.copy_in.take() else {
            return Err(no_copy_in_progress());
        };
        if let Err(error) = self.load_records(&mut copy, true) {
            return Err(self.abandon(copy, error));
        }
        if let Load::Own(txn) = copy.load {
            self.finish(*txn)?;
        }
        let mut result = QueryResult::command(format!("COPY {}", copy.rows));
        result.affected = Some(copy.rows);
        Ok(result)
    }

    /// The client gave up on COPY FROM (the protocol's CopyFail): nothing is loaded.
    /// Returns the error PostgreSQL reports for it.
    pub fn copy_fail(&mut self, message: &str) -> Error {
        let error = Error::QueryCanceled(format!("COPY from stdin failed: {message}"));
        match self.copy_in.take() {
            Some(copy) => self.abandon(copy, error),
            None => error,
        }
    }

    /// Runs a `COPY ... FROM STDIN` statement with its data read from `data` (the
    /// embedded API's and the shell's way in).
    pub fn copy_from(&mut self, sql: &str, mut data: impl Read) -> Result<QueryResult> {
        let mut statements = parser::parse(sql)?;
        let statement = match statements.as_slice() {
            [Statement::Copy(copy)] if copy.direction == CopyDirection::From => {
                statements.remove(0)
            }
            _ => {
                return Err(Error::InvalidParameterValue(
                    "copy_from takes exactly one COPY ... FROM STDIN statement".into(),
                ))
            }
        };
        self.execute_statement(&statement, &[])?;
        let mut buffer = vec![0; READ_CHUNK];
        loop {
            let read = match data.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.copy_fail(&error.to_string())),
            };
            self.copy_data(&buffer[..read])?;
        }
        self.copy_done()
    }

    /// Inserts every whole record the reader holds (with `at_end`, the last one too).
    fn load_records(&mut self, copy: &mut CopyIn, at_end: bool) -> Result<()> {
        while let Some(record) = copy.reader.next_record(at_end)? {
            let mut values = Vec::with_capacity(record.fields.len());
            for (column, field) in copy.columns.iter().zip(record.fields.iter().cloned()) {
                let shown = field.clone().unwrap_or_default();
                let value = field_value(column, field).map_err(|error| {
                    error.with_context(field_context(
                        &copy.relation,
                        record.line,
                        &column.name,
                        &shown,
                    ))
                })?;
                values.push(value);
            }
            let inserted = match &mut copy.load {
                Load::Own(txn) => {
                    insert_row(&copy.target, values, txn, &self.replica, &self.interrupt)
                }
                Load::Block(_) => match self.transaction.as_mut() {
                    Some(txn) => {
                        insert_row(&copy.target, values, txn, &self.replica, &self.interrupt)
                    }
                    None => Err(Error::Internal(
                        "a COPY in a block lost the block's transaction".into(),
                    )),
                },
            };
            inserted.map_err(|error| {
                // PostgreSQL finds key conflicts once the record's text is gone, and
                // names only its line.
                let context = match error {
                    Error::UniqueViolation { .. } => record.line_context(&copy.relation),
                    _ => record.context(&copy.relation),
                };
                error.with_context(context)
            })?;
            copy.rows += 1;
            if copy.rows.is_multiple_of(CHECK_EVERY) {
                self.interrupt.check()?;
            }
        }
        Ok(())
    }

    /// Ends a failed COPY FROM: its rows are undone (its own transaction dropped, or
    /// the block rolled back to before it and failed). Returns `error`.
    fn abandon(&mut self, copy: CopyIn, error: Error) -> Error {
        if let Load::Block(savepoint) = copy.load {
            if let Some(txn) = self.transaction.as_mut() {
                txn.rollback_to(savepoint);
            }
            self.failed = true;
        }
        error
    }

    /// COPY TO STDOUT: the rows of a table (its columns, or those named) or a query,
    /// as lines of text or CSV.
    fn copy_to(&mut self, copy: &Copy) -> Result<QueryResult> {
        let select = match &copy.relation {
            CopyRelation::Query(select) => Statement::Select(select.clone()),
            CopyRelation::Table { name, columns } => table_query(name, columns.as_deref())?,
        };
        let result = self.run_in_transaction(false, |session, txn| {
            session.execute_plan(&select, &[], txn)
        })?;
        let names: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
        let writer = RecordWriter::new(copy.options.clone(), &names);
        let mut lines = Vec::with_capacity(result.rows.len() + 1);
        lines.extend(writer.header(&names));
        lines.extend(result.rows.iter().map(|row| writer.row(row.values())));
        let count = result.rows.len() as u64;
        let mut answer = QueryResult::command(format!("COPY {count}"));
        answer.affected = Some(count);
        answer.copy = Some(CopyResult::Data {
            columns: names.len(),
            format: copy.options.format,
            lines,
        });
        Ok(answer)
    }
}

/// `SELECT columns FROM table`, identifiers quoted so any name survives.
fn table_query(table: &str, columns: Option<&[String]>) -> Result<Statement> {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let list = match columns {
        None => "*".to_string(),
        Some(names) => names
            .iter()
            .map(|n| quote(n))
            .collect::<Vec<_>>()
            .join(", "),
    };
    // System views keep their schema (`information_schema.tables`).
    let relation = table.split('.').map(quote).collect::<Vec<_>>().join(".");
    let sql = format!("SELECT {list} FROM {relation}");
    let mut statements = parser::parse(&sql)?;
    match statements.pop() {
        Some(statement) if statements.is_empty() => Ok(statement),
        _ => Err(Error::Internal(
            "a COPY TO query did not parse as one statement".into(),
        )),
    }
}

fn no_copy_in_progress() -> Error {
    Error::ObjectNotInPrerequisiteState("no COPY FROM STDIN is in progress".into())
}
