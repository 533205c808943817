//! Sessions: one client's settings and transaction state, and the dispatch of each
//! statement to what runs it.
//!
//! A statement is parsed, then dispatched: transaction control to [`block`], settings
//! to [`settings`], schema changes to [`ddl`], cluster administration to [`cluster`],
//! and queries and data changes to the planner and executor inside a transaction
//! (the block's, or an autocommit one). [`result`] is what comes back.

use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::sql::admin;
use crate::sql::ast::Statement;
use crate::sql::execution::interrupt::Interrupt;
use crate::sql::execution::{self, Change, Outcome};
use crate::sql::parser;
pub use crate::sql::planner::expression::Identity;
use crate::sql::planner::expression::ParameterTypes;
use crate::sql::planner::plan::Plan;
use crate::sql::planner::sequence::SequenceAccess;
use crate::sql::planner::{OutputColumn, Planner};
use crate::txn::Transaction;
use crate::types::{DataType, Value, TEXT};
use std::collections::BTreeMap;
use std::sync::Arc;

mod block;
mod cluster;
mod copy;
mod ddl;
mod result;
mod sequences;
mod settings;

pub use block::TransactionStatus;
pub use copy::CopyResult;
pub use result::{FromValue, QueryResult, Row};
use settings::parse_timeout;

/// A statement parsed once, to run many times with different parameters.
#[derive(Clone, Debug)]
pub struct PreparedStatement {
    statement: Statement,
}

/// What a statement takes and returns, known before it runs (the protocol's Describe).
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// Type of each `$n` parameter, by position; `None` where the statement does not
    /// decide it (the client may send text).
    pub parameters: Vec<Option<DataType>>,
    /// Result columns; empty for statements that return no rows.
    pub columns: Vec<OutputColumn>,
}

/// Called with (rows done, rows in all) while CREATE INDEX fills a new index.
pub type ProgressListener = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// One client's connection to a database.
pub struct Session {
    replica: Arc<Replica>,
    transaction: Option<Transaction>,
    failed: bool,
    settings: BTreeMap<String, String>,
    progress: Option<ProgressListener>,
    interrupt: Arc<Interrupt>,
    identity: Identity,
    defaults: BTreeMap<String, String>,
    /// The timestamp this session's next snapshot reads at or above: its last commit
    /// whose other shares may still be resolving (see `txn::coordinator`).
    read_after: std::cell::Cell<u64>,
    /// The open block's savepoints, oldest first; names may repeat (the newest wins).
    savepoints: Vec<block::BlockSavepoint>,
    /// The open block's DDL, applied at COMMIT (see [`ddl`]).
    schema_block: Option<ddl::SchemaBlock>,
    /// The session's sequences, for `nextval` and friends.
    sequences: SequenceAccess,
    /// A COPY FROM STDIN waiting for its data.
    copy_in: Option<copy::CopyIn>,
}

impl Session {
    pub(crate) fn new(replica: Arc<Replica>) -> Session {
        let sequences = SequenceAccess(Arc::new(sequences::SessionSequences::new(Arc::clone(
            &replica,
        ))));
        Session {
            sequences,
            replica,
            transaction: None,
            failed: false,
            settings: BTreeMap::new(),
            progress: None,
            interrupt: Arc::default(),
            identity: Identity::default(),
            defaults: BTreeMap::new(),
            read_after: std::cell::Cell::new(0),
            savepoints: Vec::new(),
            schema_block: None,
            copy_in: None,
        }
    }

    /// A handle that stops this session's running statement from another thread (the
    /// server's CancelRequest).
    pub fn interrupt_handle(&self) -> Arc<Interrupt> {
        Arc::clone(&self.interrupt)
    }

    /// Sets who this session runs as (the server's authenticated user and the database
    /// name the client asked for), answered by `current_user` and `current_database()`.
    pub fn set_identity(&mut self, identity: Identity) {
        self.identity = identity;
    }

    /// The current catalog (for the shell's `\d` and friends): inside a block that
    /// ran DDL, as the block's changes leave it.
    pub fn catalog(&self) -> Arc<crate::catalog::Catalog> {
        match &self.schema_block {
            Some(block) if self.ran_ddl_in_block() => block.catalog(),
            _ => self.replica.catalog(),
        }
    }

    /// Sets a listener told of CREATE INDEX progress (the shell draws a progress bar).
    pub fn set_progress_listener(&mut self, listener: Option<ProgressListener>) {
        self.progress = listener;
    }

