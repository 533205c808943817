//! Making a data group readable at a snapshot taken across groups.
//!
//! A linearizable snapshot is the highest applied timestamp among the data groups
//! (see `ClusterReplica::read_timestamp`), so a group that has been idle is behind it,
//! and reading it there needs the group moved up first: an entry that commits nothing
//! ([`Operation::Advance`]) at a timestamp at or above the snapshot, after which every
//! later commit there lands above the snapshot and the group's state at the snapshot is
//! final. This is done lazily, only for the groups a transaction actually reads (a
//! transaction touching one row moves no other group), and shared: readers waiting on
//! the same group take turns at a per-group gate, and the one that advances does so to
//! a fresh oracle timestamp, which covers every reader whose snapshot was taken before
//! it — so concurrent readers cost one entry per group between them, not one each.
//!
//! Before advancing, a reader waits (briefly) for the entries already in this
//! replica's log to apply: in a busy group they usually carry the group past the
//! snapshot, which spares the entry.
//!
//! Closed timestamps published by leaders (each leader promising, at intervals, that no
//! commit below some timestamp will come) would spare even that entry; not built yet.

use super::node::{write_error, RaftNode};
use super::types::GroupId;
use crate::error::Result;
use std::sync::Arc;
use std::time::Duration;

/// Longest a reader waits for a group's entries in flight to apply before advancing it.
const IN_FLIGHT_WAIT: Duration = Duration::from_millis(5);

impl RaftNode {
    /// Returns once `group` is readable at `ts` for this node: its own replica has
    /// applied up to `ts` when it hosts the group, or the group has committed something
    /// at or above `ts` (hosts then wait to apply it before answering).
    pub async fn ensure_readable(&self, group: GroupId, ts: u64) -> Result<()> {
        if self.readable_at(group, ts) || self.in_flight_reach(group, ts).await {
            return Ok(());
        }
        let gate = self.advance_gate(group);
        let _turn = gate.lock().await;
        if self.readable_at(group, ts) {
            return Ok(()); // advanced by the reader ahead of this one
        }
        let target = self.timestamp().await.map_err(write_error)?.max(ts);
        self.advance_to(group, target).await?;
        self.note_committed_at(group, target);
        Ok(())
    }

    /// Whether the entries this replica of `group` has in its log but not yet applied
    /// make it readable at `ts` once applied: a busy group usually has some, proposed
    /// at fresh timestamps, and waiting for them (a fraction of a round, bounded by
    /// [`IN_FLIGHT_WAIT`]) costs no entry, where an advance costs one. False at once
    /// for an idle group or one this node does not host.
    async fn in_flight_reach(&self, group: GroupId, ts: u64) -> bool {
        let Ok(state) = self.group(group) else {
            return false;
        };
        if !self.hosts(group) {
            return false;
        }
        let (last_log, applied) = {
            let receiver = state.raft.metrics();
            let metrics = receiver.borrow();
            (
                metrics.last_log_index.unwrap_or(0),
                metrics.last_applied.map_or(0, |log_id| log_id.index),
            )
        };
        if last_log <= applied {
            return false;
        }
        let waited = state
            .raft
            .wait(Some(IN_FLIGHT_WAIT))
            .applied_index_at_least(Some(last_log), "in-flight entries applied")
            .await;
        waited.is_ok() && self.readable_at(group, ts)
    }

    /// Whether `group` is known readable at `ts` without a round trip.
    pub fn readable_at(&self, group: GroupId, ts: u64) -> bool {
        if self.hosts(group) {
            return self
                .applied_commit_ts(group)
                .is_ok_and(|applied| applied >= ts);
        }
        self.committed_at_least(group) >= ts
    }

    /// The per-group gate readers advancing `group` take turns at.
    fn advance_gate(&self, group: GroupId) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self
            .advance_gates
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        Arc::clone(gates.entry(group).or_default())
    }

    /// The highest timestamp `group` is known to have committed at (for a group this
    /// node does not host; learnt from hosts' read rounds and from advances).
    fn committed_at_least(&self, group: GroupId) -> u64 {
        let known = self
            .committed_floor
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        known.get(&group).copied().unwrap_or(0)
    }

    /// Notes that `group` has committed something at `ts` (only ever raises the floor).
    pub(super) fn note_committed_at(&self, group: GroupId, ts: u64) {
        let mut known = self
            .committed_floor
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let floor = known.entry(group).or_default();
        *floor = (*floor).max(ts);
    }
}
