//! Tessera as an embedded library: open a database, create a table and an index, write in
//! a transaction, read with parameters, and handle a retryable conflict.
//!
//! Run: `cargo run --example embedded`

use tessera::{Database, Value};

fn main() -> Result<(), tessera::Error> {
    // A temporary database; use Database::open("path") to keep the data.
    let db = Database::temporary()?;
    let mut session = db.session();

    session.execute(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL DEFAULT 0);
         CREATE INDEX accounts_owner ON accounts (owner);",
    )?;

    // Parse once, run many times.
    let insert =
        session.prepare("INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, $3)")?;
    for (id, owner, balance) in [(1, "ada", 100), (2, "grace", 50), (3, "alan", 75)] {
        session.execute_prepared(
            &insert,
            &[Value::from(id), Value::from(owner), Value::BigInt(balance)],
        )?;
    }

    // A transfer in one transaction.
    session.execute(
        "BEGIN;
         UPDATE accounts SET balance = balance - 30 WHERE id = 1;
         UPDATE accounts SET balance = balance + 30 WHERE id = 2;
         COMMIT;",
    )?;

    // Typed reads.
    let results = session.execute_with_params(
        "SELECT owner, balance FROM accounts WHERE owner = $1",
        &[Value::from("grace")],
    )?;
    let row = &results[0].rows[0];
    println!(
        "{} has {}",
        row.try_get::<String>(0)?,
        row.try_get::<i64>(1)?
    );

    // Two sessions racing on one row: the second committer gets 40001 and retries.
    let mut other = db.session();
    session.execute("BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 3")?;
    other.execute("BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 3")?;
    session.execute("COMMIT")?;
    match other.execute("COMMIT") {
        Err(e) if e.is_retryable() => {
            println!("conflict ({}): {e}", e.sqlstate());
            other.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 3")?;
        }
        other => {
            other?;
        }
    }

    for result in session.execute("SELECT id, owner, balance FROM accounts ORDER BY id")? {
        for row in &result.rows {
            println!("{:?}", row.values());
        }
    }
    let plan = session.execute("EXPLAIN SELECT * FROM accounts WHERE owner = 'ada'")?;
    for row in &plan[0].rows {
        println!("{}", row.try_get::<String>(0)?);
    }
    Ok(())
}