    /// Runs every statement in `sql`, returning one result per statement. Stops at the
    /// first error; statements before it keep their effects.
    pub fn execute(&mut self, sql: &str) -> Result<Vec<QueryResult>> {
        self.execute_with_params(sql, &[])
    }

    /// Like [`Session::execute`], with values for `$1`, `$2`, ... placeholders.
    pub fn execute_with_params(&mut self, sql: &str, params: &[Value]) -> Result<Vec<QueryResult>> {
        let mut results = Vec::new();
        self.execute_each(sql, params, |result| results.push(result))?;
        Ok(results)
    }

    /// Runs every statement in `sql`, handing each result to `on_result` as soon as its
    /// statement completes (so a caller can print progress through a long script).
    pub fn execute_each(
        &mut self,
        sql: &str,
        params: &[Value],
        mut on_result: impl FnMut(QueryResult),
    ) -> Result<()> {
        let statements = parser::parse(sql)?;
        let copy_in = |s: &Statement| matches!(s, Statement::Copy(copy) if copy.direction == crate::sql::ast::CopyDirection::From);
        if statements.iter().rev().skip(1).any(copy_in) {
            return Err(Error::FeatureNotSupported(
                "COPY FROM STDIN followed by more statements in one query string; send \
                 them separately"
                    .into(),
            ));
        }
        for statement in statements {
            on_result(self.execute_statement(&statement, params)?);
        }
        Ok(())
    }

    /// Parses one statement for repeated execution.
    pub fn prepare(&self, sql: &str) -> Result<PreparedStatement> {
        let mut statements = parser::parse(sql)?;
        match statements.len() {
            1 => Ok(PreparedStatement {
                statement: statements.remove(0),
            }),
            n => Err(Error::Syntax {
                message: format!("cannot prepare {n} statements at once; give exactly one"),
                position: None,
            }),
        }
    }

    /// Describes a prepared statement: its parameter types, as the client `declared`
    /// them or else inferred from how each `$n` is used, and its result columns.
    /// Nothing is executed.
    ///
    /// On a cluster node the statement is described against the catalog this replica
    /// has applied, which needs no leader (so a `stale` read can be prepared on a node
    /// cut off from its leader: the wire protocol's parser has no session settings to
    /// go by). Only when that fails for want of a table or column, which DDL committed
    /// elsewhere may not have brought here yet, is a linearizable catalog fetched.
    pub fn describe(
        &self,
        prepared: &PreparedStatement,
        declared: &[Option<DataType>],
    ) -> Result<Description> {
        let local = self.replica.catalog();
        match self.describe_against(&local, prepared, declared) {
            Err(
                Error::UndefinedTable(_) | Error::UndefinedColumn(_) | Error::UndefinedObject(_),
            ) if self.replica.cluster().is_some() => {
                let fresh = self.fresh_catalog()?;
                self.describe_against(&fresh, prepared, declared)
            }
            described => described,
        }
    }

    fn describe_against(
        &self,
        catalog: &crate::catalog::Catalog,
        prepared: &PreparedStatement,
        declared: &[Option<DataType>],
    ) -> Result<Description> {
        let everything = |_: &crate::catalog::Index| true;
        let inferred = ParameterTypes::default();
        for (position, data_type) in declared.iter().enumerate() {
            if let Some(data_type) = data_type {
                inferred.record(position + 1, *data_type);
            }
        }
        let planner = Planner::describing(catalog, &everything, &inferred)
            .with_identity(&self.identity)
            .with_sequences(&self.sequences);
        let text_column = |name: &str| {
            vec![OutputColumn {
                name: name.to_string(),
                data_type: TEXT,
            }]
        };
        let columns = match &prepared.statement {
            Statement::Select(select) => planner.plan_select(select)?.1,
            Statement::Insert(insert) => planner.plan_insert(insert)?.1,
            Statement::Update(update) => planner.plan_update(update)?.1,
            Statement::Delete(delete) => planner.plan_delete(delete)?.1,
            Statement::Explain(inner) => {
                if let Statement::Select(select) = inner.as_ref() {
                    planner.plan_select(select)?;
                }
                text_column("QUERY PLAN")
            }
            Statement::Show { name } if name.eq_ignore_ascii_case("cluster") => {
                admin::status_table(&[]).0
            }
            Statement::Show { name } if name.eq_ignore_ascii_case("checksum") => {
                admin::checksum_columns()
            }
            Statement::Show { name } if name.eq_ignore_ascii_case("groups") => {
                admin::groups_table(&[], &[], &[]).0
            }
            Statement::Show { name } => text_column(&name.to_lowercase()),
            Statement::ShowShards { .. } => admin::shards_table(&[], &[]).0,
            Statement::AlterCluster(_) => admin::step_table(&[]).0,
            _ => Vec::new(),
        };
        Ok(Description {
            parameters: inferred.into_types(),
            columns,
        })
    }

