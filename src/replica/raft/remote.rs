//! Reaching data groups this node does not host.
//!
//! With more nodes than the replication factor a node hosts only some data groups (see
//! [`super::placement`]), yet its sessions read and write every table. For a group it
//! does not host it asks a node that does: writes go to a host as proposals (a host
//! that does not lead answers with the leader, which is asked next); a read round
//! (`PrepareRead`) runs on a host, which confirms its own replica may serve the read
//! level and answers its applied timestamp; reads (`Read`) are answered by a host once
//! it has applied up to the snapshot's timestamp, so a snapshot is exact whichever
//! host serves it (commit timestamps follow each group's log).
//!
//! Hosts are found through the metadata group's members (every node is one): the last
//! host that answered for a group first, then the group's ring placement, then every
//! other member. A node that does not host the group says so and the next is asked;
//! only a call that certainly did not change anything is retried, as for local writes.

use super::node::{
    NodeRequest, NodeResponse, PreparedRead, Proposal, RaftNode, WriteError, WriteOutcome,
};
use super::placement;
use super::transport::CallError;
use super::types::{GroupId, Node, NodeId, METADATA_GROUP};
use crate::error::{Error, Result};
use crate::replica::group_read::{self, GroupAnswer, GroupRead};
use crate::replica::ReadLevel;
use std::time::{Duration, Instant};

