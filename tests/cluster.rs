//! Whole-cluster behaviour: the real `tessera` binary as separate processes on
//! 127.0.0.1, 127.0.0.2 and 127.0.0.3, talked to through the PostgreSQL protocol:
//! replication, concurrent writes, a leader killed, every node killed, a node far
//! behind, convergence.
//! Every process is killed when its guard drops, even when a test fails.

mod common;

use common::cluster::{count, is_outcome_unknown, is_retryable, Cluster};
use std::time::{Duration, Instant};

/// DDL and DML made through any node reach every node: a table created on one node,
/// rows inserted through the others, read back through each at the default
/// (linearizable) level; SHOW CLUSTER lists every node with one leader per group.
#[test]
fn replicates_ddl_and_dml_through_any_node() {
    let cluster = Cluster::start(3);
    cluster
        .connect(1)
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v)")
        .expect("create");
    for i in 0..3 {
        let mut client = cluster.connect(i);
        for n in 0..10 {
            let id = (i * 10 + n) as i32;
            client
                .execute("INSERT INTO t VALUES ($1, $2)", &[&id, &format!("v{id}")])
                .expect("insert");
        }
    }
    for i in 0..3 {
        let mut client = cluster.connect(i);
        assert_eq!(count(&mut client, "t"), 30, "node {}", i + 1);
        let row = client
            .query_one("SELECT id FROM t WHERE v = 'v17'", &[])
            .expect("index read");
        assert_eq!(row.get::<_, i32>(0), 17);
    }
    let error = cluster
        .connect(2)
        .execute("INSERT INTO t VALUES (1, 'again')", &[])
        .expect_err("duplicate key");
    assert_eq!(
        error.code(),
        Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    cluster.assert_converged();
    let rows = cluster.connect(0).query("SHOW CLUSTER", &[]).expect("show");
    assert_eq!(rows.len(), 6, "three nodes, two groups each");
    for group in [0i64, 1] {
        let leaders = rows
            .iter()
            .filter(|row| row.get::<_, Option<i64>>("group_id") == Some(group))
            .filter(|row| row.get::<_, String>("role") == "leader")
            .count();
        assert_eq!(leaders, 1, "group {group}");
    }
}

