//! The server as PostgreSQL clients see it: a real `tessera server` process on a free
//! 127.0.0.1 port, driven by tokio-postgres (extended protocol, binary formats) and by
//! psql (simple protocol, text). Every test stops its server by pid, even on failure.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

/// A running server, killed (by pid) when dropped.
struct Server {
    process: common::ChildGuard,
    port: u16,
    data: tempfile::TempDir,
}

const STARTUP_LIMIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    fn start() -> Server {
        Self::start_in(tempfile::tempdir().expect("temp dir"), &[])
    }

    fn start_in(data: tempfile::TempDir, extra: &[&str]) -> Server {
        let port = free_port();
        let process = common::spawn_until_ready(
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(["server", "--data"])
                .arg(data.path())
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(extra)
                .env("RUST_LOG", "info"),
            STARTUP_LIMIT,
            "server",
            None,
        );
        Server {
            process,
            port,
            data,
        }
    }

    fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=tester dbname=tessera",
            self.port
        )
    }

    async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its exit code.
    fn terminate(mut self) -> (Option<i32>, tempfile::TempDir) {
        let pid = self.process.0.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.0.try_wait().expect("wait") {
                let data = std::mem::replace(&mut self.data, tempfile::tempdir().expect("dir"));
                return (status.code(), data);
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The one value of a one-row, one-column query; panics naming the query otherwise.
async fn scalar<T>(client: &tokio_postgres::Client, sql: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Parameters and results of every type round-trip through prepared statements in
/// binary format, NULLs included; parameter types are inferred from the statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_with_every_type() {
    let server = Server::start();
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE every (id INTEGER PRIMARY KEY, b BOOLEAN, s SMALLINT, i INTEGER, big BIGINT, \
             r REAL, d DOUBLE PRECISION, t TEXT, v VARCHAR(10), raw BYTEA)",
        )
        .await
        .expect("create");
    let insert = client
        .prepare("INSERT INTO every VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .await
        .expect("prepare");
    let types: Vec<_> = insert
        .params()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    assert_eq!(
        types,
        ["int4", "bool", "int2", "int4", "int8", "float4", "float8", "text", "varchar", "bytea"]
    );
    let inserted = client
        .execute(
            &insert,
            &[
                &1i32,
                &true,
                &-7i16,
                &42i32,
                &(1i64 << 40),
                &1.5f32,
                &-0.25f64,
                &"héllo",
                &"abc",
                &vec![0u8, 255],
            ],
        )
        .await
        .expect("insert");
    assert_eq!(inserted, 1);
    let none: Option<i32> = None;
    client
        .execute(
            &insert,
            &[
                &2i32,
                &None::<bool>,
                &None::<i16>,
                &none,
                &None::<i64>,
                &None::<f32>,
                &None::<f64>,
                &None::<String>,
                &None::<String>,
                &None::<Vec<u8>>,
            ],
        )
        .await
        .expect("insert nulls");

    let row = client
        .query_one("SELECT * FROM every WHERE id = $1", &[&1i32])
        .await
        .expect("select");
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, i16>("s"), -7);
    assert_eq!(row.get::<_, i32>("i"), 42);
    assert_eq!(row.get::<_, i64>("big"), 1 << 40);
    assert_eq!(row.get::<_, f32>("r"), 1.5);
    assert_eq!(row.get::<_, f64>("d"), -0.25);
    assert_eq!(row.get::<_, &str>("t"), "héllo");
    assert_eq!(row.get::<_, &str>("v"), "abc");
    assert_eq!(row.get::<_, Vec<u8>>("raw"), vec![0u8, 255]);
    let row = client
        .query_one("SELECT b, big, t, raw FROM every WHERE id = 2", &[])
        .await
        .expect("select nulls");
    assert_eq!(row.get::<_, Option<bool>>(0), None);
    assert_eq!(row.get::<_, Option<i64>>(1), None);
    assert_eq!(row.get::<_, Option<&str>>(2), None);
    assert_eq!(row.get::<_, Option<Vec<u8>>>(3), None);

    // Result column types are described before execution.
    let statement = client
        .prepare("SELECT count(*), sum(i), avg(d), max(t) FROM every WHERE id > $1")
        .await
        .expect("prepare");
    let columns: Vec<_> = statement
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_().name().to_string()))
        .collect();
    assert_eq!(
        columns,
        [
            ("count".into(), "int8".into()),
            ("sum".into(), "int8".into()),
            ("avg".into(), "float8".into()),
            ("max".into(), "text".into())
        ]
    );
    assert_eq!(statement.params()[0].name(), "int4");
    let row = client
        .query_one(&statement, &[&0i32])
        .await
        .expect("aggregate");
    assert_eq!(row.get::<_, i64>(0), 2);
}

