//! A group's state machine as openraft sees it: applies committed entries, builds and
//! installs snapshots.
//!
//! Two kinds of group share the plumbing. A data group applies SQL changes through the
//! foundation's deterministic [`crate::state_machine::StateMachine`]; the metadata group
//! keeps the timestamp oracle's reserved bound. Either way the last applied log id and
//! the membership are written in the same RocksDB batch as the effect of the entry, so a
//! crash never leaves them out of step (openraft re-applies from the recorded log id).
//!
//! A data change's commit timestamp is fixed here, at apply time: the larger of the
//! oracle timestamp the proposer got and one past the group's last. Every replica
//! computes the same value from the same log, and commit timestamps follow log order, so
//! a replica's state at its last applied timestamp is exactly a prefix of the log.
//!
//! A failure of the change itself (a conflict, a duplicate key, a missing table) is
//! deterministic: every replica fails alike and nothing changes, so it is the entry's
//! response, not a storage error. Only a failure of the storage itself is returned as
//! openraft's `StorageError`, which stops the group on this node.
//!
//! Snapshots (see [`super::snapshot`] for the file): building one takes a RocksDB
//! point-in-time view while applies are paused (between two entries), then writes the
//! file on a thread of its own while applying goes on. Installing one is recorded as under
//! way first, so a crash in the middle is finished at the next start rather than leaving
//! half-replaced data.

use super::pacing::SnapshotPacing;
use super::snapshot;
use super::types::{
    Entry, GroupId, LogId, Request, Response, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership, TypeConfig,
};
use super::{state_key, StateTag};
use crate::catalog::{Catalog, SharedCatalog, INDEX_BUILDING};
use crate::encoding;
use crate::error::{Error, Result};
use crate::state_machine::ddl::{self, CatalogEffect};
use crate::state_machine::{sequences, Applied, Command, Operation, StateMachine};
use crate::storage::keys;
use crate::storage::{Batch, KeyRange, Space, Store};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Which kind of group a state machine serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// The metadata group: timestamp oracle bound (membership is Raft's own).
    Metadata,
    /// A data group: tables, rows and indexes.
    Data,
}

/// What a group's state machine has applied, persisted with every entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedState {
    /// Log id of the last applied entry.
    pub last_applied: Option<LogId>,
    /// The membership in force as of the last applied entry.
    pub membership: StoredMembership,
    /// Metadata group: the timestamp oracle's reserved bound; no timestamp at or above
    /// it was handed out by any leader before (0 for data groups).
    pub oracle_reserved: u64,
}

/// The header of a snapshot file: which group, and its applied state at the snapshot.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    group: GroupId,
    applied: AppliedState,
}

/// How far the apply of a batch entry got before a crash (see `apply_batch`).
#[derive(Debug, Serialize, Deserialize)]
struct BatchProgress {
    /// The entry's log index.
    index: u64,
    /// How many of its changes are applied.
    applied: u64,
}

/// The snapshot a group currently serves: its metadata and its file's name.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    file: String,
}

/// What the rest of the node reads of a group's applied state without going through
/// openraft: updated after every applied entry.
#[derive(Debug, Default)]
pub struct AppliedView {
    /// Data groups: commit timestamp of the last applied change. Everything at or below
    /// it is applied here, so a snapshot read at it is complete on this replica.
    commit_ts: AtomicU64,
    /// Metadata group: the oracle's reserved bound.
    oracle_reserved: AtomicU64,
}

impl AppliedView {
    /// Commit timestamp of the last change applied on this replica.
    pub fn commit_ts(&self) -> u64 {
        self.commit_ts.load(Ordering::Acquire)
    }

    /// The oracle's reserved bound as applied on this replica.
    pub fn oracle_reserved(&self) -> u64 {
        self.oracle_reserved.load(Ordering::Acquire)
    }
}

/// What a group applies entries to.
enum Contents {
    /// The metadata group: the cluster's catalog (the oracle bound is in the applied
    /// state).
    Metadata(SharedCatalog),
    /// A data group: its shards, with its own copy of the catalog.
    Data(StateMachine),
}

/// One group's state machine on this node.
pub struct GroupStateMachine {
    group: GroupId,
    store: Arc<Store>,
    /// Where this group's snapshot files live.
    directory: PathBuf,
    applied: AppliedState,
    contents: Contents,
    /// The current snapshot, shared with builders that finish while applying goes on.
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    view: Arc<AppliedView>,
    /// Told the size of every new snapshot, to pace the next.
    pacing: Arc<SnapshotPacing>,
    /// A batch entry a crash interrupted, found at start: its changes already applied
    /// are skipped when openraft applies it again.
    interrupted_batch: Option<BatchProgress>,
}

fn storage_error(subject: ErrorSubject<u64>, verb: ErrorVerb, error: &Error) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::error(error.to_string())).into()
}

fn state_machine_error(verb: ErrorVerb, error: &Error) -> StorageError {
    storage_error(ErrorSubject::StateMachine, verb, error)
}

fn snapshot_error(meta: Option<&SnapshotMeta>, verb: ErrorVerb, error: &Error) -> StorageError {
    let subject = match meta {
        Some(meta) => ErrorSubject::Snapshot(Some(meta.signature())),
        None => ErrorSubject::Snapshot(None),
    };
    storage_error(subject, verb, error)
}

