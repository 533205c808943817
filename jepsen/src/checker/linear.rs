//! Linearizability of registers: Wing & Gong's search with Lowe's just-in-time
//! linearization and memoization (the Porcupine / Knossos-WGL approach), split by key.
//!
//! Linearizability is local (Herlihy & Wing): a history of independent registers is
//! linearizable exactly when each register's sub-history is, so each key is checked on
//! its own, keys in parallel. Per key the search walks the history's call and return
//! events in time order, tries to linearize each pending operation at its call
//! (applying it to the register model), and backtracks when it meets the return of an
//! operation it has not linearized. A cache of (linearized set, register value) prunes
//! states already explored. The problem is NP-complete; a time budget per check turns
//! an over-long search into an explicit `unknown`, never a pass.
//!
//! Operations (`f`, `value` as invoked → as completed):
//! - `read`: `[k, null]` → `[k, v]` (`v` null when the row does not exist);
//! - `write`: `[k, v]` → `[k, v]`;
//! - `cas`: `[k, [old, new]]` → same; `ok` means it swapped, `fail` that it did not.
//!
//! `fail` operations did nothing and are dropped. An `info` operation may take effect
//! at any time after its invocation, or never: its return is placed after every other
//! event, where linearizing it is unobservable. An `info` read has no effect at all and
//! is dropped.

use super::{Anomaly, Verdict};
use crate::history::{EventType, Operation};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// One register operation, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RegisterOp {
    Read(Option<i64>),
    Write(i64),
    Cas(i64, i64),
}

impl RegisterOp {
    /// The register after this operation from `state`, or `None` if it cannot happen
    /// there (a read of another value, a swap whose expected value is not there).
    fn step(self, state: Option<i64>) -> Option<Option<i64>> {
        match self {
            RegisterOp::Read(seen) => (seen == state).then_some(state),
            RegisterOp::Write(value) => Some(Some(value)),
            RegisterOp::Cas(old, new) => (state == Some(old)).then_some(Some(new)),
        }
    }
}

/// An operation of one key, with the times the search orders it by.
#[derive(Clone, Debug)]
struct KeyedOp {
    op: RegisterOp,
    call: u64,
    /// `u64::MAX` for `info`.
    ret: u64,
    /// The history index, to name it.
    index: u64,
    description: String,
}

/// What the search of one key found.
#[derive(Debug)]
enum KeyOutcome {
    Linearizable,
    NotLinearizable(Anomaly),
    OutOfTime,
}

/// Checks a register history for linearizability, spending at most `budget` in all
/// (an unfinished key makes the verdict unknown). Malformed operations are reported as
/// such: a checker must not guess.
pub fn check(operations: &[Operation], budget: Duration) -> Verdict {
    let deadline = Instant::now() + budget;
    let mut stats = BTreeMap::new();
    let mut unknown = Vec::new();
    let keys = match by_key(operations, &mut stats) {
        Ok(keys) => keys,
        Err(error) => {
            return Verdict::from_findings(
                Vec::new(),
                vec![format!("malformed history: {error}")],
                stats,
            )
        }
    };
    stats.insert("keys".into(), keys.len() as u64);
    if stats.get("ok-reads").copied().unwrap_or(0) == 0 {
        unknown.push("no read completed: nothing was observed, so nothing was checked".into());
    }
    let outcomes = check_keys_in_parallel(keys, deadline);
    let mut anomalies = Vec::new();
    let mut out_of_time = Vec::new();
    for (key, outcome) in outcomes {
        match outcome {
            KeyOutcome::Linearizable => {}
            KeyOutcome::NotLinearizable(anomaly) => anomalies.push(anomaly),
            KeyOutcome::OutOfTime => out_of_time.push(key),
        }
    }
    if !out_of_time.is_empty() {
        unknown.push(format!(
            "the search ran out of its {} ms budget on key(s) {:?}",
            budget.as_millis(),
            out_of_time
        ));
    }
    Verdict::from_findings(anomalies, unknown, stats)
}

