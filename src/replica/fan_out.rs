//! Fan-out: one piece of work over many shards at once, each where its shard is.
//!
//! A full-table aggregate, grouped by plain columns or not, is computed per shard and
//! the parts combined ([`GroupedParts`], [`crate::types::aggregate`]): the shards this node stores are aggregated side by
//! side on worker threads (at most one per core, each taking the next shard), while the
//! shards of groups it does not host are aggregated by their hosts, all asked at once,
//! in bounded requests. So the work costs about one shard's time per core, and only one
//! state per request crosses the network instead of every row.
//!
//! Limits: at most [`MOST_GROUPS`] groups are kept; past that the parts say they
//! overflowed and the executor aggregates the rows itself instead (a GROUP BY of nearly
//! unique values gains nothing from parts anyway).
//!
//! Trade-off: the workers are threads of the calling session's statement, not a shared
//! pool; on a busy node concurrent fan-outs compete for the same cores, which is the
//! work they would do one row at a time anyway.

use super::Replica;
use crate::encoding::{self, keycode};
use crate::error::{Error, Result};
use crate::shard::GroupId;
use crate::storage::mvcc::{Records, VersionedScan};
use crate::storage::Store;
use crate::types::aggregate::{self, ColumnAggregate, PartialAggregate, ShardAggregation};
use crate::types::Value;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Most rows a host aggregates for one request before answering with its part and
/// where it stopped: bounds the request's time and lets cancels be seen between them.
pub const AGGREGATE_ROWS_PER_READ: usize = 65_536;

/// Most worker threads one fan-out starts for the shards stored here.
const MOST_WORKERS: usize = 8;

/// Most groups a fan-out aggregate keeps (per shard and combined).
pub const MOST_GROUPS: usize = 100_000;

/// Parts of a grouped aggregate: each group's key values and aggregate states, in the
/// order the groups were first met; or the note that there were too many groups.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GroupedParts {
    groups: Vec<(Vec<Value>, Vec<PartialAggregate>)>,
    overflowed: bool,
    /// Group positions by the key encoding of their values (so NULLs group together
    /// and 1 = 1.0, as the executor groups); rebuilt where parts are combined.
    #[serde(skip)]
    positions: HashMap<Vec<u8>, usize>,
}

impl GroupedParts {
    /// Adds one stored row to its group.
    pub fn add_row(&mut self, spec: &ShardAggregation, row: &[Value]) -> Result<()> {
        if self.overflowed {
            return Ok(());
        }
        if spec.group_by.is_empty() {
            // One group of every row: no key to encode and look up per row.
            if self.groups.is_empty() {
                self.groups
                    .push((Vec::new(), aggregate::start_all(&spec.aggregates)));
                self.positions.insert(keycode::encode_values(&[]), 0);
            }
            return aggregate::add_row(&spec.aggregates, &mut self.groups[0].1, row);
        }
        let keys = spec
            .group_by
            .iter()
            .map(|&column| {
                row.get(column).cloned().ok_or_else(|| {
                    Error::Corruption(format!("a stored row has no column {column}"))
                })
            })
            .collect::<Result<Vec<Value>>>()?;
        let Some(position) = self.position(keys, &spec.aggregates) else {
            return Ok(());
        };
        aggregate::add_row(&spec.aggregates, &mut self.groups[position].1, row)
    }

    /// Folds another shard's parts into these.
    pub fn combine(&mut self, other: GroupedParts, spec: &ShardAggregation) -> Result<()> {
        if other.overflowed {
            self.overflowed = true;
        }
        for (keys, states) in other.groups {
            if self.overflowed {
                break;
            }
            if let Some(position) = self.position(keys, &spec.aggregates) {
                aggregate::combine_all(&mut self.groups[position].1, states)?;
            }
        }
        Ok(())
    }

    /// Whether there were more than [`MOST_GROUPS`] groups (the parts are then
    /// incomplete and must not be used).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The groups, each with its key values and states.
    pub fn into_groups(self) -> Vec<(Vec<Value>, Vec<PartialAggregate>)> {
        self.groups
    }

    /// The position of the group of `keys`, made if new; `None` once over the limit.
    fn position(&mut self, keys: Vec<Value>, aggregates: &[ColumnAggregate]) -> Option<usize> {
        if self.positions.len() < self.groups.len() {
            self.positions = self
                .groups
                .iter()
                .enumerate()
                .map(|(position, (keys, _))| (keycode::encode_values(keys), position))
                .collect();
        }
        let encoded = keycode::encode_values(&keys);
        if let Some(&position) = self.positions.get(&encoded) {
            return Some(position);
        }
        if self.groups.len() >= MOST_GROUPS {
            self.overflowed = true;
            return None;
        }
        self.groups.push((keys, aggregate::start_all(aggregates)));
        self.positions.insert(encoded, self.groups.len() - 1);
        Some(self.groups.len() - 1)
    }
}

/// A check run between batches: fails when the statement must stop (a cancel, a
/// timeout).
pub type Check<'a> = &'a (dyn Fn() -> Result<()> + Sync);

