//! Replica: where commands are ordered, stamped and applied.
//!
//! Layers above talk to a [`Replica`] through two verbs — propose a command, read at a
//! timestamp — whichever kind it is. The embedded engine's [`LocalReplica`] hosts every
//! shard in this process: a lock orders commands, the oracle stamps them, and the state
//! machine applies them. In a cluster ([`cluster::ClusterReplica`]) a Raft group orders
//! commands in its log and every replica applies them ([`raft`]).
//!
//! Group commit: the apply lock covers ordering, checks and the (unsynced) write, not the
//! fsync. After releasing it, a proposer waits until the log is synced past its command;
//! whoever finds no sync in flight starts one, which covers every command written before
//! it, and the others wait for it. So N concurrent commits share about one fsync instead
//! of queueing for N. Nothing is acknowledged, and no snapshot includes a command (the
//! read timestamp is the synced watermark), before its sync; a failed command also waits,
//! so that an error caused by an earlier, not yet durable commit (a conflict, a duplicate
//! key) is only reported once that commit is durable.

pub mod cluster;
pub mod fan_out;
pub mod group_read;
pub mod oracle;
pub mod raft;
pub mod sequence_cache;

use crate::catalog::{Catalog, Sequence, SharedCatalog};
use crate::error::{Error, Result};
use crate::shard::GroupId;
use crate::state_machine::{Applied, Command, Operation, ProgressFn, StateMachine};
use crate::storage::mvcc;
use crate::storage::Store;
use group_read::{GroupAnswer, GroupRead};
use oracle::{LocalOracle, TimestampOracle};
use sequence_cache::{SequenceCache, Taken};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The consistency a read asks for (DESIGN §2.7); a local replica meets all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReadLevel {
    /// Sees every write acknowledged before the read began.
    Linearizable,
    /// Like linearizable while the leader's lease holds; no quorum round.
    Lease,
    /// The local replica as it is, if no older than the bound (`None`: any age).
    Stale {
        /// Oldest acceptable data.
        max_staleness: Option<Duration>,
    },
}

/// Where a session's commands go and its reads come from.
pub enum Replica {
    /// Every shard in this process.
    Local(LocalReplica),
    /// A node of a cluster.
    Cluster(cluster::ClusterReplica),
}

impl Replica {
    /// Orders, stamps and applies one operation in `group` (where the router placed
    /// what it changes); returns once it is durable. The embedded replica hosts every
    /// group in one state machine, so it needs no routing.
    pub fn propose(&self, group: GroupId, operation: Operation) -> Result<Applied> {
        match self {
            Replica::Local(local) => local.propose(operation, None),
            Replica::Cluster(cluster) => cluster.propose(group, operation),
        }
    }

    /// Proposes each operation in its group, concurrently where the groups are
    /// replicated; answers in the same order. The phases of a cross-group commit fan
    /// out through it, so they cost about one round, not one per group.
    pub fn propose_each(
        &self,
        proposals: Vec<(GroupId, Operation)>,
    ) -> Result<Vec<Result<Applied>>> {
        match self {
            Replica::Local(local) => Ok(proposals
                .into_iter()
                .map(|(_, operation)| local.propose(operation, None))
                .collect()),
            Replica::Cluster(cluster) => cluster.propose_each(proposals),
        }
    }

    /// How long a cross-group commit pauses between its prepares and its decision: a
    /// fault tests set on a cluster node (`ALTER CLUSTER SET COMMIT PAUSE`), else zero.
    pub fn commit_pause(&self) -> Duration {
        match self {
            Replica::Local(_) => Duration::ZERO,
            Replica::Cluster(cluster) => cluster.commit_pause(),
        }
    }

    /// Whether a read may meet locks of a cross-group commit: only where more than one
    /// data group exists. The embedded engine commits every transaction in one phase.
    pub fn may_hold_locks(&self) -> bool {
        self.data_group_count() > 1
    }

