//! The embedded engine against SQLite, in the same run, on the same machine.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, so both engines sync every commit;
//! both use statements parsed once (SQLite's prepared statements, Tessera's
//! `Session::prepare`). Each workload reports operations per second for both and the
//! Tessera/SQLite ratio, as a Markdown table ready for `docs/performance.md`.
//!
//! Run: `cargo bench --bench embedded` (set `TESSERA_BENCH_SCALE=0.1` for a quick look).

use rusqlite::params;
use std::time::{Duration, Instant};
use tessera::{Database, Value};

/// Rows loaded for the read workloads, and inserted by the bulk workload.
const TABLE_ROWS: i64 = 100_000;

struct Workload {
    name: &'static str,
    operations: u64,
    tessera: Duration,
    sqlite: Duration,
}

impl Workload {
    fn rate(operations: u64, elapsed: Duration) -> f64 {
        operations as f64 / elapsed.as_secs_f64()
    }

    fn row(&self) -> String {
        let tessera = Self::rate(self.operations, self.tessera);
        let sqlite = Self::rate(self.operations, self.sqlite);
        format!(
            "| {} | {} | {:.0} | {:.0} | {:.2}× |",
            self.name,
            self.operations,
            tessera,
            sqlite,
            tessera / sqlite
        )
    }
}

fn scaled(n: u64) -> u64 {
    let scale: f64 = std::env::var("TESSERA_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as u64).max(10)
}

/// A deterministic pseudo-random sequence (xorshift), so both engines look up the same keys.
fn keys(count: u64, modulo: i64) -> Vec<i64> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % modulo as u64) as i64
        })
        .collect()
}

fn tessera_db(dir: &std::path::Path) -> Database {
    std::fs::create_dir_all(dir).expect("bench dir");
    let db = Database::open(dir.join("tessera")).expect("open tessera");
    db.session()
        .execute("CREATE TABLE bench (id BIGINT PRIMARY KEY, k BIGINT, v TEXT); CREATE INDEX bench_k ON bench (k)")
        .expect("schema");
    db
}

fn sqlite_db(dir: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("sqlite.db")).expect("open sqlite");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE bench (id INTEGER PRIMARY KEY, k INTEGER, v TEXT); CREATE INDEX bench_k ON bench (k);",
    )
    .expect("sqlite schema");
    conn
}

fn payload(id: i64) -> String {
    format!("payload-{id:08}-abcdefghijklmnopqrstuvwxyz")
}

/// Secondary-index key of a row: a permutation of the ids, so it is unique but unordered.
fn index_key(id: i64) -> i64 {
    (id * 7919) % TABLE_ROWS
}

fn autocommit_inserts(dir: &std::path::Path) -> Workload {
    let operations = scaled(2_000);
    let db = tessera_db(&dir.join("autocommit"));
    let mut session = db.session();
    let insert = session
        .prepare("INSERT INTO bench VALUES ($1, $2, $3)")
        .expect("prepare");
    let started = Instant::now();
    for id in 0..operations as i64 {
        session
            .execute_prepared(
                &insert,
                &[
                    Value::BigInt(id),
                    Value::BigInt(index_key(id)),
                    Value::Text(payload(id)),
                ],
            )
            .expect("insert");
    }
    let tessera = started.elapsed();
    let conn = sqlite_db(&dir.join("autocommit"));
    let mut statement = conn
        .prepare("INSERT INTO bench VALUES (?1, ?2, ?3)")
        .expect("prepare");
    let started = Instant::now();
    for id in 0..operations as i64 {
        statement
            .execute(params![id, index_key(id), payload(id)])
            .expect("insert");
    }
    Workload {
        name: "autocommit single-row INSERT",
        operations,
        tessera,
        sqlite: started.elapsed(),
    }
}