/// Errors carry their SQLSTATE (and the position of a syntax error), and a failed
/// transaction block accepts only ROLLBACK.
/// Arrays travel in PostgreSQL's binary array format both ways: results with NULL
/// elements and empty arrays, and array parameters (psql's catalog queries and drivers'
/// `= ANY($1)` idiom use them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_in_binary_format() {
    let server = Server::start();
    let client = server.connect().await;
    let row = client
        .query_one(
            "SELECT ARRAY[1, NULL, 3], ARRAY['a b', NULL], ARRAY[]::bigint[], ARRAY[1.5, 2]",
            &[],
        )
        .await
        .expect("select arrays");
    assert_eq!(row.get::<_, Vec<Option<i32>>>(0), [Some(1), None, Some(3)]);
    assert_eq!(
        row.get::<_, Vec<Option<String>>>(1),
        [Some("a b".to_string()), None]
    );
    assert!(row.get::<_, Vec<i64>>(2).is_empty());
    assert_eq!(row.get::<_, Vec<f64>>(3), [1.5, 2.0]);
    let statement = client
        .prepare_typed(
            "SELECT cardinality($1), $1[2], 3 = ANY($1)",
            &[tokio_postgres::types::Type::INT4_ARRAY],
        )
        .await
        .expect("prepare");
    let row = client
        .query_one(&statement, &[&vec![Some(3i32), None]])
        .await
        .expect("array parameter");
    assert_eq!(row.get::<_, i32>(0), 2);
    assert_eq!(row.get::<_, Option<i32>>(1), None);
    assert!(row.get::<_, bool>(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_transaction_states() {
    let server = Server::start();
    let mut client = server.connect().await;
    client
        .batch_execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        .await
        .expect("create");
    client
        .execute("INSERT INTO kv VALUES (1, 'one')", &[])
        .await
        .expect("insert");

    let error = client
        .execute("INSERT INTO kv VALUES (1, 'again')", &[])
        .await
        .expect_err("duplicate");
    assert_eq!(error.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let db_error = error.as_db_error().expect("database error");
    assert_eq!(db_error.detail(), Some("Key (k)=(1) already exists."));

    let error = client
        .batch_execute("SELECT * FROM nowhere")
        .await
        .expect_err("missing table");
    assert_eq!(error.code(), Some(&SqlState::UNDEFINED_TABLE));
    let error = client
        .batch_execute("SELECT 1 +* 2")
        .await
        .expect_err("syntax");
    assert_eq!(error.code(), Some(&SqlState::SYNTAX_ERROR));
    assert!(matches!(
        error.as_db_error().and_then(|e| e.position()),
        Some(tokio_postgres::error::ErrorPosition::Original(_))
    ));
    let error = client
        .query("SELECT 1 / 0", &[])
        .await
        .expect_err("division");
    assert_eq!(error.code(), Some(&SqlState::DIVISION_BY_ZERO));

    // Commit and rollback through the driver's transaction API.
    let transaction = client.transaction().await.expect("begin");
    transaction
        .execute("INSERT INTO kv VALUES (2, 'two')", &[])
        .await
        .expect("insert");
    transaction.commit().await.expect("commit");
    let transaction = client.transaction().await.expect("begin");
    transaction
        .execute("INSERT INTO kv VALUES (3, 'three')", &[])
        .await
        .expect("insert");
    transaction.rollback().await.expect("rollback");
    let count: i64 = scalar(&client, "SELECT count(*) FROM kv").await;
    assert_eq!(count, 2);

    // A failed block: only ROLLBACK, and nothing of it stays.
    client
        .batch_execute("BEGIN; INSERT INTO kv VALUES (4, 'four')")
        .await
        .expect("begin");
    client
        .batch_execute("INSERT INTO kv VALUES (1, 'dup')")
        .await
        .expect_err("duplicate in block");
    let error = client
        .batch_execute("SELECT 1")
        .await
        .expect_err("aborted block");
    assert_eq!(error.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").await.expect("rollback");
    let count: i64 = scalar(&client, "SELECT count(*) FROM kv").await;
    assert_eq!(count, 2);
}

/// RETURNING through the extended protocol: a prepared INSERT/UPDATE/DELETE describes
/// its RETURNING columns, sends the rows, and counts them in its own command tag; and
/// the driver's nested transactions (savepoints) recover a failed inner block while the
/// outer one commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_and_nested_transactions_through_the_driver() {
    let server = Server::start();
    let mut client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, n INTEGER DEFAULT 5)",
        )
        .await
        .expect("create");
    let insert = client
        .prepare(
            "INSERT INTO items (id, name) VALUES ($1, $2), ($3, $4) RETURNING id, n, upper(name)",
        )
        .await
        .expect("prepare");
    assert_eq!(insert.columns().len(), 3);
    assert_eq!(insert.columns()[2].name(), "upper");
    let rows = client
        .query(&insert, &[&1i32, &"a", &2i32, &"b"])
        .await
        .expect("insert returning");
    let got: Vec<(i32, i32, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(got, vec![(1, 5, "A".into()), (2, 5, "B".into())]);
    // The count comes from the command tag (UPDATE 2), the rows are not needed for it.
    let updated = client
        .execute("UPDATE items SET n = n * 10 RETURNING n", &[])
        .await
        .expect("update returning");
    assert_eq!(updated, 2);
    let deleted = client
        .query(
            "DELETE FROM items WHERE id = $1 RETURNING name, n",
            &[&2i32],
        )
        .await
        .expect("delete returning");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].get::<_, i32>(1), 50);

    let mut outer = client.transaction().await.expect("begin");
    outer
        .execute("INSERT INTO items VALUES (3, 'c', 1)", &[])
        .await
        .expect("outer insert");
    {
        let inner = outer.transaction().await.expect("savepoint");
        let error = inner
            .execute("INSERT INTO items VALUES (1, 'dup', 1)", &[])
            .await
            .expect_err("duplicate in the inner block");
        assert_eq!(error.code(), Some(&SqlState::UNIQUE_VIOLATION));
        // Dropped without commit: ROLLBACK TO SAVEPOINT recovers the outer block.
    }
    outer
        .execute("INSERT INTO items VALUES (4, 'd', 1)", &[])
        .await
        .expect("the outer block goes on");
    {
        let inner = outer.transaction().await.expect("savepoint");
        inner
            .execute("INSERT INTO items VALUES (5, 'e', 1)", &[])
            .await
            .expect("inner insert");
        inner.commit().await.expect("release");
    }
    outer.commit().await.expect("commit");
    let ids: Vec<i32> = client
        .query("SELECT id FROM items ORDER BY id", &[])
        .await
        .expect("ids")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids, vec![1, 3, 4, 5]);
}

