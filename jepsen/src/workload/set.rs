//! The set workload: adds of unique elements (`INSERT INTO items VALUES (v)`) and
//! reads of the whole set; after healing, one final read. Nothing acknowledged may be
//! lost, nothing may appear that was never added, and (at a linearizable level) no
//! read may miss an add acknowledged before it began.

use super::{Invocation, Setup};
use crate::client::{with_timeout, Completion};
use rand::Rng;
use serde_json::{json, Value};

/// The table.
pub fn setup() -> Setup {
    Setup {
        table: "items",
        create: "CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY)",
        rows: Vec::new(),
    }
}

/// Hands out unique elements.
#[derive(Default)]
pub struct Generator {
    next_element: i64,
}

impl Generator {
    /// Mostly adds (a read of everything is bigger).
    pub fn next(&mut self, rng: &mut impl Rng) -> Invocation {
        if rng.random_bool(0.2) {
            return Invocation {
                f: "read",
                value: Value::Null,
            };
        }
        self.next_element += 1;
        Invocation {
            f: "add",
            value: json!(self.next_element),
        }
    }
}

/// The read that ends a run.
pub fn final_read() -> Invocation {
    Invocation {
        f: "final-read",
        value: Value::Null,
    }
}

/// Runs an add or a read.
pub async fn invoke(client: &tokio_postgres::Client, op: &Invocation) -> (Completion, bool) {
    if op.f == "add" {
        let element = op.value.as_i64().unwrap_or_default() as i32;
        let work = async {
            client
                .execute("INSERT INTO items VALUES ($1)", &[&element])
                .await?;
            Ok(json!(element))
        };
        return with_timeout(work, false).await;
    }
    let work = async {
        let rows = client.query("SELECT id FROM items", &[]).await?;
        let mut elements: Vec<i32> = rows.iter().map(|row| row.get(0)).collect();
        elements.sort_unstable();
        Ok(json!(elements))
    };
    with_timeout(work, true).await
}
