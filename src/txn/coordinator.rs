//! The transaction coordinator: commits a transaction whose writes span groups, by
//! two-phase commit with the decision in one record (the participant side is
//! `state_machine::two_phase`).
//!
//! The coordinator is the session's node. It takes a transaction id from the oracle,
//! sends every participant its share as a `Prepare` (the first participant, in group
//! order, also writes the pending record), all at once; each participant checks its
//! share as a one-group COMMIT would and locks it, at its own prepare timestamp. The
//! commit timestamp is the largest prepare timestamp: after everything any participant
//! had applied when it prepared, so no snapshot that already read a participant
//! without seeing its lock can include the commit. Then one `Decide` in the record's
//! group commits the transaction — one Raft entry, so it is committed exactly when that
//! entry applies — and `Resolve` turns the other participants' shares into versions,
//! after the commit has answered (a background task, a bounded number at once): the
//! transaction is committed once its record is, and a reader meeting a lock not yet
//! resolved settles it from the record. The session reads its next transaction at or
//! above the commit timestamp (`Session::read_after`), so its own later reads wait for
//! the resolve rather than miss it.
//!
//! Failure handling, by what is certain:
//! - a prepare fails (a conflict, a duplicate, a group unreachable, even an unknown
//!   outcome): nothing can have committed, since only the coordinator's `Decide` commits
//!   and it was not sent. The record is decided aborted, the prepared shares dropped,
//!   and the first prepare error is reported — a 40003 becomes 40001, since the outcome
//!   is now known;
//! - the decision is answered aborted (a reader found the transaction stalled and
//!   aborted it first): the shares go, 40001;
//! - the decision's outcome is unknown: so is the transaction's (40003); whoever meets
//!   its locks later asks the record, which decides;
//! - a resolve fails after the commit: the transaction is committed all the same; the
//!   locks left behind are resolved by the readers that meet them or by the leader's
//!   cleaner (`txn::locks`).

use super::{locks, GroupShare};
use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::shard::GroupId;
use crate::state_machine::two_phase::{Prepare, TxnId, TxnOutcome};
use crate::state_machine::{Applied, Operation};
use std::collections::BTreeMap;

/// Commits `shares` (each group's rows and sent index entries; at least two groups)
/// atomically at one commit timestamp; returns it.
pub(super) fn commit_across_groups(
    replica: &Replica,
    start_ts: u64,
    catalog_version: u64,
    shares: BTreeMap<GroupId, GroupShare>,
) -> Result<u64> {
    let participants: Vec<GroupId> = shares.keys().copied().collect();
    let Some(&record_group) = participants.first() else {
        return Err(Error::Internal(
            "a cross-group commit with no writes".into(),
        ));
    };
    let txn = replica.unique_id()?;
    let prepares = shares
        .into_iter()
        .map(|(group, share)| {
            let prepare = Prepare {
                txn,
                start_ts,
                catalog_version,
                record_group,
                participants: (group == record_group).then(|| participants.clone()),
                writes: share.writes,
                index_writes: share.index_writes,
            };
            (group, Operation::Prepare(prepare))
        })
        .collect();
    let commit_ts = match prepared_at(replica.propose_each(prepares)?) {
        Ok(commit_ts) => commit_ts,
        Err(error) => {
            abort(replica, txn, record_group, &participants);
            return Err(certainly_not_committed(error));
        }
    };
    let pause = replica.commit_pause();
    if !pause.is_zero() {
        std::thread::sleep(pause);
    }
    let outcome = TxnOutcome::Commit { commit_ts };
    match replica.propose(record_group, Operation::Decide { txn, outcome }) {
        Ok(Applied::Decided {
            outcome: TxnOutcome::Commit { commit_ts },
        }) => {
            let others: Vec<GroupId> = participants
                .iter()
                .copied()
                .filter(|group| *group != record_group)
                .collect();
            let committed = TxnOutcome::Commit { commit_ts };
            // The transaction is committed; its other shares are resolved after the
            // answer (readers meeting their locks settle them from the record).
            if !replica.resolve_in_background(txn, committed, others.clone()) {
                locks::resolve_shares(replica, txn, committed, others.into_iter());
            }
            Ok(commit_ts)
        }
        Ok(Applied::Decided {
            outcome: TxnOutcome::Abort,
        }) => {
            abort(replica, txn, record_group, &participants);
            Err(Error::SerializationFailure(format!(
                "transaction {txn} was aborted by a reader that found it stalled"
            )))
        }
        Ok(other) => Err(Error::Internal(format!(
            "the decision of transaction {txn} was answered with {other:?}"
        ))),
        Err(Error::OutcomeUnknown(why)) => Err(Error::OutcomeUnknown(why)),
        Err(error) => {
            // Refused or certainly not applied: the record is still pending or aborted.
            abort(replica, txn, record_group, &participants);
            Err(certainly_not_committed(error))
        }
    }
}

/// The commit timestamp from the participants' answers to their prepares: the largest
/// prepare timestamp, or the first failure.
fn prepared_at(answers: Vec<Result<Applied>>) -> Result<u64> {
    let mut commit_ts = 0;
    for answer in answers {
        match answer? {
            Applied::Prepared { prepare_ts } => commit_ts = commit_ts.max(prepare_ts),
            other => {
                return Err(Error::Internal(format!(
                    "a prepare was answered with {other:?}"
                )))
            }
        }
    }
    Ok(commit_ts)
}

/// Decides the transaction aborted and drops every participant's share, as far as
/// the groups can be reached; what cannot is left to the lock cleaners.
fn abort(replica: &Replica, txn: TxnId, record_group: GroupId, participants: &[GroupId]) {
    let decide = Operation::Decide {
        txn,
        outcome: TxnOutcome::Abort,
    };
    match replica.propose(record_group, decide) {
        Ok(Applied::Decided {
            outcome: TxnOutcome::Commit { .. },
        }) => panic!(
            "invariant broken: transaction {txn} was decided committed, but its \
             coordinator never asked for a commit"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(txn, %error, "could not decide an abort; left to cleaners"),
    }
    let others = participants.iter().filter(|group| **group != record_group);
    locks::resolve_shares(replica, txn, TxnOutcome::Abort, others.copied());
}

/// The error to report once a transaction is known not to have committed.
fn certainly_not_committed(error: Error) -> Error {
    match error {
        Error::OutcomeUnknown(why) => Error::Retryable(format!(
            "a participant's prepare may not have applied ({why}); the transaction was \
             aborted"
        )),
        other => other,
    }
}
