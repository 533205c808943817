//! The state machine: the one entry point through which every change reaches storage.
//!
//! A [`Command`] is a serializable description of a change — a DDL operation, or the
//! buffered writes of a transaction with its start and commit timestamps. [`StateMachine::apply`]
//! turns it into one atomic write batch (synced here for DDL; for commits the replica
//! syncs the log once for a group of them). Its result depends only on the command
//! and the current state: conflict checks (first committer wins), uniqueness checks and
//! index maintenance are all computed here from stored data, never from the proposer's
//! view. That is what lets a Raft log replay the same commands on every replica and reach
//! the same data; a failure that is deterministic (a conflict, a duplicate) leaves the
//! state untouched on every replica alike.
//!
//! Index entries are derived here rather than shipped in the command: the catalog at
//! apply time is the truth, so a transaction that began before a CREATE INDEX still
//! maintains the new index when it commits after it.

pub mod ddl;
mod index_maintenance;
pub mod sequences;
pub mod two_phase;

use crate::catalog::sequence::{DeclaredOptions, Reservation, SequenceOwner, SequencePosition};
use crate::catalog::{
    Catalog, IndexSpec, SequenceId, SequenceSpec, SharedCatalog, Table, TableSpec,
};
use crate::encoding::{self, keycode};
use crate::error::{Error, Result};
use crate::shard::GroupId;
use crate::storage::keys::{self, TableId};
use crate::storage::mvcc::{self, TOMBSTONE};
use crate::storage::{Batch, KeyRange, Space, Store};
use crate::types::Value;
pub use index_maintenance::{index_values, unique_violation};
use index_maintenance::{IndexWriter, RowChange};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use two_phase::{LockCheck, Prepare, PreparedDelta, TxnId, TxnOutcome};

/// One change to apply, stamped with the timestamp it commits at.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Command {
    /// Commit timestamp from the timestamp oracle; strictly increasing across commands.
    pub commit_ts: u64,
    /// What to change.
    pub operation: Operation,
}