impl GroupStateMachine {
    /// Opens group `group`'s state machine over `store`, with snapshot files under
    /// `directory`; finishes a snapshot installation a crash interrupted.
    pub fn open(
        store: Arc<Store>,
        group: GroupId,
        kind: GroupKind,
        directory: &Path,
    ) -> Result<GroupStateMachine> {
        std::fs::create_dir_all(directory)?;
        let ranges = ranges_of(kind);
        if let Some(installing) = read_tag::<StoredSnapshot>(&store, group, StateTag::Installing)? {
            tracing::warn!(group, snapshot = %installing.meta.snapshot_id, "finishing an interrupted snapshot installation");
            let path = directory.join(&installing.file);
            let header = load_snapshot(&store, group, &ranges, &path)?;
            finish_install(&store, group, &installing, &header.applied)?;
        }
        let applied: AppliedState = read_tag(&store, group, StateTag::Applied)?.unwrap_or_default();
        let current = read_tag::<StoredSnapshot>(&store, group, StateTag::Snapshot)?;
        let contents = match kind {
            GroupKind::Metadata => Contents::Metadata(SharedCatalog::new(load_catalog(&store)?)),
            GroupKind::Data => Contents::Data(StateMachine::open_group(Arc::clone(&store), group)?),
        };
        let interrupted_batch = read_tag(&store, group, StateTag::BatchProgress)?;
        let snapshot_bytes = current.as_ref().map_or(0, |stored| {
            std::fs::metadata(directory.join(&stored.file)).map_or(0, |file| file.len())
        });
        let machine = GroupStateMachine {
            group,
            store,
            directory: directory.to_path_buf(),
            applied,
            contents,
            current: Arc::new(Mutex::new(current.clone())),
            view: Arc::new(AppliedView::default()),
            pacing: Arc::new(SnapshotPacing::new(snapshot_bytes)),
            interrupted_batch,
        };
        machine.publish();
        // Nothing is being built or received yet: every other file is left over.
        let keep = current.map(|stored| stored.file);
        remove_files(&machine.directory, |name| Some(name) != keep.as_deref());
        Ok(machine)
    }

    /// What the node reads of the applied state.
    pub fn view(&self) -> Arc<AppliedView> {
        Arc::clone(&self.view)
    }

    /// The group's snapshot pacing, for its log store to count appends in.
    pub fn pacing(&self) -> Arc<SnapshotPacing> {
        Arc::clone(&self.pacing)
    }

    /// The group's catalog, read without the apply path: the cluster's catalog in the
    /// metadata group (what planners use), the group's own copy in a data group.
    pub fn catalog_handle(&self) -> SharedCatalog {
        match &self.contents {
            Contents::Data(machine) => machine.catalog_handle(),
            Contents::Metadata(catalog) => catalog.clone(),
        }
    }

    fn kind(&self) -> GroupKind {
        match self.contents {
            Contents::Metadata(_) => GroupKind::Metadata,
            Contents::Data(_) => GroupKind::Data,
        }
    }

    fn publish(&self) {
        if let Contents::Data(machine) = &self.contents {
            self.view
                .commit_ts
                .store(machine.last_applied_ts(), Ordering::Release);
        }
        self.view
            .oracle_reserved
            .store(self.applied.oracle_reserved, Ordering::Release);
    }

    /// The batch that records the applied state.
    fn applied_batch(&self) -> Result<Batch> {
        let mut batch = Batch::default();
        batch.put(
            Space::RaftState,
            state_key(self.group, StateTag::Applied),
            encoding::encode(&self.applied)?,
        );
        Ok(batch)
    }

    /// Applies one entry whose log id is already recorded in `self.applied`; `previous`
    /// is the log id applied before it.
    fn apply_entry(
        &mut self,
        previous: Option<LogId>,
        payload: EntryPayload<TypeConfig>,
    ) -> Result<Response> {
        let request = match payload {
            EntryPayload::Blank => {
                self.store.write_unsynced(self.applied_batch()?)?;
                return Ok(Response::Done);
            }
            EntryPayload::Membership(membership) => {
                self.applied.membership =
                    StoredMembership::new(self.applied.last_applied, membership);
                self.store.write_unsynced(self.applied_batch()?)?;
                return Ok(Response::Done);
            }
            EntryPayload::Normal(request) => request,
        };
        match request {
            Request::Batch(requests) => self.apply_batch(previous, requests),
            request => {
                let record = self.applied_batch()?;
                self.apply_request(request, record)
            }
        }
    }

    /// Applies a batch entry's changes one by one, each in its own RocksDB write with a
    /// record of how far the batch got: until the last change, the applied log id stays
    /// `previous` and a [`BatchProgress`] says how many changes are in. After a crash
    /// openraft applies the entry again and the changes already in are skipped, so
    /// none is applied twice or lost, whatever prefix of the writes survived.
    fn apply_batch(&mut self, previous: Option<LogId>, requests: Vec<Request>) -> Result<Response> {
        let index = self.applied.last_applied.map_or(0, |log_id| log_id.index);
        let already = match self.interrupted_batch.take() {
            Some(progress) if progress.index == index => progress.applied as usize,
            _ => 0,
        };
        let count = requests.len();
        let mut responses = Vec::with_capacity(count);
        for (position, request) in requests.into_iter().enumerate() {
            if position < already {
                // Applied before the crash; nobody is waiting for its answer any more.
                responses.push(Response::Done);
                continue;
            }
            let record = if position + 1 == count {
                let mut record = self.applied_batch()?;
                record.delete(
                    Space::RaftState,
                    state_key(self.group, StateTag::BatchProgress),
                );
                record
            } else {
                self.batch_progress_record(previous, index, position + 1)?
            };
            responses.push(self.apply_request(request, record)?);
        }
        Ok(Response::Batch(responses))
    }

