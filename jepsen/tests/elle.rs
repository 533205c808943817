//! The list-append checker on its own: a hand-made history for every anomaly it names
//! and for write skew (which snapshot isolation allows), then random histories from a
//! simulated snapshot-isolation store (always valid) and from broken ones — reads
//! that see commits after their snapshot, appends applied twice, appends lost,
//! snapshots from the past (caught only with real-time edges) — each of which must be
//! caught.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use tessera_jepsen::checker::{elle, Validity, Verdict};
use tessera_jepsen::history::{EventType, Operation};

/// A transaction `index`, from `call` to `ret`, with micro-operations as completed.
fn txn(index: u64, micros: Value, outcome: EventType, call: u64, ret: u64) -> Operation {
    Operation {
        process: index,
        f: "txn".into(),
        invoke: micros.clone(),
        invoked_at: call,
        outcome,
        value: micros,
        completed_at: (outcome != EventType::Info).then_some(ret),
        index,
        error: None,
    }
}

fn ok(index: u64, micros: Value) -> Operation {
    txn(index, micros, EventType::Ok, index * 10, index * 10 + 5)
}

fn kinds(verdict: &Verdict) -> Vec<String> {
    verdict.anomalies.iter().map(|a| a.kind.clone()).collect()
}

fn assert_anomaly(history: &[Operation], kind: &str) {
    let verdict = elle::check(history, false);
    assert_eq!(
        verdict.valid,
        Validity::Invalid,
        "{kind}: {}",
        verdict.summary()
    );
    assert!(
        kinds(&verdict).iter().any(|k| k == kind),
        "{kind}: {}",
        verdict.summary()
    );
}

/// A history of transactions one after another is valid.
#[test]
fn a_serial_history_is_valid() {
    let history = [
        ok(0, json!([["append", 1, 1], ["r", 1, [1]]])),
        ok(
            1,
            json!([["r", 1, [1]], ["append", 1, 2], ["append", 2, 3]]),
        ),
        ok(2, json!([["r", 1, [1, 2]], ["r", 2, [3]]])),
    ];
    let verdict = elle::check(&history, false);
    assert_eq!(verdict.valid, Validity::Valid, "{}", verdict.summary());
}

/// G0: two transactions' appends to two keys land in opposite orders.
#[test]
fn write_cycles_are_g0() {
    let history = [
        ok(0, json!([["append", 1, 1], ["append", 2, 1]])),
        ok(1, json!([["append", 1, 2], ["append", 2, 2]])),
        ok(2, json!([["r", 1, [1, 2]], ["r", 2, [2, 1]]])),
    ];
    assert_anomaly(&history, "G0");
}

/// G1a: a read shows an append of a transaction that failed.
#[test]
fn reading_an_aborted_append_is_g1a() {
    let history = [
        txn(0, json!([["append", 1, 1]]), EventType::Fail, 0, 5),
        ok(1, json!([["r", 1, [1]]])),
    ];
    assert_anomaly(&history, "G1a");
}

/// G1b: a read ends at an append its transaction followed with another to the key.
#[test]
fn reading_an_intermediate_state_is_g1b() {
    let history = [
        ok(0, json!([["append", 1, 1], ["append", 1, 2]])),
        ok(1, json!([["r", 1, [1]]])),
    ];
    assert_anomaly(&history, "G1b");
}

/// G1c: each of two transactions reads the other's append.
#[test]
fn circular_information_flow_is_g1c() {
    let history = [
        ok(0, json!([["append", 1, 1], ["r", 2, [1]]])),
        ok(1, json!([["append", 2, 1], ["r", 1, [1]]])),
    ];
    assert_anomaly(&history, "G1c");
}

/// G-single (read skew): a transaction sees one of another's appends but not the other.
#[test]
fn read_skew_is_g_single() {
    let mut final_read = ok(2, json!([["r", 1, [1]], ["r", 2, [1]]]));
    final_read.f = "final-txn".into();
    let history = [
        ok(0, json!([["append", 1, 1], ["append", 2, 1]])),
        ok(1, json!([["r", 1, []], ["r", 2, [1]]])),
        final_read,
    ];
    assert_anomaly(&history, "G-single");
}

/// Write skew (G2-item) is allowed under snapshot isolation: valid, with a note.
#[test]
fn write_skew_is_noted_not_failed() {
    let history = [
        ok(0, json!([["r", 1, []], ["append", 2, 1]])),
        ok(1, json!([["r", 2, []], ["append", 1, 1]])),
        ok(2, json!([["r", 1, [1]], ["r", 2, [1]]])),
    ];
    let verdict = elle::check(&history, false);
    assert_eq!(verdict.valid, Validity::Valid, "{}", verdict.summary());
    assert_eq!(verdict.stats.get("G2-item"), Some(&1));
    assert!(verdict.notes.iter().any(|note| note.contains("G2-item")));
}

