//! Membership changes on a cluster of real processes, under a steady write load: a
//! fourth node joins (learner, catch-up, voter) and takes its share of the data
//! groups, leadership moves to it, a founding node is removed (its replicas moving to
//! the others first) and stopped; on a cluster with more nodes than the replication
//! factor, groups move as nodes join and leave. Processes are killed by guards, even
//! when a test fails.

mod common;

use common::cluster::{count, is_outcome_unknown, is_retryable, Cluster};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the writer saw: ids acknowledged, ids whose outcome is unknown.
#[derive(Default)]
struct Written {
    acknowledged: BTreeSet<i32>,
    unknown: BTreeSet<i32>,
}

/// Inserts increasing ids through the clients in turn until `stop`; 40001 errors
/// are retried with a new id, 40003 ones recorded as unknown, anything else fails the
/// test.
fn write_until(mut clients: Vec<postgres::Client>, stop: &AtomicBool) -> Written {
    let mut written = Written::default();
    let mut id = 0;
    let count = clients.len();
    while !stop.load(Ordering::Relaxed) && id < 100_000 {
        let client = &mut clients[id as usize % count];
        match client.execute("INSERT INTO load VALUES ($1)", &[&id]) {
            Ok(_) => {
                written.acknowledged.insert(id);
            }
            Err(error) if is_retryable(&error) => {}
            Err(error) if is_outcome_unknown(&error) => {
                written.unknown.insert(id);
            }
            Err(error) => panic!("insert {id}: {error}"),
        }
        id += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    written
}

/// Each data group's voters as SHOW GROUPS on node `via` reports them.
fn voters_by_group(cluster: &Cluster, via: usize) -> BTreeMap<i64, BTreeSet<i64>> {
    cluster
        .connect(via)
        .query("SHOW GROUPS", &[])
        .expect("show groups")
        .iter()
        .map(|row| {
            let voters: String = row.get("voters");
            let voters = voters
                .split(',')
                .map(|voter| voter.parse().expect("a voter id"))
                .collect();
            (row.get("group_id"), voters)
        })
        .collect()
}

/// How many of `placement`'s groups node id `node` is a voter of.
fn groups_of(placement: &BTreeMap<i64, BTreeSet<i64>>, node: i64) -> usize {
    placement
        .values()
        .filter(|voters| voters.contains(&node))
        .count()
}

/// Asserts that every acknowledged insert is on each of `nodes`, and nothing that was
/// never sent or was refused.
fn assert_written_everywhere(cluster: &Cluster, nodes: &[usize], written: &Written) {
    for &i in nodes {
        let present = ids(&mut cluster.connect(i));
        let lost: Vec<_> = written.acknowledged.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "node {}: acknowledged but lost: {lost:?}",
            i + 1
        );
        let from_nowhere: Vec<_> = present
            .iter()
            .filter(|id| !written.acknowledged.contains(id) && !written.unknown.contains(id))
            .collect();
        assert!(
            from_nowhere.is_empty(),
            "node {}: present but never acknowledged: {from_nowhere:?}",
            i + 1
        );
    }
}

/// Sets the flag when dropped, so a writer stops even when the test fails mid-way
/// (a scope waits for its threads before it passes a panic on).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn ids(client: &mut postgres::Client) -> BTreeSet<i32> {
    client
        .query("SELECT id FROM load", &[])
        .expect("read ids")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// While a writer inserts through nodes 2 and 3 (two data groups on three nodes):