    /// The record written with change `applied - 1` of batch entry `index` (not its
    /// last): the entry before it as last applied, and how many changes are in.
    fn batch_progress_record(
        &self,
        previous: Option<LogId>,
        index: u64,
        applied: usize,
    ) -> Result<Batch> {
        let state = AppliedState {
            last_applied: previous,
            ..self.applied.clone()
        };
        let progress = BatchProgress {
            index,
            applied: applied as u64,
        };
        let mut record = Batch::default();
        record.put(
            Space::RaftState,
            state_key(self.group, StateTag::Applied),
            encoding::encode(&state)?,
        );
        record.put(
            Space::RaftState,
            state_key(self.group, StateTag::BatchProgress),
            encoding::encode(&progress)?,
        );
        Ok(record)
    }

    /// Applies one request, writing `record` (the applied-state record) with its effect.
    fn apply_request(&mut self, request: Request, record: Batch) -> Result<Response> {
        match (request, &mut self.contents) {
            (
                Request::Data {
                    timestamp,
                    operation,
                },
                Contents::Data(machine),
            ) => {
                let commit_ts = timestamp.max(machine.last_applied_ts() + 1);
                let command = Command {
                    commit_ts,
                    operation,
                };
                match machine.apply_with(&command, None, record) {
                    Ok(applied) => Ok(Response::Data(Ok((applied, commit_ts)))),
                    Err(error) if !error.is_deterministic() => Err(error),
                    Err(error) => Ok(Response::Data(Err(error))),
                }
            }
            (
                Request::Schema {
                    operation:
                        operation @ (Operation::AdvanceSequence { .. }
                        | Operation::ReleaseSequence { .. }
                        | Operation::SetSequence { .. }),
                },
                Contents::Metadata(catalog),
            ) => Ok(apply_sequence_change(
                &self.store,
                catalog,
                &operation,
                record,
            )?),
            (Request::Schema { operation }, Contents::Metadata(catalog)) => Ok(
                apply_schema_change(&self.store, catalog, &operation, record)?,
            ),
            (Request::ReserveTimestamps { up_to }, Contents::Metadata(_)) => {
                self.applied.oracle_reserved = self.applied.oracle_reserved.max(up_to);
                // Encoded after the change: the bound is part of the applied state.
                self.store.write_unsynced(self.applied_batch()?)?;
                Ok(Response::Done)
            }
            (request, _) => {
                // A request routed to the wrong kind of group, or a batch inside a
                // batch: a bug of the proposer, answered alike on every replica and
                // changing nothing.
                self.store.write_unsynced(record)?;
                Ok(Response::Data(Err(Error::Internal(format!(
                    "group {} cannot apply {request:?}",
                    self.group
                )))))
            }
        }
    }

    /// Takes over an installed snapshot's applied state and makes it current.
    fn adopt_installed(&mut self, stored: StoredSnapshot, applied: AppliedState) -> Result<()> {
        self.applied = applied;
        // The snapshot covers whatever batch a crash interrupted.
        self.interrupted_batch = None;
        match &mut self.contents {
            Contents::Data(machine) => machine.reload()?,
            Contents::Metadata(catalog) => catalog.replace(Arc::new(load_catalog(&self.store)?)),
        }
        self.publish();
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        remove_snapshots_but(&self.directory, &stored.file);
        let bytes = std::fs::metadata(self.directory.join(&stored.file))?.len();
        self.pacing.snapshot_made(bytes);
        *current = Some(stored);
        Ok(())
    }
}

/// The cluster's catalog as the metadata group last applied it to `store`.
fn load_catalog(store: &Store) -> Result<Catalog> {
    match store.get(Space::Meta, keys::META_CATALOG)? {
        Some(bytes) => encoding::decode(&bytes),
        None => Ok(Catalog::default()),
    }
}

/// Applies a DDL operation to the cluster's catalog (the metadata group's share of a
/// schema change; data groups follow when the new catalog is installed in them). A
/// refused change (a name taken, a table missing) is the entry's answer, alike on
/// every replica; `record` (the applied state) is written either way.
fn apply_schema_change(
    store: &Store,
    catalog: &SharedCatalog,
    operation: &Operation,
    mut record: Batch,
) -> Result<Response> {
    let operations = operation.ddl_steps();
    if let Some(odd) = operations.iter().find(|o| o.schema_change().is_none()) {
        // A bug of the proposer, answered alike on every replica, changing nothing.
        store.write_unsynced(record)?;
        return Ok(Response::Data(Err(Error::Internal(format!(
            "the metadata group cannot apply {odd:?}"
        )))));
    }
    let current = catalog.current();
    let mut changed = (*current).clone();
    let answer = match change_metadata_catalog(&mut changed, operations) {
        Ok(Some(applied)) => Ok((applied, 0)),
        Ok(None) => {
            sequences::forget_dropped(&current, &changed, &mut record);
            record.put(
                Space::Meta,
                keys::META_CATALOG.to_vec(),
                encoding::encode(&changed)?,
            );
            Ok((Applied::Done, 0))
        }
        Err(error) if error.is_deterministic() => Err(error),
        Err(error) => return Err(error),
    };
    store.write_unsynced(record)?;
    if answer.is_ok() {
        catalog.replace(Arc::new(changed));
    }
    Ok(Response::Data(answer))
}