    /// Runs a DDL operation: the embedded replica applies it to its one state machine
    /// (catalog and data in one batch); a cluster changes the catalog in the metadata
    /// group, then installs it in every data group (see `raft::schema`).
    pub fn change_schema(
        &self,
        operation: Operation,
        progress: Option<ProgressFn>,
    ) -> Result<Applied> {
        match self {
            Replica::Local(local) => local.propose(operation, progress),
            Replica::Cluster(cluster) => cluster.change_schema(operation),
        }
    }

    /// A number never handed out before (hidden row ids of tables without a primary key).
    pub fn unique_id(&self) -> Result<u64> {
        match self {
            Replica::Local(local) => local.unique_id(),
            Replica::Cluster(cluster) => cluster.unique_id(),
        }
    }

    /// `nextval` of `sequence`: the next value of this node's reserved range, or the
    /// first of a new range reserved where the catalog is held (the embedded state
    /// machine, a cluster's metadata group), committed before any of it is used.
    pub fn next_sequence_value(&self, sequence: &Sequence) -> Result<i64> {
        let cache = self.sequence_cache();
        match cache.take(sequence) {
            Taken::Value(value) => return Ok(value),
            Taken::Empty => {}
            Taken::Stale {
                reserved_through,
                position,
            } => {
                let release = Operation::ReleaseSequence {
                    sequence: sequence.id,
                    reserved_through,
                    position,
                };
                self.change_sequence(release)?;
            }
        }
        let advance = Operation::AdvanceSequence {
            sequence: sequence.id,
            count: sequence.reservation_size(),
        };
        match self.change_sequence(advance)? {
            Applied::SequenceValues(reservation) => Ok(cache.fill(sequence, reservation)),
            other => Err(Error::Internal(format!(
                "a sequence reservation was answered by {other:?}"
            ))),
        }
    }

    /// `setval` of `sequence`; this node's range of it is dropped, so its next value
    /// here follows the new position.
    pub fn set_sequence_value(
        &self,
        sequence: &Sequence,
        value: i64,
        is_called: bool,
    ) -> Result<()> {
        let set = Operation::SetSequence {
            sequence: sequence.id,
            value,
            is_called,
        };
        self.change_sequence(set)?;
        self.sequence_cache().forget(sequence.id);
        Ok(())
    }

    fn change_sequence(&self, operation: Operation) -> Result<Applied> {
        match self {
            Replica::Local(local) => local.propose(operation, None),
            Replica::Cluster(cluster) => cluster.change_sequence(operation),
        }
    }

    fn sequence_cache(&self) -> &SequenceCache {
        match self {
            Replica::Local(local) => &local.sequence_cache,
            Replica::Cluster(cluster) => cluster.sequence_cache(),
        }
    }

    /// A timestamp whose snapshot is complete on this replica and as fresh as `level`
    /// asks; waits (boundedly) until it is, or says why it cannot be.
    pub fn read_timestamp(&self, level: ReadLevel) -> Result<u64> {
        match self {
            Replica::Local(local) => Ok(local.read_timestamp()),
            Replica::Cluster(cluster) => cluster.read_timestamp(level),
        }
    }

    /// The timestamp `group` is complete at on the replica that answers for it, as it
    /// is, without a round: where a snapshot on no particular freshness may be taken
    /// for a transaction that reads this group first (see `Transaction::begin_unconfirmed`).
    pub fn applied_as_is(&self, group: GroupId) -> Result<u64> {
        match self {
            Replica::Local(local) => Ok(local.read_timestamp()),
            Replica::Cluster(cluster) => cluster.applied_as_is(group),
        }
    }

    /// Resolves a decided transaction's shares in `groups` after the caller goes on,
    /// where it can (see `ClusterReplica::resolve_in_background`); false when the
    /// caller must resolve them itself (the embedded engine never commits across
    /// groups).
    pub fn resolve_in_background(
        &self,
        txn: crate::state_machine::two_phase::TxnId,
        outcome: crate::state_machine::two_phase::TxnOutcome,
        groups: Vec<GroupId>,
    ) -> bool {
        match self {
            Replica::Local(_) => false,
            Replica::Cluster(cluster) => cluster.resolve_in_background(txn, outcome, groups),
        }
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        match self {
            Replica::Local(local) => local.catalog(),
            Replica::Cluster(cluster) => cluster.catalog(),
        }
    }

