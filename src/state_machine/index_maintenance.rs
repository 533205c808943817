//! Secondary index entries: derived from row changes at apply time, written in the same
//! batch as the rows, and checked for uniqueness against stored and same-batch entries.
//!
//! An entry's key is `index values | pk | version` (see `storage::keys`), its value a
//! single byte (live) or empty (tombstone). A unique index treats rows whose indexed
//! values contain NULL as distinct, as PostgreSQL does.

use super::two_phase::{self, LockCheck};
use super::{key_detail, ProgressFn};
use crate::catalog::{Catalog, Index, Table};
use crate::encoding::{self, keycode};
use crate::error::{Error, Result};
use crate::storage::keys::{self, ShardId};
use crate::storage::mvcc::{self, VersionedScan, LATEST, TOMBSTONE};
use crate::storage::{Batch, Store};
use crate::types::Value;
use std::collections::{HashMap, HashSet};

/// Value stored for a live index entry.
pub const LIVE_ENTRY: &[u8] = &[1];

/// Collects the index changes of one commit and checks unique indexes as it goes.
pub struct IndexWriter<'a> {
    store: &'a Store,
    commit_ts: u64,
    /// Entries of unique indexes this commit removes: uniqueness checks ignore them, so
    /// that values can move between rows within one commit.
    removed_unique: HashSet<Vec<u8>>,
    /// Unique values this commit adds: (index id, encoded values) -> entry prefix.
    unique_added: HashMap<(u32, Vec<u8>), Vec<u8>>,
    /// Unique entries to check once every removal of the commit is known.
    to_check: Vec<UniqueCheck>,
    /// Which locks of prepared transactions the checks respect.
    locks: LockCheck,
}

/// One row's change within a commit, as index maintenance needs it.
#[derive(Clone, Copy)]
pub struct RowChange<'a> {
    /// The row's table.
    pub table: &'a Table,
    /// The row's shard.
    pub shard: ShardId,
    /// Encoded primary key.
    pub pk: &'a [u8],
    /// The row before (None if absent or deleted).
    pub old: Option<&'a [Value]>,
    /// The row after (None for a deletion).
    pub new: Option<&'a [Value]>,
    /// Whether the row's key has any stored version (live or deleted).
    pub has_history: bool,
}

/// A new entry in a unique index, checked in [`IndexWriter::finish`].
struct UniqueCheck {
    shard: ShardId,
    table_id: u32,
    index_id: u32,
    values: Vec<u8>,
    prefix: Vec<u8>,
    row: Vec<Value>,
}

