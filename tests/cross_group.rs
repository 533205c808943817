//! Transactions across data groups, on a three-node cluster of real processes running
//! three data groups (and one of five nodes, five groups, for reads of groups a node
//! does not host): atomic commits under concurrency, a reader meeting a commit's
//! locks while it is pending, a coordinator killed between its prepares and its
//! decision, and unique indexes whose values are claimed across groups. Every table is spread over all three groups (six shards), so a statement
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

/// A cluster with `users (id INT PRIMARY KEY, email TEXT UNIQUE)` over every group and
/// rows 1..=30 with emails `u1`..`u30`, written in one cross-group insert.
fn users() -> Cluster {
    let cluster = Cluster::start_with(3, SETTINGS);
    for group in [2, 3] {
        cluster.wait_for_leader(group, 0, None);
    }
    cluster
        .connect(0)
        .batch_execute(
            "CREATE TABLE users (id INT PRIMARY KEY, email TEXT UNIQUE) WITH (shards = 6); \
             INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 30) AS g",
        )
        .expect("create and fill");
    cluster
}

/// Whether `error` is PostgreSQL's unique violation.
fn is_unique_violation(error: &postgres::Error) -> bool {
    error.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// A unique index over several groups holds across them: its entries live in the
/// shard their value hashes to, so a lookup by value touches one shard, a second row
/// claiming a value is refused (23505) whichever group its own row is in, a value
/// freed by an UPDATE or DELETE (its entry perhaps in another group than its row) can
/// be claimed again, and every node agrees.
#[test]
fn a_unique_value_is_refused_a_second_time_from_any_group() {
    let cluster = users();
    for node in 0..3 {
        let mut client = cluster.connect(node);
        let row = client
            .query_one("SELECT id FROM users WHERE email = 'u17'", &[])
            .expect("lookup by value");
        assert_eq!(row.get::<_, i32>(0), 17, "node {}", node + 1);
        let plan: Vec<String> = client
            .query("EXPLAIN SELECT id FROM users WHERE email = 'u17'", &[])
            .expect("explain")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(
            plan.join("\n").contains("Shards: 1 of 6 (by value hash)"),
            "{plan:?}"
        );
    }
    // Twelve new rows (spread over the groups by their keys) each repeat a value held by
    // a row of some group.
    for id in 31..=42 {
        let error = cluster
            .connect(id as usize % 3)
            .execute(
                "INSERT INTO users VALUES ($1, $2)",
                &[&id, &format!("u{}", id - 30)],
            )
            .expect_err("a repeated value");
        assert!(is_unique_violation(&error), "row {id}: {error}");
    }
    let mut client = cluster.connect(1);
    client
        .batch_execute("UPDATE users SET email = 'x' || email WHERE id IN (5, 6, 7)")
        .expect("move three values");
    client
        .batch_execute("DELETE FROM users WHERE id IN (8, 9)")
        .expect("free two values");
    for (id, email) in [(43, "u5"), (44, "u6"), (45, "u7"), (46, "u8"), (47, "u9")] {
        client
            .execute("INSERT INTO users VALUES ($1, $2)", &[&id, &email])
            .expect("a freed value is claimed again");
    }
    for (id, email) in [(48, "xu5"), (49, "u5"), (50, "u9")] {
        let error = client
            .execute("INSERT INTO users VALUES ($1, $2)", &[&id, &email])
            .expect_err("a held value");
        assert!(is_unique_violation(&error), "{email}: {error}");
    }
    for node in 0..3 {
        let mut client = cluster.connect(node);
        let rows = client
            .query_one("SELECT count(*), count(DISTINCT email) FROM users", &[])
            .expect("count");
        assert_eq!(
            (rows.get::<_, i64>(0), rows.get::<_, i64>(1)),
            (33, 33),
            "node {}",
            node + 1
        );
        let row = client
            .query_one("SELECT id FROM users WHERE email = 'xu6'", &[])
            .expect("a moved value is found by its new value");
        assert_eq!(row.get::<_, i32>(0), 6);
    }
    cluster.assert_converged();
}

/// Sessions on every node racing to insert rows (distinct keys, so in different
/// groups) that claim the same unique values never both commit one value: each value
/// ends up held by exactly one row, and each session's outcome was a commit, a unique
/// violation, or a retryable conflict with a claim still pending.
#[test]
fn concurrent_claims_of_a_unique_value_commit_once() {
    let cluster = users();
    const VALUES: i32 = 15;
    std::thread::scope(|scope| {
        for worker in 0..3i32 {
            let cluster = &cluster;
            scope.spawn(move || {
                let mut client = cluster.connect(worker as usize);
                let started = Instant::now();
                for value in 0..VALUES {
                    let id = 1000 + worker * 100 + value;
                    let email = format!("race{value}");
                    loop {
                        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
                        match client.execute("INSERT INTO users VALUES ($1, $2)", &[&id, &email]) {
                            Ok(_) => break,
                            Err(error) if is_unique_violation(&error) => break,
                            Err(error) if is_retryable(&error) => continue,
                            Err(error) => panic!("{id} {email}: {error}"),
                        }
                    }
                }
            });
        }
    });
    for node in 0..3 {
        let rows = cluster
            .connect(node)
            .query(
                "SELECT email, count(*) FROM users WHERE email LIKE 'race%' GROUP BY email",
                &[],
            )
            .expect("claims");
        assert_eq!(rows.len(), VALUES as usize, "node {}", node + 1);
        for row in rows {
            assert_eq!(row.get::<_, i64>(1), 1, "{}", row.get::<_, String>(0));
        }
    }
    cluster.assert_converged();
}

/// Upserts from every node at once, each statement writing six counters spread over
/// all three groups (a cross-group commit): retried on 40001, every successful
/// statement counts once in every counter, and no key gets a second row.
#[test]
fn concurrent_upserts_across_groups_count_every_success() {
    let cluster = bank();
    cluster
        .connect(0)
        .batch_execute("CREATE TABLE hits (k INT PRIMARY KEY, n BIGINT NOT NULL) WITH (shards = 6)")
        .expect("create");
    const STATEMENTS: i64 = 12;
    std::thread::scope(|scope| {
        for worker in 0..3usize {
            let cluster = &cluster;
            scope.spawn(move || {
                let mut client = cluster.connect(worker);
                let started = Instant::now();
                let upsert = "INSERT INTO hits SELECT g, 1 FROM generate_series(1, 6) AS g \
                              ON CONFLICT (k) DO UPDATE SET n = hits.n + excluded.n";
                for _ in 0..STATEMENTS {
                    loop {
                        assert!(started.elapsed() < Duration::from_secs(90), "too slow");
                        match client.execute(upsert, &[]) {
                            Ok(count) => {
                                assert_eq!(count, 6);
                                break;
                            }
                            Err(error) if is_retryable(&error) => continue,
                            Err(error) => panic!("node {}: {error}", worker + 1),
                        }
                    }
                }
            });
        }
    });
    for node in 0..3 {
        let rows = cluster
            .connect(node)
            .query("SELECT k, n FROM hits ORDER BY k", &[])
            .expect("counters");
        let counters: Vec<(i32, i64)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        let expected: Vec<(i32, i64)> = (1..=6).map(|k| (k, 3 * STATEMENTS)).collect();
        assert_eq!(counters, expected, "node {}", node + 1);
    }
    cluster.assert_converged();
}

/// TRUNCATE through one node empties the table in every group, as every node reads it,
/// and the table takes the same keys again afterwards; DROP TABLE of two tables drops
/// both everywhere.
#[test]
fn truncate_and_drop_of_several_tables_reach_every_group() {
    let cluster = bank();
    let mut client = cluster.connect(1);
    client
        .batch_execute(
            "CREATE TABLE other (id INT PRIMARY KEY) WITH (shards = 6); \
             INSERT INTO other SELECT g FROM generate_series(1, 20) AS g; \
             TRUNCATE accounts, other",
        )
        .expect("truncate");
    for node in 0..3 {
        let rows: i64 = cluster
            .connect(node)
            .query_one("SELECT count(*) FROM accounts", &[])
            .expect("count")
            .get(0);
        assert_eq!(rows, 0, "node {}", node + 1);
    }
    client
        .batch_execute(&format!(
            "INSERT INTO accounts SELECT g, 5 FROM generate_series(1, {ACCOUNTS}) AS g"
        ))
        .expect("the same keys again");
    for node in 0..3 {
        let expected = (5 * i64::from(ACCOUNTS), i64::from(ACCOUNTS));
        assert_eq!(total(&cluster, node), expected, "node {}", node + 1);
    }
    cluster.assert_converged();
    client
        .batch_execute("DROP TABLE accounts, other")
        .expect("drop both");
    for node in 0..3 {
        let error = cluster
            .connect(node)
            .query("SELECT count(*) FROM other", &[])
            .expect_err("dropped");
        assert_eq!(
            error.code(),
            Some(&postgres::error::SqlState::UNDEFINED_TABLE),
            "node {}",
            node + 1
        );
    }
}

/// A claim of a unique value whose cross-group commit is still pending (its coordinator
/// paused between prepares and decision) holds the value: a second row claiming it from
/// another node is refused while it is pending (retryably) and after it commits (23505).
#[test]
fn a_pending_claim_holds_its_unique_value() {
    let cluster = users();
    cluster
        .connect(0)
        .batch_execute("ALTER CLUSTER SET COMMIT PAUSE 1500")
        .expect("pause");
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            // Rows in every group, one of them claiming the contested value.
            cluster.connect(0).batch_execute(
                "INSERT INTO users SELECT g, CASE WHEN g = 100 THEN 'contested' \
                 ELSE 'p' || g END FROM generate_series(100, 120) AS g",
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let error = cluster
            .connect(1)
            .execute("INSERT INTO users VALUES (200, 'contested')", &[])
            .expect_err("the value is held while pending");
        assert!(
            is_retryable(&error) || is_unique_violation(&error),
            "{error}"
        );
        writer
            .join()
            .expect("writer")
            .expect("the paused claim commits");
    });
    let error = cluster
        .connect(2)
        .execute("INSERT INTO users VALUES (201, 'contested')", &[])
        .expect_err("the value is held once committed");
    assert!(is_unique_violation(&error), "{error}");
    let row = cluster
        .connect(2)
        .query_one("SELECT id FROM users WHERE email = 'contested'", &[])
        .expect("lookup");
    assert_eq!(row.get::<_, i32>(0), 100);
    cluster.assert_converged();
}

