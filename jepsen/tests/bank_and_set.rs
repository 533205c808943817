//! The bank and set checkers on their own: hand-made histories with each anomaly and
//! valid ones, and random histories from simulated stores, correct (always valid) and
//! broken (a transfer seen half done, an acknowledged insert lost: always invalid).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tessera_jepsen::checker::{bank, set, Validity};
use tessera_jepsen::history::{EventType, Operation};

fn operation(
    index: u64,
    f: &str,
    invoke: Value,
    outcome: EventType,
    value: Value,
    call: u64,
    ret: Option<u64>,
) -> Operation {
    Operation {
        process: index,
        f: f.into(),
        invoke,
        invoked_at: call,
        outcome,
        value,
        completed_at: ret,
        index,
        error: None,
    }
}

fn balances(values: &[i64]) -> Value {
    let map: serde_json::Map<String, Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i.to_string(), json!(v)))
        .collect();
    Value::Object(map)
}

fn transfer(index: u64, from: u64, to: u64, amount: i64) -> Operation {
    let value = json!({"from": from, "to": to, "amount": amount});
    operation(
        index,
        "transfer",
        value.clone(),
        EventType::Ok,
        value,
        index * 10,
        Some(index * 10 + 5),
    )
}

fn bank_read(index: u64, values: &[i64]) -> Operation {
    operation(
        index,
        "read",
        Value::Null,
        EventType::Ok,
        balances(values),
        index * 10,
        Some(index * 10 + 5),
    )
}

/// Reads that add up, with no negative balance, are valid; each anomaly is named.
#[test]
fn bank_reads_must_add_up() {
    let valid = [
        transfer(0, 0, 1, 5),
        bank_read(1, &[5, 15]),
        bank_read(2, &[5, 15]),
    ];
    assert_eq!(bank::check(&valid, 2, 20).valid, Validity::Valid);
    for (values, kind) in [
        (vec![5, 14], "wrong-total"),
        (vec![-5, 25], "negative-value"),
        (vec![20], "missing-account"),
        (vec![5, 15, 0], "unexpected-account"),
    ] {
        let history = [transfer(0, 0, 1, 5), bank_read(1, &values)];
        let found = bank::check(&history, 2, 20);
        assert_eq!(found.valid, Validity::Invalid, "{values:?}");
        assert_eq!(found.anomalies[0].kind, kind);
        assert_eq!(found.anomalies[0].operations, vec![1]);
    }
}

/// A bank history with no read, or no transfer, proves nothing.
#[test]
fn bank_histories_without_evidence_are_unknown() {
    assert_eq!(
        bank::check(&[bank_read(0, &[10, 10])], 2, 20).valid,
        Validity::Unknown
    );
    assert_eq!(
        bank::check(&[transfer(0, 0, 1, 5)], 2, 20).valid,
        Validity::Unknown
    );
}

/// A simulated bank: transfers applied whole (or, broken, with the withdrawal visible
/// to a read before the deposit).
fn simulate_bank(seed: u64, half_applied: bool) -> Vec<Operation> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut accounts = vec![100i64; 5];
    let mut history = Vec::new();
    let mut planted = false;
    for index in 0..300u64 {
        if rng.random_bool(0.5) {
            let mut shown = accounts.clone();
            if half_applied && !planted && index > 100 {
                // A withdrawal whose deposit is not visible yet, from the richest account.
                let richest = (0..shown.len()).max_by_key(|&i| shown[i]).unwrap_or(0);
                shown[richest] -= 7;
                planted = true;
            }
            history.push(bank_read(index, &shown));
            continue;
        }
        let from = rng.random_range(0..5);
        let to = (from + rng.random_range(1..5)) % 5;
        let amount = rng.random_range(1..30);
        if accounts[from] >= amount {
            accounts[from] -= amount;
            accounts[to] += amount;
            history.push(transfer(index, from as u64, to as u64, amount));
        }
    }
    history
}

#[test]
fn simulated_banks_are_judged_right() {
    for seed in 0..30 {
        let correct = bank::check(&simulate_bank(seed, false), 5, 500);
        assert_eq!(
            correct.valid,
            Validity::Valid,
            "seed {seed}: {}",
            correct.summary()
        );
        let broken = bank::check(&simulate_bank(seed, true), 5, 500);
        assert_eq!(broken.valid, Validity::Invalid, "seed {seed}");
        assert_eq!(broken.anomalies[0].kind, "wrong-total");
    }
}

fn add(index: u64, element: i64, outcome: EventType, call: u64, ret: u64) -> Operation {
    let ret = (outcome != EventType::Info).then_some(ret);
    operation(
        index,
        "add",
        json!(element),
        outcome,
        json!(element),
        call,
        ret,
    )
}