/// Many connections work at once, each with its own session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections() {
    let server = Server::start();
    server
        .connect()
        .await
        .batch_execute("CREATE TABLE hits (id BIGINT PRIMARY KEY, worker INTEGER)")
        .await
        .expect("create");
    const WORKERS: i64 = 8;
    const EACH: i64 = 25;
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO hits VALUES ($1, $2)")
                .await
                .expect("prepare");
            for i in 0..EACH {
                client
                    .execute(&insert, &[&(worker * EACH + i), &(worker as i32)])
                    .await
                    .expect("insert");
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    let client = server.connect().await;
    let count: i64 = scalar(&client, "SELECT count(*) FROM hits").await;
    assert_eq!(count, WORKERS * EACH);
    let groups = client
        .query(
            "SELECT worker, count(*) FROM hits GROUP BY worker ORDER BY worker",
            &[],
        )
        .await
        .expect("groups");
    assert_eq!(groups.len() as i64, WORKERS);
}

/// SIGTERM shuts the server down with exit status 0, promptly: an idle session is told
/// so with PostgreSQL's FATAL 57P01, its open transaction is rolled back, a running
/// statement is interrupted rather than waited for, and committed data is there after a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_rolls_back_open_transactions() {
    let server = Server::start();
    let (client, connection) = connect_watched(&server).await;
    client
        .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .expect("setup");
    fill_big_table(&client, 12).await; // 4,096 rows: their cross join is 16M rows
    client
        .batch_execute("BEGIN; INSERT INTO t VALUES (2)")
        .await
        .expect("open transaction");
    let busy = server.connect().await;
    let long_statement =
        tokio::spawn(async move { busy.query("SELECT count(*) FROM big a, big b", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let (code, data) = tokio::task::block_in_place(|| server.terminate());
    assert_eq!(code, Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?}: the running statement was not interrupted",
        asked.elapsed()
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the idle session ended")
        .expect("connection task");
    assert_eq!(
        ended.err().and_then(|e| e.code().cloned()),
        Some(SqlState::ADMIN_SHUTDOWN)
    );
    let interrupted = long_statement.await.expect("statement task");
    assert!(interrupted.is_err(), "the long statement finished normally");

    let server = Server::start_in(data, &[]);
    let client = server.connect().await;
    let ids: Vec<i32> = client
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1]);
}

/// Beyond max_connections a client is refused with 53300 (too many clients).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit() {
    let server = Server::start_in(
        tempfile::tempdir().expect("dir"),
        &["--max-connections", "2"],
    );
    let _first = server.connect().await;
    let _second = server.connect().await;
    let error = tokio_postgres::connect(&server.url(), NoTls)
        .await
        .err()
        .expect("third connection refused");
    assert_eq!(
        error.code(),
        Some(&SqlState::TOO_MANY_CONNECTIONS),
        "{error}"
    );
}

/// A program's stdout, after checking that it succeeded (its stderr otherwise).
fn succeeded(output: &std::process::Output) -> std::borrow::Cow<'_, str> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
}

