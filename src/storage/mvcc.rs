//! Versioned records: writing them, and reading them as of a timestamp.
//!
//! Every row and index entry is a *record* identified by a key prefix (see [`super::keys`]).
//! Its newest version lives in the `latest` space under the bare prefix, as
//! `commit_ts | value`; every older version lives in the `versions` space under
//! `prefix | !commit_ts` (newest first). [`put_version`] writes a new version and, in the
//! same atomic batch, moves the one it replaces into `versions`, so a brand-new record
//! costs a single write. An empty value is a deletion (tombstone).
//!
//! A reader at timestamp `ts` sees, per record, the newest version with
//! `commit_ts <= ts`. Almost always that is the latest version, found with one point
//! `get` (and a record that never existed is a bloom-filter miss); only a reader whose
//! snapshot is older than the record's last change seeks into `versions`. Scans walk
//! `latest`, so they never step over old versions, however many updates a record has had.
//! Old versions are kept (no garbage collection yet) so long transactions read a stable
//! snapshot.

use super::keys::{split_version, with_version};
use super::{Batch, Space, Store};
use crate::error::{Error, Result};

/// Timestamp that sees every committed version.
pub const LATEST: u64 = u64::MAX;

/// The empty value that marks a deleted record.
pub const TOMBSTONE: &[u8] = &[];

/// How many key-value pairs one storage call returns at most.
pub const SCAN_BATCH: usize = 1024;

/// Live records as a scan returns them: `(record prefix, value)` pairs in key order.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// A version of a record: `(commit_ts, value)`.
pub type Version = (u64, Vec<u8>);

/// Adds a new version of the record `prefix` to `batch`. `replaced` must be the record's
/// current latest version (from [`read_version`] at [`LATEST`]), or `None` if the record
/// has never existed; it moves into the version history so older snapshots still find it.
pub fn put_version(
    batch: &mut Batch,
    prefix: Vec<u8>,
    commit_ts: u64,
    value: &[u8],
    replaced: Option<Version>,
) {
    let mut latest = Vec::with_capacity(8 + value.len());
    latest.extend_from_slice(&commit_ts.to_be_bytes());
    latest.extend_from_slice(value);
    if let Some((replaced_ts, replaced_value)) = replaced {
        batch.put(
            Space::Versions,
            with_version(prefix.clone(), replaced_ts),
            replaced_value,
        );
    }
    batch.put(Space::Latest, prefix, latest);
}

/// Removes every record (all versions) whose prefix lies in `[start, end)`.
pub fn delete_records(batch: &mut Batch, start: Vec<u8>, end: Vec<u8>) {
    batch.delete_range(Space::Versions, start.clone(), end.clone());
    batch.delete_range(Space::Latest, start, end);
}

fn split_latest(bytes: &[u8]) -> Result<(u64, &[u8])> {
    if bytes.len() < 8 {
        return Err(Error::Corruption(
            "latest-version record shorter than its timestamp".into(),
        ));
    }
    let (ts, value) = bytes.split_at(8);
    let mut raw = [0u8; 8];
    raw.copy_from_slice(ts);
    Ok((u64::from_be_bytes(raw), value))
}

/// The newest version of one record visible at `read_ts`: `Some((commit_ts, value))`,
/// where an empty value is a tombstone.
pub fn read_version(store: &Store, prefix: &[u8], read_ts: u64) -> Result<Option<Version>> {
    let Some(latest) = store.get(Space::Latest, prefix)? else {
        return Ok(None);
    };
    let (commit_ts, value) = split_latest(&latest)?;
    if commit_ts <= read_ts {
        return Ok(Some((commit_ts, value.to_vec())));
    }
    read_older_version(store, prefix, read_ts)
}

/// The latest version of each record in `prefixes`, read in one batched lookup (for
/// apply, which checks every row of a commit against its newest version).
pub fn read_latest_versions(store: &Store, prefixes: &[Vec<u8>]) -> Result<Vec<Option<Version>>> {
    store
        .multi_get(Space::Latest, prefixes)?
        .into_iter()
        .map(|found| match found {
            None => Ok(None),
            Some(bytes) => {
                let (commit_ts, value) = split_latest(&bytes)?;
                Ok(Some((commit_ts, value.to_vec())))
            }
        })
        .collect()
}