impl<'a> IndexWriter<'a> {
    /// Starts collecting for a commit at `commit_ts` whose unique checks respect `locks`.
    pub fn new(store: &'a Store, commit_ts: u64, locks: LockCheck) -> IndexWriter<'a> {
        IndexWriter {
            store,
            commit_ts,
            removed_unique: HashSet::new(),
            unique_added: HashMap::new(),
            to_check: Vec::new(),
            locks,
        }
    }

    /// Records the index changes for one row.
    pub fn update(&mut self, change: &RowChange, batch: &mut Batch) -> Result<()> {
        let RowChange {
            table,
            shard,
            pk,
            old,
            new,
            has_history,
        } = *change;
        for index in &table.indexes {
            let old_values = old.map(|row| index_values(index, row));
            let new_values = new.map(|row| index_values(index, row));
            if old_values == new_values {
                continue;
            }
            if let Some(values) = &old_values {
                let prefix = keys::index_entry_prefix(shard, table.id, index.id, values, pk);
                let replaced = mvcc::read_version(self.store, &prefix, LATEST)?;
                if index.unique {
                    self.removed_unique.insert(prefix.clone());
                }
                mvcc::put_version(batch, prefix, self.commit_ts, TOMBSTONE, replaced);
            }
            if let Some(values) = &new_values {
                let prefix = keys::index_entry_prefix(shard, table.id, index.id, values, pk);
                // An entry can only exist already if its row existed before (tombstoned
                // entries of a deleted row); a brand-new row needs no lookup.
                let replaced = if has_history {
                    mvcc::read_version(self.store, &prefix, LATEST)?
                } else {
                    None
                };
                mvcc::put_version(batch, prefix.clone(), self.commit_ts, LIVE_ENTRY, replaced);
                let row = new.unwrap_or_default();
                if index.unique && !has_null(index, row) {
                    self.to_check.push(UniqueCheck {
                        shard,
                        table_id: table.id,
                        index_id: index.id,
                        values: values.clone(),
                        prefix,
                        row: row.to_vec(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks every new unique entry against stored entries, the rest of the commit and
    /// the values prepared transactions claim. Returns the lock key of every unique
    /// value the commit adds: what a prepare must claim until it is decided.
    pub fn finish(mut self, catalog: &Catalog) -> Result<Vec<Vec<u8>>> {
        let mut claims = Vec::with_capacity(self.to_check.len());
        for check in std::mem::take(&mut self.to_check) {
            let table = catalog
                .table_by_id(check.table_id)
                .ok_or_else(|| Error::Internal("table vanished during commit".into()))?;
            let index = table
                .indexes
                .iter()
                .find(|i| i.id == check.index_id)
                .ok_or_else(|| Error::Internal("index vanished during commit".into()))?;
            self.check_unique(table, index, &check.values, check.prefix, &check.row)?;
            claims.push(keys::unique_lock_key(
                check.shard,
                table.id,
                index.id,
                &check.values,
            ));
        }
        Ok(claims)
    }

    fn check_unique(
        &mut self,
        table: &Table,
        index: &Index,
        values: &[u8],
        own_prefix: Vec<u8>,
        row: &[Value],
    ) -> Result<()> {
        let violation = || unique_violation(table, index, row);
        if self
            .unique_added
            .insert((index.id, values.to_vec()), own_prefix.clone())
            .is_some()
        {
            return Err(violation());
        }
        // Index entries live in their row's shard, so the check spans every shard.
        for shard in table.shards() {
            let mut start = keys::index_prefix(shard, table.id, index.id);
            start.extend_from_slice(values);
            let end = keycode::prefix_end(&start)
                .ok_or_else(|| Error::Internal("unbounded index prefix".into()))?;
            let mut scan = VersionedScan::new(start, end, LATEST);
            while !scan.is_done() {
                for (entry, _) in scan.next_batch(self.store)? {
                    let removed_here = self.removed_unique.contains(&entry);
                    if entry != own_prefix && !removed_here {
                        return Err(violation());
                    }
                }
            }
            let lock = keys::unique_lock_key(shard, table.id, index.id, values);
            two_phase::refuse_foreign_lock(self.store, self.locks, &lock, || {
                format!("a value of unique index \"{}\"", index.name)
            })?;
        }
        Ok(())
    }
}

/// Encoded values of the indexed columns of a row.
pub fn index_values(index: &Index, row: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for &column in &index.columns {
        keycode::encode_value(&mut out, &row[column]);
    }
    out
}

fn has_null(index: &Index, row: &[Value]) -> bool {
    index
        .columns
        .iter()
        .any(|&c| row.get(c).is_none_or(Value::is_null))
}

/// The 23505 error for a row whose values collide in a unique index.
pub fn unique_violation(table: &Table, index: &Index, row: &[Value]) -> Error {
    let columns: Vec<&str> = index
        .columns
        .iter()
        .map(|&c| table.columns[c].name.as_str())
        .collect();
    let values: Vec<Value> = index.columns.iter().map(|&c| row[c].clone()).collect();
    Error::UniqueViolation {
        constraint: index.name.clone(),
        detail: key_detail(&columns, &values),
    }
}

/// How many rows one progress report covers during a backfill.
const PROGRESS_EVERY_ROWS: u64 = 4096;

/// Writes entries for every live row of `table` into a new index, at `commit_ts`, failing
/// (with nothing written, since the batch is dropped) when a unique index meets duplicates.
pub fn backfill(
    store: &Store,
    table: &Table,
    index: &Index,
    commit_ts: u64,
    batch: &mut Batch,
    progress: Option<ProgressFn>,
) -> Result<()> {
    let total = if progress.is_some() {
        count_live_rows(store, table)?
    } else {
        0
    };
    let mut done = 0u64;
    let mut seen_unique: HashSet<Vec<u8>> = HashSet::new();
    for shard in table.shards() {
        let start = keys::table_rows_prefix(shard, table.id);
        let end = keycode::prefix_end(&start)
            .ok_or_else(|| Error::Internal("unbounded table prefix".into()))?;
        let mut scan = VersionedScan::new(start.clone(), end, LATEST);
        while !scan.is_done() {
            for (row_prefix, bytes) in scan.next_batch(store)? {
                let row: Vec<Value> = encoding::decode(&bytes)?;
                let values = index_values(index, &row);
                if index.unique && !has_null(index, &row) && !seen_unique.insert(values.clone()) {
                    return Err(unique_violation(table, index, &row));
                }
                let pk = &row_prefix[start.len()..];
                let prefix = keys::index_entry_prefix(shard, table.id, index.id, &values, pk);
                // The index is new, so none of its entries has an older version.
                mvcc::put_version(batch, prefix, commit_ts, LIVE_ENTRY, None);
                done += 1;
                if let Some(report) = progress {
                    if done.is_multiple_of(PROGRESS_EVERY_ROWS) {
                        report(done, total.max(done));
                    }
                }
            }
        }
    }
    if let Some(report) = progress {
        report(done, total.max(done));
    }
    Ok(())
}

fn count_live_rows(store: &Store, table: &Table) -> Result<u64> {
    let mut count = 0u64;
    for shard in table.shards() {
        let start = keys::table_rows_prefix(shard, table.id);
        let end = keycode::prefix_end(&start)
            .ok_or_else(|| Error::Internal("unbounded table prefix".into()))?;
        let mut scan = VersionedScan::new(start, end, mvcc::LATEST);
        while !scan.is_done() {
            count += scan.next_batch(store)?.len() as u64;
        }
    }
    Ok(count)
}
