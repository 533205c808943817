//! Table access: full scans, primary-key lookups and ranges, and index scans, each seeing
//! the transaction's snapshot overlaid with its own writes.
//!
//! Rows the transaction has written are skipped in storage and emitted afterwards from
//! the write buffer (for range and full scans; point lookups consult the buffer per key).
//! The Filter above every scan re-checks the whole WHERE clause, so emitting a buffered
//! row that falls outside the range is harmless.

use super::Executor;
use crate::catalog::{Index, Table};
use crate::encoding::{self, keycode};
use crate::error::{Error, Result};
use crate::sql::planner::plan::{AccessPath, KeyRange};
use crate::storage::keys;
use crate::storage::mvcc::VersionedScan;
use crate::txn::Transaction;
use crate::types::Value;
use std::collections::{HashSet, VecDeque};
use std::ops::Bound;

/// Reads a table by one access path.
pub struct ScanExecutor {
    table: Table,
    /// Encoded primary keys to fetch one by one (a primary-key point lookup).
    points: VecDeque<Vec<u8>>,
    /// Raw key ranges still to scan, over every shard.
    ranges: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// Length of the fixed key prefix before the encoded values (table or index prefix).
    prefix_len: usize,
    /// The index being scanned, if any.
    index: Option<Index>,
    current: Option<VersionedScan>,
    ready: VecDeque<Vec<Value>>,
    /// Primary keys already emitted by an index scan over several ranges.
    seen: HashSet<Vec<u8>>,
    pending_done: bool,
}

impl ScanExecutor {
    /// Prepares a scan of `table` along `access`.
    pub fn new(table: Table, access: &AccessPath) -> ScanExecutor {
        let mut scan = ScanExecutor {
            points: VecDeque::new(),
            ranges: VecDeque::new(),
            prefix_len: keys::table_rows_prefix(0, table.id).len(),
            index: None,
            current: None,
            ready: VecDeque::new(),
            seen: HashSet::new(),
            pending_done: false,
            table,
        };
        match access {
            AccessPath::FullScan => {
                let full = [KeyRange {
                    prefix: Vec::new(),
                    lower: Bound::Unbounded,
                    upper: Bound::Unbounded,
                }];
                scan.add_row_ranges(&full);
            }
            AccessPath::PrimaryKey(ranges)
                if ranges
                    .iter()
                    .all(|r| r.is_point(scan.table.primary_key.len())) =>
            {
                scan.points = ranges
                    .iter()
                    .map(|r| keycode::encode_values(&r.prefix))
                    .collect();
                scan.pending_done = true; // each point consults the write buffer itself
            }
            AccessPath::PrimaryKey(ranges) => scan.add_row_ranges(ranges),
            AccessPath::Index(index, ranges) => {
                for shard in scan.table.shards() {
                    let base = keys::index_prefix(shard, scan.table.id, index.id);
                    scan.prefix_len = base.len();
                    for range in ranges {
                        scan.ranges.push_back(raw_bounds(&base, range));
                    }
                }
                scan.index = Some(index.clone());
            }
        }
        scan
    }

    fn add_row_ranges(&mut self, ranges: &[KeyRange]) {
        for shard in self.table.shards() {
            let base = keys::table_rows_prefix(shard, self.table.id);
            for range in ranges {
                self.ranges.push_back(raw_bounds(&base, range));
            }
        }
    }

    /// Fills `ready` from storage; returns false when storage has nothing more.
    fn fill_from_storage(&mut self, txn: &Transaction) -> Result<bool> {
        loop {
            if self.current.as_ref().is_none_or(VersionedScan::is_done) {
                let Some((start, end)) = self.ranges.pop_front() else {
                    return Ok(false);
                };
                self.current = Some(txn.scan(start, end));
            }
            let Some(scan) = self.current.as_mut() else {
                return Ok(false);
            };
            let batch = txn.next_batch(scan)?;
            for (record, value) in batch {
                let suffix = record
                    .get(self.prefix_len..)
                    .ok_or_else(|| Error::Corruption("short record key".into()))?;
                match &self.index {
                    None => {
                        if !txn.is_pending(self.table.id, suffix) {
                            self.ready.push_back(encoding::decode(&value)?);
                        }
                    }
                    Some(index) => {
                        let mut position = 0;
                        for _ in &index.columns {
                            keycode::decode_value(suffix, &mut position)?;
                        }
                        let pk = &suffix[position..];
                        if txn.is_pending(self.table.id, pk) || !self.seen.insert(pk.to_vec()) {
                            continue;
                        }
                        if let Some(row) = txn.get_committed(&self.table, pk)? {
                            self.ready.push_back(row);
                        }
                    }
                }
            }
            if !self.ready.is_empty() {
                return Ok(true);
            }
        }
    }
}

impl Executor for ScanExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        loop {
            if let Some(row) = self.ready.pop_front() {
                return Ok(Some(row));
            }
            if let Some(pk) = self.points.pop_front() {
                if let Some(row) = txn.get(&self.table, &pk)? {
                    return Ok(Some(row));
                }
                continue;
            }
            if self.fill_from_storage(txn)? {
                continue;
            }
            if !self.pending_done {
                self.pending_done = true;
                self.ready.extend(txn.pending_rows(self.table.id));
                continue;
            }
            return Ok(None);
        }
    }
}

/// The raw key interval `[start, end)` holding the keys of `range` under `base`.
fn raw_bounds(base: &[u8], range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = base.to_vec();
    prefix.extend_from_slice(&keycode::encode_values(&range.prefix));
    let after =
        |bytes: Vec<u8>| keycode::prefix_end(&bytes).unwrap_or_else(|| vec![0xFF; bytes.len() + 1]);
    let with_value = |value: &Value| {
        let mut key = prefix.clone();
        keycode::encode_value(&mut key, value);
        key
    };
    let unbounded = matches!(
        (&range.lower, &range.upper),
        (Bound::Unbounded, Bound::Unbounded)
    );
    if unbounded {
        return (prefix.clone(), after(prefix));
    }
    let start = match &range.lower {
        Bound::Included(v) => with_value(v),
        Bound::Excluded(v) => after(with_value(v)),
        Bound::Unbounded => {
            // Comparisons never match NULL, which sorts first: start just after it.
            let mut key = prefix.clone();
            key.push(keycode::FIRST_NON_NULL);
            key
        }
    };
    let end = match &range.upper {
        Bound::Included(v) => after(with_value(v)),
        Bound::Excluded(v) => with_value(v),
        Bound::Unbounded => after(prefix.clone()),
    };
    (start, end)
}