fn bulk_load(dir: &std::path::Path) -> (Workload, Database, rusqlite::Connection) {
    let rows = scaled(TABLE_ROWS as u64) as i64;
    let db = tessera_db(dir);
    let mut session = db.session();
    let insert = session
        .prepare("INSERT INTO bench VALUES ($1, $2, $3)")
        .expect("prepare");
    let started = Instant::now();
    session.execute("BEGIN").expect("begin");
    for id in 0..rows {
        session
            .execute_prepared(
                &insert,
                &[
                    Value::BigInt(id),
                    Value::BigInt(index_key(id)),
                    Value::Text(payload(id)),
                ],
            )
            .expect("insert");
    }
    let statements_done = started.elapsed();
    session.execute("COMMIT").expect("commit");
    let tessera = started.elapsed();
    eprintln!(
        "bulk load: statements {statements_done:?}, commit {:?}",
        tessera - statements_done
    );
    let mut conn = sqlite_db(dir);
    let started = Instant::now();
    {
        let txn = conn.transaction().expect("begin");
        {
            let mut statement = txn
                .prepare("INSERT INTO bench VALUES (?1, ?2, ?3)")
                .expect("prepare");
            for id in 0..rows {
                statement
                    .execute(params![id, index_key(id), payload(id)])
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let workload = Workload {
        name: "bulk INSERT in one transaction (rows/s)",
        operations: rows as u64,
        tessera,
        sqlite: started.elapsed(),
    };
    (workload, db, conn)
}

fn point_reads(
    name: &'static str,
    db: &Database,
    conn: &rusqlite::Connection,
    tessera_sql: &str,
    sqlite_sql: &str,
) -> Workload {
    let rows = scaled(TABLE_ROWS as u64) as i64;
    let lookups = keys(scaled(50_000), rows);
    let mut session = db.session();
    let query = session.prepare(tessera_sql).expect("prepare");
    let started = Instant::now();
    for key in &lookups {
        let result = session
            .execute_prepared(&query, &[Value::BigInt(*key)])
            .expect("select");
        assert_eq!(result.rows.len(), 1, "{tessera_sql} with {key}");
    }
    let tessera = started.elapsed();
    let mut statement = conn.prepare(sqlite_sql).expect("prepare");
    let started = Instant::now();
    for key in &lookups {
        let found: String = statement
            .query_row(params![key], |row| row.get(0))
            .expect("select");
        assert!(!found.is_empty());
    }
    Workload {
        name,
        operations: lookups.len() as u64,
        tessera,
        sqlite: started.elapsed(),
    }
}

fn range_scans(db: &Database, conn: &rusqlite::Connection) -> Workload {
    let rows = scaled(TABLE_ROWS as u64) as i64;
    let span = 1_000.min(rows - 1);
    let starts = keys(scaled(200), rows - span);
    let mut session = db.session();
    let query = session
        .prepare("SELECT id, k, v FROM bench WHERE id >= $1 AND id < $2")
        .expect("prepare");
    let started = Instant::now();
    for start in &starts {
        let result = session
            .execute_prepared(
                &query,
                &[Value::BigInt(*start), Value::BigInt(start + span)],
            )
            .expect("scan");
        assert_eq!(result.rows.len() as i64, span);
    }
    let tessera = started.elapsed();
    let mut statement = conn
        .prepare("SELECT id, k, v FROM bench WHERE id >= ?1 AND id < ?2")
        .expect("prepare");
    let started = Instant::now();
    for start in &starts {
        let mut rows = statement.query(params![start, start + span]).expect("scan");
        let mut count = 0;
        while let Some(row) = rows.next().expect("row") {
            let _: (i64, i64, String) = (
                row.get(0).expect("id"),
                row.get(1).expect("k"),
                row.get(2).expect("v"),
            );
            count += 1;
        }
        assert_eq!(count, span);
    }
    Workload {
        name: "1,000-row range scan by key (scans/s)",
        operations: starts.len() as u64,
        tessera,
        sqlite: started.elapsed(),
    }
}

fn main() {
    // `cargo test --benches` passes --bench-less flags; run only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-")
        .tempdir()
        .expect("temp dir");
    eprintln!("benchmarking in {}", dir.path().display());
    // TESSERA_BENCH_ONLY=bulk stops after the bulk load (for profiling it alone).
    let only_bulk = std::env::var("TESSERA_BENCH_ONLY").is_ok_and(|v| v == "bulk");
    let mut results = if only_bulk {
        Vec::new()
    } else {
        vec![autocommit_inserts(dir.path())]
    };
    let (bulk, db, conn) = bulk_load(dir.path());
    results.push(bulk);
    if only_bulk {
        println!("{}", results[0].row());
        return;
    }
    results.push(point_reads(
        "point SELECT by primary key",
        &db,
        &conn,
        "SELECT v FROM bench WHERE id = $1",
        "SELECT v FROM bench WHERE id = ?1",
    ));
    results.push(point_reads(
        "point SELECT by secondary index",
        &db,
        &conn,
        "SELECT v FROM bench WHERE k = $1",
        "SELECT v FROM bench WHERE k = ?1",
    ));
    results.push(range_scans(&db, &conn));
    println!("| workload | operations | Tessera ops/s | SQLite ops/s | Tessera / SQLite |");
    println!("|---|---:|---:|---:|---:|");
    for workload in &results {
        println!("{}", workload.row());
    }
}