/// psql, the real program: queries, its \dt, \di and \d NAME, an error with its SQLSTATE
/// (VERBOSITY verbose).
#[test]
fn psql_works() {
    let server = Server::start();
    let psql = |args: &[&str]| {
        Command::new("psql")
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                "tester",
                "-d",
                "tessera",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                "VERBOSITY=verbose",
            ])
            .args(args)
            .output()
            .expect("run psql (installed with PostgreSQL)")
    };
    let output = psql(&[
        "-c",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)",
        "-c",
        "INSERT INTO t VALUES (1, 'a'), (2, NULL)",
        "-c",
        "SELECT * FROM t ORDER BY id",
    ]);
    assert_eq!(
        succeeded(&output),
        "CREATE TABLE\nINSERT 0 2\n id | name \n----+------\n  1 | a\n  2 | \n(2 rows)\n\n"
    );
    // psql's own \dt and \di: its catalog queries (joins over pg_class, pg_namespace,
    // pg_am and pg_index, regular expressions, CASE) run unchanged.
    let output = psql(&[
        "-c",
        "CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT UNIQUE, \
         label VARCHAR(20) NOT NULL DEFAULT 'none')",
        "-c",
        "CREATE INDEX u_v_idx ON u (v)",
        "-c",
        "\\dt",
        "-c",
        "\\di",
        "-c",
        "\\dt u*",
    ]);
    assert_eq!(
        succeeded(&output),
        "CREATE TABLE\nCREATE INDEX\n\
        \x20       List of relations\n\
        \x20Schema | Name | Type  |  Owner  \n\
        --------+------+-------+---------\n\
        \x20public | t    | table | tessera\n\
        \x20public | u    | table | tessera\n\
        (2 rows)\n\n\
        \x20            List of relations\n\
        \x20Schema |  Name   | Type  |  Owner  | Table \n\
        --------+---------+-------+---------+-------\n\
        \x20public | t_pkey  | index | tessera | t\n\
        \x20public | u_pkey  | index | tessera | u\n\
        \x20public | u_v_idx | index | tessera | u\n\
        \x20public | u_v_key | index | tessera | u\n\
        (4 rows)\n\n\
        \x20       List of relations\n\
        \x20Schema | Name | Type  |  Owner  \n\
        --------+------+-------+---------\n\
        \x20public | u    | table | tessera\n\
        (1 row)\n\n"
    );
    // \d NAME for a table and an index: psql also asks for policies, statistics,
    // publications and inheritance (arrays, ANY, ::regclass, UNION, generate_series);
    // the expected text is PostgreSQL 15's own output for the same schema.
    let output = psql(&["-c", "\\d u", "-c", "\\d u_v_idx"]);
    assert_eq!(
        succeeded(&output),
        "                                 Table \"public.u\"\n\
        \x20Column |         Type          | Collation | Nullable |          Default          \n\
        --------+-----------------------+-----------+----------+---------------------------\n\
        \x20id     | integer               |           | not null | \n\
        \x20v      | text                  |           |          | \n\
        \x20label  | character varying(20) |           | not null | 'none'::character varying\n\
        Indexes:\n\
        \x20   \"u_pkey\" PRIMARY KEY, btree (id)\n\
        \x20   \"u_v_idx\" btree (v)\n\
        \x20   \"u_v_key\" UNIQUE CONSTRAINT, btree (v)\n\n\
        \x20     Index \"public.u_v_idx\"\n\
        \x20Column | Type | Key? | Definition \n\
        --------+------+------+------------\n\
        \x20v      | text | yes  | v\n\
        btree, for table \"public.u\"\n\n"
    );
    // \l lists the one database under the name the session used.
    let output = psql(&["-c", "\\l"]);
    assert_eq!(
        succeeded(&output),
        "                                         List of databases\n\
        \x20 Name   |  Owner  | Encoding | Collate | Ctype | ICU Locale | Locale Provider | Access privileges \n\
        ---------+---------+----------+---------+-------+------------+-----------------+-------------------\n\
        \x20tessera | tessera | UTF8     | C       | C     |            | libc            | \n\
        (1 row)\n\n"
    );
    let output = psql(&["-c", "SELECT * FROM missing"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("ERROR:  42P01: relation \"missing\" does not exist"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The rows of `accounts` the pgbench scripts use, as one multi-row INSERT.
fn accounts_rows(count: usize) -> String {
    let values: Vec<String> = (1..=count).map(|aid| format!("({aid}, 0)")).collect();
    format!("INSERT INTO accounts VALUES {}", values.join(", "))
}

/// pgbench, the real program, runs the benchmark scripts in simple, extended and
/// prepared modes with several clients and no failed transaction.
#[test]
fn pgbench_runs_in_every_mode() {
    let server = Server::start();
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pgbench");
    let port = server.port.to_string();
    let psql = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "tester",
            "-d",
            "tessera",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
        ])
        .arg(scripts.join("schema.sql"))
        .args(["-c", &accounts_rows(500)])
        .output()
        .expect("run psql");
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    for mode in ["simple", "extended", "prepared"] {
        for script in ["select.sql", "update.sql", "insert.sql"] {
            let output = Command::new("pgbench")
                .args([
                    "-n",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "tester",
                    "-M",
                    mode,
                    "-c",
                    "4",
                    "-j",
                    "2",
                    "-t",
                    "40",
                ])
                .args(["-D", "rows=500", "--max-tries=20", "-f"])
                .arg(scripts.join(script))
                .arg("tessera")
                .output()
                .expect("run pgbench (installed with PostgreSQL)");
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{mode} {script}: {text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                text.contains("number of transactions actually processed: 160/160"),
                "{mode} {script}: {text}"
            );
            assert!(
                text.contains("number of failed transactions: 0"),
                "{mode} {script}: {text}"
            );
        }
    }
    let client = postgres::Client::connect(&server.url(), postgres::NoTls).expect("connect");
    let mut client = client;
    let inserted: i64 = client
        .query_one("SELECT count(*) FROM history", &[])
        .expect("count")
        .get(0);
    assert_eq!(inserted, 3 * 160);
}

/// COPY through psql's `\copy` and plain COPY ... TO STDOUT, run by the same script
/// (tests/copy/script.sql) against Tessera and PostgreSQL, gives the same output: CSV
/// and text with quoting, escapes, NULLs, headers, SERIAL defaults, column lists, COPY
/// of a query; bad records fail with PostgreSQL's messages and line numbers and load
/// nothing; a COPY in a block rolls back with it, and a failed one fails the block.
#[test]
fn copy_through_psql_matches_postgresql() {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/copy");
    let run = |port: u16, user: &str, database: &str| {
        let output = Command::new("psql")
            .current_dir(&directory)
            .args(["-X", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", user, "-d", database, "-f", "script.sql"])
            .output()
            .expect("run psql (installed with PostgreSQL)");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        text
    };
    let server = Server::start();
    let postgres = common::Postgres::start();
    let tessera = run(server.port, "tester", "tessera");
    let anchor = run(postgres.port, "postgres", "postgres");
    assert!(
        anchor.contains("COPY 3"),
        "the script did not run on PostgreSQL: {anchor}"
    );
    assert_eq!(tessera, anchor);
}

/// COPY's refusals: what Tessera does not offer (server files, binary format) and
/// option mistakes get clear errors with PostgreSQL's SQLSTATEs.
#[test]
fn copy_refusals() {
    let server = Server::start();
    let psql = |sql: &str| {
        let output = Command::new("psql")
            .args(["-X", "-h", "127.0.0.1", "-p", &server.port.to_string()])
            .args([
                "-U",
                "tester",
                "-d",
                "tessera",
                "-v",
                "VERBOSITY=verbose",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(psql("CREATE TABLE c (a INT)").is_empty());
    assert!(psql("COPY c FROM '/etc/passwd'").contains("0A000"));
    assert!(psql("COPY c TO PROGRAM 'ls'").contains("0A000"));
    assert!(psql("COPY c FROM STDIN (FORMAT binary)").contains("0A000"));
    assert!(psql("COPY c FROM STDIN (QUOTE '''')").contains("0A000"));
    assert!(psql("COPY c FROM STDIN (FORMAT csv, DELIMITER '\"')").contains("22023"));
    assert!(psql("COPY c (a, a) FROM STDIN").contains("42701"));
    assert!(psql("COPY nowhere FROM STDIN").contains("42P01"));
}

/// psycopg 3 (from PyPI, installed by scripts/setup.sh into target/pyenv): every Python
/// type, NULLs, prepared statements, error classes by SQLSTATE, transactions.
#[test]
fn psycopg_works() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let server = Server::start();
    let output = Command::new(&python)
        .arg(root.join("tests/python/psycopg_check.py"))
        .arg(server.port.to_string())
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Fills `big` with 2^doublings rows by repeatedly copying the table into itself.
async fn fill_big_table(client: &tokio_postgres::Client, doublings: u32) {
    client
        .batch_execute(
            "CREATE TABLE big (id BIGINT PRIMARY KEY, v TEXT); INSERT INTO big VALUES (1, 'row')",
        )
        .await
        .expect("create");
    for power in 0..doublings {
        let offset = 1i64 << power;
        client
            .batch_execute(&format!("INSERT INTO big SELECT id + {offset}, v FROM big"))
            .await
            .expect("double");
    }
}

/// statement_timeout stops a long statement with 57014, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_stops_long_statements() {
    let server = Server::start();
    let client = server.connect().await;
    fill_big_table(&client, 14).await; // 16,384 rows
    client
        .batch_execute("SET statement_timeout = 1")
        .await
        .expect("set timeout");
    let error = client
        .query(
            "SELECT count(*) FROM big WHERE lower(v) LIKE '%nothing%'",
            &[],
        )
        .await
        .expect_err("timeout");
    assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED), "{error}");
    let message = error
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("statement timeout"), "{message}");
    client
        .batch_execute("SET statement_timeout = '0'")
        .await
        .expect("reset timeout");
    let count: i64 = scalar(&client, "SELECT count(*) FROM big").await;
    assert_eq!(count, 1 << 14);
    let error = client
        .batch_execute("SET statement_timeout = 'soon'")
        .await
        .expect_err("bad value");
    assert_eq!(error.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
}

/// A CancelRequest (sent on its own connection with the session's pid and secret key)
/// stops the statement running on that session with 57014; the session stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_a_running_statement() {
    let server = Server::start();
    let client = server.connect().await;
    fill_big_table(&client, 17).await; // 131,072 rows
    let slow = "SELECT count(*) FROM big WHERE lower(v) || v LIKE '%nothing%'";
    const ATTEMPTS: usize = 5;
    let mut cancelled = false;
    for attempt in 0..ATTEMPTS {
        let token = client.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50 * (attempt as u64 + 1))).await;
            token.cancel_query(NoTls).await
        });
        let outcome = client.query(slow, &[]).await;
        canceller
            .await
            .expect("canceller task")
            .expect("send cancel request");
        match outcome {
            Err(error) => {
                assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED), "{error}");
                cancelled = true;
                break;
            }
            // The query won the race; try again with a later cancel... or the same.
            Ok(_) => continue,
        }
    }
    assert!(
        cancelled,
        "no attempt was cancelled: the statement always finished first"
    );
    let one: i32 = scalar(&client, "SELECT 1").await;
    assert_eq!(one, 1);
}