/// Reads that disagree with the transaction's own appends are `internal`.
#[test]
fn forgetting_your_own_append_is_internal() {
    let history = [ok(0, json!([["append", 1, 5], ["r", 1, []]]))];
    assert_anomaly(&history, "internal");
}

/// Elements twice in a list, elements nobody appended, and reads of one key that are
/// not prefixes of one another are each caught.
#[test]
fn bad_lists_are_caught() {
    let base = ok(0, json!([["append", 1, 1], ["append", 2, 2]]));
    assert_anomaly(
        &[base.clone(), ok(1, json!([["r", 1, [1, 1]]]))],
        "duplicate-elements",
    );
    assert_anomaly(
        &[base.clone(), ok(1, json!([["r", 1, [1, 99]]]))],
        "garbage",
    );
    let other = ok(1, json!([["append", 1, 3]]));
    assert_anomaly(
        &[
            base,
            other,
            ok(2, json!([["r", 1, [1, 3]]])),
            ok(3, json!([["r", 1, [3]]])),
        ],
        "incompatible-order",
    );
}

/// An acknowledged append missing from the final read is lost; one of unknown outcome
/// may be missing.
#[test]
fn acknowledged_appends_must_survive() {
    let mut history = vec![
        ok(0, json!([["append", 1, 1]])),
        ok(1, json!([["append", 1, 2]])),
        txn(2, json!([["append", 1, 3]]), EventType::Info, 20, 25),
    ];
    let mut final_read = ok(9, json!([["r", 1, [1]]]));
    final_read.f = "final-txn".into();
    history.push(final_read);
    assert_anomaly(&history, "lost");
    let last = history.len() - 1;
    history[last].value = json!([["r", 1, [1, 2]]]);
    assert_eq!(elle::check(&history, false).valid, Validity::Valid);
}

/// How a simulated store misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// Each read sees what was committed when it ran, not the transaction's snapshot
    /// (read committed).
    ReadLatest,
    /// One committed append lands twice.
    DuplicateAppend,
    /// One committed append never lands.
    LostAppend,
    /// Each transaction's snapshot is taken up to 400 ticks before it starts (a
    /// replica behind the leader): still snapshot isolation, but not in real-time
    /// order.
    StaleSnapshot,
}

/// Random concurrent transactions over 4 keys on a snapshot-isolation store (reads
/// from the snapshot at the start, first committer wins), then final reads.
fn simulate(seed: u64, fault: Fault) -> Vec<Operation> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    struct Planned {
        start: u64,
        end: u64,
        micros: Vec<(bool, i64, i64)>,
    }
    let mut planned = Vec::new();
    let mut next_value = 1;
    for _ in 0..150 {
        let start = rng.random_range(0..3000);
        let end = start + rng.random_range(1..60);
        let micros = (0..rng.random_range(1..=4))
            .map(|_| {
                let key = rng.random_range(0..4);
                let append = rng.random_bool(0.5);
                next_value += 1;
                (append, key, next_value)
            })
            .collect();
        planned.push(Planned { start, end, micros });
    }
    // Commits in end order; a snapshot is the state committed before the start.
    let mut by_end: Vec<usize> = (0..planned.len()).collect();
    by_end.sort_by_key(|&i| planned[i].end);
    let mut commits: Vec<(u64, i64, i64)> = Vec::new(); // (time, key, value)
    let mut last_write: HashMap<i64, u64> = HashMap::new();
    let mut history = Vec::new();
    let mut planted = false;
    let state_at = |commits: &[(u64, i64, i64)], time: u64, key: i64| -> Vec<i64> {
        commits
            .iter()
            .filter(|(t, k, _)| *t <= time && *k == key)
            .map(|(_, _, v)| *v)
            .collect()
    };
    for (index, &i) in by_end.iter().enumerate() {
        let p = &planned[i];
        let snapshot = if fault == Fault::StaleSnapshot {
            p.start.saturating_sub(rng.random_range(0..400))
        } else {
            p.start
        };
        let conflict = p
            .micros
            .iter()
            .any(|(append, key, _)| *append && last_write.get(key).is_some_and(|t| *t > snapshot));
        let mut own: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut done = Vec::new();
        for (append, key, value) in &p.micros {
            if *append {
                own.entry(*key).or_default().push(*value);
                done.push(json!(["append", key, value]));
            } else {
                let seen_at = if fault == Fault::ReadLatest {
                    rng.random_range(p.start..=p.end)
                } else {
                    snapshot
                };
                let mut list = state_at(&commits, seen_at, *key);
                list.extend(own.get(key).cloned().unwrap_or_default());
                done.push(json!(["r", key, list]));
            }
        }
        let outcome = if conflict {
            EventType::Fail
        } else {
            EventType::Ok
        };
        if !conflict {
            for (append, key, value) in &p.micros {
                if !*append {
                    continue;
                }
                let plant = !planted && index > 40;
                match fault {
                    Fault::DuplicateAppend if plant => {
                        commits.push((p.end, *key, *value));
                        commits.push((p.end, *key, *value));
                        planted = true;
                    }
                    Fault::LostAppend if plant => planted = true,
                    _ => commits.push((p.end, *key, *value)),
                }
                last_write.insert(*key, p.end);
            }
        }
        let micros = if conflict {
            Value::Array(
                p.micros
                    .iter()
                    .map(|(a, k, v)| {
                        if *a {
                            json!(["append", k, v])
                        } else {
                            json!(["r", k, null])
                        }
                    })
                    .collect(),
            )
        } else {
            Value::Array(done)
        };
        history.push(txn(index as u64, micros, outcome, p.start, p.end));
    }
    let mut final_read = txn(
        10_000,
        Value::Array(
            (0..4)
                .map(|k| json!(["r", k, state_at(&commits, u64::MAX, k)]))
                .collect(),
        ),
        EventType::Ok,
        100_000,
        100_010,
    );
    final_read.f = "final-txn".into();
    history.push(final_read);
    history
}

