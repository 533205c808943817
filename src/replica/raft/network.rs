//! The messages nodes exchange, and openraft's network over the peer transport.
//!
//! A Raft RPC names its group, so one connection per node pair carries every group's
//! traffic; the node's own calls (forwarded writes, timestamps, read indexes, status)
//! travel as [`PeerRequest::Node`].

// openraft's RaftNetwork trait dictates its (large) RPCError as the error type.
#![allow(clippy::result_large_err)]

use super::log_store::Durability;
use super::node::{NodeRequest, NodeResponse};
use super::transport::{CallError, Peers};
use super::types::{GroupId, Node, NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A call from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Raft: replicate entries or heartbeat.
    AppendEntries {
        /// The group.
        group: GroupId,
        /// openraft's request.
        rpc: AppendEntriesRequest<TypeConfig>,
    },
    /// Raft: request a vote.
    Vote {
        /// The group.
        group: GroupId,
        /// openraft's request.
        rpc: VoteRequest<NodeId>,
    },
    /// Raft: one chunk of a snapshot.
    InstallSnapshot {
        /// The group.
        group: GroupId,
        /// openraft's request.
        rpc: InstallSnapshotRequest<TypeConfig>,
    },
    /// A call of the node itself, not of one group's Raft.
    Node(NodeRequest),
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// To [`PeerRequest::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// To [`PeerRequest::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// To [`PeerRequest::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// To [`PeerRequest::Node`].
    Node(NodeResponse),
    /// The receiving node hosts no such group (yet).
    NoSuchGroup(GroupId),
}

/// Outgoing connections carrying [`PeerRequest`]s.
pub type PeerClient = Peers<PeerRequest, PeerResponse>;

/// openraft's network factory for one group: links to peers over the shared client.
pub struct GroupNetwork {
    /// This node.
    pub node_id: NodeId,
    /// The group whose RPCs the links carry.
    pub group: GroupId,
    /// The node's outgoing connections.
    pub peers: Arc<PeerClient>,
    /// How long a link waits before calling an unreachable peer again.
    pub retry_unreachable: Duration,
    /// How far the group's log is on disk here: followers' acknowledgements wait for it.
    pub durability: Arc<Durability>,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerLink {
        PeerLink {
            node_id: self.node_id,
            group: self.group,
            target,
            address: node.raft_address.clone(),
            peers: Arc::clone(&self.peers),
            retry_unreachable: self.retry_unreachable,
            durability: Arc::clone(&self.durability),
        }
    }
}

/// One group's link to one peer; connections are made (and remade) when calls need them.
pub struct PeerLink {
    node_id: NodeId,
    group: GroupId,
    target: NodeId,
    address: String,
    peers: Arc<PeerClient>,
    retry_unreachable: Duration,
    durability: Arc<Durability>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl PeerLink {
    /// Makes a call and turns transport failures into the RPC errors openraft expects.
    async fn call<E: std::error::Error>(
        &self,
        request: PeerRequest,
        action: RPCTypes,
        option: &RPCOption,
    ) -> Result<PeerResponse, RPCError<NodeId, Node, RaftError<NodeId, E>>> {
        let timeout = option.hard_ttl();
        match self.peers.call(&self.address, &request, timeout).await {
            Ok(PeerResponse::NoSuchGroup(group)) => Err(RPCError::Unreachable(Unreachable::new(
                &CallError::Unreachable(format!("node {} hosts no group {group}", self.target)),
            ))),
            Ok(response) => Ok(response),
            Err(CallError::Timeout) => Err(RPCError::Timeout(Timeout {
                action,
                id: self.node_id,
                target: self.target,
                timeout,
            })),
            Err(error @ CallError::Unreachable(_)) => {
                Err(RPCError::Unreachable(Unreachable::new(&error)))
            }
            Err(error @ CallError::Broken(_)) => Err(RPCError::Network(NetworkError::new(&error))),
        }
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
        RPCError::Network(NetworkError::new(&CallError::Broken(format!(
            "node {} answered a different call",
            self.target
        ))))
    }

    fn remote<T, E: std::error::Error>(
        &self,
        answer: Result<T, RaftError<NodeId, E>>,
    ) -> Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>> {
        answer.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }
}

impl RaftNetwork<TypeConfig> for PeerLink {
    /// Retries an unreachable peer every heartbeat, not openraft's default 500 ms: a
    /// node that comes up (started, restarted, or back from a partition) must hear
    /// from the leader before its election timeout runs out, or it starts an election
    /// and deposes a healthy leader, failing the writes in flight there.
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.retry_unreachable))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        // The follower will acknowledge the log up to here.
        let acknowledged = rpc
            .entries
            .last()
            .map(|entry| entry.log_id.index)
            .or(rpc.prev_log_id.map(|id| id.index));
        let request = PeerRequest::AppendEntries {
            group: self.group,
            rpc,
        };
        let answer = match self.call(request, RPCTypes::AppendEntries, &option).await? {
            PeerResponse::AppendEntries(answer) => self.remote(answer)?,
            _ => return Err(self.unexpected()),
        };
        // A pipelined leader's own copy may not be on disk yet, and openraft already
        // counts it: hold the follower's acknowledgement back until it is, so that a
        // commit always rests on a majority of copies on disk (see log_store).
        if let Some(index) = acknowledged {
            if !self.durability.wait_durable(index, option.hard_ttl()).await {
                return Err(RPCError::Timeout(Timeout {
                    action: RPCTypes::AppendEntries,
                    id: self.node_id,
                    target: self.target,
                    timeout: option.hard_ttl(),
                }));
            }
        }
        Ok(answer)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let request = PeerRequest::InstallSnapshot {
            group: self.group,
            rpc,
        };
        match self
            .call(request, RPCTypes::InstallSnapshot, &option)
            .await?
        {
            PeerResponse::InstallSnapshot(answer) => self.remote(answer),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let request = PeerRequest::Vote {
            group: self.group,
            rpc,
        };
        match self.call(request, RPCTypes::Vote, &option).await? {
            PeerResponse::Vote(answer) => self.remote(answer),
            _ => Err(self.unexpected()),
        }
    }
}
