//! Faults other than a crash, on a three-node cluster of real processes: a leader
//! paused (SIGSTOP), a leader cut off by the network (iptables), and what each read
//! level answers on the wrong side of a partition. Processes are killed and iptables
//! rules deleted by guards, even when a test fails.

mod common;

use common::cluster::{count, is_outcome_unknown, is_retryable, Cluster};
use std::time::{Duration, Instant};

/// Writes through node `via` until one succeeds. Meanwhile only 40001 (certainly not
/// done) or, for a write sent to the leader just as it went silent, 40003 (outcome
/// unknown) is acceptable. Returns how long it took and how many outcomes were unknown.
fn write_until_accepted(
    cluster: &Cluster,
    via: usize,
    table: &str,
    first_id: i32,
) -> (Duration, i64) {
    let started = Instant::now();
    let mut client = cluster.connect(via);
    let mut id = first_id;
    let mut unknown = 0;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "writes did not resume within 20 s"
        );
        match client.execute(&format!("INSERT INTO {table} VALUES ($1)"), &[&id]) {
            Ok(_) => return (started.elapsed(), unknown),
            Err(error) => {
                assert!(
                    is_retryable(&error) || is_outcome_unknown(&error),
                    "{error}"
                );
                unknown += i64::from(is_outcome_unknown(&error));
                // A new connection: one whose statement's outcome is unknown may be
                // broken.
                client = cluster.connect(via);
                id += 1;
            }
        }
    }
}

/// Every acknowledged row is there (`acknowledged`), and at most `unknown` more.
fn assert_rows(client: &mut postgres::Client, table: &str, acknowledged: i64, unknown: i64) {
    let rows = count(client, table);
    assert!(
        (acknowledged..=acknowledged + unknown).contains(&rows),
        "{rows} rows in {table}: {acknowledged} acknowledged, {unknown} unknown"
    );
}

fn setup(cluster: &Cluster, table: &str) {
    cluster
        .connect(0)
        .batch_execute(&format!("CREATE TABLE {table} (id INT PRIMARY KEY)"))
        .expect("create");
    for id in 0..10 {
        cluster
            .connect(id % 3)
            .execute(&format!("INSERT INTO {table} VALUES ($1)"), &[&(id as i32)])
            .expect("insert");
    }
}

/// The data leader paused with SIGSTOP (alive, silent): the others elect a new leader
/// and take writes; once resumed, the old leader steps down, catches up, and every
/// replica converges with every acknowledged write.
#[test]
fn writes_resume_after_the_leader_is_paused() {
    let cluster = Cluster::start(3);
    setup(&cluster, "paused");
    let leader = cluster.leader(1, 0).expect("a leader");
    let survivor = (leader + 1) % 3;
    cluster.signal(leader, "STOP");
    let (resumed, unknown) = write_until_accepted(&cluster, survivor, "paused", 1000);
    eprintln!("writes resumed {} ms after the pause", resumed.as_millis());
    assert!(resumed < Duration::from_secs(3), "{resumed:?}");
    cluster.signal(leader, "CONT");
    let new_leader = cluster.wait_for_leader(1, leader, Some(leader));
    assert_ne!(new_leader, leader);
    assert_rows(&mut cluster.connect(leader), "paused", 11, unknown);
    cluster.assert_converged();
}

/// The data leader cut off from both others by iptables: the majority elects a new
/// leader and takes writes; after healing, the old leader follows and converges.
#[test]
fn writes_resume_when_the_leader_is_cut_off() {
    let cluster = Cluster::start(3);
    setup(&cluster, "cut");
    let leader = cluster.leader(1, 0).expect("a leader");
    let survivor = (leader + 1) % 3;
    let partition = cluster.isolate(leader);
    let (resumed, unknown) = write_until_accepted(&cluster, survivor, "cut", 1000);
    eprintln!(
        "writes resumed {} ms after the partition",
        resumed.as_millis()
    );
    assert!(resumed < Duration::from_secs(3), "{resumed:?}");
    partition.heal();
    cluster.wait_for_leader(1, leader, Some(leader));
    assert_rows(&mut cluster.connect(leader), "cut", 11, unknown);
    cluster.assert_converged();
}

