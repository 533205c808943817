//! Durability under kill -9: a `tessera shell` process receives a stream of autocommit
//! INSERTs on stdin and acknowledges each (`INSERT 0 1` on stdout) once its commit is
//! synced. The test SIGKILLs the process mid-stream, reopens the database, and checks
//! that every acknowledged insert is there.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Acknowledged inserts to wait for before the kill.
const ACKS_BEFORE_KILL: u64 = 300;
/// Upper bound on the whole stream, so the test always ends.
const MAX_INSERTS: u64 = 100_000;
const TIME_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn acknowledged_inserts_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("db");
    let setup = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["shell", "--data"])
        .arg(&data)
        .args([
            "-c",
            "CREATE TABLE events (id BIGINT PRIMARY KEY, payload TEXT NOT NULL)",
        ])
        .output()
        .expect("run tessera");
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["shell", "--data"])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tessera");
    let mut guard = common::ChildGuard(child);
    let mut stdin = guard.0.stdin.take().expect("stdin");
    let stdout = guard.0.stdout.take().expect("stdout");

    // Feed inserts from a thread; it stops when the pipe breaks (the process is killed).
    let writer = std::thread::spawn(move || {
        for id in 1..=MAX_INSERTS {
            let line = format!("INSERT INTO events VALUES ({id}, 'event number {id}');\n");
            if stdin.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut acknowledged = 0u64;
    let mut lines = BufReader::new(stdout).lines();
    while acknowledged < ACKS_BEFORE_KILL && started.elapsed() < TIME_LIMIT {
        match lines.next() {
            Some(Ok(line)) if line == "INSERT 0 1" => acknowledged += 1,
            Some(Ok(other)) => panic!("unexpected output: {other}"),
            Some(Err(e)) => panic!("reading output: {e}"),
            None => break,
        }
    }
    assert_eq!(
        acknowledged, ACKS_BEFORE_KILL,
        "the shell stopped acknowledging early"
    );
    // SIGKILL: no chance to flush or close anything.
    guard.0.kill().expect("kill -9");
    guard.0.wait().expect("reap");
    writer.join().expect("writer thread");

    let db = tessera::Database::open(&data).expect("reopen after kill");
    let mut session = db.session();
    let results = session
        .execute("SELECT count(*), min(id), max(id) FROM events WHERE id <= 300")
        .expect("query");
    let row = &results[0].rows[0];
    assert_eq!(
        row.try_get::<i64>(0).expect("count"),
        ACKS_BEFORE_KILL as i64,
        "an acknowledged insert was lost"
    );
    assert_eq!(row.try_get::<i64>(1).expect("min"), 1);
    assert_eq!(row.try_get::<i64>(2).expect("max"), ACKS_BEFORE_KILL as i64);
    // Rows past the acknowledged ones may or may not be there (in flight), but must be whole.
    let results = session
        .execute("SELECT count(*) FROM events WHERE payload <> 'event number ' || id")
        .expect("query");
    assert_eq!(
        results[0].rows[0].try_get::<i64>(0).expect("count"),
        0,
        "a torn row"
    );
}
