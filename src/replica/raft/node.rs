//! A cluster node: hosts its Raft groups over one transport, routes writes to leaders,
//! serves the timestamp oracle when it leads the metadata group, and answers reads at
//! the consistency level asked for.
//!
//! Groups: the metadata group ([`METADATA_GROUP`]: oracle bound, membership, the
//! catalog) and a pool of data groups (numbered from [`FIRST_SHARD_GROUP`]) that the
//! shard router places table shards on. A node hosts the metadata group and the data
//! groups placed on it (`placement` when the cluster forms, `rebalance` later; the set
//! changes at run time, see `hosting`) — a group is looked up by id for every call. Each data
//! group keeps its shards in a store of its own (its snapshot is that store's data, and
//! its meta keys — applied timestamp, prepared transactions — are its alone); the node
//! store holds every group's Raft log and the metadata group's state.
//!
//! DDL ([`RaftNode::change_schema`]) changes the catalog in the metadata group, then
//! installs the new catalog in every data group through its log (see
//! `state_machine::ddl`); a new index becomes readable once every group has built it.
//!
//! Writes: a node proposes to its own Raft when it leads the group, otherwise it sends
//! the proposal to the leader, one hop (the leader never forwards again). A write is
//! retried only when it certainly was not applied: refused as not leader (openraft's
//! ForwardToLeader: not appended, or appended and then truncated, so never committed)
//! or not delivered (no connection). A timeout or a connection broken after sending
//! leaves the outcome unknown and is reported so ([`WriteError::Unknown`]); the caller
//! turns it into SQLSTATE 40003, never into a retry that could apply twice.
//!
//! Oracle: the metadata leader hands out timestamps from memory below a reserved bound
//! that is committed through the metadata group before any timestamp under it is
//! handed out. A new leader first commits an entry of its own term (so it has applied
//! every earlier reservation), then starts at the highest committed bound: no timestamp
//! is handed out twice or goes backwards across failovers. A leader hands timestamps out
//! only while its lease holds (a quorum acknowledged it within [`lease`]), so a deposed
//! leader that does not know it yet stops before a new one can be elected.
//!
//! Reads (DESIGN §2.7): `linearizable` confirms leadership with a quorum round (the
//! read index) and waits until the local replica has applied up to it; `lease` skips
//! the quorum round while the leader's lease holds; `stale` reads the local replica
//! as it is, refusing when it may be older than the staleness bound. A new leader's
//! read index is at least its first entry of its term, so it serves no linearizable or
//! lease read before that entry is committed.

use super::clock::{Clock, NodeClock};
use super::log_store::{LeaderPipelining, LogSyncer};
use super::membership::{MembershipStep, StepReport};
use super::network::{PeerClient, PeerRequest, PeerResponse};
use super::pacing::SnapshotPacing;
use super::placement;
use super::rounds::{RoundError, RoundFn, RoundLimits, Rounds};
use super::state_machine::{AppliedView, GroupKind};
use super::transport::{self, CallError, Handler};
use super::types::{GroupId, LogId, Node, NodeId, Request, Response, TypeConfig, METADATA_GROUP};
use crate::catalog::{Catalog, SharedCatalog};
use crate::error::{Error, Result};
use crate::replica::group_read::{GroupAnswer, GroupRead};
use crate::replica::ReadLevel;
use crate::shard::FIRST_SHARD_GROUP;
use crate::state_machine::{Applied, Operation};
use crate::storage::Store;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Most data groups a cluster runs: each costs heartbeats, a log, a store and batching
/// rounds on every node hosting it, and a 2-core node spends its CPU on that
/// bookkeeping instead of statements well before a few dozen.
pub const MAX_DATA_GROUPS: u64 = 16;
/// Most attempts of one write while leaders change or are unknown.
const MAX_WRITE_ATTEMPTS: usize = 100;
/// Pause before retrying a write that found no usable leader.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long a call to a leader that was replaced meanwhile still waits for its
/// answer before it counts as broken (the old leader may be dead).
const DEPOSED_LEADER_GRACE: Duration = Duration::from_millis(500);
/// Attempts at an entry that commits nothing before a reader is told to retry.
const MAX_ADVANCE_ATTEMPTS: usize = 5;
/// Timestamps reserved through the metadata group at once.
const RESERVATION: u64 = 100_000;
/// Longest a starting node keeps trying to join its cluster.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for any call to a peer that is not bounded otherwise.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How a leader batches concurrent data changes into entries: up to 64 changes and
/// 1 MiB per entry, up to 8 entries in flight. With the leader's own sync pipelined (see
/// [`super::log_store`]) an entry no longer holds the group's Raft core while it syncs,
/// so a change need not wait for the previous entry to commit: it goes in the next
/// entry at once, and replication carries every entry appended meanwhile in one
/// message. Measured against one entry in flight: about +7% inserts at 8 clients, the
/// same for updates. Before pipelining, more in flight only split the batches (slower).
const PROPOSAL_ROUNDS: RoundLimits = RoundLimits {
    queue: 1024,
    per_round: 64,
    weight: 1 << 20,
    in_flight: 8,
};
/// A change bigger than this is proposed in an entry of its own.
const MAX_BATCHED_CHANGE_BYTES: usize = 64 << 10;
/// How a leader shares quorum rounds among linearizable reads: every read waiting when
/// a round starts shares it; one round at a time.
const READ_ROUNDS: RoundLimits = RoundLimits {
    queue: 4096,
    per_round: 4096,
    weight: usize::MAX,
    in_flight: 1,
};

/// Raft timing and log settings of a node.
#[derive(Clone, Debug)]
pub struct RaftSettings {
    /// Leader heartbeat period.
    pub heartbeat: Duration,
    /// Shortest election timeout; the longest is twice it.
    pub election_timeout: Duration,
    /// Fewest entries applied between two snapshots; a snapshot also waits for a log
    /// half its own size (see [`super::pacing`]).
    pub snapshot_threshold: u64,
    /// Entries kept in the log under a snapshot (for followers only a little behind).
    pub logs_kept_after_snapshot: u64,
    /// Longest wait for a write to commit before its outcome is reported unknown.
    pub write_timeout: Duration,
}

impl Default for RaftSettings {
    fn default() -> RaftSettings {
        RaftSettings {
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(250),
            snapshot_threshold: 5000,
            logs_kept_after_snapshot: 1000,
            write_timeout: Duration::from_secs(10),
        }
    }
}

impl RaftSettings {
    /// The lease: how long after a quorum's acknowledgement a leader still trusts it is
    /// leader. Followers wait at least an election timeout after the last heartbeat
    /// they got before electing anyone, and that heartbeat was sent no earlier than
    /// the acknowledgement; three quarters leaves room for clock rate differences.
    pub fn lease(&self) -> Duration {
        self.election_timeout * 3 / 4
    }

    fn openraft_config(&self) -> Result<Config> {
        let config = Config {
            cluster_name: "tessera".into(),
            heartbeat_interval: self.heartbeat.as_millis() as u64,
            election_timeout_min: self.election_timeout.as_millis() as u64,
            election_timeout_max: self.election_timeout.as_millis() as u64 * 2,
            // Snapshots are triggered by `snapshot_if_due`, paced by size as well.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|error| Error::InvalidParameterValue(format!("raft settings: {error}")))
    }
}

/// How a node finds its cluster on first start.
#[derive(Clone, Debug)]
pub enum Bootstrap {
    /// Form a new cluster of these members (the same list on every member).
    InitialMembers(BTreeMap<NodeId, Node>),
    /// Ask the member at this Raft address to add this node.
    Join(String),
    /// Already a member (everything is in the data directory), or waiting to be added
    /// by `ALTER CLUSTER ADD NODE`.
    Restart,
}

/// What a node is started with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// Where its store and snapshots live.
    pub data_dir: PathBuf,
    /// Its Raft transport address, listened on and given to peers.
    pub raft_address: String,
    /// Its SQL address, as shown to users.
    pub sql_address: String,
    /// How it finds its cluster.
    pub bootstrap: Bootstrap,
    /// Raft timing.
    pub settings: RaftSettings,
    /// Whether fault-injection commands meant for tests (a clock rate) are accepted.
    pub test_faults: bool,
    /// How many data groups the cluster runs (the same on every node), 1 to
    /// [`MAX_DATA_GROUPS`].
    pub data_groups: u64,
    /// How many nodes replicate each data group when the cluster forms (see
    /// [`super::placement`]), 1 to [`super::placement::MAX_REPLICATION_FACTOR`].
    pub replication_factor: usize,
}

/// Why a write or read did not happen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WriteError {
    /// This node does not lead the group; the leader, if known.
    NotLeader(Option<(NodeId, Node)>),
    /// Certainly not applied, and trying again may succeed.
    Retry(String),
    /// May or may not have been applied.
    Unknown(String),
    /// Will not be done as asked (bad input, or it would break the cluster); asking
    /// again the same way fails again.
    Refused(String),
}

/// What a node asks a group's leader to commit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Proposal {
    /// An entry as it is.
    Entry(Request),
    /// A data change: the leader stamps it with an oracle timestamp and may put it in
    /// one entry with other changes proposed at the same time.
    Change(Operation),
}

/// The outcome of a proposal: the entry's log id and what applying it answered.
pub type WriteOutcome = std::result::Result<(LogId, Response), WriteError>;

