//! The linearizability checker on its own: hand-made histories for each kind of
//! violation and for the valid histories that trip naive checkers (unknown outcomes,
//! concurrency), then random histories from a simulated correct register (always
//! valid) and from broken ones (stale reads, lost writes: always invalid).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::time::Duration;
use tessera_jepsen::checker::{linear, Validity};
use tessera_jepsen::history::{EventType, Operation};

const BUDGET: Duration = Duration::from_secs(30);

/// An operation of `process` on register `key`, called at `call` and completed at
/// `ret` (`None`: unknown outcome).
fn op(
    process: u64,
    f: &str,
    key: i64,
    value: Value,
    outcome: EventType,
    call: u64,
    ret: Option<u64>,
) -> Operation {
    Operation {
        process,
        f: f.into(),
        invoke: json!([
            key,
            if f == "read" {
                Value::Null
            } else {
                value.clone()
            }
        ]),
        invoked_at: call,
        outcome,
        value: json!([key, value]),
        completed_at: ret,
        index: call,
        error: None,
    }
}

fn ok(process: u64, f: &str, value: Value, call: u64, ret: u64) -> Operation {
    op(process, f, 1, value, EventType::Ok, call, Some(ret))
}

fn verdict(operations: &[Operation]) -> Validity {
    linear::check(operations, BUDGET).valid
}

/// A read after a completed write that returns the value before it is a stale read
/// (or, the same history, a lost write).
#[test]
fn a_stale_read_is_not_linearizable() {
    let history = [
        ok(1, "write", json!(1), 0, 10),
        ok(1, "write", json!(2), 20, 30),
        ok(2, "read", json!(1), 40, 50),
    ];
    let found = linear::check(&history, BUDGET);
    assert_eq!(found.valid, Validity::Invalid, "{}", found.summary());
    let anomaly = &found.anomalies[0];
    assert_eq!(anomaly.kind, "nonlinearizable");
    assert!(
        anomaly.operations.contains(&40),
        "names the read: {anomaly:?}"
    );
}

/// A read concurrent with a write may see either value.
#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in [json!(1), json!(2)] {
        let history = [
            ok(1, "write", json!(1), 0, 10),
            ok(1, "write", json!(2), 20, 60),
            ok(2, "read", seen.clone(), 30, 40),
        ];
        assert_eq!(verdict(&history), Validity::Valid, "read {seen}");
    }
}

/// Once a read saw the new value, a later read may not see the old one, even while
/// the write is still in progress (no "flicker").
#[test]
fn reads_may_not_go_back_in_time() {
    let history = [
        ok(1, "write", json!(1), 0, 10),
        ok(1, "write", json!(2), 20, 100),
        ok(2, "read", json!(2), 30, 40),
        ok(3, "read", json!(1), 50, 60),
    ];
    assert_eq!(verdict(&history), Validity::Invalid);
}

/// A write whose outcome is unknown may show up later, or never.
#[test]
fn unknown_writes_may_take_effect_later_or_never() {
    let unknown_write = op(1, "write", 1, json!(7), EventType::Info, 0, None);
    let seen_later = [unknown_write.clone(), ok(2, "read", json!(7), 1000, 1010)];
    assert_eq!(verdict(&seen_later), Validity::Valid);
    let never_seen = [
        unknown_write.clone(),
        ok(2, "read", Value::Null, 1000, 1010),
        ok(3, "read", json!(7), 2000, 2010),
    ];
    assert_eq!(
        verdict(&never_seen),
        Validity::Valid,
        "took effect in between"
    );
    let seen_then_gone = [
        unknown_write,
        ok(2, "read", json!(7), 1000, 1010),
        ok(3, "read", Value::Null, 2000, 2010),
    ];
    assert_eq!(verdict(&seen_then_gone), Validity::Invalid);
}

/// Two concurrent compare-and-sets from the same value cannot both succeed; a failed
/// one had no effect and is ignored.
#[test]
fn two_swaps_from_one_value_cannot_both_succeed() {
    let base = ok(1, "write", json!(0), 0, 10);
    let both = [
        base.clone(),
        ok(2, "cas", json!([0, 1]), 20, 40),
        ok(3, "cas", json!([0, 2]), 25, 45),
    ];
    assert_eq!(verdict(&both), Validity::Invalid);
    let one = [
        base.clone(),
        ok(2, "cas", json!([0, 1]), 20, 40),
        op(3, "cas", 1, json!([0, 2]), EventType::Fail, 25, Some(45)),
        ok(4, "read", json!(1), 50, 60),
    ];
    assert_eq!(verdict(&one), Validity::Valid);
}

