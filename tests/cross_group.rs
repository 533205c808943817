//! Transactions across data groups, on a three-node cluster of real processes running
//! three data groups: atomic commits under concurrency, a reader meeting a commit's
//! locks while it is pending, and a coordinator killed between its prepares and its
//! decision. Every table is spread over all three groups (six shards), so a statement
//! touching every row is a cross-group transaction. Processes are killed by guards,
//! even when a test fails.

mod common;

use common::cluster::{is_outcome_unknown, is_retryable, Cluster};
use std::time::{Duration, Instant};

/// The settings of every cluster here: three data groups, and the commit pause fault.
const SETTINGS: &str = "data_groups = 3\ntest_faults = true";
/// Accounts in the bank table, each starting with 100.
const ACCOUNTS: i32 = 30;

/// A cluster with `accounts (id INT PRIMARY KEY, balance INT)` over every group.
fn bank() -> Cluster {
    let cluster = Cluster::start_with(3, SETTINGS);
    for group in [2, 3] {
        cluster.wait_for_leader(group, 0, None);
    }
    let mut client = cluster.connect(0);
    client
        .batch_execute(
            "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL) \
             WITH (shards = 6)",
        )
        .expect("create");
    client
        .batch_execute(&format!(
            "INSERT INTO accounts SELECT g, 100 FROM generate_series(1, {ACCOUNTS}) AS g"
        ))
        .expect("one insert across every group");
    cluster
}

/// The sum and count of the balances, as node `via` reads them.
fn total(cluster: &Cluster, via: usize) -> (i64, i64) {
    let row = cluster
        .connect(via)
        .query_one("SELECT sum(balance)::BIGINT, count(*) FROM accounts", &[])
        .expect("total");
    (row.get(0), row.get(1))
}