/// Concurrent writes through every node, which the leader batches into shared log
/// entries, keep their own outcomes: increments of one row that conflict fail alone
/// (40001, nothing done) and the row ends at exactly the number acknowledged; of two
/// inserts of one key, exactly one succeeds and the other is refused (a unique
/// violation, or a conflict and then a unique violation when tried again).
#[test]
fn concurrent_writes_keep_their_own_outcomes() {
    const THREADS: usize = 6;
    const ROUNDS: usize = 20;
    let cluster = Cluster::start(3);
    cluster
        .connect(0)
        .batch_execute(
            "CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL);
             INSERT INTO counter VALUES (1, 0);
             CREATE TABLE claims (id INT PRIMARY KEY, owner INT NOT NULL)",
        )
        .expect("schema");
    let outcomes: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let mut client = cluster.connect(thread % 3);
                scope.spawn(move || {
                    let (mut increments, mut claims) = (0, 0);
                    for round in 0..ROUNDS {
                        match client.execute("UPDATE counter SET n = n + 1 WHERE id = 1", &[]) {
                            Ok(_) => increments += 1,
                            Err(error) => assert!(is_retryable(&error), "{error:?}"),
                        }
                        // Threads 2k and 2k+1 race for the same keys.
                        let key = ((thread / 2) * ROUNDS + round) as i32;
                        let claim = "INSERT INTO claims VALUES ($1, $2)";
                        // A conflict with the rival's concurrent insert (40001) did
                        // nothing: try again until one of the two decisive answers.
                        for attempt in 0.. {
                            assert!(attempt < 50, "key {key}: 50 conflicts in a row");
                            match client.execute(claim, &[&key, &(thread as i32)]) {
                                Ok(_) => claims += 1,
                                Err(error) if is_retryable(&error) => continue,
                                Err(error) => assert_eq!(
                                    error.code(),
                                    Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
                                    "{error:?}"
                                ),
                            }
                            break;
                        }
                    }
                    (increments, claims)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let increments: usize = outcomes.iter().map(|(increments, _)| increments).sum();
    let claims: usize = outcomes.iter().map(|(_, claims)| claims).sum();
    assert!(increments > 0, "no increment succeeded");
    let mut client = cluster.connect(1);
    let n: i32 = client
        .query_one("SELECT n FROM counter WHERE id = 1", &[])
        .expect("counter")
        .get(0);
    assert_eq!(n as usize, increments, "acknowledged increments vs the row");
    assert_eq!(
        claims,
        THREADS / 2 * ROUNDS,
        "each key claimed exactly once"
    );
    assert_eq!(count(&mut client, "claims") as usize, claims);
    cluster.assert_converged();
}

/// An autocommit INSERT of constants runs on its node's snapshot unconfirmed (no read
/// round) and must still answer as a fresh snapshot would: right after a change made
/// through the leader, an INSERT through a follower (which may not have applied it
/// yet) sees a new table, a deleted key as free and an inserted key as taken.
#[test]
fn inserts_through_a_follower_answer_as_of_the_latest_state() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader(1, 0).expect("a leader");
    let follower = (leader + 1) % 3;
    let mut through_leader = cluster.connect(leader);
    let mut through_follower = cluster.connect(follower);
    for round in 0..40 {
        let table = format!("fresh{round}");
        through_leader
            .batch_execute(&format!(
                "CREATE TABLE {table} (id INT PRIMARY KEY); INSERT INTO {table} VALUES (1)"
            ))
            .expect("create through the leader");
        let insert = format!("INSERT INTO {table} VALUES ($1)");
        // The table exists and key 1 is taken, as of before this statement began.
        let error = through_follower
            .execute(&insert, &[&1])
            .expect_err("key 1 is taken");
        assert_eq!(
            error.code(),
            Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            "round {round}: {error}"
        );
        through_leader
            .execute(&format!("DELETE FROM {table} WHERE id = 1"), &[])
            .expect("delete through the leader");
        through_follower
            .execute(&insert, &[&1])
            .unwrap_or_else(|error| panic!("round {round}: key 1 is free again: {error}"));
    }
    cluster.assert_converged();
}

/// Writes and transaction blocks start on their node's snapshot unconfirmed and confirm
/// it only when they read what their commit does not check: right after a change made
/// through the leader, a follower (which may not have applied it yet) must still answer
/// as of the latest state — an UPDATE whose filter matches only the new value finds the
/// row, a SELECT in a block sees the new value, a full scan counts the new row, and a
/// block that updates the row it reads commits the increment on the new value.
#[test]
fn writes_and_blocks_through_a_follower_answer_as_of_the_latest_state() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader(1, 0).expect("a leader");
    let follower = (leader + 1) % 3;
    let mut through_leader = cluster.connect(leader);
    let mut through_follower = cluster.connect(follower);
    through_leader
        .batch_execute(
            "CREATE TABLE cell (k INT PRIMARY KEY, v INT); INSERT INTO cell VALUES (1, 0)",
        )
        .expect("create through the leader");
    let mut committed = 0;
    for round in 1..=40i32 {
        let value = round * 10;
        through_leader
            .execute("UPDATE cell SET v = $1 WHERE k = 1", &[&value])
            .expect("update through the leader");
        let matched = through_follower
            .execute("UPDATE cell SET v = v WHERE k = 1 AND v = $1", &[&value])
            .unwrap_or_else(|error| panic!("round {round}: autocommit update: {error}"));
        assert_eq!(matched, 1, "round {round}: the update saw an old value");

        through_leader
            .execute("UPDATE cell SET v = $1 WHERE k = 1", &[&(value + 1)])
            .expect("update through the leader");
        let seen: i32 = read_in_block(&mut through_follower, "SELECT v FROM cell WHERE k = 1");
        assert_eq!(
            seen,
            value + 1,
            "round {round}: the block read an old value"
        );

        through_leader
            .execute("INSERT INTO cell VALUES ($1, 0)", &[&(1000 + round)])
            .expect("insert through the leader");
        let rows: i64 = read_in_block(&mut through_follower, "SELECT count(*) FROM cell");
        assert_eq!(
            rows,
            1 + i64::from(round),
            "round {round}: the scan missed a row"
        );

        through_leader
            .execute("UPDATE cell SET v = $1 WHERE k = 1", &[&(value + 2)])
            .expect("update through the leader");
        let mut block = through_follower.transaction().expect("begin");
        block
            .execute("UPDATE cell SET v = v + 1 WHERE k = 1", &[])
            .expect("increment in a block");
        let after: i32 = block
            .query_one("SELECT v FROM cell WHERE k = 1", &[])
            .expect("read back in a block")
            .get(0);
        match block.commit() {
            Ok(()) => {
                assert_eq!(after, value + 3, "round {round}: incremented an old value");
                committed += 1;
            }
            // An old snapshot may only cost a retryable refusal, never a wrong answer.
            Err(error) => assert_eq!(
                error.code(),
                Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE),
                "round {round}: {error}"
            ),
        }
    }
    assert!(
        committed > 0,
        "no increment committed: the check above never ran"
    );
    eprintln!("{committed} of 40 increments committed on the follower's snapshot");
    cluster.assert_converged();
}