/// The kinds of change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Operation {
    /// CREATE TABLE.
    CreateTable {
        /// The definition, ids not yet assigned.
        spec: TableSpec,
        /// Whether an existing table of that name is a notice rather than an error.
        if_not_exists: bool,
    },
    /// DROP TABLE: the definition and every row and index entry go.
    DropTable {
        /// Table name.
        name: String,
        /// Whether a missing table is a notice rather than an error.
        if_exists: bool,
    },
    /// CREATE INDEX with backfill of existing rows.
    CreateIndex {
        /// Table name.
        table: String,
        /// The index definition.
        spec: IndexSpec,
        /// Whether an existing relation of that name is a notice rather than an error.
        if_not_exists: bool,
    },
    /// DROP INDEX.
    DropIndex {
        /// Index name.
        name: String,
        /// Whether a missing index is a notice rather than an error.
        if_exists: bool,
    },
    /// A cluster's data group takes a newer catalog from the metadata group (see
    /// [`ddl`]): its data follows the difference.
    InstallCatalog {
        /// The catalog, whole.
        catalog: Box<Catalog>,
    },
    /// An index that every data group has built becomes readable (a cluster's metadata
    /// group only).
    IndexReady {
        /// The index.
        index: keys::IndexId,
        /// The snapshot from which it is complete in every group.
        ready_ts: u64,
    },
    /// Nothing but the commit timestamp: a cluster's data group that had no commit
    /// for a while moves its applied timestamp up to a snapshot a reader wants to take
    /// across groups, so that the snapshot is complete here and nothing later commits at
    /// or below it.
    Advance,
    /// COMMIT of a transaction's writes, all in this group (the one-phase path).
    Commit {
        /// The snapshot the transaction read at; a row changed after it is a conflict.
        start_ts: u64,
        /// The catalog version the writes were planned against: a group whose copy is
        /// older refuses them (retryable) rather than apply them to tables it does not
        /// know yet.
        catalog_version: u64,
        /// One entry per row written, at most one per row.
        writes: Vec<RowWrite>,
    },
    /// Phase one of a commit spanning groups: this group's share, checked and locked.
    Prepare(Prepare),
    /// The decision of a cross-group transaction, in the group holding its record.
    Decide {
        /// The transaction.
        txn: TxnId,
        /// Commit (at a timestamp) or abort.
        outcome: TxnOutcome,
    },
    /// Phase two of a cross-group transaction in one participant.
    Resolve {
        /// The transaction.
        txn: TxnId,
        /// The decided outcome.
        outcome: TxnOutcome,
    },
    /// The second step of building a unique index over several groups: entries of
    /// rows in other groups whose values hash to this group's shards (each group's
    /// install backfilled only the entries it holds). Each is written unless its key
    /// already has a version (written by a commit since the install, which is newer
    /// than the row the entry was read from), and checked for uniqueness as a commit's
    /// entry is (23505 for a value held by another row, 40001 for one a prepared
    /// transaction claims).
    BackfillEntries {
        /// The entries, each with its row (`IndexWrite::row` is always `Some`).
        entries: Vec<IndexWrite>,
    },
    /// DROP TABLE of several tables at once: all go, or none (appended after the
    /// older one-table DropTable so that logs written before keep their meaning).
    DropTables {
        /// The tables.
        names: Vec<String>,
        /// Whether a missing table is skipped rather than an error.
        if_exists: bool,
    },
    /// TRUNCATE: each table keeps its definition under a fresh id (its indexes too)
    /// and its rows go, all tables at once. As in PostgreSQL it is not MVCC-safe: an
    /// older snapshot reading the table afterwards finds it empty.
    Truncate {
        /// The tables.
        names: Vec<String>,
    },
    /// The schema changes of one transaction block, in order, all or none: each is
    /// applied to the catalog as the one before it left it, and one that fails leaves
    /// the catalog and the data as they were before the first (COMMIT of a block that
    /// ran DDL).
    SchemaChanges {
        /// The DDL operations (none of them a `SchemaChanges` itself).
        operations: Vec<Operation>,
    },
    /// CREATE SEQUENCE.
    CreateSequence {
        /// The sequence, its options checked.
        spec: SequenceSpec,
        /// Whether an existing relation of that name is a notice rather than an error.
        if_not_exists: bool,
    },
    /// ALTER SEQUENCE: the options are completed over the sequence's current ones
    /// where the change applies, so concurrent changes compose as PostgreSQL's do.
    AlterSequence {
        /// The sequence.
        name: String,
        /// The options given.
        options: DeclaredOptions,
        /// `RESTART [WITH n]`.
        restart: Option<Option<i64>>,
        /// A new owner (`Some(None)`: none).
        owner: Option<Option<SequenceOwner>>,
    },
    /// DROP SEQUENCE of one or several, all at once.
    DropSequences {
        /// The sequences.
        names: Vec<String>,
        /// Whether a missing one is skipped.
        if_exists: bool,
    },
    /// Reserves up to `count` values of a sequence for the proposing node (in the group
    /// holding the catalog): answered by [`Applied::SequenceValues`].
    AdvanceSequence {
        /// The sequence's current id.
        sequence: SequenceId,
        /// How many values are wanted.
        count: u64,
    },
    /// Gives back the values a node reserved and did not use (its range is dropped
    /// after an ALTER SEQUENCE): if nobody reserved after it, the sequence's position
    /// goes back to `position`, so the sequence goes on as if they were never taken.
    /// Otherwise nothing changes (they stay gaps).
    ReleaseSequence {
        /// The sequence's current id.
        sequence: SequenceId,
        /// The last value of the node's reservation.
        reserved_through: i64,
        /// The position from which the unused values follow.
        position: SequencePosition,
    },
    /// `setval`: moves a sequence's position.
    SetSequence {
        /// The sequence's current id.
        sequence: SequenceId,
        /// The new last value.
        value: i64,
        /// Whether `value` counts as handed out (the next is `value + increment`).
        is_called: bool,
    },
}

impl Operation {
    /// The DDL operations this one applies in order: a block's several, or itself.
    pub fn ddl_steps(&self) -> &[Operation] {
        match self {
            Operation::SchemaChanges { operations } => operations,
            lone => std::slice::from_ref(lone),
        }
    }

