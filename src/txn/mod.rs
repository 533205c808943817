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
//! Snapshot isolation allows write skew (two transactions each read what the other
//! writes, and both commit); serializable isolation is a later goal.

pub mod oracle;

use crate::catalog::{Index, Table};
use crate::encoding::{self, keycode};
use crate::error::Result;
use crate::replica::{ReadLevel, Replica};
use crate::state_machine::{
    duplicate_primary_key, index_values, unique_violation, Operation, RowWrite,
};
use crate::storage::keys::{self, IndexId, TableId};
use crate::storage::mvcc;
use crate::types::Value;
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
    start_ts: u64,
    writes: BTreeMap<RowId, PendingWrite>,
    /// Rows this transaction wrote with non-NULL values in a unique index, by (index id,
    /// encoded values). Entries may be stale (the row changed again or was rolled back):
    /// checks re-read the row, so staleness costs a lookup, never a wrong answer.
    unique_written: HashMap<(IndexId, Vec<u8>), Vec<Vec<u8>>>,
    /// What each buffered write replaced, newest last, for [`Transaction::rollback_to`].
    undo: Vec<(RowId, Option<PendingWrite>)>,
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
        Ok(Transaction {
            replica,
            start_ts,
            writes: BTreeMap::new(),
            unique_written: HashMap::new(),
            undo: Vec::new(),
        })
    }

    /// The snapshot timestamp.
    pub fn start_ts(&self) -> u64 {
        self.start_ts
    }

    /// Whether this transaction's snapshot may read through `index` (it must have existed
    /// when the snapshot was taken).
    pub fn can_use_index(&self, index: &Index) -> bool {
        index.created_ts <= self.start_ts
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
        let shard = keys::shard_for(pk, table.shard_count);
        let prefix = keys::row_prefix(shard, table.id, pk);
        match mvcc::read_live(self.replica.store(), &prefix, self.start_ts)? {
            Some(bytes) => Ok(Some(encoding::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Whether a live row with this key is in the snapshot (without decoding it).
    fn exists_committed(&self, table: &Table, pk: &[u8]) -> Result<bool> {
        let shard = keys::shard_for(pk, table.shard_count);
        let prefix = keys::row_prefix(shard, table.id, pk);
        Ok(mvcc::read_live(self.replica.store(), &prefix, self.start_ts)?.is_some())
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

    /// A resumable scan of committed records in `[start, end)` as of the snapshot.
    pub fn scan(&self, start: Vec<u8>, end: Vec<u8>) -> mvcc::VersionedScan {
        mvcc::VersionedScan::new(start, end, self.start_ts)
    }

    /// Fetches the next batch of a scan started with [`Transaction::scan`].
    pub fn next_batch(&self, scan: &mut mvcc::VersionedScan) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan.next_batch(self.replica.store())
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
            let mut candidates = self.committed_index_entries(table, index, &values)?;
            if let Some(written) = self.unique_written.get(&(index.id, values.clone())) {
                candidates.extend(written.iter().cloned());
            }
            for candidate in candidates.iter().filter(|c| c.as_slice() != pk) {
                let still_there = self
                    .get(table, candidate)?
                    .is_some_and(|other| index_values(index, &other) == values);
                if still_there {
                    return Err(unique_violation(table, index, row));
                }
            }
            self.unique_written
                .entry((index.id, values))
                .or_default()
                .push(pk.to_vec());
        }
        Ok(())
    }

    /// Primary keys whose committed index entry (at the snapshot) has these values.
    fn committed_index_entries(
        &self,
        table: &Table,
        index: &Index,
        values: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        let mut pks = Vec::new();
        for shard in table.shards() {
            let base = keys::index_prefix(shard, table.id, index.id);
            let mut start = base.clone();
            start.extend_from_slice(values);
            let Some(end) = keycode::prefix_end(&start) else {
                continue;
            };
            let mut scan = self.scan(start.clone(), end);
            while !scan.is_done() {
                for (entry, _) in self.next_batch(&mut scan)? {
                    pks.push(entry[start.len()..].to_vec());
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

    /// Commits: sends every buffered write in one command. A read-only transaction
    /// commits without touching storage.
    pub fn commit(self) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let writes = self
            .writes
            .into_iter()
            .map(|((table_id, pk), pending)| RowWrite {
                table_id,
                pk,
                row: pending.row,
                insert: pending.insert,
            })
            .collect();
        self.replica
            .propose(
                Operation::Commit {
                    start_ts: self.start_ts,
                    writes,
                },
                None,
            )
            .map(|_| ())
    }
}

/// The encoded primary key of a full row.
pub fn encode_primary_key(table: &Table, row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    for &column in &table.primary_key {
        keycode::encode_value(&mut out, &row[column]);
    }
    out
}