/// Resident memory of a process, from /proc, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc status")
}

/// Hostile bytes close only their own connection: garbage instead of a startup packet,
/// a truncated frame, an unknown message type and an absurd length all end that
/// connection, and the server keeps serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_close_only_their_connection() {
    use std::io::{Read, Write};
    let server = Server::start();
    let healthy = server.connect().await;
    let mut cases: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef],
        vec![0xff; 64],
        vec![0, 0, 0],
    ];
    // After a valid startup: an unknown message type, a Query whose length is absurd,
    // a Query with a bad length field, and truncated Bind and Parse messages (on which
    // pgwire's decoder panics; the connection must just end).
    for tail in [
        vec![b'?', 0, 0, 0, 4],
        vec![b'B', 0, 0, 0, 4],
        vec![b'P', 0, 0, 0, 5, 0],
        vec![b'Q', 0x7f, 0xff, 0xff, 0xff, b'x'],
        vec![b'Q', 0, 0, 0, 2],
    ] {
        let mut bytes = startup_packet("hostile");
        bytes.extend_from_slice(&tail);
        cases.push(bytes);
    }
    for bytes in cases {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink); // ends when the server closes the connection
        let one: i32 = scalar(&healthy, "SELECT 1").await;
        assert_eq!(one, 1);
    }
}