fn set_read(index: u64, f: &str, elements: &[i64], call: u64, ret: u64) -> Operation {
    operation(
        index,
        f,
        Value::Null,
        EventType::Ok,
        json!(elements),
        call,
        Some(ret),
    )
}

/// Acknowledged adds must be in the final read; unknown ones may or may not be;
/// nothing else may appear.
#[test]
fn set_adds_must_not_be_lost_or_invented() {
    let base = vec![
        add(0, 1, EventType::Ok, 0, 10),
        add(1, 2, EventType::Info, 0, 10),
        add(2, 3, EventType::Fail, 0, 10),
    ];
    for final_elements in [vec![1], vec![1, 2]] {
        let mut history = base.clone();
        history.push(set_read(3, "final-read", &final_elements, 100, 110));
        assert_eq!(
            set::check(&history, true).valid,
            Validity::Valid,
            "{final_elements:?}"
        );
    }
    for (final_elements, kind) in [
        (vec![2], "lost"),
        (vec![1, 3], "unexpected"),
        (vec![1, 9], "unexpected"),
    ] {
        let mut history = base.clone();
        history.push(set_read(3, "final-read", &final_elements, 100, 110));
        let found = set::check(&history, true);
        assert_eq!(found.valid, Validity::Invalid, "{final_elements:?}");
        assert!(
            found.anomalies.iter().any(|anomaly| anomaly.kind == kind),
            "{final_elements:?}: {}",
            found.summary()
        );
    }
}

/// At a linearizable level a read begun after an add was acknowledged must show it;
/// a read concurrent with the add need not; `stale` reads are not held to it.
#[test]
fn set_reads_after_an_acknowledged_add_must_show_it() {
    let history = [
        add(0, 1, EventType::Ok, 0, 10),
        set_read(1, "read", &[], 5, 8),
        set_read(2, "read", &[], 20, 30),
        set_read(3, "final-read", &[1], 100, 110),
    ];
    let found = set::check(&history, true);
    assert_eq!(found.valid, Validity::Invalid);
    assert_eq!(found.anomalies[0].kind, "stale");
    assert_eq!(
        found.anomalies[0].operations[0], 2,
        "names the late read, not the concurrent one"
    );
    assert_eq!(set::check(&history, false).valid, Validity::Valid);
}

/// Without a final read, nothing can be said about lost adds.
#[test]
fn a_set_history_without_a_final_read_is_unknown() {
    let history = [
        add(0, 1, EventType::Ok, 0, 10),
        set_read(1, "read", &[1], 20, 30),
    ];
    assert_eq!(set::check(&history, true).valid, Validity::Unknown);
}

/// A simulated set: adds take effect within their call and return; reads see the
/// set at a random instant of theirs; broken, one acknowledged add never lands.
fn simulate_set(seed: u64, lose_one: bool) -> Vec<Operation> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut history = Vec::new();
    let mut effects: Vec<(u64, i64)> = Vec::new();
    let mut reads = Vec::new();
    let mut planted = false;
    for index in 0..200u64 {
        let call = index * 10 + rng.random_range(0..10);
        let ret = call + rng.random_range(1..30);
        if rng.random_bool(0.3) {
            reads.push((index, call, ret, rng.random_range(call..=ret)));
            continue;
        }
        let element = index as i64;
        // The first add from index 50 on is acknowledged and never lands.
        let lost = lose_one && index >= 50 && !planted;
        planted |= lost;
        if !lost {
            effects.push((rng.random_range(call..=ret), element));
        }
        history.push(add(index, element, EventType::Ok, call, ret));
    }
    let seen_at = |at: u64| -> Vec<i64> {
        let set: BTreeSet<i64> = effects
            .iter()
            .filter(|(t, _)| *t <= at)
            .map(|(_, e)| *e)
            .collect();
        set.into_iter().collect()
    };
    for (index, call, ret, at) in reads {
        history.push(set_read(index, "read", &seen_at(at), call, ret));
    }
    history.push(set_read(
        10_000,
        "final-read",
        &seen_at(u64::MAX),
        100_000,
        100_010,
    ));
    history
}

#[test]
fn simulated_sets_are_judged_right() {
    for seed in 0..30 {
        let correct = set::check(&simulate_set(seed, false), true);
        assert_eq!(
            correct.valid,
            Validity::Valid,
            "seed {seed}: {}",
            correct.summary()
        );
        let broken = set::check(&simulate_set(seed, true), true);
        assert_eq!(broken.valid, Validity::Invalid, "seed {seed}");
        assert!(
            broken.anomalies.iter().any(|a| a.kind == "lost"),
            "{}",
            broken.summary()
        );
    }
}
