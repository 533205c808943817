//! The second step of building a unique index over several data groups.
//!
//! A unique index's entry lives in the shard its values hash to, often in another
//! group than its row; a group installing the index can backfill only the entries it
//! holds (`state_machine::index_maintenance::backfill`). Once every group has installed
//! it — so every commit from then on maintains its entries, wherever they live, and is
//! checked against them — the builder reads each group's rows as they were at that
//! group's install and sends the entries held elsewhere to their groups
//! ([`Operation::BackfillEntries`]), in batches of [`ENTRIES_PER_BATCH`]. An entry whose
//! key a commit has written since is left as that commit wrote it (newer than the row
//! read); every other entry is checked for uniqueness where all claims of its value
//! meet, so duplicates across groups fail the build with 23505 and the index is dropped
//! (see `raft::schema`). A value claimed by a pending cross-group commit makes the
//! batch wait and try again, at most [`CLAIM_RETRIES`] times.
//!
//! Trade-off: the rows of groups this node does not host are read over the network in
//! scan batches, and the builder is the DDL's session: if its node stops half-way the
//! index stays building (unreadable, maintained) until dropped, as a failed backfill of
//! PostgreSQL's CREATE INDEX CONCURRENTLY leaves an invalid index.

use super::node::{Proposal, RaftNode};
use super::types::GroupId;
use crate::catalog::{Index, Table};
use crate::encoding::{self, keycode};
use crate::error::{Error, Result};
use crate::replica::group_read::{self, GroupAnswer, GroupRead};
use crate::shard;
use crate::state_machine::{index_values, IndexWrite, Operation};
use crate::storage::keys;
use crate::storage::mvcc::{Records, VersionedScan};
use crate::types::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Most entries one `BackfillEntries` carries: bounds the entry and its apply.
pub const ENTRIES_PER_BATCH: usize = 1024;
/// How many times a batch meeting a pending claim of one of its values is tried.
const CLAIM_RETRIES: u32 = 100;
/// The pause before trying such a batch again.
const CLAIM_RETRY_PAUSE: Duration = Duration::from_millis(50);

impl RaftNode {
    /// Sends every entry of unique `index` that belongs in another group than its row's
    /// to that group, reading each group's rows at `installed_at[group]` (its install
    /// of the index); returns the latest commit timestamp of the batches (0 if none).
    pub(super) async fn backfill_entries_elsewhere(
        &self,
        table: &Table,
        index: &Index,
        installed_at: &BTreeMap<GroupId, u64>,
    ) -> Result<u64> {
        let mut latest = 0;
        for row_shard in table.shards() {
            let row_group = shard::group_of(table, row_shard);
            let Some(&read_ts) = installed_at.get(&row_group) else {
                return Err(Error::Internal(format!(
                    "group {row_group} holds a shard of \"{}\" but was not installed",
                    table.name
                )));
            };
            let start = keys::table_rows_prefix(row_shard, table.id);
            let end = keycode::prefix_end(&start)
                .ok_or_else(|| Error::Internal("unbounded table prefix".into()))?;
            let mut scan = VersionedScan::new(start.clone(), end, read_ts);
            while !scan.is_done() {
                let records = self.scan_group(row_group, &mut scan).await?;
                let by_group = entries_elsewhere(table, index, row_shard, &start, records)?;
                for (entry_group, entries) in by_group {
                    for batch in entries.chunks(ENTRIES_PER_BATCH) {
                        let ts = self.send_entries(entry_group, batch.to_vec()).await?;
                        latest = latest.max(ts);
                    }
                }
            }
        }
        Ok(latest)
    }

    /// The next batch of `scan` of `group`, from this node's replica or a host's.
    async fn scan_group(&self, group: GroupId, scan: &mut VersionedScan) -> Result<Records> {
        self.ensure_readable(group, scan.read_ts()).await?;
        if let Some(store) = self.group_store(group) {
            return scan.next_batch(&store);
        }
        let read = GroupRead::Scan { scan: scan.clone() };
        match self.read_remote(group, scan.read_ts(), read).await? {
            GroupAnswer::Scan { rows, scan: moved } => {
                *scan = moved;
                Ok(rows)
            }
            other => Err(group_read::mismatched(&other)),
        }
    }

    /// Commits one batch of entries in `group`; waits and tries again while a value is
    /// claimed by a pending commit. Returns the batch's commit timestamp.
    async fn send_entries(&self, group: GroupId, entries: Vec<IndexWrite>) -> Result<u64> {
        let mut attempt = 0;
        loop {
            let operation = Operation::BackfillEntries {
                entries: entries.clone(),
            };
            match self
                .commit_and_apply(group, Proposal::Change(operation))
                .await
            {
                Ok((_, commit_ts)) => return Ok(commit_ts),
                Err(error) if error.is_retryable() && attempt < CLAIM_RETRIES => {
                    attempt += 1;
                    tracing::debug!(group, attempt, %error, "an index batch waits for a claim");
                    tokio::time::sleep(CLAIM_RETRY_PAUSE).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// The entries of `index` for `records` (live rows of `row_shard`, whose keys start
/// with `rows_prefix`) that live in another group than the row's, by that group.
/// Rows with a NULL among the indexed values have entries that claim nothing, but are
/// entries all the same.
fn entries_elsewhere(
    table: &Table,
    index: &Index,
    row_shard: keys::ShardId,
    rows_prefix: &[u8],
    records: Records,
) -> Result<BTreeMap<GroupId, Vec<IndexWrite>>> {
    let row_group = shard::group_of(table, row_shard);
    let mut by_group: BTreeMap<GroupId, Vec<IndexWrite>> = BTreeMap::new();
    for (key, bytes) in records {
        let row: Vec<Value> = encoding::decode(&bytes)?;
        let values = index_values(index, &row);
        let entry_shard = shard::entry_shard(table, index, &values, row_shard);
        let entry_group = shard::group_of(table, entry_shard);
        if entry_group == row_group {
            continue; // backfilled by the row's group at its install
        }
        let pk = key
            .get(rows_prefix.len()..)
            .ok_or_else(|| Error::Corruption("short row key".into()))?;
        by_group.entry(entry_group).or_default().push(IndexWrite {
            table_id: table.id,
            index_id: index.id,
            values,
            pk: pk.to_vec(),
            row: Some(row),
        });
    }
    Ok(by_group)
}