/// node 4 joins through node 1 (it is ready once it is a voter of the metadata group
/// and has taken its share, one data group, having caught up by snapshot: the log it
/// needs is purged; every group keeps three voters), leadership of every group node 4
/// is a voter of moves to it, then node 1 is removed (its other group's replica moves
/// to node 4 first) and stopped. Every acknowledged insert is on every remaining node,
/// no insert appears that was not sent or was refused, SHOW CLUSTER lists exactly
/// nodes 2, 3 and 4, each group has them as voters, and the replicas converge.
#[test]
fn membership_changes_under_write_load() {
    let mut cluster = Cluster::start_with(3, "snapshot_threshold = 100\ndata_groups = 2");
    cluster
        .connect(0)
        .batch_execute("CREATE TABLE load (id INT PRIMARY KEY)")
        .expect("create");
    // Far more entries than a snapshot keeps behind it, so the newcomer needs one.
    let mut loader = cluster.connect(0);
    for id in 1..=400 {
        loader
            .execute("INSERT INTO load VALUES ($1)", &[&-id])
            .expect("preload");
    }
    let preloaded: BTreeSet<i32> = (1..=400).map(|id| -id).collect();
    let stop = AtomicBool::new(false);
    let clients = vec![cluster.connect(1), cluster.connect(2)];
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_until(clients, &stop));
        let _stop_writer = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_secs(2));
        let new_node = cluster.join_new_node(0);
        assert_eq!(new_node, 3);
        let placement = voters_by_group(&cluster, 1);
        assert!(
            placement.values().all(|voters| voters.len() == 3),
            "{placement:?}"
        );
        assert_eq!(groups_of(&placement, 4), 1, "node 4's share: {placement:?}");
        let moved = cluster
            .connect(1)
            .query("ALTER CLUSTER TRANSFER LEADER TO NODE 4", &[])
            .expect("transfer");
        assert_eq!(moved.len(), 2, "the metadata group and node 4's data group");
        std::thread::sleep(Duration::from_millis(500));
        let removed = cluster
            .connect(2)
            .query("ALTER CLUSTER REMOVE NODE 1", &[])
            .expect("remove");
        assert!(!removed.is_empty());
        cluster.kill(0);
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer")
    });
    let mut written = written;
    written.acknowledged.extend(preloaded);
    assert!(
        written.acknowledged.len() > 450,
        "too few writes succeeded: {}",
        written.acknowledged.len()
    );
    assert!(
        cluster.log_contains(3, "installed a snapshot from the leader"),
        "node 4 caught up without a snapshot"
    );
    assert_written_everywhere(&cluster, &[1, 2, 3], &written);
    for i in 1..4 {
        assert!(count(&mut cluster.connect(i), "load") >= written.acknowledged.len() as i64);
    }
    let rows = cluster.connect(3).query("SHOW CLUSTER", &[]).expect("show");
    let nodes: BTreeSet<i64> = rows.iter().map(|row| row.get("node_id")).collect();
    assert_eq!(nodes, BTreeSet::from([2, 3, 4]));
    let placement = voters_by_group(&cluster, 3);
    assert!(
        placement
            .values()
            .all(|voters| voters == &BTreeSet::from([2, 3, 4])),
        "{placement:?}"
    );
    cluster.assert_converged();
}

/// Four nodes, four data groups of three voters (each node hosts three), a table in
/// eight shards over them: while a writer inserts through nodes 1 and 3, a fifth node
/// joins and takes its share (two groups; every group keeps three voters; groups per
/// node within one of each other), then node 2 is removed: its replicas move to the
/// others before it leaves (every group three voters, none on node 2, which retires
/// its replicas). Every acknowledged insert is readable through every remaining node,
/// and the replicas converge.
#[test]
fn groups_move_as_nodes_join_and_leave() {
    let mut cluster = Cluster::start_with(4, "data_groups = 4\nsnapshot_threshold = 100");
    cluster
        .connect(0)
        .batch_execute("CREATE TABLE load (id INT PRIMARY KEY) WITH (shards = 8)")
        .expect("create");
    let mut loader = cluster.connect(0);
    for id in 1..=300 {
        loader
            .execute("INSERT INTO load VALUES ($1)", &[&-id])
            .expect("preload");
    }
    let before = voters_by_group(&cluster, 0);
    assert!(
        before.values().all(|voters| voters.len() == 3),
        "{before:?}"
    );
    let stop = AtomicBool::new(false);
    let clients = vec![cluster.connect(0), cluster.connect(2)];
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_until(clients, &stop));
        let _stop_writer = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(cluster.join_new_node(0), 4);
        let joined = voters_by_group(&cluster, 4);
        assert!(
            joined.values().all(|voters| voters.len() == 3),
            "{joined:?}"
        );
        let loads: Vec<usize> = (1..=5).map(|node| groups_of(&joined, node)).collect();
        assert_eq!(loads[4], 2, "the new node's share: {joined:?}");
        assert!(
            loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
            "{loads:?}"
        );
        cluster
            .connect(0)
            .query("ALTER CLUSTER REMOVE NODE 2", &[])
            .expect("remove");
        let left = voters_by_group(&cluster, 0);
        assert!(
            left.values()
                .all(|voters| voters.len() == 3 && !voters.contains(&2)),
            "{left:?}"
        );
        assert!(
            cluster.log_contains(1, "retired this node's replica of the group"),
            "node 2 kept its replicas"
        );
        cluster.kill(1);
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer")
    });
    let mut written = written;
    written.acknowledged.extend((1..=300).map(|id| -id));
    assert!(
        written.acknowledged.len() > 350,
        "too few writes succeeded: {}",
        written.acknowledged.len()
    );
    assert_written_everywhere(&cluster, &[0, 2, 3, 4], &written);
    cluster.assert_converged();
}