    /// The store holding this node's own copy of `group`, for work a group's leader
    /// does on its own replica (the cleaner); an error where the group is not hosted.
    /// Reads for transactions go through [`Replica::read_group`].
    pub fn group_store(&self, group: GroupId) -> Result<Arc<Store>> {
        match self {
            Replica::Local(local) => Ok(Arc::clone(&local.store)),
            Replica::Cluster(cluster) => cluster.group_store(group),
        }
    }

    /// Answers `read` of `group` from a replica that has applied everything up to
    /// `at_least_ts`: this node's own when it hosts the group (a snapshot from
    /// [`Replica::read_timestamp`] is applied here already), otherwise a node that
    /// hosts it, over the network.
    pub fn read_group(
        &self,
        group: GroupId,
        at_least_ts: u64,
        read: GroupRead,
    ) -> Result<GroupAnswer> {
        match self {
            Replica::Local(local) => group_read::answer(local.store(), read),
            Replica::Cluster(cluster) => cluster.read_group(group, at_least_ts, read),
        }
    }

    /// The live value of record `prefix` in `group` as of `read_ts`.
    pub fn read_live(
        &self,
        group: GroupId,
        prefix: &[u8],
        read_ts: u64,
    ) -> Result<Option<Vec<u8>>> {
        let read = GroupRead::Live {
            prefix: prefix.to_vec(),
            read_ts,
        };
        match self.read_group(group, read_ts, read)? {
            GroupAnswer::Live(value) => Ok(value),
            other => Err(group_read::mismatched(&other)),
        }
    }

    /// The newest version of each record in `group`, read where everything up to
    /// `at_least_ts` is applied.
    pub fn read_latest_versions(
        &self,
        group: GroupId,
        prefixes: &[Vec<u8>],
        at_least_ts: u64,
    ) -> Result<Vec<Option<mvcc::Version>>> {
        let read = GroupRead::LatestVersions {
            prefixes: prefixes.to_vec(),
        };
        match self.read_group(group, at_least_ts, read)? {
            GroupAnswer::LatestVersions(versions) => Ok(versions),
            other => Err(group_read::mismatched(&other)),
        }
    }

    /// The next batch of `scan` over `group`; `scan` moves past it.
    pub fn scan_batch(
        &self,
        group: GroupId,
        scan: &mut mvcc::VersionedScan,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if let Replica::Cluster(cluster) = self {
            cluster.ensure_readable(group, scan.read_ts())?;
        }
        if let Some(store) = self.hosted_store(group) {
            return scan.next_batch(&store);
        }
        let read = GroupRead::Scan { scan: scan.clone() };
        match self.read_group(group, scan.read_ts(), read)? {
            GroupAnswer::Scan { rows, scan: moved } => {
                *scan = moved;
                Ok(rows)
            }
            other => Err(group_read::mismatched(&other)),
        }
    }

    /// This node's store of `group`, if it hosts the group.
    fn hosted_store(&self, group: GroupId) -> Option<Arc<Store>> {
        match self {
            Replica::Local(local) => Some(Arc::clone(&local.store)),
            Replica::Cluster(cluster) => cluster.node().group_store(group),
        }
    }

    /// The shard count of a table created without `WITH (shards = N)`: grows with the
    /// number of nodes (see [`crate::shard::default_shard_count`]).
    pub fn default_shard_count(&self) -> u16 {
        match self {
            Replica::Local(_) => crate::shard::default_shard_count(1),
            Replica::Cluster(cluster) => crate::shard::default_shard_count(cluster.node_count()),
        }
    }

    /// How many data groups new tables' shards are placed on: the embedded engine hosts
    /// every shard in one state machine (one group, so every commit is one-phase); a
    /// cluster runs the pool it was started with.
    pub fn data_group_count(&self) -> u64 {
        match self {
            Replica::Local(_) => 1,
            Replica::Cluster(cluster) => cluster.data_group_count(),
        }
    }

