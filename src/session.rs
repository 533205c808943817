//! Sessions: one client's settings and transaction state.
//!
//! Outside a transaction block every statement runs in its own transaction
//! (autocommit). Inside one (BEGIN ... COMMIT) statements share a snapshot; a statement
//! that fails is undone whole and puts the block into the failed state, where, as in
//! PostgreSQL, only ROLLBACK (or COMMIT, which then rolls back) is accepted. Schema
//! changes commit on their own and are refused inside a transaction block.

use crate::error::{Error, Result};
use crate::replica::{ReadLevel, Replica};
use crate::sql::admin;
use crate::sql::ast::{ClusterChange, Statement};
use crate::sql::execution::interrupt::Interrupt;
use crate::sql::execution::{self, Outcome};
use crate::sql::parser;
pub use crate::sql::planner::expression::Identity;
use crate::sql::planner::expression::ParameterTypes;
use crate::sql::planner::plan::Plan;
use crate::sql::planner::{OutputColumn, Planner};
use crate::state_machine::{Applied, Operation};
use crate::txn::Transaction;
use crate::types::{DataType, Value, TEXT};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where a session stands with respect to transactions (PostgreSQL's ReadyForQuery
/// status: idle, in a block, or in a failed block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionStatus {
    /// No transaction block.
    Idle,
    /// Inside BEGIN ... COMMIT.
    InTransaction,
    /// Inside a block where a statement failed; only ROLLBACK is accepted.
    Failed,
}

/// One row of a result.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Wraps values as a row.
    pub fn new(values: Vec<Value>) -> Row {
        Row { values }
    }

    /// The value in column `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// The value in column `index` converted to a Rust type; an error names the mismatch.
    pub fn try_get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = self
            .values
            .get(index)
            .ok_or_else(|| Error::InvalidParameterValue(format!("row has no column {index}")))?;
        T::from_value(value)
    }

    /// Every value, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values out of the row.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

/// Conversion from a SQL value to a Rust type, for [`Row::try_get`].
pub trait FromValue: Sized {
    /// Converts, or fails with 42804 when the value's type does not fit.
    fn from_value(value: &Value) -> Result<Self>;
}

fn mismatch(value: &Value, wanted: &str) -> Error {
    let found = value
        .data_type()
        .map(|t| t.sql_name())
        .unwrap_or_else(|| "NULL".into());
    Error::DatatypeMismatch(format!("cannot read a {found} value as {wanted}"))
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self> {
        value.as_i64().ok_or_else(|| mismatch(value, "i64"))
    }
}
impl FromValue for i32 {
    fn from_value(value: &Value) -> Result<Self> {
        value
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| mismatch(value, "i32"))
    }
}
impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self> {
        value.as_f64().ok_or_else(|| mismatch(value, "f64"))
    }
}
impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self> {
        value.as_bool().ok_or_else(|| mismatch(value, "bool"))
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self> {
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| mismatch(value, "String"))
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Bytea(bytes) => Ok(bytes.clone()),
            other => Err(mismatch(other, "Vec<u8>")),
        }
    }
}
impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self> {
        Ok(value.clone())
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self> {
        if value.is_null() {
            Ok(None)
        } else {
            T::from_value(value).map(Some)
        }
    }
}

/// The result of one statement.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// PostgreSQL's command tag: `SELECT 3`, `INSERT 0 1`, `BEGIN`, ...
    pub tag: String,
    /// Result columns; empty for statements that return no rows.
    pub columns: Vec<OutputColumn>,
    /// Result rows.
    pub rows: Vec<Row>,
    /// Whether the statement returns rows (a query), even if there are none.
    pub returns_rows: bool,
    /// Rows inserted, updated or deleted, for data-changing statements.
    pub affected: Option<u64>,
    /// Notices, such as "relation already exists, skipping".
    pub notices: Vec<String>,
}

impl QueryResult {
    /// A result with only a command tag (`CREATE TABLE`, `BEGIN`).
    pub fn command(tag: impl Into<String>) -> QueryResult {
        QueryResult {
            tag: tag.into(),
            columns: Vec::new(),
            rows: Vec::new(),
            returns_rows: false,
            affected: None,
            notices: Vec::new(),
        }
    }

