//! The register workload: reads, writes and compare-and-sets on many independent
//! registers, each a row of `registers (id INT PRIMARY KEY, v INT)`, checked for
//! linearizability key by key.
//!
//! Histories stay checkable by keeping each key short (at most [`OPS_PER_KEY`]
//! operations, on a few keys at a time, moving on to fresh keys as keys fill up, as
//! Jepsen does: the check is exponential in the worst case). Every written value is
//! unique in the run. A compare-and-set that matched no row certainly did nothing and
//! is recorded as `fail`.

use super::{Invocation, Setup};
use crate::client::{with_timeout, Completion};
use rand::Rng;
use serde_json::json;
use std::collections::HashMap;

/// Most operations on one key.
pub const OPS_PER_KEY: usize = 150;
/// Keys in use at once.
const ACTIVE_KEYS: usize = 5;
/// Rows created at setup: enough keys for `KEYS * OPS_PER_KEY` operations.
pub const KEYS: i64 = 2000;

/// The registers, every one absent (null) at first.
pub fn setup() -> Setup {
    let rows = (0..KEYS)
        .collect::<Vec<_>>()
        .chunks(500)
        .map(|chunk| {
            let rows: Vec<String> = chunk.iter().map(|k| format!("({k}, NULL)")).collect();
            format!("INSERT INTO registers VALUES {}", rows.join(", "))
        })
        .collect();
    Setup {
        table: "registers",
        create: "CREATE TABLE IF NOT EXISTS registers (id INT PRIMARY KEY, v INT)",
        rows,
    }
}

/// Chooses operations: which key, which kind, which values.
pub struct Generator {
    active: Vec<i64>,
    next_key: i64,
    used: HashMap<i64, usize>,
    next_value: i64,
    /// Values written per key, for compare-and-sets that may match.
    written: HashMap<i64, Vec<i64>>,
}

impl Default for Generator {
    fn default() -> Generator {
        Generator {
            active: (0..ACTIVE_KEYS as i64).collect(),
            next_key: ACTIVE_KEYS as i64,
            used: HashMap::new(),
            next_value: 1,
            written: HashMap::new(),
        }
    }
}

impl Generator {
    /// The next operation, or `None` once every key is used up.
    pub fn next(&mut self, rng: &mut impl Rng) -> Option<Invocation> {
        if self.active.is_empty() {
            return None;
        }
        let slot = rng.random_range(0..self.active.len());
        let key = self.active[slot];
        let count = self.used.entry(key).or_default();
        *count += 1;
        if *count >= OPS_PER_KEY {
            if self.next_key < KEYS {
                self.active[slot] = self.next_key;
                self.next_key += 1;
            } else {
                self.active.swap_remove(slot);
            }
        }
        let roll = rng.random_range(0..10);
        let invocation = if roll < 5 {
            Invocation {
                f: "read",
                value: json!([key, null]),
            }
        } else {
            let value = self.next_value;
            self.next_value += 1;
            let known = self.written.entry(key).or_default();
            let invocation = if roll < 8 || known.is_empty() {
                Invocation {
                    f: "write",
                    value: json!([key, value]),
                }
            } else {
                let old = known[rng.random_range(known.len().saturating_sub(3)..known.len())];
                Invocation {
                    f: "cas",
                    value: json!([key, [old, value]]),
                }
            };
            known.push(value);
            invocation
        };
        Some(invocation)
    }

    /// A read of every key used so far.
    pub fn final_reads(&self) -> Vec<Invocation> {
        let mut keys: Vec<i64> = self.used.keys().copied().collect();
        keys.sort_unstable();
        keys.into_iter()
            .map(|key| Invocation {
                f: "read",
                value: json!([key, null]),
            })
            .collect()
    }
}

/// Runs one operation; returns how it ended and whether the connection is still good.
pub async fn invoke(client: &tokio_postgres::Client, op: &Invocation) -> (Completion, bool) {
    let key = op.value[0].as_i64().unwrap_or_default() as i32;
    match op.f {
        "read" => {
            let work = async {
                let row = client
                    .query_opt("SELECT v FROM registers WHERE id = $1", &[&key])
                    .await?;
                let value: Option<i32> = row.and_then(|row| row.get(0));
                Ok(json!([key, value]))
            };
            with_timeout(work, true).await
        }
        "write" => {
            let value = op.value[1].as_i64().unwrap_or_default() as i32;
            let work = async {
                client
                    .execute("UPDATE registers SET v = $2 WHERE id = $1", &[&key, &value])
                    .await?;
                Ok(json!([key, value]))
            };
            with_timeout(work, false).await
        }
        _ => {
            let old = op.value[1][0].as_i64().unwrap_or_default() as i32;
            let new = op.value[1][1].as_i64().unwrap_or_default() as i32;
            let work = async {
                let rows = client
                    .execute(
                        "UPDATE registers SET v = $3 WHERE id = $1 AND v = $2",
                        &[&key, &old, &new],
                    )
                    .await?;
                Ok(json!({ "swapped": rows == 1, "value": [key, [old, new]] }))
            };
            match with_timeout(work, false).await {
                (Completion::Ok(result), usable) => {
                    let value = result["value"].clone();
                    if result["swapped"] == json!(true) {
                        (Completion::Ok(value), usable)
                    } else {
                        (Completion::Fail("the value did not match".into()), usable)
                    }
                }
                other => other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Keys fill up to the limit and are replaced; written values never repeat.
    #[test]
    fn keys_rotate_and_values_are_unique() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut generator = Generator::default();
        let mut per_key: HashMap<i64, usize> = HashMap::new();
        let mut values = std::collections::HashSet::new();
        for _ in 0..5000 {
            let op = generator.next(&mut rng).expect("keys left");
            *per_key
                .entry(op.value[0].as_i64().expect("key"))
                .or_default() += 1;
            let written = match op.f {
                "write" => op.value[1].as_i64(),
                "cas" => op.value[1][1].as_i64(),
                _ => None,
            };
            if let Some(value) = written {
                assert!(values.insert(value), "value {value} written twice");
            }
        }
        assert!(per_key.values().all(|&n| n <= OPS_PER_KEY));
        assert!(per_key.len() > 5000 / OPS_PER_KEY);
    }
}
