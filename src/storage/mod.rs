//! Storage: RocksDB behind a small interface of our own.
//!
//! Nothing above this module sees a RocksDB type. Writes are collected in a [`Batch`] and
//! written atomically with `sync`, so a write acknowledged to the caller survives kill -9
//! and power loss. Reads are point gets and bounded range scans (at most `limit` pairs
//! per call) so that no caller holds an iterator across calls and memory stays bounded.
//!
//! Column families: `versions` holds every version of every row and index entry and
//! `latest` the newest version of each (see [`mvcc`] and [`keys`]); `meta` holds the
//! catalog, the timestamp oracle's bound and the applied state. RocksDB's own
//! transactions are never used: their conflicts depend on timing, and replicas applying
//! the same commands must reach the same state.

pub mod keys;
pub mod mvcc;

use crate::error::{Error, Result};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteOptions, DB};
use std::path::Path;

/// A column family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Every version of rows and index entries.
    Versions,
    /// The newest version of each row and index entry.
    Latest,
    /// Catalog, oracle bound, applied state.
    Meta,
    /// Raft log entries of every group hosted here, keyed by (group, index).
    RaftLog,
    /// Raft's own durable state per group: vote, committed and purged log ids.
    RaftState,
}

impl Space {
    /// Every space, in the order of their one-byte codes.
    const ALL: [Space; 5] = [
        Space::Versions,
        Space::Latest,
        Space::Meta,
        Space::RaftLog,
        Space::RaftState,
    ];

    /// A stable one-byte code, for files that name spaces (Raft snapshots).
    pub fn code(self) -> u8 {
        match self {
            Space::Versions => 1,
            Space::Latest => 2,
            Space::Meta => 3,
            Space::RaftLog => 4,
            Space::RaftState => 5,
        }
    }

    /// The space with code `code`, if any.
    pub fn from_code(code: u8) -> Option<Space> {
        Space::ALL.into_iter().find(|space| space.code() == code)
    }

    fn name(self) -> &'static str {
        match self {
            Space::Versions => "versions",
            Space::Latest => "latest",
            Space::Meta => "meta",
            Space::RaftLog => "raft_log",
            Space::RaftState => "raft_state",
        }
    }
}

/// A range of keys `[start, end)` in one space: the unit a Raft snapshot copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// The space.
    pub space: Space,
    /// First key in the range.
    pub start: Vec<u8>,
    /// First key after the range.
    pub end: Vec<u8>,
}

/// Block cache shared by every column family of one store.
const BLOCK_CACHE_BYTES: usize = 128 << 20;
/// Bloom filter bits per key: about 1% false positives, so a `get` of a missing key (the
/// existence check of every INSERT) rarely reads a data block.
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// One write in a [`Batch`].
#[derive(Clone, Debug)]
enum BatchOp {
    Put(Space, Vec<u8>, Vec<u8>),
    Delete(Space, Vec<u8>),
    DeleteRange(Space, Vec<u8>, Vec<u8>),
}

/// Writes that become durable together or not at all.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    /// Sets `key` to `value`.
    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(BatchOp::Put(space, key, value));
    }

    /// Removes `key`.
    pub fn delete(&mut self, space: Space, key: Vec<u8>) {
        self.ops.push(BatchOp::Delete(space, key));
    }

    /// Removes every key in `[start, end)`.
    pub fn delete_range(&mut self, space: Space, start: Vec<u8>, end: Vec<u8>) {
        self.ops.push(BatchOp::DeleteRange(space, start, end));
    }

    /// Number of writes collected.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Moves every write of `other` to the end of this batch.
    pub fn append(&mut self, other: Batch) {
        self.ops.extend(other.ops);
    }
}

/// The RocksDB database of one node.
pub struct Store {
    db: DB,
    /// Keeps a temporary directory alive as long as the store that lives in it.
    _temporary: Option<tempfile::TempDir>,
}

