//! Fan-out: one piece of work over many shards at once, each where its shard is.
//!
//! A full-table aggregate is computed per shard and the parts combined
//! ([`crate::types::aggregate`]): the shards this node stores are aggregated side by
//! side on worker threads (at most one per core, each taking the next shard), while the
//! shards of groups it does not host are aggregated by their hosts, all asked at once,
//! in bounded requests. So the work costs about one shard's time per core, and only one
//! state per request crosses the network instead of every row.
//!
//! Trade-off: the workers are threads of the calling session's statement, not a shared
//! pool; on a busy node concurrent fan-outs compete for the same cores, which is the
//! work they would do one row at a time anyway.

use super::Replica;
use crate::encoding;
use crate::error::{Error, Result};
use crate::shard::GroupId;
use crate::storage::mvcc::{Records, VersionedScan};
use crate::storage::Store;
use crate::types::aggregate::{self, ColumnAggregate, PartialAggregate};
use crate::types::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most rows a host aggregates for one request before answering with its part and
/// where it stopped: bounds the request's time and lets cancels be seen between them.
pub const AGGREGATE_ROWS_PER_READ: usize = 65_536;

/// Most worker threads one fan-out starts for the shards stored here.
const MOST_WORKERS: usize = 8;

/// A check run between batches: fails when the statement must stop (a cancel, a
/// timeout).
pub type Check<'a> = &'a (dyn Fn() -> Result<()> + Sync);

impl Replica {
    /// Aggregates the live rows of every scan (one per shard, each in its group, at its
    /// snapshot) and combines the parts into one state per aggregate.
    pub fn aggregate_spans(
        &self,
        spans: Vec<(GroupId, VersionedScan)>,
        aggregates: &[ColumnAggregate],
        check: Check<'_>,
    ) -> Result<Vec<PartialAggregate>> {
        let mut stored = Vec::new();
        let mut elsewhere = Vec::new();
        for (group, scan) in spans {
            if let Replica::Cluster(cluster) = self {
                cluster.ensure_readable(group, scan.read_ts())?;
            }
            match self.hosted_store(group) {
                Some(store) => stored.push((store, scan)),
                None => elsewhere.push((group, scan)),
            }
        }
        let mut total = aggregate::start_all(aggregates);
        let (here, there) = std::thread::scope(|scope| {
            let there = (!elsewhere.is_empty())
                .then(|| scope.spawn(|| self.aggregate_elsewhere(elsewhere, aggregates, check)));
            let here = aggregate_stored(stored, aggregates, check);
            let there = there.map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(Error::Internal("a fan-out to other nodes panicked".into()))
                })
            });
            (here, there)
        });
        for parts in here?.into_iter().chain(there.transpose()?) {
            aggregate::combine_all(&mut total, parts)?;
        }
        Ok(total)
    }

    /// The next batch of each scan (one per shard of a row scan): shards of groups
    /// this node does not host are all asked at once, while the stored ones are read
    /// here, so a merge over many shards waits about one round trip per refill rather
    /// than one per remote shard.
    pub fn scan_batches(&self, scans: Vec<(GroupId, &mut VersionedScan)>) -> Result<Vec<Records>> {
        let Replica::Cluster(cluster) = self else {
            return scans
                .into_iter()
                .map(|(group, scan)| self.scan_batch(group, scan))
                .collect();
        };
        let mut batches: Vec<Option<Records>> = vec![None; scans.len()];
        let mut stored = Vec::new();
        let mut elsewhere = Vec::new();
        for (position, (group, scan)) in scans.into_iter().enumerate() {
            if self.hosted_store(group).is_some() {
                stored.push((position, group, scan));
            } else {
                cluster.ensure_readable(group, scan.read_ts())?;
                elsewhere.push((position, group, scan));
            }
        }
        let asked: Vec<(GroupId, VersionedScan)> = elsewhere
            .iter()
            .map(|(_, group, scan)| (*group, (**scan).clone()))
            .collect();
        let answers = std::thread::scope(|scope| -> Result<_> {
            let remote = (!asked.is_empty()).then(|| scope.spawn(|| cluster.scan_remote(asked)));
            for (position, group, scan) in stored {
                batches[position] = Some(self.scan_batch(group, scan)?);
            }
            match remote {
                None => Ok(Vec::new()),
                Some(handle) => handle.join().unwrap_or_else(|_| {
                    Err(Error::Internal("a fan-out to other nodes panicked".into()))
                }),
            }
        })?;
        for ((position, _, scan), (rows, moved)) in elsewhere.into_iter().zip(answers) {
            *scan = moved;
            batches[position] = Some(rows);
        }
        batches
            .into_iter()
            .map(|batch| {
                batch.ok_or_else(|| Error::Internal("a shard's batch went unanswered".into()))
            })
            .collect()
    }

    /// Has the hosts of groups this node does not host aggregate their scans.
    fn aggregate_elsewhere(
        &self,
        spans: Vec<(GroupId, VersionedScan)>,
        aggregates: &[ColumnAggregate],
        check: Check<'_>,
    ) -> Result<Vec<PartialAggregate>> {
        match self {
            Replica::Cluster(cluster) => cluster.aggregate_remote(spans, aggregates, check),
            Replica::Local(_) => Err(Error::Internal(
                "the embedded engine stores every shard itself".into(),
            )),
        }
    }
}

/// Aggregates the scans of stores this node holds on worker threads, each worker
/// taking the next scan; one part per worker.
fn aggregate_stored(
    stored: Vec<(&Store, VersionedScan)>,
    aggregates: &[ColumnAggregate],
    check: Check<'_>,
) -> Result<Vec<Vec<PartialAggregate>>> {
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = cores.min(stored.len()).clamp(1, MOST_WORKERS);
    let next = AtomicUsize::new(0);
    let scans: Vec<Mutex<Option<(&Store, VersionedScan)>>> = stored
        .into_iter()
        .map(|scan| Mutex::new(Some(scan)))
        .collect();
    let work = || -> Result<Vec<PartialAggregate>> {
        let mut part = aggregate::start_all(aggregates);
        loop {
            let position = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = scans.get(position) else {
                return Ok(part);
            };
            let taken = slot
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .take();
            if let Some((store, scan)) = taken {
                aggregate_scan(store, scan, aggregates, &mut part, usize::MAX, check)?;
            }
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
        let mut parts = vec![work()?];
        for helper in helpers {
            let part = helper
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("a fan-out worker panicked".into())))?;
            parts.push(part);
        }
        Ok(parts)
    })
}

/// Adds up to `max_rows` live rows of `scan` (and the batch that crosses it) to
/// `part`; returns the scan where it stopped.
pub fn aggregate_scan(
    store: &Store,
    mut scan: VersionedScan,
    aggregates: &[ColumnAggregate],
    part: &mut [PartialAggregate],
    max_rows: usize,
    check: Check<'_>,
) -> Result<VersionedScan> {
    let mut rows = 0;
    while !scan.is_done() && rows < max_rows {
        check()?;
        for (_, value) in scan.next_batch(store)? {
            let row: Vec<Value> = encoding::decode(&value)?;
            aggregate::add_row(aggregates, part, &row)?;
            rows += 1;
        }
    }
    Ok(scan)
}
