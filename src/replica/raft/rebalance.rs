//! Rebalancing: moving data group replicas between nodes when a node joins or leaves,
//! so every group keeps its replication factor and every node carries about its share.
//!
//! The plan ([`plan_moves`]) is a pure function of each group's voters, the nodes that
//! stay, and the replication factor: first every voter on a node that is leaving is
//! replaced by the least loaded node not yet in the group; then groups short of the
//! factor gain a voter and groups above it lose one; then, while the most loaded node
//! carries two groups more than the least loaded, one of its groups moves over. Ties
//! break by id, so the same cluster gives the same plan wherever it is computed. A
//! member that does not answer is never given a replica, and its own stay unless it is
//! the node leaving (a node down for a restart is not emptied by someone else's join).
//!
//! A move runs as membership steps on the group's leader (see `membership`): the new
//! node starts an empty replica ([`RaftNode::host_group`]), joins as a learner and
//! catches up (by snapshot when the log it needs is purged), is promoted to voter;
//! then leadership leaves the old node if it led, the old node is removed, and told
//! to retire its replica ([`RaftNode::retire_group`]). The group has RF voters before
//! the move and RF + 1 during it, never fewer, so a move loses no durability; each
//! step is idempotent, so a move cut short is finished by running the command again.
//!
//! Why the node running the command plans from every node's report rather than from
//! a placement stored in the metadata group: a group's own log is the truth about its
//! membership, and reading it from the group's leader needs nothing kept in step with
//! it. The plan is recomputed from those reports each time, so it always starts from
//! what the groups really are.

use super::membership::{MembershipStep, StepReport};
use super::node::{NodeRequest, NodeResponse, NodeStatus, RaftNode, WriteError};
use super::types::{GroupId, Node, NodeId, METADATA_GROUP};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Longest wait for a node to start (or retire) a replica when asked.
const HOSTING_TIMEOUT: Duration = Duration::from_secs(30);
/// Most moves one rebalance makes (each is a full catch-up of a group): a bound on the
/// work of one command, far above what any cluster of at most 16 groups needs.
const MOST_MOVES: usize = 256;

/// One replica move of a data group: a voter added, a voter removed, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// The group.
    pub group: GroupId,
    /// The node that gains a replica.
    pub add: Option<NodeId>,
    /// The node that loses its replica.
    pub remove: Option<NodeId>,
}

/// The moves that bring every group in `voters` to `factor` voters (or every node in
/// `nodes`, when there are fewer) on `nodes` only, with the groups per node within one
/// of each other (see the module doc). Nodes in `unreachable` (members that did not
/// answer) are never given a replica: a move there would wait on a node that may be
/// down; their own replicas stay unless they are leaving.
pub fn plan_moves(
    voters: &BTreeMap<GroupId, BTreeSet<NodeId>>,
    nodes: &BTreeSet<NodeId>,
    unreachable: &BTreeSet<NodeId>,
    factor: usize,
) -> Vec<Move> {
    let mut placed = voters.clone();
    let mut moves = Vec::new();
    let wanted = factor.min(nodes.len()).max(1);
    let load = |placed: &BTreeMap<GroupId, BTreeSet<NodeId>>, node: NodeId| {
        placed
            .values()
            .filter(|group| group.contains(&node))
            .count()
    };
    let targets: BTreeSet<NodeId> = nodes.difference(unreachable).copied().collect();
    let least_loaded_outside = |placed: &BTreeMap<GroupId, BTreeSet<NodeId>>, group: GroupId| {
        targets
            .iter()
            .copied()
            .filter(|node| !placed[&group].contains(node))
            .min_by_key(|node| (load(placed, *node), *node))
    };
    let groups: Vec<GroupId> = placed.keys().copied().collect();
    // Voters on nodes that leave.
    for &group in &groups {
        let leaving: Vec<NodeId> = placed[&group]
            .iter()
            .copied()
            .filter(|voter| !nodes.contains(voter))
            .collect();
        for gone in leaving {
            let add = least_loaded_outside(&placed, group);
            apply(&mut placed, &mut moves, group, add, Some(gone));
        }
    }
    // Groups short of the factor, or above it.
    for &group in &groups {
        while placed[&group].len() < wanted {
            let Some(add) = least_loaded_outside(&placed, group) else {
                break;
            };
            apply(&mut placed, &mut moves, group, Some(add), None);
        }
        while placed[&group].len() > wanted {
            let remove = placed[&group]
                .iter()
                .copied()
                .max_by_key(|node| (load(&placed, *node), std::cmp::Reverse(*node)));
            apply(&mut placed, &mut moves, group, None, remove);
        }
    }
    // Even out the groups per node.
    while moves.len() < MOST_MOVES {
        let by_load = |node: &NodeId| (load(&placed, *node), *node);
        let (Some(most), Some(least)) = (
            targets
                .iter()
                .copied()
                .max_by_key(|node| (load(&placed, *node), std::cmp::Reverse(*node))),
            targets.iter().copied().min_by_key(by_load),
        ) else {
            break;
        };
        if load(&placed, most) <= load(&placed, least) + 1 {
            break;
        }
        let movable = groups
            .iter()
            .copied()
            .find(|group| placed[group].contains(&most) && !placed[group].contains(&least));
        let Some(group) = movable else {
            break;
        };
        apply(&mut placed, &mut moves, group, Some(least), Some(most));
    }
    moves
}