/// Applies a sequence reservation or `setval` in the metadata group, which keeps the
/// positions of the cluster's sequences; `record` is written either way, with the new
/// position when it succeeds. A refusal (a bound reached, a sequence dropped meanwhile)
/// is the entry's answer, alike on every replica.
fn apply_sequence_change(
    store: &Store,
    catalog: &SharedCatalog,
    operation: &Operation,
    mut record: Batch,
) -> Result<Response> {
    let catalog = catalog.current();
    // The functions below add to `record` only when they succeed.
    let answer = match operation {
        Operation::AdvanceSequence { sequence, count } => {
            sequences::advance(store, &catalog, *sequence, *count, &mut record)
        }
        Operation::SetSequence {
            sequence,
            value,
            is_called,
        } => sequences::set(&catalog, *sequence, *value, *is_called, &mut record),
        Operation::ReleaseSequence {
            sequence,
            reserved_through,
            position,
        } => sequences::release(
            store,
            &catalog,
            *sequence,
            *reserved_through,
            *position,
            &mut record,
        ),
        other => Err(Error::Internal(format!(
            "{other:?} is not a sequence change"
        ))),
    };
    let answer = match answer {
        Ok(applied) => Ok((applied, 0)),
        // A refused change has added nothing to `record` but the applied state.
        Err(error) if error.is_deterministic() => Err(error),
        Err(error) => return Err(error),
    };
    store.write_unsynced(record)?;
    Ok(Response::Data(answer))
}

/// Applies DDL operations (one, or a block's several) in order to `catalog`; answers
/// the skip (IF [NOT] EXISTS) of a lone operation that changed nothing, else `None`. A
/// failure leaves `catalog` half-changed: the caller drops it.
fn change_metadata_catalog(
    catalog: &mut Catalog,
    operations: &[Operation],
) -> Result<Option<Applied>> {
    for operation in operations {
        let Some(change) = operation.schema_change() else {
            continue; // refused by the caller before anything changed
        };
        // Data groups backfill a new index later, each at its own timestamp: nobody
        // reads through it until it is declared ready.
        if let CatalogEffect::Skipped(applied) =
            ddl::change_catalog(catalog, change, INDEX_BUILDING)?
        {
            if operations.len() == 1 {
                return Ok(Some(applied));
            }
        }
    }
    Ok(None)
}

/// Installs the snapshot file `stored.file` (already in `directory`) into the group's
/// ranges: recorded as under way first, then loaded, then recorded as applied and
/// current in one synced batch. Returns the applied state it brought.
fn install(
    store: &Store,
    group: GroupId,
    kind: GroupKind,
    directory: &Path,
    stored: &StoredSnapshot,
) -> Result<AppliedState> {
    write_tag(store, group, StateTag::Installing, stored, true)?;
    let path = directory.join(&stored.file);
    let header = load_snapshot(store, group, &ranges_of(kind), &path)?;
    let applied = AppliedState {
        last_applied: stored.meta.last_log_id,
        membership: stored.meta.last_membership.clone(),
        oracle_reserved: header.applied.oracle_reserved,
    };
    finish_install(store, group, stored, &applied)?;
    Ok(applied)
}

/// A replica's fingerprint of a group, read from one point-in-time view: the index it
/// has applied and a checksum of its applied state (log id, membership, oracle bound)
/// and of every key and value its state machine owns. Replicas at the same applied
/// index must agree; a difference is divergence.
pub fn checksum(store: &Store, group: GroupId, kind: GroupKind) -> Result<(Option<u64>, u64)> {
    store.with_snapshot(|view| {
        let mut hash = Fnv64::default();
        let applied_key = state_key(group, StateTag::Applied);
        let applied: AppliedState = match view.get(Space::RaftState, &applied_key)? {
            Some(bytes) => {
                hash.add(&bytes);
                encoding::decode(&bytes)?
            }
            None => AppliedState::default(),
        };
        for range in ranges_of(kind) {
            hash.add(&[range.space.code()]);
            view.for_each(range.space, &range.start, &range.end, |key, value| {
                hash.add(key);
                hash.add(value);
                Ok(())
            })?;
        }
        Ok((applied.last_applied.map(|log_id| log_id.index), hash.0))
    })
}

