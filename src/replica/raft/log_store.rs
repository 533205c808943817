//! The Raft log and vote of every group a node hosts, in the node's one RocksDB.
//!
//! Entries live in the `raft_log` column family under `group u64 | index u64` (both
//! big-endian, so a group's log is one contiguous, ordered key range); the vote, the
//! committed log id and the last purged log id in `raft_state` under `group | tag`.
//!
//! Durability, as openraft requires: a vote is synced before `save_vote` returns; an
//! appended entry is readable when `append` returns and is reported flushed (the
//! callback) only after a WAL sync that covers it. Those syncs are group commit: one
//! [`LogSyncer`] thread per store takes every pending callback, syncs the WAL once and
//! completes them all, so concurrent appends — of one group or of many, since every
//! group shares the WAL — share one fsync. Truncation is synced (it is rare and must not
//! be undone by a crash under entries appended after it); a purge persists the new
//! purge point first and then deletes, so a crash in between only leaves entries
//! openraft ignores.
//!
//! A leader's own appends are pipelined (Raft thesis §10.2.1: the leader writes to its
//! disk in parallel with replicating): while [`LeaderPipelining`] allows it, `append`
//! reports the leader's new entries flushed at once, so openraft sends them to the
//! followers during the leader's sync instead of after it. openraft then counts the
//! leader's copy early, so the network layer holds every follower's acknowledgement
//! back until the leader's own copy is durable ([`Durability::wait_durable`]): an entry
//! still commits only once a majority has it on disk. That is sound only when no
//! quorum is the leader alone, which the node checks before allowing it (see
//! `RaftNode`'s leader watch).

use super::pacing::SnapshotPacing;
use super::types::{
    Entry, GroupId, LogId, LogState, NodeId, StorageError, StorageIOError, TypeConfig, Vote,
};
use super::{state_key, StateTag};
use crate::encoding;
use crate::storage::{Batch, Space, Store};
use openraft::entry::RaftPayload;
use openraft::storage::{LogFlushed, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftLogId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Entries read from RocksDB per scan while serving a range.
const READ_CHUNK: usize = 1024;
/// Most flush callbacks waiting for a sync; an append waits when the syncer is this far
/// behind (back-pressure rather than unbounded memory).
const MAX_PENDING_FLUSHES: usize = 4096;

fn entry_key(group: GroupId, index: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&group.to_be_bytes());
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// `[start, end)` of a group's entries with indexes in `range`.
fn key_range(group: GroupId, range: &impl RangeBounds<u64>) -> Option<(Vec<u8>, Vec<u8>)> {
    let start = match range.start_bound() {
        Bound::Included(&index) => index,
        Bound::Excluded(&index) => index.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&index) => entry_key(group, index).into_iter().chain([0]).collect(),
        Bound::Excluded(&index) => entry_key(group, index),
        Bound::Unbounded => group_end(group),
    };
    Some((entry_key(group, start), end))
}

/// The first key after every entry of `group`.
fn group_end(group: GroupId) -> Vec<u8> {
    let mut key = group.to_be_bytes().to_vec();
    key.extend_from_slice(&[0xff; 9]);
    key
}

fn read_error(error: crate::error::Error) -> StorageError {
    StorageIOError::read_logs(&error).into()
}

fn write_error(error: crate::error::Error) -> StorageError {
    StorageIOError::write_logs(&error).into()
}

/// How far one group's log is on disk: the highest index written and the highest
/// covered by a completed sync.
#[derive(Debug)]
pub struct Durability {
    written: AtomicU64,
    durable: tokio::sync::watch::Sender<u64>,
    /// Truncations so far: a sync that began before one must not raise `durable`
    /// (the indexes it covered may have been rewritten since).
    truncations: AtomicU64,
}

impl Durability {
    fn new(last_index: u64) -> Durability {
        Durability {
            written: AtomicU64::new(last_index),
            durable: tokio::sync::watch::Sender::new(last_index),
            truncations: AtomicU64::new(0),
        }
    }

    /// Waits until every entry up to `index` is on disk here, at most `timeout`;
    /// returns whether it is.
    pub async fn wait_durable(&self, index: u64, timeout: Duration) -> bool {
        let mut receiver = self.durable.subscribe();
        let reached = tokio::time::timeout(timeout, receiver.wait_for(|durable| *durable >= index))
            .await
            .is_ok_and(|waited| waited.is_ok());
        reached
    }

    /// Marks entries up to `index` written (not yet synced).
    fn written_up_to(&self, index: u64) {
        self.written.fetch_max(index, Ordering::SeqCst);
    }

