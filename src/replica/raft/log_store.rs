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

use super::types::{
    Entry, GroupId, LogId, LogState, StorageError, StorageIOError, TypeConfig, Vote,
};
use super::{state_key, StateTag};
use crate::encoding;
use crate::storage::{Batch, Space, Store};
use openraft::storage::{LogFlushed, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftLogId};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

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

/// Completes flush callbacks after WAL syncs, one sync per batch of callbacks.
pub struct LogSyncer {
    sender: Mutex<Option<SyncSender<LogFlushed<TypeConfig>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl LogSyncer {
    /// Starts the sync thread for `store`.
    pub fn start(store: Arc<Store>) -> std::io::Result<Arc<LogSyncer>> {
        let (sender, receiver) = sync_channel(MAX_PENDING_FLUSHES);
        let thread = std::thread::Builder::new()
            .name("tessera-log-sync".into())
            .spawn(move || sync_loop(&store, &receiver))?;
        Ok(Arc::new(LogSyncer {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Hands over a callback to complete after the next sync.
    fn submit(&self, callback: LogFlushed<TypeConfig>) {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        match sender {
            Some(sender) => {
                if let Err(returned) = sender.send(callback) {
                    returned.0.log_io_completed(Err(std::io::Error::other(
                        "the log sync thread has stopped",
                    )));
                }
            }
            None => callback
                .log_io_completed(Err(std::io::Error::other("the log store is shutting down"))),
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

fn sync_loop(store: &Store, receiver: &Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = receiver.recv() {
        let mut waiting = vec![first];
        while waiting.len() < MAX_PENDING_FLUSHES {
            match receiver.try_recv() {
                Ok(callback) => waiting.push(callback),
                Err(_) => break,
            }
        }
        let outcome = store.sync_wal();
        for callback in waiting {
            callback.log_io_completed(match &outcome {
                Ok(()) => Ok(()),
                Err(error) => Err(std::io::Error::other(error.to_string())),
            });
        }
    }
}

/// One group's log and vote.
#[derive(Clone)]
pub struct LogStore {
    store: Arc<Store>,
    group: GroupId,
    syncer: Arc<LogSyncer>,
}

impl LogStore {
    /// The log of `group` in `store`; appends are synced by `syncer` (one per store).
    pub fn new(store: Arc<Store>, group: GroupId, syncer: Arc<LogSyncer>) -> LogStore {
        LogStore {
            store,
            group,
            syncer,
        }
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
    fn write_entries(&self, entries: impl IntoIterator<Item = Entry>) -> crate::error::Result<()> {
        let mut batch = Batch::default();
        for entry in entries {
            let key = entry_key(self.group, entry.get_log_id().index);
            batch.put(Space::RaftLog, key, encoding::encode(&entry)?);
        }
        self.store.write_unsynced(batch)
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
            .map_err(|error| StorageIOError::write_vote(&error).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_state(StateTag::Vote)
            .map_err(|error| StorageIOError::read_vote(&error).into())
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
        self.write_entries(entries).map_err(write_error)?;
        self.syncer.submit(callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        batch.delete_range(
            Space::RaftLog,
            entry_key(self.group, log_id.index),
            group_end(self.group),
        );
        self.store.write(batch).map_err(write_error)
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
    use openraft::testing::{blank_ent, log_id};

    fn log(store: &Arc<Store>, group: GroupId) -> LogStore {
        let syncer = LogSyncer::start(Arc::clone(store)).unwrap();
        LogStore::new(Arc::clone(store), group, syncer)
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
        one.write_entries((1..=10).map(|i| blank_ent::<TypeConfig>(1, 0, i)))
            .unwrap();
        two.write_entries((1..=3).map(|i| blank_ent::<TypeConfig>(2, 0, i)))
            .unwrap();
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
        one.write_entries((1..=10).map(|i| blank_ent::<TypeConfig>(1, 0, i)))
            .unwrap();
        two.write_entries((1..=10).map(|i| blank_ent::<TypeConfig>(1, 0, i)))
            .unwrap();
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
