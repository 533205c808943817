//! MVCC transactions with snapshot isolation.
//!
//! A transaction reads one consistent snapshot — every commit at or below its start
//! timestamp, nothing after — plus its own buffered writes, and sends those writes in one
//! command at COMMIT. The state machine then rejects the commit if any row it writes was
//! committed by someone else after the snapshot: first committer wins, and the loser gets
//! SQLSTATE 40001 and retries. Nothing is written before COMMIT, so an aborted
//! transaction leaves nothing behind and readers never see uncommitted data.
//!
//! Each statement inside a transaction takes a savepoint of the write buffer, so a failing
//! statement is undone whole even inside an open transaction block.
//!
//! In a cluster a transaction may start on this replica's snapshot as it is, without
//! the round that confirms it fresh ([`Transaction::begin_unconfirmed`]): what it reads
//! of a row it also writes needs no such round, because the commit refuses it if the row
//! changed since the snapshot, so the value read is the latest at the commit. It records
//! every other read; the session confirms the snapshot (the round, then a check that no
//! row written so far changed since) before any such read is answered, and reruns the
//! statement on the confirmed snapshot. That spares the round in the common write
//! transaction that reads only the rows it updates.
//!
//! Snapshot isolation allows write skew (two transactions each read what the other
//! writes, and both commit); serializable isolation is a later goal.

mod coordinator;
mod locks;
mod scan;

pub use locks::{clean_abandoned, FirstSeen, ABANDONED_AFTER};
pub use scan::{RowScan, RowSource};

use crate::catalog::{Catalog, Index, Table};
use crate::encoding::{self, keycode};
use crate::error::{Error, Result};
use crate::replica::{ReadLevel, Replica};
use crate::shard::{self, GroupId};
use crate::state_machine::{
    duplicate_primary_key, index_values, unique_violation, IndexWrite, Operation, RowWrite,
};
use crate::storage::keys::{IndexId, TableId};
use crate::storage::mvcc;
use crate::types::Value;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The buffered final state of one row.
#[derive(Clone, Debug)]
struct PendingWrite {
    /// The new row, or `None` for a deletion.
    row: Option<Vec<Value>>,
    /// True when the row did not exist in the snapshot (an INSERT).
    insert: bool,
}

type RowId = (TableId, Vec<u8>);

/// One transaction: a snapshot to read, a buffer of writes, and an undo log for
/// statement-level rollback.
pub struct Transaction {
    replica: Arc<Replica>,
    /// The snapshot: fixed, or on an unconfirmed start still to be chosen by the first
    /// group read.
    snapshot: Cell<Snapshot>,
    writes: BTreeMap<RowId, PendingWrite>,
    /// Rows this transaction wrote with non-NULL values in a unique index, by (index id,
    /// encoded values). Entries may be stale (the row changed again or was rolled back):
    /// checks re-read the row, so staleness costs a lookup, never a wrong answer.
    unique_written: HashMap<(IndexId, Vec<u8>), Vec<Vec<u8>>>,
    /// What each buffered write replaced, newest last, for [`Transaction::rollback_to`].
    undo: Vec<(RowId, Option<PendingWrite>)>,
    /// Set while the snapshot is not yet known to be fresh enough for `level`.
    unconfirmed: Option<Unconfirmed>,
    /// Set for a read-only statement that confirms only the first group it reads.
    single_group: Option<SingleGroup>,
    /// The lowest timestamp the snapshot may be (the session's own earlier commit; see
    /// [`Transaction::reading_after`]).
    session_floor: u64,
}

/// A read-only statement's snapshot confirmed in one group only (see
/// [`Transaction::begin_single_group`]).
struct SingleGroup {
    /// The read consistency the group's read round gives.
    level: ReadLevel,
    /// The catalog version the statement was planned against.
    catalog_version: u64,
    /// The group the snapshot was confirmed in, once chosen.
    group: Cell<Option<GroupId>>,
    /// Set when the statement asked for more than the snapshot can answer (another
    /// group, or a group whose catalog is newer than the plan's).
    refused: Cell<bool>,
}

/// A transaction's snapshot timestamp, or where it is still to be chosen.
#[derive(Clone, Copy, Debug)]
enum Snapshot {
    /// Every read is at this timestamp.
    Fixed(u64),
    /// Not chosen yet (an unconfirmed or single-group start): the first group read
    /// chooses the timestamp that group is complete at (see [`Transaction::chosen_ts`]);
    /// `floor` is what planning assumes meanwhile: the lowest applied timestamp of the
    /// groups hosted here when the transaction began, or the session's own last commit.
    Open { floor: u64 },
}