    /// After a (synced) truncation: nothing from `since` on is written or durable.
    fn truncated_from(&self, since: u64) {
        self.truncations.fetch_add(1, Ordering::SeqCst);
        let kept = since.saturating_sub(1);
        self.written.fetch_min(kept, Ordering::SeqCst);
        self.durable
            .send_modify(|durable| *durable = (*durable).min(kept));
    }
}

/// Whether a group's leader may report its own appends flushed before its sync (see
/// the module doc). Off until the node turns it on.
#[derive(Debug, Default)]
pub struct LeaderPipelining(AtomicBool);

impl LeaderPipelining {
    /// Allows or forbids pipelining from the next append on.
    pub fn set(&self, allowed: bool) {
        self.0.store(allowed, Ordering::SeqCst);
    }

    fn allowed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A sync the syncer owes: a flush to report, or only a sync (a pipelined append).
enum SyncJob {
    Flushed(LogFlushed<TypeConfig>),
    SyncOnly,
}

/// Completes flush callbacks after WAL syncs, one sync per batch of callbacks.
pub struct LogSyncer {
    sender: Mutex<Option<SyncSender<SyncJob>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Every group's [`Durability`], updated by the sync thread.
    groups: Arc<Mutex<HashMap<GroupId, Arc<Durability>>>>,
}

impl LogSyncer {
    /// Starts the sync thread for `store`. Syncs the WAL first: a process killed
    /// before its sync leaves writes in the page cache that reopening shows as if
    /// durable, and the durability marks start from what the log holds.
    pub fn start(store: Arc<Store>) -> std::io::Result<Arc<LogSyncer>> {
        store
            .sync_wal()
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        let (sender, receiver) = sync_channel(MAX_PENDING_FLUSHES);
        let groups: Arc<Mutex<HashMap<GroupId, Arc<Durability>>>> = Arc::default();
        let synced_groups = Arc::clone(&groups);
        let thread = std::thread::Builder::new()
            .name("tessera-log-sync".into())
            .spawn(move || sync_loop(&store, &receiver, &synced_groups))?;
        Ok(Arc::new(LogSyncer {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            groups,
        }))
    }

    /// The durability marks of `group`, starting at `last_index` when first asked.
    fn durability(&self, group: GroupId, last_index: u64) -> Arc<Durability> {
        let mut groups = self
            .groups
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        Arc::clone(
            groups
                .entry(group)
                .or_insert_with(|| Arc::new(Durability::new(last_index))),
        )
    }

    /// Hands over a callback to complete after the next sync.
    fn submit(&self, callback: LogFlushed<TypeConfig>) {
        if let Err(SyncJob::Flushed(callback)) = self.send(SyncJob::Flushed(callback)) {
            callback.log_io_completed(Err(std::io::Error::other(
                "the log sync thread has stopped",
            )));
        }
    }

    fn send(&self, job: SyncJob) -> Result<(), SyncJob> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        match sender {
            Some(sender) => sender.send(job).map_err(|returned| returned.0),
            None => Err(job),
        }
    }
}

impl Drop for LogSyncer {
    fn drop(&mut self) {
        self.sender
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }
}

fn sync_loop(
    store: &Store,
    receiver: &Receiver<SyncJob>,
    groups: &Mutex<HashMap<GroupId, Arc<Durability>>>,
) {
    while let Ok(first) = receiver.recv() {
        let mut waiting = vec![first];
        while waiting.len() < MAX_PENDING_FLUSHES {
            match receiver.try_recv() {
                Ok(job) => waiting.push(job),
                Err(_) => break,
            }
        }
        // What is written before the sync begins is durable once it returns.
        let covered: Vec<(Arc<Durability>, u64, u64)> = groups
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .values()
            .map(|group| {
                let truncations = group.truncations.load(Ordering::SeqCst);
                (
                    Arc::clone(group),
                    group.written.load(Ordering::SeqCst),
                    truncations,
                )
            })
            .collect();
        let outcome = store.sync_wal();
        if outcome.is_ok() {
            for (group, written, truncations) in covered {
                group.durable.send_if_modified(|durable| {
                    // A truncation meanwhile: the next sync will say what is on disk.
                    let unchanged = group.truncations.load(Ordering::SeqCst) == truncations;
                    let raised = unchanged && *durable < written;
                    if raised {
                        *durable = written;
                    }
                    raised
                });
            }
        }
        for job in waiting {
            if let SyncJob::Flushed(callback) = job {
                callback.log_io_completed(match &outcome {
                    Ok(()) => Ok(()),
                    Err(error) => Err(std::io::Error::other(error.to_string())),
                });
            }
        }
    }
}