    /// The schema change a DDL operation makes; `None` for every other operation.
    pub fn schema_change(&self) -> Option<ddl::SchemaChange<'_>> {
        match self {
            Operation::CreateTable {
                spec,
                if_not_exists,
            } => Some(ddl::SchemaChange::CreateTable {
                spec,
                if_not_exists: *if_not_exists,
            }),
            Operation::DropTable { name, if_exists } => Some(ddl::SchemaChange::DropTables {
                names: std::slice::from_ref(name),
                if_exists: *if_exists,
            }),
            Operation::DropTables { names, if_exists } => Some(ddl::SchemaChange::DropTables {
                names,
                if_exists: *if_exists,
            }),
            Operation::Truncate { names } => Some(ddl::SchemaChange::Truncate { names }),
            Operation::CreateIndex {
                table,
                spec,
                if_not_exists,
            } => Some(ddl::SchemaChange::CreateIndex {
                table,
                spec,
                if_not_exists: *if_not_exists,
            }),
            Operation::DropIndex { name, if_exists } => Some(ddl::SchemaChange::DropIndex {
                name,
                if_exists: *if_exists,
            }),
            Operation::IndexReady { index, ready_ts } => Some(ddl::SchemaChange::IndexReady {
                index: *index,
                ready_ts: *ready_ts,
            }),
            Operation::CreateSequence {
                spec,
                if_not_exists,
            } => Some(ddl::SchemaChange::CreateSequence {
                spec,
                if_not_exists: *if_not_exists,
            }),
            Operation::AlterSequence {
                name,
                options,
                restart,
                owner,
            } => Some(ddl::SchemaChange::AlterSequence {
                name,
                options,
                restart: *restart,
                owner: owner.as_ref(),
            }),
            Operation::DropSequences { names, if_exists } => {
                Some(ddl::SchemaChange::DropSequences {
                    names,
                    if_exists: *if_exists,
                })
            }
            Operation::InstallCatalog { .. }
            | Operation::SchemaChanges { .. }
            | Operation::AdvanceSequence { .. }
            | Operation::ReleaseSequence { .. }
            | Operation::SetSequence { .. }
            | Operation::BackfillEntries { .. }
            | Operation::Advance
            | Operation::Commit { .. }
            | Operation::Prepare(_)
            | Operation::Decide { .. }
            | Operation::Resolve { .. } => None,
        }
    }

    /// Whether applying it changes the catalog (and so is synced at once).
    pub fn changes_catalog(&self) -> bool {
        match self {
            Operation::CreateTable { .. }
            | Operation::DropTable { .. }
            | Operation::DropTables { .. }
            | Operation::Truncate { .. }
            | Operation::CreateIndex { .. }
            | Operation::DropIndex { .. }
            | Operation::IndexReady { .. }
            | Operation::SchemaChanges { .. }
            | Operation::CreateSequence { .. }
            | Operation::AlterSequence { .. }
            | Operation::DropSequences { .. }
            | Operation::InstallCatalog { .. } => true,
            // A sequence's position is kept apart from the catalog.
            Operation::AdvanceSequence { .. }
            | Operation::ReleaseSequence { .. }
            | Operation::SetSequence { .. } => false,
            Operation::Advance
            | Operation::Commit { .. }
            | Operation::Prepare(_)
            | Operation::Decide { .. }
            | Operation::Resolve { .. }
            | Operation::BackfillEntries { .. } => false,
        }
    }
}

/// A change to a unique index entry whose shard is in another group than its row's
/// (see `shard::entry_shard`): the transaction sends it to the entry's group, within
/// the same cross-group commit as the row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexWrite {
    /// The row's table.
    pub table_id: TableId,
    /// The unique index.
    pub index_id: keys::IndexId,
    /// Encoded values of the indexed columns.
    pub values: Vec<u8>,
    /// The row's encoded primary key.
    pub pk: Vec<u8>,
    /// The row after the transaction, to add the entry (checked for uniqueness); `None`
    /// to remove it (the row's old values).
    pub row: Option<Vec<Value>>,
}

/// The final state of one row after a transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowWrite {
    /// The table written.
    pub table_id: TableId,
    /// Encoded primary key.
    pub pk: Vec<u8>,
    /// The new row, or `None` to delete it.
    pub row: Option<Vec<Value>>,
    /// True for INSERT: a live row with this key is a unique violation.
    pub insert: bool,
}

