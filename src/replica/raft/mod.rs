//! Replication: each group is a Raft group (openraft 0.9) whose replicas keep their log,
//! vote and state in the node's RocksDB.
//!
//! [`types`] is the type configuration every group shares; [`log_store`] keeps the log
//! and vote of every hosted group; [`state_machine`] applies committed entries and
//! [`snapshot`] writes and reads snapshot files, whose timing [`pacing`] decides;
//! [`transport`] and [`network`] carry Raft and node calls between peers; [`node`]
//! hosts the groups, routes writes and reads; [`placement`] says which nodes replicate
//! which data group when the cluster forms, [`hosting`] starts and retires a node's
//! replicas later, and [`remote`] reaches the groups a node does not host, and [`catch_up`] moves an idle group
//! up to a snapshot taken across groups; [`membership`] adds and removes nodes and
//! moves leadership, [`rebalance`] moves data group replicas between nodes as they
//! come and go; [`clock`] measures the spans leases rest on, at a rate tests may
//! skew.

pub mod catch_up;
pub mod clock;
pub mod hosting;
pub mod index_build;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod node;
pub mod pacing;
pub mod placement;
pub mod rebalance;
pub mod remote;
pub mod rounds;
pub mod schema;
pub mod snapshot;
pub mod state_machine;
pub mod transport;
pub mod types;

use types::GroupId;

/// What a per-group key of the `raft_state` space holds; the key is `group u64 BE | tag`,
/// so all of a group's state sits together and groups never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StateTag {
    /// The vote (synced).
    Vote = 1,
    /// The last committed log id openraft reported (unsynced; a hint for restarts).
    Committed = 2,
    /// The last purged log id (synced before the entries are deleted).
    Purged = 3,
    /// The state machine's applied state: last applied log id, membership, oracle bound.
    Applied = 4,
    /// The current snapshot's metadata and file.
    Snapshot = 5,
    /// A snapshot whose installation began and has not finished: redone at start.
    Installing = 6,
    /// How far a crash interrupted the apply of a batch entry (see the state machine).
    BatchProgress = 7,
}

/// The `raft_state` key of one piece of a group's state.
pub(crate) fn state_key(group: GroupId, tag: StateTag) -> Vec<u8> {
    let mut key = group.to_be_bytes().to_vec();
    key.push(tag as u8);
    key
}