    fn with_notice(mut self, notice: Option<String>) -> QueryResult {
        self.notices.extend(notice);
        self
    }

    /// A result with rows, tagged `SELECT n`.
    pub fn rows(columns: Vec<OutputColumn>, rows: Vec<Vec<Value>>) -> QueryResult {
        QueryResult {
            tag: format!("SELECT {}", rows.len()),
            columns,
            rows: rows.into_iter().map(Row::new).collect(),
            returns_rows: true,
            affected: None,
            notices: Vec::new(),
        }
    }
}

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

/// Settings a session accepts, with their defaults. Unknown names are errors (42704),
/// so a typo is not silently ignored.
const SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("idle_session_timeout", "0"),
    ("intervalstyle", "postgres"),
    ("max_staleness", "0"),
    ("read_consistency", "linearizable"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", "15.0 (Tessera 0.1.0)"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "repeatable read"),
];

/// Settings that SHOW reports but SET may not change.
const READ_ONLY_SETTINGS: &[&str] = &["server_encoding", "server_version", "transaction_isolation"];

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
}

impl Session {
    pub(crate) fn new(replica: Arc<Replica>) -> Session {
        Session {
            replica,
            transaction: None,
            failed: false,
            settings: BTreeMap::new(),
            progress: None,
            interrupt: Arc::default(),
            identity: Identity::default(),
            defaults: BTreeMap::new(),
            read_after: std::cell::Cell::new(0),
        }
    }