/// Runs one query in a read-only transaction block; returns the first column of its
/// one row.
fn read_in_block<T: for<'a> postgres::types::FromSql<'a>>(
    client: &mut postgres::Client,
    query: &str,
) -> T {
    let mut block = client.transaction().expect("begin");
    let value = block.query_one(query, &[]).expect(query).get(0);
    block.commit().expect("commit a read-only block");
    value
}

/// Killing the data group's leader (SIGKILL): the others elect a new leader, writes
/// resume within the target bound, the metadata leadership joins the new data leader,
/// and every acknowledged write is still there, on the survivors and on the killed
/// node once it is restarted from its directory.
#[test]
fn writes_resume_after_the_leader_is_killed() {
    let mut cluster = Cluster::start(3);
    cluster
        .connect(0)
        .batch_execute("CREATE TABLE acked (id INT PRIMARY KEY)")
        .expect("create");
    let mut acknowledged = 0;
    for id in 0..20 {
        cluster
            .connect(id % 3)
            .execute("INSERT INTO acked VALUES ($1)", &[&(id as i32)])
            .expect("insert");
        acknowledged += 1;
    }
    let leader = cluster.leader(1, 0).expect("a leader");
    let survivor = (leader + 1) % 3;
    cluster.kill(leader);
    let killed_at = Instant::now();
    let mut client = cluster.connect(survivor);
    let mut next = 1000;
    let mut unknown = 0;
    loop {
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "writes did not resume within 15 s"
        );
        match client.execute("INSERT INTO acked VALUES ($1)", &[&next]) {
            Ok(_) => {
                acknowledged += 1;
                break;
            }
            Err(error) => {
                // "Retry" (certainly nothing done) or, for a write already on its way
                // to the leader when it died, "outcome unknown"; never anything else.
                assert!(
                    is_retryable(&error) || is_outcome_unknown(&error),
                    "{error}"
                );
                if is_outcome_unknown(&error) {
                    unknown += 1;
                    client = cluster.connect(survivor);
                }
                next += 1;
            }
        }
    }
    let resumed_after = killed_at.elapsed();
    eprintln!(
        "writes resumed {} ms after the kill",
        resumed_after.as_millis()
    );
    assert!(resumed_after < Duration::from_secs(3), "{resumed_after:?}");
    // The oracle's leadership follows the new data leader, wherever each was elected.
    let both = cluster.wait_for_co_located_leaders(survivor);
    assert_ne!(both, leader);
    let expected = acknowledged..=acknowledged + unknown;
    for i in 0..3 {
        if i == leader {
            continue;
        }
        assert!(expected.contains(&count(&mut cluster.connect(i), "acked")));
    }
    cluster.launch(leader);
    let mut restarted = cluster.connect(leader);
    assert!(expected.contains(&count(&mut restarted, "acked")));
    cluster.assert_converged();
}