/// What a transaction on an unconfirmed snapshot has read that its commit may not check.
struct Unconfirmed {
    /// The read consistency the snapshot must be confirmed at.
    level: ReadLevel,
    /// Rows read from the snapshot (by primary key): fine while each is also written.
    rows_read: RefCell<Vec<RowId>>,
    /// A range or index scan was asked for: its phantoms no commit check covers.
    scanned: Cell<bool>,
}

/// A point in a transaction's writes that a failed statement rolls back to.
#[derive(Clone, Copy, Debug)]
pub struct Savepoint(usize);

impl Transaction {
    /// Begins a transaction reading the newest complete snapshot the replica can give
    /// at read consistency `level` (in a cluster this may wait for the replica to catch
    /// up, or fail when it cannot).
    pub fn begin(replica: Arc<Replica>, level: ReadLevel) -> Result<Transaction> {
        let start_ts = replica.read_timestamp(level)?;
        Ok(Self::begin_at(replica, start_ts))
    }

    /// Begins a read-only statement's transaction whose snapshot is confirmed at
    /// `level` in the first group it reads only: that group's read round, then the
    /// timestamp it is complete at on the replica that ran the round (this node's, or
    /// a host's where this node has none). For a statement reading one group that is
    /// exactly what a snapshot across groups would give it of that group (every write
    /// acknowledged there before the read is in it), with one read round instead of
    /// one per group and no group moved up — a point SELECT by key, the commonest
    /// read. A read of a second group, or of a group whose catalog is newer than the
    /// plan's, is refused ([`Transaction::refused_single_group`]): the caller runs the
    /// statement again on a snapshot across groups. As YugabyteDB picks a
    /// single-tablet statement's read time at the tablet.
    pub fn begin_single_group(replica: Arc<Replica>, level: ReadLevel) -> Result<Transaction> {
        let floor = match replica.cluster() {
            Some(cluster) => cluster.lowest_hosted_applied(),
            None => replica.read_timestamp(level)?,
        };
        let catalog_version = replica.catalog().version();
        let mut txn = Self::begin_at(replica, floor);
        txn.snapshot = Cell::new(Snapshot::Open { floor });
        txn.single_group = Some(SingleGroup {
            level,
            catalog_version,
            group: Cell::new(None),
            refused: Cell::new(false),
        });
        Ok(txn)
    }

    /// Whether a single-group statement asked for more than its snapshot can answer
    /// (see [`Transaction::begin_single_group`]): its result must not be used.
    pub fn refused_single_group(&self) -> bool {
        self.single_group
            .as_ref()
            .is_some_and(|single| single.refused.get())
    }

    /// A transaction reading at `start_ts`.
    fn begin_at(replica: Arc<Replica>, start_ts: u64) -> Transaction {
        Transaction {
            replica,
            snapshot: Cell::new(Snapshot::Fixed(start_ts)),
            writes: BTreeMap::new(),
            unique_written: HashMap::new(),
            undo: Vec::new(),
            unconfirmed: None,
            single_group: None,
            session_floor: 0,
        }
    }

    /// Begins a transaction on this replica's snapshot as it is, to be confirmed at
    /// `level` before anything its commit does not check is answered (see the module
    /// doc): the caller runs each statement, then [`Transaction::needs_confirmation`]
    /// says whether to roll the statement back, [`Transaction::confirm`] and rerun it.
    pub fn begin_unconfirmed(replica: Arc<Replica>, level: ReadLevel) -> Result<Transaction> {
        let floor = match replica.cluster() {
            // No call to another node: groups hosted elsewhere choose their own
            // timestamp when first read (see `Transaction::chosen_ts`).
            Some(cluster) => cluster.lowest_hosted_applied(),
            None => replica.read_timestamp(ReadLevel::Stale {
                max_staleness: None,
            })?,
        };
        let mut txn = Self::begin_at(replica, floor);
        txn.snapshot = Cell::new(Snapshot::Open { floor });
        txn.unconfirmed = Some(Unconfirmed {
            level,
            rows_read: RefCell::new(Vec::new()),
            scanned: Cell::new(false),
        });
        Ok(txn)
    }

    /// Whether the snapshot is still unconfirmed (see [`Transaction::begin_unconfirmed`]).
    pub fn is_unconfirmed(&self) -> bool {
        self.unconfirmed.is_some()
    }