/// What applying a command did, besides changing state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Applied {
    /// The change was made.
    Done,
    /// Nothing to do (IF [NOT] EXISTS); the notice says why, as PostgreSQL's would.
    Skipped {
        /// Text of the notice.
        notice: String,
    },
    /// A cross-group transaction's share is prepared here at this timestamp (its commit
    /// timestamp must be at least the largest of its participants').
    Prepared {
        /// The prepare timestamp in this group.
        prepare_ts: u64,
    },
    /// A cross-group transaction's record holds this outcome (which may not be the one
    /// asked for: a reader may have aborted it first, or it committed before a reader's
    /// abort arrived).
    Decided {
        /// The outcome the record holds.
        outcome: TxnOutcome,
    },
    /// Values of a sequence reserved for the proposer.
    SequenceValues(Reservation),
}

/// Rows done and rows in all, reported while CREATE INDEX backfills.
pub type ProgressFn<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Applies commands to a store, keeping the in-memory catalog in step.
pub struct StateMachine {
    store: Arc<Store>,
    /// The group this state machine applies for (the embedded engine's one group holds
    /// every shard): index entries whose shard is elsewhere are not written here.
    group: GroupId,
    catalog: SharedCatalog,
    last_applied_ts: u64,
    /// Transactions prepared here and not yet resolved: while none is, no lock exists
    /// and commits skip reading locks.
    prepared: usize,
}

impl StateMachine {
    /// Loads the catalog and applied state from the store of the embedded engine, which
    /// hosts every shard in its one group.
    pub fn open(store: Arc<Store>) -> Result<StateMachine> {
        Self::open_group(store, crate::shard::FIRST_SHARD_GROUP)
    }

    /// Loads the catalog and applied state of data group `group` from its store.
    pub fn open_group(store: Arc<Store>, group: GroupId) -> Result<StateMachine> {
        let catalog = match store.get(Space::Meta, keys::META_CATALOG)? {
            Some(bytes) => encoding::decode(&bytes)?,
            None => Catalog::default(),
        };
        let last_applied_ts = match store.get(Space::Meta, keys::META_LAST_APPLIED_TS)? {
            Some(bytes) => encoding::decode(&bytes)?,
            None => 0,
        };
        let prepared = two_phase::count_prepared(&store)?;
        Ok(StateMachine {
            store,
            group,
            catalog: SharedCatalog::new(catalog),
            last_applied_ts,
            prepared,
        })
    }

    /// Where this state machine's data lives: what a Raft snapshot of it copies and
    /// what installing one replaces. Every row and index version (every shard: one
    /// data group holds them all until sharding spreads shards over groups) and the
    /// locks of prepared transactions, the catalog, the last applied timestamp, and
    /// prepared transactions and transaction records; not the local oracle's bound,
    /// which belongs to the embedded engine.
    pub fn data_ranges() -> Vec<KeyRange> {
        let everything = |space| KeyRange {
            space,
            start: Vec::new(),
            end: keys::AFTER_ALL_DATA.to_vec(),
        };
        let one_key = |key: &[u8]| KeyRange {
            space: Space::Meta,
            start: key.to_vec(),
            end: key.iter().copied().chain([0]).collect(),
        };
        let prefix = |prefix: &[u8]| KeyRange {
            space: Space::Meta,
            start: prefix.to_vec(),
            end: keycode::prefix_end(prefix).unwrap_or_else(|| vec![0xff]),
        };
        vec![
            everything(Space::Versions),
            everything(Space::Latest),
            one_key(keys::META_CATALOG),
            one_key(keys::META_LAST_APPLIED_TS),
            prefix(keys::META_PREPARED_PREFIX),
            prefix(keys::META_TXN_RECORD_PREFIX),
        ]
    }

    /// A handle that readers use to get the current catalog without taking the apply lock.
    pub fn catalog_handle(&self) -> SharedCatalog {
        self.catalog.clone()
    }

    /// Commit timestamp of the last command applied (0 on a new database).
    pub fn last_applied_ts(&self) -> u64 {
        self.last_applied_ts
    }

