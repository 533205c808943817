//! Reading many rows of a table: full scans, primary-key ranges and index scans, each
//! seeing the transaction's snapshot overlaid with its own writes.
//!
//! The executor says which rows it wants in values ([`RowSource`]); the shard router
//! turns that into one stored key span per shard it may touch, and this module reads
//! the spans and merges them back into one key order, so a table of eight shards scans
//! in the same order as a table of one (and `ORDER BY` of the key, or `LIMIT`, sees the
//! rows as a single-shard table would give them). The merge holds one batch per shard:
//! memory is bounded by shards × [`crate::storage::mvcc::VersionedScan`]'s batch.
//!
//! Rows the transaction has written are skipped in storage and emitted afterwards from
//! the write buffer (for range and full scans; point lookups consult the buffer per key).
//! The Filter above every scan re-checks the whole WHERE clause, so emitting a buffered
//! row that falls outside the range is harmless.

use super::Transaction;
use crate::catalog::{Index, Table};
use crate::encoding::{self, keycode};
use crate::error::{Error, Result};
use crate::replica::fan_out::{Check, GroupedParts};
use crate::shard::{self, KeyRange, ShardSpan};
use crate::storage::mvcc::VersionedScan;
use crate::types::aggregate::ShardAggregation;
use crate::types::Value;
use std::collections::{HashSet, VecDeque};

/// Which rows of a table a scan reads.
#[derive(Clone, Debug, PartialEq)]
pub enum RowSource {
    /// Every row.
    All,
    /// Rows whose primary key is in one of the ranges (points when every key column
    /// is fixed: each touches one shard).
    PrimaryKey(Vec<KeyRange>),
    /// Rows whose entry in `index` is in one of the ranges.
    Index(Index, Vec<KeyRange>),
}

/// Records merged per call before rows are handed up: bounds the work between checks
/// for a cancelled statement.
const MERGE_BATCH: usize = 1024;

/// A resumable read of a table's rows (see [`Transaction::scan_rows`]).
pub struct RowScan {
    table: Table,
    /// The index whose entries are read, if any.
    index: Option<Index>,
    /// Encoded primary keys to fetch one by one (a primary-key point lookup).
    points: VecDeque<Vec<u8>>,
    /// The requested ranges still to read, each as the spans of the shards it touches.
    ranges: VecDeque<Vec<ShardSpan>>,
    /// The range being read: one cursor per shard, merged in key order.
    cursors: Vec<Cursor>,
    ready: VecDeque<Vec<Value>>,
    /// Primary keys already emitted by an index scan over several ranges.
    seen: HashSet<Vec<u8>>,
    pending_done: bool,
    /// Records each shard's first batch reads, when a LIMIT says how many rows are
    /// wanted (see [`RowScan::wanting`]).
    first_batch: Option<usize>,
}

/// One shard's part of the range being read.
struct Cursor {
    span: ShardSpan,
    scan: VersionedScan,
    buffered: VecDeque<(Vec<u8>, Vec<u8>)>,
}

impl Cursor {
    /// The encoded values after the shard's fixed prefix: comparable across shards.
    fn front_suffix(&self) -> Option<&[u8]> {
        self.buffered
            .front()
            .map(|(key, _)| key.get(self.span.prefix_len..).unwrap_or_default())
    }

    fn exhausted(&self) -> bool {
        self.buffered.is_empty() && self.scan.is_done()
    }
}

impl RowScan {
    /// Prepares a read of `table`'s rows from `source`.
    fn new(table: Table, source: &RowSource) -> RowScan {
        let mut scan = RowScan {
            index: None,
            points: VecDeque::new(),
            ranges: VecDeque::new(),
            cursors: Vec::new(),
            ready: VecDeque::new(),
            seen: HashSet::new(),
            pending_done: false,
            first_batch: None,
            table,
        };
        match source {
            RowSource::All => {
                let spans = shard::row_spans(&scan.table, &KeyRange::all());
                scan.ranges.push_back(spans);
            }
            RowSource::PrimaryKey(ranges)
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
            RowSource::PrimaryKey(ranges) => {
                for range in ranges {
                    let spans = shard::row_spans(&scan.table, range);
                    scan.ranges.push_back(spans);
                }
            }
            RowSource::Index(index, ranges) => {
                for range in ranges {
                    let spans = shard::index_spans(&scan.table, index, range);
                    scan.ranges.push_back(spans);
                }
                scan.index = Some(index.clone());
            }
        }
        scan
    }
}

impl RowScan {
    /// Reads only about `rows` records from each shard first (a LIMIT's rows plus its
    /// OFFSET): the merge needs every shard's next key before it can emit one, and with
    /// full batches a LIMIT 10 over 8 shards would read 8 × 1,024 records. Later
    /// batches are full, so a filter that rejects rows costs one small extra batch.
    pub fn wanting(mut self, rows: u64) -> RowScan {
        self.first_batch = Some(usize::try_from(rows).unwrap_or(usize::MAX));
        self
    }
}

impl Transaction {
    /// Computes `spec`'s groups and aggregates over every row of `table` shard by
    /// shard, where each shard is stored, and combines the parts (see
    /// `replica::fan_out`); `None` when this transaction has written the table, since
    /// its own rows are overlaid only by a row scan, or when there are too many groups. Like any scan it needs a confirmed snapshot, and settles each shard's
    /// locks first.
    pub fn aggregate_table(
        &self,
        table: &Table,
        spec: &ShardAggregation,
        check: Check<'_>,
    ) -> Result<Option<GroupedParts>> {
        let start = (table.id, Vec::new());
        let written = self
            .writes
            .range(start..)
            .next()
            .is_some_and(|((id, _), _)| *id == table.id);
        if written {
            return Ok(None);
        }
        self.refuse_unconfirmed_scan()?;
        let mut scans = Vec::new();
        for span in shard::row_spans(table, &KeyRange::all()) {
            self.settle_shard(table, span.shard, span.group)?;
            let read_ts = self.snapshot_ts(span.group)?;
            scans.push((
                span.group,
                VersionedScan::new(span.start, span.end, read_ts),
            ));
        }
        let parts = self.replica.aggregate_spans(scans, spec, check)?;
        Ok((!parts.overflowed()).then_some(parts))
    }

