//! The participant side of a commit whose writes span groups: two-phase commit with the
//! decision in one record (CockroachDB's transaction record, TiKV's primary lock).
//!
//! Phase one, in every group written: [`Prepare`] checks the group's share exactly as a
//! one-group COMMIT would (first committer wins, primary keys, unique values) and,
//! instead of writing versions, locks every row it writes and every unique value it
//! adds, and keeps the writes under the transaction's id. The group named as the
//! record's holder also writes the transaction record, pending. The prepare timestamp
//! is the command's own stamp, fixed at apply; the coordinator commits at the largest
//! prepare timestamp of the participants, so the commit lands after everything any
//! participant had applied when it prepared.
//!
//! The decision: `Decide` in the record's group makes the record committed or aborted —
//! one Raft entry, so the transaction is committed exactly when that entry applies — and
//! resolves the group's own share in the same batch. A record that is no longer pending
//! keeps its outcome: a late commit of a transaction a reader aborted is refused
//! (40001), a late abort of a committed one answers "committed". A record that does not
//! exist yet may be aborted (a reader met a lock of a coordinator that died before it
//! prepared the record's group); the aborted record then refuses that prepare.
//!
//! Phase two: `Resolve` in every other participant turns the prepared writes into
//! versions at the commit timestamp (index entries derived against the catalog at that
//! moment, as a COMMIT's are), or drops them, and releases the locks; resolving twice
//! is a no-op. Locks make the second phase infallible: nothing else may write a locked
//! row or claim a locked unique value meanwhile, and CREATE INDEX waits for the table's
//! prepared writes, so a conflict or duplicate at resolve is a broken invariant and
//! stops the node rather than becoming a 40001.
//!
//! While a group holds no prepared transaction, commits read no locks (the state
//! machine counts prepared transactions in memory), so one-group work pays nothing.
//!
//! The coordinator proposing these is `txn::coordinator`; readers and cleaners that
//! meet locks settle them in `txn::locks`. Decided records are not yet collected.

use super::{Applied, IndexWrite, RowWrite, Share, StateMachine};
use crate::catalog::Catalog;
use crate::encoding;
use crate::error::{Error, Result};
use crate::shard::GroupId;
use crate::storage::keys::{self, TableId};
use crate::storage::{Batch, Space, Store};
use serde::{Deserialize, Serialize};

/// Identifies a cross-group transaction; unique and never reused (the coordinator takes
/// it from the timestamp oracle).
pub type TxnId = u64;

/// How a cross-group transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOutcome {
    /// Committed: its writes become versions at `commit_ts`.
    Commit {
        /// The commit timestamp: the largest prepare timestamp of the participants.
        commit_ts: u64,
    },
    /// Aborted: its writes go.
    Abort,
}

/// The first phase in one participant group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Prepare {
    /// The transaction.
    pub txn: TxnId,
    /// The snapshot it read at; a row changed after it is a conflict, as in COMMIT.
    pub start_ts: u64,
    /// The catalog version its writes were planned against, as in COMMIT.
    pub catalog_version: u64,
    /// The group holding the transaction record, named in every lock so that a reader
    /// meeting one knows where to ask.
    pub record_group: GroupId,
    /// Every participant, given only to the record's group, which writes the record.
    pub participants: Option<Vec<GroupId>>,
    /// This group's share of the writes.
    pub writes: Vec<RowWrite>,
    /// Unique index entries of other groups' rows whose shards are in this group.
    pub index_writes: Vec<IndexWrite>,
}

/// The state of a transaction as its record holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnRecord {
    /// Prepared here; not decided.
    Pending {
        /// Every group the transaction writes.
        participants: Vec<GroupId>,
        /// The prepare timestamp in the record's group.
        prepare_ts: u64,
    },
    /// Decided: committed.
    Committed {
        /// Its commit timestamp.
        commit_ts: u64,
    },
    /// Decided: aborted.
    Aborted,
}

/// A lock a prepared transaction holds on a row or a unique value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// The holder.
    pub txn: TxnId,
    /// The holder's prepare timestamp in this group: its commit timestamp is at least
    /// this, so a snapshot below it can ignore the lock.
    pub prepare_ts: u64,
    /// Where the holder's record is.
    pub record_group: GroupId,
}

/// A transaction's prepared share in this group, kept until it is resolved.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PreparedTxn {
    start_ts: u64,
    prepare_ts: u64,
    record_group: GroupId,
    writes: Vec<RowWrite>,
    index_writes: Vec<IndexWrite>,
    /// Every lock key it holds here, released when it is resolved.
    locks: Vec<Vec<u8>>,
}