    fn current_catalog(&self) -> Arc<Catalog> {
        self.catalog.current()
    }

    /// Applies one command atomically. Callers apply commands one at a time, in commit
    /// timestamp order. A deterministic error leaves the state exactly as it was.
    pub fn apply(&mut self, command: &Command, progress: Option<ProgressFn>) -> Result<Applied> {
        self.apply_with(command, progress, Batch::default())
    }

    /// Like [`StateMachine::apply`], and writes `extra` whatever the outcome: in the same
    /// batch as the change, or alone (unsynced) when the command was skipped or failed
    /// deterministically. Raft records the entry's log id this way, so the data and the
    /// applied log id can never be out of step after a crash.
    pub fn apply_with(
        &mut self,
        command: &Command,
        progress: Option<ProgressFn>,
        extra: Batch,
    ) -> Result<Applied> {
        match self.plan(command, progress) {
            Ok(Planned::Change {
                applied,
                mut batch,
                catalog,
                prepared_delta,
            }) => {
                batch.append(extra);
                self.commit(command.commit_ts, batch, catalog)?;
                self.prepared = self
                    .prepared
                    .checked_add_signed(prepared_delta)
                    .unwrap_or_else(|| {
                        panic!("invariant broken: more transactions resolved than prepared")
                    });
                Ok(applied)
            }
            Ok(Planned::Skipped(applied)) => {
                self.write_alone(extra)?;
                Ok(applied)
            }
            Err(error) => {
                self.write_alone(extra)?;
                Err(error)
            }
        }
    }

    fn write_alone(&self, extra: Batch) -> Result<()> {
        if extra.is_empty() {
            return Ok(());
        }
        self.store.write_unsynced(extra)
    }

    /// Applies one catalog change's effect on this group's data into `batch`.
    fn apply_catalog_effect(
        &self,
        effect: &ddl::CatalogEffect,
        ts: u64,
        batch: &mut Batch,
        progress: Option<ProgressFn>,
    ) -> Result<()> {
        let (store, group, prepared) = (&self.store, self.group, self.prepared);
        ddl::apply_effect(store, group, effect, ts, prepared, batch, progress)
    }