/// Thousands of connections opened and dropped leave no session behind (the connection
/// limit would refuse new clients) and do not grow the server's memory without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_leak_nothing() {
    const ROUNDS: usize = 2000;
    const WARM_UP: usize = 200;
    const GROWTH_LIMIT_KIB: u64 = 64 * 1024;
    let server = Server::start_in(
        tempfile::tempdir().expect("dir"),
        &["--max-connections", "8"],
    );
    let pid = server.process.0.id();
    let mut baseline = 0;
    for round in 0..ROUNDS {
        let client = server.connect().await;
        if round % 2 == 0 {
            client
                .batch_execute("BEGIN; SELECT 1")
                .await
                .expect("query"); // left open on purpose
        }
        drop(client);
        if round == WARM_UP {
            baseline = resident_kib(pid);
        }
    }
    // With a limit of 8, a leaked session would have refused a connection long ago.
    let client = server.connect().await;
    let one: i32 = scalar(&client, "SELECT 1").await;
    assert_eq!(one, 1);
    let grown = resident_kib(pid).saturating_sub(baseline);
    assert!(
        grown < GROWTH_LIMIT_KIB,
        "resident memory grew by {grown} KiB over {ROUNDS} connections"
    );
}

/// A server whose config file (written into its data directory's parent) adds `toml`.
fn start_with_config(toml: &str) -> (Server, tempfile::TempDir) {
    let config_dir = tempfile::tempdir().expect("config dir");
    let path = config_dir.path().join("tessera.toml");
    std::fs::write(&path, toml).expect("write config");
    let server = Server::start_in(
        tempfile::tempdir().expect("data dir"),
        &["--config", path.to_str().expect("utf-8 path")],
    );
    (server, config_dir)
}

/// The verifier `tessera hash-password` prints for `password`.
fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    let output = child.wait_with_output().expect("hash-password output");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

fn users_toml() -> String {
    format!(
        "[[users]]\nname = \"alice\"\npassword = \"{}\"\n",
        hash_password("correct horse")
    )
}

/// SCRAM-SHA-256: the right password gets in (and current_user/current_database answer
/// from the login); a wrong password, an unknown user and a missing password are all
/// refused with 28P01, the same way, so user names cannot be probed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_authentication_with_scram() {
    let (server, _config) = start_with_config(&users_toml());
    let url = |user: &str, password: &str| {
        format!(
            "host=127.0.0.1 port={} user={user} password='{password}' dbname=shop",
            server.port
        )
    };
    let (client, connection) = tokio_postgres::connect(&url("alice", "correct horse"), NoTls)
        .await
        .expect("alice logs in");
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT current_user, current_database(), version()", &[])
        .await
        .expect("identity query");
    assert_eq!(row.get::<_, String>(0), "alice");
    assert_eq!(row.get::<_, String>(1), "shop");
    assert!(row
        .get::<_, String>(2)
        .starts_with("PostgreSQL 15.0 (Tessera "));
    for (user, password) in [("alice", "wrong"), ("mallory", "correct horse")] {
        let error = tokio_postgres::connect(&url(user, password), NoTls)
            .await
            .err()
            .unwrap_or_else(|| panic!("{user}/{password} must be refused"));
        assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{error}");
        let message = error
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(message.contains(&format!("\"{user}\"")), "{message}");
    }
    let no_password = format!("host=127.0.0.1 port={} user=alice", server.port);
    assert!(tokio_postgres::connect(&no_password, NoTls).await.is_err());
}

/// Runs openssl (installed by scripts/setup.sh) in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A server with the users of [`users_toml`] that accepts only TLS, with the
/// certificate and key in `certificates` (see [`make_signed_certificate`]).
fn start_requiring_tls(certificates: &std::path::Path) -> (Server, tempfile::TempDir) {
    let toml = format!(
        "{}[tls]\ncert = \"{}\"\nkey = \"{}\"\nrequired = true\n",
        users_toml(),
        certificates.join("cert.pem").display(),
        certificates.join("key.pem").display()
    );
    start_with_config(&toml)
}