impl Store {
    /// Opens (creating if needed) the store in `path`.
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_inner(path, None)
    }

    /// Opens a store in a fresh temporary directory, removed when the store is dropped.
    pub fn temporary() -> Result<Store> {
        let dir = tempfile::Builder::new().prefix("tessera-").tempdir()?;
        let path = dir.path().to_path_buf();
        Self::open_inner(&path, Some(dir))
    }

    fn open_inner(path: &Path, temporary: Option<tempfile::TempDir>) -> Result<Store> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Bounded background work: this is one process among others on small machines.
        options.increase_parallelism(2);
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let families = Space::ALL.into_iter().map(|space| {
            let mut table_options = rocksdb::BlockBasedOptions::default();
            table_options.set_block_cache(&cache);
            table_options.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            table_options.set_cache_index_and_filter_blocks(true);
            let mut cf_options = Options::default();
            cf_options.set_compression_type(rocksdb::DBCompressionType::Lz4);
            cf_options.set_block_based_table_factory(&table_options);
            ColumnFamilyDescriptor::new(space.name(), cf_options)
        });
        let db = DB::open_cf_descriptors(&options, path, families).map_err(|e| {
            Error::Storage(format!("cannot open database at {}: {e}", path.display()))
        })?;
        Ok(Store {
            db,
            _temporary: temporary,
        })
    }

    fn handle(&self, space: Space) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(space.name())
            .ok_or_else(|| Error::Internal(format!("column family {} missing", space.name())))
    }

    /// Reads one key.
    pub fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.handle(space)?, key)?)
    }

    /// Reads many keys of one space at once (RocksDB's batched MultiGet, which shares
    /// index and filter lookups between keys); results are in the order of `keys`.
    pub fn multi_get(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.db
            .batched_multi_get_cf(self.handle(space)?, keys, false)
            .into_iter()
            .map(|result| Ok(result?.map(|slice| slice.to_vec())))
            .collect()
    }

    /// Returns up to `limit` pairs with `start <= key < end`, in key order.
    pub fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut read_options = rocksdb::ReadOptions::default();
        read_options.set_iterate_upper_bound(end.to_vec());
        let iterator = self.db.iterator_cf_opt(
            self.handle(space)?,
            read_options,
            IteratorMode::From(start, Direction::Forward),
        );
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in iterator.take(limit) {
            let (key, value) = item?;
            out.push((key.into_vec(), value.into_vec()));
        }
        Ok(out)
    }

    /// The last pair with `start <= key < end`, if any (the newest Raft log entry).
    pub fn last_in_range(
        &self,
        space: Space,
        start: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut read_options = rocksdb::ReadOptions::default();
        read_options.set_iterate_lower_bound(start.to_vec());
        let mut iterator = self.db.iterator_cf_opt(
            self.handle(space)?,
            read_options,
            IteratorMode::From(end, Direction::Reverse),
        );
        // A reverse seek lands on the last key <= end; `end` itself is excluded.
        for item in iterator.by_ref() {
            let (key, value) = item?;
            if key.as_ref() < end {
                return Ok(Some((key.into_vec(), value.into_vec())));
            }
        }
        Ok(None)
    }

    /// Runs `read` over one consistent point-in-time view of the store: writes made
    /// after the view is taken are not seen, however long `read` runs (a Raft snapshot
    /// is streamed from such a view while new commands keep being applied).
    pub fn with_snapshot<T>(
        &self,
        read: impl FnOnce(&StoreSnapshot<'_>) -> Result<T>,
    ) -> Result<T> {
        let view = StoreSnapshot {
            store: self,
            snapshot: self.db.snapshot(),
        };
        read(&view)
    }

    /// Writes a batch atomically and durably (fsync of the write-ahead log).
    pub fn write(&self, batch: Batch) -> Result<()> {
        self.write_with(batch, true)
    }

    /// Writes a batch atomically to the write-ahead log and memtable without waiting for
    /// the fsync: the caller must call [`Store::sync_wal`] before treating it as durable
    /// (group commit: one fsync then covers every batch written before it).
    pub fn write_unsynced(&self, batch: Batch) -> Result<()> {
        self.write_with(batch, false)
    }

    /// Makes every batch written so far durable (fsync of the write-ahead log).
    pub fn sync_wal(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }

    fn write_with(&self, batch: Batch, sync: bool) -> Result<()> {
        let mut write_batch = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                BatchOp::Put(space, key, value) => {
                    write_batch.put_cf(self.handle(space)?, key, value)
                }
                BatchOp::Delete(space, key) => write_batch.delete_cf(self.handle(space)?, key),
                BatchOp::DeleteRange(space, start, end) => {
                    write_batch.delete_range_cf(self.handle(space)?, start, end)
                }
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        Ok(self.db.write_opt(write_batch, &options)?)
    }
}