    /// Works out what a command changes without writing anything.
    fn plan(&self, command: &Command, progress: Option<ProgressFn>) -> Result<Planned> {
        if command.commit_ts <= self.last_applied_ts {
            return Err(Error::SerializationFailure(format!(
                "commit timestamp {} is not after the last applied {}",
                command.commit_ts, self.last_applied_ts
            )));
        }
        let mut catalog = (*self.current_catalog()).clone();
        let mut batch = Batch::default();
        let ts = command.commit_ts;
        let mut prepared_delta: PreparedDelta = 0;
        let applied = match &command.operation {
            Operation::CreateTable { .. }
            | Operation::DropTable { .. }
            | Operation::DropTables { .. }
            | Operation::Truncate { .. }
            | Operation::CreateIndex { .. }
            | Operation::DropIndex { .. }
            | Operation::CreateSequence { .. }
            | Operation::AlterSequence { .. }
            | Operation::DropSequences { .. }
            | Operation::IndexReady { .. } => {
                let change = command.operation.schema_change().ok_or_else(|| {
                    Error::Internal("a DDL operation without a schema change".into())
                })?;
                let effect = ddl::change_catalog(&mut catalog, change, ts)?;
                if let ddl::CatalogEffect::Skipped(applied) = effect {
                    return Ok(Planned::Skipped(applied));
                }
                self.apply_catalog_effect(&effect, ts, &mut batch, progress)?;
                Applied::Done
            }
            Operation::AdvanceSequence { sequence, count } => {
                sequences::advance(&self.store, &catalog, *sequence, *count, &mut batch)?
            }
            Operation::SetSequence {
                sequence,
                value,
                is_called,
            } => sequences::set(&catalog, *sequence, *value, *is_called, &mut batch)?,
            Operation::ReleaseSequence {
                sequence,
                reserved_through,
                position,
            } => sequences::release(
                &self.store,
                &catalog,
                *sequence,
                *reserved_through,
                *position,
                &mut batch,
            )?,
            Operation::SchemaChanges { operations } => {
                for operation in operations {
                    let change = operation.schema_change().ok_or_else(|| {
                        Error::Internal(format!("{operation:?} in a block's schema changes"))
                    })?;
                    let effect = ddl::change_catalog(&mut catalog, change, ts)?;
                    self.apply_catalog_effect(&effect, ts, &mut batch, progress)?;
                }
                Applied::Done
            }
            Operation::InstallCatalog { catalog: new } => {
                if new.version() <= catalog.version() {
                    return Ok(Planned::Skipped(skipped(format!(
                        "catalog version {} is installed already",
                        catalog.version()
                    ))));
                }
                for effect in ddl::install_effects(&catalog, new) {
                    self.apply_catalog_effect(&effect, ts, &mut batch, progress)?;
                }
                catalog = (**new).clone();
                Applied::Done
            }
            Operation::Advance => Applied::Done,
            Operation::Commit {
                start_ts,
                catalog_version,
                writes,
            } => {
                require_catalog_version(&catalog, *catalog_version, writes, &[])?;
                let locks = self.lock_check(None);
                let share = Share { writes, sent: &[] };
                self.apply_commit(&catalog, *start_ts, ts, share, locks, &mut batch)?;
                Applied::Done
            }
            Operation::Prepare(prepare) => {
                let (version, writes, sent) = (
                    prepare.catalog_version,
                    &prepare.writes,
                    &prepare.index_writes,
                );
                require_catalog_version(&catalog, version, writes, sent)?;
                let (applied, delta) = self.plan_prepare(&catalog, ts, prepare, &mut batch)?;
                prepared_delta = delta;
                applied
            }
            Operation::Decide { txn, outcome } => {
                let (applied, delta) = self.plan_decide(&catalog, *txn, *outcome, &mut batch)?;
                prepared_delta = delta;
                applied
            }
            Operation::Resolve { txn, outcome } => {
                prepared_delta = self.resolve_share(&catalog, *txn, *outcome, &mut batch)?;
                Applied::Done
            }
            Operation::BackfillEntries { entries } => {
                if self.prepared > 0 {
                    two_phase::refuse_prepared_entries(&self.store, entries)?;
                }
                let locks = self.lock_check(None);
                let mut writer = IndexWriter::new(&self.store, self.group, ts, locks);
                for entry in entries {
                    let table = catalog.table_by_id(entry.table_id).ok_or_else(|| {
                        Error::UndefinedTable(format!(
                            "table with id {} (dropped while its index was built)",
                            entry.table_id
                        ))
                    })?;
                    writer.backfill_sent(table, entry, &mut batch)?;
                }
                writer.finish(&catalog)?;
                Applied::Done
            }
        };
        let catalog_changed = command.operation.changes_catalog();
        if catalog_changed {
            sequences::forget_dropped(&self.current_catalog(), &catalog, &mut batch);
            batch.put(
                Space::Meta,
                keys::META_CATALOG.to_vec(),
                encoding::encode(&catalog)?,
            );
        }
        batch.put(
            Space::Meta,
            keys::META_LAST_APPLIED_TS.to_vec(),
            encoding::encode(&ts)?,
        );
        Ok(Planned::Change {
            applied,
            batch,
            catalog: catalog_changed.then_some(catalog),
            prepared_delta,
        })
    }

    /// Writes a planned change and makes it the current state.
    fn commit(&mut self, ts: u64, batch: Batch, catalog: Option<Catalog>) -> Result<()> {
        // A commit's durability is the replica's job: it syncs the log once for a group
        // of commits (group commit). A catalog change is synced here, before the new
        // catalog becomes visible to planners.
        if catalog.is_some() {
            self.store.write(batch)?;
        } else {
            self.store.write_unsynced(batch)?;
        }
        self.last_applied_ts = ts;
        if let Some(catalog) = catalog {
            self.catalog.replace(Arc::new(catalog));
        }
        Ok(())
    }

    /// Re-reads the catalog and applied timestamp from the store, after something other
    /// than [`StateMachine::apply`] replaced the data (a Raft snapshot was installed).
    pub fn reload(&mut self) -> Result<()> {
        let fresh = StateMachine::open_group(Arc::clone(&self.store), self.group)?;
        self.last_applied_ts = fresh.last_applied_ts;
        self.prepared = fresh.prepared;
        self.catalog.replace(fresh.current_catalog());
        Ok(())
    }