    /// Whether the transaction has read, on its unconfirmed snapshot, something its
    /// commit will not check: a scan, or a row it does not write.
    pub fn needs_confirmation(&self) -> bool {
        let Some(unconfirmed) = &self.unconfirmed else {
            return false;
        };
        unconfirmed.scanned.get()
            || unconfirmed
                .rows_read
                .borrow()
                .iter()
                .any(|row| !self.writes.contains_key(row))
    }

    /// Confirms the snapshot: takes a fresh one at the transaction's read consistency
    /// and moves the transaction onto it, which is sound only if no row written so far
    /// changed in between (what was computed from them still holds); otherwise fails
    /// with 40001, as the commit would have. Reads recorded since the last statement
    /// that needed no confirmation are forgotten: the caller has rolled that statement
    /// back and runs it again.
    pub fn confirm(&mut self) -> Result<()> {
        let Some(unconfirmed) = self.unconfirmed.take() else {
            return Ok(());
        };
        let fresh_ts = self.replica.read_timestamp(unconfirmed.level)?;
        self.settle_written_rows(fresh_ts)?;
        let by_group = self.written_rows_by_group()?;
        for (group, prefixes) in by_group {
            for chunk in prefixes.chunks(CONFIRM_CHUNK) {
                let latest = self.replica.read_latest_versions(group, chunk, fresh_ts)?;
                if latest
                    .iter()
                    .flatten()
                    .any(|(version_ts, _)| *version_ts > self.start_ts())
                {
                    return Err(Error::SerializationFailure(
                        "a row this transaction wrote was changed by a concurrent transaction"
                            .into(),
                    ));
                }
            }
        }
        self.snapshot.set(Snapshot::Fixed(fresh_ts));
        Ok(())
    }

    /// Settles the cross-group commits' locks on the rows written so far that the
    /// fresh snapshot at `fresh_ts` covers, so that their versions are written before
    /// [`Transaction::confirm`] looks for versions newer than the old snapshot. A
    /// commit decided but not yet resolved here would otherwise show no version yet,
    /// the snapshot would move past its commit timestamp, and this transaction's
    /// commit would overwrite it with a value computed from the row before it: a lost
    /// update. A lock above `fresh_ts` needs nothing: its commit lands above the new
    /// snapshot, so this transaction's commit is refused by it.
    fn settle_written_rows(&self, fresh_ts: u64) -> Result<()> {
        if !self.replica.may_hold_locks() {
            return Ok(());
        }
        let catalog = self.replica.catalog();
        for (table_id, pk) in self.writes.keys() {
            let table = catalog
                .table_by_id(*table_id)
                .ok_or_else(dropped_concurrently)?;
            let (group, _) = shard::locate_row(table, pk);
            locks::settle_row(&self.replica, table, pk, group, fresh_ts)?;
        }
        Ok(())
    }

    /// The snapshot timestamp; while it is still to be chosen, the lowest it can be.
    pub fn start_ts(&self) -> u64 {
        match self.snapshot.get() {
            Snapshot::Fixed(ts) | Snapshot::Open { floor: ts } => ts,
        }
    }

    /// The timestamp to read `group` at, choosing it if this is the first group read.
    ///
    /// An unconfirmed start leaves the choice to the first group read, which takes the
    /// timestamp that group is complete at on this replica, so a transaction touching
    /// one group reads it as fresh as this replica has it whatever the other groups did
    /// — as on one group, its writes conflict only with commits it truly missed — and
    /// no other group is moved up for it. (A snapshot fixed at begin would be the
    /// lowest group's, older than the rows of a busy group.) Groups read later are
    /// made readable at that timestamp (`raft::catch_up`). As YugabyteDB lets the first
    /// tablet a statement touches pick its read time.
    fn snapshot_ts(&self, group: GroupId) -> Result<u64> {
        match (self.snapshot.get(), &self.single_group) {
            (Snapshot::Fixed(ts), Some(single)) => match single.group.get() {
                Some(confirmed) if confirmed != group => {
                    single.refused.set(true);
                    Err(Error::SerializationFailure(
                        "a statement reading several groups needs a snapshot across them".into(),
                    ))
                }
                _ => Ok(ts),
            },
            (Snapshot::Fixed(ts), None) => Ok(ts),
            (Snapshot::Open { floor }, Some(single)) => {
                let confirmed = self.confirm_first_group(single, group)?;
                let ts = self.chosen_ts(confirmed, floor);
                self.snapshot.set(Snapshot::Fixed(ts));
                Ok(ts)
            }
            (Snapshot::Open { floor }, None) => {
                let ts = self.chosen_ts(self.replica.applied_as_is(group)?, floor);
                self.snapshot.set(Snapshot::Fixed(ts));
                Ok(ts)
            }
        }
    }