    /// Commits `txn` and remembers where the session's next snapshot must read.
    fn finish(&self, txn: Transaction) -> Result<()> {
        let read_after = txn.commit()?;
        self.read_after.set(self.read_after.get().max(read_after));
        Ok(())
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

    /// Replaces a setting's built-in default for this session (the server's config file
    /// sets `statement_timeout` and the idle timeouts this way); `RESET` returns to it.
    pub fn set_default(&mut self, name: &str, value: &str) -> Result<()> {
        let name = name.to_lowercase();
        if !SETTINGS.iter().any(|(n, _)| *n == name) || READ_ONLY_SETTINGS.contains(&name.as_str())
        {
            return Err(Error::UnknownSetting(name));
        }
        let value = validate_setting(&name, value)?;
        self.defaults.insert(name, value);
        Ok(())
    }

    /// A timeout setting (`statement_timeout`, `idle_session_timeout`,
    /// `idle_in_transaction_session_timeout`) as a duration; `None` when it is off.
    pub fn timeout(&self, name: &str) -> Option<std::time::Duration> {
        parse_timeout(&self.setting(name)).unwrap_or(None)
    }

    /// Where the session stands with respect to transactions.
    pub fn transaction_status(&self) -> TransactionStatus {
        match (&self.transaction, self.failed) {
            (_, true) => TransactionStatus::Failed,
            (Some(_), false) => TransactionStatus::InTransaction,
            (None, false) => TransactionStatus::Idle,
        }
    }

    /// The current catalog (for the shell's `\d` and friends).
    pub fn catalog(&self) -> Arc<crate::catalog::Catalog> {
        self.replica.catalog()
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
        for statement in parser::parse(sql)? {
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
        let planner =
            Planner::describing(catalog, &everything, &inferred).with_identity(&self.identity);
        let text_column = |name: &str| {
            vec![OutputColumn {
                name: name.to_string(),
                data_type: TEXT,
            }]
        };
        let columns = match &prepared.statement {
            Statement::Select(select) => planner.plan_select(select)?.1,
            Statement::Insert(insert) => {
                planner.plan_insert(insert)?;
                Vec::new()
            }
            Statement::Update {
                table,
                assignments,
                filter,
            } => {
                planner.plan_update(table, assignments, filter.as_ref())?;
                Vec::new()
            }
            Statement::Delete { table, filter } => {
                planner.plan_delete(table, filter.as_ref())?;
                Vec::new()
            }
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
            _ if self.failed => Err(Error::TransactionAborted),
            Statement::Set { name, value } => self.set(name, value.as_deref()),
            Statement::Show { name } => self.show(name),
            Statement::ShowShards { table } => self.show_shards(table.as_deref()),
            Statement::AlterCluster(change) => self.alter_cluster(change),
            Statement::Explain(inner) => self.explain(inner, params),
            ddl if ddl.is_ddl() => {
                if self.transaction.is_some() {
                    self.failed = true;
                    return Err(Error::ActiveTransaction(format!(
                        "{} cannot run inside a transaction block",
                        statement_name(ddl)
                    )));
                }
                self.execute_ddl(ddl)
            }
            other => {
                let writes = matches!(
                    other,
                    Statement::Insert(_) | Statement::Update { .. } | Statement::Delete { .. }
                );
                self.run_in_transaction(writes, |session, txn| {
                    session.execute_plan(other, params, txn)
                })
            }
        }
    }

    fn begin(&mut self) -> Result<QueryResult> {
        let notice = if self.transaction.is_some() {
            Some("there is already a transaction in progress".to_string())
        } else {
            self.transaction = Some(self.begin_unconfirmed()?);
            None
        };
        Ok(QueryResult::command("BEGIN").with_notice(notice))
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

    /// A new transaction at the session's read consistency.
    fn begin_transaction(&self) -> Result<Transaction> {
        Transaction::begin(Arc::clone(&self.replica), self.read_level()?)
            .map(|txn| txn.reading_after(self.read_after.get()))
    }

    /// A new transaction that, where it may, starts on this replica's snapshot as it is
    /// and confirms it only when a statement reads what its commit will not check (see
    /// [`crate::txn`]): in a cluster, at the `linearizable` or `lease` level, while the
    /// leader was heard from within two heartbeats. The round it skips also finds a
    /// leader that is gone (a retryable error) before anything is sent to it; without
    /// it a commit sent to a paused or cut-off leader ends with its outcome unknown
    /// (40003), and requiring a recent heartbeat keeps that window to a heartbeat or two
    /// after a fault. Over a pool of groups the snapshot's timestamp is chosen by the
    /// first group read (see `Transaction::snapshot_ts`), so a write to one busy group
    /// reads it as fresh as this replica has it.
    fn begin_unconfirmed(&self) -> Result<Transaction> {
        let level = self.read_level()?;
        let may_skip = matches!(level, ReadLevel::Linearizable | ReadLevel::Lease)
            && self
                .replica
                .cluster()
                .is_some_and(|cluster| cluster.leader_recently_heard());
        let txn = if may_skip {
            Transaction::begin_unconfirmed(Arc::clone(&self.replica), level)?
        } else {
            Transaction::begin(Arc::clone(&self.replica), level)?
        };
        Ok(txn.reading_after(self.read_after.get()))
    }

    /// The read consistency the session's settings ask for.
    fn read_level(&self) -> Result<ReadLevel> {
        Ok(match self.setting("read_consistency").as_str() {
            "lease" => ReadLevel::Lease,
            "stale" => ReadLevel::Stale {
                max_staleness: parse_timeout(&self.setting("max_staleness"))?,
            },
            _ => ReadLevel::Linearizable,
        })
    }

    fn commit(&mut self) -> Result<QueryResult> {
        if self.failed {
            return Ok(self.rollback());
        }
        match self.transaction.take() {
            Some(txn) => self.finish(txn).map(|()| QueryResult::command("COMMIT")),
            None => Ok(QueryResult::command("COMMIT")
                .with_notice(Some("there is no transaction in progress".into()))),
        }
    }

    fn rollback(&mut self) -> QueryResult {
        self.failed = false;
        let notice = self
            .transaction
            .take()
            .is_none()
            .then(|| "there is no transaction in progress".to_string());
        QueryResult::command("ROLLBACK").with_notice(notice)
    }

    /// Runs `work` in the open transaction block (undoing it on error and failing the
    /// block) or, in autocommit mode, in a transaction of its own — one that skips the
    /// snapshot's confirmation round where it may when the statement `writes` (a read
    /// alone always needs the round, so trying without it would only cost).
    fn run_in_transaction(
        &mut self,
        writes: bool,
        work: impl Fn(&Session, &mut Transaction) -> Result<QueryResult>,
    ) -> Result<QueryResult> {
        match self.transaction.take() {
            Some(mut txn) => {
                let savepoint = txn.savepoint();
                let result = self.run_statement(&mut txn, &work);
                if result.is_err() {
                    txn.rollback_to(savepoint);
                    self.failed = true;
                }
                self.transaction = Some(txn);
                result
            }
            None if writes => self.autocommit_unconfirmed(&work),
            None => self.autocommit_read(&work),
        }
    }

    /// Runs one statement of `txn`. On an unconfirmed snapshot, a statement that failed
    /// (perhaps only because the snapshot is old: a table or row it does not see yet)
    /// or read what the commit will not check is rolled back and run again once the
    /// snapshot is confirmed, so no answer rests on an old snapshot.
    fn run_statement(
        &self,
        txn: &mut Transaction,
        work: &impl Fn(&Session, &mut Transaction) -> Result<QueryResult>,
    ) -> Result<QueryResult> {
        let savepoint = txn.savepoint();
        let result = work(self, txn);
        if !txn.is_unconfirmed() || (result.is_ok() && !txn.needs_confirmation()) {
            return result;
        }
        txn.rollback_to(savepoint);
        txn.confirm()?;
        work(self, txn)
    }

    /// An autocommit write on an unconfirmed snapshot. Its commit checks everything the
    /// statement read, at the commit's place in the log, so a success is the answer a
    /// fresh snapshot would have given. What an old snapshot can get wrong is only a
    /// refusal (a conflict with a change it missed, a key it still sees), and every
    /// refusal means nothing was written, so the statement then runs again the
    /// ordinary way.
    fn autocommit_unconfirmed(
        &self,
        work: &impl Fn(&Session, &mut Transaction) -> Result<QueryResult>,
    ) -> Result<QueryResult> {
        let mut txn = self.begin_unconfirmed()?;
        let result = self.run_statement(&mut txn, work)?;
        let unconfirmed = txn.is_unconfirmed();
        match self.finish(txn) {
            Ok(()) => Ok(result),
            // Refused, certainly without effect (a deterministic failure of the commit
            // leaves every replica untouched; a retryable one was never applied).
            Err(error)
                if unconfirmed
                    && error.is_deterministic()
                    && !matches!(error, Error::OutcomeUnknown(_)) =>
            {
                tracing::debug!(%error, "a write on this replica's snapshot runs again on a fresh one");
                let mut txn = self.begin_transaction()?;
                let result = work(self, &mut txn)?;
                self.finish(txn)?;
                Ok(result)
            }
            Err(error) => Err(error),
        }
    }

    /// An autocommit read-only statement. Over a pool of data groups at `linearizable`
    /// or `lease` it first runs on a snapshot confirmed in the first group it reads
    /// only (see `Transaction::begin_single_group`); when it reads more than that
    /// snapshot answers, or fails in a way an older catalog could explain, it runs
    /// again on a snapshot across groups, so no answer rests on the shortcut's limits.
    fn autocommit_read(
        &self,
        work: &impl Fn(&Session, &mut Transaction) -> Result<QueryResult>,
    ) -> Result<QueryResult> {
        let level = self.read_level()?;
        let shortcut = matches!(level, ReadLevel::Linearizable | ReadLevel::Lease)
            && self.replica.data_group_count() > 1;
        if shortcut {
            let mut txn = Transaction::begin_single_group(Arc::clone(&self.replica), level)?
                .reading_after(self.read_after.get());
            let result = work(self, &mut txn);
            if !txn.refused_single_group() {
                match result {
                    Ok(result) => return self.finish(txn).map(|()| result),
                    Err(error) if !may_be_an_older_catalog(&error) => return Err(error),
                    Err(_) => {}
                }
            }
        }
        let mut txn = self.begin_transaction()?;
        let result = work(self, &mut txn)?;
        self.finish(txn)?;
        Ok(result)
    }

    fn plan(
        &self,
        statement: &Statement,
        params: &[Value],
        txn: &Transaction,
    ) -> Result<(Plan, Vec<OutputColumn>)> {
        let catalog = self.replica.catalog();
        let usable = |index: &crate::catalog::Index| txn.can_use_index(index);
        let planner = Planner::new(&catalog, params, &usable).with_identity(&self.identity);
        match statement {
            Statement::Select(select) => planner.plan_select(select),
            Statement::Insert(insert) => Ok((planner.plan_insert(insert)?, Vec::new())),
            Statement::Update {
                table,
                assignments,
                filter,
            } => Ok((
                planner.plan_update(table, assignments, filter.as_ref())?,
                Vec::new(),
            )),
            Statement::Delete { table, filter } => {
                Ok((planner.plan_delete(table, filter.as_ref())?, Vec::new()))
            }
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
                    | Statement::Update { .. }
                    | Statement::Delete { .. }
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

    fn execute_ddl(&mut self, statement: &Statement) -> Result<QueryResult> {
        let catalog = self.fresh_catalog()?;
        let everything = |_: &crate::catalog::Index| true;
        let planner = Planner::new(&catalog, &[], &everything).with_identity(&self.identity);
        let (operations, tag) = match statement {
            Statement::CreateTable(create) => {
                let spec = planner.table_spec(
                    create,
                    self.replica.default_shard_count(),
                    self.replica.data_group_count(),
                )?;
                (
                    vec![Operation::CreateTable {
                        spec,
                        if_not_exists: create.if_not_exists,
                    }],
                    "CREATE TABLE",
                )
            }
            Statement::DropTable { names, if_exists } => {
                if !if_exists {
                    for name in names {
                        catalog.require_table(name)?;
                    }
                }
                let drops = names
                    .iter()
                    .map(|name| Operation::DropTable {
                        name: name.clone(),
                        if_exists: *if_exists,
                    })
                    .collect();
                (drops, "DROP TABLE")
            }
            Statement::CreateIndex {
                name,
                table,
                columns,
                unique,
                if_not_exists,
            } => {
                if *if_not_exists && name.as_ref().is_some_and(|n| catalog.relation_exists(n)) {
                    let notice = format!(
                        "relation \"{}\" already exists, skipping",
                        name.as_deref().unwrap_or_default()
                    );
                    return Ok(QueryResult::command("CREATE INDEX").with_notice(Some(notice)));
                }
                let spec = planner.index_spec(name.as_deref(), table, columns, *unique)?;
                (
                    vec![Operation::CreateIndex {
                        table: table.clone(),
                        spec,
                        if_not_exists: *if_not_exists,
                    }],
                    "CREATE INDEX",
                )
            }
            Statement::DropIndex { names, if_exists } => {
                if !if_exists {
                    for name in names {
                        if catalog.index_owner(name).is_none() {
                            return Err(Error::UndefinedObject(format!(
                                "index \"{name}\" does not exist"
                            )));
                        }
                    }
                }
                let drops = names
                    .iter()
                    .map(|name| Operation::DropIndex {
                        name: name.clone(),
                        if_exists: *if_exists,
                    })
                    .collect();
                (drops, "DROP INDEX")
            }
            other => {
                return Err(Error::Internal(format!(
                    "{} is not DDL",
                    statement_name(other)
                )))
            }
        };
        let mut result = QueryResult::command(tag);
        let listener = self.progress.clone();
        let report = move |done: u64, total: u64| {
            if let Some(listener) = &listener {
                listener(done, total);
            }
        };
        for operation in operations {
            if let Applied::Skipped { notice } =
                self.replica.change_schema(operation, Some(&report))?
            {
                result.notices.push(notice);
            }
        }
        Ok(result)
    }

    fn setting(&self, name: &str) -> String {
        if let Some(value) = self.settings.get(name).or_else(|| self.defaults.get(name)) {
            return value.clone();
        }
        SETTINGS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }

    fn set(&mut self, name: &str, value: Option<&str>) -> Result<QueryResult> {
        let name = name.to_lowercase();
        if !SETTINGS.iter().any(|(n, _)| *n == name) {
            return Err(Error::UnknownSetting(name));
        }
        if READ_ONLY_SETTINGS.contains(&name.as_str()) {
            return Err(Error::InvalidParameterValue(format!(
                "parameter \"{name}\" cannot be changed"
            )));
        }
        match value {
            None => {
                self.settings.remove(&name);
            }
            Some(value) => {
                let value = validate_setting(&name, value)?;
                self.settings.insert(name, value);
            }
        }
        Ok(QueryResult::command("SET"))
    }

    fn show(&self, name: &str) -> Result<QueryResult> {
        let name = name.to_lowercase();
        if name == "cluster" {
            return self.show_cluster();
        }
        if name == "checksum" {
            return self.show_checksum();
        }
        if name == "groups" {
            return self.show_groups();
        }
        if !SETTINGS.iter().any(|(n, _)| *n == name) {
            return Err(Error::UnknownSetting(name));
        }
        let column = OutputColumn {
            name: name.clone(),
            data_type: TEXT,
        };
        let mut result =
            QueryResult::rows(vec![column], vec![vec![Value::Text(self.setting(&name))]]);
        result.tag = "SHOW".into();
        Ok(result)
    }
}

impl Session {
    /// The cluster node behind this session; `statement` names what needs one.
    fn cluster_node(&self, statement: &str) -> Result<&crate::replica::cluster::ClusterReplica> {
        self.replica.cluster().ok_or_else(|| {
            Error::FeatureNotSupported(format!(
                "{statement}: this is an embedded database, not a cluster node"
            ))
        })
    }

    /// SHOW CLUSTER: every node's view of every group it hosts.
    fn show_cluster(&self) -> Result<QueryResult> {
        let statuses = self.cluster_node("SHOW CLUSTER")?.status()?;
        let (columns, rows) = admin::status_table(&statuses);
        Ok(tagged_rows("SHOW", columns, rows))
    }

    /// SHOW CHECKSUM: this replica's fingerprint of each group, to compare replicas.
    fn show_checksum(&self) -> Result<QueryResult> {
        let node = self.cluster_node("SHOW CHECKSUM")?;
        let (columns, rows) = admin::checksum_table(node.node().id(), &node.checksums()?);
        Ok(tagged_rows("SHOW", columns, rows))
    }

    /// SHOW GROUPS: each data group with its leader, voters and the table shards (with
    /// their hash ranges) placed on it. An embedded database hosts every shard in one
    /// local group.
    fn show_groups(&self) -> Result<QueryResult> {
        let catalog = self.fresh_catalog()?;
        let tables: Vec<&crate::catalog::Table> = catalog.tables().collect();
        let (groups, reports) = match self.replica.cluster() {
            Some(cluster) => {
                let pool = crate::shard::FIRST_SHARD_GROUP
                    ..crate::shard::FIRST_SHARD_GROUP + cluster.data_group_count();
                (pool.collect(), cluster.group_reports()?)
            }
            None => (vec![crate::shard::FIRST_SHARD_GROUP], Vec::new()),
        };
        let (columns, rows) = admin::groups_table(&groups, &tables, &reports);
        Ok(tagged_rows("SHOW", columns, rows))
    }

    /// SHOW SHARDS [FOR table]: each shard's hash range and group, with the group's
    /// leader and voters on a cluster node (as this node's view of them reports).
    fn show_shards(&self, table: Option<&str>) -> Result<QueryResult> {
        let catalog = self.fresh_catalog()?;
        let tables: Vec<&crate::catalog::Table> = match table {
            Some(name) => vec![catalog.require_table(name)?],
            None => catalog.tables().collect(),
        };
        let groups = match self.replica.cluster() {
            Some(cluster) => cluster.group_reports()?,
            None => Vec::new(),
        };
        let (columns, rows) = admin::shards_table(&tables, &groups);
        Ok(tagged_rows("SHOW", columns, rows))
    }

    /// ALTER CLUSTER: runs the membership change group by group and lists each step.
    /// Not inside a transaction block: it cannot be rolled back.
    fn alter_cluster(&mut self, change: &ClusterChange) -> Result<QueryResult> {
        self.cluster_node("ALTER CLUSTER")?;
        if self.transaction.is_some() {
            self.failed = true;
            return Err(Error::ActiveTransaction(
                "ALTER CLUSTER cannot run inside a transaction block".into(),
            ));
        }
        let steps = self
            .cluster_node("ALTER CLUSTER")?
            .change_membership(change)?;
        let (columns, rows) = admin::step_table(&steps);
        Ok(tagged_rows("ALTER CLUSTER", columns, rows))
    }
}

/// Rows with their own command tag (SHOW, ALTER CLUSTER) instead of SELECT's.
fn tagged_rows(tag: &str, columns: Vec<OutputColumn>, rows: Vec<Vec<Value>>) -> QueryResult {
    let mut result = QueryResult::rows(columns, rows);
    result.tag = tag.into();
    result
}

fn validate_setting(name: &str, value: &str) -> Result<String> {
    match name {
        "read_consistency" => {
            let lowered = value.to_lowercase();
            if ["linearizable", "lease", "stale"].contains(&lowered.as_str()) {
                Ok(lowered)
            } else {
                Err(Error::InvalidParameterValue(format!(
                    "invalid value for parameter \"read_consistency\": \"{value}\" (expected linearizable, lease or stale)"
                )))
            }
        }
        "statement_timeout"
        | "idle_session_timeout"
        | "idle_in_transaction_session_timeout"
        | "max_staleness" => {
            parse_timeout(value)?;
            Ok(value.trim().to_string())
        }
        "extra_float_digits" => {
            value.trim().parse::<i64>().map_err(|_| {
                Error::InvalidParameterValue(format!(
                    "invalid value for parameter \"{name}\": \"{value}\""
                ))
            })?;
            Ok(value.trim().to_string())
        }
        _ => Ok(value.to_string()),
    }
}

/// Parses a timeout setting as PostgreSQL does: a number of milliseconds, or a number
/// with a unit (`ms`, `s`, `min`, `h`); 0 means no timeout.
fn parse_timeout(value: &str) -> Result<Option<std::time::Duration>> {
    let text = value.trim().to_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || {
        Error::InvalidParameterValue(format!(
            "invalid value for a timeout: \"{value}\" (e.g. 5000, 5s, 1min)"
        ))
    };
    let amount: u64 = number.parse().map_err(|_| invalid())?;
    let millis = match unit.trim() {
        "" | "ms" | "millisecond" | "milliseconds" => amount,
        "s" | "sec" | "second" | "seconds" => amount.saturating_mul(1000),
        "min" | "minute" | "minutes" => amount.saturating_mul(60_000),
        "h" | "hour" | "hours" => amount.saturating_mul(3_600_000),
        _ => return Err(invalid()),
    };
    Ok((millis > 0).then(|| std::time::Duration::from_millis(millis)))
}

/// The client's answer to an executed plan.
fn query_result(outcome: Outcome, columns: Vec<OutputColumn>) -> QueryResult {
    match outcome {
        Outcome::Rows(rows) => QueryResult::rows(columns, rows),
        Outcome::Inserted(n) => affected(format!("INSERT 0 {n}"), n),
        Outcome::Updated(n) => affected(format!("UPDATE {n}"), n),
        Outcome::Deleted(n) => affected(format!("DELETE {n}"), n),
    }
}

/// Whether `plan` inserts rows of constants only (VALUES or DEFAULT VALUES with every
/// parameter bound): it reads nothing but whether its keys are taken.
fn affected(tag: String, count: u64) -> QueryResult {
    let mut result = QueryResult::command(tag);
    result.affected = Some(count);
    result
}

/// The command-tag word(s) of a statement: `INSERT`, `CREATE TABLE`, ...
pub fn statement_name(statement: &Statement) -> &'static str {
    match statement {
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::DropTable { .. } => "DROP TABLE",
        Statement::CreateIndex { .. } => "CREATE INDEX",
        Statement::DropIndex { .. } => "DROP INDEX",
        Statement::Begin => "BEGIN",
        Statement::Commit => "COMMIT",
        Statement::Rollback => "ROLLBACK",
        Statement::Set { .. } => "SET",
        Statement::Show { .. } | Statement::ShowShards { .. } => "SHOW",
        Statement::AlterCluster(_) => "ALTER CLUSTER",
        Statement::Explain(_) => "EXPLAIN",
        Statement::Select(_) => "SELECT",
        Statement::Insert(_) => "INSERT",
        Statement::Update { .. } => "UPDATE",
        Statement::Delete { .. } => "DELETE",
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