/// Which locks of prepared transactions a commit's checks must respect.
#[derive(Clone, Copy, Debug)]
pub enum LockCheck {
    /// No transaction is prepared in the group: there is no lock to read.
    NoneHeld,
    /// Locks may exist; those of `owner` (the transaction being resolved) are its own.
    Respect {
        /// The transaction whose own locks do not count.
        owner: Option<TxnId>,
    },
}

/// Fails with 40001 when `key` is locked by a transaction other than the owner: its
/// outcome is not known yet, and a retry after it is decided sees the truth.
pub fn refuse_foreign_lock(
    store: &Store,
    locks: LockCheck,
    key: &[u8],
    what: impl FnOnce() -> String,
) -> Result<()> {
    let LockCheck::Respect { owner } = locks else {
        return Ok(());
    };
    match read_lock(store, key)? {
        Some(lock) if Some(lock.txn) != owner => Err(locked(what(), lock.txn)),
        Some(_) | None => Ok(()),
    }
}

fn locked(what: String, txn: TxnId) -> Error {
    Error::SerializationFailure(format!(
        "{what} is locked by transaction {txn}, which is being committed across groups"
    ))
}

/// The lock on `key`, if a prepared transaction holds one.
pub fn read_lock(store: &Store, key: &[u8]) -> Result<Option<Lock>> {
    store
        .get(Space::Latest, key)?
        .map(|bytes| encoding::decode(&bytes))
        .transpose()
}

/// The record of `txn`, if this group holds one.
pub fn read_record(store: &Store, txn: TxnId) -> Result<Option<TxnRecord>> {
    store
        .get(Space::Meta, &keys::txn_record_key(txn))?
        .map(|bytes| encoding::decode(&bytes))
        .transpose()
}

fn read_prepared(store: &Store, txn: TxnId) -> Result<Option<PreparedTxn>> {
    store
        .get(Space::Meta, &keys::prepared_txn_key(txn))?
        .map(|bytes| encoding::decode(&bytes))
        .transpose()
}

/// Prepared transactions read per batch when they are listed.
const LIST_BATCH: usize = 256;

/// Every transaction prepared in this store and not yet resolved, with the tables it
/// writes.
fn list_prepared(store: &Store) -> Result<Vec<(TxnId, PreparedTxn)>> {
    let prefix = keys::META_PREPARED_PREFIX;
    let end = crate::encoding::keycode::prefix_end(prefix)
        .ok_or_else(|| Error::Internal("unbounded prepared prefix".into()))?;
    let mut start = prefix.to_vec();
    let mut out = Vec::new();
    loop {
        let batch = store.scan(Space::Meta, &start, &end, LIST_BATCH)?;
        let full = batch.len() == LIST_BATCH;
        for (key, bytes) in batch {
            let id = key
                .get(prefix.len()..)
                .and_then(|raw| <[u8; 8]>::try_from(raw).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| Error::Corruption("malformed prepared transaction key".into()))?;
            out.push((id, encoding::decode(&bytes)?));
            start = key;
            start.push(0);
        }
        if !full {
            return Ok(out);
        }
    }
}

/// A transaction prepared in a group and not yet resolved there, as a cleaner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreparedShare {
    /// The transaction.
    pub txn: TxnId,
    /// Where its record is.
    pub record_group: GroupId,
}

/// Every transaction prepared in this store and not yet resolved.
pub fn prepared_shares(store: &Store) -> Result<Vec<PreparedShare>> {
    Ok(list_prepared(store)?
        .into_iter()
        .map(|(txn, prepared)| PreparedShare {
            txn,
            record_group: prepared.record_group,
        })
        .collect())
}

/// Locks read per batch when a table's locks in one shard are listed.
const LOCK_BATCH: usize = 256;