/// A point-in-time view of a [`Store`], from [`Store::with_snapshot`].
pub struct StoreSnapshot<'a> {
    store: &'a Store,
    snapshot: rocksdb::Snapshot<'a>,
}

impl StoreSnapshot<'_> {
    /// Calls `visit` with every pair with `start <= key < end`, in key order, one at a
    /// time (memory stays bounded however large the range); stops at its first error.
    pub fn for_each(
        &self,
        space: Space,
        start: &[u8],
        end: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut read_options = rocksdb::ReadOptions::default();
        read_options.set_iterate_upper_bound(end.to_vec());
        // Bulk reads of a whole range would only evict the working set.
        read_options.fill_cache(false);
        let iterator = self.snapshot.iterator_cf_opt(
            self.store.handle(space)?,
            read_options,
            IteratorMode::From(start, Direction::Forward),
        );
        for item in iterator {
            let (key, value) = item?;
            visit(&key, &value)?;
        }
        Ok(())
    }

    /// The value of `key` as of the view.
    pub fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snapshot.get_cf(self.store.handle(space)?, key)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch lands whole; scans respect bounds and limits; ranges delete.
    #[test]
    fn batch_scan_and_delete_range() {
        let store = Store::temporary().unwrap();
        let mut batch = Batch::default();
        for i in 0u8..10 {
            batch.put(Space::Versions, vec![1, i], vec![i]);
        }
        batch.put(Space::Meta, b"m".to_vec(), b"v".to_vec());
        store.write(batch).unwrap();
        assert_eq!(store.get(Space::Meta, b"m").unwrap(), Some(b"v".to_vec()));
        assert_eq!(store.get(Space::Versions, b"m").unwrap(), None);
        let page = store.scan(Space::Versions, &[1, 2], &[1, 8], 3).unwrap();
        assert_eq!(
            page.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        let mut batch = Batch::default();
        batch.delete_range(Space::Versions, vec![1, 0], vec![1, 5]);
        batch.delete(Space::Versions, vec![1, 9]);
        store.write(batch).unwrap();
        let rest = store.scan(Space::Versions, &[0], &[2], 100).unwrap();
        assert_eq!(
            rest.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(),
            vec![5, 6, 7, 8]
        );
    }

    /// Data written and synced is there after the store is closed and reopened.
    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut batch = Batch::default();
            batch.put(Space::Versions, b"k".to_vec(), b"v".to_vec());
            store.write(batch).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.get(Space::Versions, b"k").unwrap(),
            Some(b"v".to_vec())
        );
    }

    /// A snapshot view sees the store as it was when taken, not writes made while it is
    /// read; every space code maps back to its space.
    #[test]
    fn snapshot_view_is_frozen() {
        let store = Store::temporary().unwrap();
        let mut batch = Batch::default();
        batch.put(Space::Meta, b"a".to_vec(), b"1".to_vec());
        store.write(batch).unwrap();
        let seen = store
            .with_snapshot(|view| {
                let mut later = Batch::default();
                later.put(Space::Meta, b"b".to_vec(), b"2".to_vec());
                store.write(later)?;
                let mut keys = Vec::new();
                view.for_each(Space::Meta, b"", b"z", |key, _| {
                    keys.push(key.to_vec());
                    Ok(())
                })?;
                Ok(keys)
            })
            .unwrap();
        assert_eq!(seen, vec![b"a".to_vec()]);
        assert_eq!(store.get(Space::Meta, b"b").unwrap(), Some(b"2".to_vec()));
        for space in Space::ALL {
            assert_eq!(Space::from_code(space.code()), Some(space));
        }
        assert_eq!(Space::from_code(0), None);
    }
}