/// Splits the operations by key, dropping what has no bearing (fails, info reads).
fn by_key(
    operations: &[Operation],
    stats: &mut BTreeMap<String, u64>,
) -> Result<BTreeMap<i64, Vec<KeyedOp>>, String> {
    let mut keys: BTreeMap<i64, Vec<KeyedOp>> = BTreeMap::new();
    for operation in operations {
        super::count(stats, operation);
        if operation.outcome == EventType::Fail {
            continue;
        }
        let (key, op) = register_op(operation)?;
        if matches!(op, RegisterOp::Read(_)) {
            if operation.outcome != EventType::Ok {
                continue;
            }
            *stats.entry("ok-reads".into()).or_default() += 1;
        }
        keys.entry(key).or_default().push(KeyedOp {
            op,
            call: operation.invoked_at,
            ret: operation.completed_at.unwrap_or(u64::MAX),
            index: operation.index,
            description: operation.to_string(),
        });
    }
    Ok(keys)
}

/// Reads an operation's key and register effect from its values.
fn register_op(operation: &Operation) -> Result<(i64, RegisterOp), String> {
    let bad = || format!("#{}: unexpected {} value", operation.index, operation.f);
    let value = if operation.outcome == EventType::Ok {
        &operation.value
    } else {
        &operation.invoke
    };
    let pair = value
        .as_array()
        .filter(|pair| pair.len() == 2)
        .ok_or_else(bad)?;
    let key = pair[0].as_i64().ok_or_else(bad)?;
    let op = match operation.f.as_str() {
        "read" => RegisterOp::Read(match &pair[1] {
            Value::Null => None,
            other => Some(other.as_i64().ok_or_else(bad)?),
        }),
        "write" => RegisterOp::Write(pair[1].as_i64().ok_or_else(bad)?),
        "cas" => {
            let swap = pair[1]
                .as_array()
                .filter(|s| s.len() == 2)
                .ok_or_else(bad)?;
            RegisterOp::Cas(
                swap[0].as_i64().ok_or_else(bad)?,
                swap[1].as_i64().ok_or_else(bad)?,
            )
        }
        other => return Err(format!("#{}: unknown operation {other}", operation.index)),
    };
    Ok((key, op))
}

/// Checks every key, on as many threads as there are cores (at most 8).
fn check_keys_in_parallel(
    keys: BTreeMap<i64, Vec<KeyedOp>>,
    deadline: Instant,
) -> Vec<(i64, KeyOutcome)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let work: Vec<(i64, Vec<KeyedOp>)> = keys.into_iter().collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let position = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((key, ops)) = work.get(position) else {
                    return;
                };
                let outcome = check_key(*key, ops, deadline);
                results
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .push((*key, outcome));
            });
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner());
    results.sort_by_key(|(key, _)| *key);
    results
}

/// No entry: the end of the list.
const NIL: usize = usize::MAX;

/// A call or return event in the doubly linked list the search lifts entries out of.
#[derive(Clone, Copy, Debug)]
struct Entry {
    op: usize,
    is_call: bool,
    time: u64,
    prev: usize,
    next: usize,
}

/// The search over one key's operations.
struct Search {
    /// Entry 0 is the head sentinel.
    entries: Vec<Entry>,
    call_entry: Vec<usize>,
    return_entry: Vec<usize>,
}

impl Search {
    fn new(ops: &[KeyedOp]) -> Search {
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call, true, i));
            events.push((op.ret, false, i));
        }
        // At equal times calls come first: the operations are then concurrent, the
        // lenient reading of a tie.
        events.sort_by_key(|&(time, is_call, op)| (time, !is_call, op));
        let mut entries = vec![Entry {
            op: NIL,
            is_call: false,
            time: 0,
            prev: NIL,
            next: NIL,
        }];
        let mut call_entry = vec![NIL; ops.len()];
        let mut return_entry = vec![NIL; ops.len()];
        for (time, is_call, op) in events {
            let position = entries.len();
            let previous = position - 1;
            entries[previous].next = position;
            entries.push(Entry {
                op,
                is_call,
                time,
                prev: previous,
                next: NIL,
            });
            if is_call {
                call_entry[op] = position;
            } else {
                return_entry[op] = position;
            }
        }
        Search {
            entries,
            call_entry,
            return_entry,
        }
    }

    fn unlink(&mut self, entry: usize) {
        let Entry { prev, next, .. } = self.entries[entry];
        self.entries[prev].next = next;
        if next != NIL {
            self.entries[next].prev = prev;
        }
    }

    fn relink(&mut self, entry: usize) {
        let Entry { prev, next, .. } = self.entries[entry];
        self.entries[prev].next = entry;
        if next != NIL {
            self.entries[next].prev = entry;
        }
    }

    /// Takes an operation's call and return out of the list (it is linearized).
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_entry[op]);
        self.unlink(self.return_entry[op]);
    }

    /// Puts them back, in the reverse order of [`Search::lift`].
    fn unlift(&mut self, op: usize) {
        self.relink(self.return_entry[op]);
        self.relink(self.call_entry[op]);
    }
}