/// A node-level call between peers.
#[derive(Debug, Serialize, Deserialize)]
pub enum NodeRequest {
    /// Propose on the receiving node, which must lead the group.
    Propose {
        /// The group.
        group: GroupId,
        /// What to commit.
        proposal: Proposal,
    },
    /// `count` timestamps from the oracle; the receiver must lead the metadata group.
    Timestamps {
        /// How many.
        count: u64,
    },
    /// The index a follower must apply up to before a read at `level`; the receiver
    /// must lead the group.
    ReadIndex {
        /// The group.
        group: GroupId,
        /// Linearizable or lease.
        level: ReadLevel,
    },
    /// The receiving node's view of itself and its groups.
    Status,
    /// Run a membership step; the receiver must lead the group.
    Membership {
        /// The group.
        group: GroupId,
        /// The step.
        step: MembershipStep,
    },
    /// Add the sending node to the cluster (it was started with `--join`).
    Join {
        /// The new node's id.
        node_id: NodeId,
        /// Where it is reached.
        node: Node,
    },
    /// Start an empty replica of a data group here, to be added as a learner next
    /// (see [`super::hosting`]).
    HostGroup {
        /// The group.
        group: GroupId,
    },
    /// Retire this node's replica of a data group: the group committed a membership
    /// without this node.
    RetireGroup {
        /// The group.
        group: GroupId,
    },
    /// Campaign for the group's leadership (a transfer to the receiver).
    Campaign {
        /// The group.
        group: GroupId,
        /// How long to keep trying.
        within_millis: u64,
    },
    /// For a node that does not host the group: run the read round for `level` here
    /// and answer this replica's applied timestamp (see [`super::remote`]).
    PrepareRead {
        /// The group.
        group: GroupId,
        /// The read level.
        level: ReadLevel,
    },
    /// For a node that does not host the group: answer a read once this replica has
    /// applied up to `at_least_ts`.
    Read {
        /// The group.
        group: GroupId,
        /// The snapshot's timestamp (or the newest the caller saw).
        at_least_ts: u64,
        /// What to read.
        read: GroupRead,
    },
}

/// The answer to a [`NodeRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum NodeResponse {
    /// To Propose: the entry's log id and what applying it answered.
    Proposed(WriteOutcome),
    /// To Timestamps: the first of the range.
    Timestamps(std::result::Result<u64, WriteError>),
    /// To ReadIndex: the log index to wait for.
    ReadIndex(std::result::Result<u64, WriteError>),
    /// To Status.
    Status(NodeStatus),
    /// To Membership: what the step did.
    Membership(std::result::Result<String, WriteError>),
    /// To Join: what each step did.
    Joined(std::result::Result<Vec<StepReport>, WriteError>),
    /// To HostGroup and RetireGroup: what the receiver did.
    Hosting(std::result::Result<String, WriteError>),
    /// To Campaign: whether the receiver leads now.
    Campaigned(std::result::Result<(), String>),
    /// To PrepareRead: after the read round, the applied timestamp and the version of
    /// the catalog the group installed; `None` when the receiver does not host the group.
    ReadPrepared(Option<Result<PreparedRead>>),
    /// To Read; `None` when the receiver does not host the group.
    Read(Option<Result<GroupAnswer>>),
}

/// What a replica of a group answers after a read round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedRead {
    /// The group's applied timestamp there: every write acknowledged before the round
    /// is at or below it.
    pub applied_ts: u64,
    /// The version of the catalog the group had installed there at that point.
    pub catalog_version: u64,
}

/// One node's report for SHOW CLUSTER.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Node id.
    pub node_id: NodeId,
    /// Raft address.
    pub raft_address: String,
    /// SQL address.
    pub sql_address: String,
    /// One entry per hosted group.
    pub groups: Vec<GroupStatus>,
}

/// One group as one replica sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupStatus {
    /// Group id.
    pub group: GroupId,
    /// leader, follower, candidate or learner.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Leader as this replica knows it.
    pub leader: Option<NodeId>,
    /// Last log index.
    pub last_log: Option<u64>,
    /// Commit index.
    pub committed: Option<u64>,
    /// Applied index.
    pub applied: Option<u64>,
    /// Leaders only: entries each follower is behind the leader's log.
    pub lag: BTreeMap<NodeId, u64>,
    /// Voters of the group.
    pub voters: Vec<NodeId>,
    /// Learners of the group.
    pub learners: Vec<NodeId>,
    /// The log index of the membership entry those voters and learners come from
    /// (committed once `committed` reaches it).
    pub membership_log: Option<u64>,
}

/// A group's parts between starting its Raft and running it on the node.
pub(super) struct StartedGroup {
    pub(super) group: GroupId,
    pub(super) kind: GroupKind,
    pub(super) raft: Raft<TypeConfig>,
    pub(super) view: Arc<AppliedView>,
    pub(super) pipelining: Arc<LeaderPipelining>,
    pub(super) pacing: Arc<SnapshotPacing>,
    pub(super) store: Arc<Store>,
    pub(super) catalog: SharedCatalog,
}

/// One hosted group.
pub(super) struct Group {
    pub(super) raft: Raft<TypeConfig>,
    pub(super) kind: GroupKind,
    /// The store the group's state machine applies to.
    pub(super) store: Arc<Store>,
    /// The group's catalog: the cluster's in the metadata group, a data group's copy.
    pub(super) catalog: SharedCatalog,
    pub(super) view: Arc<AppliedView>,
    /// When this replica last knew it had applied everything the leader had committed.
    pub(super) fresh_as_of: Mutex<Option<Instant>>,
    /// When a leader last replicated to this replica successfully.
    pub(super) last_leader_contact: Mutex<Option<Instant>>,
    /// While this leader hands its leadership to that node: no writes, no lease reads,
    /// no timestamps (the successor may be elected at once, before any lease runs out).
    pub(super) moving_to: Mutex<Option<NodeId>>,
    /// Data groups: concurrent changes batched into entries while this node leads.
    pub(super) proposals: Option<Rounds<Operation, WriteOutcome>>,
    /// Quorum rounds shared by concurrent linearizable reads while this node leads.
    pub(super) linearizable_reads: Rounds<(), std::result::Result<u64, WriteError>>,
    /// Whether this node's appends as leader may be pipelined (see
    /// [`super::log_store`]); kept up to date by [`RaftNode::allow_pipelining`].
    pub(super) pipelining: Arc<LeaderPipelining>,
    /// Membership changes of the group running on this node; the pipelining switch is
    /// set under this lock, so a change starting is never overtaken by a stale check.
    pub(super) membership_changes: Mutex<usize>,
    /// When this replica's next snapshot is due (see [`super::pacing`]).
    pub(super) pacing: Arc<SnapshotPacing>,
    /// Stops the group's batching rounds when the replica is retired (a child of the
    /// node's own stop).
    pub(super) stop: CancellationToken,
    /// When the replica started running here.
    pub(super) hosted_at: Instant,
}

impl Group {
    /// Marks a membership change running on this node: no append is pipelined until
    /// the guard is dropped and the new membership is applied.
    pub(super) fn membership_change(self: &Arc<Group>) -> MembershipChangeGuard {
        let mut running = self
            .membership_changes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *running += 1;
        self.pipelining.set(false);
        MembershipChangeGuard(Arc::clone(self))
    }
}

/// Held while a membership change runs (see [`Group::membership_change`]).
pub(super) struct MembershipChangeGuard(Arc<Group>);

impl Drop for MembershipChangeGuard {
    fn drop(&mut self) {
        let mut running = self
            .0
            .membership_changes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *running = running.saturating_sub(1);
    }
}

impl Group {
    /// The version of the group's catalog as applied on this replica.
    pub(super) fn catalog_version(&self) -> u64 {
        self.catalog.current().version()
    }

    /// Holds writes, lease reads and timestamps back until the guard is dropped.
    pub(super) fn hold_writes(&self, to: NodeId) -> WriteHold<'_> {
        *self
            .moving_to
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(to);
        WriteHold { group: self }
    }

    /// The node leadership is moving to, while a transfer runs.
    fn moving_to(&self) -> Option<NodeId> {
        *self
            .moving_to
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Writes held back on a group during a leadership transfer; released on drop, so an
/// early return or an error never leaves the group stuck.
pub(super) struct WriteHold<'a> {
    group: &'a Group,
}

impl Drop for WriteHold<'_> {
    fn drop(&mut self) {
        *self
            .group
            .moving_to
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = None;
    }
}

/// The oracle's in-memory window, valid for one leadership term.
#[derive(Debug, Default)]
struct OracleWindow {
    term: u64,
    next: u64,
    reserved: u64,
}

/// A running node.
pub struct RaftNode {
    config: NodeConfig,
    groups: RwLock<HashMap<GroupId, Arc<Group>>>,
    peers: Arc<PeerClient>,
    oracle: tokio::sync::Mutex<OracleWindow>,
    catalog: SharedCatalog,
    /// The node store: every group's Raft log, and the metadata group's state.
    node_store: Arc<Store>,
    /// Syncs the node store's WAL for every group's log.
    syncer: Arc<LogSyncer>,
    /// openraft's settings, for groups started later (see [`super::hosting`]).
    openraft_config: Arc<Config>,
    /// This node, for the tasks of groups started later.
    this: Weak<RaftNode>,
    /// Taken while a replica is started or retired here, one at a time.
    pub(super) hosting_changes: tokio::sync::Mutex<()>,
    /// Data groups whose retired replica's files are still being deleted.
    retiring: Mutex<std::collections::BTreeSet<GroupId>>,
    stop: CancellationToken,
    /// Measures the spans leases and staleness bounds rest on.
    clock: NodeClock,
    /// A test fault: how long cross-group commits coordinated here pause before
    /// deciding (see [`RaftNode::set_commit_pause`]).
    commit_pause_millis: std::sync::atomic::AtomicU64,
    /// For each group this node does not host, the node that last answered for it
    /// (see [`super::remote`]).
    remote_hosts: Mutex<HashMap<GroupId, NodeId>>,
    /// Per data group, the gate readers advancing it take turns at (see
    /// [`super::catch_up`]).
    pub(super) advance_gates: Mutex<HashMap<GroupId, Arc<tokio::sync::Mutex<()>>>>,
    /// Per data group not hosted here, the highest timestamp it is known to have
    /// committed at.
    pub(super) committed_floor: Mutex<HashMap<GroupId, u64>>,
}