impl Replica {
    /// Aggregates the live rows of every scan (one per shard, each in its group, at its
    /// snapshot) as `spec` says and combines the parts.
    pub fn aggregate_spans(
        &self,
        spans: Vec<(GroupId, VersionedScan)>,
        spec: &ShardAggregation,
        check: Check<'_>,
    ) -> Result<GroupedParts> {
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
        let mut total = GroupedParts::default();
        let (here, there) = std::thread::scope(|scope| {
            let there = (!elsewhere.is_empty())
                .then(|| scope.spawn(|| self.aggregate_elsewhere(elsewhere, spec, check)));
            let here = aggregate_stored(stored, spec, check);
            let there = there.map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(Error::Internal("a fan-out to other nodes panicked".into()))
                })
            });
            (here, there)
        });
        for parts in here?.into_iter().chain(there.transpose()?) {
            total.combine(parts, spec)?;
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
        spec: &ShardAggregation,
        check: Check<'_>,
    ) -> Result<GroupedParts> {
        match self {
            Replica::Cluster(cluster) => cluster.aggregate_remote(spans, spec, check),
            Replica::Local(_) => Err(Error::Internal(
                "the embedded engine stores every shard itself".into(),
            )),
        }
    }
}

/// A scan of a shard this node stores, with the store it reads.
type StoredScan = (Arc<Store>, VersionedScan);

/// Aggregates the scans of stores this node holds on worker threads, each worker
/// taking the next scan; one part per worker.
fn aggregate_stored(
    stored: Vec<StoredScan>,
    spec: &ShardAggregation,
    check: Check<'_>,
) -> Result<Vec<GroupedParts>> {
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = cores.min(stored.len()).clamp(1, MOST_WORKERS);
    let next = AtomicUsize::new(0);
    let scans: Vec<Mutex<Option<StoredScan>>> = stored
        .into_iter()
        .map(|scan| Mutex::new(Some(scan)))
        .collect();
    let work = || -> Result<GroupedParts> {
        let mut part = GroupedParts::default();
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
                aggregate_scan(&store, scan, spec, &mut part, usize::MAX, check)?;
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
    spec: &ShardAggregation,
    part: &mut GroupedParts,
    max_rows: usize,
    check: Check<'_>,
) -> Result<VersionedScan> {
    let mut rows = 0;
    while !scan.is_done() && rows < max_rows && !part.overflowed() {
        check()?;
        for (_, value) in scan.next_batch(store)? {
            let row: Vec<Value> = encoding::decode(&value)?;
            part.add_row(spec, &row)?;
            rows += 1;
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::aggregate::Combinable;

    fn spec() -> ShardAggregation {
        ShardAggregation {
            group_by: vec![0],
            aggregates: vec![ColumnAggregate {
                function: Combinable::Sum,
                column: Some(1),
                integer: true,
            }],
        }
    }

    fn row(key: Value, n: i64) -> Vec<Value> {
        vec![key, Value::BigInt(n)]
    }

    /// Groups met in several shards combine into one per key (NULL keys together,
    /// equal numbers of different types together), in the order first met.
    #[test]
    fn grouped_parts_combine_by_key() {
        let spec = spec();
        let mut first = GroupedParts::default();
        first.add_row(&spec, &row(Value::Integer(1), 10)).unwrap();
        first.add_row(&spec, &row(Value::Null, 1)).unwrap();
        let mut second = GroupedParts::default();
        second.add_row(&spec, &row(Value::BigInt(1), 5)).unwrap();
        second.add_row(&spec, &row(Value::Integer(2), 7)).unwrap();
        second.add_row(&spec, &row(Value::Null, 2)).unwrap();
        // Parts that crossed the network lose their lookup table and rebuild it.
        let second: GroupedParts = encoding::decode(&encoding::encode(&second).unwrap()).unwrap();
        let mut total = GroupedParts::default();
        total.combine(first, &spec).unwrap();
        total.combine(second, &spec).unwrap();
        let sums: Vec<String> = total
            .into_groups()
            .into_iter()
            .map(|(keys, states)| {
                let sum = states[0]
                    .clone()
                    .finish(crate::types::DataType::BigInt)
                    .unwrap();
                format!("{:?}={:?}", keys[0], sum)
            })
            .collect();
        assert_eq!(
            sums,
            [
                "Integer(1)=BigInt(15)",
                "Null=BigInt(3)",
                "Integer(2)=BigInt(7)"
            ]
        );
    }

    /// Past MOST_GROUPS groups the parts say so, and combining keeps saying so.
    #[test]
    fn too_many_groups_overflow() {
        let spec = spec();
        let mut parts = GroupedParts::default();
        for n in 0..=MOST_GROUPS as i64 {
            parts.add_row(&spec, &row(Value::BigInt(n), 1)).unwrap();
        }
        assert!(parts.overflowed());
        let mut total = GroupedParts::default();
        total.combine(parts, &spec).unwrap();
        assert!(total.overflowed());
    }
}