    /// Runs a prepared statement with parameter values.
    pub fn execute_prepared(
        &mut self,
        prepared: &PreparedStatement,
        params: &[Value],
    ) -> Result<QueryResult> {
        self.execute_statement(&prepared.statement, params)
    }

    fn execute_statement(
        &mut self,
        statement: &Statement,
        params: &[Value],
    ) -> Result<QueryResult> {
        if self.copy_in.is_some() {
            return Err(Error::ObjectNotInPrerequisiteState(
                "a COPY FROM STDIN is waiting for its data; finish it first".into(),
            ));
        }
        let span = tracing::debug_span!("statement", kind = statement_name(statement));
        let _entered = span.enter();
        let timeout = parse_timeout(&self.setting("statement_timeout")).unwrap_or(None);
        self.interrupt.start_statement(timeout);
        let result = self.dispatch(statement, params);
        if let Err(error) = &result {
            tracing::debug!(sqlstate = error.sqlstate(), %error, "statement failed");
        }
        result
    }

    fn dispatch(&mut self, statement: &Statement, params: &[Value]) -> Result<QueryResult> {
        match statement {
            Statement::Begin => self.begin(),
            Statement::Commit => self.commit(),
            Statement::Rollback => Ok(self.rollback()),
            Statement::RollbackToSavepoint(name) => self.rollback_to_savepoint(name),
            _ if self.failed => Err(Error::TransactionAborted),
            Statement::Savepoint(name) => self.savepoint(name),
            Statement::ReleaseSavepoint(name) => self.release_savepoint(name),
            Statement::Set { name, value } => self.set(name, value.as_deref()),
            Statement::Show { name } => self.show(name),
            Statement::ShowShards { table } => self.show_shards(table.as_deref()),
            Statement::AlterCluster(change) => self.alter_cluster(change),
            Statement::Explain(inner) => self.explain(inner, params),
            Statement::Maintenance { command, tables } => self.maintenance(*command, tables),
            // In a block that changed data TRUNCATE deletes through the transaction, so
            // that it commits or rolls back with it (pgbench -i truncates and loads in
            // one block); in a block of DDL it is one of the block's schema changes.
            Statement::Truncate {
                names,
                restart_identity,
            } if self.transaction.is_some() && !self.ran_ddl_in_block() => {
                ddl::refuse_restart_identity(&self.replica.catalog(), names, *restart_identity)?;
                self.run_in_transaction(true, |session, txn| session.truncate_rows(names, txn))
            }
            ddl if ddl.is_ddl() => self.execute_ddl(ddl),
            after_ddl if self.ran_ddl_in_block() => {
                self.failed = true;
                Err(Error::FeatureNotSupported(format!(
                    "{} after a schema change in the same transaction block; commit the \
                     schema change first",
                    statement_name(after_ddl)
                )))
            }
            Statement::Copy(copy) => self.copy(copy),
            other => {
                let writes = matches!(
                    other,
                    Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
                );
                self.run_in_transaction(writes, |session, txn| {
                    session.execute_plan(other, params, txn)
                })
            }
        }
    }

    /// The catalog as fresh as the session's read consistency asks: in a cluster, a
    /// statement described or a DDL planned on one node sees DDL committed through
    /// any other node before it (a transaction gets the same by starting its snapshot).
    fn fresh_catalog(&self) -> Result<Arc<crate::catalog::Catalog>> {
        if self.replica.cluster().is_some() {
            self.replica.read_timestamp(self.read_level()?)?;
        }
        Ok(self.replica.catalog())
    }

    fn plan(
        &self,
        statement: &Statement,
        params: &[Value],
        txn: &Transaction,
    ) -> Result<(Plan, Vec<OutputColumn>)> {
        let catalog = self.replica.catalog();
        let usable = |index: &crate::catalog::Index| txn.can_use_index(index);
        let planner = Planner::new(&catalog, params, &usable)
            .with_identity(&self.identity)
            .with_sequences(&self.sequences);
        match statement {
            Statement::Select(select) => planner.plan_select(select),
            Statement::Insert(insert) => planner.plan_insert(insert),
            Statement::Update(update) => planner.plan_update(update),
            Statement::Delete(delete) => planner.plan_delete(delete),
            other => Err(Error::FeatureNotSupported(format!(
                "planning {}",
                statement_name(other)
            ))),
        }
    }