/// Longest a host waits to have applied up to a read's snapshot before refusing it
/// (retryably): it is then far behind its leader, and another host may do better.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// How often a host waiting to catch up looks again.
const CATCH_UP_POLL: Duration = Duration::from_millis(1);
/// Most passes over a group's hosts for one write while none can take it.
const MOST_WRITE_PASSES: usize = 100;
/// Pause between two such passes.
const WRITE_PASS_PAUSE: Duration = Duration::from_millis(50);
/// Longest wait for one remote read or read round.
const REMOTE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl RaftNode {
    /// The nodes to ask about `group`, best first: the last that answered, the ring's
    /// voters, then every other member.
    pub(super) fn hosts_to_ask(&self, group: GroupId) -> Vec<(NodeId, Node)> {
        let Ok(metadata) = self.group(METADATA_GROUP) else {
            return Vec::new();
        };
        let members: Vec<(NodeId, Node)> = {
            let receiver = metadata.raft.metrics();
            let metrics = receiver.borrow();
            metrics
                .membership_config
                .membership()
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .collect()
        };
        let ids: Vec<NodeId> = members.iter().map(|(id, _)| *id).collect();
        let ring = placement::initial_voters(group, &ids, self.replication_factor());
        let hint = self.remote_host(group);
        let rank = |id: &NodeId| {
            if Some(*id) == hint {
                0
            } else if ring.contains(id) {
                1
            } else {
                2
            }
        };
        let mut ordered: Vec<(NodeId, Node)> = members
            .into_iter()
            .filter(|(id, _)| *id != self.id())
            .collect();
        ordered.sort_by_key(|(id, _)| (rank(id), *id));
        ordered
    }

    /// Commits `proposal` in `group`, which this node does not host, through a host.
    /// While no host can take it (the group is electing a leader, or moving its
    /// leadership) the hosts are asked again after a pause, until `deadline`, as a
    /// local write waits for a leader.
    pub(super) async fn write_remote(
        &self,
        group: GroupId,
        proposal: Proposal,
        deadline: Instant,
    ) -> WriteOutcome {
        let mut last_refusal = format!("no node hosting group {group} answered");
        for _ in 0..MOST_WRITE_PASSES {
            match self.write_remote_once(group, &proposal, deadline).await {
                Err(WriteError::Retry(why)) => last_refusal = why,
                outcome => return outcome,
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            tokio::time::sleep(WRITE_PASS_PAUSE.min(remaining)).await;
        }
        Err(WriteError::Retry(last_refusal))
    }

    /// One pass of [`RaftNode::write_remote`]: each member once, plus one redirect to
    /// a leader named by each answer.
    async fn write_remote_once(
        &self,
        group: GroupId,
        proposal: &Proposal,
        deadline: Instant,
    ) -> WriteOutcome {
        let mut last_refusal = format!("no node hosting group {group} answered");
        let mut redirect: Option<(NodeId, Node)> = None;
        let mut hosts = self.hosts_to_ask(group).into_iter();
        for _ in 0..self.member_count() * 2 + 1 {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let Some((host, node)) = redirect.take().or_else(|| hosts.next()) else {
                break;
            };
            let call = NodeRequest::Propose {
                group,
                proposal: proposal.clone(),
            };
            match self.call_node(&node, call, remaining).await {
                Ok(NodeResponse::Proposed(Ok(done))) => {
                    self.note_remote_host(group, host);
                    return Ok(done);
                }
                Ok(NodeResponse::Proposed(Err(WriteError::NotLeader(leader)))) => {
                    last_refusal = format!("node {host} does not lead group {group}");
                    redirect = leader.filter(|(leader, _)| *leader != host);
                }
                Ok(NodeResponse::Proposed(Err(WriteError::Retry(why)))) => last_refusal = why,
                Ok(NodeResponse::Proposed(Err(error))) => return Err(error),
                Ok(other) => {
                    return Err(WriteError::Unknown(format!(
                        "node {host} answered a proposal with {other:?}"
                    )))
                }
                Err(CallError::Unreachable(why)) => last_refusal = why,
                Err(error) => {
                    return Err(WriteError::Unknown(format!(
                        "node {host} did not confirm the write to group {group}: {error}"
                    )))
                }
            }
        }
        Err(WriteError::Retry(last_refusal))
    }

    /// The applied timestamp of a replica of `group` that may serve a read at `level`:
    /// this node's own after its read round when it hosts the group, a host's otherwise.
    pub async fn applied_for_read(&self, group: GroupId, level: ReadLevel) -> Result<u64> {
        Ok(self.read_round(group, level).await?.applied_ts)
    }

    /// A read round of `group` at `level` on this node's replica when it hosts the
    /// group, a host's otherwise: that replica's applied timestamp after it, and the
    /// catalog version the group had installed there.
    pub async fn read_round(&self, group: GroupId, level: ReadLevel) -> Result<PreparedRead> {
        if self.hosts(group) {
            self.prepare_read(group, level).await?;
            return self.prepared_here(group);
        }
        let answer = self
            .ask_hosts(group, || NodeRequest::PrepareRead { group, level })
            .await?;
        match answer {
            NodeResponse::ReadPrepared(Some(outcome)) => {
                if let Ok(prepared) = &outcome {
                    self.note_committed_at(group, prepared.applied_ts);
                }
                outcome
            }
            other => Err(Error::Internal(format!(
                "a read round of group {group} was answered with {other:?}"
            ))),
        }
    }

    /// This replica's applied timestamp of `group` and the group's catalog version.
    fn prepared_here(&self, group: GroupId) -> Result<PreparedRead> {
        let state = self.group(group)?;
        Ok(PreparedRead {
            applied_ts: state.view.commit_ts(),
            catalog_version: state.catalog_version(),
        })
    }

    /// Answers `read` of `group`, which this node does not host, from a host that has
    /// applied up to `at_least_ts`.
    pub async fn read_remote(
        &self,
        group: GroupId,
        at_least_ts: u64,
        read: GroupRead,
    ) -> Result<GroupAnswer> {
        let answer = self
            .ask_hosts(group, || NodeRequest::Read {
                group,
                at_least_ts,
                read: read.clone(),
            })
            .await?;
        match answer {
            NodeResponse::Read(Some(outcome)) => outcome,
            other => Err(Error::Internal(format!(
                "a read of group {group} was answered with {other:?}"
            ))),
        }
    }

    /// Sends a read request to the hosts of `group` in turn until one that hosts it
    /// answers; reads change nothing, so any failure moves on to the next host.
    async fn ask_hosts(
        &self,
        group: GroupId,
        request: impl Fn() -> NodeRequest,
    ) -> Result<NodeResponse> {
        let mut last_failure = format!("no node hosting group {group} answered");
        for (host, node) in self.hosts_to_ask(group) {
            let answer = self.call_node(&node, request(), REMOTE_CALL_TIMEOUT).await;
            match answer {
                Ok(NodeResponse::ReadPrepared(None) | NodeResponse::Read(None)) => {
                    last_failure = format!("node {host} does not host group {group}");
                }
                Ok(NodeResponse::ReadPrepared(Some(Err(error))))
                | Ok(NodeResponse::Read(Some(Err(error))))
                    if error.is_retryable() =>
                {
                    last_failure = error.to_string();
                }
                Ok(answer) => {
                    self.note_remote_host(group, host);
                    return Ok(answer);
                }
                Err(error) => last_failure = format!("node {host}: {error}"),
            }
        }
        Err(Error::Retryable(format!(
            "cannot read group {group}: {last_failure}"
        )))
    }

    /// As a host: the read round of `group` for a node that does not host it; `None`
    /// when this node does not host it either.
    pub(super) async fn answer_read_round(
        &self,
        group: GroupId,
        level: ReadLevel,
    ) -> Option<Result<PreparedRead>> {
        if !self.hosts(group) {
            return None;
        }
        let prepared = self.prepare_read(group, level).await;
        Some(prepared.and_then(|()| self.prepared_here(group)))
    }

    /// As a host: answers `read` once this replica has applied up to `at_least_ts`;
    /// `None` when this node does not host `group`.
    pub(super) async fn answer_read(
        &self,
        group: GroupId,
        at_least_ts: u64,
        read: GroupRead,
    ) -> Option<Result<GroupAnswer>> {
        let store = self.group_store(group)?;
        let deadline = Instant::now() + CATCH_UP_WAIT;
        loop {
            match self.applied_commit_ts(group) {
                Ok(applied) if applied >= at_least_ts => break,
                Ok(applied) if Instant::now() >= deadline => {
                    return Some(Err(Error::Retryable(format!(
                        "node {} has applied group {group} only up to {applied}, short of \
                         the snapshot at {at_least_ts}",
                        self.id()
                    ))))
                }
                Ok(_) => tokio::time::sleep(CATCH_UP_POLL).await,
                Err(error) => return Some(Err(error)),
            }
        }
        Some(group_read::answer(&store, read))
    }
}