/// Records a move in the plan and in the placement it leads to.
fn apply(
    placed: &mut BTreeMap<GroupId, BTreeSet<NodeId>>,
    moves: &mut Vec<Move>,
    group: GroupId,
    add: Option<NodeId>,
    remove: Option<NodeId>,
) {
    if add.is_none() && remove.is_none() {
        return;
    }
    if let Some(voters) = placed.get_mut(&group) {
        voters.extend(add);
        if let Some(remove) = remove {
            voters.remove(&remove);
        }
    }
    moves.push(Move { group, add, remove });
}

/// A data group as its leader (or, leaderless, its most advanced replica) reports it.
#[derive(Clone, Debug)]
pub(super) struct GroupView {
    /// Its voters.
    pub(super) voters: BTreeSet<NodeId>,
    /// Its learners.
    pub(super) learners: BTreeSet<NodeId>,
    /// Whether the report is a leader's whose membership is committed: then a node it
    /// does not list is certainly out of the group.
    pub(super) settled: bool,
}

impl RaftNode {
    /// Moves data group replicas so that every group has its replication factor of
    /// voters on the metadata group's voters other than `leaving`, spread evenly (see
    /// the module doc); returns what each step did. Run after a node joins the
    /// metadata group, and before one leaves it.
    pub async fn rebalance(&self, leaving: Option<NodeId>) -> Result<Vec<StepReport>, WriteError> {
        let (members, _) = self.members(METADATA_GROUP);
        let nodes: BTreeSet<NodeId> = members
            .into_iter()
            .filter(|node| Some(*node) != leaving)
            .collect();
        let statuses = self.cluster_status().await;
        let views = group_views(&statuses, self.data_group_count())?;
        let voters = views
            .iter()
            .map(|(group, view)| (*group, view.voters.clone()))
            .collect();
        let addresses = addresses(&statuses);
        let unreachable: BTreeSet<NodeId> = statuses
            .iter()
            .filter(|status| status.groups.is_empty())
            .map(|status| status.node_id)
            .collect();
        let moves = plan_moves(&voters, &nodes, &unreachable, self.replication_factor());
        tracing::info!(?leaving, moves = moves.len(), "rebalancing data groups");
        let mut reports = Vec::new();
        for planned in &moves {
            reports.extend(self.move_replica(planned, &addresses).await?);
        }
        Ok(reports)
    }

    /// Runs one move (see the module doc): the new replica in first, the old one out
    /// (a leader asked to remove itself hands its leadership over first).
    async fn move_replica(
        &self,
        planned: &Move,
        addresses: &BTreeMap<NodeId, Node>,
    ) -> Result<Vec<StepReport>, WriteError> {
        let group = planned.group;
        let mut reports = Vec::new();
        if let Some(add) = planned.add {
            let node = addresses
                .get(&add)
                .cloned()
                .ok_or_else(|| WriteError::Refused(format!("node {add} has no known address")))?;
            reports.push(self.hosting_step(add, &node, group, true).await?);
            let step = MembershipStep::AddLearner {
                node_id: add,
                node: node.clone(),
            };
            reports.push(self.step_on_leader(group, step).await?);
            let step = MembershipStep::Promote { node_id: add };
            reports.push(self.step_on_leader(group, step).await?);
        }
        if let Some(remove) = planned.remove {
            let step = MembershipStep::Remove { node_id: remove };
            reports.push(self.step_on_leader(group, step).await?);
            match addresses.get(&remove) {
                Some(node) => match self.hosting_step(remove, node, group, false).await {
                    Ok(report) => reports.push(report),
                    // Removed from the group already; it notices on its own later.
                    Err(error) => tracing::warn!(
                        group,
                        node = remove,
                        ?error,
                        "a removed replica was not retired; its node retires it later"
                    ),
                },
                None => tracing::warn!(group, node = remove, "a removed node has no address"),
            }
        }
        Ok(reports)
    }

