//! Reading versioned records as of a timestamp.
//!
//! Every row and index entry is stored once per committed version (see [`super::keys`]),
//! the newest first. A reader at timestamp `ts` sees, for each record, the newest version
//! with `commit_ts <= ts`; an empty value marks a deletion (a tombstone). Old versions are
//! kept (no garbage collection yet), which is what lets long transactions read a stable
//! snapshot.

use super::keys::split_version;
use super::{Space, Store};
use crate::error::{Error, Result};

/// Timestamp that sees every committed version.
pub const LATEST: u64 = u64::MAX;

/// The empty value that marks a deleted record.
pub const TOMBSTONE: &[u8] = &[];

/// How many raw key-value pairs one storage call returns at most.
pub const SCAN_BATCH: usize = 1024;

/// The newest version of one record (all versions share `prefix`) visible at `read_ts`:
/// `Some((commit_ts, value))`, where an empty value is a tombstone.
pub fn read_version(store: &Store, prefix: &[u8], read_ts: u64) -> Result<Option<(u64, Vec<u8>)>> {
    // Versions of `prefix` sort newest first; the first one at or below read_ts is ours.
    let start = super::keys::with_version(prefix.to_vec(), read_ts);
    let end = super::keys::with_version(prefix.to_vec(), 0);
    let mut end_inclusive = end;
    end_inclusive.push(0);
    for (key, value) in store.scan(Space::Data, &start, &end_inclusive, 1)? {
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

/// A resumable scan over the live records in `[start, end)` as of `read_ts`, returning
/// them in batches so callers can stop early and memory stays bounded.
pub struct VersionedScan {
    next_key: Vec<u8>,
    end: Vec<u8>,
    read_ts: u64,
    /// The record whose visible version was already decided (emitted or skipped).
    decided: Option<Vec<u8>>,
    done: bool,
}

impl VersionedScan {
    /// Starts a scan of records whose prefixes lie in `[start, end)`.
    pub fn new(start: Vec<u8>, end: Vec<u8>, read_ts: u64) -> VersionedScan {
        VersionedScan {
            next_key: start,
            end,
            read_ts,
            decided: None,
            done: false,
        }
    }

    /// Whether every record has been returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next batch of live `(record prefix, value)` pairs; empty only when done.
    pub fn next_batch(&mut self, store: &Store) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        while out.is_empty() && !self.done {
            let raw = store.scan(Space::Data, &self.next_key, &self.end, SCAN_BATCH)?;
            if raw.len() < SCAN_BATCH {
                self.done = true;
            }
            if let Some((last, _)) = raw.last() {
                self.next_key = last.clone();
                self.next_key.push(0);
            }
            for (key, value) in raw {
                let (base, commit_ts) = split_version(&key).ok_or_else(short_key)?;
                if commit_ts > self.read_ts || self.decided.as_deref() == Some(base) {
                    continue;
                }
                self.decided = Some(base.to_vec());
                if !value.is_empty() {
                    out.push((base.to_vec(), value));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::{row_prefix, table_rows_prefix, with_version};
    use super::super::Batch;
    use super::*;

    fn put(store: &Store, pk: &[u8], ts: u64, value: &[u8]) {
        let mut batch = Batch::default();
        batch.put(
            Space::Data,
            with_version(row_prefix(0, 1, pk), ts),
            value.to_vec(),
        );
        store.write(batch).unwrap();
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

    /// A scan that spans several storage batches sees each record once.
    #[test]
    fn scan_across_batches() {
        let store = Store::temporary().unwrap();
        let mut batch = Batch::default();
        for i in 0u32..1500 {
            let pk = i.to_be_bytes();
            batch.put(
                Space::Data,
                with_version(row_prefix(0, 1, &pk), 1),
                b"old".to_vec(),
            );
            batch.put(
                Space::Data,
                with_version(row_prefix(0, 1, &pk), 2),
                b"new".to_vec(),
            );
        }
        store.write(batch).unwrap();
        let prefix = table_rows_prefix(0, 1);
        let end = crate::encoding::keycode::prefix_end(&prefix).unwrap();
        let mut scan = VersionedScan::new(prefix, end, LATEST);
        let mut seen = 0;
        while !scan.is_done() {
            let batch = scan.next_batch(&store).unwrap();
            assert!(batch.iter().all(|(_, v)| v == b"new"));
            seen += batch.len();
        }
        assert_eq!(seen, 1500);
    }
}