/// 64-bit FNV-1a over length-prefixed pieces: stable across builds and platforms (so
/// replicas running different builds compare), not meant to resist tampering.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn add(&mut self, piece: &[u8]) {
        let length = (piece.len() as u64).to_be_bytes();
        for byte in length.iter().chain(piece) {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The key ranges a kind of group owns in the store.
fn ranges_of(kind: GroupKind) -> Vec<KeyRange> {
    match kind {
        // Besides its applied-state record (oracle bound, membership): the catalog and
        // the sequences' positions.
        GroupKind::Metadata => vec![
            KeyRange {
                space: Space::Meta,
                start: keys::META_CATALOG.to_vec(),
                end: keys::META_CATALOG.iter().copied().chain([0]).collect(),
            },
            KeyRange {
                space: Space::Meta,
                start: keys::META_SEQUENCE_PREFIX.to_vec(),
                end: crate::encoding::keycode::prefix_end(keys::META_SEQUENCE_PREFIX)
                    .unwrap_or_else(|| vec![0xff]),
            },
        ],
        GroupKind::Data => StateMachine::data_ranges(),
    }
}

fn read_tag<T: serde::de::DeserializeOwned>(
    store: &Store,
    group: GroupId,
    tag: StateTag,
) -> Result<Option<T>> {
    match store.get(Space::RaftState, &state_key(group, tag))? {
        Some(bytes) => Ok(Some(encoding::decode(&bytes)?)),
        None => Ok(None),
    }
}

fn write_tag<T: Serialize>(
    store: &Store,
    group: GroupId,
    tag: StateTag,
    value: &T,
    sync: bool,
) -> Result<()> {
    let mut batch = Batch::default();
    batch.put(
        Space::RaftState,
        state_key(group, tag),
        encoding::encode(value)?,
    );
    if sync {
        store.write(batch)
    } else {
        store.write_unsynced(batch)
    }
}

/// Loads a snapshot file into the group's ranges and checks it belongs to the group.
fn load_snapshot(
    store: &Store,
    group: GroupId,
    ranges: &[KeyRange],
    path: &Path,
) -> Result<SnapshotHeader> {
    let header: SnapshotHeader = encoding::decode(&snapshot::verify(path)?)?;
    if header.group != group {
        return Err(Error::Corruption(format!(
            "snapshot file {} is of group {}, not {group}",
            path.display(),
            header.group
        )));
    }
    snapshot::load(store, ranges, path)?;
    Ok(header)
}

/// Records an installed snapshot as applied and current, durably, in one batch.
fn finish_install(
    store: &Store,
    group: GroupId,
    stored: &StoredSnapshot,
    applied: &AppliedState,
) -> Result<()> {
    let mut batch = Batch::default();
    batch.put(
        Space::RaftState,
        state_key(group, StateTag::Applied),
        encoding::encode(applied)?,
    );
    batch.put(
        Space::RaftState,
        state_key(group, StateTag::Snapshot),
        encoding::encode(stored)?,
    );
    batch.delete(Space::RaftState, state_key(group, StateTag::Installing));
    store.write(batch)
}

/// Deletes every finished snapshot file in `directory` but `keep`; files being built
/// or received are left alone. A file still being sent to a follower stays readable
/// through its open handle. Callers hold the group's current-snapshot lock.
fn remove_snapshots_but(directory: &Path, keep: &str) {
    remove_files(directory, |name| name != keep && name.ends_with(".snap"));
}

/// Deletes every file in `directory` that `doomed` picks.
fn remove_files(directory: &Path, doomed: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        if !doomed(&entry.file_name().to_string_lossy()) {
            continue;
        }
        if let Err(error) = std::fs::remove_file(entry.path()) {
            tracing::warn!(file = %entry.path().display(), %error, "cannot remove an old snapshot file");
        }
    }
}

/// A unique, file-name-safe snapshot id: last log position and the time it was taken.
fn snapshot_id(last_applied: Option<LogId>) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    match last_applied {
        Some(log_id) => format!(
            "{}-{}-{}-{nanos}",
            log_id.leader_id.term, log_id.leader_id.node_id, log_id.index
        ),
        None => format!("empty-{nanos}"),
    }
}

impl RaftStateMachine<TypeConfig> for GroupStateMachine {
    type SnapshotBuilder = GroupSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> std::result::Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let previous = self.applied.last_applied.replace(entry.log_id);
            let response = self
                .apply_entry(previous, entry.payload)
                .map_err(|error| state_machine_error(ErrorVerb::Write, &error))?;
            responses.push(response);
        }
        self.publish();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> GroupSnapshotBuilder {
        GroupSnapshotBuilder::start(self).await
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<tokio::fs::File>, StorageError> {
        let file = tempfile::tempfile_in(&self.directory)
            .map_err(|error| snapshot_error(None, ErrorVerb::Write, &error.into()))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> std::result::Result<(), StorageError> {
        let fail = |error: Error| snapshot_error(Some(meta), ErrorVerb::Write, &error);
        let stored = StoredSnapshot {
            meta: meta.clone(),
            file: format!("{}.snap", meta.snapshot_id),
        };
        let received = snapshot.into_std().await;
        let (store, group, kind) = (Arc::clone(&self.store), self.group, self.kind());
        let directory = self.directory.clone();
        let installing = stored.clone();
        // Copying and loading can take long: off the runtime's workers. Nothing else
        // touches the group's state meanwhile (openraft applies nothing while this runs).
        let applied = tokio::task::spawn_blocking(move || {
            copy_received(received, &directory.join(&installing.file))?;
            install(&store, group, kind, &directory, &installing)
        })
        .await
        .map_err(|error| fail(Error::Internal(error.to_string())))?
        .map_err(fail)?;
        tracing::info!(
            group,
            snapshot = %meta.snapshot_id,
            last_log = ?meta.last_log_id.map(|log_id| log_id.index),
            "installed a snapshot from the leader"
        );
        self.adopt_installed(stored, applied).map_err(fail)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot>, StorageError> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        let Some(stored) = current else {
            return Ok(None);
        };
        let path = self.directory.join(&stored.file);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|error| snapshot_error(Some(&stored.meta), ErrorVerb::Read, &error.into()))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(file),
        }))
    }
}

/// Copies a received snapshot (openraft wrote its chunks into `received`) to `target`,
/// durably.
fn copy_received(mut received: std::fs::File, target: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    received.seek(SeekFrom::Start(0))?;
    let partial = target.with_extension("partial");
    let mut out = std::fs::File::create(&partial)?;
    std::io::copy(&mut received, &mut out)?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&partial, target)?;
    if let Some(directory) = target.parent() {
        std::fs::File::open(directory)?.sync_all()?;
    }
    Ok(())
}

/// Builds one snapshot: the view is taken when the builder is made (between two
/// applies), the file is written on a thread of its own.
pub struct GroupSnapshotBuilder {
    group: GroupId,
    store: Arc<Store>,
    directory: PathBuf,
    meta: SnapshotMeta,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    pacing: Arc<SnapshotPacing>,
    written: tokio::sync::oneshot::Receiver<Result<snapshot::FileSummary>>,
}