/// Seeks the versions of `prefix` for the newest one at or below `read_ts`.
fn read_older_version(store: &Store, prefix: &[u8], read_ts: u64) -> Result<Option<Version>> {
    // Versions sort newest first; the first one at or below read_ts is ours.
    let start = with_version(prefix.to_vec(), read_ts);
    let mut end = with_version(prefix.to_vec(), 0);
    end.push(0);
    for (key, value) in store.scan(Space::Versions, &start, &end, 1)? {
        let (base, commit_ts) = split_version(&key).ok_or_else(short_key)?;
        if base == prefix {
            return Ok(Some((commit_ts, value)));
        }
    }
    Ok(None)
}

/// The live value of one record at `read_ts`, or `None` if absent or deleted.
pub fn read_live(store: &Store, prefix: &[u8], read_ts: u64) -> Result<Option<Vec<u8>>> {
    Ok(read_version(store, prefix, read_ts)?
        .and_then(|(_, value)| (!value.is_empty()).then_some(value)))
}

fn short_key() -> Error {
    Error::Corruption("versioned key shorter than its version suffix".into())
}

/// A resumable scan over the live records whose prefixes lie in `[start, end)`, as of
/// `read_ts`, returning them in batches so callers can stop early and memory stays
/// bounded.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct VersionedScan {
    next_key: Vec<u8>,
    end: Vec<u8>,
    read_ts: u64,
    done: bool,
    /// Records the next batch reads: [`SCAN_BATCH`], or fewer for a first batch
    /// sized to a LIMIT (see [`VersionedScan::with_first_batch`]).
    batch: usize,
}

impl VersionedScan {
    /// Starts a scan of records whose prefixes lie in `[start, end)`.
    pub fn new(start: Vec<u8>, end: Vec<u8>, read_ts: u64) -> VersionedScan {
        VersionedScan {
            next_key: start,
            end,
            read_ts,
            done: false,
            batch: SCAN_BATCH,
        }
    }

    /// Reads only `records` (at least 1, at most [`SCAN_BATCH`]) in the first batch,
    /// then full batches: a scan under a LIMIT of n reads about n records per shard
    /// when the first n suffice, instead of a full batch from every shard.
    pub fn with_first_batch(mut self, records: usize) -> VersionedScan {
        self.batch = records.clamp(1, SCAN_BATCH);
        self
    }

    /// Whether every record has been returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The snapshot the scan reads at.
    pub fn read_ts(&self) -> u64 {
        self.read_ts
    }

