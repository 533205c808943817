//! The set checker: clients add unique elements and read the whole set.
//!
//! - `lost`: an element whose add was acknowledged is missing from the final read
//!   (taken after the faults were healed);
//! - `unexpected`: a read shows an element nobody tried to add;
//! - `stale` (when reads claim to be linearizable): a read that began after an add was
//!   acknowledged does not show it.
//!
//! An add of unknown outcome may or may not be there; a failed one must not be
//! (`unexpected` covers it too: it was certainly never added).
//!
//! Operations: `add` `v` → `v`; `read` → `[v, ...]`; the final read is `f = "final-read"`.

use super::{Anomaly, Verdict};
use crate::history::{EventType, Operation};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Checks a set history; `linearizable` also asks every read to show every add
/// acknowledged before it began.
pub fn check(operations: &[Operation], linearizable: bool) -> Verdict {
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();
    let mut acknowledged: HashMap<i64, &Operation> = HashMap::new();
    let mut attempted: HashMap<i64, &Operation> = HashMap::new();
    let mut failed: HashSet<i64> = HashSet::new();
    let mut reads = Vec::new();
    let mut final_read = None;
    for operation in operations {
        super::count(&mut stats, operation);
        match (operation.f.as_str(), operation.outcome) {
            ("add", outcome) => {
                let Some(element) = operation.invoke.as_i64() else {
                    continue;
                };
                attempted.insert(element, operation);
                match outcome {
                    EventType::Ok => {
                        acknowledged.insert(element, operation);
                    }
                    EventType::Fail => {
                        failed.insert(element);
                    }
                    _ => {}
                }
            }
            ("read", EventType::Ok) => reads.push(operation),
            ("final-read", EventType::Ok) => final_read = Some(operation),
            _ => {}
        }
    }
    let mut anomalies = Vec::new();
    for read in reads.iter().copied().chain(final_read) {
        let seen = elements(read);
        let unexpected: Vec<i64> = seen
            .iter()
            .copied()
            .filter(|e| !attempted.contains_key(e) || failed.contains(e))
            .collect();
        if !unexpected.is_empty() {
            anomalies.push(Anomaly {
                kind: "unexpected".into(),
                explanation: format!(
                    "{read}: shows {} element(s) never added (or whose add failed): {:?}",
                    unexpected.len(),
                    first(&unexpected)
                ),
                operations: vec![read.index],
            });
        }
        if linearizable {
            stale(read, &seen, &acknowledged, &mut anomalies);
        }
    }
    let mut unknown = Vec::new();
    match final_read {
        None => unknown.push("no final read: nothing can be said about lost adds".to_string()),
        Some(read) => {
            let seen = elements(read);
            let mut lost: Vec<(i64, u64)> = acknowledged
                .iter()
                .filter(|(e, _)| !seen.contains(e))
                .map(|(e, add)| (*e, add.index))
                .collect();
            lost.sort_unstable();
            stats.insert("lost".into(), lost.len() as u64);
            if !lost.is_empty() {
                anomalies.push(Anomaly {
                    kind: "lost".into(),
                    explanation: format!(
                        "{} acknowledged add(s) missing from the final read, e.g. {:?}",
                        lost.len(),
                        first(&lost.iter().map(|(e, _)| *e).collect::<Vec<_>>())
                    ),
                    operations: lost.iter().take(10).map(|(_, i)| *i).collect(),
                });
            }
        }
    }
    if acknowledged.is_empty() {
        unknown.push("no add was acknowledged: nothing could be lost".to_string());
    }
    Verdict::from_findings(anomalies, unknown, stats)
}

/// Adds acknowledged before `read` began that it does not show.
fn stale(
    read: &Operation,
    seen: &HashSet<i64>,
    acknowledged: &HashMap<i64, &Operation>,
    anomalies: &mut Vec<Anomaly>,
) {
    let mut missing: Vec<(i64, u64)> = acknowledged
        .iter()
        .filter(|(e, add)| {
            add.completed_at.is_some_and(|done| done < read.invoked_at) && !seen.contains(e)
        })
        .map(|(e, add)| (*e, add.index))
        .collect();
    if missing.is_empty() {
        return;
    }
    missing.sort_unstable();
    let mut operations = vec![read.index];
    operations.extend(missing.iter().take(5).map(|(_, i)| *i));
    anomalies.push(Anomaly {
        kind: "stale".into(),
        explanation: format!(
            "{read}: misses {} element(s) acknowledged before it began, e.g. {:?}",
            missing.len(),
            first(&missing.iter().map(|(e, _)| *e).collect::<Vec<_>>())
        ),
        operations,
    });
}

fn elements(read: &Operation) -> HashSet<i64> {
    read.value
        .as_array()
        .map(|values| values.iter().filter_map(|v| v.as_i64()).collect())
        .unwrap_or_default()
}

/// The first few, for a message.
fn first(values: &[i64]) -> Vec<i64> {
    values.iter().take(5).copied().collect()
}
