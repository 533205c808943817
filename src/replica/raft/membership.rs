//! Membership: adding a node, removing one, and moving a group's leadership.
//!
//! Every change runs group by group, each step on the group's leader wherever it is (a
//! node that does not lead forwards the step one hop, as writes are; one that hosts no
//! replica of the group sends it through a host). Adding a node to a group makes it a
//! learner first; openraft streams it a snapshot when the log it needs is already
//! purged, and the step returns once it has caught up, so it never joins the quorum
//! while it is far behind. Only then is it promoted to voter (a joint configuration,
//! committed, then the final one). A node joins the metadata group this way; which
//! data groups it joins, and which a leaving node's replicas move to, `rebalance`
//! decides.
//!
//! Steps are safe to repeat: adding a learner that exists, promoting a voter, removing
//! a node that is gone change nothing. So a change cut short (a leader died, a timeout)
//! is finished by running the same command again, and a node that restarts with
//! `--join` before its join completed simply asks again.
//!
//! Leadership transfer (openraft 0.9 has none built in): the leader stops accepting
//! writes for the group, waits until the target has every entry, and asks the target to
//! campaign. The old leader grants the vote (its own vote is not refreshed by
//! heartbeats, so no lease holds it back) and steps down on seeing the higher term; the
//! target's log is complete, so it wins with the old leader's vote and its own. Writes
//! refused meanwhile are certainly not applied (40001). The pause is bounded by
//! [`TRANSFER_TIMEOUT`], after which writes flow again whoever leads.

use super::node::{NodeRequest, NodeResponse, RaftNode, WriteError};
use super::types::{GroupId, Node, NodeId, METADATA_GROUP};
use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Longest wait for a new learner to catch up with a group (a snapshot of a large group
/// takes a while to stream).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest a leadership transfer holds writes back.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for a group to have a leader before a membership step gives up.
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most attempts of one membership step while leaders change.
const MAX_STEP_ATTEMPTS: usize = 50;
/// Pause between attempts of a step.
const STEP_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// One step of a membership change, run by a group's leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MembershipStep {
    /// Make the node a learner and wait until it has caught up.
    AddLearner {
        /// The node's id.
        node_id: NodeId,
        /// Where it is reached.
        node: Node,
    },
    /// Make a caught-up learner a voter.
    Promote {
        /// The learner.
        node_id: NodeId,
    },
    /// Remove the node from the group (voter or learner).
    Remove {
        /// The node.
        node_id: NodeId,
    },
    /// Hand the group's leadership to this voter.
    TransferLeader {
        /// The voter that should lead.
        to: NodeId,
    },
}

/// What one step did, for the operator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepReport {
    /// The group.
    pub group: GroupId,
    /// What was done, e.g. "added as learner".
    pub action: String,
    /// How long it took.
    pub millis: u64,
}

impl RaftNode {
    /// Adds the node to the cluster: to the metadata group (learner, caught up, then
    /// voter), then moves data group replicas onto it until every node carries about
    /// its share (see [`super::rebalance`]). The node must be running (started with
    /// no initial members, or with `--join`). Running it again finishes a change cut
    /// short.
    pub async fn add_node(
        &self,
        node_id: NodeId,
        node: Node,
    ) -> Result<Vec<StepReport>, WriteError> {
        if node_id == 0 {
            return Err(WriteError::Refused("node ids start at 1".into()));
        }
        if let Some(existing) = self.member_address(METADATA_GROUP, node_id) {
            if existing.raft_address != node.raft_address {
                return Err(WriteError::Refused(format!(
                    "node id {node_id} is already a member at {} (ids are never reused)",
                    existing.raft_address
                )));
            }
        }
        let mut reports = Vec::new();
        let step = MembershipStep::AddLearner {
            node_id,
            node: node.clone(),
        };
        reports.push(self.step_on_leader(METADATA_GROUP, step).await?);
        let step = MembershipStep::Promote { node_id };
        reports.push(self.step_on_leader(METADATA_GROUP, step).await?);
        reports.extend(self.rebalance(None).await?);
        tracing::info!(node_id, address = %node.raft_address, "node added, data groups rebalanced");
        Ok(reports)
    }

    /// Adds the running node whose Raft transport listens at `raft_address`: asks it
    /// for its id and SQL address, then [`RaftNode::add_node`].
    pub async fn add_node_at(&self, raft_address: &str) -> Result<Vec<StepReport>, WriteError> {
        let target = Node {
            raft_address: raft_address.to_string(),
            sql_address: String::new(),
        };
        let status = match self
            .call_node(&target, NodeRequest::Status, Duration::from_secs(5))
            .await
        {
            Ok(NodeResponse::Status(status)) => status,
            Ok(other) => {
                return Err(WriteError::Refused(format!(
                    "{raft_address} answered {other:?}"
                )))
            }
            Err(error) => {
                return Err(WriteError::Refused(format!(
                    "no Tessera node answers at {raft_address}: {error}"
                )))
            }
        };
        let node = Node {
            raft_address: status.raft_address,
            sql_address: status.sql_address,
        };
        self.add_node(status.node_id, node).await
    }

