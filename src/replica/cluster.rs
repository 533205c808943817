//! The replica of a cluster node: the synchronous face the SQL layer calls, over the
//! node's asynchronous Raft groups.
//!
//! Sessions run statements on threads of their own (one per connection), so each call
//! here polls its future to completion on the session's thread, within the node's
//! runtime context; the session's thread blocks, the runtime's workers never do.
//!
//! Error mapping: a write that certainly was not applied is [`Error::Retryable`]
//! (40001); one whose outcome cannot be known is [`Error::OutcomeUnknown`] (40003),
//! never retried here. After a write, the call waits until this replica has applied it,
//! so the session's next statement (planned with this replica's catalog) sees it.

use super::fan_out::{Check, GroupedParts, AGGREGATE_ROWS_PER_READ};
use super::group_read::{self, GroupAnswer, GroupRead};
use super::raft::membership::StepReport;
use super::raft::node::write_error;
pub use super::raft::node::{NodeStatus, PreparedRead};
use super::raft::node::{Proposal, RaftNode};
use super::raft::types::Response;
use super::ReadLevel;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::shard::GroupId;
use crate::state_machine::two_phase::{TxnId, TxnOutcome};
use crate::state_machine::{Applied, Operation};
use crate::storage::mvcc::{Records, VersionedScan};
use crate::storage::Store;
use crate::types::aggregate::ShardAggregation;
use std::future::Future;
use std::sync::Arc;

/// What `ALTER CLUSTER` changes.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterChange {
    /// `ADD NODE 'raft address'`: the running node there joins every group.
    AddNode {
        /// The new node's Raft address.
        raft_address: String,
    },
    /// `REMOVE NODE id`.
    RemoveNode {
        /// The node.
        node_id: u64,
    },
    /// `TRANSFER LEADER TO NODE id [FOR GROUP g]`.
    TransferLeader {
        /// The node that should lead.
        to: u64,
        /// One group, or every group when `None`.
        group: Option<u64>,
    },
    /// `SET CLOCK RATE r`: the node this session is on measures time `r` times as fast
    /// as the system's clock (a fault for tests; refused unless the node allows it).
    ClockRate {
        /// The rate, 1.0 being the system's.
        rate: f64,
    },
    /// `SET COMMIT PAUSE ms`: the node this session is on holds every cross-group
    /// commit it coordinates for this long between the prepares and the decision, so
    /// tests can meet its locks or kill it there (refused unless the node allows test
    /// faults; 0 ends it).
    CommitPause {
        /// The pause in milliseconds.
        millis: u64,
    },
}

/// A cluster node seen as a replica.
pub struct ClusterReplica {
    node: Arc<RaftNode>,
    runtime: tokio::runtime::Handle,
    /// Permits for resolves running after their commits answered.
    background_resolves: Arc<tokio::sync::Semaphore>,
    /// Sequence values this node reserved and has not yet handed out.
    sequence_cache: super::sequence_cache::SequenceCache,
}

/// Most resolves of committed transactions' other shares running at once after their
/// commits answered; past that a commit resolves before it answers.
const MOST_BACKGROUND_RESOLVES: usize = 256;

impl ClusterReplica {
    /// The replica of `node`, whose work runs on `runtime`.
    pub fn new(node: Arc<RaftNode>, runtime: tokio::runtime::Handle) -> ClusterReplica {
        ClusterReplica {
            node,
            runtime,
            background_resolves: Arc::new(tokio::sync::Semaphore::new(MOST_BACKGROUND_RESOLVES)),
            sequence_cache: Default::default(),
        }
    }

    /// This node's reserved sequence values.
    pub fn sequence_cache(&self) -> &super::sequence_cache::SequenceCache {
        &self.sequence_cache
    }