impl RaftNode {
    /// Opens the store, starts every group and the transport, and bootstraps or joins
    /// the cluster. Runs on the caller's tokio runtime.
    pub async fn start(config: NodeConfig) -> Result<Arc<RaftNode>> {
        if !(1..=MAX_DATA_GROUPS).contains(&config.data_groups) {
            return Err(Error::InvalidParameterValue(format!(
                "data groups must be between 1 and {MAX_DATA_GROUPS}, not {}",
                config.data_groups
            )));
        }
        let most = placement::MAX_REPLICATION_FACTOR;
        if !(1..=most).contains(&config.replication_factor) {
            return Err(Error::InvalidParameterValue(format!(
                "the replication factor must be between 1 and {most}, not {}",
                config.replication_factor
            )));
        }
        let store = Arc::new(Store::open(&config.data_dir.join("store"))?);
        let syncer = LogSyncer::start(Arc::clone(&store))?;
        let local_ip = listen_ip(&config.raft_address)?;
        let peers = Arc::new(PeerClient::new(local_ip));
        let openraft_config = Arc::new(config.settings.openraft_config()?);
        let formed = has_raft_state(&store)?;
        for group in retired_groups(&config) {
            // A retirement a crash cut short: finish it.
            super::log_store::forget_group(&store, &syncer, group)?;
            super::hosting::delete_retired_files(&config, group)?;
        }
        let opening = super::hosting::GroupOpening {
            config: &config,
            node_store: &store,
            syncer: &syncer,
            peers: &peers,
            openraft_config: &openraft_config,
        };
        let mut started = Vec::new();
        for (group, kind) in hosted_groups(&config, formed) {
            started.push(opening.open(group, kind).await?);
        }
        let catalog = started
            .iter()
            .find(|started| started.kind == GroupKind::Metadata)
            .map(|started| started.catalog.clone())
            .ok_or_else(|| Error::Internal("no metadata group".into()))?;
        let listener = tokio::net::TcpListener::bind(&config.raft_address)
            .await
            .map_err(|error| {
                Error::Io(format!("cannot listen on {}: {error}", config.raft_address))
            })?;
        let stop = CancellationToken::new();
        let node = Arc::new_cyclic(|node: &Weak<RaftNode>| {
            let groups = started
                .into_iter()
                .map(|started| {
                    let group = started.group;
                    let running =
                        super::hosting::running_group(node.clone(), started, stop.child_token());
                    (group, Arc::new(running))
                })
                .collect();
            RaftNode {
                config,
                groups: RwLock::new(groups),
                peers,
                oracle: tokio::sync::Mutex::new(OracleWindow::default()),
                catalog,
                node_store: store,
                syncer,
                openraft_config,
                this: node.clone(),
                hosting_changes: tokio::sync::Mutex::new(()),
                retiring: Mutex::new(std::collections::BTreeSet::new()),
                stop,
                clock: NodeClock::default(),
                commit_pause_millis: std::sync::atomic::AtomicU64::new(0),
                remote_hosts: Mutex::new(HashMap::new()),
                advance_gates: Mutex::new(HashMap::new()),
                committed_floor: Mutex::new(HashMap::new()),
            }
        });
        tokio::spawn(transport::serve(
            listener,
            Arc::clone(&node),
            node.stop.clone(),
        ));
        node.bootstrap().await?;
        tokio::spawn(watch_leaders(Arc::downgrade(&node), node.stop.clone()));
        Ok(node)
    }

    /// Forms the cluster on first start. Only the member with the smallest id
    /// initializes the groups at once (openraft then campaigns immediately); the others
    /// wait for its leader to reach them, which initializes them through replication.
    /// Were every member to initialize, one started later would campaign on arrival
    /// and, its vote outranking the leader's in the same term, depose it. A member
    /// still not reached after [`INITIALIZE_GRACE`] (the first member is down)
    /// initializes itself.
    async fn bootstrap(&self) -> Result<()> {
        match &self.config.bootstrap {
            Bootstrap::InitialMembers(members) => {
                let ids: Vec<NodeId> = members.keys().copied().collect();
                let factor = self.config.replication_factor;
                for group in self.group_ids() {
                    let raft = self.group(group)?.raft.clone();
                    // A restarted member already has its membership in its log; a
                    // replica moved here is the group's leader's to fill, never formed.
                    let moved_in = super::hosting::hosting(&self.config, group)
                        == super::hosting::Hosting::Hosted { moved_in: true };
                    if moved_in || raft.is_initialized().await.unwrap_or(false) {
                        continue;
                    }
                    let voters: BTreeMap<NodeId, Node> =
                        placement::initial_voters(group, &ids, factor)
                            .into_iter()
                            .filter_map(|id| Some((id, members.get(&id)?.clone())))
                            .collect();
                    if voters.keys().next() == Some(&self.id()) {
                        initialize_group(&raft, group, &voters).await?;
                    } else {
                        tokio::spawn(initialize_unless_reached(
                            raft,
                            group,
                            voters,
                            self.stop.clone(),
                        ));
                    }
                }
                Ok(())
            }
            Bootstrap::Join(address) => self.join(address).await,
            Bootstrap::Restart => Ok(()),
        }
    }