/// Every lock held on rows and unique values of `table` in `shard`, at most `limit`.
pub fn table_locks(
    store: &Store,
    shard: keys::ShardId,
    table: TableId,
    limit: usize,
) -> Result<Vec<Lock>> {
    let prefix = keys::table_locks_prefix(shard, table);
    let end = crate::encoding::keycode::prefix_end(&prefix)
        .ok_or_else(|| Error::Internal("unbounded lock prefix".into()))?;
    let mut start = prefix;
    let mut out = Vec::new();
    while out.len() < limit {
        let batch = store.scan(Space::Latest, &start, &end, LOCK_BATCH.min(limit))?;
        let full = batch.len() == LOCK_BATCH.min(limit);
        for (key, bytes) in batch {
            out.push(encoding::decode(&bytes)?);
            start = key;
            start.push(0);
        }
        if !full {
            break;
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// How many transactions are prepared in this store and not yet resolved.
pub fn count_prepared(store: &Store) -> Result<usize> {
    Ok(list_prepared(store)?.len())
}

/// Fails with 40001 when a prepared transaction writes `table`: a new index must not
/// miss rows that become versions only when that transaction resolves.
pub fn refuse_while_prepared(store: &Store, table: TableId, name: &str) -> Result<()> {
    for (txn, prepared) in list_prepared(store)? {
        let writes_table = prepared.writes.iter().any(|write| write.table_id == table)
            || prepared
                .index_writes
                .iter()
                .any(|write| write.table_id == table);
        if writes_table {
            return Err(locked(format!("table \"{name}\""), txn));
        }
    }
    Ok(())
}

/// Fails with 40001 while a transaction prepared here sends a change of one of these
/// index entries: its resolve would write the entry at its commit timestamp, perhaps
/// below a backfilled version of it (`Operation::BackfillEntries`), so the backfill
/// waits for the decision instead.
pub fn refuse_prepared_entries(store: &Store, entries: &[IndexWrite]) -> Result<()> {
    let entry = |write: &IndexWrite| {
        (
            write.table_id,
            write.index_id,
            write.values.clone(),
            write.pk.clone(),
        )
    };
    let wanted: std::collections::HashSet<_> = entries.iter().map(entry).collect();
    for (txn, prepared) in list_prepared(store)? {
        if prepared
            .index_writes
            .iter()
            .any(|write| wanted.contains(&entry(write)))
        {
            return Err(locked("an index entry being built".into(), txn));
        }
    }
    Ok(())
}

/// What a two-phase step changes besides its batch: the change in the number of
/// transactions prepared in the group.
pub(super) type PreparedDelta = isize;

impl StateMachine {
    /// The lock check a commit (or the resolution of `owner`) makes in this group.
    pub(super) fn lock_check(&self, owner: Option<TxnId>) -> LockCheck {
        if self.prepared == 0 {
            LockCheck::NoneHeld
        } else {
            LockCheck::Respect { owner }
        }
    }

    /// Plans phase one: every check of a COMMIT at `prepare_ts`, then locks instead of
    /// versions.
    pub(super) fn plan_prepare(
        &self,
        catalog: &Catalog,
        prepare_ts: u64,
        prepare: &Prepare,
        batch: &mut Batch,
    ) -> Result<(Applied, PreparedDelta)> {
        let txn = prepare.txn;
        if let Some(already) = read_prepared(&self.store, txn)? {
            let prepare_ts = already.prepare_ts;
            return Ok((Applied::Prepared { prepare_ts }, 0));
        }
        if prepare.participants.is_some() && read_record(&self.store, txn)?.is_some() {
            return Err(Error::SerializationFailure(format!(
                "transaction {txn} was aborted before it could prepare"
            )));
        }
        // The versions a COMMIT would write are worked out (and so checked) but not kept.
        let mut checked = Batch::default();
        let share = Share {
            writes: &prepare.writes,
            sent: &prepare.index_writes,
        };
        let unique_claims = self.apply_commit(
            catalog,
            prepare.start_ts,
            prepare_ts,
            share,
            self.lock_check(None),
            &mut checked,
        )?;
        let mut locks = Vec::with_capacity(prepare.writes.len() + unique_claims.len());
        for write in &prepare.writes {
            let table = catalog.table_by_id(write.table_id).ok_or_else(|| {
                Error::Internal("a checked write's table vanished during its prepare".into())
            })?;
            let shard = keys::shard_for(&write.pk, table.shard_count);
            locks.push(keys::row_lock_key(shard, table.id, &write.pk));
        }
        locks.extend(unique_claims);
        let lock = encoding::encode(&Lock {
            txn,
            prepare_ts,
            record_group: prepare.record_group,
        })?;
        for key in &locks {
            batch.put(Space::Latest, key.clone(), lock.clone());
        }
        let prepared = PreparedTxn {
            start_ts: prepare.start_ts,
            prepare_ts,
            record_group: prepare.record_group,
            writes: prepare.writes.clone(),
            index_writes: prepare.index_writes.clone(),
            locks,
        };
        batch.put(
            Space::Meta,
            keys::prepared_txn_key(txn),
            encoding::encode(&prepared)?,
        );
        if let Some(participants) = &prepare.participants {
            let record = TxnRecord::Pending {
                participants: participants.clone(),
                prepare_ts,
            };
            batch.put(
                Space::Meta,
                keys::txn_record_key(txn),
                encoding::encode(&record)?,
            );
        }
        Ok((Applied::Prepared { prepare_ts }, 1))
    }

    /// Plans the decision in the record's group, with the resolution of its own share.
    pub(super) fn plan_decide(
        &self,
        catalog: &Catalog,
        txn: TxnId,
        outcome: TxnOutcome,
        batch: &mut Batch,
    ) -> Result<(Applied, PreparedDelta)> {
        let decided = match (read_record(&self.store, txn)?, outcome) {
            (Some(TxnRecord::Committed { commit_ts }), _) => {
                let outcome = TxnOutcome::Commit { commit_ts };
                return Ok((Applied::Decided { outcome }, 0));
            }
            (Some(TxnRecord::Aborted), TxnOutcome::Abort) => {
                let outcome = TxnOutcome::Abort;
                return Ok((Applied::Decided { outcome }, 0));
            }
            (Some(TxnRecord::Aborted), TxnOutcome::Commit { .. }) => {
                return Err(Error::SerializationFailure(format!(
                    "transaction {txn} was aborted while it waited to commit \
                     (a reader found it stalled)"
                )))
            }
            (None, TxnOutcome::Commit { .. }) => panic!(
                "invariant broken: transaction {txn} decided committed in a group \
                 holding no record of it"
            ),
            (None, TxnOutcome::Abort) => TxnOutcome::Abort,
            (Some(TxnRecord::Pending { prepare_ts, .. }), decided) => {
                if let TxnOutcome::Commit { commit_ts } = decided {
                    assert!(
                        commit_ts >= prepare_ts,
                        "invariant broken: transaction {txn} commits at {commit_ts}, \
                         before its record's prepare at {prepare_ts}"
                    );
                }
                decided
            }
        };
        let record = match decided {
            TxnOutcome::Commit { commit_ts } => TxnRecord::Committed { commit_ts },
            TxnOutcome::Abort => TxnRecord::Aborted,
        };
        batch.put(
            Space::Meta,
            keys::txn_record_key(txn),
            encoding::encode(&record)?,
        );
        let delta = self.resolve_share(catalog, txn, decided, batch)?;
        Ok((Applied::Decided { outcome: decided }, delta))
    }

    /// Plans phase two in a participant: its share becomes versions or goes.
    pub(super) fn resolve_share(
        &self,
        catalog: &Catalog,
        txn: TxnId,
        outcome: TxnOutcome,
        batch: &mut Batch,
    ) -> Result<PreparedDelta> {
        let Some(prepared) = read_prepared(&self.store, txn)? else {
            return Ok(0);
        };
        for key in &prepared.locks {
            batch.delete(Space::Latest, key.clone());
        }
        batch.delete(Space::Meta, keys::prepared_txn_key(txn));
        let TxnOutcome::Commit { commit_ts } = outcome else {
            return Ok(-1);
        };
        assert!(
            commit_ts >= prepared.prepare_ts,
            "invariant broken: transaction {txn} commits at {commit_ts}, before it \
             prepared here at {}",
            prepared.prepare_ts
        );
        // A table or index dropped since the prepare took its rows and entries with it.
        let writes: Vec<RowWrite> = prepared
            .writes
            .into_iter()
            .filter(|write| catalog.table_by_id(write.table_id).is_some())
            .collect();
        let sent: Vec<IndexWrite> = prepared
            .index_writes
            .into_iter()
            .filter(|write| {
                catalog
                    .table_by_id(write.table_id)
                    .is_some_and(|table| table.indexes.iter().any(|i| i.id == write.index_id))
            })
            .collect();
        let locks = self.lock_check(Some(txn));
        let share = Share {
            writes: &writes,
            sent: &sent,
        };
        match self.apply_commit(catalog, prepared.start_ts, commit_ts, share, locks, batch) {
            Ok(_) => Ok(-1),
            Err(error) if error.is_deterministic() => panic!(
                "invariant broken: transaction {txn}'s prepared writes failed at resolve \
                 although its locks were held since the prepare: {error}"
            ),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, IndexSpec, TableSpec};
    use crate::state_machine::{Command, Operation};
    use crate::storage::mvcc::{self, LATEST};
    use crate::types::{DataType, Value};
    use std::sync::Arc;

    /// A state machine over a fresh store with `t (id BIGINT PRIMARY KEY, email TEXT
    /// UNIQUE)` in 4 shards, stamping each command one past the last.
    struct Group {
        store: Arc<Store>,
        machine: StateMachine,
        ts: u64,
    }

    const TXN: TxnId = 77;
    const OTHER_TXN: TxnId = 78;
    const HERE: GroupId = 1;

    fn column(name: &str, data_type: DataType) -> Column {
        Column::plain(name, data_type, true)
    }

    impl Group {
        fn new() -> Group {
            Group::over(1)
        }

        /// The fixture as group [`HERE`] of a pool of `groups`, `t` spread over all.
        fn over(groups: u64) -> Group {
            let store = Arc::new(Store::temporary().unwrap());
            let machine = StateMachine::open_group(Arc::clone(&store), HERE).unwrap();
            let mut group = Group {
                store,
                machine,
                ts: 0,
            };
            let spec = TableSpec {
                name: "t".into(),
                columns: vec![
                    column("id", DataType::BigInt),
                    column("email", crate::types::TEXT),
                ],
                primary_key: vec![0],
                unique_constraints: vec![IndexSpec {
                    name: "t_email_key".into(),
                    columns: vec![1],
                    unique: true,
                }],
                shard_count: 4,
                groups,
                sequences: Vec::new(),
            };
            let create = Operation::CreateTable {
                spec,
                if_not_exists: false,
            };
            group.apply(create).unwrap();
            group
        }

        fn apply(&mut self, operation: Operation) -> Result<Applied> {
            self.ts += 1;
            let command = Command {
                commit_ts: self.ts,
                operation,
            };
            self.machine.apply(&command, None)
        }

        fn table(&self) -> crate::catalog::Table {
            self.machine
                .catalog_handle()
                .current()
                .table("t")
                .unwrap()
                .clone()
        }

        /// The live row with key `id` as the newest versions say, with its version's ts.
        fn row(&self, id: i64) -> Option<(u64, Vec<Value>)> {
            let table = self.table();
            let (_, prefix) = crate::shard::locate_row(&table, &pk(id));
            match mvcc::read_version(&self.store, &prefix, LATEST).unwrap() {
                Some((ts, bytes)) if !bytes.is_empty() => {
                    Some((ts, encoding::decode(&bytes).unwrap()))
                }
                Some(_) | None => None,
            }
        }

        /// Points the fixture's writes (made before the table id is known) at `t`.
        fn aimed(&self, mut writes: Vec<RowWrite>) -> Vec<RowWrite> {
            let table_id = self.table().id;
            for write in &mut writes {
                write.table_id = table_id;
            }
            writes
        }

        fn commit(&mut self, writes: Vec<RowWrite>) -> Result<Applied> {
            let writes = self.aimed(writes);
            let start_ts = self.ts;
            let catalog_version = self.machine.catalog_handle().current().version();
            self.apply(Operation::Commit {
                start_ts,
                catalog_version,
                writes,
            })
        }

        fn prepare(&mut self, txn: TxnId, writes: Vec<RowWrite>) -> Result<Applied> {
            let writes = self.aimed(writes);
            self.prepare_share(txn, writes, Vec::new())
        }

        /// Prepares `txn` as the record's group of a two-group transaction.
        fn prepare_share(
            &mut self,
            txn: TxnId,
            writes: Vec<RowWrite>,
            index_writes: Vec<IndexWrite>,
        ) -> Result<Applied> {
            let start_ts = self.ts;
            let catalog_version = self.machine.catalog_handle().current().version();
            self.apply(Operation::Prepare(Prepare {
                txn,
                start_ts,
                catalog_version,
                record_group: HERE,
                participants: Some(vec![HERE, HERE + 1]),
                index_writes,
                writes,
            }))
        }

        fn decide(&mut self, txn: TxnId, outcome: TxnOutcome) -> Result<Applied> {
            self.apply(Operation::Decide { txn, outcome })
        }

        /// Prepares, as the record's group, a share of nothing but `sent` entries.
        fn prepare_sent(&mut self, txn: TxnId, sent: Vec<IndexWrite>) -> Result<Applied> {
            self.prepare_share(txn, Vec::new(), sent)
        }

        /// The first key from `from` on whose row lives in (`here`) or out of this group.
        fn key_placed(&self, from: i64, here: bool) -> i64 {
            let table = self.table();
            (from..from + 1000)
                .find(|&id| (crate::shard::locate_row(&table, &pk(id)).0 == HERE) == here)
                .expect("a key in each group")
        }

        /// The first email `e<n>@x` whose unique entry lives in this group.
        fn email_placed_here(&self, from: u32) -> String {
            let table = self.table();
            let index = &table.indexes[0];
            (from..from + 1000)
                .map(|n| format!("e{n}@x"))
                .find(|email| {
                    let row = [Value::BigInt(0), Value::Text(email.clone())];
                    let values = crate::state_machine::index_values(index, &row);
                    let shard = crate::shard::entry_shard(&table, index, &values, 0);
                    crate::shard::group_of(&table, shard) == HERE
                })
                .expect("an email placed here")
        }

        /// The entry change another group's row `id` sends here: claiming `email`, or
        /// (`claim` false) giving it up.
        fn sent(&self, id: i64, email: &str, claim: bool) -> IndexWrite {
            let table = self.table();
            let index = &table.indexes[0];
            let row = vec![Value::BigInt(id), Value::Text(email.into())];
            IndexWrite {
                table_id: table.id,
                index_id: index.id,
                values: crate::state_machine::index_values(index, &row),
                pk: pk(id),
                row: claim.then_some(row),
            }
        }
    }

    fn pk(id: i64) -> Vec<u8> {
        let mut out = Vec::new();
        crate::encoding::keycode::encode_value(&mut out, &Value::BigInt(id));
        out
    }

    fn insert(id: i64, email: &str) -> RowWrite {
        let row = vec![Value::BigInt(id), Value::Text(email.into())];
        RowWrite {
            table_id: 0,
            pk: pk(id),
            row: Some(row),
            insert: true,
        }
    }

    fn update(id: i64, email: &str) -> RowWrite {
        RowWrite {
            insert: false,
            ..insert(id, email)
        }
    }

    fn is_retryable_conflict(result: Result<Applied>) -> bool {
        matches!(result, Err(Error::SerializationFailure(_)))
    }

    /// A prepared row stays invisible and locked: a one-phase commit writing it is
    /// refused with 40001 while the transaction is pending; once decided committed, the
    /// row is a version at the commit timestamp (below commands applied since), its
    /// lock is gone and the row can be written again.
    #[test]
    fn prepared_rows_are_locked_until_decided() {
        let mut group = Group::new();
        group.commit(vec![insert(1, "a@x")]).unwrap();
        group
            .prepare(TXN, vec![update(1, "b@x"), insert(2, "c@x")])
            .unwrap();
        let prepare_ts = group.ts;
        assert_eq!(group.machine.prepared, 1);
        assert_eq!(group.row(1).unwrap().1[1], Value::Text("a@x".into()));
        assert!(group.row(2).is_none(), "a prepared insert is not a version");
        assert!(is_retryable_conflict(group.commit(vec![update(1, "z@x")])));
        group.commit(vec![insert(3, "d@x")]).unwrap();

        let commit_ts = prepare_ts + 1;
        let decided = group.decide(TXN, TxnOutcome::Commit { commit_ts }).unwrap();
        assert_eq!(
            decided,
            Applied::Decided {
                outcome: TxnOutcome::Commit { commit_ts }
            }
        );
        assert_eq!(group.machine.prepared, 0);
        assert_eq!(
            group.row(1),
            Some((commit_ts, update(1, "b@x").row.unwrap()))
        );
        assert_eq!(group.row(2).unwrap().0, commit_ts);
        assert!(
            group.ts > commit_ts,
            "resolved below a later command's stamp"
        );
        group.commit(vec![update(1, "e@x")]).unwrap();
        assert_eq!(group.row(1).unwrap().1[1], Value::Text("e@x".into()));
    }

    /// A unique value a prepare adds is claimed: another commit inserting it under a
    /// different key (and so possibly another shard) waits for the decision with 40001,
    /// and after an abort the value is free and the aborted rows never appear.
    #[test]
    fn prepared_unique_values_are_claimed_until_decided() {
        let mut group = Group::new();
        group.prepare(TXN, vec![insert(10, "same@x")]).unwrap();
        assert!(is_retryable_conflict(
            group.commit(vec![insert(11, "same@x")])
        ));
        // A second prepare claiming the same value waits for the first, too.
        assert!(is_retryable_conflict(
            group.prepare(OTHER_TXN, vec![insert(12, "same@x")])
        ));
        let decided = group.decide(TXN, TxnOutcome::Abort).unwrap();
        assert_eq!(
            decided,
            Applied::Decided {
                outcome: TxnOutcome::Abort
            }
        );
        assert!(group.row(10).is_none());
        group.commit(vec![insert(11, "same@x")]).unwrap();
        assert!(group.row(11).is_some());
    }

    /// Unique entries sent from another group's rows are checked and claimed exactly as
    /// local ones: a sent claim of a value a local row holds is a 23505; a prepared sent
    /// claim holds its value against local commits (40001) until decided; once
    /// committed it is an entry (a local row claiming the value is a 23505), and a sent
    /// removal frees the value again.
    #[test]
    fn sent_unique_entries_are_checked_and_claimed_like_local_ones() {
        let mut group = Group::over(2);
        let local = group.key_placed(1, true);
        let other_local = group.key_placed(local + 1, true);
        let remote = group.key_placed(1, false);
        let held = group.email_placed_here(0);
        let free = group.email_placed_here(held[1..held.len() - 2].parse::<u32>().unwrap() + 1);
        group.commit(vec![insert(local, &held)]).unwrap();
        let taken = group.prepare_sent(TXN, vec![group.sent(remote, &held, true)]);
        assert!(
            matches!(taken, Err(Error::UniqueViolation { .. })),
            "{taken:?}"
        );

        group
            .prepare_sent(TXN, vec![group.sent(remote, &free, true)])
            .unwrap();
        assert!(is_retryable_conflict(
            group.commit(vec![insert(other_local, &free)])
        ));
        let commit_ts = group.ts;
        group.decide(TXN, TxnOutcome::Commit { commit_ts }).unwrap();
        let repeated = group.commit(vec![insert(other_local, &free)]);
        assert!(
            matches!(repeated, Err(Error::UniqueViolation { .. })),
            "{repeated:?}"
        );

        group
            .prepare_sent(OTHER_TXN, vec![group.sent(remote, &free, false)])
            .unwrap();
        let commit_ts = group.ts;
        group
            .decide(OTHER_TXN, TxnOutcome::Commit { commit_ts })
            .unwrap();
        group.commit(vec![insert(other_local, &free)]).unwrap();
        assert!(group.row(other_local).is_some());
    }

    /// Backfilled entries of a unique index built over several groups meet the claims
    /// of their values here: a value another row holds fails the build (23505), one a
    /// pending transaction claims or an entry a pending transaction changes makes it
    /// wait (40001), an entry a commit wrote or removed since the install is left as it
    /// is, and the rest are written live.
    #[test]
    fn backfilled_entries_are_checked_where_their_values_meet() {
        let mut group = Group::over(2);
        let local = group.key_placed(1, true);
        let remote = group.key_placed(1, false);
        let other_remote = group.key_placed(remote + 1, false);
        let held = group.email_placed_here(0);
        let next = |email: &str| email[1..email.len() - 2].parse::<u32>().unwrap() + 1;
        let free = group.email_placed_here(next(&held));
        let claimed = group.email_placed_here(next(&free));
        group.commit(vec![insert(local, &held)]).unwrap();
        let backfill = |entries| Operation::BackfillEntries { entries };

        let duplicate = group.apply(backfill(vec![group.sent(remote, &held, true)]));
        assert!(
            matches!(duplicate, Err(Error::UniqueViolation { .. })),
            "{duplicate:?}"
        );
        let twice = group.apply(backfill(vec![
            group.sent(remote, &free, true),
            group.sent(other_remote, &free, true),
        ]));
        assert!(
            matches!(twice, Err(Error::UniqueViolation { .. })),
            "{twice:?}"
        );

        group
            .prepare_sent(TXN, vec![group.sent(other_remote, &claimed, true)])
            .unwrap();
        let waits = group.apply(backfill(vec![group.sent(remote, &claimed, true)]));
        assert!(
            is_retryable_conflict(waits),
            "a pending claim makes the batch wait"
        );
        group.decide(TXN, TxnOutcome::Abort).unwrap();

        // A commit since the install removed remote's entry for `free`: the backfill,
        // which read the row before, leaves that removal standing.
        group
            .prepare_sent(OTHER_TXN, vec![group.sent(remote, &free, false)])
            .unwrap();
        let pending = group.apply(backfill(vec![group.sent(remote, &free, true)]));
        assert!(
            is_retryable_conflict(pending),
            "a pending change of the entry makes the batch wait"
        );
        let commit_ts = group.ts;
        group
            .decide(OTHER_TXN, TxnOutcome::Commit { commit_ts })
            .unwrap();
        group
            .apply(backfill(vec![
                group.sent(remote, &free, true),
                group.sent(other_remote, &claimed, true),
            ]))
            .unwrap();
        let another_local = group.key_placed(local + 1, true);
        group
            .commit(vec![insert(another_local, &free)])
            .expect("the removed entry was not brought back");
        let third_local = group.key_placed(another_local + 1, true);
        let repeated = group.commit(vec![insert(third_local, &claimed)]);
        assert!(
            matches!(repeated, Err(Error::UniqueViolation { .. })),
            "the backfilled entry claims its value: {repeated:?}"
        );
    }

    /// The first decision wins: a commit arriving after a reader aborted the record is
    /// refused with 40001, and an abort arriving after the commit answers "committed".
    #[test]
    fn the_first_decision_wins() {
        let mut group = Group::new();
        group.prepare(TXN, vec![insert(1, "a@x")]).unwrap();
        group.decide(TXN, TxnOutcome::Abort).unwrap();
        let late_commit = group.decide(
            TXN,
            TxnOutcome::Commit {
                commit_ts: group.ts,
            },
        );
        assert!(is_retryable_conflict(late_commit));

        group.prepare(OTHER_TXN, vec![insert(2, "b@x")]).unwrap();
        let commit_ts = group.ts;
        group
            .decide(OTHER_TXN, TxnOutcome::Commit { commit_ts })
            .unwrap();
        let late_abort = group.decide(OTHER_TXN, TxnOutcome::Abort).unwrap();
        assert_eq!(
            late_abort,
            Applied::Decided {
                outcome: TxnOutcome::Commit { commit_ts }
            }
        );
        assert_eq!(
            read_record(&group.store, OTHER_TXN).unwrap(),
            Some(TxnRecord::Committed { commit_ts })
        );
    }

    /// A reader may abort a transaction whose record's group never prepared (its
    /// coordinator died first); the prepare arriving later is refused, so the
    /// transaction cannot commit.
    #[test]
    fn an_abort_before_the_record_exists_refuses_the_late_prepare() {
        let mut group = Group::new();
        group.decide(TXN, TxnOutcome::Abort).unwrap();
        assert!(is_retryable_conflict(
            group.prepare(TXN, vec![insert(1, "a@x")])
        ));
        assert_eq!(group.machine.prepared, 0);
        assert!(group.row(1).is_none());
    }

    /// A prepare checks what a commit checks: a row changed after the snapshot is a
    /// conflict and a taken primary key a duplicate, and a refused prepare locks nothing.
    #[test]
    fn a_refused_prepare_locks_nothing() {
        let mut group = Group::new();
        group.commit(vec![insert(1, "a@x")]).unwrap();
        let stale = Operation::Prepare(Prepare {
            txn: TXN,
            start_ts: 0,
            catalog_version: group.machine.catalog_handle().current().version(),
            record_group: HERE,
            participants: None,
            index_writes: Vec::new(),
            writes: group.aimed(vec![update(1, "b@x")]),
        });
        assert!(is_retryable_conflict(group.apply(stale)));
        let duplicate = group.prepare(TXN, vec![insert(1, "c@x")]);
        assert!(matches!(duplicate, Err(Error::UniqueViolation { .. })));
        assert_eq!(group.machine.prepared, 0);
        group.commit(vec![update(1, "d@x")]).unwrap();
    }

    /// A participant resolves once: a second Resolve is a no-op. Prepared state
    /// survives a restart: the reopened state machine still enforces the locks.
    #[test]
    fn prepared_state_survives_reopen_and_resolve_is_idempotent() {
        let mut group = Group::new();
        group.prepare(TXN, vec![insert(5, "e@x")]).unwrap();
        group.machine = StateMachine::open(Arc::clone(&group.store)).unwrap();
        assert_eq!(group.machine.prepared, 1);
        assert!(is_retryable_conflict(group.commit(vec![insert(5, "f@x")])));
        let outcome = TxnOutcome::Commit {
            commit_ts: group.ts,
        };
        group
            .apply(Operation::Resolve { txn: TXN, outcome })
            .unwrap();
        group
            .apply(Operation::Resolve { txn: TXN, outcome })
            .unwrap();
        assert_eq!(group.machine.prepared, 0);
        assert_eq!(group.row(5).unwrap().1[1], Value::Text("e@x".into()));
    }

    /// CREATE INDEX on a table with prepared writes waits (40001): the backfill cannot
    /// see rows that become versions only at resolve.
    #[test]
    fn create_index_waits_for_prepared_writes() {
        let mut group = Group::new();
        group.prepare(TXN, vec![insert(1, "a@x")]).unwrap();
        let create = || Operation::CreateIndex {
            table: "t".into(),
            spec: IndexSpec {
                name: "t_by_email".into(),
                columns: vec![1],
                unique: false,
            },
            if_not_exists: false,
        };
        assert!(is_retryable_conflict(group.apply(create())));
        group.decide(TXN, TxnOutcome::Abort).unwrap();
        group.apply(create()).unwrap();
    }
}
