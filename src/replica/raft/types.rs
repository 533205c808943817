//! The Raft type configuration every group shares, and the names the rest of Tessera
//! uses for openraft's types.
//!
//! One configuration serves the metadata group and every data group, so one transport
//! and one connection per node pair carry them all. openraft's types are named here
//! only; the rest of the crate uses these aliases, so moving to openraft 0.10 touches few
//! files.

use crate::error::Error;
use crate::state_machine::{Applied, Operation};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's number in the cluster; never reused.
pub type NodeId = u64;

/// A Raft group's number: 0 is the metadata group, data groups follow.
pub type GroupId = u64;

/// The metadata group: timestamp oracle and cluster membership.
pub const METADATA_GROUP: GroupId = 0;

/// Where a node is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Address of its Raft transport (`HOST:PORT`).
    pub raft_address: String,
    /// Address its SQL clients connect to (`HOST:PORT`).
    pub sql_address: String,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft {} / sql {}", self.raft_address, self.sql_address)
    }
}

/// What a log entry asks a group's state machine to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// A change to a data group: DDL or a transaction's commit. The commit timestamp is
    /// the larger of `timestamp` (from the oracle) and one past the group's last, fixed
    /// when the entry is applied, so it follows log order on every replica alike.
    Data {
        /// Timestamp from the oracle when the change was proposed.
        timestamp: u64,
        /// The change.
        operation: Operation,
    },
    /// Metadata group: a schema change to the cluster's catalog (DDL's first step; the
    /// data groups then install the new catalog).
    Schema {
        /// The DDL operation.
        operation: Operation,
    },
    /// Metadata group: raise the oracle's reserved bound to `up_to`; the leader hands
    /// out timestamps below it from memory.
    ReserveTimestamps {
        /// New bound (exclusive).
        up_to: u64,
    },
    /// Several data changes in one entry (the leader batches concurrent proposals, so
    /// the per-entry costs of Raft are shared). Applied in order, each as if it were an
    /// entry of its own: its own commit timestamp and its own answer.
    Batch(Vec<Request>),
}

/// What applying an entry answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// A blank or membership entry, or an oracle reservation.
    Done,
    /// A data change: what it did, at which commit timestamp, or the deterministic
    /// error it failed with (the state is unchanged on every replica alike).
    Data(Result<(Applied, u64), Error>),
    /// A batch: one answer per change, in the batch's order.
    Batch(Vec<Response>),
}

openraft::declare_raft_types!(
    /// openraft's configuration for Tessera's groups.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = tokio::fs::File,
);

/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log position: term, leader and index.
pub type LogId = openraft::LogId<NodeId>;
/// A vote: term, candidate, and whether a quorum granted it.
pub type Vote = openraft::Vote<NodeId>;
/// An error of the storage layer as openraft sees it: fatal for the node.
pub type StorageError = openraft::StorageError<NodeId>;
/// openraft's IO error, the payload of a [`StorageError`].
pub type StorageIOError = openraft::StorageIOError<NodeId>;
/// Log bounds: last purged and last present entry.
pub type LogState = openraft::storage::LogState<TypeConfig>;
/// The membership in force as of a log id.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// What describes a snapshot: its last log id, membership and id.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// A snapshot: its metadata and an open file of its data.
pub type Snapshot = openraft::storage::Snapshot<TypeConfig>;