    /// A single-group statement's snapshot: `group`'s read round, on this node's
    /// replica or a host's (refused when the group's catalog there is newer than the
    /// plan's).
    fn confirm_first_group(&self, single: &SingleGroup, group: GroupId) -> Result<u64> {
        let Some(cluster) = self.replica.cluster() else {
            return self.replica.read_timestamp(single.level);
        };
        let prepared = cluster.read_round(group, single.level)?;
        if prepared.catalog_version > single.catalog_version {
            single.refused.set(true);
            return Err(Error::SerializationFailure(
                "the statement was planned against an older catalog".into(),
            ));
        }
        single.group.set(Some(group));
        Ok(prepared.applied_ts)
    }

    /// The snapshot timestamp an open snapshot takes in the first group it reads: that
    /// group's own (`complete`: after its read round, or as this replica has it),
    /// raised to the session's floor (its own earlier commit). The transaction was
    /// planned while the timestamp was open, as if it were `floor` (an index created at
    /// or below `floor` was usable); reading below `floor` is sound only while no index
    /// was created in between, else it reads at `floor` (moving the group up). `floor`
    /// is the lowest applied timestamp of the groups hosted here, which a group hosted
    /// elsewhere may well be below without missing anything committed before it: moving
    /// that group up each time would cost an entry per transaction.
    fn chosen_ts(&self, complete: u64, floor: u64) -> u64 {
        let lowest = complete.max(self.session_floor);
        if lowest >= floor {
            return lowest;
        }
        let catalog = self.replica.catalog();
        let created_between = catalog
            .tables()
            .flat_map(|table| table.indexes.iter())
            .any(|index| index.created_ts > lowest && index.created_ts <= floor);
        if created_between {
            floor
        } else {
            lowest
        }
    }

    /// Whether this transaction's snapshot may read through `index` (it must have existed
    /// when the snapshot was taken). While the timestamp is still to be chosen, the
    /// lowest it can be answers: an index usable there is usable at any later one.
    pub fn can_use_index(&self, index: &Index) -> bool {
        index.created_ts <= self.start_ts()
    }

    /// Whether the transaction has buffered any write.
    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// Reads one row by encoded primary key: own writes first, then the snapshot.
    pub fn get(&self, table: &Table, pk: &[u8]) -> Result<Option<Vec<Value>>> {
        if let Some(pending) = self.writes.get(&(table.id, pk.to_vec())) {
            return Ok(pending.row.clone());
        }
        self.get_committed(table, pk)
    }

