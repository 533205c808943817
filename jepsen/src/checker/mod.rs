//! Checkers: from a history to a verdict a person can read.
//!
//! Every checker answers [`Validity::Valid`], [`Validity::Invalid`] (naming each anomaly
//! and the operations involved) or [`Validity::Unknown`] — when it ran out of time, or
//! when the history is too thin to mean anything (nothing read, every operation
//! unknown). Unknown is never counted as a pass.

pub mod bank;
pub mod elle;
pub mod linear;
pub mod set;

use crate::history::{EventType, Operation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether a history satisfies what was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// It does.
    Valid,
    /// It does not: see the anomalies.
    Invalid,
    /// The checker could not tell (see the notes).
    Unknown,
}

/// One thing found wrong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Its name (`nonlinearizable`, `G1c`, `lost`, `wrong-total`, ...).
    pub kind: String,
    /// What happened, in words.
    pub explanation: String,
    /// History indexes of the operations involved (their invocations).
    pub operations: Vec<u64>,
}

/// A checker's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The answer.
    pub valid: Validity,
    /// What was found wrong (empty unless invalid).
    pub anomalies: Vec<Anomaly>,
    /// Why the answer is unknown, and anything else worth knowing.
    pub notes: Vec<String>,
    /// Counts: operations by outcome, keys checked, and so on.
    pub stats: BTreeMap<String, u64>,
}

impl Verdict {
    /// A verdict from what was found: invalid if anything, else unknown if any note
    /// says why it cannot be valid, else valid.
    pub fn from_findings(
        anomalies: Vec<Anomaly>,
        unknown_because: Vec<String>,
        stats: BTreeMap<String, u64>,
    ) -> Verdict {
        let valid = if !anomalies.is_empty() {
            Validity::Invalid
        } else if !unknown_because.is_empty() {
            Validity::Unknown
        } else {
            Validity::Valid
        };
        Verdict {
            valid,
            anomalies,
            notes: unknown_because,
            stats,
        }
    }

    /// The verdict in a few lines for a person.
    pub fn summary(&self) -> String {
        let mut out = format!("verdict: {:?}", self.valid).to_lowercase();
        for anomaly in &self.anomalies {
            out.push_str(&format!(
                "\n  {}: {} (operations {:?})",
                anomaly.kind, anomaly.explanation, anomaly.operations
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("\n  note: {note}"));
        }
        out
    }
}

/// Counts `operation` under `<f>-<ok|fail|info>` in a verdict's stats.
pub(crate) fn count(stats: &mut BTreeMap<String, u64>, operation: &Operation) {
    let outcome = match operation.outcome {
        EventType::Ok => "ok",
        EventType::Fail => "fail",
        _ => "info",
    };
    *stats
        .entry(format!("{}-{outcome}", operation.f))
        .or_default() += 1;
}
