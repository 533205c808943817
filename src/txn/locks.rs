//! Readers and cleaners meeting the locks of cross-group commits.
//!
//! A prepared transaction's locks stand for writes whose fate is in its record. A
//! snapshot at `S` can ignore a lock prepared after `S` (the commit timestamp is at
//! least every prepare timestamp), but not one at or below it: the transaction may
//! commit at or below `S`, and then the snapshot must see its writes. Such a lock is
//! settled before the shard is read: the record decides (committed or aborted: the
//! share is resolved — the reader helps — and the read goes on over versions), and a
//! record still pending is waited for, at most [`PENDING_WAIT`], then aborted (its
//! coordinator has stopped or is very slow; the first decision wins, so an abort
//! racing its commit is answered with the commit). Readers never read a prepared value
//! themselves: after settling, everything at or below `S` is a version.
//!
//! Any lock a reader must settle is already in place when the reader starts: it reads
//! a group only once the group has applied past `S`, and a prepare applied later has a
//! prepare timestamp above `S`.
//!
//! The cleaner (`clean_abandoned`, run by each data group's leader) settles prepared
//! shares that have stayed for [`ABANDONED_AFTER`], so locks of a coordinator that died
//! do not block writers (who are refused, 40001, while a lock stands) until a reader
//! happens by.