/// Histories of a correct snapshot-isolation store are valid (write skew allowed).
#[test]
fn simulated_snapshot_isolation_is_valid() {
    for seed in 0..30 {
        let verdict = elle::check(&simulate(seed, Fault::None), true);
        assert_eq!(
            verdict.valid,
            Validity::Valid,
            "seed {seed}: {}",
            verdict.summary()
        );
    }
}

/// Duplicated and lost appends are caught in every seed; reads outside the snapshot
/// (read committed) within a few.
#[test]
fn simulated_broken_stores_are_caught() {
    for seed in 0..20 {
        let duplicated = elle::check(&simulate(seed, Fault::DuplicateAppend), true);
        assert!(
            kinds(&duplicated).contains(&"duplicate-elements".to_string()),
            "seed {seed}: {}",
            duplicated.summary()
        );
        let lost = elle::check(&simulate(seed, Fault::LostAppend), true);
        assert_eq!(
            lost.valid,
            Validity::Invalid,
            "seed {seed}: {}",
            lost.summary()
        );
    }
    let caught = (0..20)
        .filter(|&seed| {
            elle::check(&simulate(seed, Fault::ReadLatest), true).valid == Validity::Invalid
        })
        .count();
    assert!(
        caught >= 10,
        "read committed caught in only {caught} of 20 seeds"
    );
}

/// Snapshots from the past are snapshot isolation — valid without real-time edges —
/// but not strong snapshot isolation: with them, `-realtime` cycles are found, and
/// nothing else.
#[test]
fn stale_snapshots_are_caught_only_by_real_time_edges() {
    let mut caught = 0;
    for seed in 0..20 {
        let history = simulate(seed, Fault::StaleSnapshot);
        let plain = elle::check(&history, false);
        assert_eq!(
            plain.valid,
            Validity::Valid,
            "seed {seed}: {}",
            plain.summary()
        );
        let strong = elle::check(&history, true);
        if strong.valid == Validity::Invalid {
            caught += 1;
            assert!(
                kinds(&strong)
                    .iter()
                    .all(|kind| kind.ends_with("-realtime")),
                "seed {seed}: {}",
                strong.summary()
            );
        }
    }
    assert!(
        caught >= 15,
        "stale snapshots caught in only {caught} of 20 seeds"
    );
}

/// A hand-made G-single-realtime: T2 appended 1 to key 1 and completed; T3 started
/// after that, appended 2 to key 2; T1 read key 2 with T3's append but key 1 empty
/// (T4, later, reads both).
/// Each edge alone is fine; with T2 -rt-> T3 the cycle T1 -rw-> T2 -rt-> T3 -wr-> T1
/// has one anti-dependency, and strong snapshot isolation forbids it.
#[test]
fn a_read_missing_an_earlier_commit_is_g_single_realtime() {
    let history = [
        txn(
            1,
            json!([["r", 1, []], ["r", 2, [2]]]),
            EventType::Ok,
            0,
            100,
        ),
        txn(2, json!([["append", 1, 1]]), EventType::Ok, 10, 20),
        txn(3, json!([["append", 2, 2]]), EventType::Ok, 30, 40),
        txn(
            4,
            json!([["r", 1, [1]], ["r", 2, [2]]]),
            EventType::Ok,
            200,
            210,
        ),
    ];
    assert_eq!(elle::check(&history, false).valid, Validity::Valid);
    let verdict = elle::check(&history, true);
    assert_eq!(
        kinds(&verdict),
        vec!["G-single-realtime".to_string()],
        "{}",
        verdict.summary()
    );
}