/// A leader cut off from the majority never answers a linearizable or lease read with
/// the value it has, once the majority has moved on: it errors (40001) instead. A
/// write sent to it never reports success.
#[test]
fn a_partitioned_old_leader_refuses_linearizable_and_lease_reads() {
    let cluster = Cluster::start(3);
    let leader = register_with_one_leader(&cluster);
    let mut linearizable = cluster.connect(leader);
    let mut lease = cluster.connect(leader);
    lease
        .batch_execute("SET read_consistency = 'lease'")
        .expect("set");
    let mut writer = cluster.connect(leader);
    let partition = cluster.isolate(leader);
    let survivor = (leader + 1) % 3;
    let new_value_written = write_new_value(&cluster, survivor);
    assert!(new_value_written, "the majority did not take the write");
    let (linearizable, lease, write) = std::thread::scope(|scope| {
        let linearizable =
            scope.spawn(|| linearizable.query_one("SELECT v FROM register WHERE id = 1", &[]));
        let lease = scope.spawn(|| lease.query_one("SELECT v FROM register WHERE id = 1", &[]));
        let write = scope.spawn(|| writer.execute("UPDATE register SET v = 99 WHERE id = 1", &[]));
        (
            linearizable.join().expect("thread"),
            lease.join().expect("thread"),
            write.join().expect("thread"),
        )
    });
    for (level, outcome) in [("linearizable", linearizable), ("lease", lease)] {
        match outcome {
            Ok(row) => panic!(
                "the cut-off old leader answered a {level} read with {}",
                row.get::<_, i32>(0)
            ),
            Err(error) => assert!(is_retryable(&error), "{level}: {error}"),
        }
    }
    match write {
        Ok(rows) => panic!("the cut-off old leader acknowledged a write ({rows} rows)"),
        Err(error) => assert!(
            is_retryable(&error) || is_outcome_unknown(&error),
            "write: {error}"
        ),
    }
    drop(partition);
    cluster.wait_for_leader(1, leader, Some(leader));
    let value: i32 = cluster
        .connect(leader)
        .query_one("SELECT v FROM register WHERE id = 1", &[])
        .expect("read after healing")
        .get(0);
    assert!(value == 2 || value == 99, "{value}");
}

/// The lease rests on the leader's clock, and `ALTER CLUSTER SET CLOCK RATE` really
/// skews it: a cut-off leader whose clock runs at a twentieth of real time believes its
/// lease holds twenty times too long and answers a `lease` read with the old value
/// after the majority has taken a new one — the anomaly the Jepsen suite's clock
/// nemesis must be able to find. Its `linearizable` reads still refuse. A node started
/// without `test_faults` refuses the statement.
#[test]
fn a_slow_clock_lets_a_cut_off_leader_serve_stale_lease_reads() {
    let refused = Cluster::start(1)
        .connect(0)
        .batch_execute("ALTER CLUSTER SET CLOCK RATE 0.5")
        .expect_err("clock skew without test_faults");
    let message = refused
        .as_db_error()
        .map(|error| error.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("test_faults")),
        "{refused:?}"
    );

    let cluster = Cluster::start_with(3, "test_faults = true");
    let leader = register_with_one_leader(&cluster);
    let mut lease = cluster.connect(leader);
    lease
        .batch_execute("ALTER CLUSTER SET CLOCK RATE 0.05; SET read_consistency = 'lease'")
        .expect("skew the leader's clock");
    let mut linearizable = cluster.connect(leader);
    let partition = cluster.isolate(leader);
    let survivor = (leader + 1) % 3;
    let cut_at = Instant::now();
    assert!(
        write_new_value(&cluster, survivor),
        "the majority did not take the write"
    );
    // The lease is 3/4 of the 250 ms election timeout; at a twentieth of real time it
    // seems to hold for 3.75 s after the cut.
    assert!(
        cut_at.elapsed() < Duration::from_secs(3),
        "the new value took too long to check the old lease: {:?}",
        cut_at.elapsed()
    );
    let stale: i32 = lease
        .query_one("SELECT v FROM register WHERE id = 1", &[])
        .expect("the skewed lease still holds")
        .get(0);
    assert_eq!(stale, 1, "the cut-off leader's lease read should be stale");
    let error = linearizable
        .query_one("SELECT v FROM register WHERE id = 1", &[])
        .expect_err("a linearizable read needs a quorum");
    assert!(is_retryable(&error), "{error:?}");
    drop(partition);
}