    /// Asks `node_id` to start (`host`) or retire its replica of `group`.
    async fn hosting_step(
        &self,
        node_id: NodeId,
        node: &Node,
        group: GroupId,
        host: bool,
    ) -> Result<StepReport, WriteError> {
        let started = Instant::now();
        let action = if node_id == self.id() {
            if host {
                self.host_group(group).await?
            } else {
                self.retire_group(group).await?
            }
        } else {
            let request = if host {
                NodeRequest::HostGroup { group }
            } else {
                NodeRequest::RetireGroup { group }
            };
            match self.call_node(node, request, HOSTING_TIMEOUT).await {
                Ok(NodeResponse::Hosting(outcome)) => outcome?,
                Ok(other) => {
                    return Err(WriteError::Retry(format!(
                        "node {node_id} answered {other:?}"
                    )))
                }
                Err(error) => {
                    return Err(WriteError::Retry(format!(
                        "node {node_id} did not answer: {error}"
                    )))
                }
            }
        };
        Ok(StepReport {
            group,
            action,
            millis: started.elapsed().as_millis() as u64,
        })
    }
}

/// Each data group's membership, from the reports of every node (see [`group_view`]).
/// Refused when a group has no report at all (no node that hosts it answered), as
/// moving it blind could take its last replicas.
fn group_views(
    statuses: &[NodeStatus],
    data_groups: u64,
) -> Result<BTreeMap<GroupId, GroupView>, WriteError> {
    let first = crate::shard::FIRST_SHARD_GROUP;
    (first..first + data_groups)
        .map(|group| match group_view(statuses, group) {
            Some(view) => Ok((group, view)),
            None => Err(WriteError::Retry(format!(
                "no node hosting group {group} answered; the groups are not moved blind"
            ))),
        })
        .collect()
}

/// `group`'s membership as the best report has it: a leader's in the highest term, or
/// else the one with the highest term and log.
pub(super) fn group_view(statuses: &[NodeStatus], group: GroupId) -> Option<GroupView> {
    let best = statuses
        .iter()
        .flat_map(|status| status.groups.iter())
        .filter(|report| report.group == group)
        .max_by_key(|report| (report.term, report.role == "leader", report.last_log))?;
    let leads = best.role == "leader";
    Some(GroupView {
        voters: best.voters.iter().copied().collect(),
        learners: best.learners.iter().copied().collect(),
        settled: leads && best.membership_log <= best.committed,
    })
}

