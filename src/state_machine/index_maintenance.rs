//! Secondary index entries: derived from row changes at apply time, written in the same
//! batch as the rows, and checked for uniqueness against stored and same-batch entries.
//!
//! An entry's key is `index values | pk | version` (see `storage::keys`), its value a
//! single byte (live) or empty (tombstone). A unique index treats rows whose indexed
//! values contain NULL as distinct, as PostgreSQL does.
//!
//! Where an entry lives is the shard router's answer (`shard::entry_shard`): a
//! non-unique index's entry in its row's shard, a unique index's in the shard its values
//! hash to, so that every row claiming a value is checked in one place. An entry whose
//! shard is in this group is derived here from the row change; one whose shard is in
//! another group is skipped here, and the transaction sends it there as an
//! [`IndexWrite`] within the same cross-group commit, applied with the same checks.

use super::two_phase::{self, LockCheck};
use super::{key_detail, IndexWrite, ProgressFn};
use crate::catalog::{Catalog, Index, Table};
use crate::encoding::{self, keycode};
use crate::error::{Error, Result};
use crate::shard::{self, GroupId};
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
    /// The group applying: entries whose shard is in another group are not written here.
    group: GroupId,
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
    /// Starts collecting for a commit at `commit_ts` in `group`, whose unique checks
    /// respect `locks`.
    pub fn new(
        store: &'a Store,
        group: GroupId,
        commit_ts: u64,
        locks: LockCheck,
    ) -> IndexWriter<'a> {
        IndexWriter {
            store,
            group,
            commit_ts,
            removed_unique: HashSet::new(),
            unique_added: HashMap::new(),
            to_check: Vec::new(),
            locks,
        }
    }

    /// Records the index changes for one row that live in this group.
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
                let entry_shard = shard::entry_shard(table, index, values, shard);
                if self.is_local(table, entry_shard) {
                    self.remove_entry(table, index, entry_shard, values, pk, batch)?;
                }
            }
            if let (Some(values), Some(row)) = (&new_values, new) {
                let entry_shard = shard::entry_shard(table, index, values, shard);
                if self.is_local(table, entry_shard) {
                    // An entry can only exist already if its row existed before
                    // (tombstoned entries of a deleted row); a new row needs no lookup.
                    let may_exist = has_history || entry_shard != shard;
                    let entry = NewEntry {
                        shard: entry_shard,
                        values,
                        pk,
                        row,
                        may_exist,
                    };
                    self.add_entry(table, index, entry, batch)?;
                }
            }
        }
        Ok(())
    }

    /// Applies an entry change the transaction sent here because the entry's shard is
    /// in this group and its row's is not.
    pub fn apply_sent(
        &mut self,
        table: &Table,
        write: &IndexWrite,
        batch: &mut Batch,
    ) -> Result<()> {
        let index = table
            .indexes
            .iter()
            .find(|index| index.id == write.index_id)
            .ok_or_else(|| {
                Error::SerializationFailure(format!(
                    "an index of \"{}\" was dropped concurrently",
                    table.name
                ))
            })?;
        let entry_shard = shard::entry_shard(table, index, &write.values, 0);
        if !self.is_local(table, entry_shard) {
            return Err(Error::Internal(format!(
                "an entry of index \"{}\" was sent to group {}, which does not hold its shard",
                index.name, self.group
            )));
        }
        match &write.row {
            Some(row) => {
                let entry = NewEntry {
                    shard: entry_shard,
                    values: &write.values,
                    pk: &write.pk,
                    row,
                    may_exist: true,
                };
                self.add_entry(table, index, entry, batch)
            }
            None => self.remove_entry(table, index, entry_shard, &write.values, &write.pk, batch),
        }
    }

    /// Writes a backfilled entry sent here by the builder of a unique index (see
    /// `Operation::BackfillEntries`), unless a commit since the index was installed
    /// has written its key already: that version is newer than the row it was read
    /// from, and stands.
    pub fn backfill_sent(
        &mut self,
        table: &Table,
        write: &IndexWrite,
        batch: &mut Batch,
    ) -> Result<()> {
        if write.row.is_none() {
            return Err(Error::Internal(
                "a backfilled index entry came without its row".into(),
            ));
        }
        let Some(index) = table
            .indexes
            .iter()
            .find(|index| index.id == write.index_id)
        else {
            return Err(Error::UndefinedObject(format!(
                "an index of \"{}\" was dropped while it was built",
                table.name
            )));
        };
        let entry_shard = shard::entry_shard(table, index, &write.values, 0);
        let prefix =
            keys::index_entry_prefix(entry_shard, table.id, index.id, &write.values, &write.pk);
        if mvcc::read_version(self.store, &prefix, LATEST)?.is_some() {
            return Ok(());
        }
        self.apply_sent(table, write, batch)
    }

    /// Whether `entry_shard` of `table` is in this group.
    fn is_local(&self, table: &Table, entry_shard: ShardId) -> bool {
        shard::group_of(table, entry_shard) == self.group
    }

    /// Tombstones one entry.
    fn remove_entry(
        &mut self,
        table: &Table,
        index: &Index,
        entry_shard: ShardId,
        values: &[u8],
        pk: &[u8],
        batch: &mut Batch,
    ) -> Result<()> {
        let prefix = keys::index_entry_prefix(entry_shard, table.id, index.id, values, pk);
        let replaced = mvcc::read_version(self.store, &prefix, LATEST)?;
        if index.unique {
            self.removed_unique.insert(prefix.clone());
        }
        mvcc::put_version(batch, prefix, self.commit_ts, TOMBSTONE, replaced);
        Ok(())
    }

    /// Writes one live entry; a unique one is checked in [`IndexWriter::finish`].
    fn add_entry(
        &mut self,
        table: &Table,
        index: &Index,
        entry: NewEntry,
        batch: &mut Batch,
    ) -> Result<()> {
        let prefix =
            keys::index_entry_prefix(entry.shard, table.id, index.id, entry.values, entry.pk);
        let replaced = if entry.may_exist {
            mvcc::read_version(self.store, &prefix, LATEST)?
        } else {
            None
        };
        mvcc::put_version(batch, prefix.clone(), self.commit_ts, LIVE_ENTRY, replaced);
        if index.unique && !has_null(index, entry.row) {
            self.to_check.push(UniqueCheck {
                shard: entry.shard,
                table_id: table.id,
                index_id: index.id,
                values: entry.values.to_vec(),
                prefix,
                row: entry.row.to_vec(),
            });
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
            self.check_unique(table, index, &check)?;
            claims.push(keys::unique_lock_key(
                check.shard,
                table.id,
                index.id,
                &check.values,
            ));
        }
        Ok(claims)
    }

    /// Fails with 23505 when another live entry of the unique index has the same
    /// values (in its shard, the only one that can hold them) or this commit adds them
    /// twice, and with 40001 when a prepared transaction claims them.
    fn check_unique(&mut self, table: &Table, index: &Index, check: &UniqueCheck) -> Result<()> {
        let violation = || unique_violation(table, index, &check.row);
        if self
            .unique_added
            .insert((index.id, check.values.clone()), check.prefix.clone())
            .is_some()
        {
            return Err(violation());
        }
        let mut start = keys::index_prefix(check.shard, table.id, index.id);
        start.extend_from_slice(&check.values);
        let end = keycode::prefix_end(&start)
            .ok_or_else(|| Error::Internal("unbounded index prefix".into()))?;
        let mut scan = VersionedScan::new(start, end, LATEST);
        while !scan.is_done() {
            for (entry, _) in scan.next_batch(self.store)? {
                let removed_here = self.removed_unique.contains(&entry);
                if entry != check.prefix && !removed_here {
                    return Err(violation());
                }
            }
        }
        let lock = keys::unique_lock_key(check.shard, table.id, index.id, &check.values);
        two_phase::refuse_foreign_lock(self.store, self.locks, &lock, || {
            format!("a value of unique index \"{}\"", index.name)
        })
    }
}

/// A live entry to write.
struct NewEntry<'a> {
    shard: ShardId,
    values: &'a [u8],
    pk: &'a [u8],
    /// The row the entry stands for (its values, for a violation's detail).
    row: &'a [Value],
    /// Whether an older version of the entry may be stored.
    may_exist: bool,
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
/// A unique index's entry for a row of this group whose values hash to a shard in
/// another group is not written here: the index's builder reads those rows and sends
/// the entries there (`Operation::BackfillEntries`). Duplicates among this group's
/// rows are found here, those across groups where the entries meet.
pub fn backfill(
    store: &Store,
    group: GroupId,
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
    for row_shard in table.shards() {
        let start = keys::table_rows_prefix(row_shard, table.id);
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
                let entry_shard = shard::entry_shard(table, index, &values, row_shard);
                if shard::group_of(table, entry_shard) != group {
                    continue; // sent there by the index's builder
                }
                let prefix = keys::index_entry_prefix(entry_shard, table.id, index.id, &values, pk);
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
