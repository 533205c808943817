//! Schema changes as a session runs them: planned against a fresh catalog, then handed
//! to the catalog's holder (the embedded state machine or a cluster's metadata group).
//!
//! Inside a transaction block DDL is transactional: each statement is checked against
//! the block's own view of the catalog ([`SchemaBlock`]: the catalog as the block's
//! earlier DDL left it, errors and notices as PostgreSQL gives them at the statement),
//! and nothing reaches the holder before COMMIT, which hands it every change of the
//! block as one operation ([`Operation::SchemaChanges`]): all apply or none, and other
//! sessions see them only once committed. ROLLBACK drops them; ROLLBACK TO SAVEPOINT
//! drops those after the savepoint. The trade-off, for now: a block that changes the
//! schema changes no data and reads nothing after its first DDL (and a block that has
//! written data runs no DDL), each refused with 0A000 — so that COMMIT is one catalog
//! change, atomic without a cross-group transaction whose participants include the
//! catalog. Changes are applied again at COMMIT against the catalog as it is then, so
//! a conflicting change committed meanwhile by another session (the same name
//! created) fails the COMMIT, and nothing of the block is applied.

use super::{statement_name, QueryResult, Session};
use crate::catalog::sequence::SequenceOwner;
use crate::catalog::{Catalog, INDEX_BUILDING};
use crate::error::{Error, Result};
use crate::sql::ast::{Delete, Maintenance, Statement};
use crate::sql::planner::Planner;
use crate::state_machine::ddl::{change_catalog, CatalogEffect};
use crate::state_machine::{Applied, Operation};
use crate::txn::Transaction;
use std::sync::Arc;

impl Session {
    /// Runs a DDL statement: at once outside a block, or into the block's schema
    /// changes inside one.
    pub(super) fn execute_ddl(&mut self, statement: &Statement) -> Result<QueryResult> {
        if self.transaction.is_some() {
            let result = self.ddl_in_block(statement);
            if result.is_err() {
                self.failed = true;
            }
            return result;
        }
        let catalog = self.fresh_catalog()?;
        let (operations, result) = self.plan_ddl(statement, &catalog)?;
        self.run_schema_changes(operations, result)
    }

