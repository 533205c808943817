//! Reads of one group's state, as values that can cross the network.
//!
//! The transaction layer reads a group's rows, index entries, locks and transaction
//! records through [`GroupRead`] requests rather than a store handle, so that a read of
//! a group this node does not host can be answered by a node that does (see
//! `raft::remote`), and one it hosts is answered from its own store by the same code
//! ([`answer`]). Every request is bounded: a scan returns one batch (and the scan's
//! state to resume from), lock listings a caller-given number, version lookups the
//! keys the caller chunked.

use super::fan_out::{self, GroupedParts};
use crate::error::{Error, Result};
use crate::state_machine::two_phase::{self, Lock, TxnId, TxnRecord};
use crate::storage::keys::{ShardId, TableId};
use crate::storage::mvcc::{self, Version, VersionedScan};
use crate::storage::Store;
use crate::types::aggregate::ShardAggregation;
use serde::{Deserialize, Serialize};

/// One read of a group's state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum GroupRead {
    /// The live value of a record as of `read_ts`.
    Live {
        /// The record's prefix.
        prefix: Vec<u8>,
        /// The snapshot.
        read_ts: u64,
    },
    /// The newest version of each record.
    LatestVersions {
        /// The records' prefixes.
        prefixes: Vec<Vec<u8>>,
    },
    /// The next batch of a scan.
    Scan {
        /// Where the scan stands.
        scan: VersionedScan,
    },
    /// The lock on a key, if one is held.
    Lock {
        /// The lock key.
        key: Vec<u8>,
    },
    /// Up to `limit` locks held on a table's rows and unique values in one shard.
    TableLocks {
        /// The shard.
        shard: ShardId,
        /// The table.
        table: TableId,
        /// Most locks returned.
        limit: usize,
    },
    /// A transaction's record, if this group holds it.
    Record {
        /// The transaction.
        txn: TxnId,
    },
    /// Aggregates of the live rows of a row scan, over up to `max_rows` rows (and the
    /// batch crossing it), from where the scan stands.
    Aggregate {
        /// Where the scan stands.
        scan: VersionedScan,
        /// How to group the rows and what to compute of each group.
        spec: ShardAggregation,
        /// Rows to aggregate at most before answering.
        max_rows: usize,
    },
}

/// The answer to a [`GroupRead`], variant for variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum GroupAnswer {
    /// To `Live`.
    Live(Option<Vec<u8>>),
    /// To `LatestVersions`, in the order asked.
    LatestVersions(Vec<Option<Version>>),
    /// To `Scan`: the batch, and the scan advanced past it.
    Scan {
        /// Live `(record prefix, value)` pairs.
        rows: Vec<(Vec<u8>, Vec<u8>)>,
        /// Where to resume.
        scan: VersionedScan,
    },
    /// To `Lock`.
    Lock(Option<Lock>),
    /// To `TableLocks`.
    TableLocks(Vec<Lock>),
    /// To `Record`.
    Record(Option<TxnRecord>),
    /// To `Aggregate`: the groups' parts, and the scan advanced past the rows.
    Aggregated {
        /// The parts.
        parts: GroupedParts,
        /// Where to resume.
        scan: VersionedScan,
    },
}

/// Answers `read` from a group's own store.
pub fn answer(store: &Store, read: GroupRead) -> Result<GroupAnswer> {
    Ok(match read {
        GroupRead::Live { prefix, read_ts } => {
            GroupAnswer::Live(mvcc::read_live(store, &prefix, read_ts)?)
        }
        GroupRead::LatestVersions { prefixes } => {
            GroupAnswer::LatestVersions(mvcc::read_latest_versions(store, &prefixes)?)
        }
        GroupRead::Scan { mut scan } => {
            let rows = scan.next_batch(store)?;
            GroupAnswer::Scan { rows, scan }
        }
        GroupRead::Lock { key } => GroupAnswer::Lock(two_phase::read_lock(store, &key)?),
        GroupRead::TableLocks {
            shard,
            table,
            limit,
        } => GroupAnswer::TableLocks(two_phase::table_locks(store, shard, table, limit)?),
        GroupRead::Record { txn } => GroupAnswer::Record(two_phase::read_record(store, txn)?),
        GroupRead::Aggregate {
            scan,
            spec,
            max_rows,
        } => {
            let mut parts = GroupedParts::default();
            let rows = max_rows.min(fan_out::AGGREGATE_ROWS_PER_READ);
            let keep_going = || Ok(());
            let scan = fan_out::aggregate_scan(store, scan, &spec, &mut parts, rows, &keep_going)?;
            GroupAnswer::Aggregated { parts, scan }
        }
    })
}

/// The error for an answer of another kind than the read asked for.
pub fn mismatched(answer: &GroupAnswer) -> Error {
    Error::Internal(format!("a group read was answered with {answer:?}"))
}