/// A unique index built over rows already in every group, while sessions on every
/// node keep changing the indexed column (each row's value stays distinct), ends
/// consistent with the rows: through every node each row is found by its current value
/// and no earlier value finds anything. This is the race between the backfill, which
/// reads each group's rows as of its install and sends their entries where the values
/// hash, and the commits since, which maintain those entries themselves.
#[test]
fn a_unique_index_built_under_writes_matches_the_rows() {
    const ROWS: i32 = 240;
    let cluster = Cluster::start_with(3, SETTINGS);
    for group in [2, 3] {
        cluster.wait_for_leader(group, 0, None);
    }
    cluster
        .connect(0)
        .batch_execute(&format!(
            "CREATE TABLE items (id INT PRIMARY KEY, code INT NOT NULL) WITH (shards = 6); \
             INSERT INTO items SELECT g, g FROM generate_series(1, {ROWS}) AS g"
        ))
        .expect("create and fill");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for worker in 0..3i32 {
            let (cluster, stop) = (&cluster, &stop);
            scope.spawn(move || {
                let mut client = cluster.connect(worker as usize);
                let started = Instant::now();
                let mut round = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert!(
                        started.elapsed() < Duration::from_secs(90),
                        "writers ran on"
                    );
                    // Worker w moves the codes of ids ≡ w (mod 3) up by 1000: values
                    // stay distinct, since code ≡ id (mod 1000).
                    let id = 1 + worker + 3 * (round % (ROWS / 3));
                    round += 1;
                    match client
                        .execute("UPDATE items SET code = code + 1000 WHERE id = $1", &[&id])
                    {
                        Ok(_) => {}
                        Err(error) if is_retryable(&error) || is_outcome_unknown(&error) => {}
                        Err(error) => panic!("update {id}: {error}"),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut client = cluster.connect(1);
        let started = Instant::now();
        loop {
            match client.batch_execute("CREATE UNIQUE INDEX items_code ON items (code)") {
                Ok(()) => break,
                // A prepared write on the table makes a group's install wait.
                Err(error) if is_retryable(&error) => {
                    assert!(started.elapsed() < Duration::from_secs(60), "{error}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) => panic!("create the index: {error}"),
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    for node in 0..3 {
        let mut client = cluster.connect(node);
        let plan: Vec<String> = client
            .query("EXPLAIN SELECT id FROM items WHERE code = 5", &[])
            .expect("explain")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(plan.join("\n").contains("items_code"), "{plan:?}");
        let rows = client
            .query("SELECT id, code FROM items ORDER BY id", &[])
            .expect("rows");
        assert_eq!(rows.len(), ROWS as usize);
        for row in rows {
            let (id, code): (i32, i32) = (row.get(0), row.get(1));
            let found: Vec<i32> = client
                .query("SELECT id FROM items WHERE code = $1", &[&code])
                .expect("lookup")
                .iter()
                .map(|row| row.get(0))
                .collect();
            assert_eq!(found, vec![id], "node {}: code {code}", node + 1);
            if code > 1000 {
                let earlier = client
                    .query("SELECT id FROM items WHERE code = $1", &[&(code - 1000)])
                    .expect("lookup of an earlier value");
                assert!(
                    earlier.is_empty(),
                    "node {}: code {}",
                    node + 1,
                    code - 1000
                );
            }
        }
    }
    // No entry of an earlier value was left live: each can be claimed by a new row.
    let mut client = cluster.connect(2);
    let moved = client
        .query("SELECT id, code FROM items WHERE code > 1000", &[])
        .expect("moved rows");
    assert!(
        !moved.is_empty(),
        "no row changed while the index was built"
    );
    for row in moved {
        let (id, code): (i32, i32) = (row.get(0), row.get(1));
        for earlier in (code % 1000..code).step_by(1000) {
            client
                .execute(
                    "INSERT INTO items VALUES ($1, $2)",
                    &[&(100_000 * (1 + earlier / 1000) + id), &earlier],
                )
                .unwrap_or_else(|error| panic!("code {earlier} of row {id}: {error}"));
        }
    }
    cluster.assert_converged();
}

/// The applied index of every data group on node `via`'s own replicas.
fn applied_indexes(cluster: &Cluster, via: usize) -> Vec<(i64, Option<i64>)> {
    let node_id = via as i64 + 1;
    let mut indexes: Vec<(i64, Option<i64>)> = cluster
        .connect(via)
        .query("SHOW CLUSTER", &[])
        .expect("cluster")
        .iter()
        .filter(|row| row.get::<_, Option<i64>>("node_id") == Some(node_id))
        .filter_map(|row| {
            let group: i64 = row.get::<_, Option<i64>>("group_id")?;
            (group > 0).then(|| (group, row.get::<_, Option<i64>>("applied_index")))
        })
        .collect();
    indexes.sort();
    indexes
}

/// A point read by key over a pool confirms only the group holding its row: reading
/// rows of every group many times, right after writes left the groups' applied
/// timestamps apart, adds no entry to any group's log (no group is moved up to a
/// snapshot taken elsewhere), and each read still sees the latest write to its row,
/// made through another node.
#[test]
fn point_reads_confirm_only_their_own_group() {
    let cluster = bank();
    let started = Instant::now();
    while (1..=3)
        .filter_map(|group| cluster.leader(group, 0))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        < 3
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "leaders did not spread"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut writer = cluster.connect(1);
    let mut reader = cluster.connect(0);
    write_then_read_each(&mut writer, &mut reader);
    writer
        .execute("UPDATE accounts SET balance = 0 WHERE id = 1", &[])
        .expect("a last write, to one group");
    let before = applied_indexes(&cluster, 0);
    for _ in 0..10 {
        for id in 1..=ACCOUNTS {
            reader
                .query_one("SELECT balance FROM accounts WHERE id = $1", &[&id])
                .expect("read");
        }
    }
    assert_eq!(
        applied_indexes(&cluster, 0),
        before,
        "point reads wrote entries"
    );
    let (total, rows) = total(&cluster, 0);
    assert_eq!(
        (total, rows),
        ((2..=ACCOUNTS as i64).sum(), ACCOUNTS as i64)
    );
}

/// Sets each account's balance to its id through `writer`, and reads it back at once
/// through `reader`, which must see each write.
fn write_then_read_each(writer: &mut postgres::Client, reader: &mut postgres::Client) {
    for id in 1..=ACCOUNTS {
        writer
            .execute("UPDATE accounts SET balance = $1 WHERE id = $1", &[&id])
            .expect("a write to one group");
        let row = reader
            .query_one("SELECT balance FROM accounts WHERE id = $1", &[&id])
            .expect("read");
        assert_eq!(
            row.get::<_, i32>(0),
            id,
            "the read missed the write before it"
        );
    }
}

/// Every group's highest applied index over all the nodes SHOW CLUSTER on `via` lists.
fn applied_everywhere(cluster: &Cluster, via: usize) -> Vec<(i64, Option<i64>)> {
    let mut highest: std::collections::BTreeMap<i64, Option<i64>> = Default::default();
    for row in cluster
        .connect(via)
        .query("SHOW CLUSTER", &[])
        .expect("cluster")
    {
        if let Some(group) = row.get::<_, Option<i64>>("group_id") {
            let applied = row.get::<_, Option<i64>>("applied_index");
            let entry = highest.entry(group).or_default();
            *entry = (*entry).max(applied);
        }
    }
    highest
        .into_iter()
        .filter(|(group, _)| *group > 0)
        .collect()
}

/// On five nodes with five groups of three voters, point reads through a node confirm
/// only the row's group even where that node hosts no replica of it (the read round
/// runs on a host, which also answers the read): reading every row many times through
/// node 1 adds no entry to any group's log on any node, and each read sees the latest
/// write to its row, made through another node.
#[test]
fn point_reads_of_groups_hosted_elsewhere_confirm_only_their_group() {
    let cluster = Cluster::start_with(5, "data_groups = 5");
    let started = Instant::now();
    while cluster
        .connect(0)
        .query("SHOW GROUPS", &[])
        .expect("groups")
        .iter()
        .any(|row| row.get::<_, Option<i64>>("leader").is_none())
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "groups without a leader"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut writer = cluster.connect(1);
    writer
        .batch_execute(
            "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL) \
             WITH (shards = 10)",
        )
        .expect("create");
    writer
        .batch_execute(&format!(
            "INSERT INTO accounts SELECT g, 100 FROM generate_series(1, {ACCOUNTS}) AS g"
        ))
        .expect("one insert across every group");
    let mut reader = cluster.connect(0);
    write_then_read_each(&mut writer, &mut reader);
    // Leaderships move for balance within seconds of the elections (each move adds an
    // entry); wait until they have.
    let mut before = applied_everywhere(&cluster, 0);
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(3));
        let now = applied_everywhere(&cluster, 0);
        if now == before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the logs never settled"
        );
        before = now;
    }
    for _ in 0..5 {
        for id in 1..=ACCOUNTS {
            let row = reader
                .query_one("SELECT balance FROM accounts WHERE id = $1", &[&id])
                .expect("read");
            assert_eq!(row.get::<_, i32>(0), id);
        }
    }
    assert_eq!(
        applied_everywhere(&cluster, 0),
        before,
        "point reads wrote entries"
    );
}

/// A session's next transaction sees its cross-group commit whole at once, though the
/// commit answered before its other shares were resolved: a block moving the money
/// straight back (reading both rows first) commits without a conflict with the
/// session's own earlier commit, and every balance ends where it started.
#[test]
fn a_session_sees_its_own_cross_group_commit_at_once() {
    let cluster = bank();
    let mut client = cluster.connect(0);
    for round in 0..60i32 {
        let (from, to) = (1 + round % 15, 16 + (round * 7) % 15);
        client
            .batch_execute(&format!(
                "BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = {from}; \
                 UPDATE accounts SET balance = balance + 1 WHERE id = {to}; COMMIT"
            ))
            .expect("transfer");
        client
            .batch_execute(&format!(
                "BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = {to}; \
                 UPDATE accounts SET balance = balance + 1 WHERE id = {from}; COMMIT"
            ))
            .unwrap_or_else(|error| panic!("round {round}: the move back: {error}"));
    }
    let balances: Vec<i32> = client
        .query("SELECT balance FROM accounts ORDER BY id", &[])
        .expect("balances")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(balances, vec![100; ACCOUNTS as usize]);
}

/// Whether `result` failed with `code`.
fn failed_with<T>(result: Result<T, postgres::Error>, code: &postgres::error::SqlState) -> bool {
    result
        .err()
        .and_then(|error| error.code().cloned())
        .as_ref()
        == Some(code)
}

/// DDL in a transaction block on a cluster: no node sees the block's tables before
/// COMMIT; after it every node does, with the index built in every group; a drop in
/// a rolled-back block keeps the table on every node; and a block whose change no
/// longer applies at COMMIT (the name taken through another node meanwhile) fails
/// with 42P07 and leaves none of its other changes anywhere.
#[test]
fn ddl_in_a_block_is_all_or_nothing_on_every_node() {
    use postgres::error::SqlState;
    let cluster = bank();
    let mut one = cluster.connect(0);
    one.batch_execute(
        "BEGIN; \
         CREATE TABLE items (id INT PRIMARY KEY, tag TEXT) WITH (shards = 6); \
         CREATE INDEX items_tag ON items (tag)",
    )
    .expect("DDL in a block");
    for node in 1..3 {
        let early = cluster.connect(node).query("SELECT * FROM items", &[]);
        assert!(
            failed_with(early, &SqlState::UNDEFINED_TABLE),
            "node {}",
            node + 1
        );
    }
    one.batch_execute("COMMIT").expect("commit");
    one.batch_execute(
        "INSERT INTO items SELECT g, 't' || (g % 5) FROM generate_series(1, 40) AS g",
    )
    .expect("rows in every group");
    for node in 0..3 {
        let rows: i64 = cluster
            .connect(node)
            .query_one("SELECT count(*) FROM items WHERE tag = 't3'", &[])
            .expect("count by tag")
            .get(0);
        assert_eq!(rows, 8, "node {}", node + 1);
    }

    one.batch_execute(
        "BEGIN; CREATE INDEX brief ON items (tag); CREATE TABLE brief_t (a INT); \
         CREATE INDEX brief_a ON brief_t (a); DROP INDEX brief; DROP TABLE brief_t; COMMIT",
    )
    .expect("indexes created and dropped again in one block");
    one.batch_execute("BEGIN; DROP TABLE accounts; CREATE TABLE scratch (a INT); ROLLBACK")
        .expect("rolled back");
    for node in 0..3 {
        let expected = (100 * i64::from(ACCOUNTS), i64::from(ACCOUNTS));
        assert_eq!(total(&cluster, node), expected, "node {}", node + 1);
    }

    one.batch_execute("BEGIN; CREATE TABLE first (a INT); CREATE TABLE taken (a INT)")
        .expect("block");
    cluster
        .connect(1)
        .batch_execute("CREATE TABLE taken (b TEXT)")
        .expect("the name taken through node 2");
    assert!(failed_with(
        one.batch_execute("COMMIT"),
        &SqlState::DUPLICATE_TABLE
    ));
    for node in 0..3 {
        let absent = cluster.connect(node).query("SELECT * FROM first", &[]);
        assert!(
            failed_with(absent, &SqlState::UNDEFINED_TABLE),
            "node {}",
            node + 1
        );
    }
    cluster.assert_converged();
}

/// Inserts `rows` rows of `node` into `orders` through `client`, in one multi-row
/// INSERT ... RETURNING id, retried on 40001 (a retried attempt's values are gaps);
/// returns the ids given, or `None` for an attempt whose outcome is unknown.
fn insert_serial(client: &mut postgres::Client, node: i32, rows: usize) -> Option<Vec<i64>> {
    let values = vec![format!("({node})"); rows].join(", ");
    let insert = format!("INSERT INTO orders (node) VALUES {values} RETURNING id");
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
        match client.query(&insert, &[]) {
            Ok(found) => {
                return Some(
                    found
                        .iter()
                        .map(|row| row.get::<_, i32>(0).into())
                        .collect(),
                )
            }
            Err(error) if is_retryable(&error) => continue,
            Err(error) if is_outcome_unknown(&error) => return None,
            Err(error) => panic!("insert failed: {error}"),
        }
    }
}

/// A SERIAL key in a cluster: sessions on every node insert at once and each row gets
/// a value no other row has; after the metadata group's leader (which holds the
/// sequence's position) is killed, and after it restarts, new values are still never
/// one given before. Each node serves most values from its reserved range, so the
/// positions recorded in the metadata group are far fewer than the values.
#[test]
fn serial_keys_are_unique_across_nodes_and_failovers() {
    let mut cluster = Cluster::start_with(3, SETTINGS);
    for group in [2, 3] {
        cluster.wait_for_leader(group, 0, None);
    }
    cluster
        .connect(0)
        .batch_execute("CREATE TABLE orders (id SERIAL PRIMARY KEY, node INT) WITH (shards = 6)")
        .expect("create");
    let given = std::sync::Mutex::new(Vec::<i64>::new());
    let insert_everywhere = |cluster: &Cluster, nodes: &[usize], batches: usize| {
        std::thread::scope(|scope| {
            for &node in nodes {
                let given = &given;
                scope.spawn(move || {
                    let mut client = cluster.connect(node);
                    for batch in 0..batches {
                        let rows = 1 + batch % 3;
                        let node_number = node as i32 + 1;
                        if let Some(ids) = insert_serial(&mut client, node_number, rows) {
                            given.lock().unwrap().extend(ids);
                        } else {
                            client = cluster.connect(node);
                        }
                    }
                });
            }
        });
    };
    insert_everywhere(&cluster, &[0, 1, 2], 20);
    let metadata_leader = cluster.leader(0, 0).expect("a metadata leader");
    cluster.kill(metadata_leader);
    let survivors: Vec<usize> = (0..3).filter(|&i| i != metadata_leader).collect();
    cluster.wait_for_leader(0, survivors[0], Some(metadata_leader));
    insert_everywhere(&cluster, &survivors, 10);
    cluster.launch(metadata_leader);
    insert_everywhere(&cluster, &[metadata_leader], 10);

    let given = given.into_inner().unwrap();
    let mut distinct = given.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), given.len(), "a value was given twice");
    let mut client = cluster.connect(survivors[0]);
    let stored: Vec<i64> = client
        .query("SELECT id FROM orders ORDER BY id", &[])
        .expect("ids")
        .iter()
        .map(|row| row.get::<_, i32>(0).into())
        .collect();
    let mut stored_distinct = stored.clone();
    stored_distinct.dedup();
    assert_eq!(stored_distinct.len(), stored.len(), "two rows share an id");
    assert!(distinct.iter().all(|id| stored.binary_search(id).is_ok()));
    // Values come from ranges of at least 32: a few reservations per node and
    // restart, not one per value (gaps, as PostgreSQL allows).
    let highest = *stored.last().expect("rows");
    eprintln!("{} rows, highest id {highest}", stored.len());
    assert!(
        highest < 32 * 12,
        "highest id {highest} of {} rows",
        stored.len()
    );
    cluster.assert_converged();
}