    /// Starts reading the rows of `table` that `source` names, as this transaction
    /// sees them; [`Transaction::next_row`] returns them one at a time.
    pub fn scan_rows(&self, table: &Table, source: &RowSource) -> RowScan {
        RowScan::new(table.clone(), source)
    }

    /// The next row of a scan, or `None` when it is finished.
    pub fn next_row(&self, scan: &mut RowScan) -> Result<Option<Vec<Value>>> {
        loop {
            if let Some(row) = scan.ready.pop_front() {
                return Ok(Some(row));
            }
            if let Some(pk) = scan.points.pop_front() {
                if let Some(row) = self.get(&scan.table, &pk)? {
                    return Ok(Some(row));
                }
                continue;
            }
            if self.fill_from_storage(scan)? {
                continue;
            }
            if !scan.pending_done {
                scan.pending_done = true;
                scan.ready.extend(self.pending_rows(scan.table.id));
                continue;
            }
            return Ok(None);
        }
    }

    /// Fills `ready` from storage; returns false when storage has nothing more.
    fn fill_from_storage(&self, scan: &mut RowScan) -> Result<bool> {
        loop {
            if scan.cursors.is_empty() {
                let Some(spans) = scan.ranges.pop_front() else {
                    return Ok(false);
                };
                for span in &spans {
                    self.settle_shard(&scan.table, span.shard, span.group)?;
                }
                let mut cursors = Vec::with_capacity(spans.len());
                for span in spans {
                    let read_ts = self.snapshot_ts(span.group)?;
                    let mut versioned =
                        VersionedScan::new(span.start.clone(), span.end.clone(), read_ts);
                    if let Some(records) = scan.first_batch {
                        versioned = versioned.with_first_batch(records);
                    }
                    cursors.push(Cursor {
                        scan: versioned,
                        span,
                        buffered: VecDeque::new(),
                    });
                }
                scan.cursors = cursors;
            }
            self.refill(&mut scan.cursors)?;
            scan.cursors.retain(|cursor| !cursor.exhausted());
            for _ in 0..MERGE_BATCH {
                // Every live cursor must show its next key before the smallest is known.
                if scan.cursors.iter().any(|c| c.buffered.is_empty()) {
                    break;
                }
                let Some(smallest) = smallest_cursor(&scan.cursors) else {
                    break;
                };
                let cursor = &mut scan.cursors[smallest];
                let Some((key, value)) = cursor.buffered.pop_front() else {
                    break;
                };
                let prefix_len = cursor.span.prefix_len;
                self.take_record(scan, &key, prefix_len, &value)?;
            }
            if !scan.ready.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Fetches the next batch of every cursor that has run dry, all shards at once
    /// (see `Replica::scan_batches`).
    fn refill(&self, cursors: &mut [Cursor]) -> Result<()> {
        let mut dry: Vec<&mut Cursor> = cursors
            .iter_mut()
            .filter(|cursor| cursor.buffered.is_empty() && !cursor.scan.is_done())
            .collect();
        if dry.is_empty() {
            return Ok(());
        }
        self.refuse_unconfirmed_scan()?;
        let scans = dry
            .iter_mut()
            .map(|cursor| (cursor.span.group, &mut cursor.scan))
            .collect();
        let batches = self.replica.scan_batches(scans)?;
        for (cursor, batch) in dry.into_iter().zip(batches) {
            cursor.buffered.extend(batch);
        }
        Ok(())
    }

    /// Turns one stored record of a scan into a row in `ready` (or nothing, when the
    /// transaction's own write of the row overrides it).
    fn take_record(
        &self,
        scan: &mut RowScan,
        key: &[u8],
        prefix_len: usize,
        value: &[u8],
    ) -> Result<()> {
        let suffix = key
            .get(prefix_len..)
            .ok_or_else(|| Error::Corruption("short record key".into()))?;
        let Some(index) = &scan.index else {
            if !self.is_pending(scan.table.id, suffix) {
                scan.ready.push_back(encoding::decode(value)?);
            }
            return Ok(());
        };
        let mut position = 0;
        for _ in &index.columns {
            keycode::decode_value(suffix, &mut position)?;
        }
        let pk = &suffix[position..];
        if self.is_pending(scan.table.id, pk) || !scan.seen.insert(pk.to_vec()) {
            return Ok(());
        }
        if let Some(row) = self.get_committed(&scan.table, pk)? {
            scan.ready.push_back(row);
        }
        Ok(())
    }
}

/// The cursor whose next key sorts first; ties cannot happen (a key lives in one
/// shard), but would pick the first.
fn smallest_cursor(cursors: &[Cursor]) -> Option<usize> {
    let mut best: Option<(usize, &[u8])> = None;
    for (position, cursor) in cursors.iter().enumerate() {
        let Some(suffix) = cursor.front_suffix() else {
            continue;
        };
        if best.is_none_or(|(_, smallest)| suffix < smallest) {
            best = Some((position, suffix));
        }
    }
    best.map(|(position, _)| position)
}