/// Deletes every log entry and every piece of state of `group` from the node store
/// (synced), and forgets its durability marks: for a replica retired from this node,
/// which may host the group again later, starting from an empty log.
pub fn forget_group(store: &Store, syncer: &LogSyncer, group: GroupId) -> crate::error::Result<()> {
    let mut batch = Batch::default();
    batch.delete_range(Space::RaftLog, entry_key(group, 0), group_end(group));
    let next = group
        .checked_add(1)
        .map_or_else(|| vec![0xff; 9], |next| next.to_be_bytes().to_vec());
    batch.delete_range(Space::RaftState, group.to_be_bytes().to_vec(), next);
    store.write(batch)?;
    syncer
        .groups
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .remove(&group);
    Ok(())
}

/// One group's log and vote.
#[derive(Clone)]
pub struct LogStore {
    store: Arc<Store>,
    group: GroupId,
    syncer: Arc<LogSyncer>,
    /// This node, to recognise its own appends as leader.
    node_id: NodeId,
    /// The vote last saved or read: appends of entries of a committed vote of this
    /// node are the leader's own.
    vote: Arc<Mutex<Option<Vote>>>,
    durability: Arc<Durability>,
    pipelining: Arc<LeaderPipelining>,
    /// Told the size of every append, to pace the group's snapshots.
    pacing: Arc<SnapshotPacing>,
}

impl LogStore {
    /// The log of `group` in `store` on node `node_id`; appends are synced by `syncer`
    /// (one per store), pipelined as leader while `pipelining` allows, and counted in
    /// `pacing`.
    pub fn new(
        store: Arc<Store>,
        group: GroupId,
        syncer: Arc<LogSyncer>,
        node_id: NodeId,
        pipelining: Arc<LeaderPipelining>,
        pacing: Arc<SnapshotPacing>,
    ) -> crate::error::Result<LogStore> {
        let mut log = LogStore {
            durability: Arc::new(Durability::new(0)),
            store,
            group,
            syncer,
            node_id,
            vote: Arc::default(),
            pipelining,
            pacing,
        };
        let last_index = log.last_entry_id()?.map_or(0, |id| id.index);
        log.durability = log.syncer.durability(group, last_index);
        Ok(log)
    }

    /// How far this group's log is on disk here.
    pub fn durability(&self) -> Arc<Durability> {
        Arc::clone(&self.durability)
    }

    /// Whether `entries` are this node's own appends as leader, to be pipelined.
    fn pipelined(&self, entries: &[Entry]) -> bool {
        if !self.pipelining.allowed() || entries.iter().any(|e| e.get_membership().is_some()) {
            return false;
        }
        let vote = *self
            .vote
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let Some(vote) = vote.filter(|vote| vote.is_committed()) else {
            return false;
        };
        let leader = vote.leader_id();
        leader.voted_for() == Some(self.node_id)
            && entries.iter().all(|entry| {
                let id = &entry.get_log_id().leader_id;
                id.term == leader.term && id.node_id == self.node_id
            })
    }

    fn read_state<T: serde::de::DeserializeOwned>(
        &self,
        tag: StateTag,
    ) -> crate::error::Result<Option<T>> {
        self.store
            .get(Space::RaftState, &state_key(self.group, tag))?
            .map(|bytes| encoding::decode(&bytes))
            .transpose()
    }

    fn write_state<T: serde::Serialize>(
        &self,
        tag: StateTag,
        value: &T,
        sync: bool,
    ) -> crate::error::Result<()> {
        let mut batch = Batch::default();
        batch.put(
            Space::RaftState,
            state_key(self.group, tag),
            encoding::encode(value)?,
        );
        if sync {
            self.store.write(batch)
        } else {
            self.store.write_unsynced(batch)
        }
    }

    /// Writes entries (unsynced: `append` has them synced before reporting them flushed).
    fn write_entries(&self, entries: &[Entry]) -> crate::error::Result<()> {
        let mut batch = Batch::default();
        let mut bytes = 0;
        for entry in entries {
            let key = entry_key(self.group, entry.get_log_id().index);
            let value = encoding::encode(entry)?;
            bytes += value.len() as u64;
            batch.put(Space::RaftLog, key, value);
        }
        self.store.write_unsynced(batch)?;
        self.pacing.appended(bytes);
        if let Some(last) = entries.last() {
            self.durability.written_up_to(last.get_log_id().index);
        }
        Ok(())
    }

