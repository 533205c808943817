//! Placement: which nodes replicate each data group.
//!
//! With more nodes than the replication factor (RF), data partitions: data group *g*'s
//! voters are the RF members that follow position (g − 1) on the ring of the initial
//! members in id order, and the first of them is its preferred leader. So with N
//! nodes and N groups each node hosts RF groups and leads one, and losing any node
//! loses one voter of RF groups — each keeps a quorum while RF ≥ 3. The metadata
//! group (oracle, catalog, membership) stays on every node: it is small, and every
//! node plans against the catalog and asks the oracle.
//!
//! Why a ring over the initial members rather than a placement chosen and stored by the
//! metadata group: the voters are fixed when the groups are initialized, before any
//! group can commit anything, so every member must compute the same answer on its own;
//! the ring needs no agreement beyond the member list every node starts with. After
//! that, a group's membership (in its own log) is the truth, and nodes that do not host
//! a group find it through the members (see `raft::remote`), and replicas move between
//! nodes as they join and leave (see `raft::rebalance`).

use super::types::{GroupId, NodeId, METADATA_GROUP};
use crate::shard::FIRST_SHARD_GROUP;

/// The replication factor when none is configured: a group survives one lost voter.
pub const DEFAULT_REPLICATION_FACTOR: usize = 3;
/// Largest replication factor accepted: every write waits for a majority of its
/// voters, and more than seven costs latency for no useful durability.
pub const MAX_REPLICATION_FACTOR: usize = 7;

/// The voters `group` starts with, given every initial member's id in ascending order:
/// all of them for the metadata group, otherwise `replication_factor` of them (all when
/// there are no more), following the group's position on the ring.
pub fn initial_voters(
    group: GroupId,
    members: &[NodeId],
    replication_factor: usize,
) -> Vec<NodeId> {
    if group == METADATA_GROUP || members.len() <= replication_factor {
        return members.to_vec();
    }
    let start = ring_position(group, members.len());
    (0..replication_factor)
        .map(|step| members[(start + step) % members.len()])
        .collect()
}

/// The member that should lead data group `group` among `members` (ascending ids):
/// the one at the group's ring position, so leaderships spread one group per node.
pub fn preferred_leader(group: GroupId, members: &[NodeId]) -> Option<NodeId> {
    members.get(ring_position(group, members.len())).copied()
}

/// Position of data group `group` on a ring of `members` nodes.
fn ring_position(group: GroupId, members: usize) -> usize {
    let offset = usize::try_from(group.saturating_sub(FIRST_SHARD_GROUP)).unwrap_or(0);
    offset % members.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five nodes, five groups, RF 3: each group on three distinct nodes, each node in
    /// exactly three groups and the preferred leader of one; the metadata group
    /// everywhere; with no more nodes than RF every group is everywhere.
    #[test]
    fn groups_spread_over_the_ring() {
        let members = [1, 2, 3, 4, 5];
        let mut hosted = [0usize; 6];
        let mut led = [0usize; 6];
        for group in 1..=5 {
            let voters = initial_voters(group, &members, 3);
            let mut distinct = voters.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "group {group}: {voters:?}");
            for voter in voters.iter() {
                hosted[*voter as usize] += 1;
            }
            let leader = preferred_leader(group, &members).unwrap();
            assert!(voters.contains(&leader));
            led[leader as usize] += 1;
        }
        assert_eq!(&hosted[1..], &[3, 3, 3, 3, 3]);
        assert_eq!(&led[1..], &[1, 1, 1, 1, 1]);
        assert_eq!(
            initial_voters(METADATA_GROUP, &members, 3),
            members.to_vec()
        );
        assert_eq!(initial_voters(2, &[1, 2, 3], 3), vec![1, 2, 3]);
        assert_eq!(initial_voters(4, &[7, 9], 3), vec![7, 9]);
    }
}