use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::replica::group_read::{self, GroupAnswer, GroupRead};
use crate::replica::Replica;
use crate::shard::GroupId;
use crate::state_machine::two_phase::{self, Lock, TxnId, TxnOutcome, TxnRecord};
use crate::state_machine::{Applied, Operation};
use crate::storage::keys::{self, ShardId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Longest a reader waits for a pending transaction's decision before aborting it.
pub const PENDING_WAIT: Duration = Duration::from_secs(2);
/// How often a waiting reader looks at the record again.
const POLL: Duration = Duration::from_millis(5);
/// How long a prepared share may stand before the group's leader settles it.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(5);
/// Most locks of one table's shard settled before one read: bounds the work a read
/// takes on; a shard with more is settled over several reads (each fails retryably).
const MAX_LOCKS_PER_READ: usize = 1024;

/// Settles every lock at or below `snapshot` on `table`'s rows in `shard` (in
/// `group`), so the shard can be read as versions.
pub fn settle_shard(
    replica: &Replica,
    table: &Table,
    shard: ShardId,
    group: GroupId,
    snapshot: u64,
) -> Result<()> {
    let listing = GroupRead::TableLocks {
        shard,
        table: table.id,
        limit: MAX_LOCKS_PER_READ + 1,
    };
    let found = match replica.read_group(group, snapshot, listing)? {
        GroupAnswer::TableLocks(locks) => locks,
        other => return Err(group_read::mismatched(&other)),
    };
    let truncated = found.len() > MAX_LOCKS_PER_READ;
    // A transaction holds many locks here and one settling releases them all.
    let mut holders: Vec<Lock> = Vec::new();
    for lock in found.into_iter().take(MAX_LOCKS_PER_READ) {
        if lock.prepare_ts <= snapshot && !holders.iter().any(|held| held.txn == lock.txn) {
            holders.push(lock);
        }
    }
    for lock in holders {
        settle(replica, group, lock)?;
    }
    if truncated {
        return Err(Error::Retryable(format!(
            "more than {MAX_LOCKS_PER_READ} locks of \"{}\" were settled; read again",
            table.name
        )));
    }
    Ok(())
}

/// Settles the lock on one row, if there is one at or below `snapshot`.
pub fn settle_row(
    replica: &Replica,
    table: &Table,
    pk: &[u8],
    group: GroupId,
    snapshot: u64,
) -> Result<()> {
    let shard = crate::shard::shard_of(table, pk);
    let key = keys::row_lock_key(shard, table.id, pk);
    let lock = match replica.read_group(group, snapshot, GroupRead::Lock { key })? {
        GroupAnswer::Lock(lock) => lock,
        other => return Err(group_read::mismatched(&other)),
    };
    match lock {
        Some(lock) if lock.prepare_ts <= snapshot => settle(replica, group, lock),
        Some(_) | None => Ok(()),
    }
}

/// Settles one lock held in `group`: resolves its share by the record's decision,
/// deciding an abort when the record stays pending past [`PENDING_WAIT`].
fn settle(replica: &Replica, group: GroupId, lock: Lock) -> Result<()> {
    let outcome = decision(replica, lock.txn, lock.record_group, PENDING_WAIT)?;
    if group != lock.record_group {
        // The record's own group resolves its share with the decision.
        resolve(replica, lock.txn, outcome, group)?;
    }
    Ok(())
}

/// The decision of `txn`, as its record in `record_group` holds it: waited for up to
/// `patience`, then forced by deciding an abort.
fn decision(
    replica: &Replica,
    txn: TxnId,
    record_group: GroupId,
    patience: Duration,
) -> Result<TxnOutcome> {
    let deadline = Instant::now() + patience;
    loop {
        // Any replica's copy will do: a stale "pending" only makes this wait, and the
        // forced abort is answered with the decision if there was one.
        let record = match replica.read_group(record_group, 0, GroupRead::Record { txn })? {
            GroupAnswer::Record(record) => record,
            other => return Err(group_read::mismatched(&other)),
        };
        match record {
            Some(TxnRecord::Committed { commit_ts }) => {
                return Ok(TxnOutcome::Commit { commit_ts })
            }
            Some(TxnRecord::Aborted) => return Ok(TxnOutcome::Abort),
            Some(TxnRecord::Pending { .. }) | None if Instant::now() < deadline => {
                std::thread::sleep(POLL);
            }
            Some(TxnRecord::Pending { .. }) | None => {
                return force_abort(replica, txn, record_group)
            }
        }
    }
}

/// Decides `txn` aborted, unless it was decided first; returns the decision.
fn force_abort(replica: &Replica, txn: TxnId, record_group: GroupId) -> Result<TxnOutcome> {
    tracing::warn!(
        txn,
        record_group,
        "aborting a transaction whose record stayed pending"
    );
    let decide = Operation::Decide {
        txn,
        outcome: TxnOutcome::Abort,
    };
    match replica.propose(record_group, decide) {
        Ok(Applied::Decided { outcome }) => Ok(outcome),
        Ok(other) => Err(Error::Internal(format!(
            "the abort of transaction {txn} was answered with {other:?}"
        ))),
        Err(Error::OutcomeUnknown(why)) => Err(Error::Retryable(format!(
            "transaction {txn} holds a lock and could not be decided: {why}"
        ))),
        Err(error) => Err(error),
    }
}

/// Resolves `txn`'s share in `group` by `outcome` (idempotent).
fn resolve(replica: &Replica, txn: TxnId, outcome: TxnOutcome, group: GroupId) -> Result<()> {
    match replica.propose(group, Operation::Resolve { txn, outcome }) {
        Ok(_) => Ok(()),
        // Resolving changes nothing the second time: asking again is safe.
        Err(Error::OutcomeUnknown(why)) => Err(Error::Retryable(why)),
        Err(error) => Err(error),
    }
}

/// Resolves `txn`'s share in each of `groups` by `outcome`, all at once; a group that
/// cannot be reached keeps its locks for readers and cleaners to settle.
pub fn resolve_shares(
    replica: &Replica,
    txn: TxnId,
    outcome: TxnOutcome,
    groups: impl Iterator<Item = GroupId>,
) {
    let resolves = groups
        .map(|group| (group, Operation::Resolve { txn, outcome }))
        .collect();
    let answers = match replica.propose_each(resolves) {
        Ok(answers) => answers,
        Err(error) => vec![Err(error)],
    };
    for answer in answers {
        if let Err(error) = answer {
            tracing::warn!(txn, %error, "a share was not resolved; left to readers and cleaners");
        }
    }
}

/// When each prepared share was first seen by a cleaner, by (group, transaction).
pub type FirstSeen = HashMap<(GroupId, TxnId), Instant>;

/// Settles the shares prepared in `group` that have stood for [`ABANDONED_AFTER`]
/// since `seen` first noted them; forgets the ones that are gone.
pub fn clean_abandoned(replica: &Replica, group: GroupId, seen: &mut FirstSeen) -> Result<()> {
    let store = replica.group_store(group)?;
    let shares = two_phase::prepared_shares(&store)?;
    seen.retain(|(in_group, txn), _| {
        *in_group != group || shares.iter().any(|share| share.txn == *txn)
    });
    for share in shares {
        let first = *seen.entry((group, share.txn)).or_insert_with(Instant::now);
        if first.elapsed() < ABANDONED_AFTER {
            continue;
        }
        let outcome = decision(replica, share.txn, share.record_group, Duration::ZERO)?;
        if group != share.record_group {
            resolve(replica, share.txn, outcome, group)?;
        }
        tracing::info!(
            group,
            txn = share.txn,
            ?outcome,
            "settled an abandoned share"
        );
    }
    Ok(())
}