    fn last_entry_id(&self) -> crate::error::Result<Option<LogId>> {
        let start = entry_key(self.group, 0);
        let last = self
            .store
            .last_in_range(Space::RaftLog, &start, &group_end(self.group))?;
        last.map(|(_, bytes)| encoding::decode::<Entry>(&bytes).map(|entry| *entry.get_log_id()))
            .transpose()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some((mut start, end)) = key_range(self.group, &range) else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        loop {
            let chunk = self
                .store
                .scan(Space::RaftLog, &start, &end, READ_CHUNK)
                .map_err(read_error)?;
            let done = chunk.len() < READ_CHUNK;
            for (key, bytes) in &chunk {
                entries.push(encoding::decode::<Entry>(bytes).map_err(read_error)?);
                start = key.iter().copied().chain([0]).collect();
            }
            if done {
                return Ok(entries);
            }
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState, StorageError> {
        let last_purged_log_id: Option<LogId> =
            self.read_state(StateTag::Purged).map_err(read_error)?;
        let last_log_id = self
            .last_entry_id()
            .map_err(read_error)?
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_state(StateTag::Vote, vote, true)
            .map_err(|error| StorageIOError::write_vote(&error))?;
        *self
            .vote
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let vote: Option<Vote> = self
            .read_state(StateTag::Vote)
            .map_err(|error| StorageIOError::read_vote(&error))?;
        *self
            .vote
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = vote;
        Ok(vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Unsynced: after a crash openraft learns the commit point again from the leader;
        // this only saves re-applying entries at restart.
        self.write_state(StateTag::Committed, &committed, false)
            .map_err(write_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed = self.read_state::<Option<LogId>>(StateTag::Committed);
        Ok(committed.map_err(read_error)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.write_entries(&entries).map_err(write_error)?;
        if self.pipelined(&entries) {
            // Reported flushed now; the sync still follows at once, and followers'
            // acknowledgements wait for it (see the module doc).
            callback.log_io_completed(Ok(()));
            if self.syncer.send(SyncJob::SyncOnly).is_err() {
                return Err(write_error(crate::error::Error::Internal(
                    "the log sync thread has stopped".into(),
                )));
            }
        } else {
            self.syncer.submit(callback);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        batch.delete_range(
            Space::RaftLog,
            entry_key(self.group, log_id.index),
            group_end(self.group),
        );
        self.store.write(batch).map_err(write_error)?;
        self.durability.truncated_from(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_state(StateTag::Purged, &log_id, true)
            .map_err(write_error)?;
        let mut batch = Batch::default();
        let end = log_id
            .index
            .checked_add(1)
            .map_or_else(|| group_end(self.group), |next| entry_key(self.group, next));
        batch.delete_range(Space::RaftLog, entry_key(self.group, 0), end);
        self.store.write_unsynced(batch).map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{blank_ent, log_id, membership_ent};
    use std::collections::BTreeSet;

    fn log(store: &Arc<Store>, group: GroupId) -> LogStore {
        let syncer = LogSyncer::start(Arc::clone(store)).unwrap();
        LogStore::new(
            Arc::clone(store),
            group,
            syncer,
            1,
            Arc::default(),
            Arc::default(),
        )
        .unwrap()
    }

    /// A leader pipelines only its own entries of its committed vote, while allowed,
    /// and never a membership change.
    #[tokio::test]
    async fn only_the_leaders_own_entries_are_pipelined() {
        let store = Arc::new(Store::temporary().unwrap());
        let pipelining = Arc::new(LeaderPipelining::default());
        let syncer = LogSyncer::start(Arc::clone(&store)).unwrap();
        let mut log =
            LogStore::new(store, 1, syncer, 1, Arc::clone(&pipelining), Arc::default()).unwrap();
        let own = [blank_ent::<TypeConfig>(3, 1, 1)];
        log.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
        assert!(!log.pipelined(&own), "not allowed yet");
        pipelining.set(true);
        assert!(log.pipelined(&own));
        assert!(
            !log.pipelined(&[blank_ent::<TypeConfig>(2, 1, 1)]),
            "an older term's entry"
        );
        assert!(
            !log.pipelined(&[blank_ent::<TypeConfig>(3, 2, 1)]),
            "another leader's"
        );
        let voters = vec![BTreeSet::from([1, 2, 3])];
        let change = membership_ent::<TypeConfig>(3, 1, 2, voters);
        assert!(!log.pipelined(&[change]), "a membership change");
        log.save_vote(&Vote::new(4, 1)).await.unwrap();
        assert!(
            !log.pipelined(&[blank_ent::<TypeConfig>(4, 1, 1)]),
            "a candidate"
        );
        log.save_vote(&Vote::new_committed(4, 2)).await.unwrap();
        assert!(
            !log.pipelined(&[blank_ent::<TypeConfig>(4, 2, 1)]),
            "a follower"
        );
    }

    /// An entry counts as durable only after a sync that began once it was written;
    /// a truncation takes the mark back.
    #[tokio::test]
    async fn durability_follows_syncs_and_truncations() {
        let store = Arc::new(Store::temporary().unwrap());
        let mut log = log(&store, 1);
        let durability = log.durability();
        let brief = Duration::from_millis(50);
        log.write_entries(&blanks(1, 1..=5)).unwrap();
        assert!(!durability.wait_durable(5, brief).await, "no sync yet");
        assert!(log.syncer.send(SyncJob::SyncOnly).is_ok());
        assert!(durability.wait_durable(5, Duration::from_secs(10)).await);
        log.truncate(log_id(1, 0, 4)).await.unwrap();
        assert!(
            !durability.wait_durable(4, brief).await,
            "entries 4 and 5 are gone"
        );
        assert!(durability.wait_durable(3, brief).await);
    }

    /// Blank entries of `term` (leader node 0) at `indexes`.
    fn blanks(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        indexes
            .map(|i| blank_ent::<TypeConfig>(term, 0, i))
            .collect()
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.get_log_id().index).collect()
    }

    /// Entries read back by any range shape; groups sharing a store never see each
    /// other's entries; the log state names the last entry.
    #[tokio::test]
    async fn entries_by_range_and_group() {
        let store = Arc::new(Store::temporary().unwrap());
        let mut one = log(&store, 1);
        let mut two = log(&store, 2);
        one.write_entries(&blanks(1, 1..=10)).unwrap();
        two.write_entries(&blanks(2, 1..=3)).unwrap();
        assert_eq!(
            indexes(&one.try_get_log_entries(3..6).await.unwrap()),
            vec![3, 4, 5]
        );
        assert_eq!(
            indexes(&one.try_get_log_entries(8..=10).await.unwrap()),
            vec![8, 9, 10]
        );
        assert_eq!(
            indexes(&one.try_get_log_entries(9..).await.unwrap()),
            vec![9, 10]
        );
        assert_eq!(one.try_get_log_entries(..).await.unwrap().len(), 10);
        assert!(one.try_get_log_entries(11..20).await.unwrap().is_empty());
        assert_eq!(
            indexes(&two.try_get_log_entries(..).await.unwrap()),
            vec![1, 2, 3]
        );
        let state = one.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(1, 0, 10)));
        assert_eq!(state.last_purged_log_id, None);
        assert_eq!(
            two.get_log_state().await.unwrap().last_log_id,
            Some(log_id(2, 0, 3))
        );
    }

    /// Truncation removes the given index and everything after it; purging removes it
    /// and everything before, and the log state remembers the purge point even when
    /// nothing is left.
    #[tokio::test]
    async fn truncate_and_purge() {
        let store = Arc::new(Store::temporary().unwrap());
        let mut one = log(&store, 1);
        let mut two = log(&store, 2);
        one.write_entries(&blanks(1, 1..=10)).unwrap();
        two.write_entries(&blanks(1, 1..=10)).unwrap();
        one.truncate(log_id(1, 0, 7)).await.unwrap();
        assert_eq!(
            indexes(&one.try_get_log_entries(..).await.unwrap()),
            (1..=6).collect::<Vec<_>>()
        );
        one.purge(log_id(1, 0, 3)).await.unwrap();
        assert_eq!(
            indexes(&one.try_get_log_entries(..).await.unwrap()),
            vec![4, 5, 6]
        );
        let state = one.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 0, 3)));
        assert_eq!(state.last_log_id, Some(log_id(1, 0, 6)));
        one.purge(log_id(1, 0, 6)).await.unwrap();
        let state = one.get_log_state().await.unwrap();
        assert_eq!(
            state.last_log_id,
            Some(log_id(1, 0, 6)),
            "falls back to the purge point"
        );
        assert_eq!(
            two.try_get_log_entries(..).await.unwrap().len(),
            10,
            "other groups untouched"
        );
    }

    /// The vote and the committed log id survive closing and reopening the store.
    #[tokio::test]
    async fn vote_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new_committed(3, 2);
        {
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let mut one = log(&store, 1);
            assert_eq!(one.read_vote().await.unwrap(), None);
            one.save_vote(&vote).await.unwrap();
            one.save_committed(Some(log_id(3, 2, 9))).await.unwrap();
        }
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut one = log(&store, 1);
        assert_eq!(one.read_vote().await.unwrap(), Some(vote));
        assert_eq!(one.read_committed().await.unwrap(), Some(log_id(3, 2, 9)));
        assert_eq!(log(&store, 2).read_vote().await.unwrap(), None);
    }
}