/// Keys are independent: a stale read on one key is found among many valid keys, and
/// only that key is named.
#[test]
fn each_key_is_checked_on_its_own() {
    let mut history = Vec::new();
    for key in 0..20 {
        let t = key as u64 * 1000;
        history.push(op(
            1,
            "write",
            key,
            json!(1),
            EventType::Ok,
            t,
            Some(t + 10),
        ));
        history.push(op(
            1,
            "write",
            key,
            json!(2),
            EventType::Ok,
            t + 20,
            Some(t + 30),
        ));
        let seen = if key == 13 { json!(1) } else { json!(2) };
        history.push(op(
            2,
            "read",
            key,
            seen,
            EventType::Ok,
            t + 40,
            Some(t + 50),
        ));
    }
    let found = linear::check(&history, BUDGET);
    assert_eq!(found.valid, Validity::Invalid);
    assert_eq!(found.anomalies.len(), 1);
    assert!(found.anomalies[0].explanation.starts_with("key 13:"));
}

/// A history with nothing read proves nothing: unknown, not valid.
#[test]
fn nothing_read_is_unknown() {
    let history = [ok(1, "write", json!(1), 0, 10)];
    assert_eq!(verdict(&history), Validity::Unknown);
}

/// A search that cannot finish within its budget answers unknown.
#[test]
fn an_exhausted_budget_is_unknown() {
    // Many concurrent writes of distinct values and reads that fit none of them force
    // the search through every order; a zero budget stops it at once.
    let mut history = Vec::new();
    for p in 0..40u64 {
        history.push(ok(p, "write", json!(p), 0, 1000));
    }
    history.push(ok(99, "read", json!(12345), 2000, 2010));
    let found = linear::check(&history, Duration::ZERO);
    assert_eq!(found.valid, Validity::Unknown, "{}", found.summary());
    assert!(
        found.notes.iter().any(|note| note.contains("budget")),
        "{found:?}"
    );
}

/// How a simulated register misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// One read returns the value from before a write that completed before it began.
    StaleRead,
    /// One acknowledged write never takes effect, and a read after it shows so.
    LostWrite,
}

/// A random concurrent history of `processes` clients over 3 registers: each
/// operation takes effect at a random instant between its call and return (so the
/// history is linearizable by construction), some end unknown (taking effect or not),
/// then `fault` is planted.
fn simulate(seed: u64, processes: u64, fault: Fault) -> Vec<Operation> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    struct Planned {
        op: Operation,
        effect: u64,
        applies: bool,
    }
    let mut planned = Vec::new();
    let mut next_value = 100;
    let mut next_process = processes;
    for worker in 0..processes {
        let mut process = worker;
        let mut now = rng.random_range(0..50);
        for _ in 0..30 {
            let key = rng.random_range(0..3);
            let (f, value) = match rng.random_range(0..3) {
                0 => ("read", Value::Null),
                1 => {
                    next_value += 1;
                    ("write", json!(next_value))
                }
                _ => {
                    next_value += 1;
                    (
                        "cas",
                        json!([rng.random_range(100..next_value), next_value]),
                    )
                }
            };
            let call = now;
            let effect = call + rng.random_range(1..100);
            let ret = effect + rng.random_range(1..100);
            let unknown = f != "read" && rng.random_bool(0.05);
            let outcome = if unknown {
                EventType::Info
            } else {
                EventType::Ok
            };
            let mut operation = op(process, f, key, value, outcome, call, Some(ret));
            if unknown {
                operation.completed_at = None;
            }
            planned.push(Planned {
                op: operation,
                effect,
                applies: !unknown || rng.random_bool(0.5),
            });
            if unknown {
                process = next_process;
                next_process += 1;
            }
            now = ret + rng.random_range(0..30);
        }
    }
    // Apply in effect order, filling in what reads saw and whether swaps succeeded.
    planned.sort_by_key(|p| p.effect);
    let mut registers: [Option<i64>; 3] = [None; 3];
    let mut history = Vec::new();
    for mut p in planned {
        let key = p.op.invoke[0].as_i64().unwrap_or(0) as usize;
        match p.op.f.as_str() {
            "read" => p.op.value = json!([key, registers[key]]),
            "write" if p.applies => registers[key] = p.op.invoke[1].as_i64(),
            "cas" => {
                let old = p.op.invoke[1][0].as_i64();
                if registers[key] == old {
                    if p.applies {
                        registers[key] = p.op.invoke[1][1].as_i64();
                    }
                } else if p.op.outcome == EventType::Ok {
                    p.op.outcome = EventType::Fail;
                }
            }
            _ => {}
        }
        history.push(p.op);
    }
    plant(
        &mut history,
        &mut registers,
        fault,
        next_process,
        next_value,
    );
    history
}

/// Adds `fault` after the concurrent part, where it is certainly detectable.
fn plant(
    history: &mut Vec<Operation>,
    registers: &mut [Option<i64>; 3],
    fault: Fault,
    process: u64,
    value: i64,
) {
    let end = history
        .iter()
        .filter_map(|o| o.completed_at)
        .max()
        .unwrap_or(0)
        + 1000;
    let before = registers[0];
    // Both plant an acknowledged write of a fresh value, then reads of the value
    // before it: by the writer itself (a stale read), or by others a little later
    // (the write was lost).
    let readers: &[(u64, u64)] = match fault {
        Fault::None => return,
        Fault::StaleRead => &[(process, 20)],
        Fault::LostWrite => &[(process + 1, 50), (process + 1, 70)],
    };
    let write = op(
        process,
        "write",
        0,
        json!(value + 1),
        EventType::Ok,
        end,
        Some(end + 10),
    );
    history.push(write);
    for &(reader, after) in readers {
        let (call, ret) = (end + after, end + after + 10);
        history.push(op(
            reader,
            "read",
            0,
            json!(before),
            EventType::Ok,
            call,
            Some(ret),
        ));
    }
}

