//! The bank checker: money moves between accounts in transactions, so every read of
//! all balances — from one snapshot — must show every account, none negative, and the
//! same total as at the start. A wrong total is read skew or a transfer half applied (or
//! applied twice); a negative balance, a lost update that let two withdrawals pass.
//!
//! Operations: `transfer` `{"from", "to", "amount"}`; `read` → `{"<account>": balance,
//! ...}`. Only reads carry evidence; transfers are counted.

use super::{Anomaly, Verdict};
use crate::history::{EventType, Operation};
use std::collections::BTreeMap;

/// Checks every `ok` read against `accounts` accounts holding `total` in all.
pub fn check(operations: &[Operation], accounts: u64, total: i64) -> Verdict {
    let mut stats = BTreeMap::new();
    let mut anomalies = Vec::new();
    for operation in operations {
        super::count(&mut stats, operation);
        if operation.f != "read" || operation.outcome != EventType::Ok {
            continue;
        }
        if let Some(anomaly) = check_read(operation, accounts, total) {
            anomalies.push(anomaly);
        }
    }
    let mut unknown = Vec::new();
    if stats.get("read-ok").copied().unwrap_or(0) == 0 {
        unknown.push("no read completed: nothing was observed".to_string());
    }
    if stats.get("transfer-ok").copied().unwrap_or(0) == 0 {
        unknown.push("no transfer completed: nothing could go wrong".to_string());
    }
    Verdict::from_findings(anomalies, unknown, stats)
}

/// What is wrong with one read, if anything.
fn check_read(read: &Operation, accounts: u64, total: i64) -> Option<Anomaly> {
    let anomaly = |kind: &str, explanation: String| Anomaly {
        kind: kind.into(),
        explanation,
        operations: vec![read.index],
    };
    let Some(balances) = read.value.as_object() else {
        return Some(anomaly(
            "malformed",
            format!("{read}: not a map of balances"),
        ));
    };
    let mut sum = 0i64;
    for account in 0..accounts {
        let Some(balance) = balances.get(&account.to_string()).and_then(|b| b.as_i64()) else {
            return Some(anomaly(
                "missing-account",
                format!("{read}: account {account} is missing"),
            ));
        };
        if balance < 0 {
            return Some(anomaly(
                "negative-value",
                format!("{read}: account {account} holds {balance}"),
            ));
        }
        sum += balance;
    }
    if balances.len() as u64 != accounts {
        return Some(anomaly(
            "unexpected-account",
            format!("{read}: {} accounts, expected {accounts}", balances.len()),
        ));
    }
    (sum != total).then(|| {
        anomaly(
            "wrong-total",
            format!("{read}: the balances add up to {sum}, not {total}"),
        )
    })
}