    /// Reads one row from the snapshot only, ignoring own writes.
    pub fn get_committed(&self, table: &Table, pk: &[u8]) -> Result<Option<Vec<Value>>> {
        self.record_row_read(table, pk);
        let (group, prefix) = shard::locate_row(table, pk);
        self.settle_row(table, pk, group)?;
        let read_ts = self.snapshot_ts(group)?;
        match self.replica.read_live(group, &prefix, read_ts)? {
            Some(bytes) => Ok(Some(encoding::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Whether a live row with this key is in the snapshot (without decoding it).
    fn exists_committed(&self, table: &Table, pk: &[u8]) -> Result<bool> {
        self.record_row_read(table, pk);
        let (group, prefix) = shard::locate_row(table, pk);
        self.settle_row(table, pk, group)?;
        let read_ts = self.snapshot_ts(group)?;
        Ok(self.replica.read_live(group, &prefix, read_ts)?.is_some())
    }

    /// Before a row is read: settles a cross-group commit's lock on it that the snapshot
    /// cannot ignore (see [`locks`]). Free where no lock can exist.
    fn settle_row(&self, table: &Table, pk: &[u8], group: GroupId) -> Result<()> {
        if !self.replica.may_hold_locks() {
            return Ok(());
        }
        let read_ts = self.snapshot_ts(group)?;
        locks::settle_row(&self.replica, table, pk, group, read_ts)
    }

    /// Before a shard's part of a scan is read: settles the locks there that the
    /// snapshot cannot ignore. On an unconfirmed snapshot nothing is settled: the scan
    /// is refused and rerun on a confirmed one.
    fn settle_shard(
        &self,
        table: &Table,
        shard: crate::storage::keys::ShardId,
        group: GroupId,
    ) -> Result<()> {
        if !self.replica.may_hold_locks() || self.unconfirmed.is_some() {
            return Ok(());
        }
        let read_ts = self.snapshot_ts(group)?;
        locks::settle_shard(&self.replica, table, shard, group, read_ts)
    }

    /// Whether a row has a buffered write (scans skip such rows in storage and take the
    /// buffered version instead).
    pub fn is_pending(&self, table_id: TableId, pk: &[u8]) -> bool {
        self.writes.contains_key(&(table_id, pk.to_vec()))
    }

    /// Every live row this transaction has written to a table, in key order.
    pub fn pending_rows(&self, table_id: TableId) -> Vec<Vec<Value>> {
        let start = (table_id, Vec::new());
        self.writes
            .range(start..)
            .take_while(|((id, _), _)| *id == table_id)
            .filter_map(|(_, pending)| pending.row.clone())
            .collect()
    }

    /// Fails (40001, which the session answers by confirming the snapshot and running
    /// the statement again) when a scan is asked of an unconfirmed snapshot.
    fn refuse_unconfirmed_scan(&self) -> Result<()> {
        if let Some(unconfirmed) = &self.unconfirmed {
            unconfirmed.scanned.set(true);
            return Err(Error::SerializationFailure(
                "a scan needs a confirmed snapshot".into(),
            ));
        }
        Ok(())
    }

    /// Notes a row read from an unconfirmed snapshot.
    fn record_row_read(&self, table: &Table, pk: &[u8]) {
        if let Some(unconfirmed) = &self.unconfirmed {
            unconfirmed
                .rows_read
                .borrow_mut()
                .push((table.id, pk.to_vec()));
        }
    }

    /// Buffers a new row; fails with 23505 if its primary key or a unique index value is
    /// taken in the snapshot or by an earlier write of this transaction.
    pub fn insert(&mut self, table: &Table, row: Vec<Value>) -> Result<()> {
        let pk = encode_primary_key(table, &row);
        self.check_unique(table, &row, &pk)?;
        let id = (table.id, pk);
        let existing = self
            .writes
            .get(&id)
            .map(|pending| (pending.row.is_some(), pending.insert));
        let insert = match existing {
            Some((true, _)) => return Err(duplicate_primary_key(table, &id.1)),
            // Re-inserting a row this transaction deleted: to storage it is an update.
            Some((false, insert)) => insert,
            None => {
                if self.exists_committed(table, &id.1)? {
                    return Err(duplicate_primary_key(table, &id.1));
                }
                true
            }
        };
        self.buffer(
            id,
            PendingWrite {
                row: Some(row),
                insert,
            },
        );
        Ok(())
    }

    /// Replaces the row stored under `old_pk` by `row`, checking unique indexes. When the
    /// update changes the primary key, this is a delete of the old key and an insert of
    /// the new one.
    pub fn update(&mut self, table: &Table, old_pk: &[u8], row: Vec<Value>) -> Result<()> {
        let new_pk = encode_primary_key(table, &row);
        if new_pk != old_pk {
            self.delete(table, old_pk)?;
            return self.insert(table, row);
        }
        self.check_unique(table, &row, &new_pk)?;
        let id = (table.id, new_pk);
        let insert = self.writes.get(&id).is_some_and(|p| p.insert);
        self.buffer(
            id,
            PendingWrite {
                row: Some(row),
                insert,
            },
        );
        Ok(())
    }

    /// Deletes the row stored under `pk`.
    pub fn delete(&mut self, table: &Table, pk: &[u8]) -> Result<()> {
        let id = (table.id, pk.to_vec());
        match self.writes.get(&id) {
            // A row this transaction inserted simply disappears from the buffer.
            Some(PendingWrite { insert: true, .. }) => {
                let previous = self.writes.remove(&id);
                self.undo.push((id, previous));
            }
            _ => self.buffer(
                id,
                PendingWrite {
                    row: None,
                    insert: false,
                },
            ),
        }
        Ok(())
    }

    fn buffer(&mut self, id: RowId, write: PendingWrite) {
        let previous = self.writes.insert(id.clone(), write);
        self.undo.push((id, previous));
    }

    /// Fails with 23505 when `row` (to be stored under `pk`) would share the values of a
    /// unique index with another row, as this transaction sees the data. The commit
    /// checks again against rows committed concurrently.
    fn check_unique(&mut self, table: &Table, row: &[Value], pk: &[u8]) -> Result<()> {
        for index in table.indexes.iter().filter(|i| i.unique) {
            if index.columns.iter().any(|&c| row[c].is_null()) {
                continue;
            }
            let values = index_values(index, row);
            if self.unique_holder(table, index, &values, pk)?.is_some() {
                return Err(unique_violation(table, index, row));
            }
            self.unique_written
                .entry((index.id, values))
                .or_default()
                .push(pk.to_vec());
        }
        Ok(())
    }

    /// The row other than `except_pk` that holds `values` (encoded) in unique `index`,
    /// as this transaction sees it (its own writes included), with its primary key.
    fn unique_holder(
        &self,
        table: &Table,
        index: &Index,
        values: &[u8],
        except_pk: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<Value>)>> {
        let mut candidates = self.committed_index_entries(table, index, values)?;
        if let Some(written) = self.unique_written.get(&(index.id, values.to_vec())) {
            candidates.extend(written.iter().cloned());
        }
        for candidate in candidates.into_iter().filter(|c| c.as_slice() != except_pk) {
            if let Some(other) = self.get(table, &candidate)? {
                if index_values(index, &other) == values {
                    return Ok(Some((candidate, other)));
                }
            }
        }
        Ok(None)
    }

    /// The live row whose primary key or value in unique `index` (the primary key when
    /// `None`) is `row`'s, as this transaction sees it, with its primary key: the row an
    /// INSERT of `row` would conflict with there (ON CONFLICT). NULLs conflict with
    /// nothing, as in PostgreSQL.
    pub fn conflicting_row(
        &self,
        table: &Table,
        index: Option<&Index>,
        row: &[Value],
    ) -> Result<Option<(Vec<u8>, Vec<Value>)>> {
        match index {
            None => {
                let pk = encode_primary_key(table, row);
                Ok(self.get(table, &pk)?.map(|existing| (pk, existing)))
            }
            Some(index) if index.columns.iter().any(|&c| row[c].is_null()) => Ok(None),
            // The row with the same primary key counts too: it holds the value.
            Some(index) => self.unique_holder(table, index, &index_values(index, row), &[]),
        }
    }

    /// Primary keys whose committed index entry (at the snapshot) has these values.
    fn committed_index_entries(
        &self,
        table: &Table,
        index: &Index,
        values: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        let mut pks = Vec::new();
        for span in shard::index_value_spans(table, index, values) {
            // The commit checks unique values again against the latest state, so this
            // scan needs no confirmed snapshot.
            let read_ts = self.snapshot_ts(span.group)?;
            let mut scan = mvcc::VersionedScan::new(span.start.clone(), span.end, read_ts);
            while !scan.is_done() {
                for (entry, _) in self.replica.scan_batch(span.group, &mut scan)? {
                    pks.push(entry[span.start.len()..].to_vec());
                }
            }
        }
        Ok(pks)
    }

    /// Marks the current state of the write buffer.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint(self.undo.len())
    }

    /// Undoes every write made since `savepoint`.
    pub fn rollback_to(&mut self, savepoint: Savepoint) {
        while self.undo.len() > savepoint.0 {
            let Some((id, previous)) = self.undo.pop() else {
                break;
            };
            match previous {
                Some(write) => self.writes.insert(id, write),
                None => self.writes.remove(&id),
            };
        }
    }

    /// Commits: a transaction whose writes all live in one group sends them in one
    /// command (the one-phase path, as fast as before sharding); one writing several
    /// groups commits them atomically through the coordinator's two phases (see
    /// [`coordinator`]). A read-only transaction commits without touching storage.
    ///
    /// Returns the timestamp later snapshots of the same session must read at or above
    /// to see this commit (its commit timestamp when its other shares are resolved
    /// after the answer; 0 when every replica here has it already).
    pub fn commit(self) -> Result<u64> {
        if self.writes.is_empty() {
            return Ok(0);
        }
        let catalog = self.replica.catalog();
        let mut shares = self.shares_by_group(&catalog)?;
        if shares.len() > 1 {
            return coordinator::commit_across_groups(
                &self.replica,
                self.start_ts(),
                catalog.version(),
                shares,
            );
        }
        let Some((group, share)) = shares.pop_first() else {
            return Err(Error::Internal("a commit with no writes was routed".into()));
        };
        if !share.index_writes.is_empty() {
            return Err(Error::Internal(
                "index entries were sent to the group of their own rows".into(),
            ));
        }
        // A snapshot never chosen (nothing was read) commits at its floor: checked
        // against more commits, never fewer.
        let commit = Operation::Commit {
            start_ts: self.start_ts(),
            catalog_version: catalog.version(),
            writes: share.writes,
        };
        self.replica.propose(group, commit).map(|_| 0)
    }

    /// Makes the snapshot read at or above `ts` (a commit of the same session whose
    /// shares may still be resolving, see [`Transaction::commit`]): groups are then
    /// made readable there before they are read.
    pub fn reading_after(mut self, ts: u64) -> Transaction {
        self.session_floor = self.session_floor.max(ts);
        let snapshot = match self.snapshot.get() {
            Snapshot::Fixed(start) => Snapshot::Fixed(start.max(ts)),
            Snapshot::Open { floor } => Snapshot::Open {
                floor: floor.max(ts),
            },
        };
        self.snapshot.set(snapshot);
        self
    }

    /// What the commit writes in each group: every buffered write in the group the
    /// router places its row in, and each unique index entry whose shard is in another
    /// group than its row's (see `shard::entry_shard`) in that group. A table dropped
    /// since the write is a serialization failure.
    fn shares_by_group(&self, catalog: &Catalog) -> Result<BTreeMap<GroupId, GroupShare>> {
        let mut shares: BTreeMap<GroupId, GroupShare> = BTreeMap::new();
        for ((table_id, pk), pending) in &self.writes {
            let table = catalog
                .table_by_id(*table_id)
                .ok_or_else(dropped_concurrently)?;
            let (group, _) = shard::locate_row(table, pk);
            if shard::spans_groups(table) && table.indexes.iter().any(|index| index.unique) {
                for (entry_group, write) in
                    self.unique_entries_elsewhere(table, pk, pending, group)?
                {
                    shares
                        .entry(entry_group)
                        .or_default()
                        .index_writes
                        .push(write);
                }
            }
            shares.entry(group).or_default().writes.push(RowWrite {
                table_id: *table_id,
                pk: pk.clone(),
                row: pending.row.clone(),
                insert: pending.insert,
            });
        }
        Ok(shares)
    }

    /// The changes of `table`'s unique index entries for the write of row `pk` whose
    /// shards are in another group than `row_group`, by that group. The old values come
    /// from the snapshot: if the row changed since, the commit fails its conflict check.
    fn unique_entries_elsewhere(
        &self,
        table: &Table,
        pk: &[u8],
        pending: &PendingWrite,
        row_group: GroupId,
    ) -> Result<Vec<(GroupId, IndexWrite)>> {
        let old = if pending.insert {
            None
        } else {
            self.get_committed(table, pk)?
        };
        let row_shard = shard::shard_of(table, pk);
        let mut sent = Vec::new();
        for index in table.indexes.iter().filter(|index| index.unique) {
            let old_values = old.as_deref().map(|row| index_values(index, row));
            let new_values = pending.row.as_deref().map(|row| index_values(index, row));
            if old_values == new_values {
                continue;
            }
            let sides = [(old_values, None), (new_values, pending.row.clone())];
            for (values, row) in sides {
                let Some(values) = values else { continue };
                let entry_shard = shard::entry_shard(table, index, &values, row_shard);
                let entry_group = shard::group_of(table, entry_shard);
                if entry_group == row_group {
                    continue; // derived in the row's own group
                }
                let write = IndexWrite {
                    table_id: table.id,
                    index_id: index.id,
                    values,
                    pk: pk.to_vec(),
                    row,
                };
                sent.push((entry_group, write));
            }
        }
        Ok(sent)
    }

    /// The storage prefix of every buffered write, by the group the router places it
    /// in; a table dropped since the write is a serialization failure (retry sees it).
    fn written_rows_by_group(&self) -> Result<BTreeMap<GroupId, Vec<Vec<u8>>>> {
        let catalog = self.replica.catalog();
        let mut by_group: BTreeMap<GroupId, Vec<Vec<u8>>> = BTreeMap::new();
        for (table_id, pk) in self.writes.keys() {
            let table = catalog
                .table_by_id(*table_id)
                .ok_or_else(dropped_concurrently)?;
            let (group, prefix) = shard::locate_row(table, pk);
            by_group.entry(group).or_default().push(prefix);
        }
        Ok(by_group)
    }
}

/// What a transaction writes in one group (see [`Transaction::commit`]).
#[derive(Debug, Default)]
pub(crate) struct GroupShare {
    /// Rows whose shards are in the group.
    pub(crate) writes: Vec<RowWrite>,
    /// Unique index entries of other groups' rows whose shards are in the group.
    pub(crate) index_writes: Vec<IndexWrite>,
}

/// The error of a commit or confirmation whose table went meanwhile.
fn dropped_concurrently() -> Error {
    Error::SerializationFailure("a table this transaction writes was dropped concurrently".into())
}

/// Written rows checked per batched lookup when a snapshot is confirmed.
const CONFIRM_CHUNK: usize = 4096;

/// The encoded primary key of a full row.
pub fn encode_primary_key(table: &Table, row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    for &column in &table.primary_key {
        keycode::encode_value(&mut out, &row[column]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::Database;

    /// A database with table `kv (k INT PRIMARY KEY, v INT)` holding rows 1 and 2, and
    /// its replica.
    fn setup() -> (Database, Arc<Replica>, Table) {
        let db = Database::temporary().expect("temporary database");
        db.session()
            .execute("CREATE TABLE kv (k INT PRIMARY KEY, v INT); INSERT INTO kv VALUES (1, 10), (2, 20)")
            .expect("setup");
        let replica = db.replica();
        let table = replica.catalog().table("kv").expect("table").clone();
        (db, replica, table)
    }

    fn key(k: i32) -> Vec<u8> {
        keycode::encode_values(&[Value::Integer(k)])
    }

    fn row(k: i32, v: i32) -> Vec<Value> {
        vec![Value::Integer(k), Value::Integer(v)]
    }

    fn unconfirmed(replica: &Arc<Replica>) -> Transaction {
        Transaction::begin_unconfirmed(Arc::clone(replica), ReadLevel::Linearizable).expect("begin")
    }

    /// A row read and then written is checked by the commit, so it needs no
    /// confirmation; a row only read does, until the transaction writes it.
    #[test]
    fn only_reads_of_rows_not_written_need_confirmation() {
        let (_db, replica, table) = setup();
        let mut txn = unconfirmed(&replica);
        assert!(txn.is_unconfirmed());
        assert!(txn.get(&table, &key(1)).expect("read").is_some());
        assert!(txn.needs_confirmation(), "row 1 read, not written");
        txn.update(&table, &key(1), row(1, 11)).expect("update");
        assert!(!txn.needs_confirmation(), "row 1 now written");
        txn.insert(&table, row(3, 30)).expect("insert");
        assert!(
            !txn.needs_confirmation(),
            "the insert's key check is its own write"
        );
        txn.delete(&table, &key(3)).expect("delete");
        assert!(
            txn.needs_confirmation(),
            "the insert's key check is no longer covered once the insert is undone"
        );
    }

    /// A scan on an unconfirmed snapshot fails at once and asks for confirmation; after
    /// it, scans run.
    #[test]
    fn scans_wait_for_confirmation() {
        let (_db, replica, table) = setup();
        let mut txn = unconfirmed(&replica);
        let mut scan = txn.scan_rows(&table, &RowSource::All);
        let error = txn.next_row(&mut scan).expect_err("refused");
        assert_eq!(error.sqlstate(), "40001");
        assert!(txn.needs_confirmation());
        txn.confirm().expect("confirm");
        assert!(!txn.is_unconfirmed() && !txn.needs_confirmation());
        let mut scan = txn.scan_rows(&table, &RowSource::All);
        let mut rows = 0;
        while txn.next_row(&mut scan).expect("scan").is_some() {
            rows += 1;
        }
        assert_eq!(rows, 2);
    }

    /// Confirming moves the snapshot to the latest state when no row written so far
    /// changed meanwhile, and refuses (40001) when one did: what was computed from it
    /// no longer holds.
    #[test]
    fn confirmation_refuses_a_written_row_changed_since_the_snapshot() {
        let (db, replica, table) = setup();
        let mut unchanged = unconfirmed(&replica);
        let mut changed = unconfirmed(&replica);
        unchanged
            .update(&table, &key(2), row(2, 21))
            .expect("update 2");
        changed
            .update(&table, &key(1), row(1, 11))
            .expect("update 1");
        db.session()
            .execute("UPDATE kv SET v = 12 WHERE k = 1")
            .expect("concurrent update");
        let before = unchanged.start_ts();
        unchanged.confirm().expect("row 2 did not change");
        assert!(unchanged.start_ts() > before, "the snapshot moved on");
        assert_eq!(
            unchanged.get(&table, &key(1)).expect("read"),
            Some(row(1, 12)),
            "the confirmed snapshot sees the concurrent update"
        );
        let error = changed.confirm().expect_err("row 1 changed");
        assert_eq!(error.sqlstate(), "40001");
    }
}