    /// Checks a commit's writes and adds their versions and index changes to `batch`.
    /// Returns the lock keys of the unique values it adds (what a prepare claims).
    fn apply_commit(
        &self,
        catalog: &Catalog,
        start_ts: u64,
        commit_ts: u64,
        share: Share,
        locks: LockCheck,
        batch: &mut Batch,
    ) -> Result<Vec<Vec<u8>>> {
        let Share { writes, sent } = share;
        let mut index_writer = IndexWriter::new(&self.store, self.group, commit_ts, locks);
        for chunk in writes.chunks(LOOKUP_CHUNK) {
            let mut located = Vec::with_capacity(chunk.len());
            let mut prefixes = Vec::with_capacity(chunk.len());
            for write in chunk {
                let table = catalog.table_by_id(write.table_id).ok_or_else(|| {
                    Error::UndefinedTable(format!(
                        "table with id {} (dropped concurrently)",
                        write.table_id
                    ))
                })?;
                let shard = keys::shard_for(&write.pk, table.shard_count);
                prefixes.push(keys::row_prefix(shard, table.id, &write.pk));
                located.push((write, table, shard));
            }
            self.refuse_locked_rows(&located, locks)?;
            let previous_versions = mvcc::read_latest_versions(&self.store, &prefixes)?;
            let rows = located.into_iter().zip(prefixes).zip(previous_versions);
            for (((write, table, shard), prefix), previous) in rows {
                let row = LocatedWrite {
                    write,
                    table,
                    shard,
                    prefix,
                    previous,
                };
                self.apply_row_write(row, start_ts, commit_ts, &mut index_writer, batch)?;
            }
        }
        for write in sent {
            let table = catalog.table_by_id(write.table_id).ok_or_else(|| {
                Error::UndefinedTable(format!(
                    "table with id {} (dropped concurrently)",
                    write.table_id
                ))
            })?;
            index_writer.apply_sent(table, write, batch)?;
        }
        index_writer.finish(catalog)
    }

    /// Checks one row write against the row's newest version and adds it, with its index
    /// changes, to the batch.
    fn apply_row_write(
        &self,
        located: LocatedWrite,
        start_ts: u64,
        commit_ts: u64,
        index_writer: &mut IndexWriter,
        batch: &mut Batch,
    ) -> Result<()> {
        let LocatedWrite {
            write,
            table,
            shard,
            prefix,
            previous,
        } = located;
        if let Some((version_ts, _)) = &previous {
            if *version_ts > start_ts {
                return Err(Error::SerializationFailure(format!(
                    "a row of \"{}\" was changed by a concurrent transaction",
                    table.name
                )));
            }
        }
        let old_row: Option<Vec<Value>> = match &previous {
            Some((_, bytes)) if bytes != TOMBSTONE => Some(encoding::decode(bytes)?),
            _ => None,
        };
        if write.insert && old_row.is_some() {
            return Err(duplicate_primary_key(table, &write.pk));
        }
        let change = RowChange {
            table,
            shard,
            pk: &write.pk,
            old: old_row.as_deref(),
            new: write.row.as_deref(),
            // A row that never existed has no index entries (their keys hold its pk).
            has_history: previous.is_some(),
        };
        index_writer.update(&change, batch)?;
        let value = match &write.row {
            Some(row) => encoding::encode(row)?,
            None => TOMBSTONE.to_vec(),
        };
        mvcc::put_version(batch, prefix, commit_ts, &value, previous);
        Ok(())
    }
}