    /// Commits a sequence reservation or `setval` in the metadata group.
    pub fn change_sequence(&self, operation: Operation) -> Result<Applied> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.change_sequence(operation).await })?
    }

    /// Resolves `txn`'s shares in `groups` (its outcome decided) after the caller goes
    /// on, all at once; false when [`MOST_BACKGROUND_RESOLVES`] are running already
    /// (the caller then resolves them itself). A resolve that fails leaves its locks to
    /// the readers that meet them and to the cleaners, as a coordinator that stopped.
    pub fn resolve_in_background(
        &self,
        txn: TxnId,
        outcome: TxnOutcome,
        groups: Vec<GroupId>,
    ) -> bool {
        let Ok(permit) = Arc::clone(&self.background_resolves).try_acquire_owned() else {
            return false;
        };
        let node = Arc::clone(&self.node);
        self.runtime.spawn(async move {
            let _permit = permit;
            let resolves = groups.into_iter().map(|group| {
                let node = Arc::clone(&node);
                async move {
                    let operation = Operation::Resolve { txn, outcome };
                    (group, propose_on(node, group, operation).await)
                }
            });
            for (group, resolved) in futures::future::join_all(resolves).await {
                if let Err(error) = resolved {
                    tracing::warn!(txn, group, %error, "a share was not resolved; left to readers and cleaners");
                }
            }
        });
        true
    }

    /// The node.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// Runs `work` to completion on this (the session's) thread, inside the node's
    /// runtime context: the timers it sets and the tasks it spawns belong to the node's
    /// runtime, whose workers drive them, while the future itself is polled here.
    /// Spawning it onto the runtime instead cost one more hand-over between threads
    /// per statement each way (a worker woken to poll it, this thread woken for its
    /// answer): +13-18 % replicated inserts, +14 % linearizable reads in A/B runs.
    ///
    /// `unconstrained` is essential, not tuning: this thread is inside its
    /// connection's own single-threaded runtime, whose cooperative budget would
    /// otherwise be spent by the future's operations and, once exhausted, make them
    /// wait for a yield to that runtime that never comes while this blocks — a hang,
    /// seen in a read retrying against a cut-off leader.
    fn run<T>(&self, work: impl Future<Output = T>) -> Result<T> {
        let _entered = self.runtime.enter();
        Ok(futures::executor::block_on(tokio::task::unconstrained(
            work,
        )))
    }

    /// Commits an operation through the leader of `group`, the group the router
    /// placed what it writes in.
    pub fn propose(&self, group: GroupId, operation: Operation) -> Result<Applied> {
        let node = Arc::clone(&self.node);
        self.run(propose_on(node, group, operation))?
    }

    /// Commits each operation in its group, all at once; answers in the same order.
    pub fn propose_each(
        &self,
        proposals: Vec<(GroupId, Operation)>,
    ) -> Result<Vec<Result<Applied>>> {
        let node = Arc::clone(&self.node);
        self.run(async move {
            let calls = proposals
                .into_iter()
                .map(|(group, operation)| propose_on(Arc::clone(&node), group, operation));
            futures::future::join_all(calls).await
        })
    }

    /// Runs a DDL operation across the cluster (see `raft::schema`).
    pub fn change_schema(&self, operation: Operation) -> Result<Applied> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.change_schema(operation).await })?
    }

    /// Whether this node heard from the leader of every data group it hosts within two
    /// heartbeats (see [`RaftNode::leader_heard_within`]): only then is its own snapshot
    /// as it is probably fresh enough to start a transaction on. Groups hosted elsewhere
    /// are read and written through their hosts, which choose the snapshot's timestamp
    /// when first read; whether their leaders are alive is learnt from the first call,
    /// as it would be from a read round (a commit sent to a leader that has just
    /// stopped may then end with its outcome unknown, 40003, as a local one after a
    /// fault within the two heartbeats does).
    pub fn leader_recently_heard(&self) -> bool {
        let within = self.node.settings().heartbeat * 2;
        self.node
            .data_groups()
            .into_iter()
            .all(|group| self.node.leader_heard_within(group, within))
    }

    /// How many nodes the cluster has (the metadata group's voters).
    pub fn node_count(&self) -> usize {
        self.node.member_count()
    }

    /// The store holding this node's replica of `group`; an error when this node
    /// does not host it.
    pub fn group_store(&self, group: GroupId) -> Result<Arc<Store>> {
        self.node.group_store(group).ok_or_else(|| {
            Error::ObjectNotInPrerequisiteState(format!(
                "node {} does not host group {group}",
                self.node.id()
            ))
        })
    }

    /// Answers `read` of `group` here when this node hosts it, otherwise from a node
    /// that does, once it has applied up to `at_least_ts` (see `raft::remote`).
    pub fn read_group(
        &self,
        group: GroupId,
        at_least_ts: u64,
        read: GroupRead,
    ) -> Result<GroupAnswer> {
        self.ensure_readable(group, at_least_ts)?;
        if let Some(store) = self.node.group_store(group) {
            return group_read::answer(&store, read);
        }
        let node = Arc::clone(&self.node);
        self.run(async move { node.read_remote(group, at_least_ts, read).await })?
    }

    /// The next batch of each scan of a group this node does not host, from its
    /// hosts, all asked at once; with each scan advanced past its batch.
    pub fn scan_remote(
        &self,
        scans: Vec<(GroupId, VersionedScan)>,
    ) -> Result<Vec<(Records, VersionedScan)>> {
        let node = Arc::clone(&self.node);
        let node = &node;
        let batches = scans.into_iter().map(|(group, scan)| async move {
            let at_least = scan.read_ts();
            match node
                .read_remote(group, at_least, GroupRead::Scan { scan })
                .await?
            {
                GroupAnswer::Scan { rows, scan } => Ok((rows, scan)),
                other => Err(group_read::mismatched(&other)),
            }
        });
        self.run(futures::future::try_join_all(batches))?
    }

    /// Has hosts aggregate the scans of groups this node does not host, every group
    /// asked at once, each in requests of a bounded number of rows (see
    /// `replica::fan_out`); the parts combined.
    pub fn aggregate_remote(
        &self,
        spans: Vec<(GroupId, VersionedScan)>,
        spec: &ShardAggregation,
        check: Check<'_>,
    ) -> Result<GroupedParts> {
        let node = Arc::clone(&self.node);
        let node = &node;
        let shards = spans.into_iter().map(|(group, mut scan)| async move {
            let mut part = GroupedParts::default();
            while !scan.is_done() && !part.overflowed() {
                check()?;
                let read = GroupRead::Aggregate {
                    scan: scan.clone(),
                    spec: spec.clone(),
                    max_rows: AGGREGATE_ROWS_PER_READ,
                };
                match node.read_remote(group, scan.read_ts(), read).await? {
                    GroupAnswer::Aggregated { parts, scan: moved } => {
                        part.combine(parts, spec)?;
                        scan = moved;
                    }
                    other => return Err(group_read::mismatched(&other)),
                }
            }
            Ok::<_, Error>(part)
        });
        let parts = self.run(futures::future::try_join_all(shards))??;
        let mut total = GroupedParts::default();
        for part in parts {
            total.combine(part, spec)?;
        }
        Ok(total)
    }

    /// How long a cross-group commit coordinated here pauses between its prepares and
    /// its decision (a test fault; zero unless set).
    pub fn commit_pause(&self) -> std::time::Duration {
        self.node.commit_pause()
    }

    /// The data groups this node leads, as far as it knows.
    pub fn led_data_groups(&self) -> Vec<GroupId> {
        self.node
            .data_groups()
            .into_iter()
            .filter(|group| self.node.leads(*group))
            .collect()
    }

    /// How many data groups the cluster runs (the pool new tables are placed on).
    pub fn data_group_count(&self) -> u64 {
        self.node.data_group_count()
    }

    /// A number never handed out before: a timestamp from the oracle.
    pub fn unique_id(&self) -> Result<u64> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.timestamp().await })?
            .map_err(write_error)
    }

    /// Waits until this replica may serve a read at `level` in every data group it
    /// hosts, then returns a timestamp whose snapshot is complete and stable in all of
    /// them: every commit at or below it is applied here, and none will come later.
    ///
    /// A group's state at any timestamp up to its applied one is exact (commit
    /// timestamps follow its log). So at `stale` the lowest applied timestamp serves:
    /// consistent, as old as the most idle group. At `linearizable` and `lease` the
    /// snapshot must include every write acknowledged before the read began, in
    /// whichever group: the highest applied timestamp after each group's read round.
    /// A group behind it is moved up to it by an entry that commits nothing
    /// ([`Operation::Advance`]) when a transaction first reads it (`raft::catch_up`):
    /// after it, the group's applied timestamp is at least the snapshot's and every
    /// later commit lands above it. Groups the transaction never reads need nothing.
    pub fn read_timestamp(&self, level: ReadLevel) -> Result<u64> {
        let groups: Vec<GroupId> = self.node.pool().collect();
        let node = Arc::clone(&self.node);
        let applied = self.run(async move {
            let rounds = groups.iter().map(|group| {
                let node = &node;
                async move { Ok::<_, Error>((*group, node.applied_for_read(*group, level).await?)) }
            });
            futures::future::try_join_all(rounds).await
        })??;
        let (lowest, highest) = match (
            applied.iter().map(|(_, ts)| *ts).min(),
            applied.iter().map(|(_, ts)| *ts).max(),
        ) {
            (Some(lowest), Some(highest)) => (lowest, highest),
            _ => return Err(Error::Internal("the cluster has no data group".into())),
        };
        // Groups behind the snapshot are moved up when first read (`raft::catch_up`).
        match level {
            ReadLevel::Stale { .. } => Ok(lowest),
            ReadLevel::Linearizable | ReadLevel::Lease => Ok(highest),
        }
    }

    /// The applied timestamp of a replica of `group` that may serve a read at `level`
    /// after its read round: this node's own when it hosts the group, else a host's.
    pub fn applied_for_read(&self, group: GroupId, level: ReadLevel) -> Result<u64> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.applied_for_read(group, level).await })?
    }

    /// A read round of `group` at `level`, here or on a host (see
    /// `RaftNode::read_round`): the applied timestamp after it and the catalog version
    /// the group had installed there.
    pub fn read_round(&self, group: GroupId, level: ReadLevel) -> Result<PreparedRead> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.read_round(group, level).await })?
    }

    /// The lowest applied timestamp of the data groups this node hosts (0 if none),
    /// without a round: a timestamp every later snapshot here is at or above.
    pub fn lowest_hosted_applied(&self) -> u64 {
        self.node
            .data_groups()
            .into_iter()
            .filter_map(|group| self.node.applied_commit_ts(group).ok())
            .min()
            .unwrap_or(0)
    }

    /// The version of the catalog this node's replica of `group` has installed; `None`
    /// where it does not host the group.
    pub fn group_catalog_version(&self, group: GroupId) -> Option<u64> {
        self.node.group_catalog_version(group)
    }

    /// The applied timestamp of this node's replica of `group`, or of a host's when it
    /// hosts none, without a read round.
    pub fn applied_as_is(&self, group: GroupId) -> Result<u64> {
        if self.node.hosts(group) {
            return self.node.applied_commit_ts(group);
        }
        let node = Arc::clone(&self.node);
        let as_it_is = ReadLevel::Stale {
            max_staleness: None,
        };
        self.run(async move { node.applied_for_read(group, as_it_is).await })?
    }

    /// Returns once `group` can be read at `ts` here (see `raft::catch_up`).
    pub fn ensure_readable(&self, group: GroupId, ts: u64) -> Result<()> {
        if self.node.readable_at(group, ts) {
            return Ok(());
        }
        let node = Arc::clone(&self.node);
        self.run(async move { node.ensure_readable(group, ts).await })?
    }

    /// The catalog as applied on this replica.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.node.catalog()
    }

    /// Runs an `ALTER CLUSTER` change (a clock rate: on this node only); returns what
    /// each step did.
    pub fn change_membership(&self, change: &ClusterChange) -> Result<Vec<StepReport>> {
        let node = Arc::clone(&self.node);
        let change = change.clone();
        self.run(async move {
            match change {
                ClusterChange::AddNode { raft_address } => node.add_node_at(&raft_address).await,
                ClusterChange::RemoveNode { node_id } => node.remove_node(node_id).await,
                ClusterChange::TransferLeader { to, group } => {
                    let groups: Vec<_> = group.into_iter().collect();
                    node.transfer_leadership(&groups, to).await
                }
                ClusterChange::ClockRate { rate } => node.set_clock_rate(rate),
                ClusterChange::CommitPause { millis } => node.set_commit_pause(millis),
            }
        })?
        .map_err(write_error)
    }

    /// This replica's fingerprint of every group it hosts (SHOW CHECKSUM): group,
    /// applied index, checksum.
    pub fn checksums(&self) -> Result<Vec<(GroupId, Option<u64>, u64)>> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.checksums().await })?
    }

    /// Each group's report from the node that leads it (or, for a group no node
    /// claims to lead, from this node): who leads and who votes.
    pub fn group_reports(&self) -> Result<Vec<super::raft::node::GroupStatus>> {
        let statuses = self.status()?;
        let mut reports: Vec<super::raft::node::GroupStatus> = Vec::new();
        for status in &statuses {
            for group in &status.groups {
                let leads = group.leader == Some(status.node_id) && group.role == "leader";
                match reports.iter_mut().find(|r| r.group == group.group) {
                    Some(report) if leads => *report = group.clone(),
                    Some(_) => {}
                    None => reports.push(group.clone()),
                }
            }
        }
        Ok(reports)
    }

    /// Every member's status (SHOW CLUSTER).
    pub fn status(&self) -> Result<Vec<NodeStatus>> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.cluster_status().await })
    }
}

/// Commits `operation` through the leader of `group` and waits until this replica has
/// applied it (read-your-writes: the session's next statement is planned here).
async fn propose_on(node: Arc<RaftNode>, group: GroupId, operation: Operation) -> Result<Applied> {
    if operation.schema_change().is_some() {
        // Applied in one data group alone, it would leave that group's catalog apart
        // from the cluster's.
        return Err(Error::Internal(format!(
            "DDL proposed straight to group {group}; schema changes go through the \
             metadata group"
        )));
    }
    // The leader stamps the change (one oracle call per batch of changes).
    let (log_id, response) = node
        .write(group, Proposal::Change(operation))
        .await
        .map_err(write_error)?;
    // A replica that cannot catch up in time does not undo a committed write, so only a
    // warning. A group hosted elsewhere is read through a host that has applied up to
    // the snapshot, so there is nothing to wait for here.
    if node.hosts(group) {
        if let Err(error) = node.wait_applied(group, log_id.index).await {
            tracing::warn!(%error, "a committed write is not applied here yet");
        }
    }
    match response {
        Response::Data(outcome) => outcome.map(|(applied, _commit_ts)| applied),
        other => Err(Error::Internal(format!(
            "group {group} answered entry {log_id} with {other:?}"
        ))),
    }
}
