//! Schema changes as a session runs them: planned against a fresh catalog, then handed
//! to the catalog's holder (the embedded state machine or a cluster's metadata group).

use super::{statement_name, QueryResult, Session};
use crate::error::{Error, Result};
use crate::sql::ast::{Delete, Maintenance, Statement};
use crate::sql::planner::Planner;
use crate::state_machine::{Applied, Operation};
use crate::txn::Transaction;

impl Session {
    pub(super) fn execute_ddl(&mut self, statement: &Statement) -> Result<QueryResult> {
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
                    return Ok(result);
                }
                let drop = Operation::DropTables {
                    names: present,
                    if_exists: *if_exists,
                };
                return self.run_schema_changes(vec![drop], result);
            }
            Statement::Truncate { names } => {
                for name in names {
                    catalog.require_table(name)?;
                }
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
        self.run_schema_changes(operations, QueryResult::command(tag))
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