/// Every node's Raft and SQL address, from the reports.
fn addresses(statuses: &[NodeStatus]) -> BTreeMap<NodeId, Node> {
    statuses
        .iter()
        .map(|status| {
            let node = Node {
                raft_address: status.raft_address.clone(),
                sql_address: status.sql_address.clone(),
            };
            (status.node_id, node)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    fn none() -> BTreeSet<NodeId> {
        BTreeSet::new()
    }

    fn placed_after(
        voters: &BTreeMap<GroupId, BTreeSet<NodeId>>,
        moves: &[Move],
    ) -> BTreeMap<GroupId, BTreeSet<NodeId>> {
        let mut placed = voters.clone();
        for planned in moves {
            let group = placed.get_mut(&planned.group).unwrap();
            group.extend(planned.add);
            if let Some(remove) = planned.remove {
                assert!(group.remove(&remove), "{planned:?} removes a non-voter");
            }
        }
        placed
    }

    fn loads(placed: &BTreeMap<GroupId, BTreeSet<NodeId>>, nodes: &BTreeSet<NodeId>) -> Vec<usize> {
        nodes
            .iter()
            .map(|node| placed.values().filter(|group| group.contains(node)).count())
            .collect()
    }

    /// A fifth node joining four nodes with four groups of three voters takes its
    /// share: every group keeps three voters, and the groups per node differ by at
    /// most one (12 replicas on 5 nodes: 3, 3, 2, 2, 2).
    #[test]
    fn a_joining_node_takes_its_share() {
        let voters = BTreeMap::from([
            (1, set(&[1, 2, 3])),
            (2, set(&[2, 3, 4])),
            (3, set(&[3, 4, 1])),
            (4, set(&[4, 1, 2])),
        ]);
        let nodes = set(&[1, 2, 3, 4, 5]);
        let moves = plan_moves(&voters, &nodes, &none(), 3);
        let placed = placed_after(&voters, &moves);
        assert!(placed.values().all(|group| group.len() == 3), "{placed:?}");
        let loads = loads(&placed, &nodes);
        assert!(
            loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
            "{loads:?}"
        );
        assert_eq!(loads[4], 2, "{placed:?}");
        assert!(moves.iter().all(|m| m.add == Some(5) && m.remove.is_some()));
    }

    /// A node leaving hands every replica it has to nodes outside the group; no group
    /// is ever left with a voter on the leaving node or fewer than three voters.
    #[test]
    fn a_leaving_node_hands_its_replicas_over() {
        let voters = BTreeMap::from([
            (1, set(&[1, 2, 3])),
            (2, set(&[2, 3, 4])),
            (3, set(&[3, 4, 5])),
            (4, set(&[4, 5, 1])),
            (5, set(&[5, 1, 2])),
        ]);
        let nodes = set(&[1, 2, 3, 4]);
        let moves = plan_moves(&voters, &nodes, &none(), 3);
        let placed = placed_after(&voters, &moves);
        assert!(placed
            .values()
            .all(|group| group.len() == 3 && !group.contains(&5)));
        let loads = loads(&placed, &nodes);
        assert!(
            loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
            "{loads:?}"
        );
        // Every move that removes a voter adds another first.
        assert!(moves.iter().all(|m| m.remove.is_none() || m.add.is_some()));
    }

    /// With no more nodes than the factor every node hosts every group: a fourth node
    /// joining three-voter groups on three nodes gets the share the even spread asks
    /// (a group of three voters moves one over), and a group of four (an old cluster
    /// that every join used to add a voter to) goes back to three.
    #[test]
    fn groups_keep_the_factor() {
        let voters = BTreeMap::from([(1, set(&[1, 2, 3])), (2, set(&[1, 2, 3]))]);
        let nodes = set(&[1, 2, 3, 4]);
        let moves = plan_moves(&voters, &nodes, &none(), 3);
        let placed = placed_after(&voters, &moves);
        assert!(placed.values().all(|group| group.len() == 3));
        assert_eq!(loads(&placed, &nodes), vec![1, 2, 2, 1]);
        let wide = BTreeMap::from([(1, set(&[1, 2, 3, 4]))]);
        let moves = plan_moves(&wide, &nodes, &none(), 3);
        assert_eq!(moves.len(), 1);
        assert_eq!(placed_after(&wide, &moves)[&1].len(), 3);
        // Already balanced: nothing moves.
        assert!(plan_moves(&voters, &set(&[1, 2, 3]), &none(), 3).is_empty());
        // Fewer nodes than the factor: every node, no more.
        let two = plan_moves(&voters, &set(&[1, 2]), &none(), 3);
        let placed = placed_after(&voters, &two);
        assert!(placed.values().all(|group| group == &set(&[1, 2])));
    }

    /// A node that did not answer is given nothing: a leaving node's replicas go to the
    /// nodes that answered, and the spread is evened out among them only.
    #[test]
    fn an_unreachable_node_is_given_nothing() {
        let voters = BTreeMap::from([
            (1, set(&[1, 2, 3])),
            (2, set(&[2, 3, 4])),
            (3, set(&[3, 4, 1])),
            (4, set(&[4, 1, 2])),
        ]);
        let moves = plan_moves(&voters, &set(&[1, 2, 3, 4, 5, 6]), &set(&[6]), 3);
        assert!(moves.iter().all(|m| m.add != Some(6)), "{moves:?}");
        assert!(moves.iter().any(|m| m.add == Some(5)), "{moves:?}");
        let moves = plan_moves(&voters, &set(&[2, 3, 4, 5]), &set(&[5]), 3);
        let placed = placed_after(&voters, &moves);
        assert!(moves.iter().all(|m| m.add != Some(5)), "{moves:?}");
        assert!(
            placed.values().all(|group| !group.contains(&1)),
            "{placed:?}"
        );
    }
}