/// Histories of a correct register are always linearizable, however concurrent.
#[test]
fn simulated_correct_registers_are_linearizable() {
    for seed in 0..40 {
        let history = simulate(seed, 2 + seed % 6, Fault::None);
        let found = linear::check(&history, BUDGET);
        assert_eq!(
            found.valid,
            Validity::Valid,
            "seed {seed}: {}",
            found.summary()
        );
    }
}

/// Histories of registers with a planted stale read or lost write are never
/// linearizable.
#[test]
fn simulated_broken_registers_are_caught() {
    for fault in [Fault::StaleRead, Fault::LostWrite] {
        for seed in 0..20 {
            let history = simulate(seed, 2 + seed % 6, fault);
            let found = linear::check(&history, BUDGET);
            assert_eq!(
                found.valid,
                Validity::Invalid,
                "{fault:?} seed {seed}: {}",
                found.summary()
            );
        }
    }
}

/// Whether a small history is linearizable, by trying every order of its operations
/// (each `info` operation placed anywhere after its call, or left out): slow and
/// obviously right, to check the real search against.
fn brute_force(history: &[Operation]) -> bool {
    fn effect(o: &Operation) -> (&str, Option<i64>, Option<(i64, i64)>) {
        let v = &o.value[1];
        match o.f.as_str() {
            "cas" => (
                "cas",
                None,
                Some((v[0].as_i64().unwrap(), v[1].as_i64().unwrap())),
            ),
            f => (if f == "read" { "read" } else { "write" }, v.as_i64(), None),
        }
    }
    fn search(
        ops: &[&Operation],
        used: &mut Vec<bool>,
        state: Option<i64>,
        placed: &[usize],
    ) -> bool {
        // Done when every completed operation is placed.
        if ops
            .iter()
            .enumerate()
            .all(|(i, o)| used[i] || o.completed_at.is_none())
        {
            return true;
        }
        for i in 0..ops.len() {
            if used[i] {
                continue;
            }
            // Real time: nothing still unplaced may have returned before this call.
            let blocked = ops.iter().enumerate().any(|(j, other)| {
                !used[j]
                    && j != i
                    && other
                        .completed_at
                        .is_some_and(|ret| ret < ops[i].invoked_at)
            });
            if blocked {
                continue;
            }
            let next = match effect(ops[i]) {
                ("read", seen, _) => (seen == state).then_some(state),
                ("write", value, _) => Some(value),
                (_, _, Some((old, new))) => (state == Some(old)).then_some(Some(new)),
                _ => None,
            };
            if let Some(next) = next {
                used[i] = true;
                let mut order = placed.to_vec();
                order.push(i);
                if search(ops, used, next, &order) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    let ops: Vec<&Operation> = history
        .iter()
        .filter(|o| {
            o.outcome != EventType::Fail && !(o.outcome == EventType::Info && o.f == "read")
        })
        .collect();
    search(&ops, &mut vec![false; ops.len()], None, &[])
}

/// On small random histories — correct or not, with unknown outcomes — the search
/// agrees with trying every order.
#[test]
fn agrees_with_brute_force_on_small_histories() {
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..2000u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut history = Vec::new();
        for process in 0..rng.random_range(2..5u64) {
            let mut now = rng.random_range(0..20);
            for _ in 0..rng.random_range(1..3) {
                let call = now;
                let ret = call + rng.random_range(1..40);
                let value = json!(rng.random_range(0..3));
                let (f, value) = match rng.random_range(0..4) {
                    0 | 1 => (
                        "read",
                        if rng.random_bool(0.2) {
                            Value::Null
                        } else {
                            value
                        },
                    ),
                    2 => ("write", value),
                    _ => (
                        "cas",
                        json!([rng.random_range(0..3), rng.random_range(0..3)]),
                    ),
                };
                let unknown = f != "read" && rng.random_bool(0.15);
                let outcome = if unknown {
                    EventType::Info
                } else {
                    EventType::Ok
                };
                let mut operation = op(process, f, 1, value, outcome, call, Some(ret));
                if unknown {
                    operation.completed_at = None;
                }
                history.push(operation);
                if unknown {
                    break;
                }
                now = ret + rng.random_range(0..10);
            }
        }
        let expected = brute_force(&history);
        let found = linear::check(&history, BUDGET);
        if found.valid == Validity::Unknown {
            continue; // nothing read: no claim either way
        }
        assert_eq!(
            found.valid == Validity::Valid,
            expected,
            "seed {seed}: brute force says {expected}, search says {}\n{history:#?}",
            found.summary()
        );
        if expected {
            valid += 1
        } else {
            invalid += 1
        }
    }
    assert!(
        valid > 100 && invalid > 100,
        "both verdicts exercised: {valid} valid, {invalid} invalid"
    );
}
