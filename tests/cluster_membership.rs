//! Membership changes on a cluster of real processes, under a steady write load: a
//! fourth node joins (learner, catch-up, voter), leadership moves to it, a founding
//! node is removed and stopped. Processes are killed by guards, even when a test fails.

mod common;

use common::cluster::{count, is_outcome_unknown, is_retryable, Cluster};
use std::collections::BTreeSet;
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

fn ids(client: &mut postgres::Client) -> BTreeSet<i32> {
    client
        .query("SELECT id FROM load", &[])
        .expect("read ids")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// While a writer inserts through nodes 2 and 3: node 4 joins through node 1 (it is
/// ready only once it is a voter of every group, having caught up by snapshot: the
/// log it needs is purged), leadership of every group moves to node 4, then node 1 is
/// removed and stopped. Every acknowledged insert is on every remaining node, no
/// insert appears that was not sent or was refused, SHOW CLUSTER lists exactly nodes
/// 2, 3 and 4, and the replicas converge.
#[test]
fn membership_changes_under_write_load() {
    let mut cluster = Cluster::start_with(3, "snapshot_threshold = 100");
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
        std::thread::sleep(Duration::from_secs(2));
        let new_node = cluster.join_new_node(0);
        assert_eq!(new_node, 3);
        let moved = cluster
            .connect(1)
            .query("ALTER CLUSTER TRANSFER LEADER TO NODE 4", &[])
            .expect("transfer");
        assert_eq!(moved.len(), 2, "one step per group");
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
    for i in 1..4 {
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
        assert!(count(&mut cluster.connect(i), "load") >= written.acknowledged.len() as i64);
    }
    let rows = cluster.connect(3).query("SHOW CLUSTER", &[]).expect("show");
    let nodes: BTreeSet<i64> = rows.iter().map(|row| row.get("node_id")).collect();
    assert_eq!(nodes, BTreeSet::from([2, 3, 4]));
    cluster.assert_converged();
}