    /// Asks the member at `address` to add this node to every group, unless it already
    /// is a voter of all of them (a restart after joining). Retried while the member
    /// cannot be reached or has no leader, up to [`JOIN_TIMEOUT`].
    async fn join(&self, address: &str) -> Result<()> {
        let mut joined = true;
        for group in self.group_ids() {
            let raft = &self.group(group)?.raft;
            let voter = raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .any(|voter| voter == self.id());
            joined &= voter;
        }
        if joined {
            return Ok(());
        }
        let me = Node {
            raft_address: self.config.raft_address.clone(),
            sql_address: self.config.sql_address.clone(),
        };
        let member = Node {
            raft_address: address.to_string(),
            sql_address: String::new(),
        };
        let deadline = Instant::now() + JOIN_TIMEOUT;
        tracing::info!(
            through = address,
            "joining the cluster (learner, catch up, voter)"
        );
        loop {
            let request = NodeRequest::Join {
                node_id: self.id(),
                node: me.clone(),
            };
            let timeout = super::membership::CATCH_UP_TIMEOUT * 2;
            let why = match self.call_node(&member, request, timeout).await {
                Ok(NodeResponse::Joined(Ok(steps))) => {
                    for step in steps {
                        tracing::info!(group = step.group, millis = step.millis, "{}", step.action);
                    }
                    tracing::info!("joined the cluster as a voter of every group");
                    return Ok(());
                }
                Ok(NodeResponse::Joined(Err(WriteError::Refused(why)))) => {
                    return Err(Error::ObjectNotInPrerequisiteState(format!(
                        "the cluster refused to add node {}: {why}",
                        self.id()
                    )))
                }
                Ok(NodeResponse::Joined(Err(error))) => format!("{error:?}"),
                Ok(other) => format!("unexpected answer {other:?}"),
                Err(error) => error.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(Error::Io(format!(
                    "could not join the cluster through {address} within {} s: {why}",
                    JOIN_TIMEOUT.as_secs()
                )));
            }
            tracing::warn!(through = address, %why, "join not done yet; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.node_id
    }

    /// The store holding this node's replica of `group`, if it hosts one.
    pub fn group_store(&self, group: GroupId) -> Option<Arc<Store>> {
        self.group(group).ok().map(|state| Arc::clone(&state.store))
    }

    /// The node's configuration.
    pub(super) fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// What opening another group's replica here needs (see [`super::hosting`]).
    pub(super) fn opening(&self) -> super::hosting::GroupOpening<'_> {
        super::hosting::GroupOpening {
            config: &self.config,
            node_store: &self.node_store,
            syncer: &self.syncer,
            peers: &self.peers,
            openraft_config: &self.openraft_config,
        }
    }

    /// This node, weakly, for tasks that must not keep it alive.
    pub(super) fn weak_self(&self) -> Weak<RaftNode> {
        self.this.clone()
    }

    /// Cancelled when the node stops.
    pub(super) fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// The node store (every group's log, the metadata group's state).
    pub(super) fn node_store(&self) -> &Store {
        &self.node_store
    }

    /// The node store's log syncer.
    pub(super) fn syncer(&self) -> &LogSyncer {
        &self.syncer
    }

    /// Starts running a group's replica here.
    pub(super) fn insert_group(&self, group: GroupId, state: Group) {
        self.groups
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(group, Arc::new(state));
    }

    /// Stops routing anything to the replica of `group` here; returns it.
    pub(super) fn remove_group(&self, group: GroupId) -> Option<Arc<Group>> {
        let removed = self
            .groups
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&group);
        self.remote_hosts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&group);
        removed
    }

    /// Whether a retired replica of `group` is still being deleted here.
    pub(super) fn is_retiring(&self, group: GroupId) -> bool {
        self.retiring
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .contains(&group)
    }

    /// Marks a retired replica of `group` as being deleted, or done.
    pub(super) fn set_retiring(&self, group: GroupId, retiring: bool) {
        let mut groups = self
            .retiring
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if retiring {
            groups.insert(group);
        } else {
            groups.remove(&group);
        }
    }

    /// How many data groups the cluster runs.
    pub fn data_group_count(&self) -> u64 {
        self.config.data_groups
    }

    /// How many nodes replicate each data group when the cluster forms.
    pub fn replication_factor(&self) -> usize {
        self.config.replication_factor
    }

    /// The node that last answered for `group`, which this node does not host.
    pub(super) fn remote_host(&self, group: GroupId) -> Option<NodeId> {
        let hosts = self
            .remote_hosts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        hosts.get(&group).copied()
    }

    /// Remembers that `host` answered for `group`.
    pub(super) fn note_remote_host(&self, group: GroupId, host: NodeId) {
        self.remote_hosts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(group, host);
    }

    /// The cluster's catalog as the metadata group applied it on this replica.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.current()
    }

    /// Every hosted group's fingerprint on this replica: group, applied index and
    /// checksum (see [`super::state_machine::checksum`]). Reads every key: slow on a
    /// large group, and run off the runtime's workers.
    pub async fn checksums(&self) -> Result<Vec<(GroupId, Option<u64>, u64)>> {
        let mut sums = Vec::new();
        for id in self.group_ids() {
            let state = self.group(id)?;
            let kind = state.kind;
            let store = Arc::clone(&state.store);
            let (applied, sum) = tokio::task::spawn_blocking(move || {
                super::state_machine::checksum(&store, id, kind)
            })
            .await
            .map_err(|error| Error::Internal(format!("checksum task: {error}")))??;
            sums.push((id, applied, sum));
        }
        Ok(sums)
    }

    /// Commit timestamp of the last change `group` applied on this replica.
    pub fn applied_commit_ts(&self, group: GroupId) -> Result<u64> {
        Ok(self.group(group)?.view.commit_ts())
    }

    /// The version of the catalog `group`'s replica here has installed, if hosted.
    pub fn group_catalog_version(&self, group: GroupId) -> Option<u64> {
        self.group(group)
            .ok()
            .filter(|_| self.hosts(group))
            .map(|state| state.catalog_version())
    }

    /// The data groups this node hosts, in id order.
    pub fn data_groups(&self) -> Vec<GroupId> {
        let groups = self
            .groups
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut ids: Vec<GroupId> = groups
            .iter()
            .filter(|(_, group)| group.kind == GroupKind::Data)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Whether this node hosts a replica of `group`.
    pub fn hosts(&self, group: GroupId) -> bool {
        self.groups
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .contains_key(&group)
    }

    /// How many nodes are voters of the metadata group: the cluster's size.
    pub fn member_count(&self) -> usize {
        match self.group(METADATA_GROUP) {
            Ok(group) => group
                .raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .count(),
            Err(_) => 1,
        }
    }

    /// This node's Raft timing.
    pub fn settings(&self) -> &RaftSettings {
        &self.config.settings
    }

    /// Every hosted group, in id order.
    pub(super) fn group_ids(&self) -> Vec<GroupId> {
        let mut ids: Vec<GroupId> = self
            .groups
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .keys()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// A hosted group.
    pub(super) fn group(&self, group: GroupId) -> Result<Arc<Group>> {
        self.groups
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(&group)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("group {group} is not hosted here")))
    }

    /// Stops every group and the transport.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        for group in self.group_ids() {
            if let Ok(group) = self.group(group) {
                let _ = group.raft.shutdown().await;
            }
        }
    }

    /// Commits `proposal` in `group` through its leader; returns the entry's log id and
    /// what applying it answered.
    pub async fn write(&self, group: GroupId, proposal: Proposal) -> WriteOutcome {
        let deadline = Instant::now() + self.config.settings.write_timeout;
        if !self.hosts(group) {
            return self.write_remote(group, proposal, deadline).await;
        }
        let mut last_refusal = String::from("no leader");
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let outcome = match self.live_leader_of(group) {
                Ok((leader, _)) if leader == self.id() => {
                    self.propose_here(group, proposal.clone(), remaining).await
                }
                Ok((leader, node)) => {
                    let call = NodeRequest::Propose {
                        group,
                        proposal: proposal.clone(),
                    };
                    match self
                        .call_leader(group, leader, &node, call, remaining)
                        .await
                    {
                        Ok(NodeResponse::Proposed(outcome)) => outcome,
                        Ok(other) => Err(WriteError::Unknown(format!(
                            "node {leader} answered a proposal with {other:?}"
                        ))),
                        Err(CallError::Unreachable(why)) => Err(WriteError::Retry(why)),
                        Err(error) => Err(WriteError::Unknown(format!(
                            "the leader (node {leader}) did not confirm the write: {error}"
                        ))),
                    }
                }
                Err(why) => Err(why),
            };
            match outcome {
                Err(WriteError::NotLeader(_)) => last_refusal = "the leader changed".into(),
                Err(WriteError::Retry(why)) => last_refusal = why,
                other => return other,
            }
            tokio::time::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
        Err(WriteError::Retry(format!(
            "the write was not applied: {last_refusal}"
        )))
    }

    /// Proposes on this node, which must lead the group.
    async fn propose_here(
        &self,
        group: GroupId,
        proposal: Proposal,
        timeout: Duration,
    ) -> WriteOutcome {
        match proposal {
            Proposal::Entry(request) => self.write_here(group, request, timeout).await,
            Proposal::Change(operation) => self.commit_change_here(group, operation, timeout).await,
        }
    }

    /// Stamps a data change and commits it, in a batch with whatever other changes are
    /// waiting when the next entry is made (see [`super::rounds`]); a big change goes
    /// in an entry of its own.
    async fn commit_change_here(
        &self,
        group: GroupId,
        operation: Operation,
        timeout: Duration,
    ) -> WriteOutcome {
        let state = self
            .group(group)
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        let size = crate::encoding::encoded_len(&operation)
            .map_err(|error| WriteError::Refused(error.to_string()))?;
        let batchable =
            matches!(operation, Operation::Commit { .. }) && size <= MAX_BATCHED_CHANGE_BYTES;
        let Some(rounds) = state.proposals.as_ref().filter(|_| batchable) else {
            let timestamp = self.timestamps(1).await?;
            let request = Request::Data {
                timestamp,
                operation,
            };
            return self.write_here(group, request, timeout).await;
        };
        match tokio::time::timeout(timeout, rounds.call(operation, size)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(RoundError::Stopped)) => Err(WriteError::Retry("the node is stopping".into())),
            Ok(Err(RoundError::Abandoned)) => Err(WriteError::Unknown(
                "the node stopped while the write was being committed".into(),
            )),
            Err(_) => Err(WriteError::Unknown(format!(
                "not committed within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// One batch of data changes: stamped with consecutive timestamps, proposed as one
    /// entry (a lone change as a plain entry), each answered with its own result.
    async fn propose_round(&self, group: GroupId, operations: Vec<Operation>) -> Vec<WriteOutcome> {
        let count = operations.len();
        let first = match self.timestamps(count as u64).await {
            Ok(first) => first,
            Err(error) => return vec![Err(error); count],
        };
        let requests: Vec<Request> = operations
            .into_iter()
            .zip(first..)
            .map(|(operation, timestamp)| Request::Data {
                timestamp,
                operation,
            })
            .collect();
        let request = match <[Request; 1]>::try_from(requests) {
            Ok([single]) => single,
            Err(requests) => Request::Batch(requests),
        };
        let timeout = self.config.settings.write_timeout;
        match self.write_here(group, request, timeout).await {
            Ok((log_id, Response::Batch(answers))) if answers.len() == count => answers
                .into_iter()
                .map(|answer| Ok((log_id, answer)))
                .collect(),
            Ok((log_id, answer)) if count == 1 => vec![Ok((log_id, answer))],
            Ok((log_id, answer)) => vec![
                Err(WriteError::Unknown(format!(
                    "entry {log_id} answered a batch of {count} changes with {answer:?}"
                )));
                count
            ],
            Err(error) => vec![Err(error); count],
        }
    }

    /// Proposes an entry on this node's own Raft, which must lead the group.
    async fn write_here(
        &self,
        group: GroupId,
        request: Request,
        timeout: Duration,
    ) -> std::result::Result<(LogId, Response), WriteError> {
        let state = self
            .group(group)
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        if let Some(to) = state.moving_to() {
            return Err(WriteError::Retry(format!(
                "leadership of group {group} is moving to node {to}"
            )));
        }
        match tokio::time::timeout(timeout, state.raft.client_write(request)).await {
            Ok(Ok(written)) => Ok((written.log_id, written.data)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                let leader = forward.leader_id.zip(forward.leader_node);
                Err(WriteError::NotLeader(leader))
            }
            Ok(Err(error)) => Err(WriteError::Unknown(error.to_string())),
            Err(_) => Err(WriteError::Unknown(format!(
                "not committed within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// The group's leader as this replica knows it, with its address.
    pub(super) fn leader_of(&self, group: GroupId) -> Option<(NodeId, Node)> {
        let group = self.group(group).ok()?;
        // Borrowed, not cloned: this runs for every write and read.
        let receiver = group.raft.metrics();
        let metrics = receiver.borrow();
        let leader = metrics.current_leader?;
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)?
            .clone();
        Some((leader, node))
    }

    /// The group's leader if this replica has heard from it within an election timeout
    /// (or is it). A leader silent for longer is probably gone, and a call sent to it
    /// would hang until a timeout, leaving a write's outcome unknown; waiting for the
    /// election that is surely coming is better.
    fn live_leader_of(&self, group: GroupId) -> std::result::Result<(NodeId, Node), WriteError> {
        let Some((leader, node)) = self.leader_of(group) else {
            return Err(WriteError::Retry(format!("group {group} has no leader")));
        };
        if leader == self.id() {
            return Ok((leader, node));
        }
        let state = self
            .group(group)
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        let contact = *state
            .last_leader_contact
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match contact.map(|time| self.clock.since(time)) {
            Some(silent) if silent > self.config.settings.election_timeout => {
                Err(WriteError::Retry(format!(
                    "the leader of group {group} (node {leader}) has been silent for {} ms",
                    silent.as_millis()
                )))
            }
            _ => Ok((leader, node)),
        }
    }

    /// Whether this replica heard from the group's leader (or, leading, from a quorum)
    /// within `within`: it then probably still leads, and a proposal sent to it now is
    /// unlikely to be left hanging by a leader that is already gone.
    pub fn leader_heard_within(&self, group: GroupId, within: Duration) -> bool {
        let Ok(state) = self.group(group) else {
            return false;
        };
        let receiver = state.raft.metrics();
        let metrics = receiver.borrow();
        if metrics.current_leader == Some(self.id()) {
            return metrics.millis_since_quorum_ack.is_some_and(|elapsed| {
                self.clock.measure(Duration::from_millis(elapsed)) < within
            });
        }
        drop(metrics);
        let contact = *state
            .last_leader_contact
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        contact.is_some_and(|contact| self.clock.since(contact) < within)
    }

    /// Asks openraft for a snapshot of `group` once [`super::pacing`] says one is due
    /// (every replica snapshots on its own).
    async fn snapshot_if_due(&self, group: GroupId) {
        let Ok(state) = self.group(group) else {
            return;
        };
        let entries = {
            let metrics = state.raft.metrics();
            let metrics = metrics.borrow();
            let applied = metrics.last_applied.map_or(0, |log_id| log_id.index + 1);
            let covered = metrics.snapshot.map_or(0, |log_id| log_id.index + 1);
            applied.saturating_sub(covered)
        };
        if state
            .pacing
            .due(entries, self.config.settings.snapshot_threshold)
        {
            // openraft ignores the trigger while a snapshot is being built.
            let _ = state.raft.trigger().snapshot().await;
        }
    }

    /// Allows this node's appends as leader of `group` to be pipelined (see
    /// [`super::log_store`]) only while it leads, its membership is applied and stable,
    /// no change of it runs here, and no quorum of any configuration is this node
    /// alone: a follower's acknowledgement (held back until the leader's copy is on
    /// disk) must always be part of a commit.
    fn refresh_pipelining(&self, group: GroupId) {
        let Ok(state) = self.group(group) else {
            return;
        };
        let running = state
            .membership_changes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let receiver = state.raft.metrics();
        let metrics = receiver.borrow();
        let me = self.id();
        let membership = &metrics.membership_config;
        let stable = membership.log_id() <= &metrics.last_applied;
        let never_alone = no_quorum_is_only(me, membership.membership().get_joint_config());
        let allowed = *running == 0 && metrics.current_leader == Some(me) && stable && never_alone;
        state.pipelining.set(allowed);
    }

    /// Makes every cross-group commit this node coordinates pause `millis` between its
    /// prepares and its decision (a fault for tests); refused unless the node was
    /// started with `test_faults`.
    pub fn set_commit_pause(
        &self,
        millis: u64,
    ) -> std::result::Result<Vec<StepReport>, WriteError> {
        if !self.config.test_faults {
            return Err(WriteError::Refused(
                "a commit pause is a fault for tests: start the node with test_faults = true"
                    .into(),
            ));
        }
        self.commit_pause_millis
            .store(millis, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(millis, "cross-group commits coordinated here now pause");
        Ok(vec![StepReport {
            group: METADATA_GROUP,
            action: format!(
                "node {} pauses cross-group commits {millis} ms before deciding",
                self.id()
            ),
            millis: 0,
        }])
    }

    /// How long cross-group commits coordinated here pause before deciding.
    pub fn commit_pause(&self) -> Duration {
        Duration::from_millis(
            self.commit_pause_millis
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Makes this node's clock run `rate` times as fast as the system's (a fault for
    /// tests: see [`super::clock`]); refused unless the node was started with
    /// `test_faults`.
    pub fn set_clock_rate(&self, rate: f64) -> std::result::Result<Vec<StepReport>, WriteError> {
        if !self.config.test_faults {
            return Err(WriteError::Refused(
                "clock skew is a fault for tests: start the node with test_faults = true".into(),
            ));
        }
        self.clock.set_rate(rate).map_err(WriteError::Refused)?;
        tracing::warn!(rate, "this node's clock now runs at a skewed rate");
        let action = format!("node {} measures leases at {rate}x real time", self.id());
        Ok(self
            .group_ids()
            .into_iter()
            .map(|group| StepReport {
                group,
                action: action.clone(),
                millis: 0,
            })
            .collect())
    }

    /// Calls the group's leader, giving up early (as a broken call) if this replica
    /// learns of another leader meanwhile: the call was then sent to a deposed or dead
    /// leader and may never be answered.
    async fn call_leader(
        &self,
        group: GroupId,
        leader: NodeId,
        node: &Node,
        request: NodeRequest,
        timeout: Duration,
    ) -> std::result::Result<NodeResponse, CallError> {
        let Ok(state) = self.group(group) else {
            return self.call_node(node, request, timeout).await;
        };
        let waiter = state.raft.wait(Some(timeout));
        let replaced = waiter.metrics(
            |metrics| {
                metrics
                    .current_leader
                    .is_some_and(|current| current != leader)
            },
            "another leader",
        );
        let call = self.call_node(node, request, timeout);
        tokio::pin!(call);
        tokio::select! {
            answer = &mut call => answer,
            outcome = replaced => match outcome {
                // A deposed leader that is alive (leadership handed over to balance
                // the groups) still answers: its entry is applied or dropped once the
                // new leader commits, which takes a round trip or two.
                Ok(_) => match tokio::time::timeout(DEPOSED_LEADER_GRACE, call).await {
                    Ok(answer) => answer,
                    Err(_) => Err(CallError::Broken(format!(
                        "node {leader} was replaced as leader of group {group} while the \
                         call was in flight"
                    ))),
                },
                Err(_) => Err(CallError::Timeout),
            },
        }
    }

    /// For a follower (a voter) whose leader has been silent longer than the longest
    /// election timeout plus its stagger: that wait, after which it should campaign.
    fn campaign_due(&self, group: GroupId) -> Option<Duration> {
        let state = self.group(group).ok()?;
        let contact = (*state
            .last_leader_contact
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()))?;
        let receiver = state.raft.metrics();
        let metrics = receiver.borrow();
        if metrics.state != ServerState::Follower {
            return None;
        }
        let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        let place = voters.iter().position(|voter| *voter == self.id())? as u32;
        let wait = self.config.settings.election_timeout * 2 + CAMPAIGN_STAGGER * place;
        (contact.elapsed() > wait).then_some(wait)
    }

    /// Calls a peer's node-level handler.
    pub(super) async fn call_node(
        &self,
        node: &Node,
        request: NodeRequest,
        timeout: Duration,
    ) -> std::result::Result<NodeResponse, CallError> {
        match self
            .peers
            .call(&node.raft_address, &PeerRequest::Node(request), timeout)
            .await?
        {
            PeerResponse::Node(response) => Ok(response),
            other => Err(CallError::Broken(format!("unexpected answer {other:?}"))),
        }
    }

    /// A timestamp from the oracle, from the metadata group's leader wherever it is.
    pub async fn timestamp(&self) -> std::result::Result<u64, WriteError> {
        self.timestamps(1).await
    }

    /// `count` consecutive timestamps from the oracle; the first is returned.
    async fn timestamps(&self, count: u64) -> std::result::Result<u64, WriteError> {
        let deadline = Instant::now() + self.config.settings.write_timeout;
        loop {
            let outcome = match self.live_leader_of(METADATA_GROUP) {
                Ok((leader, _)) if leader == self.id() => self.hand_out_timestamps(count).await,
                Ok((leader, node)) => {
                    let request = NodeRequest::Timestamps { count };
                    match self
                        .call_leader(METADATA_GROUP, leader, &node, request, CALL_TIMEOUT)
                        .await
                    {
                        Ok(NodeResponse::Timestamps(outcome)) => outcome,
                        Ok(other) => Err(WriteError::Retry(format!("unexpected answer {other:?}"))),
                        // Asking again is harmless: timestamps are never reused.
                        Err(error) => Err(WriteError::Retry(error.to_string())),
                    }
                }
                Err(why) => Err(why),
            };
            match outcome {
                Ok(timestamp) => return Ok(timestamp),
                Err(error) if Instant::now() >= deadline => return Err(error),
                Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }

    /// Hands out `count` timestamps as the metadata leader; the first is returned.
    async fn hand_out_timestamps(&self, count: u64) -> std::result::Result<u64, WriteError> {
        let group = self
            .group(METADATA_GROUP)
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        let mut window = self.oracle.lock().await;
        let term = self.check_lease(&group)?;
        if window.term != term {
            // New leadership: every earlier reservation is applied once an entry of this
            // term is (ensure_linearizable waits for it), then start above them all.
            group
                .raft
                .ensure_linearizable()
                .await
                .map_err(|error| WriteError::Retry(error.to_string()))?;
            let floor = group.view.oracle_reserved().max(1);
            *window = OracleWindow {
                term,
                next: floor,
                reserved: floor,
            };
        }
        if window.next + count > window.reserved {
            let up_to = window.next + count + RESERVATION;
            match self
                .write_here(
                    METADATA_GROUP,
                    Request::ReserveTimestamps { up_to },
                    CALL_TIMEOUT,
                )
                .await
            {
                Ok(_) => window.reserved = up_to,
                Err(error) => {
                    // Whatever happened, this window may overlap a successor's: drop it.
                    *window = OracleWindow::default();
                    return Err(match error {
                        WriteError::Unknown(why) => WriteError::Retry(why),
                        other => other,
                    });
                }
            }
        }
        let first = window.next;
        window.next += count;
        Ok(first)
    }

    /// Drops the oracle's in-memory window: the next timestamp needs a fresh start
    /// (an entry of the current term committed, then the highest committed bound).
    pub(super) async fn forget_oracle_window(&self) {
        *self.oracle.lock().await = OracleWindow::default();
    }

    /// The current term if this node leads `group` and its lease holds.
    fn check_lease(&self, group: &Group) -> std::result::Result<u64, WriteError> {
        if let Some(to) = group.moving_to() {
            return Err(WriteError::Retry(format!(
                "leadership is moving to node {to}"
            )));
        }
        let receiver = group.raft.metrics();
        let metrics = receiver.borrow();
        if metrics.current_leader != Some(self.id()) {
            let leader = metrics.current_leader.and_then(|leader| {
                let node = metrics.membership_config.membership().get_node(&leader)?;
                Some((leader, node.clone()))
            });
            return Err(WriteError::NotLeader(leader));
        }
        let lease = self.config.settings.lease();
        let since_quorum = metrics
            .millis_since_quorum_ack
            .map(|elapsed| self.clock.measure(Duration::from_millis(elapsed)));
        match since_quorum {
            Some(elapsed) if elapsed < lease => Ok(metrics.current_term),
            _ => Err(WriteError::Retry(
                "the leader has not heard from a quorum recently".into(),
            )),
        }
    }

    /// Waits (boundedly) until this replica has applied entry `index` of `group`.
    pub async fn wait_applied(&self, group: GroupId, index: u64) -> Result<()> {
        self.group(group)?
            .raft
            .wait(Some(CALL_TIMEOUT))
            .applied_index_at_least(Some(index), "applied")
            .await
            .map(|_| ())
            .map_err(|error| {
                Error::Retryable(format!(
                    "this replica did not catch up with the leader in time: {error}"
                ))
            })
    }

    /// Moves `group`'s applied timestamp up to at least `ts` with an entry that commits
    /// nothing (see `ClusterReplica::read_timestamp`), and waits until this replica
    /// has applied it.
    pub async fn advance_to(&self, group: GroupId, ts: u64) -> Result<()> {
        let request = Request::Data {
            timestamp: ts,
            operation: Operation::Advance,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self
                .commit_and_apply(group, Proposal::Entry(request.clone()))
                .await
            {
                Ok(_) => return Ok(()),
                // Committing nothing, it may simply be asked again: a leader replaced
                // while the call was in flight (as when leaders are balanced) is not
                // the reader's problem.
                Err(Error::OutcomeUnknown(_)) if attempts < MAX_ADVANCE_ATTEMPTS => {
                    tokio::time::sleep(RETRY_PAUSE).await
                }
                Err(Error::OutcomeUnknown(why)) => return Err(Error::Retryable(why)),
                Err(error) => return Err(error),
            }
        }
    }

    /// Commits `proposal` in `group`, waits until this replica has applied it, and
    /// returns what the change answered, with its commit timestamp.
    pub async fn commit_and_apply(
        &self,
        group: GroupId,
        proposal: Proposal,
    ) -> Result<(Applied, u64)> {
        let (log_id, response) = self.write(group, proposal).await.map_err(write_error)?;
        if self.hosts(group) {
            self.wait_applied(group, log_id.index).await?;
        }
        match response {
            Response::Data(answer) => answer,
            other => Err(Error::Internal(format!(
                "group {group} answered entry {log_id} with {other:?}"
            ))),
        }
    }

    /// Waits until this replica of `group` may serve a read at `level`.
    pub async fn prepare_read(&self, group: GroupId, level: ReadLevel) -> Result<()> {
        let state = self.group(group)?;
        if let ReadLevel::Stale { max_staleness } = level {
            return match max_staleness {
                Some(bound) => self.check_staleness(&state, bound),
                None => Ok(()),
            };
        }
        // While a leader is being elected, wait for it (boundedly) rather than fail.
        let deadline = Instant::now() + self.config.settings.write_timeout;
        let index = loop {
            match self.read_index(group, level).await {
                Ok(index) => break index,
                Err(error) if Instant::now() >= deadline => {
                    return Err(read_refused(group, error));
                }
                Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
            }
        };
        self.wait_applied(group, index).await
    }

    /// The index to apply up to before a read at `level`, from the leader wherever it is.
    async fn read_index(
        &self,
        group: GroupId,
        level: ReadLevel,
    ) -> std::result::Result<u64, WriteError> {
        match self.live_leader_of(group) {
            Ok((leader, _)) if leader == self.id() => self.read_index_here(group, level).await,
            Ok((leader, node)) => {
                let request = NodeRequest::ReadIndex { group, level };
                match self
                    .call_leader(group, leader, &node, request, CALL_TIMEOUT)
                    .await
                {
                    Ok(NodeResponse::ReadIndex(outcome)) => outcome,
                    Ok(other) => Err(WriteError::Retry(format!("unexpected answer {other:?}"))),
                    Err(error) => Err(WriteError::Retry(format!(
                        "cannot reach the leader (node {leader}): {error}"
                    ))),
                }
            }
            Err(why) => Err(why),
        }
    }

    /// As the leader: the index a read at `level` must see applied.
    async fn read_index_here(
        &self,
        group: GroupId,
        level: ReadLevel,
    ) -> std::result::Result<u64, WriteError> {
        let state = self
            .group(group)
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        if level == ReadLevel::Lease {
            let term = self.check_lease(&state)?;
            let receiver = state.raft.metrics();
            let metrics = receiver.borrow();
            // Only once an entry of this term is applied is everything committed before
            // it applied here too.
            if let Some(applied) = metrics.last_applied {
                if applied.leader_id.term == term {
                    return Ok(applied.index);
                }
            }
        }
        match state.linearizable_reads.call((), 1).await {
            Ok(outcome) => outcome,
            Err(_) => Err(WriteError::Retry("the node is stopping".into())),
        }
    }

    fn check_staleness(&self, group: &Group, max_staleness: Duration) -> Result<()> {
        let receiver = group.raft.metrics();
        let metrics = receiver.borrow();
        let fresh_as_of = if metrics.current_leader == Some(self.id()) {
            metrics
                .millis_since_quorum_ack
                .and_then(|elapsed| Instant::now().checked_sub(Duration::from_millis(elapsed)))
        } else {
            *group
                .fresh_as_of
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
        };
        match fresh_as_of.map(|time| self.clock.since(time)) {
            Some(behind) if behind <= max_staleness => Ok(()),
            Some(behind) => Err(Error::Retryable(format!(
                "this replica may be {} ms behind, more than max_staleness ({} ms)",
                behind.as_millis(),
                max_staleness.as_millis()
            ))),
            None => Err(Error::Retryable(
                "this replica has not yet caught up with a leader".into(),
            )),
        }
    }

    /// This node's status and its view of every group it hosts.
    pub async fn status(&self) -> NodeStatus {
        let mut groups = Vec::new();
        for id in self.group_ids() {
            let Ok(group) = self.group(id) else { continue };
            let metrics = group.raft.metrics().borrow().clone();
            let committed = group
                .raft
                .with_raft_state(|state| state.committed.map(|log_id| log_id.index))
                .await
                .ok()
                .flatten();
            let last_log = metrics.last_log_index;
            let lag = metrics
                .replication
                .iter()
                .flatten()
                .filter(|(node, _)| **node != self.id())
                .map(|(node, matched)| {
                    let matched = matched.map(|log_id| log_id.index).unwrap_or(0);
                    (*node, last_log.unwrap_or(0).saturating_sub(matched))
                })
                .collect();
            let membership = metrics.membership_config.membership();
            groups.push(GroupStatus {
                group: id,
                role: role_name(metrics.state).into(),
                term: metrics.current_term,
                leader: metrics.current_leader,
                last_log,
                committed,
                applied: metrics.last_applied.map(|log_id| log_id.index),
                lag,
                voters: membership.voter_ids().collect(),
                learners: membership.learner_ids().collect(),
                membership_log: metrics
                    .membership_config
                    .log_id()
                    .map(|log_id| log_id.index),
            });
        }
        NodeStatus {
            node_id: self.id(),
            raft_address: self.config.raft_address.clone(),
            sql_address: self.config.sql_address.clone(),
            groups,
        }
    }

    /// Every member's status: this node's own, and each peer's as it reports it (a peer
    /// that does not answer is listed with no groups).
    pub async fn cluster_status(&self) -> Vec<NodeStatus> {
        let own = self.status().await;
        let members: BTreeMap<NodeId, Node> = match self.group(METADATA_GROUP) {
            Ok(group) => group
                .raft
                .metrics()
                .borrow()
                .membership_config
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        let mut statuses = vec![own];
        for (id, node) in members {
            if id == self.id() {
                continue;
            }
            let status = match self
                .call_node(&node, NodeRequest::Status, Duration::from_secs(1))
                .await
            {
                Ok(NodeResponse::Status(status)) => status,
                _ => NodeStatus {
                    node_id: id,
                    raft_address: node.raft_address.clone(),
                    sql_address: node.sql_address.clone(),
                    groups: Vec::new(),
                },
            };
            statuses.push(status);
        }
        statuses.sort_by_key(|status| status.node_id);
        statuses
    }

    /// Records, after a successful AppendEntries, whether this follower has applied
    /// everything the leader had committed: the base of stale reads' staleness.
    fn note_leader_contact(&self, group: &Group, leader_commit: Option<u64>, arrived: Instant) {
        let applied = group
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map(|log_id| log_id.index);
        if leader_commit <= applied {
            // Caught up with what the leader had committed when it sent the call.
            let mut fresh = group
                .fresh_as_of
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            *fresh = Some(fresh.map_or(arrived, |last| last.max(arrived)));
        }
    }
}

/// Whether every configuration (one, or two while joint) has a voter other than `me`:
/// then no commit can rest on `me`'s acknowledgement alone.
fn no_quorum_is_only(me: NodeId, configs: &[std::collections::BTreeSet<NodeId>]) -> bool {
    configs
        .iter()
        .all(|config| config.iter().any(|voter| *voter != me))
}

/// The groups this node hosts: the metadata group, and of the data groups those the
/// ring places on it when the cluster forms (see [`super::placement`]) and, once the
/// node has taken part in the cluster (`formed`: its store has Raft state), those it
/// has a store for that is not retired (see [`super::hosting`]): groups move between
/// nodes after formation, so the ring no longer says where they are.
fn hosted_groups(config: &NodeConfig, formed: bool) -> Vec<(GroupId, GroupKind)> {
    use super::hosting::Hosting;
    let all = FIRST_SHARD_GROUP..FIRST_SHARD_GROUP + config.data_groups;
    let data = all.filter(|&group| match super::hosting::hosting(config, group) {
        Hosting::Retired => false,
        Hosting::Hosted { .. } => true,
        Hosting::Never => match &config.bootstrap {
            Bootstrap::InitialMembers(members) if !formed => {
                let ids: Vec<NodeId> = members.keys().copied().collect();
                placement::initial_voters(group, &ids, config.replication_factor)
                    .contains(&config.node_id)
            }
            _ => false,
        },
    });
    std::iter::once((METADATA_GROUP, GroupKind::Metadata))
        .chain(data.map(|group| (group, GroupKind::Data)))
        .collect()
}

/// The data groups whose replica here is marked retired.
fn retired_groups(config: &NodeConfig) -> Vec<GroupId> {
    (FIRST_SHARD_GROUP..FIRST_SHARD_GROUP + config.data_groups)
        .filter(|&group| super::hosting::hosting(config, group) == super::hosting::Hosting::Retired)
        .collect()
}

/// Whether the node store holds any Raft state or log entry: the node has taken part
/// in a cluster before (a vote, an entry), so its groups are where its directories say.
fn has_raft_state(store: &Store) -> Result<bool> {
    use crate::storage::Space;
    let everything = [0xffu8; 17];
    Ok(!store
        .scan(Space::RaftState, &[], &everything, 1)?
        .is_empty()
        || !store.scan(Space::RaftLog, &[], &everything, 1)?.is_empty())
}

/// How long a member other than the first waits to be reached by a leader before it
/// initializes the groups itself (see [`RaftNode::bootstrap`]).
const INITIALIZE_GRACE: Duration = Duration::from_secs(3);

/// Initializes `group` with the initial members; one already initialized is left as is.
async fn initialize_group(
    raft: &Raft<TypeConfig>,
    group: GroupId,
    members: &BTreeMap<NodeId, Node>,
) -> Result<()> {
    match raft.initialize(members.clone()).await {
        Ok(()) => {
            tracing::info!(group, "initialized the group");
            Ok(())
        }
        Err(RaftError::APIError(_)) => {
            tracing::debug!(group, "group already initialized");
            Ok(())
        }
        Err(error) => Err(Error::Internal(format!(
            "cannot initialize group {group}: {error}"
        ))),
    }
}

/// Waits up to [`INITIALIZE_GRACE`] for a leader to reach this member; initializes the
/// group itself if none did.
async fn initialize_unless_reached(
    raft: Raft<TypeConfig>,
    group: GroupId,
    members: BTreeMap<NodeId, Node>,
    stop: CancellationToken,
) {
    let deadline = tokio::time::Instant::now() + INITIALIZE_GRACE;
    while tokio::time::Instant::now() < deadline {
        if raft.is_initialized().await.unwrap_or(false) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(WATCH_PERIOD) => {}
            _ = stop.cancelled() => return,
        }
    }
    tracing::info!(
        group,
        "no leader reached this member: initializing the group itself"
    );
    if let Err(error) = initialize_group(&raft, group, &members).await {
        tracing::error!(%error, "cannot initialize group {group}");
    }
}

/// How often the leader watch looks at every group.
const WATCH_PERIOD: Duration = Duration::from_millis(25);
/// Extra wait per place in the voter list before a follower campaigns, so the
/// followers of a dead leader do not all campaign at once and split the vote.
const CAMPAIGN_STAGGER: Duration = Duration::from_millis(40);

/// The rounds that batch a data group's changes on this node (see `propose_round`).
pub(super) fn proposal_rounds(
    node: Weak<RaftNode>,
    group: GroupId,
    stop: CancellationToken,
) -> Rounds<Operation, WriteOutcome> {
    let run: RoundFn<Operation, WriteOutcome> = Arc::new(move |operations| {
        let node = node.clone();
        Box::pin(async move {
            match node.upgrade() {
                Some(node) => node.propose_round(group, operations).await,
                // The node is gone: every caller gets Abandoned.
                None => Vec::new(),
            }
        })
    });
    Rounds::start(PROPOSAL_ROUNDS, stop, run)
}

/// The rounds that confirm leadership once for every linearizable read waiting: each
/// round is a quorum round of its own, begun after all its reads began, so its read
/// index serves them all (see [`super::rounds`]).
pub(super) fn read_rounds(
    raft: Raft<TypeConfig>,
    stop: CancellationToken,
) -> Rounds<(), std::result::Result<u64, WriteError>> {
    let run: RoundFn<(), std::result::Result<u64, WriteError>> = Arc::new(move |reads| {
        let raft = raft.clone();
        Box::pin(async move {
            let outcome = match tokio::time::timeout(CALL_TIMEOUT, raft.ensure_linearizable()).await
            {
                Ok(Ok(read_log_id)) => Ok(read_log_id.map(|log_id| log_id.index).unwrap_or(0)),
                Ok(Err(error)) => Err(WriteError::Retry(error.to_string())),
                Err(_) => Err(WriteError::Retry("no quorum answered in time".into())),
            };
            vec![outcome; reads.len()]
        })
    });
    Rounds::start(READ_ROUNDS, stop, run)
}

/// Starts an election as soon as it can succeed once a group's leader falls silent.
///
/// openraft's followers refuse to vote while they heard from a leader within the
/// longest election timeout (their leader lease), but a follower's own election timer
/// fires earlier, at a random point between the shortest and the longest timeout: its
/// first campaign is refused, and the election only succeeds a whole timeout later.
/// Campaigning right after the longest timeout (staggered by place among the voters)
/// usually wins the first round, so writes resume about one longest timeout after the
/// leader's last heartbeat instead of two. Starting an election is always safe in
/// Raft; only its timing is chosen here. The same task keeps the metadata leadership
/// with the data leader (see [`CoLocation`]).
async fn watch_leaders(node: std::sync::Weak<RaftNode>, stop: CancellationToken) {
    let mut last_campaign: HashMap<GroupId, Instant> = HashMap::new();
    let mut co_location = CoLocation::default();
    let mut balance = Balance::default();
    let mut membership_checks: HashMap<GroupId, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(WATCH_PERIOD) => {}
        }
        let Some(node) = node.upgrade() else { return };
        if let Some(to) = co_location.due(node.data_leader_elsewhere()) {
            let node = Arc::clone(&node);
            tokio::spawn(async move {
                let step = MembershipStep::TransferLeader { to };
                match node.run_step(METADATA_GROUP, &step).await {
                    Ok(action) => {
                        tracing::info!(to, %action, "metadata leadership moved to the data leader")
                    }
                    Err(error) => tracing::debug!(to, ?error, "metadata leadership not moved"),
                }
            });
        }
        for (group, to) in balance.due(node.leaders_to_balance()) {
            let node = Arc::clone(&node);
            tokio::spawn(async move {
                let step = MembershipStep::TransferLeader { to };
                match node.run_step(group, &step).await {
                    Ok(action) => tracing::info!(group, to, %action, "leadership balanced"),
                    Err(error) => tracing::debug!(group, to, ?error, "leadership not balanced"),
                }
            });
        }
        for group in node.replicas_maybe_removed() {
            let checked = membership_checks.get(&group);
            if checked.is_some_and(|at| at.elapsed() < super::hosting::STALE_AFTER) {
                continue;
            }
            membership_checks.insert(group, Instant::now());
            let node = Arc::clone(&node);
            tokio::spawn(async move { node.retire_if_removed(group).await });
        }
        for group in node.group_ids() {
            node.refresh_pipelining(group);
            node.snapshot_if_due(group).await;
            if node.leads(group) && group != METADATA_GROUP {
                node.catch_up_catalog(group).await;
            }
            if let Some(when) = node.campaign_due(group) {
                let recently = last_campaign
                    .get(&group)
                    .is_some_and(|last| last.elapsed() < when);
                if recently {
                    continue;
                }
                last_campaign.insert(group, Instant::now());
                if let Ok(state) = node.group(group) {
                    tracing::debug!(group, "the leader is silent; campaigning");
                    let _ = state.raft.trigger().elect().await;
                }
            }
        }
    }
}

/// Spreads the leadership of data groups over the nodes: data group `g`'s preferred
/// leader is the `(g - 1) mod n`-th of its `n` voters in id order, so each node leads
/// about groups/nodes of them and write work spreads instead of funnelling through one
/// leader. A leader that is not the preferred one hands over once the preferred node
/// has been a live voter for [`CO_LOCATE_AFTER`] (elections settle first), and not more
/// often than that per group. With one data group nothing moves (its leader is wherever
/// elections put it, and the metadata leadership follows it).
#[derive(Default)]
struct Balance {
    /// Per group: since when this node has led it while another was preferred.
    apart_since: HashMap<GroupId, Instant>,
    /// Per group: when leadership was last handed over for balance.
    last_move: HashMap<GroupId, Instant>,
}

impl Balance {
    /// Given the groups led here whose preferred leader is another node, the hand-overs
    /// that are due now.
    fn due(&mut self, wanted: Vec<(GroupId, NodeId)>) -> Vec<(GroupId, NodeId)> {
        self.apart_since
            .retain(|group, _| wanted.iter().any(|(candidate, _)| candidate == group));
        let mut due = Vec::new();
        for (group, to) in wanted {
            let since = *self.apart_since.entry(group).or_insert_with(Instant::now);
            let rested = self
                .last_move
                .get(&group)
                .is_none_or(|last| last.elapsed() >= CO_LOCATE_AFTER);
            if since.elapsed() >= CO_LOCATE_AFTER && rested {
                self.apart_since.remove(&group);
                self.last_move.insert(group, Instant::now());
                due.push((group, to));
            }
        }
        due
    }
}

impl RaftNode {
    /// Whether this node leads `group` as far as it knows.
    pub fn leads(&self, group: GroupId) -> bool {
        self.leader_of(group)
            .is_some_and(|(leader, _)| leader == self.id())
    }

    /// The data groups this node leads whose preferred leader (see [`Balance`]) is
    /// another voter it has heard from recently, with that voter.
    fn leaders_to_balance(&self) -> Vec<(GroupId, NodeId)> {
        if self.data_group_count() < 2 {
            return Vec::new();
        }
        let mut wanted = Vec::new();
        for group in self.data_groups() {
            let Ok(state) = self.group(group) else {
                continue;
            };
            if !self.leads(group) || state.moving_to().is_some() {
                continue;
            }
            let Some(preferred) = self.preferred_leader(group) else {
                continue;
            };
            if preferred != self.id() && self.voter_is_live(group, preferred) {
                wanted.push((group, preferred));
            }
        }
        wanted
    }
}

/// Entries a voter may trail the leader by and still take over its leadership for
/// balance: close enough that the hand-over holds writes only briefly.
const BALANCE_MAX_LAG: u64 = 64;

impl RaftNode {
    /// As leader of `group`: whether `node` replicates it and trails by little.
    fn voter_is_live(&self, group: GroupId, node: NodeId) -> bool {
        let Ok(state) = self.group(group) else {
            return false;
        };
        let receiver = state.raft.metrics();
        let metrics = receiver.borrow();
        match (replicated_index(&metrics, node), metrics.last_log_index) {
            (Some(matched), Some(last)) => last.saturating_sub(matched) <= BALANCE_MAX_LAG,
            _ => false,
        }
    }
}

/// As a leader's metrics say: the last log index `node` has replicated, if known.
pub(super) fn replicated_index(
    metrics: &openraft::RaftMetrics<NodeId, Node>,
    node: NodeId,
) -> Option<u64> {
    metrics
        .replication
        .as_ref()
        .and_then(|replication| replication.get(&node).cloned())
        .flatten()
        .map(|log_id| log_id.index)
}

impl RaftNode {
    /// Which voter should lead data group `group`: the cluster member at the group's
    /// ring position (see [`placement::preferred_leader`]) when it is a voter of the
    /// group, otherwise the voter at that position among the group's own voters.
    fn preferred_leader(&self, group: GroupId) -> Option<NodeId> {
        let (voters, _) = self.members(group);
        let (members, _) = self.members(METADATA_GROUP);
        let members: Vec<NodeId> = members.into_iter().collect();
        match placement::preferred_leader(group, &members) {
            Some(member) if voters.contains(&member) => Some(member),
            _ => {
                let voters: Vec<NodeId> = voters.into_iter().collect();
                placement::preferred_leader(group, &voters)
            }
        }
    }
}

/// How long the metadata and data leaders must be apart before the metadata leadership
/// moves, and the least time between two such moves: elections settle first, and a
/// flapping data leader does not drag the oracle along at every change.
const CO_LOCATE_AFTER: Duration = Duration::from_secs(2);

/// Keeps the metadata group's leadership on the data group's leader. The data leader
/// asks the oracle for timestamps once per batch of writes; on the same node that is a
/// function call, elsewhere a network round trip on every write's path (measured: about
/// a fifth of the write throughput). Moving the metadata leadership is cheap (its log is
/// tiny); moving the data group's would hold writes. A transfer of only the metadata
/// group is therefore undone after [`CO_LOCATE_AFTER`]; transfer every group together.
#[derive(Default)]
struct CoLocation {
    /// Since when this node has led the metadata group while another led the data group.
    apart_since: Option<Instant>,
    /// When leadership was last moved for co-location.
    last_move: Option<Instant>,
}

impl CoLocation {
    /// Given the data leader when it is elsewhere (and this node leads the metadata
    /// group), the node to move the metadata leadership to, once that is due.
    fn due(&mut self, data_leader_elsewhere: Option<NodeId>) -> Option<NodeId> {
        let Some(to) = data_leader_elsewhere else {
            self.apart_since = None;
            return None;
        };
        let since = *self.apart_since.get_or_insert_with(Instant::now);
        let rested = self
            .last_move
            .is_none_or(|last| last.elapsed() >= CO_LOCATE_AFTER);
        if since.elapsed() < CO_LOCATE_AFTER || !rested {
            return None;
        }
        self.apart_since = None;
        self.last_move = Some(Instant::now());
        Some(to)
    }
}

impl RaftNode {
    /// When this node leads the metadata group and a live leader of the data group is
    /// another node, a voter of the metadata group: that node.
    fn data_leader_elsewhere(&self) -> Option<NodeId> {
        let metadata = self.group(METADATA_GROUP).ok()?;
        if metadata.moving_to().is_some() {
            return None;
        }
        let (data_leader, _) = self.live_leader_of(FIRST_SHARD_GROUP).ok()?;
        if data_leader == self.id() {
            return None;
        }
        let receiver = metadata.raft.metrics();
        let metrics = receiver.borrow();
        let voter = metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|voter| voter == data_leader);
        (metrics.current_leader == Some(self.id()) && voter).then_some(data_leader)
    }
}

fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shut down",
    }
}

/// The SQL error of a write that did not happen, or may not have.
pub fn write_error(error: WriteError) -> Error {
    match error {
        WriteError::NotLeader(_) => {
            Error::Retryable("the leader changed before the write was proposed".into())
        }
        WriteError::Retry(why) => Error::Retryable(why),
        WriteError::Unknown(why) => Error::OutcomeUnknown(why),
        WriteError::Refused(why) => Error::ObjectNotInPrerequisiteState(why),
    }
}

fn read_refused(group: GroupId, error: WriteError) -> Error {
    match error {
        WriteError::NotLeader(_) => {
            Error::Retryable(format!("group {group}: the leader changed during the read"))
        }
        WriteError::Retry(why) | WriteError::Unknown(why) | WriteError::Refused(why) => {
            Error::Retryable(format!(
                "group {group}: cannot confirm a consistent read: {why}"
            ))
        }
    }
}

/// The IP address outgoing peer connections are bound to: the one the node listens on.
fn listen_ip(address: &str) -> Result<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    address
        .to_socket_addrs()
        .map_err(|error| Error::InvalidParameterValue(format!("raft address {address}: {error}")))?
        .next()
        .map(|socket| socket.ip())
        .ok_or_else(|| {
            Error::InvalidParameterValue(format!("raft address {address} resolves to nothing"))
        })
}

impl Handler<PeerRequest, PeerResponse> for RaftNode {
    async fn handle(&self, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::AppendEntries { group, rpc } => {
                let Ok(state) = self.group(group) else {
                    return PeerResponse::NoSuchGroup(group);
                };
                let leader_commit = rpc.leader_commit.map(|log_id| log_id.index);
                // The leader was heard when its call arrived, not once this replica's
                // sync of the entries finished: a slow disk here must not look like a
                // silent leader (which made followers campaign against a live one).
                let arrived = Instant::now();
                let answer = state.raft.append_entries(rpc).await;
                if answer.as_ref().is_ok_and(|response| response.is_success()) {
                    let mut contact = state
                        .last_leader_contact
                        .lock()
                        .unwrap_or_else(|poison| poison.into_inner());
                    // Calls may finish out of order.
                    *contact = Some(contact.map_or(arrived, |last| last.max(arrived)));
                    drop(contact);
                    self.note_leader_contact(&state, leader_commit, arrived);
                }
                PeerResponse::AppendEntries(answer)
            }
            PeerRequest::Vote { group, rpc } => match self.group(group) {
                Ok(state) => PeerResponse::Vote(state.raft.vote(rpc).await),
                Err(_) => PeerResponse::NoSuchGroup(group),
            },
            PeerRequest::InstallSnapshot { group, rpc } => match self.group(group) {
                Ok(state) => PeerResponse::InstallSnapshot(state.raft.install_snapshot(rpc).await),
                Err(_) => PeerResponse::NoSuchGroup(group),
            },
            PeerRequest::Node(request) => PeerResponse::Node(self.handle_node(request).await),
        }
    }
}

impl RaftNode {
    async fn handle_node(&self, request: NodeRequest) -> NodeResponse {
        match request {
            NodeRequest::Propose { group, proposal } => {
                let timeout = self.config.settings.write_timeout;
                NodeResponse::Proposed(self.propose_here(group, proposal, timeout).await)
            }
            NodeRequest::Timestamps { count } => {
                NodeResponse::Timestamps(self.hand_out_timestamps(count).await)
            }
            NodeRequest::ReadIndex { group, level } => {
                NodeResponse::ReadIndex(self.read_index_here(group, level).await)
            }
            NodeRequest::Status => NodeResponse::Status(self.status().await),
            NodeRequest::Membership { group, step } => {
                NodeResponse::Membership(self.run_step(group, &step).await)
            }
            NodeRequest::Join { node_id, node } => {
                // Boxed: adding a node calls peers' handlers, this one included.
                NodeResponse::Joined(Box::pin(self.add_node(node_id, node)).await)
            }
            NodeRequest::HostGroup { group } => NodeResponse::Hosting(self.host_group(group).await),
            NodeRequest::RetireGroup { group } => {
                NodeResponse::Hosting(self.retire_group(group).await)
            }
            NodeRequest::Campaign {
                group,
                within_millis,
            } => NodeResponse::Campaigned(
                self.campaign(group, Duration::from_millis(within_millis))
                    .await,
            ),
            NodeRequest::PrepareRead { group, level } => {
                NodeResponse::ReadPrepared(self.answer_read_round(group, level).await)
            }
            NodeRequest::Read {
                group,
                at_least_ts,
                read,
            } => NodeResponse::Read(self.answer_read(group, at_least_ts, read).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pipelining needs another voter in every configuration: a lone voter (or a joint
    /// configuration whose old half is the lone voter) would commit on its own copy.
    #[test]
    fn pipelining_needs_another_voter_in_every_configuration() {
        use std::collections::BTreeSet;
        let set = |ids: &[NodeId]| ids.iter().copied().collect::<BTreeSet<NodeId>>();
        assert!(no_quorum_is_only(1, &[set(&[1, 2, 3])]));
        assert!(
            no_quorum_is_only(1, &[set(&[2])]),
            "a leader that is not a voter"
        );
        assert!(!no_quorum_is_only(1, &[set(&[1])]));
        assert!(!no_quorum_is_only(1, &[set(&[1]), set(&[1, 2, 3])]));
        assert!(no_quorum_is_only(1, &[set(&[1, 2]), set(&[1, 3])]));
    }
    use crate::state_machine::{Applied, Operation};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn cluster(dirs: &[tempfile::TempDir]) -> Vec<Arc<RaftNode>> {
        let members: BTreeMap<NodeId, Node> = (1..=dirs.len() as u64)
            .map(|id| {
                let node = Node {
                    raft_address: format!("127.0.0.1:{}", free_port()),
                    sql_address: String::new(),
                };
                (id, node)
            })
            .collect();
        let starts = members.iter().zip(dirs).map(|((id, node), dir)| {
            RaftNode::start(NodeConfig {
                node_id: *id,
                data_dir: dir.path().to_path_buf(),
                raft_address: node.raft_address.clone(),
                sql_address: String::new(),
                bootstrap: Bootstrap::InitialMembers(members.clone()),
                settings: RaftSettings::default(),
                test_faults: false,
                data_groups: 2,
                replication_factor: placement::DEFAULT_REPLICATION_FACTOR,
            })
        });
        futures::future::try_join_all(starts).await.unwrap()
    }

    fn create_table(name: &str) -> Operation {
        Operation::CreateTable {
            spec: crate::catalog::test_table_spec(name, 4, 2),
            if_not_exists: false,
        }
    }

    /// Three nodes in one process, two data groups: a schema change made through any
    /// node (forwarded to the leaders when needed) reaches the catalog on every node
    /// and every data group's copy on every replica; timestamps from any node only go
    /// up; every node reports the same leader.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_replicate_and_forward() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let nodes = cluster(&dirs).await;
        let mut last = 0;
        for (i, node) in nodes.iter().enumerate() {
            let applied = node
                .change_schema(create_table(&format!("t{i}")))
                .await
                .unwrap();
            assert_eq!(applied, Applied::Done);
            let version = node.catalog().version();
            for replica in &nodes {
                for group in [METADATA_GROUP, FIRST_SHARD_GROUP, FIRST_SHARD_GROUP + 1] {
                    let state = replica.group(group).unwrap();
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while state.catalog_version() < version {
                        assert!(Instant::now() < deadline, "group {group} never installed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                assert!(replica.catalog().table(&format!("t{i}")).is_some());
            }
            for _ in 0..5 {
                let timestamp = node.timestamp().await.unwrap();
                assert!(timestamp > last, "{timestamp} after {last}");
                last = timestamp;
            }
        }
        for node in &nodes {
            node.prepare_read(FIRST_SHARD_GROUP, ReadLevel::Linearizable)
                .await
                .unwrap();
            node.prepare_read(FIRST_SHARD_GROUP + 1, ReadLevel::Lease)
                .await
                .unwrap();
        }
        let statuses = nodes[0].cluster_status().await;
        assert_eq!(statuses.len(), 3);
        let leaders: Vec<_> = statuses
            .iter()
            .map(|status| status.groups[1].leader)
            .collect();
        assert!(leaders
            .iter()
            .all(|leader| leader.is_some() && *leader == leaders[0]));
        for node in &nodes {
            node.shutdown().await;
        }
    }
}
