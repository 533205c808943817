//! Replica: where commands are ordered, stamped and applied.
//!
//! In a cluster each shard's replica is a Raft group that orders commands in its log
//! before applying them. The embedded engine has one local replica hosting every shard:
//! a lock orders commands, the oracle stamps them, and the state machine applies them.
//! Layers above talk to [`LocalReplica`] through the same two verbs a Raft group offers —
//! propose a command, read at a timestamp — so they do not change when replication comes.

use crate::catalog::Catalog;
use crate::error::Result;
use crate::state_machine::{Applied, Command, Operation, ProgressFn, StateMachine};
use crate::storage::Store;
use crate::txn::oracle::{LocalOracle, TimestampOracle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The single-node replica of every shard.
pub struct LocalReplica {
    store: Arc<Store>,
    state_machine: Mutex<StateMachine>,
    catalog: Arc<RwLock<Arc<Catalog>>>,
    oracle: Box<dyn TimestampOracle>,
    /// Commit timestamp up to which every command is applied: a snapshot at this
    /// timestamp is complete and will never change.
    read_ts: AtomicU64,
}

impl LocalReplica {
    /// Opens the replica over a store, recovering the catalog and applied timestamp.
    pub fn open(store: Arc<Store>) -> Result<LocalReplica> {
        let state_machine = StateMachine::open(Arc::clone(&store))?;
        let last_applied = state_machine.last_applied_ts();
        let oracle = LocalOracle::open(Arc::clone(&store), last_applied)?;
        Ok(LocalReplica {
            catalog: state_machine.catalog_handle(),
            state_machine: Mutex::new(state_machine),
            oracle: Box::new(oracle),
            read_ts: AtomicU64::new(last_applied),
            store,
        })
    }

    /// Orders, stamps and applies one operation; returns once it is durable.
    pub fn propose(&self, operation: Operation, progress: Option<ProgressFn>) -> Result<Applied> {
        let mut state_machine = self
            .state_machine
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let command = Command {
            commit_ts: self.oracle.next_timestamp()?,
            operation,
        };
        let span = tracing::debug_span!("apply", commit_ts = command.commit_ts);
        let _entered = span.enter();
        let applied = state_machine.apply(&command, progress)?;
        self.read_ts.store(command.commit_ts, Ordering::Release);
        Ok(applied)
    }

    /// A number never handed out before (hidden row ids of tables without a primary key).
    pub fn unique_id(&self) -> Result<u64> {
        self.oracle.next_timestamp()
    }

    /// A timestamp whose snapshot is complete: every commit at or below it is applied.
    pub fn read_timestamp(&self) -> u64 {
        self.read_ts.load(Ordering::Acquire)
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(
            &self
                .catalog
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// The store, for snapshot reads.
    pub fn store(&self) -> &Store {
        &self.store
    }
}