    /// Removes the node from the cluster: its data group replicas move to the other
    /// nodes first (each group keeps its replication factor while there are enough
    /// nodes; see [`super::rebalance`]), then it leaves the metadata group. Where it
    /// leads, leadership moves first.
    pub async fn remove_node(&self, node_id: NodeId) -> Result<Vec<StepReport>, WriteError> {
        let (voters, learners) = self.members(METADATA_GROUP);
        if !voters.contains(&node_id) && !learners.contains(&node_id) {
            return Err(WriteError::Refused(format!(
                "node {node_id} is not a member of the cluster"
            )));
        }
        if voters.len() == 1 && voters.contains(&node_id) {
            return Err(WriteError::Refused(format!(
                "node {node_id} is the cluster's last node"
            )));
        }
        let mut reports = self.rebalance(Some(node_id)).await?;
        let step = MembershipStep::Remove { node_id };
        reports.push(self.step_on_leader(METADATA_GROUP, step).await?);
        tracing::info!(node_id, "node removed from the cluster");
        Ok(reports)
    }

    /// Moves the leadership of `groups` to `to`; when `groups` is empty, of every group
    /// `to` is a voter of (with more nodes than the replication factor it hosts only
    /// some of them).
    pub async fn transfer_leadership(
        &self,
        groups: &[GroupId],
        to: NodeId,
    ) -> Result<Vec<StepReport>, WriteError> {
        let first = crate::shard::FIRST_SHARD_GROUP;
        let last = first + self.data_group_count();
        let exists = |group: &GroupId| *group == METADATA_GROUP || (first..last).contains(group);
        if let Some(missing) = groups.iter().find(|group| !exists(group)) {
            return Err(WriteError::Refused(format!("there is no group {missing}")));
        }
        let groups = if groups.is_empty() {
            self.groups_with_voter(to).await?
        } else {
            groups.to_vec()
        };
        let mut reports = Vec::new();
        for group in groups {
            let step = MembershipStep::TransferLeader { to };
            reports.push(self.step_on_leader(group, step).await?);
        }
        Ok(reports)
    }

    /// As leader of `group`: the other voter best placed to take over (the one whose
    /// log is furthest along).
    fn successor(&self, group: GroupId, voters: &BTreeSet<NodeId>) -> Option<NodeId> {
        let state = self.group(group).ok()?;
        let receiver = state.raft.metrics();
        let metrics = receiver.borrow();
        voters
            .iter()
            .copied()
            .filter(|voter| *voter != self.id())
            .max_by_key(|voter| {
                (
                    super::node::replicated_index(&metrics, *voter),
                    std::cmp::Reverse(*voter),
                )
            })
    }

    /// The metadata group and every data group `node_id` is a voter of, from every
    /// node's report.
    async fn groups_with_voter(&self, node_id: NodeId) -> Result<Vec<GroupId>, WriteError> {
        let statuses = self.cluster_status().await;
        let mut groups: BTreeSet<GroupId> = BTreeSet::new();
        for status in &statuses {
            for report in &status.groups {
                if report.voters.contains(&node_id) {
                    groups.insert(report.group);
                }
            }
        }
        if groups.is_empty() {
            return Err(WriteError::Refused(format!(
                "node {node_id} is a voter of no group"
            )));
        }
        Ok(groups.into_iter().collect())
    }