/// Concurrent transfers between accounts in different groups (through every node,
/// each in a transaction block, retried on 40001) never show a reader a total other
/// than the starting one, and every acknowledged transfer is in the final balances:
/// cross-group commits are atomic and first committer wins across groups.
#[test]
fn transfers_across_groups_keep_the_total() {
    let cluster = bank();
    assert_eq!(
        total(&cluster, 0),
        (i64::from(ACCOUNTS) * 100, i64::from(ACCOUNTS))
    );
    let committed = std::sync::atomic::AtomicI64::new(0);
    std::thread::scope(|scope| {
        for worker in 0..3usize {
            let (cluster, committed) = (&cluster, &committed);
            scope.spawn(move || {
                let mut client = cluster.connect(worker);
                let started = Instant::now();
                for round in 0..20 {
                    let from = (worker as i32 * 7 + round * 3) % ACCOUNTS + 1;
                    let to = (from + 11) % ACCOUNTS + 1;
                    let transfer = format!(
                        "BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = {from}; \
                         UPDATE accounts SET balance = balance + 1 WHERE id = {to}; COMMIT"
                    );
                    loop {
                        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
                        match client.batch_execute(&transfer) {
                            Ok(()) => {
                                committed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                break;
                            }
                            Err(error) if is_retryable(&error) => {
                                let _ = client.batch_execute("ROLLBACK");
                            }
                            Err(error) => panic!("transfer {from} -> {to}: {error}"),
                        }
                    }
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..20 {
                let (sum, accounts) = total(&cluster, 1);
                assert_eq!(
                    (sum, accounts),
                    (i64::from(ACCOUNTS) * 100, i64::from(ACCOUNTS))
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    });
    assert_eq!(committed.into_inner(), 60);
    for node in 0..3 {
        assert_eq!(total(&cluster, node).0, i64::from(ACCOUNTS) * 100);
    }
    cluster.assert_converged();
}

/// Adds 1 to every balance through node 1, its commit paused `pause_ms` between
/// prepares and decision, while node 2 reads the total 300 ms in; returns the update's
/// outcome and what the reader saw, with how long its read took.
fn paused_update_meets_a_reader(
    cluster: &Cluster,
    pause_ms: u64,
) -> (Result<(), postgres::Error>, ((i64, i64), Duration)) {
    cluster
        .connect(0)
        .batch_execute(&format!("ALTER CLUSTER SET COMMIT PAUSE {pause_ms}"))
        .expect("pause");
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            cluster
                .connect(0)
                .batch_execute("UPDATE accounts SET balance = balance + 1")
        });
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let read = (total(cluster, 1), started.elapsed());
        (writer.join().expect("writer"), read)
    })
}

/// A reader that meets the locks of a cross-group commit still pending (its
/// coordinator paused between prepares and decision) waits for the decision and then
/// sees the commit whole; when the coordinator stays paused past the reader's patience
/// (2 s), the reader aborts the transaction instead, sees none of it, and the
/// coordinator's commit fails with 40001.
#[test]
fn a_reader_waits_for_a_pending_commit_then_aborts_a_stalled_one() {
    let cluster = bank();
    let (writer, read) = paused_update_meets_a_reader(&cluster, 1000);
    writer.expect("the paused commit commits");
    let ((sum, _), waited) = read;
    assert_eq!(
        sum,
        i64::from(ACCOUNTS) * 101,
        "the reader saw the commit whole"
    );
    assert!(
        waited >= Duration::from_millis(400),
        "the reader waited: {waited:?}"
    );

    let (writer, read) = paused_update_meets_a_reader(&cluster, 6000);
    let error = writer.expect_err("the stalled commit was aborted by the reader");
    assert!(is_retryable(&error), "{error}");
    let ((sum, _), waited) = read;
    assert_eq!(sum, i64::from(ACCOUNTS) * 101, "none of the aborted commit");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "the reader waited about its patience: {waited:?}"
    );
    assert_eq!(total(&cluster, 2).0, i64::from(ACCOUNTS) * 101);
    cluster.assert_converged();
}

/// A coordinator SIGKILLed between its prepares and its decision leaves nothing half
/// applied: its locks hold the rows until the leaders' cleaners (or a reader) settle
/// them by the record, which aborts; writes to the locked rows then succeed (refused
/// only retryably meanwhile), every node reads the old total, and the restarted node
/// converges with the others.
#[test]
fn a_coordinator_killed_mid_commit_leaves_nothing_half_applied() {
    let mut cluster = bank();
    cluster
        .connect(2)
        .batch_execute("ALTER CLUSTER SET COMMIT PAUSE 30000")
        .expect("pause");
    let killed = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            cluster
                .connect(2)
                .batch_execute("UPDATE accounts SET balance = balance + 5")
        });
        std::thread::sleep(Duration::from_millis(700));
        cluster.signal(2, "KILL");
        writer.join().expect("writer")
    });
    assert!(
        killed.is_err(),
        "the coordinator's client lost its connection"
    );
    cluster.kill(2);
    // A writer is refused (40001) while the locks stand, and succeeds once the
    // cleaner has settled them (5 s after it first saw them, checked every second).
    let started = Instant::now();
    let mut client = cluster.connect(0);
    loop {
        match client.execute(
            "UPDATE accounts SET balance = balance - 1 WHERE id = 1",
            &[],
        ) {
            Ok(_) => break,
            Err(error) if is_retryable(&error) || is_outcome_unknown(&error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the abandoned locks were not settled: {error}"
                );
                client = cluster.connect(0);
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => panic!("{error}"),
        }
    }
    client
        .execute(
            "UPDATE accounts SET balance = balance + 1 WHERE id = 1",
            &[],
        )
        .expect("undo");
    for node in 0..2 {
        assert_eq!(
            total(&cluster, node),
            (i64::from(ACCOUNTS) * 100, i64::from(ACCOUNTS)),
            "node {}: none of the killed commit",
            node + 1
        );
    }
    cluster.launch(2);
    assert_eq!(total(&cluster, 2).0, i64::from(ACCOUNTS) * 100);
    cluster.assert_converged();
}