impl GroupSnapshotBuilder {
    /// Takes the view and starts writing the file.
    async fn start(machine: &GroupStateMachine) -> GroupSnapshotBuilder {
        let meta = SnapshotMeta {
            last_log_id: machine.applied.last_applied,
            last_membership: machine.applied.membership.clone(),
            snapshot_id: snapshot_id(machine.applied.last_applied),
        };
        let header = SnapshotHeader {
            group: machine.group,
            applied: machine.applied.clone(),
        };
        let path = machine
            .directory
            .join(format!("{}.building", meta.snapshot_id));
        let ranges = ranges_of(machine.kind());
        let store = Arc::clone(&machine.store);
        let (taken_sender, taken) = tokio::sync::oneshot::channel::<()>();
        let (written_sender, written) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("tessera-snapshot".into())
            .spawn(move || {
                let outcome = encoding::encode(&header).and_then(|header| {
                    store.with_snapshot(|view| {
                        let _ = taken_sender.send(());
                        // Applied entries are written unsynced; the snapshot lets the
                        // log under it be purged, so what it covers must be durable.
                        store.sync_wal()?;
                        snapshot::write(view, &ranges, &header, &path)
                    })
                });
                let _ = written_sender.send(outcome);
            });
        match spawned {
            // The thread signals once its view is taken (or drops the sender on failure).
            Ok(_) => {
                let _ = taken.await;
            }
            Err(error) => {
                let (failed_sender, failed) = tokio::sync::oneshot::channel();
                let _ = failed_sender.send(Err(error.into()));
                return machine.builder(meta, failed);
            }
        }
        machine.builder(meta, written)
    }
}

impl GroupStateMachine {
    fn builder(
        &self,
        meta: SnapshotMeta,
        written: tokio::sync::oneshot::Receiver<Result<snapshot::FileSummary>>,
    ) -> GroupSnapshotBuilder {
        GroupSnapshotBuilder {
            group: self.group,
            store: Arc::clone(&self.store),
            directory: self.directory.clone(),
            meta,
            current: Arc::clone(&self.current),
            pacing: Arc::clone(&self.pacing),
            written,
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for GroupSnapshotBuilder {
    async fn build_snapshot(&mut self) -> std::result::Result<Snapshot, StorageError> {
        let meta = self.meta.clone();
        let fail = |error: Error| snapshot_error(Some(&meta), ErrorVerb::Write, &error);
        let summary = (&mut self.written)
            .await
            .map_err(|_| fail(Error::Internal("the snapshot thread stopped".into())))?
            .map_err(fail)?;
        let handle = self.make_current().map_err(fail)?;
        tracing::info!(
            group = self.group,
            snapshot = %meta.snapshot_id,
            records = summary.records,
            bytes = summary.bytes,
            "built a snapshot"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(handle)),
        })
    }
}

impl GroupSnapshotBuilder {
    /// Makes the built file the current snapshot, unless a newer one was installed
    /// meanwhile (then the file is only handed to openraft, and deleted from the
    /// directory); returns it opened.
    fn make_current(&self) -> Result<std::fs::File> {
        let built = self
            .directory
            .join(format!("{}.building", self.meta.snapshot_id));
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let newer_exists = current
            .as_ref()
            .is_some_and(|existing| existing.meta.last_log_id > self.meta.last_log_id);
        if newer_exists {
            let handle = std::fs::File::open(&built)?;
            std::fs::remove_file(&built)?;
            return Ok(handle);
        }
        let stored = StoredSnapshot {
            meta: self.meta.clone(),
            file: format!("{}.snap", self.meta.snapshot_id),
        };
        let path = self.directory.join(&stored.file);
        std::fs::rename(&built, &path)?;
        std::fs::File::open(&self.directory)?.sync_all()?;
        write_tag(&self.store, self.group, StateTag::Snapshot, &stored, true)?;
        remove_snapshots_but(&self.directory, &stored.file);
        *current = Some(stored);
        let handle = std::fs::File::open(&path)?;
        self.pacing.snapshot_made(handle.metadata()?.len());
        Ok(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, TableSpec};
    use crate::encoding::keycode;
    use crate::replica::raft::log_store::{LogStore, LogSyncer};
    use crate::state_machine::{Applied, Operation, RowWrite};
    use crate::types::{DataType, Value};
    use openraft::testing::{log_id, StoreBuilder, Suite};
    use openraft::{EntryPayload, Membership};
    use std::collections::BTreeSet;

    /// Opens a log store and a data-group state machine in a fresh directory.
    struct DataGroupBuilder;

    impl StoreBuilder<TypeConfig, LogStore, GroupStateMachine, tempfile::TempDir> for DataGroupBuilder {
        async fn build(
            &self,
        ) -> std::result::Result<(tempfile::TempDir, LogStore, GroupStateMachine), StorageError>
        {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
            let syncer = LogSyncer::start(Arc::clone(&store)).unwrap();
            let machine = GroupStateMachine::open(
                Arc::clone(&store),
                1,
                GroupKind::Data,
                &dir.path().join("snapshots"),
            )
            .unwrap();
            let log = LogStore::new(store, 1, syncer, 1, Arc::default(), machine.pacing())
                .expect("log store");
            Ok((dir, log, machine))
        }
    }

    /// openraft's own storage test suite passes over our log store and state machine.
    #[test]
    fn openraft_suite() {
        Suite::test_all(DataGroupBuilder).unwrap();
    }

    fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
        Entry {
            log_id: log_id(1, 1, index),
            payload,
        }
    }

    fn data(index: u64, timestamp: u64, operation: Operation) -> Entry {
        entry(
            index,
            EntryPayload::Normal(Request::Data {
                timestamp,
                operation,
            }),
        )
    }