    /// The address of `node_id` if it is a member (voter or learner) of `group`.
    fn member_address(&self, group: GroupId, node_id: NodeId) -> Option<Node> {
        let state = self.group(group).ok()?;
        let receiver = state.raft.metrics();
        let metrics = receiver.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&node_id)
            .cloned()
    }

    /// Voters and learners of `group` as this replica knows them.
    pub(super) fn members(&self, group: GroupId) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        let Ok(state) = self.group(group) else {
            return Default::default();
        };
        let receiver = state.raft.metrics();
        let metrics = receiver.borrow();
        let membership = metrics.membership_config.membership();
        (
            membership.voter_ids().collect(),
            membership.learner_ids().collect(),
        )
    }

    /// Runs `step` on the group's leader, following it as it moves.
    pub(super) async fn step_on_leader(
        &self,
        group: GroupId,
        step: MembershipStep,
    ) -> Result<StepReport, WriteError> {
        let started = Instant::now();
        let mut last_refusal = String::from("no leader");
        // For a group not hosted here, whom to ask next: a leader some host named, or
        // the hosts in turn (see `raft::remote`).
        let mut named_leader: Option<(NodeId, Node)> = None;
        let mut hosts = Vec::new().into_iter();
        for _ in 0..MAX_STEP_ATTEMPTS {
            // A replica here that knows no leader (one just started, to be added as a
            // learner) cannot say where the leader is: the hosts are asked then too.
            let local_leader = self.hosts(group).then(|| self.leader_of(group)).flatten();
            let target = if local_leader.is_some() {
                local_leader
            } else {
                named_leader.take().or_else(|| {
                    hosts.next().or_else(|| {
                        hosts = self.hosts_to_ask(group).into_iter();
                        hosts.next()
                    })
                })
            };
            let outcome = match target {
                Some((leader, _)) if leader == self.id() => self.run_step(group, &step).await,
                Some((leader, node)) => {
                    let request = NodeRequest::Membership {
                        group,
                        step: step.clone(),
                    };
                    match self.call_node(&node, request, step_timeout(&step)).await {
                        Ok(NodeResponse::Membership(outcome)) => outcome,
                        Ok(other) => Err(WriteError::Unknown(format!(
                            "node {leader} answered a membership step with {other:?}"
                        ))),
                        Err(error) => Err(WriteError::Retry(format!(
                            "the leader (node {leader}) did not answer: {error}"
                        ))),
                    }
                }
                None => Err(WriteError::Retry(format!("group {group} has no leader"))),
            };
            if let Err(WriteError::NotLeader(Some(leader))) = &outcome {
                named_leader = Some(leader.clone());
            }
            match outcome {
                Ok(action) => {
                    tracing::info!(group, %action, "membership step done");
                    return Ok(StepReport {
                        group,
                        action,
                        millis: started.elapsed().as_millis() as u64,
                    });
                }
                // Steps are idempotent, so even an unknown outcome is safe to retry.
                Err(WriteError::NotLeader(_)) => last_refusal = "the leader changed".into(),
                Err(WriteError::Retry(why)) | Err(WriteError::Unknown(why)) => last_refusal = why,
                Err(refused) => return Err(refused),
            }
            if started.elapsed() > LEADER_TIMEOUT + step_timeout(&step) {
                break;
            }
            tokio::time::sleep(STEP_RETRY_PAUSE).await;
        }
        Err(WriteError::Retry(format!(
            "group {group}: {step:?} did not complete: {last_refusal}"
        )))
    }

    /// As the group's leader: runs one step; returns what it did.
    pub(super) async fn run_step(
        &self,
        group: GroupId,
        step: &MembershipStep,
    ) -> Result<String, WriteError> {
        let state = self
            .group(group)
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        let raft = state.raft.clone();
        let _no_pipelining = state.membership_change();
        match step {
            MembershipStep::AddLearner { node_id, node } => {
                let (voters, _) = self.members(group);
                if voters.contains(node_id) {
                    return Ok(format!("node {node_id} is already a voter"));
                }
                let added = raft.add_learner(*node_id, node.clone(), true);
                match tokio::time::timeout(CATCH_UP_TIMEOUT, added).await {
                    Ok(Ok(_)) => Ok(format!("node {node_id} added as learner and caught up")),
                    Ok(Err(error)) => Err(change_failed(error)),
                    Err(_) => Err(WriteError::Unknown(format!(
                        "node {node_id} did not catch up within {} s",
                        CATCH_UP_TIMEOUT.as_secs()
                    ))),
                }
            }
            MembershipStep::Promote { node_id } => {
                let (voters, _) = self.members(group);
                if voters.contains(node_id) {
                    return Ok(format!("node {node_id} is already a voter"));
                }
                let change = ChangeMembers::AddVoterIds(BTreeSet::from([*node_id]));
                self.change(&raft, change).await?;
                Ok(format!("node {node_id} promoted to voter"))
            }
            MembershipStep::Remove { node_id } => {
                let (voters, learners) = self.members(group);
                if *node_id == self.id() && voters.contains(node_id) {
                    // Hand the leadership over first, so the group is not left without
                    // a leader until an election; the step then runs on the successor.
                    let successor = self.successor(group, &voters);
                    let Some(to) = successor else {
                        return Err(WriteError::Refused(format!(
                            "node {node_id} is the last voter of group {group}"
                        )));
                    };
                    self.transfer_here(group, to).await?;
                    return Err(WriteError::NotLeader(self.leader_of(group)));
                }
                if voters.contains(node_id) {
                    let change = ChangeMembers::RemoveVoters(BTreeSet::from([*node_id]));
                    self.change(&raft, change).await?;
                } else if !learners.contains(node_id) {
                    return Ok(format!("node {node_id} is not a member"));
                }
                let change = ChangeMembers::RemoveNodes(BTreeSet::from([*node_id]));
                self.change(&raft, change).await?;
                Ok(format!("node {node_id} removed"))
            }
            MembershipStep::TransferLeader { to } => self.transfer_here(group, *to).await,
        }
    }

    async fn change(
        &self,
        raft: &openraft::Raft<super::types::TypeConfig>,
        change: ChangeMembers<NodeId, Node>,
    ) -> Result<(), WriteError> {
        match tokio::time::timeout(LEADER_TIMEOUT, raft.change_membership(change, false)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(change_failed(error)),
            Err(_) => Err(WriteError::Unknown(
                "the membership change did not commit in time".into(),
            )),
        }
    }

    /// As the group's leader: hands leadership to `to` (see the module doc).
    async fn transfer_here(&self, group: GroupId, to: NodeId) -> Result<String, WriteError> {
        if to == self.id() {
            return Ok(format!("node {to} already leads"));
        }
        let (voters, _) = self.members(group);
        if !voters.contains(&to) {
            return Err(WriteError::Refused(format!(
                "node {to} is not a voter of group {group}"
            )));
        }
        let Some(target) = self.member_address(group, to) else {
            return Err(WriteError::Refused(format!("node {to} has no address")));
        };
        let state = self
            .group(group)
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        let deadline = Instant::now() + TRANSFER_TIMEOUT;
        let _hold = state.hold_writes(to);
        if group == METADATA_GROUP {
            // The successor starts above every committed reservation; what is left of
            // this leader's window must never be handed out after it.
            self.forget_oracle_window().await;
        }
        self.wait_caught_up(group, to, deadline).await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let request = NodeRequest::Campaign {
            group,
            within_millis: remaining.as_millis() as u64,
        };
        match self
            .call_node(&target, request, remaining + Duration::from_millis(200))
            .await
        {
            Ok(NodeResponse::Campaigned(Ok(()))) => {
                // Keep the hold until this node's own view shows it no longer leads, so
                // no lease read or timestamp slips out between the two.
                let _ = state
                    .raft
                    .wait(Some(TRANSFER_TIMEOUT))
                    .metrics(
                        |metrics| metrics.current_leader != Some(self.id()),
                        "stepped down after a transfer",
                    )
                    .await;
                Ok(format!("leadership moved to node {to}"))
            }
            Ok(NodeResponse::Campaigned(Err(why))) => Err(WriteError::Retry(why)),
            Ok(other) => Err(WriteError::Retry(format!("unexpected answer {other:?}"))),
            Err(error) => Err(WriteError::Retry(format!(
                "node {to} did not campaign: {error}"
            ))),
        }
    }

    /// Waits until `node_id` has replicated every entry of this leader's log.
    async fn wait_caught_up(
        &self,
        group: GroupId,
        node_id: NodeId,
        deadline: Instant,
    ) -> Result<(), WriteError> {
        let state = self
            .group(group)
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        loop {
            let caught_up = {
                let receiver = state.raft.metrics();
                let metrics = receiver.borrow();
                let matched = super::node::replicated_index(&metrics, node_id);
                matched.is_some() && matched == metrics.last_log_index
            };
            if caught_up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(WriteError::Retry(format!(
                    "node {node_id} did not catch up with group {group} in time"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// As the transfer's target: campaigns until this node leads `group` or time is up.
    pub(super) async fn campaign(&self, group: GroupId, within: Duration) -> Result<(), String> {
        let state = self.group(group).map_err(|error| error.to_string())?;
        let deadline = Instant::now() + within.min(TRANSFER_TIMEOUT);
        let round = self.settings().election_timeout;
        loop {
            state
                .raft
                .trigger()
                .elect()
                .await
                .map_err(|error| error.to_string())?;
            let wait = round.min(deadline.saturating_duration_since(Instant::now()));
            let won = state
                .raft
                .wait(Some(wait))
                .metrics(
                    |metrics| metrics.current_leader == Some(self.id()),
                    "leading after a transfer",
                )
                .await
                .is_ok();
            if won {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {} did not win the election for group {group} in time",
                    self.id()
                ));
            }
        }
    }
}

fn step_timeout(step: &MembershipStep) -> Duration {
    match step {
        MembershipStep::AddLearner { .. } => CATCH_UP_TIMEOUT + Duration::from_secs(5),
        MembershipStep::TransferLeader { .. } => TRANSFER_TIMEOUT + Duration::from_secs(1),
        _ => LEADER_TIMEOUT + Duration::from_secs(1),
    }
}

fn change_failed(error: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> WriteError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            WriteError::NotLeader(forward.leader_id.zip(forward.leader_node))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => {
            WriteError::Retry(error.to_string())
        }
        RaftError::Fatal(error) => WriteError::Unknown(error.to_string()),
    }
}