impl StateMachine {
    /// Fails with 40001 when a row of the chunk is locked by another transaction's
    /// prepare: the row's next version is not known until that transaction is decided.
    fn refuse_locked_rows(
        &self,
        located: &[(&RowWrite, &Table, keys::ShardId)],
        locks: LockCheck,
    ) -> Result<()> {
        let LockCheck::Respect { owner } = locks else {
            return Ok(());
        };
        let lock_keys: Vec<Vec<u8>> = located
            .iter()
            .map(|(write, table, shard)| keys::row_lock_key(*shard, table.id, &write.pk))
            .collect();
        for ((_, table, _), found) in located
            .iter()
            .zip(self.store.multi_get(Space::Latest, &lock_keys)?)
        {
            let Some(bytes) = found else { continue };
            let lock: two_phase::Lock = encoding::decode(&bytes)?;
            if Some(lock.txn) != owner {
                return Err(Error::SerializationFailure(format!(
                    "a row of \"{}\" is locked by transaction {}, which is being \
                     committed across groups",
                    table.name, lock.txn
                )));
            }
        }
        Ok(())
    }
}

/// What a command will do, worked out before anything is written.
enum Planned {
    /// Nothing to write but the notice (IF [NOT] EXISTS).
    Skipped(Applied),
    /// The writes, and the new catalog when the command changes it.
    Change {
        applied: Applied,
        batch: Batch,
        catalog: Option<Catalog>,
        prepared_delta: PreparedDelta,
    },
}

/// Rows of a commit checked per batched storage lookup: bounds the memory a lookup holds.
const LOOKUP_CHUNK: usize = 4096;

/// A row write with its table, shard, record key and newest stored version.
struct LocatedWrite<'a> {
    write: &'a RowWrite,
    table: &'a Table,
    shard: keys::ShardId,
    prefix: Vec<u8>,
    previous: Option<mvcc::Version>,
}

fn skipped(notice: String) -> Applied {
    Applied::Skipped { notice }
}

/// Fails (retryable) when the group's catalog is older than the one a commit was
/// planned against (the group has not installed it yet), or when a table it writes
/// changed after it (the index entries it sends other groups were worked out without
/// the change).
fn require_catalog_version(
    catalog: &Catalog,
    planned: u64,
    writes: &[RowWrite],
    sent: &[IndexWrite],
) -> Result<()> {
    if catalog.version() < planned {
        return Err(Error::Retryable(format!(
            "this group has catalog version {}, older than the version {planned} the \
             transaction was planned against",
            catalog.version()
        )));
    }
    let tables = writes
        .iter()
        .map(|write| write.table_id)
        .chain(sent.iter().map(|write| write.table_id));
    for table_id in tables {
        if let Some(table) = catalog.table_by_id(table_id) {
            if table.changed_version > planned {
                return Err(Error::SerializationFailure(format!(
                    "the definition of \"{}\" changed while the transaction ran",
                    table.name
                )));
            }
        }
    }
    Ok(())
}

/// What a commit writes in one group: its rows, and the unique index entries other
/// groups' rows sent here.
#[derive(Clone, Copy)]
struct Share<'a> {
    writes: &'a [RowWrite],
    sent: &'a [IndexWrite],
}

fn delete_prefix(prefix: &[u8], batch: &mut Batch) {
    if let Some(end) = keycode::prefix_end(prefix) {
        mvcc::delete_records(batch, prefix.to_vec(), end);
    }
}

fn delete_table_data(table: &Table, batch: &mut Batch) {
    for shard in table.shards() {
        delete_prefix(&keys::table_rows_prefix(shard, table.id), batch);
        delete_prefix(&keys::table_index_prefix(shard, table.id), batch);
    }
}

/// The 23505 error for a primary key that is already taken, with PostgreSQL's detail.
pub fn duplicate_primary_key(table: &Table, pk: &[u8]) -> Error {
    let mut position = 0;
    let values =
        keycode::decode_values(pk, &mut position, table.primary_key.len()).unwrap_or_default();
    let columns: Vec<&str> = table
        .primary_key
        .iter()
        .map(|&i| table.columns[i].name.as_str())
        .collect();
    Error::UniqueViolation {
        constraint: table.primary_key_name(),
        detail: key_detail(&columns, &values),
    }
}

/// PostgreSQL's `Key (a, b)=(1, x) already exists.` detail text.
pub fn key_detail(columns: &[&str], values: &[Value]) -> String {
    let shown: Vec<String> = values
        .iter()
        .map(|v| {
            if v.is_null() {
                "null".into()
            } else {
                v.to_string()
            }
        })
        .collect();
    format!(
        "Key ({})=({}) already exists.",
        columns.join(", "),
        shown.join(", ")
    )
}