/// TLS through rustls, seen by psql (libpq/OpenSSL): with `required = true` a TLS client
/// logs in, with SCRAM channel binding (SCRAM-SHA-256-PLUS) when it asks for it, and a
/// plaintext client is refused with 28000.
#[test]
fn tls_with_psql() {
    let certificates = tempfile::tempdir().expect("cert dir");
    make_signed_certificate(certificates.path());
    let (server, _config) = start_requiring_tls(certificates.path());
    let psql = |options: &str| {
        Command::new("psql")
            .arg("-XAtc")
            .arg("SELECT current_user")
            .arg(format!(
                "host=127.0.0.1 port={} user=alice dbname=tessera {options}",
                server.port
            ))
            .env("PGPASSWORD", "correct horse")
            .output()
            .expect("run psql")
    };
    for options in ["sslmode=require", "sslmode=require channel_binding=require"] {
        let output = psql(options);
        assert!(
            output.status.success(),
            "{options}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout), "alice\n");
    }
    let output = psql("sslmode=disable");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("accepts only TLS connections"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority and a server certificate it signed for the name `localhost`
/// (not for 127.0.0.1), as `ca.pem`, `cert.pem` and `key.pem` in `dir` (openssl).
fn make_signed_certificate(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\n",
    )
    .expect("write extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ],
    );
}

/// `tessera shell --connect` speaks TLS with libpq's sslmode meanings, against a server
/// that refuses plaintext: the default (prefer) and require encrypt; verify-full checks
/// the chain and the host name, verify-ca only the chain; a certificate from another
/// authority, a name the certificate does not hold, and sslmode=disable all fail.
#[test]
fn shell_connects_over_tls() {
    let certificates = tempfile::tempdir().expect("cert dir");
    make_signed_certificate(certificates.path());
    let other_ca = tempfile::tempdir().expect("other CA dir");
    make_signed_certificate(other_ca.path());
    let (server, _config) = start_requiring_tls(certificates.path());
    let ca = certificates.path().join("ca.pem");
    let wrong_ca = other_ca.path().join("ca.pem");
    let shell = |host: &str, options: String| {
        let url = format!("postgres://alice@{host}:{}/tessera{options}", server.port);
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["shell", "--format", "csv", "--connect", &url])
            .args(["-c", "SELECT current_user AS u"])
            .env("PGPASSWORD", "correct horse")
            .env("HOME", certificates.path()) // no ~/.postgresql/root.crt
            .output()
            .expect("run tessera shell")
    };
    let succeeds = [
        ("localhost", String::new()),
        ("localhost", "?sslmode=require".to_string()),
        (
            "localhost",
            format!("?sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
        (
            "127.0.0.1",
            format!("?sslmode=verify-ca&sslrootcert={}", ca.display()),
        ),
    ];
    for (host, options) in succeeds {
        let output = shell(host, options.clone());
        assert!(
            output.status.success(),
            "{host}{options}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout), "u\nalice\n");
    }
    let fails = [
        (
            "127.0.0.1",
            format!("?sslmode=verify-full&sslrootcert={}", ca.display()),
            "certificate",
        ),
        (
            "localhost",
            format!("?sslmode=verify-full&sslrootcert={}", wrong_ca.display()),
            "certificate",
        ),
        (
            "localhost",
            "?sslmode=verify-full".to_string(),
            "root certificate file",
        ),
        (
            "localhost",
            "?sslmode=disable".to_string(),
            "accepts only TLS connections",
        ),
    ];
    for (host, options, expected) in fails {
        let output = shell(host, options.clone());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{host}{options} must fail");
        assert!(stderr.contains(expected), "{host}{options}: {stderr}");
    }
}

/// Connects and returns the client with the connection task's handle, whose result
/// says how the server ended the session.
async fn connect_watched(
    server: &Server,
) -> (
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let (client, connection) = tokio_postgres::connect(&server.url(), NoTls)
        .await
        .expect("connect");
    (client, tokio::spawn(connection))
}

/// Idle timeouts end sessions with PostgreSQL's FATAL errors: idle_session_timeout
/// (57P05) set by SET, idle_in_transaction_session_timeout (25P03) from the config
/// file. A session inside its limits is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeouts_end_sessions() {
    let (server, _config) = start_with_config("idle_in_transaction_session_timeout = \"400ms\"\n");
    let ended_with = |handle: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>| async move {
        let outcome = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the server ended the session in time")
            .expect("connection task");
        outcome.err().and_then(|e| e.code().cloned())
    };

    let (client, connection) = connect_watched(&server).await;
    client
        .batch_execute("SET idle_session_timeout = '300ms'")
        .await
        .expect("set");
    assert_eq!(
        ended_with(connection).await,
        Some(SqlState::IDLE_SESSION_TIMEOUT)
    );

    let (client, connection) = connect_watched(&server).await;
    client.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(
        ended_with(connection).await,
        Some(SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT)
    );

    // Outside a transaction the config's in-transaction limit does not apply.
    let patient = server.connect().await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let one: i32 = scalar(&patient, "SELECT 1").await;
    assert_eq!(one, 1);
    let shown: String = scalar(&patient, "SHOW idle_in_transaction_session_timeout").await;
    assert_eq!(shown, "400ms");
}

/// A message beyond max_message_size is refused from its header (FATAL 08P01, before
/// its body is buffered) and only its connection ends; messages within it work. Read
/// on a raw socket, so that what the server sent is seen exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused() {
    use std::io::{Read, Write};
    let (server, _config) = start_with_config("max_message_size = 4096\n");
    let other = server.connect().await;
    let small: String = scalar(&other, &format!("SELECT '{}'", "x".repeat(2000))).await;
    assert_eq!(small.len(), 2000);

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(&startup_packet("big")).expect("startup");
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !seen.ends_with(b"Z\0\0\0\x05I") {
        let n = stream.read(&mut buffer).expect("read startup reply");
        assert!(n > 0, "closed during startup");
        seen.extend_from_slice(&buffer[..n]);
    }
    let mut query = format!("SELECT '{}'", "x".repeat(10_000)).into_bytes();
    query.push(0);
    let mut message = vec![b'Q'];
    message.extend_from_slice(&((query.len() + 4) as u32).to_be_bytes());
    message.extend_from_slice(&query);
    stream.write_all(&message).expect("send query");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with('E'), "{reply}");
    assert!(reply.contains("SFATAL\0"), "{reply}");
    assert!(reply.contains("C08P01\0"), "{reply}");
    assert!(
        reply.contains("exceeds max_message_size (4096 bytes)"),
        "{reply}"
    );
    let one: i32 = scalar(&other, "SELECT 1").await;
    assert_eq!(one, 1);
}

/// A startup packet (protocol 3.0) for `user` and database tessera.
fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608u32.to_be_bytes()); // protocol 3.0
    for part in ["user", user, "database", "tessera"] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// Listening beyond loopback without users is refused at start, saying how to