    /// Plans a DDL statement against `catalog`: the operations to apply (none when
    /// IF [NOT] EXISTS finds nothing to do) and the result, with the notices known now.
    fn plan_ddl(
        &self,
        statement: &Statement,
        catalog: &Catalog,
    ) -> Result<(Vec<Operation>, QueryResult)> {
        let everything = |_: &crate::catalog::Index| true;
        let planner = Planner::new(catalog, &[], &everything)
            .with_identity(&self.identity)
            .with_sequences(&self.sequences);
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
                // Missing tables are an error before anything is dropped, or (IF EXISTS)
                // a notice each; the others go together, in one change.
                let mut present = Vec::with_capacity(names.len());
                let mut result = QueryResult::command("DROP TABLE");
                for name in names {
                    match catalog.table(name) {
                        Some(_) => present.push(name.clone()),
                        None if *if_exists => result
                            .notices
                            .push(format!("table \"{name}\" does not exist, skipping")),
                        None => return Err(Error::UndefinedTable(name.clone())),
                    }
                }
                if present.is_empty() {
                    return Ok((Vec::new(), result));
                }
                let drop = Operation::DropTables {
                    names: present,
                    if_exists: *if_exists,
                };
                return Ok((vec![drop], result));
            }
            Statement::Truncate {
                names,
                restart_identity,
            } => {
                for name in names {
                    catalog.require_table(name)?;
                }
                refuse_restart_identity(catalog, names, *restart_identity)?;
                let truncate = Operation::Truncate {
                    names: names.clone(),
                };
                (vec![truncate], "TRUNCATE TABLE")
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
                    let result = QueryResult::command("CREATE INDEX").with_notice(Some(notice));
                    return Ok((Vec::new(), result));
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
            Statement::CreateSequence {
                name,
                if_not_exists,
                options,
                owned_by,
            } => {
                if *if_not_exists && catalog.relation_exists(name) {
                    let notice = format!("relation \"{name}\" already exists, skipping");
                    let result = QueryResult::command("CREATE SEQUENCE").with_notice(Some(notice));
                    return Ok((Vec::new(), result));
                }
                let spec = planner.sequence_spec(name, options, owned_by.as_ref())?;
                let create = Operation::CreateSequence {
                    spec,
                    if_not_exists: *if_not_exists,
                };
                (vec![create], "CREATE SEQUENCE")
            }
            Statement::AlterSequence {
                name,
                if_exists,
                options,
                restart,
                owned_by,
            } => {
                if *if_exists && catalog.sequence(name).is_none() {
                    let notice = format!("relation \"{name}\" does not exist, skipping");
                    let result = QueryResult::command("ALTER SEQUENCE").with_notice(Some(notice));
                    return Ok((Vec::new(), result));
                }
                let current = catalog.require_sequence(name)?;
                // Checked now for the statement's error; applied again where it commits.
                options.resolve(Some(&current.options))?;
                let owner = owned_by.as_ref().map(|owner| {
                    owner.as_ref().map(|(table, column)| SequenceOwner {
                        table: table.clone(),
                        column: column.clone(),
                    })
                });
                let alter = Operation::AlterSequence {
                    name: name.clone(),
                    options: options.clone(),
                    restart: *restart,
                    owner,
                };
                (vec![alter], "ALTER SEQUENCE")
            }
            Statement::DropSequence { names, if_exists } => {
                let mut present = Vec::with_capacity(names.len());
                let mut result = QueryResult::command("DROP SEQUENCE");
                for name in names {
                    match catalog.require_sequence(name) {
                        Ok(_) => present.push(name.clone()),
                        Err(Error::UndefinedTable(_)) if *if_exists => result
                            .notices
                            .push(format!("sequence \"{name}\" does not exist, skipping")),
                        Err(error) => return Err(error),
                    }
                }
                if present.is_empty() {
                    return Ok((Vec::new(), result));
                }
                let drop = Operation::DropSequences {
                    names: present,
                    if_exists: *if_exists,
                };
                return Ok((vec![drop], result));
            }
            other => {
                return Err(Error::Internal(format!(
                    "{} is not DDL",
                    statement_name(other)
                )))
            }
        };
        Ok((operations, QueryResult::command(tag)))
    }

    /// DDL inside a block: checked against the block's catalog and kept for COMMIT.
    fn ddl_in_block(&mut self, statement: &Statement) -> Result<QueryResult> {
        if self
            .transaction
            .as_ref()
            .is_some_and(Transaction::has_writes)
        {
            return Err(Error::FeatureNotSupported(format!(
                "{} after data changes in the same transaction block; commit the data \
                 changes first",
                statement_name(statement)
            )));
        }
        if !self.ran_ddl_in_block() {
            self.schema_block = Some(SchemaBlock::new(self.fresh_catalog()?));
        }
        let catalog = self.schema_block.as_ref().map(SchemaBlock::catalog);
        let catalog = catalog.ok_or_else(|| Error::Internal("no schema block".into()))?;
        let (operations, mut result) = self.plan_ddl(statement, &catalog)?;
        let mut changed = (*catalog).clone();
        for operation in &operations {
            let change = operation
                .schema_change()
                .ok_or_else(|| Error::Internal(format!("{operation:?} is not a schema change")))?;
            if let CatalogEffect::Skipped(Applied::Skipped { notice }) =
                change_catalog(&mut changed, change, INDEX_BUILDING)?
            {
                result.notices.push(notice);
            }
        }
        if let Some(block) = &mut self.schema_block {
            block.push(operations, changed);
        }
        Ok(result)
    }

    /// Whether the open block has DDL not yet committed (none left after a ROLLBACK TO
    /// SAVEPOINT before its first, or a first that failed).
    pub(super) fn ran_ddl_in_block(&self) -> bool {
        self.schema_block
            .as_ref()
            .is_some_and(|block| block.mark() > 0)
    }

    /// COMMIT's part for a block that ran DDL: every change of the block, as one.
    pub(super) fn commit_schema_block(&mut self) -> Result<()> {
        let Some(block) = self.schema_block.take() else {
            return Ok(());
        };
        let operations = block.into_operations();
        if operations.is_empty() {
            return Ok(());
        }
        let change = Operation::SchemaChanges { operations };
        self.run_schema_changes(vec![change], QueryResult::command("COMMIT"))
            .map(|_| ())
    }

    /// Hands schema changes to the catalog's holder one after another, CREATE INDEX's
    /// progress to the listener, and their notices to `result`.
    fn run_schema_changes(
        &self,
        operations: Vec<Operation>,
        mut result: QueryResult,
    ) -> Result<QueryResult> {
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
}