    fn create_table() -> Operation {
        let column = |name: &str| Column::plain(name, DataType::BigInt, false);
        Operation::CreateTable {
            spec: TableSpec {
                name: "t".into(),
                columns: vec![column("id"), column("v")],
                primary_key: vec![0],
                unique_constraints: Vec::new(),
                shard_count: 4,
                groups: 1,
                sequences: Vec::new(),
            },
            if_not_exists: false,
        }
    }

    fn insert(machine: &GroupStateMachine, id: i64, start_ts: u64) -> Operation {
        let catalog = machine.catalog_handle();
        let table_id = catalog.current().table("t").unwrap().id;
        Operation::Commit {
            start_ts,
            catalog_version: catalog.current().version(),
            writes: vec![RowWrite {
                table_id,
                pk: keycode::encode_values(&[Value::from(id)]),
                row: Some(vec![Value::from(id), Value::from(id * 10)]),
                insert: true,
            }],
        }
    }

    fn open(dir: &Path, kind: GroupKind) -> GroupStateMachine {
        let store = Arc::new(Store::open(&dir.join("db")).unwrap());
        GroupStateMachine::open(store, 1, kind, &dir.join("snapshots")).unwrap()
    }

    fn committed_ts(response: &Response) -> u64 {
        match response {
            Response::Data(Ok((Applied::Done, ts))) => *ts,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    /// Commit timestamps follow log order even when the oracle's are behind; a failed
    /// change (a duplicate key) is an answer, changes nothing, and still advances the
    /// applied log id; everything survives a reopen.
    #[tokio::test(flavor = "multi_thread")]
    async fn applies_data_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = open(dir.path(), GroupKind::Data);
        let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], None);
        let responses = machine
            .apply([
                entry(1, EntryPayload::Membership(membership)),
                data(2, 100, create_table()),
            ])
            .await
            .unwrap();
        assert_eq!(responses[0], Response::Done);
        assert_eq!(committed_ts(&responses[1]), 100);
        let first = insert(&machine, 1, 100);
        let again = insert(&machine, 1, 150);
        // The oracle handed out 50 late: the commit still lands after 100.
        let responses = machine
            .apply([data(3, 50, first), data(4, 200, again)])
            .await
            .unwrap();
        assert_eq!(committed_ts(&responses[0]), 101);
        assert!(matches!(
            &responses[1],
            Response::Data(Err(Error::UniqueViolation { .. }))
        ));
        assert_eq!(machine.view().commit_ts(), 101);
        let expected = machine.applied_state().await.unwrap();
        assert_eq!(expected.0, Some(log_id(1, 1, 4)));
        drop(machine);
        let mut reopened = open(dir.path(), GroupKind::Data);
        assert_eq!(reopened.applied_state().await.unwrap(), expected);
        assert_eq!(reopened.view().commit_ts(), 101);
        assert!(reopened.catalog_handle().current().table("t").is_some());
    }

    fn batch(index: u64, changes: Vec<(u64, Operation)>) -> Entry {
        let requests = changes
            .into_iter()
            .map(|(timestamp, operation)| Request::Data {
                timestamp,
                operation,
            })
            .collect();
        entry(index, EntryPayload::Normal(Request::Batch(requests)))
    }