    /// The cluster node behind this replica, if it is one.
    pub fn cluster(&self) -> Option<&cluster::ClusterReplica> {
        match self {
            Replica::Local(_) => None,
            Replica::Cluster(cluster) => Some(cluster),
        }
    }
}

/// The single-node replica of every shard.
pub struct LocalReplica {
    store: Arc<Store>,
    state_machine: Mutex<StateMachine>,
    catalog: SharedCatalog,
    oracle: Box<dyn TimestampOracle>,
    /// Commit timestamp up to which every command is applied and durable: a snapshot at
    /// this timestamp is complete and will never change.
    read_ts: AtomicU64,
    /// Timestamp of the last command written to the log (synced or not).
    written_ts: AtomicU64,
    /// The group-commit state: how far the log is synced, and whether a sync is running.
    durability: Mutex<Durability>,
    /// Signalled when a sync finishes.
    synced: Condvar,
    /// Sequence values reserved and not yet handed out.
    sequence_cache: SequenceCache,
}

struct Durability {
    synced_ts: u64,
    syncing: bool,
}

impl LocalReplica {
    /// Opens the replica over a store, recovering the catalog and applied timestamp.
    pub fn open(store: Arc<Store>) -> Result<LocalReplica> {
        let state_machine = StateMachine::open(Arc::clone(&store))?;
        let last_applied = state_machine.last_applied_ts();
        let oracle = LocalOracle::open(Arc::clone(&store), last_applied)?;
        Ok(LocalReplica {
            catalog: state_machine.catalog_handle(),
            state_machine: Mutex::new(state_machine),
            oracle: Box::new(oracle),
            read_ts: AtomicU64::new(last_applied),
            written_ts: AtomicU64::new(last_applied),
            durability: Mutex::new(Durability {
                synced_ts: last_applied,
                syncing: false,
            }),
            synced: Condvar::new(),
            sequence_cache: SequenceCache::default(),
            store,
        })
    }

    /// Orders, stamps and applies one operation; returns once it is durable.
    pub fn propose(&self, operation: Operation, progress: Option<ProgressFn>) -> Result<Applied> {
        let (outcome, written) = {
            let mut state_machine = self
                .state_machine
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let command = Command {
                commit_ts: self.oracle.next_timestamp()?,
                operation,
            };
            let span = tracing::debug_span!("apply", commit_ts = command.commit_ts);
            let _entered = span.enter();
            let outcome = state_machine.apply(&command, progress);
            let written = state_machine.last_applied_ts();
            self.written_ts.store(written, Ordering::Release);
            (outcome, written)
        };
        self.wait_until_synced(written)?;
        outcome
    }

    /// Waits until the log is synced at least up to `written`, running the sync itself
    /// when none is in flight.
    fn wait_until_synced(&self, written: u64) -> Result<()> {
        let mut state = self
            .durability
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        while state.synced_ts < written {
            if state.syncing {
                state = self
                    .synced
                    .wait(state)
                    .unwrap_or_else(|poison| poison.into_inner());
                continue;
            }
            state.syncing = true;
            drop(state);
            // Every command up to `target` is in the log before the sync starts.
            let target = self.written_ts.load(Ordering::Acquire);
            let outcome = self.store.sync_wal();
            state = self
                .durability
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            state.syncing = false;
            if outcome.is_ok() && target > state.synced_ts {
                state.synced_ts = target;
                self.read_ts.fetch_max(target, Ordering::AcqRel);
            }
            self.synced.notify_all();
            outcome?;
        }
        Ok(())
    }

    /// A number never handed out before (hidden row ids of tables without a primary key).
    pub fn unique_id(&self) -> Result<u64> {
        self.oracle.next_timestamp()
    }

    /// A timestamp whose snapshot is complete: every commit at or below it is applied.
    pub fn read_timestamp(&self) -> u64 {
        self.read_ts.load(Ordering::Acquire)
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.current()
    }

    /// The store, for snapshot reads.
    pub fn store(&self) -> &Store {
        &self.store
    }
}