    fn execute_plan(
        &self,
        statement: &Statement,
        params: &[Value],
        txn: &mut Transaction,
    ) -> Result<QueryResult> {
        let (plan, columns) = self.plan(statement, params, txn)?;
        let outcome = execution::execute(&plan, txn, &self.replica, &self.interrupt)?;
        Ok(query_result(outcome, columns))
    }

    fn explain(&mut self, statement: &Statement, params: &[Value]) -> Result<QueryResult> {
        if statement.is_ddl()
            || !matches!(
                statement,
                Statement::Select(_)
                    | Statement::Insert(_)
                    | Statement::Update(_)
                    | Statement::Delete(_)
            )
        {
            return Err(Error::FeatureNotSupported(format!(
                "EXPLAIN of {}",
                statement_name(statement)
            )));
        }
        let consistency = self.setting("read_consistency");
        self.run_in_transaction(false, |session, txn| {
            let (plan, _) = session.plan(statement, params, txn)?;
            let mut lines = plan.explain();
            lines.push(format!("Read Consistency: {consistency}"));
            let rows = lines
                .into_iter()
                .map(|line| vec![Value::Text(line)])
                .collect::<Vec<_>>();
            let mut result = QueryResult::rows(
                vec![OutputColumn {
                    name: "QUERY PLAN".into(),
                    data_type: TEXT,
                }],
                rows,
            );
            result.tag = "EXPLAIN".into();
            Ok(result)
        })
    }
}

/// The client's answer to an executed plan.
fn query_result(outcome: Outcome, columns: Vec<OutputColumn>) -> QueryResult {
    match outcome {
        Outcome::Rows(rows) => QueryResult::rows(columns, rows),
        Outcome::Written {
            change,
            count,
            returned,
        } => {
            let tag = match change {
                Change::Insert => format!("INSERT 0 {count}"),
                Change::Update => format!("UPDATE {count}"),
                Change::Delete => format!("DELETE {count}"),
            };
            let mut result = match returned {
                // Rows, as a query's, under the data change's own tag.
                Some(rows) => QueryResult::rows(columns, rows),
                None => QueryResult::command(""),
            };
            result.tag = tag;
            result.affected = Some(count);
            result
        }
    }
}

/// The command-tag word(s) of a statement: `INSERT`, `CREATE TABLE`, ...
pub fn statement_name(statement: &Statement) -> &'static str {
    match statement {
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::DropTable { .. } => "DROP TABLE",
        Statement::Truncate { .. } => "TRUNCATE TABLE",
        Statement::Maintenance {
            command: crate::sql::ast::Maintenance::Vacuum,
            ..
        } => "VACUUM",
        Statement::Maintenance {
            command: crate::sql::ast::Maintenance::Analyze,
            ..
        } => "ANALYZE",
        Statement::CreateIndex { .. } => "CREATE INDEX",
        Statement::DropIndex { .. } => "DROP INDEX",
        Statement::CreateSequence { .. } => "CREATE SEQUENCE",
        Statement::AlterSequence { .. } => "ALTER SEQUENCE",
        Statement::DropSequence { .. } => "DROP SEQUENCE",
        Statement::Begin => "BEGIN",
        Statement::Commit => "COMMIT",
        Statement::Rollback => "ROLLBACK",
        Statement::Savepoint(_) => "SAVEPOINT",
        Statement::RollbackToSavepoint(_) => "ROLLBACK",
        Statement::ReleaseSavepoint(_) => "RELEASE",
        Statement::Set { .. } => "SET",
        Statement::Show { .. } | Statement::ShowShards { .. } => "SHOW",
        Statement::AlterCluster(_) => "ALTER CLUSTER",
        Statement::Explain(_) => "EXPLAIN",
        Statement::Select(_) => "SELECT",
        Statement::Insert(_) => "INSERT",
        Statement::Update(_) => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Copy(_) => "COPY",
    }
}

/// Whether a statement's failure could come from planning against a catalog older than
/// the cluster's (a table, column or object created meanwhile elsewhere), so that it
/// is worth running again on a snapshot whose rounds bring the catalog up to date.
fn may_be_an_older_catalog(error: &Error) -> bool {
    matches!(
        error,
        Error::UndefinedTable(_) | Error::UndefinedColumn(_) | Error::UndefinedObject(_)
    )
}
