//! COPY through the embedded API: data in chunks of any size loads whole, a bad record
//! anywhere loads nothing, COPY and the copy conversation refuse misuse clearly, and a
//! large COPY is measured against multi-row INSERT of the same rows.

use std::time::Instant;
use tessera::Database;

fn count(session: &mut tessera::Session, table: &str) -> i64 {
    let result = session
        .execute(&format!("SELECT count(*) FROM {table}"))
        .unwrap();
    result[0].rows[0].try_get::<i64>(0).unwrap()
}

/// A chunked reader: hands out at most `chunk` bytes per read, so records straddle
/// reads the way CopyData messages straddle lines.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buffer.len()).min(self.data.len());
        buffer[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Every chunking of the same data loads the same rows; defaults fill the columns the
/// COPY leaves out.
#[test]
fn chunked_data_loads_the_same_rows() {
    let db = Database::temporary().unwrap();
    let mut session = db.session();
    session
        .execute("CREATE TABLE t (id SERIAL PRIMARY KEY, name TEXT, n INT DEFAULT 7)")
        .unwrap();
    let data = b"a\nb\\tc\n\\N\n\"q\"\n";
    for chunk in [1, 2, 5, 1000] {
        session.execute("TRUNCATE t").unwrap();
        let result = session
            .copy_from("COPY t (name) FROM STDIN", Chunked { data, chunk })
            .unwrap();
        assert_eq!(result.tag, "COPY 4");
        let rows = session
            .execute("SELECT name, n FROM t ORDER BY id")
            .unwrap()
            .remove(0)
            .rows;
        let names: Vec<Option<String>> = rows.iter().map(|r| r.try_get(0).unwrap()).collect();
        let expected = [Some("a"), Some("b\tc"), None, Some("\"q\"")];
        assert_eq!(
            names,
            expected.map(|s| s.map(String::from)),
            "chunk {chunk}"
        );
        assert!(rows.iter().all(|r| r.try_get::<i32>(1).unwrap() == 7));
    }
}

/// A bad record at the end of a long COPY leaves the table as it was; its error names
/// the line. Outside a block the session goes on normally.
#[test]
fn a_bad_last_record_loads_nothing() {
    let db = Database::temporary().unwrap();
    let mut session = db.session();
    session
        .execute("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)")
        .unwrap();
    let mut data = String::new();
    for i in 0..5000 {
        data.push_str(&format!("{i},{i}\n"));
    }
    data.push_str("5000,\n");
    let error = session
        .copy_from("COPY t FROM STDIN (FORMAT csv)", data.as_bytes())
        .unwrap_err();
    assert_eq!(error.sqlstate(), "23502");
    assert_eq!(
        error.context().as_deref(),
        Some("COPY t, line 5001: \"5000,\"")
    );
    assert_eq!(count(&mut session, "t"), 0);
    assert!(!session.copy_in_progress());
}

/// While a COPY waits for data no other statement runs; the conversation's calls without
/// a COPY are refused; CopyFail undoes the rows sent so far.
#[test]
fn the_copy_conversation_is_guarded() {
    let db = Database::temporary().unwrap();
    let mut session = db.session();
    session.execute("CREATE TABLE t (a INT)").unwrap();
    assert_eq!(session.copy_data(b"1\n").unwrap_err().sqlstate(), "55000");
    let started = session.execute("COPY t FROM STDIN").unwrap();
    assert!(started[0].copy.is_some());
    assert_eq!(session.execute("SELECT 1").unwrap_err().sqlstate(), "55000");
    session.copy_data(b"1\n2\n").unwrap();
    let failed = session.copy_fail("client gave up");
    assert_eq!(failed.sqlstate(), "57014");
    assert_eq!(count(&mut session, "t"), 0);
    let error = session.execute("COPY t FROM STDIN; SELECT 1").unwrap_err();
    assert_eq!(error.sqlstate(), "0A000");
}

/// COPY loads rows at least as fast as multi-row INSERT of the same rows in one
/// transaction (it skips SQL parsing and planning per row). Prints both rates.
#[test]
fn copy_is_not_slower_than_multi_row_insert() {
    const ROWS: usize = 100_000;
    const PER_INSERT: usize = 1000;
    let db = Database::temporary().unwrap();
    let mut session = db.session();
    session
        .execute("CREATE TABLE a (id INT PRIMARY KEY, b INT, filler TEXT)")
        .unwrap();
    session
        .execute("CREATE TABLE c (id INT PRIMARY KEY, b INT, filler TEXT)")
        .unwrap();
    let filler = "x".repeat(84);
    let started = Instant::now();
    session.execute("BEGIN").unwrap();
    for first in (0..ROWS).step_by(PER_INSERT) {
        let values: Vec<String> = (first..first + PER_INSERT)
            .map(|i| format!("({i}, {}, '{filler}')", i % 10))
            .collect();
        session
            .execute(&format!("INSERT INTO a VALUES {}", values.join(",")))
            .unwrap();
    }
    session.execute("COMMIT").unwrap();
    let insert_seconds = started.elapsed().as_secs_f64();
    let mut data = String::with_capacity(ROWS * 100);
    for i in 0..ROWS {
        data.push_str(&format!("{i}\t{}\t{filler}\n", i % 10));
    }
    let started = Instant::now();
    session
        .copy_from("COPY c FROM STDIN", data.as_bytes())
        .unwrap();
    let copy_seconds = started.elapsed().as_secs_f64();
    assert_eq!(count(&mut session, "c"), ROWS as i64);
    let rate = |seconds: f64| ROWS as f64 / seconds;
    println!(
        "multi-row INSERT {:.0} rows/s, COPY {:.0} rows/s ({:.2}x)",
        rate(insert_seconds),
        rate(copy_seconds),
        insert_seconds / copy_seconds
    );
    assert!(
        copy_seconds <= insert_seconds * 1.1,
        "COPY took {copy_seconds:.2}s, multi-row INSERT {insert_seconds:.2}s"
    );
}