    /// A batch entry applies its changes in order, each with its own commit timestamp
    /// and its own answer: a failing change in the middle fails alone.
    #[tokio::test(flavor = "multi_thread")]
    async fn batch_entries_answer_each_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = open(dir.path(), GroupKind::Data);
        machine.apply([data(1, 10, create_table())]).await.unwrap();
        let changes = vec![
            (20, insert(&machine, 1, 10)),
            // Begun after the first committed: a unique violation, not a conflict.
            (21, insert(&machine, 1, 20)),
            (22, insert(&machine, 2, 10)),
        ];
        let responses = machine.apply([batch(2, changes)]).await.unwrap();
        let Response::Batch(answers) = &responses[0] else {
            panic!("a batch answered {responses:?}");
        };
        assert_eq!(committed_ts(&answers[0]), 20);
        assert!(matches!(
            &answers[1],
            Response::Data(Err(Error::UniqueViolation { .. }))
        ));
        assert_eq!(committed_ts(&answers[2]), 22);
        assert_eq!(rows(&machine).len(), 2);
        assert_eq!(
            machine.applied_state().await.unwrap().0,
            Some(log_id(1, 1, 2))
        );
    }

    /// A crash in the middle of a batch entry (its first two changes written, the rest
    /// not) leaves the entry before it as applied; openraft applies the entry again after
    /// the restart and only the missing changes are applied: none twice, none lost.
    #[tokio::test(flavor = "multi_thread")]
    async fn batch_interrupted_by_a_crash_is_finished_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = open(dir.path(), GroupKind::Data);
        machine.apply([data(1, 10, create_table())]).await.unwrap();
        let changes: Vec<(u64, Operation)> = (0..4)
            .map(|id| (20 + id as u64, insert(&machine, id, 10)))
            .collect();
        // What the apply of entry 2 had written when the process died.
        machine.applied.last_applied = Some(log_id(1, 1, 2));
        for (position, (timestamp, operation)) in changes.iter().take(2).enumerate() {
            let record = machine
                .batch_progress_record(Some(log_id(1, 1, 1)), 2, position + 1)
                .unwrap();
            let request = Request::Data {
                timestamp: *timestamp,
                operation: operation.clone(),
            };
            machine.apply_request(request, record).unwrap();
        }
        drop(machine);
        let mut reopened = open(dir.path(), GroupKind::Data);
        assert_eq!(
            reopened.applied_state().await.unwrap().0,
            Some(log_id(1, 1, 1))
        );
        assert_eq!(rows(&reopened).len(), 2);
        let responses = reopened.apply([batch(2, changes)]).await.unwrap();
        let Response::Batch(answers) = &responses[0] else {
            panic!("a batch answered {responses:?}");
        };
        assert_eq!(answers[0], Response::Done);
        assert_eq!(answers[1], Response::Done);
        assert_eq!(committed_ts(&answers[2]), 22);
        assert_eq!(committed_ts(&answers[3]), 23);
        assert_eq!(rows(&reopened).len(), 4);
        assert_eq!(
            reopened.applied_state().await.unwrap().0,
            Some(log_id(1, 1, 2))
        );
        let progress: Option<BatchProgress> =
            read_tag(&reopened.store, 1, StateTag::BatchProgress).unwrap();
        assert!(progress.is_none(), "the progress record outlived its batch");
    }

    async fn build(machine: &mut GroupStateMachine) -> Snapshot {
        let mut builder = machine.get_snapshot_builder().await;
        builder.build_snapshot().await.unwrap()
    }

    fn rows(machine: &GroupStateMachine) -> Vec<(Vec<u8>, Vec<u8>)> {
        machine
            .store
            .scan(Space::Latest, b"", b"\xff\xff\xff", 100)
            .unwrap()
    }

    /// A snapshot built on one replica and installed on another brings the rows, the
    /// catalog, the applied state and the commit timestamp; the receiver's own older
    /// data is replaced, and the snapshot survives a reopen as the current one.
    #[tokio::test(flavor = "multi_thread")]
    async fn snapshot_moves_a_data_group() {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(leader_dir.path(), GroupKind::Data);
        let mut follower = open(follower_dir.path(), GroupKind::Data);
        leader.apply([data(1, 10, create_table())]).await.unwrap();
        follower.apply([data(1, 10, create_table())]).await.unwrap();
        let stale = insert(&follower, 99, 10);
        follower.apply([data(2, 11, stale)]).await.unwrap();
        for id in 0..50 {
            let operation = insert(&leader, id, 10);
            leader
                .apply([data(2 + id as u64, 11, operation)])
                .await
                .unwrap();
        }
        let built = build(&mut leader).await;
        // Applying goes on after the view was taken, without reaching the snapshot.
        let late = insert(&leader, 1000, 10);
        leader.apply([data(52, 500, late)]).await.unwrap();
        let mut receiving = follower.begin_receiving_snapshot().await.unwrap();
        let current = leader.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        *receiving = *current.snapshot;
        follower
            .install_snapshot(&built.meta, receiving)
            .await
            .unwrap();
        assert_eq!(rows(&follower).len(), 50);
        assert_eq!(rows(&leader).len(), 51);
        assert_eq!(
            follower.applied_state().await.unwrap().0,
            Some(log_id(1, 1, 51))
        );
        // 10 for the table, 11 to 60 for the rows; the late insert committed at 500.
        assert_eq!(follower.view().commit_ts(), 60);
        assert_eq!(leader.view().commit_ts(), 500);
        drop(follower);
        let mut reopened = open(follower_dir.path(), GroupKind::Data);
        let current = reopened.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        assert_eq!(rows(&reopened).len(), 50);
        let snapshot_files = std::fs::read_dir(follower_dir.path().join("snapshots"))
            .unwrap()
            .count();
        assert_eq!(snapshot_files, 1);
    }

    /// An installation cut off by a crash is finished when the group opens again.
    #[tokio::test(flavor = "multi_thread")]
    async fn interrupted_install_is_finished_at_open() {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(leader_dir.path(), GroupKind::Data);
        leader.apply([data(1, 10, create_table())]).await.unwrap();
        let operation = insert(&leader, 7, 10);
        leader.apply([data(2, 11, operation)]).await.unwrap();
        let built = build(&mut leader).await;
        let follower = open(follower_dir.path(), GroupKind::Data);
        // The crash: the file is in place and the installation recorded, nothing loaded.
        let stored = StoredSnapshot {
            meta: built.meta.clone(),
            file: format!("{}.snap", built.meta.snapshot_id),
        };
        let source = std::fs::read_dir(leader_dir.path().join("snapshots"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::copy(
            source,
            follower_dir.path().join("snapshots").join(&stored.file),
        )
        .unwrap();
        write_tag(&follower.store, 1, StateTag::Installing, &stored, true).unwrap();
        drop(follower);
        let mut reopened = open(follower_dir.path(), GroupKind::Data);
        assert_eq!(rows(&reopened).len(), 1);
        assert_eq!(
            reopened.applied_state().await.unwrap().0,
            Some(log_id(1, 1, 2))
        );
        assert!(
            read_tag::<StoredSnapshot>(&reopened.store, 1, StateTag::Installing)
                .unwrap()
                .is_none()
        );
    }

    /// The metadata group keeps the highest reservation, through a snapshot too.
    #[tokio::test(flavor = "multi_thread")]
    async fn metadata_group_keeps_the_oracle_bound() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(one.path(), GroupKind::Metadata);
        let reserve = |index, up_to| {
            entry(
                index,
                EntryPayload::Normal(Request::ReserveTimestamps { up_to }),
            )
        };
        leader
            .apply([reserve(1, 5000), reserve(2, 3000)])
            .await
            .unwrap();
        assert_eq!(leader.view().oracle_reserved(), 5000);
        let built = build(&mut leader).await;
        let mut follower = open(two.path(), GroupKind::Metadata);
        follower
            .install_snapshot(&built.meta, built.snapshot)
            .await
            .unwrap();
        assert_eq!(follower.view().oracle_reserved(), 5000);
    }
}