/// Whether one key's operations are linearizable from an absent (null) register.
fn check_key(key: i64, ops: &[KeyedOp], deadline: Instant) -> KeyOutcome {
    let mut search = Search::new(ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut state: Option<i64> = None;
    let mut stack: Vec<(usize, Option<i64>)> = Vec::new();
    let mut seen: HashSet<(Vec<u64>, Option<i64>)> = HashSet::new();
    // The deepest partial linearization, and the operation it could not get past.
    let mut deepest: (Vec<usize>, Option<i64>, usize) = (Vec::new(), None, NIL);
    let mut entry = search.entries[0].next;
    let mut steps: u64 = 0;
    loop {
        steps += 1;
        if steps.is_multiple_of(4096) && Instant::now() >= deadline {
            return KeyOutcome::OutOfTime;
        }
        if entry == NIL {
            return KeyOutcome::Linearizable;
        }
        let Entry {
            op, is_call, time, ..
        } = search.entries[entry];
        if is_call {
            let (word, bit) = (op / 64, 1u64 << (op % 64));
            if let Some(next_state) = ops[op].op.step(state) {
                linearized[word] |= bit;
                if seen.insert((linearized.clone(), next_state)) {
                    stack.push((op, state));
                    state = next_state;
                    search.lift(op);
                    entry = search.entries[0].next;
                    continue;
                }
                linearized[word] &= !bit;
            }
            entry = search.entries[entry].next;
        } else {
            // Only operations of unknown outcome are left: they can take effect last,
            // unobserved, or never.
            if time == u64::MAX {
                return KeyOutcome::Linearizable;
            }
            if stack.len() >= deepest.0.len() {
                deepest = (stack.iter().map(|(o, _)| *o).collect(), state, op);
            }
            let Some((undone, previous)) = stack.pop() else {
                return KeyOutcome::NotLinearizable(explain(key, ops, &deepest));
            };
            state = previous;
            linearized[undone / 64] &= !(1u64 << (undone % 64));
            search.unlift(undone);
            entry = search.entries[search.call_entry[undone]].next;
        }
    }
}

/// Names the operation no order could place, after the longest order found.
fn explain(key: i64, ops: &[KeyedOp], deepest: &(Vec<usize>, Option<i64>, usize)) -> Anomaly {
    let (order, state, stuck) = deepest;
    let shown = |value: &Option<i64>| value.map_or("null".to_string(), |v| v.to_string());
    // The last operations placed and the one stuck: enough to look at by hand.
    let mut operations: Vec<u64> = order
        .iter()
        .rev()
        .take(10)
        .rev()
        .map(|&o| ops[o].index)
        .collect();
    let stuck_description = ops
        .get(*stuck)
        .map_or_else(|| "an operation".to_string(), |op| op.description.clone());
    if let Some(op) = ops.get(*stuck) {
        operations.push(op.index);
    }
    let tail: Vec<String> = order
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|&o| ops[o].description.clone())
        .collect();
    Anomaly {
        kind: "nonlinearizable".into(),
        explanation: format!(
            "key {key}: no order of the operations explains {stuck_description}; the longest \
             valid order places {} operations (last: {}) and leaves the register at {}, \
             which that operation cannot follow",
            order.len(),
            if tail.is_empty() {
                "none".to_string()
            } else {
                tail.join("; ")
            },
            shown(state)
        ),
        operations,
    }
}