    /// The next batch of live `(record prefix, value)` pairs; empty only when done.
    pub fn next_batch(&mut self, store: &Store) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        while out.is_empty() && !self.done {
            let size = self.batch;
            self.batch = SCAN_BATCH;
            let raw = store.scan(Space::Latest, &self.next_key, &self.end, size)?;
            if raw.len() < size {
                self.done = true;
            }
            if let Some((last, _)) = raw.last() {
                self.next_key = last.clone();
                self.next_key.push(0);
            }
            for (prefix, mut latest) in raw {
                let (commit_ts, _) = split_latest(&latest)?;
                let visible = if commit_ts <= self.read_ts {
                    latest.drain(..8); // the value, in place: no copy per row
                    Some(latest)
                } else {
                    read_older_version(store, &prefix, self.read_ts)?.map(|(_, v)| v)
                };
                if let Some(value) = visible.filter(|v| !v.is_empty()) {
                    out.push((prefix, value));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::{row_prefix, table_rows_prefix};
    use super::*;

    fn put(store: &Store, pk: &[u8], ts: u64, value: &[u8]) {
        let prefix = row_prefix(0, 1, pk);
        let replaced = read_version(store, &prefix, LATEST).unwrap();
        let mut batch = Batch::default();
        put_version(&mut batch, prefix, ts, value, replaced);
        store.write(batch).unwrap();
    }

    /// A scan sized to a LIMIT reads that many records first, then full batches, and
    /// still returns every record once, in order.
    #[test]
    fn a_small_first_batch_then_full_ones() {
        let store = Store::temporary().unwrap();
        let keys: Vec<Vec<u8>> = (0..SCAN_BATCH as u32 + 10)
            .map(|n| n.to_be_bytes().to_vec())
            .collect();
        for key in &keys {
            put(&store, key, 1, b"v");
        }
        let prefix = table_rows_prefix(0, 1);
        let end = crate::encoding::keycode::prefix_end(&prefix).unwrap();
        let mut scan = VersionedScan::new(prefix, end, 5).with_first_batch(3);
        let first = scan.next_batch(&store).unwrap();
        assert_eq!(first.len(), 3);
        let second = scan.next_batch(&store).unwrap();
        assert_eq!(second.len(), SCAN_BATCH);
        let mut all = first;
        all.extend(second);
        while !scan.is_done() {
            all.extend(scan.next_batch(&store).unwrap());
        }
        let expected: Vec<Vec<u8>> = keys.iter().map(|key| row_prefix(0, 1, key)).collect();
        let got: Vec<Vec<u8>> = all.into_iter().map(|(key, _)| key).collect();
        assert_eq!(got, expected);
    }

    /// Each reader sees the newest version at or below its timestamp; tombstones hide.
    #[test]
    fn snapshot_reads() {
        let store = Store::temporary().unwrap();
        put(&store, b"a", 10, b"a10");
        put(&store, b"a", 20, b"a20");
        put(&store, b"a", 30, TOMBSTONE);
        put(&store, b"b", 15, b"b15");
        let a = row_prefix(0, 1, b"a");
        assert_eq!(read_live(&store, &a, 5).unwrap(), None);
        assert_eq!(read_live(&store, &a, 10).unwrap(), Some(b"a10".to_vec()));
        assert_eq!(read_live(&store, &a, 25).unwrap(), Some(b"a20".to_vec()));
        assert_eq!(read_live(&store, &a, 30).unwrap(), None);
        assert_eq!(read_version(&store, &a, LATEST).unwrap().unwrap().0, 30);
        assert_eq!(
            read_version(&store, &row_prefix(0, 1, b"never"), LATEST).unwrap(),
            None
        );

        let prefix = table_rows_prefix(0, 1);
        let end = crate::encoding::keycode::prefix_end(&prefix).unwrap();
        let mut scan = VersionedScan::new(prefix.clone(), end.clone(), 16);
        let values: Vec<_> = scan
            .next_batch(&store)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(values, vec![b"a10".to_vec(), b"b15".to_vec()]);
        assert!(scan.next_batch(&store).unwrap().is_empty());
        let mut scan = VersionedScan::new(prefix, end, LATEST);
        let values: Vec<_> = scan
            .next_batch(&store)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(values, vec![b"b15".to_vec()]);
    }

    /// A scan that spans several storage batches sees each record once, at the right
    /// version, both for current and for older snapshots.
    #[test]
    fn scan_across_batches() {
        let store = Store::temporary().unwrap();
        let mut batch = Batch::default();
        for i in 0u32..1500 {
            let pk = i.to_be_bytes();
            let replaced = Some((1, b"old".to_vec()));
            put_version(&mut batch, row_prefix(0, 1, &pk), 2, b"new", replaced);
        }
        store.write(batch).unwrap();
        let prefix = table_rows_prefix(0, 1);
        let end = crate::encoding::keycode::prefix_end(&prefix).unwrap();
        for (read_ts, expected) in [(LATEST, b"new"), (1, b"old")] {
            let mut scan = VersionedScan::new(prefix.clone(), end.clone(), read_ts);
            let mut seen = 0;
            while !scan.is_done() {
                let batch = scan.next_batch(&store).unwrap();
                assert!(batch.iter().all(|(_, v)| v == expected));
                seen += batch.len();
            }
            assert_eq!(seen, 1500);
        }
    }

    /// Deleting a range of records removes every version and the latest pointer.
    #[test]
    fn delete_records_removes_all_versions() {
        let store = Store::temporary().unwrap();
        put(&store, b"a", 10, b"a10");
        put(&store, b"a", 20, b"a20");
        let prefix = table_rows_prefix(0, 1);
        let end = crate::encoding::keycode::prefix_end(&prefix).unwrap();
        let mut batch = Batch::default();
        delete_records(&mut batch, prefix, end);
        store.write(batch).unwrap();
        let a = row_prefix(0, 1, b"a");
        assert_eq!(read_version(&store, &a, LATEST).unwrap(), None);
        assert_eq!(read_older_version(&store, &a, 15).unwrap(), None);
    }
}