/// Every node SIGKILLed at once, then restarted from its directory: every acknowledged
/// write is there, the cluster elects leaders and takes writes again, and the
/// replicas converge.
#[test]
fn killing_every_node_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    cluster
        .connect(0)
        .batch_execute("CREATE TABLE acked (id INT PRIMARY KEY)")
        .expect("create");
    for id in 0..30 {
        cluster
            .connect(id % 3)
            .execute("INSERT INTO acked VALUES ($1)", &[&(id as i32)])
            .expect("insert");
    }
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.launch(i);
    }
    for i in 0..3 {
        assert_eq!(
            count(&mut cluster.connect(i), "acked"),
            30,
            "node {}",
            i + 1
        );
    }
    cluster
        .connect(2)
        .execute("INSERT INTO acked VALUES (100)", &[])
        .expect("write after restart");
    cluster.assert_converged();
}

/// A node down while the others write far more entries than the snapshot threshold
/// keeps in the log comes back and catches up by snapshot: it installs one, then has
/// every row and converges with the others.
#[test]
fn a_node_far_behind_catches_up_by_snapshot() {
    let mut cluster = Cluster::start_with(3, "snapshot_threshold = 50");
    cluster
        .connect(0)
        .batch_execute("CREATE TABLE behind (id INT PRIMARY KEY, v TEXT)")
        .expect("create");
    cluster.kill(2);
    let mut client = cluster.connect(0);
    for id in 0..300 {
        client
            .execute("INSERT INTO behind VALUES ($1, 'x')", &[&id])
            .expect("insert");
    }
    cluster.launch(2);
    assert_eq!(count(&mut cluster.connect(2), "behind"), 300);
    assert!(
        cluster.log_contains(2, "installed a snapshot from the leader"),
        "node 3 caught up without a snapshot: the log was not purged?"
    );
    cluster.assert_converged();
}

