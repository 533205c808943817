//! The list-append workload (Elle's): transactions of 1-4 micro-operations over a few
//! keys, each a read of a key's list or an append of a value unique to the key. A
//! key is a row of `lists (k INT PRIMARY KEY, v TEXT)` holding its list as text
//! (`",3,7,12"`); an append is `UPDATE ... SET v = v || ',<value>'`. Keys are created
//! empty at setup and used a bounded number of times, a few at a time.

use super::{Invocation, Setup};
use crate::client::{with_timeout, Completion};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Rows created at setup.
pub const KEYS: i64 = 2000;
/// Keys in use at once.
const ACTIVE_KEYS: usize = 8;
/// Most appends to one key.
const APPENDS_PER_KEY: usize = 64;
/// Keys read per final transaction.
const FINAL_READ_KEYS: usize = 16;

/// The lists, all empty.
pub fn setup() -> Setup {
    let rows = (0..KEYS)
        .collect::<Vec<_>>()
        .chunks(500)
        .map(|chunk| {
            let rows: Vec<String> = chunk.iter().map(|k| format!("({k}, '')")).collect();
            format!("INSERT INTO lists VALUES {}", rows.join(", "))
        })
        .collect();
    Setup {
        table: "lists",
        create: "CREATE TABLE IF NOT EXISTS lists (k INT PRIMARY KEY, v TEXT NOT NULL)",
        rows,
    }
}

/// Chooses transactions.
pub struct Generator {
    active: Vec<i64>,
    next_key: i64,
    appends: std::collections::HashMap<i64, usize>,
    used: BTreeSet<i64>,
    next_value: i64,
}

impl Default for Generator {
    fn default() -> Generator {
        Generator {
            active: (0..ACTIVE_KEYS as i64).collect(),
            next_key: ACTIVE_KEYS as i64,
            appends: Default::default(),
            used: BTreeSet::new(),
            next_value: 1,
        }
    }
}

impl Generator {
    /// The next transaction, or `None` once every key is used up.
    pub fn next(&mut self, rng: &mut impl Rng) -> Option<Invocation> {
        if self.active.is_empty() {
            return None;
        }
        let mut micros = Vec::new();
        for _ in 0..rng.random_range(1..=4) {
            let slot = rng.random_range(0..self.active.len());
            let key = self.active[slot];
            self.used.insert(key);
            if rng.random_bool(0.5) {
                micros.push(json!(["r", key, null]));
                continue;
            }
            micros.push(json!(["append", key, self.next_value]));
            self.next_value += 1;
            let count = self.appends.entry(key).or_default();
            *count += 1;
            if *count >= APPENDS_PER_KEY {
                if self.next_key < KEYS {
                    self.active[slot] = self.next_key;
                    self.next_key += 1;
                } else {
                    self.active.swap_remove(slot);
                    if self.active.is_empty() {
                        break;
                    }
                }
            }
        }
        Some(Invocation {
            f: "txn",
            value: Value::Array(micros),
        })
    }

    /// Transactions reading every key used, a few keys each.
    pub fn final_reads(&self) -> Vec<Invocation> {
        let keys: Vec<i64> = self.used.iter().copied().collect();
        keys.chunks(FINAL_READ_KEYS)
            .map(|chunk| Invocation {
                f: "final-txn",
                value: Value::Array(chunk.iter().map(|k| json!(["r", k, null])).collect()),
            })
            .collect()
    }
}

/// Runs a transaction: BEGIN, each micro-operation in order, COMMIT.
pub async fn invoke(client: &mut tokio_postgres::Client, op: &Invocation) -> (Completion, bool) {
    let micros = op.value.as_array().cloned().unwrap_or_default();
    let read_only = micros.iter().all(|m| m[0] == "r");
    let work = async {
        let txn = client.transaction().await?;
        let mut done = Vec::with_capacity(micros.len());
        for micro in &micros {
            let key = micro[1].as_i64().unwrap_or_default() as i32;
            if micro[0] == "r" {
                let row = txn
                    .query_opt("SELECT v FROM lists WHERE k = $1", &[&key])
                    .await?;
                let text: Option<String> = row.map(|row| row.get(0));
                let list: Vec<i64> = text
                    .unwrap_or_default()
                    .split(',')
                    .filter(|part| !part.is_empty())
                    .map(|part| part.parse().unwrap_or(i64::MIN))
                    .collect();
                done.push(json!(["r", key, list]));
            } else {
                let value = micro[2].as_i64().unwrap_or_default();
                let suffix = format!(",{value}");
                txn.execute(
                    "UPDATE lists SET v = v || $2 WHERE k = $1",
                    &[&key, &suffix],
                )
                .await?;
                done.push(json!(["append", key, value]));
            }
        }
        txn.commit().await?;
        Ok::<Value, tokio_postgres::Error>(Value::Array(done))
    };
    with_timeout(work, read_only).await
}