impl Session {
    /// TRUNCATE inside a transaction block: every row of the tables is deleted through
    /// the transaction, so the emptying commits or rolls back with the block (it costs
    /// a delete per row, where TRUNCATE outside a block renews the tables at once).
    pub(super) fn truncate_rows(
        &self,
        names: &[String],
        txn: &mut Transaction,
    ) -> Result<QueryResult> {
        for name in names {
            self.replica.catalog().require_table(name)?;
        }
        for name in names {
            let delete = Statement::Delete(Delete {
                table: name.clone(),
                alias: None,
                using: None,
                filter: None,
                returning: Vec::new(),
            });
            self.execute_plan(&delete, &[], txn)?;
        }
        Ok(QueryResult::command("TRUNCATE TABLE"))
    }

    /// VACUUM and ANALYZE: checked (the tables exist; VACUUM not in a block, as in
    /// PostgreSQL) and otherwise nothing to do: the planner keeps no statistics, and
    /// old row versions are removed by garbage collection, not by VACUUM.
    pub(super) fn maintenance(
        &mut self,
        command: Maintenance,
        tables: &[String],
    ) -> Result<QueryResult> {
        let tag = match command {
            Maintenance::Vacuum => "VACUUM",
            Maintenance::Analyze => "ANALYZE",
        };
        if command == Maintenance::Vacuum && self.transaction.is_some() {
            self.failed = true;
            return Err(Error::ActiveTransaction(
                "VACUUM cannot run inside a transaction block".into(),
            ));
        }
        let catalog = self.replica.catalog();
        if let Some(missing) = tables.iter().find(|name| catalog.table(name).is_none()) {
            if self.transaction.is_some() {
                self.failed = true;
            }
            return Err(Error::UndefinedTable(missing.clone()));
        }
        Ok(QueryResult::command(tag))
    }
}

/// TRUNCATE ... RESTART IDENTITY of a table that owns a sequence: 0A000, since the
/// sequences would have to restart with the truncation, which is not built yet (of
/// tables owning none it is plain TRUNCATE).
pub(super) fn refuse_restart_identity(
    catalog: &Catalog,
    names: &[String],
    restart_identity: bool,
) -> Result<()> {
    let owns = |name: &String| {
        catalog
            .sequences()
            .any(|s| s.owner.as_ref().is_some_and(|owner| &owner.table == name))
    };
    match names.iter().find(|name| owns(name)) {
        Some(name) if restart_identity => Err(Error::FeatureNotSupported(format!(
            "TRUNCATE ... RESTART IDENTITY of \"{name}\", which owns a sequence"
        ))),
        _ => Ok(()),
    }
}

/// The DDL of an open transaction block, not yet committed (see the module doc).
pub(super) struct SchemaBlock {
    /// The catalog when the block ran its first DDL.
    base: Arc<Catalog>,
    /// Each DDL statement's operations, with the catalog as it left it.
    statements: Vec<(Vec<Operation>, Arc<Catalog>)>,
}

impl SchemaBlock {
    fn new(base: Arc<Catalog>) -> SchemaBlock {
        SchemaBlock {
            base,
            statements: Vec::new(),
        }
    }

    /// The catalog as the block's DDL so far leaves it.
    pub(super) fn catalog(&self) -> Arc<Catalog> {
        let latest = self.statements.last().map(|(_, catalog)| catalog);
        Arc::clone(latest.unwrap_or(&self.base))
    }

    fn push(&mut self, operations: Vec<Operation>, changed: Catalog) {
        self.statements.push((operations, Arc::new(changed)));
    }

    /// How many DDL statements the block has run (a savepoint's mark).
    pub(super) fn mark(&self) -> usize {
        self.statements.len()
    }

    /// Forgets the DDL statements after `mark` (ROLLBACK TO SAVEPOINT).
    pub(super) fn rollback_to(&mut self, mark: usize) {
        self.statements.truncate(mark);
    }

    fn into_operations(self) -> Vec<Operation> {
        self.statements
            .into_iter()
            .flat_map(|(operations, _)| operations)
            .collect()
    }
}
