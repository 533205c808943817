//! Transaction blocks: BEGIN, COMMIT, ROLLBACK and savepoints, and the autocommit
//! transactions around single statements.
//!
//! Outside a block every statement runs in its own transaction. Inside one, statements
//! share a snapshot; a statement that fails is undone whole and puts the block into the
//! failed state, where, as in PostgreSQL, only ROLLBACK, ROLLBACK TO SAVEPOINT (which
//! recovers the block) or COMMIT (which then rolls back) is accepted.

use super::{may_be_an_older_catalog, parse_timeout, QueryResult, Session};
use crate::error::{Error, Result};
use crate::replica::ReadLevel;
use crate::txn::{Savepoint, Transaction};
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

impl Session {
    /// Commits `txn` and remembers where the session's next snapshot must read.
    pub(super) fn finish(&self, txn: Transaction) -> Result<()> {
        let read_after = txn.commit()?;
        self.read_after.set(self.read_after.get().max(read_after));
        Ok(())
    }

    /// Where the session stands with respect to transactions.
    pub fn transaction_status(&self) -> TransactionStatus {
        match (&self.transaction, self.failed) {
            (_, true) => TransactionStatus::Failed,
            (Some(_), false) => TransactionStatus::InTransaction,
            (None, false) => TransactionStatus::Idle,
        }
    }

    pub(super) fn begin(&mut self) -> Result<QueryResult> {
        let notice = if self.transaction.is_some() {
            Some("there is already a transaction in progress".to_string())
        } else {
            self.transaction = Some(self.begin_unconfirmed()?);
            None
        };
        Ok(QueryResult::command("BEGIN").with_notice(notice))
    }

    /// A new transaction at the session's read consistency.
    pub(super) fn begin_transaction(&self) -> Result<Transaction> {
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
    pub(super) fn begin_unconfirmed(&self) -> Result<Transaction> {
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
    pub(super) fn read_level(&self) -> Result<ReadLevel> {
        Ok(match self.setting("read_consistency").as_str() {
            "lease" => ReadLevel::Lease,
            "stale" => ReadLevel::Stale {
                max_staleness: parse_timeout(&self.setting("max_staleness"))?,
            },
            _ => ReadLevel::Linearizable,
        })
    }

    pub(super) fn commit(&mut self) -> Result<QueryResult> {
        self.savepoints.clear();
        if self.failed {
            return Ok(self.rollback());
        }
        match self.transaction.take() {
            Some(txn) => {
                // A block runs DDL or changes data, never both (see `ddl`): one of
                // the two has nothing to commit.
                let finished = self.finish(txn);
                let schema = self.commit_schema_block();
                finished
                    .and(schema)
                    .map(|()| QueryResult::command("COMMIT"))
            }
            None => Ok(QueryResult::command("COMMIT")
                .with_notice(Some("there is no transaction in progress".into()))),
        }
    }

    pub(super) fn rollback(&mut self) -> QueryResult {
        self.failed = false;
        self.savepoints.clear();
        self.schema_block = None;
        let notice = self
            .transaction
            .take()
            .is_none()
            .then(|| "there is no transaction in progress".to_string());
        QueryResult::command("ROLLBACK").with_notice(notice)
    }

    /// SAVEPOINT: marks the block's writes so far.
    pub(super) fn savepoint(&mut self, name: &str) -> Result<QueryResult> {
        let Some(txn) = &self.transaction else {
            return Err(outside_a_block("SAVEPOINT"));
        };
        if self.savepoints.len() >= MAX_SAVEPOINTS {
            self.failed = true;
            return Err(Error::ProgramLimitExceeded(format!(
                "a transaction block may hold at most {MAX_SAVEPOINTS} savepoints"
            )));
        }
        self.savepoints.push(BlockSavepoint {
            name: name.to_string(),
            writes: txn.savepoint(),
            schema: self.schema_block.as_ref().map_or(0, |block| block.mark()),
        });
        Ok(QueryResult::command("SAVEPOINT"))
    }

    /// ROLLBACK TO SAVEPOINT: undoes the writes made since the savepoint, forgets the
    /// savepoints made after it (it stays, to be rolled back to again) and recovers a
    /// failed block, as in PostgreSQL.
    pub(super) fn rollback_to_savepoint(&mut self, name: &str) -> Result<QueryResult> {
        let Some(txn) = &mut self.transaction else {
            return Err(outside_a_block("ROLLBACK TO SAVEPOINT"));
        };
        let Some(position) = newest_named(&self.savepoints, name) else {
            self.failed = true;
            return Err(no_such_savepoint(name));
        };
        let savepoint = &self.savepoints[position];
        txn.rollback_to(savepoint.writes);
        if let Some(block) = &mut self.schema_block {
            block.rollback_to(savepoint.schema);
        }
        self.savepoints.truncate(position + 1);
        self.failed = false;
        Ok(QueryResult::command("ROLLBACK"))
    }

    /// RELEASE SAVEPOINT: forgets the savepoint and every later one; their writes stay
    /// in the block.
    pub(super) fn release_savepoint(&mut self, name: &str) -> Result<QueryResult> {
        if self.transaction.is_none() {
            return Err(outside_a_block("RELEASE SAVEPOINT"));
        }
        let Some(position) = newest_named(&self.savepoints, name) else {
            self.failed = true;
            return Err(no_such_savepoint(name));
        };
        self.savepoints.truncate(position);
        Ok(QueryResult::command("RELEASE"))
    }

    /// Runs `work` in the open transaction block (undoing it on error and failing the
    /// block) or, in autocommit mode, in a transaction of its own — one that skips the
    /// snapshot's confirmation round where it may when the statement `writes` (a read
    /// alone always needs the round, so trying without it would only cost).
    pub(super) fn run_in_transaction(
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
    pub(super) fn run_statement(
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
    pub(super) fn autocommit_unconfirmed(
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
    pub(super) fn autocommit_read(
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
}

/// Most savepoints one block holds: each costs little, but a client looping on
/// SAVEPOINT without RELEASE should hear of it rather than grow the session forever.
const MAX_SAVEPOINTS: usize = 10_000;

/// The position of the newest savepoint called `name`.
/// A savepoint of an open block: where its data changes and its DDL stood.
pub(super) struct BlockSavepoint {
    name: String,
    writes: Savepoint,
    /// How many DDL statements the block had run.
    schema: usize,
}

fn newest_named(savepoints: &[BlockSavepoint], name: &str) -> Option<usize> {
    savepoints.iter().rposition(|held| held.name == name)
}

fn no_such_savepoint(name: &str) -> Error {
    Error::InvalidSavepoint(format!("savepoint \"{name}\" does not exist"))
}

fn outside_a_block(statement: &str) -> Error {
    Error::NoActiveTransaction(format!(
        "{statement} can only be used in transaction blocks"
    ))
}