/// Creates the register (row 1 holding 1) and moves every group's leadership to one
/// node, so that cutting it off leaves the majority whole; returns that node.
fn register_with_one_leader(cluster: &Cluster) -> usize {
    cluster
        .connect(0)
        .batch_execute(
            "CREATE TABLE register (id INT PRIMARY KEY, v INT); INSERT INTO register VALUES (1, 1)",
        )
        .expect("create");
    cluster.one_leader_for_all()
}

/// Sets the register to 2 through node `via`, retrying while the majority elects (a
/// write sent to the cut-off leader just after the cut may end with its outcome unknown;
/// setting 2 again is harmless).
fn write_new_value(cluster: &Cluster, via: usize) -> bool {
    let started = Instant::now();
    let mut client = cluster.connect(via);
    while started.elapsed() < Duration::from_secs(20) {
        match client.execute("UPDATE register SET v = 2 WHERE id = 1", &[]) {
            Ok(1) => return true,
            Ok(other) => panic!("updated {other} rows"),
            Err(error) if is_retryable(&error) || is_outcome_unknown(&error) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(error) => panic!("{error:?}"),
        }
    }
    false
}

/// A follower cut off from the leader keeps answering `stale` reads with no bound,
/// answers bounded ones while within `max_staleness`, and refuses them (40001) once
/// it may be further behind than that.
#[test]
fn stale_reads_on_a_cut_off_follower_answer_until_max_staleness() {
    let cluster = Cluster::start(3);
    setup(&cluster, "stale");
    // Both groups led by one node, so the follower leads nothing.
    let leader = cluster.one_leader_for_all();
    let follower = (leader + 1) % 3;
    let mut client = cluster.connect(follower);
    client
        .batch_execute("SET read_consistency = 'stale'; SET max_staleness = '1s'")
        .expect("set");
    assert_eq!(
        count(&mut client, "stale"),
        10,
        "fresh follower, bounded read"
    );
    let partition = cluster.isolate(follower);
    let cut_at = Instant::now();
    cluster
        .connect(leader)
        .execute("INSERT INTO stale VALUES (500)", &[])
        .expect("the majority takes writes");
    client
        .batch_execute("SET max_staleness = '0'")
        .expect("unbounded");
    assert_eq!(count(&mut client, "stale"), 10, "unbounded stale read");
    client
        .batch_execute("SET max_staleness = '1s'")
        .expect("bounded");
    while cut_at.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let error = client
        .query_one("SELECT count(*) FROM stale", &[])
        .expect_err("a read staler than max_staleness");
    assert!(is_retryable(&error), "{error}");
    let message = error.as_db_error().map(|db| db.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("max_staleness")),
        "{message:?}"
    );
    drop(partition);
    let healed = Instant::now();
    loop {
        match client.query_one("SELECT count(*) FROM stale", &[]) {
            Ok(row) if row.get::<_, i64>(0) == 11 => break,
            _ if healed.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => panic!("the follower did not catch up after healing: {other:?}"),
        }
    }
}
