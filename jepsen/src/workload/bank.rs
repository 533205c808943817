//! The bank workload: transfers between accounts, each in a transaction, and reads of
//! every balance in one statement (one snapshot). Money is neither made nor lost, so
//! every read must add up to the starting total with no balance below zero.
//!
//! A transfer withdraws only if the balance covers it (`UPDATE ... WHERE balance >=
//! amount`); when it does not, the transaction is rolled back and the transfer is a
//! `fail` (certainly nothing happened).

use super::{Invocation, Setup};
use crate::client::{run_timed, Completion};
use rand::Rng;
use serde_json::{json, Map, Value};

/// Number of accounts.
pub const ACCOUNTS: u64 = 8;
/// Each account's starting balance.
const START: i64 = 100;
/// All the money there is.
pub const TOTAL: i64 = ACCOUNTS as i64 * START;
/// Largest transfer.
const MAX_AMOUNT: i64 = 20;

/// The accounts, each holding [`START`].
pub fn setup() -> Setup {
    let rows: Vec<String> = (0..ACCOUNTS).map(|a| format!("({a}, {START})")).collect();
    Setup {
        table: "accounts",
        create: "CREATE TABLE IF NOT EXISTS accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)",
        rows: vec![format!("INSERT INTO accounts VALUES {}", rows.join(", "))],
    }
}

/// A read of every balance.
pub fn read() -> Invocation {
    Invocation {
        f: "read",
        value: Value::Null,
    }
}

/// Half reads, half transfers between two different accounts.
pub fn next(rng: &mut impl Rng) -> Invocation {
    if rng.random_bool(0.5) {
        return read();
    }
    let from = rng.random_range(0..ACCOUNTS);
    let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
    Invocation {
        f: "transfer",
        value: json!({"from": from, "to": to, "amount": rng.random_range(1..=MAX_AMOUNT)}),
    }
}

/// Runs a read or a transfer.
pub async fn invoke(client: &mut tokio_postgres::Client, op: &Invocation) -> (Completion, bool) {
    let is_read = op.f == "read";
    let work = async {
        if is_read {
            read_balances(client).await
        } else {
            transfer(client, &op.value).await
        }
    };
    run_timed(work, is_read).await
}

async fn read_balances(
    client: &tokio_postgres::Client,
) -> Result<Completion, tokio_postgres::Error> {
    let rows = client
        .query("SELECT id, balance FROM accounts", &[])
        .await?;
    let mut balances = Map::new();
    for row in rows {
        let id: i32 = row.get(0);
        let balance: i64 = row.get(1);
        balances.insert(id.to_string(), json!(balance));
    }
    Ok(Completion::Ok(Value::Object(balances)))
}

async fn transfer(
    client: &mut tokio_postgres::Client,
    value: &Value,
) -> Result<Completion, tokio_postgres::Error> {
    let from = value["from"].as_i64().unwrap_or_default() as i32;
    let to = value["to"].as_i64().unwrap_or_default() as i32;
    let amount = value["amount"].as_i64().unwrap_or_default();
    let txn = client.transaction().await?;
    let withdrawn = txn
        .execute(
            "UPDATE accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2",
            &[&from, &amount],
        )
        .await?;
    if withdrawn == 0 {
        txn.rollback().await?;
        return Ok(Completion::Fail("insufficient funds".into()));
    }
    txn.execute(
        "UPDATE accounts SET balance = balance + $2 WHERE id = $1",
        &[&to, &amount],
    )
    .await?;
    txn.commit().await?;
    Ok(Completion::Ok(value.clone()))
}