/// configure authentication.
#[test]
fn non_loopback_without_users_refuses_to_start() {
    let data = tempfile::tempdir().expect("dir");
    let output = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["server", "--listen", "0.0.0.0:0", "--data"])
        .arg(data.path())
        .output()
        .expect("run tessera server");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[[users]]") && stderr.contains("hash-password"),
        "{stderr}"
    );
}

/// `tessera shell --connect` prints exactly what the embedded shell prints for the same
/// input — tables, meta-commands, every output format, errors and exit status — and
/// logs in with a password (PGPASSWORD) on a server that requires one.
#[test]
fn shell_connects_to_a_server() {
    let (server, _config) = start_with_config(&users_toml());
    let script = [
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(10) NOT NULL DEFAULT 'x', score DOUBLE PRECISION)",
        "CREATE INDEX t_name ON t (name)",
        "INSERT INTO t VALUES (1, 'a', 1.5), (2, 'b', NULL)",
        "UPDATE t SET score = 2.25 WHERE id = 2",
        "SELECT * FROM t ORDER BY id",
        "\\dt",
        "\\di",
        "\\d t",
        "BEGIN; DELETE FROM t WHERE id = 1; ROLLBACK",
        "SELECT count(*) AS n, sum(score) FROM t",
        "SELECT 1 / 0",
    ];
    let run = |target: &[&str], format: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command.arg("shell").args(target).args(["--format", format]);
        for line in script {
            command.args(["-c", line]);
        }
        command.env("PGPASSWORD", "correct horse");
        command.output().expect("run tessera shell")
    };
    let url = format!("postgres://alice@127.0.0.1:{}/tessera", server.port);
    for format in ["table", "csv", "json"] {
        let data = tempfile::tempdir().expect("dir");
        let embedded = run(&["--data", data.path().to_str().expect("utf-8")], format);
        let remote = run(&["--connect", &url], format);
        // The server keeps the table: drop it for the next format's run.
        let reset = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["shell", "--connect", &url, "-c", "DROP TABLE t"])
            .env("PGPASSWORD", "correct horse")
            .output()
            .expect("reset");
        assert!(reset.status.success());
        assert_eq!(
            String::from_utf8_lossy(&remote.stdout),
            String::from_utf8_lossy(&embedded.stdout),
            "{format}: stdout differs"
        );
        assert_eq!(
            String::from_utf8_lossy(&remote.stderr),
            String::from_utf8_lossy(&embedded.stderr),
            "{format}: stderr differs"
        );
        assert_eq!(
            remote.status.code(),
            Some(3),
            "{format}: the error stops the run"
        );
        assert!(String::from_utf8_lossy(&remote.stderr).contains("ERROR:  22012: division by zero"));
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["shell", "--connect", &url, "-c", "SELECT 1"])
        .env("PGPASSWORD", "wrong")
        .output()
        .expect("run tessera shell");
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("28P01"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// Settings given at connection time in the `options` startup parameter (libpq's
/// PGOPTIONS) are the session's own: SHOW reports them and RESET returns to them; an
/// unknown or invalid one refuses the connection with the setting named.
#[tokio::test]
async fn startup_options_set_session_settings() {
    let server = Server::start();
    let url = format!(
        "{} options='-c read_consistency=lease -c statement_timeout=5s'",
        server.url()
    );
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    let shown = client
        .simple_query("SHOW read_consistency")
        .await
        .expect("show");
    let value = shown.iter().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("lease"));
    for bad in ["-c no_such_setting=1", "-c read_consistency=sometimes"] {
        let url = format!("{} options='{bad}'", server.url());
        let outcome = async {
            let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
            tokio::spawn(connection);
            client.simple_query("SELECT 1").await
        }
        .await;
        let error = outcome.expect_err(bad);
        let message = error
            .as_db_error()
            .map(|db| db.message().to_string())
            .unwrap_or_else(|| error.to_string());
        assert!(
            message.contains("read_consistency") || message.contains("no_such_setting"),
            "{bad}: {message}"
        );
    }
}