/// `tessera demo --nodes 3` starts a cluster and a shell on it: a table made through
/// the shell survives `\node stop 1` (the shell moves to another node and keeps
/// working), `\node start 1` brings it back, `\cluster` lists three nodes, and on exit
/// the demo's directory (data and logs) is gone.
#[test]
fn demo_runs_a_cluster_and_survives_a_stopped_node() {
    use std::io::Write;
    let script = "CREATE TABLE t (id INT PRIMARY KEY);\n\
                  INSERT INTO t VALUES (1);\n\
                  \\node stop 1\n\
                  INSERT INTO t VALUES (2);\n\
                  \\node start 1\n\
                  \\node\n\
                  SELECT count(*) AS rows_after_failover FROM t;\n\
                  \\cluster\n";
    let mut child = common::ChildGuard(
        std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["demo", "--nodes", "3"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the demo"),
    );
    child
        .0
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the script");
    let started = Instant::now();
    while child.0.try_wait().expect("poll").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the demo did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    child
        .0
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    child
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert!(
        child.0.wait().expect("status").success(),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("node 1 killed"), "{stdout}");
    assert!(stdout.contains("node 1 restarted"), "{stdout}");
    assert!(
        stdout.contains("t:0[0,"),
        "\\cluster lists the groups' shards: {stdout}"
    );
    assert!(
        stdout.contains("rows_after_failover \n---------------------\n                   2"),
        "{stdout}"
    );
    // Each node reports its own view: a node just restarted may still see itself as
    // the leader of its old term until the current leader reaches it (openraft
    // restores a leader's state at start). What must hold is one leader per group at
    // the group's newest term.
    let rows: Vec<Vec<String>> = stdout
        .lines()
        .map(|line| {
            line.split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .filter(|cells: &Vec<String>| cells.len() == 11 && cells[0].parse::<u64>().is_ok())
        .collect();
    for group in ["0", "1"] {
        let of_group = || rows.iter().filter(|cells| cells[3] == group);
        let newest = of_group()
            .filter_map(|cells| cells[5].parse::<u64>().ok())
            .max();
        let leaders = of_group()
            .filter(|cells| cells[4] == "leader" && cells[5].parse::<u64>().ok() == newest)
            .count();
        assert_eq!(
            leaders, 1,
            "group {group}: one leader at its newest term: {stdout}"
        );
    }
    let log = stdout
        .split_whitespace()
        .find(|word| word.contains("tessera-demo-"))
        .expect("the demo's directory is shown");
    let directory = std::path::Path::new(log).parent().expect("directory");
    assert!(
        !directory.exists(),
        "{} is left behind",
        directory.display()
    );
}

/// A cluster running a pool of three data groups: a table's shards spread over all of
/// them (SHOW SHARDS, SHOW GROUPS), rows written through any node into any group are read back
/// whole through every node at the default (linearizable) level, an index created
/// after the rows are in is built in every group and used, a write spanning groups
/// commits whole (and one that fails in one group leaves nothing in any), a unique
/// index over several groups is created with its table but not built over rows already
/// in several groups (0A000, and nothing is left of it), a dropped
/// table leaves nothing, every group converges, and the three groups' leaders spread
/// over the three nodes by themselves.
#[test]
fn a_pool_of_data_groups_spreads_shards_and_leaders() {
    let cluster = Cluster::start_with(3, "data_groups = 3");
    for group in [2, 3] {
        cluster.wait_for_leader(group, 0, None);
    }
    let mut client = cluster.connect(0);
    client
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT) WITH (shards = 6)")
        .expect("create");
    let groups: std::collections::BTreeSet<i64> = client
        .query("SHOW SHARDS FOR t", &[])
        .expect("shards")
        .iter()
        .map(|row| row.get("group_id"))
        .collect();
    assert_eq!(groups, [1, 2, 3].into(), "six shards over three groups");
    let listed = client.query("SHOW GROUPS", &[]).expect("groups");
    assert_eq!(listed.len(), 3);
    for row in &listed {
        assert_eq!(
            row.get::<_, i64>("shard_count"),
            2,
            "{:?}",
            row.get::<_, String>("shards")
        );
        assert!(row.get::<_, String>("shards").starts_with("t:"));
    }
    for id in 0..60i32 {
        let mut client = cluster.connect(id as usize % 3);
        client
            .execute("INSERT INTO t VALUES ($1, $2)", &[&id, &format!("v{id}")])
            .expect("insert");
    }
    cluster
        .connect(2)
        .batch_execute("CREATE INDEX t_v ON t (v)")
        .expect("index");
    for i in 0..3 {
        let mut client = cluster.connect(i);
        assert_eq!(count(&mut client, "t"), 60, "node {}", i + 1);
        let plan: Vec<String> = client
            .query("EXPLAIN SELECT id FROM t WHERE v = 'v41'", &[])
            .expect("explain")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(plan.join("\n").contains("t_v"), "{plan:?}");
        let row = client
            .query_one("SELECT id FROM t WHERE v = 'v41'", &[])
            .expect("index read");
        assert_eq!(row.get::<_, i32>(0), 41);
    }
    client
        .batch_execute("INSERT INTO t SELECT id + 100, v FROM t")
        .expect("a write over every group");
    assert_eq!(count(&mut client, "t"), 120);
    let error = client
        .batch_execute(
            "INSERT INTO t SELECT id + 200, v FROM t WHERE id < 100 UNION ALL SELECT 5, 'again'",
        )
        .expect_err("a duplicate in one group");
    assert_eq!(
        error.code(),
        Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
        "{error}"
    );
    for i in 0..3 {
        let mut client = cluster.connect(i);
        assert_eq!(
            count(&mut client, "t"),
            120,
            "nothing of it, node {}",
            i + 1
        );
    }
    client
        .batch_execute("CREATE TABLE u (id INT PRIMARY KEY, e TEXT UNIQUE)")
        .expect("a unique index over groups, created with its table");
    client
        .batch_execute(
            "CREATE TABLE w (id INT PRIMARY KEY, e INT) WITH (shards = 6); \
             INSERT INTO w SELECT g, g * 7 FROM generate_series(1, 30) AS g",
        )
        .expect("w");
    // A unique index built over rows already in several groups: each group writes the
    // entries it holds, the rest are sent where their values hash.
    client
        .batch_execute("CREATE UNIQUE INDEX w_e ON w (e)")
        .expect("a unique backfill over groups");
    for node in 0..3 {
        let mut client = cluster.connect(node);
        let row = client
            .query_one("SELECT id FROM w WHERE e = 91", &[])
            .expect("a lookup by value");
        assert_eq!(row.get::<_, i32>(0), 13, "node {}", node + 1);
        let error = client
            .batch_execute(&format!("INSERT INTO w VALUES ({}, 7)", 100 + node))
            .expect_err("a value the backfill entered");
        assert_eq!(
            error.code(),
            Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            "node {}: {error}",
            node + 1
        );
    }
    // Duplicates fail the build (each value below is held by two rows, in different
    // groups for most of the pairs); the index is gone afterwards.
    client
        .batch_execute(
            "DROP INDEX w_e; \
             INSERT INTO w SELECT g, 1000 + g % 15 FROM generate_series(31, 60) AS g",
        )
        .expect("rows repeating values");
    let error = client
        .batch_execute("CREATE UNIQUE INDEX w_dup ON w (e)")
        .expect_err("duplicates across groups");
    assert_eq!(
        error.code(),
        Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
        "{error}"
    );
    client
        .batch_execute("INSERT INTO w VALUES (61, 1001)")
        .expect("the failed index is gone");
    cluster.assert_converged();
    client.batch_execute("DROP TABLE t").expect("drop");
    client
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY)")
        .expect("create again");
    assert_eq!(count(&mut client, "t"), 0);
    let started = Instant::now();
    loop {
        let leaders: std::collections::BTreeSet<usize> = (1..=3)
            .filter_map(|group| cluster.leader(group, 0))
            .collect();
        if leaders.len() == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the data groups' leaders did not spread: {leaders:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.assert_converged();
}

/// The leader of `group` as any running node's own replica reports it.
fn leader_anywhere(cluster: &Cluster, group: i64) -> Option<usize> {
    (0..5).find_map(|via| cluster.leader(group, via))
}

/// Five nodes, five data groups, replication factor 3 (the default): data partitions.
/// Each group has three voters on distinct nodes and each node hosts exactly three
/// groups (SHOW CLUSTER) and, once leaderships settle, leads one; rows written through
/// every node land in every group and are read back whole through every node —
/// including the groups a node does not host, read and written over the network —
/// with unique values and cross-group transfers holding; with one node killed every
/// group keeps a quorum and the cluster still reads and writes everything (unique
/// entries moving between groups included); the replicas of each group converge.
#[test]
fn five_nodes_partition_data_over_replication_factor_three() {
    let mut cluster = Cluster::start_with(5, "data_groups = 5");
    let started = Instant::now();
    while (1..=5).any(|group| leader_anywhere(&cluster, group).is_none()) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "groups without leaders"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows = cluster
        .connect(0)
        .query("SHOW CLUSTER", &[])
        .expect("cluster");
    let mut hosted: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for row in &rows {
        let group: Option<i64> = row.get("group_id");
        let node: Option<i64> = row.get("node_id");
        if let (Some(group), Some(node)) = (group, node) {
            if group > 0 {
                hosted.entry(node).or_default().push(group);
            }
        }
    }
    assert_eq!(hosted.len(), 5, "{hosted:?}");
    for (node, groups) in &hosted {
        assert_eq!(groups.len(), 3, "node {node} hosts {groups:?}");
    }
    let groups = cluster
        .connect(3)
        .query("SHOW GROUPS", &[])
        .expect("groups");
    assert_eq!(groups.len(), 5);

    let mut client = cluster.connect(0);
    client
        .batch_execute(
            "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, e TEXT UNIQUE) \
             WITH (shards = 10)",
        )
        .expect("create");
    for id in 0..50i32 {
        let mut client = cluster.connect(id as usize % 5);
        client
            .execute(
                "INSERT INTO t VALUES ($1, 100, $2)",
                &[&id, &format!("e{id}")],
            )
            .expect("insert");
    }
    for node in 0..5 {
        let mut client = cluster.connect(node);
        assert_eq!(count(&mut client, "t"), 50, "node {}", node + 1);
        for id in [7i32, 17, 42] {
            let row = client
                .query_one("SELECT v FROM t WHERE id = $1", &[&id])
                .expect("point read");
            assert_eq!(row.get::<_, i32>(0), 100);
            let row = client
                .query_one("SELECT id FROM t WHERE e = $1", &[&format!("e{id}")])
                .expect("unique lookup");
            assert_eq!(row.get::<_, i32>(0), id);
        }
        let error = client
            .execute("INSERT INTO t VALUES (1000, 1, 'e7')", &[])
            .expect_err("a repeated value");
        assert_eq!(
            error.code(),
            Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            "{error}"
        );
        let transfer = format!(
            "BEGIN; UPDATE t SET v = v - 1 WHERE id = {}; \
             UPDATE t SET v = v + 1 WHERE id = {}; COMMIT",
            node,
            node + 20
        );
        client.batch_execute(&transfer).expect("transfer");
    }
    let total = |client: &mut postgres::Client| -> i64 {
        client
            .query_one("SELECT sum(v)::BIGINT FROM t", &[])
            .expect("sum")
            .get(0)
    };
    for node in 0..5 {
        let mut client = cluster.connect(node);
        assert_eq!(total(&mut client), 5000, "node {}", node + 1);
        // Aggregated per shard: by this node for the groups it hosts, by hosts for
        // the others.
        let row = client
            .query_one("SELECT count(e), min(id), max(id) FROM t", &[])
            .expect("aggregates");
        let answer: (i64, i32, i32) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(answer, (50, 0, 49), "node {}", node + 1);
        let groups = client
            .query("SELECT v, count(*) FROM t GROUP BY v", &[])
            .expect("grouped per shard");
        let (rows, total): (i64, i64) = groups.iter().fold((0, 0), |(rows, total), group| {
            let (v, count): (i32, i64) = (group.get(0), group.get(1));
            (rows + count, total + i64::from(v) * count)
        });
        assert_eq!((rows, total), (50, 5000), "node {}", node + 1);
        // Row scans merge every shard, those of groups hosted elsewhere fetched at
        // once, under a LIMIT pushed down to each shard.
        let ids: Vec<i32> = client
            .query(
                "SELECT id FROM t WHERE v >= 0 ORDER BY id LIMIT 5 OFFSET 44",
                &[],
            )
            .expect("scan")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(ids, vec![44, 45, 46, 47, 48], "node {}", node + 1);
    }
    let started = Instant::now();
    loop {
        let leaders: std::collections::BTreeSet<usize> = (1..=5)
            .filter_map(|group| leader_anywhere(&cluster, group))
            .collect();
        if leaders.len() == 5 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the groups' leaders did not spread: {leaders:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.assert_converged();

    cluster.kill(2);
    let started = Instant::now();
    let mut client = cluster.connect(0);
    loop {
        // Idempotent, so a retry after an unknown outcome cannot apply twice.
        match client.execute("UPDATE t SET e = 'x' || id::TEXT WHERE id < 50", &[]) {
            Ok(updated) => {
                assert_eq!(updated, 50);
                break;
            }
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no write after losing a node: {error}"
                );
                client = cluster.connect(0);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    for node in [0, 1, 3, 4] {
        let mut client = cluster.connect(node);
        assert_eq!(total(&mut client), 5000, "node {}", node + 1);
        let row = client
            .query_one("SELECT id FROM t WHERE e = 'x33'", &[])
            .expect("a moved unique value");
        assert_eq!(row.get::<_, i32>(0), 33);
    }
    cluster.assert_converged();
}
