//! Timestamp oracle: hands out strictly increasing commit timestamps.
//!
//! Persisting every timestamp would cost an fsync per transaction, so the oracle persists
//! a reserved upper bound and hands out timestamps below it from memory; after a crash it
//! restarts above the last bound, so no timestamp is ever handed out twice or goes
//! backwards (some are skipped, which costs nothing). In a cluster the same contract is
//! served by the metadata group's leader, with the bound persisted through Raft.

use crate::encoding;
use crate::error::Result;
use crate::storage::keys::META_ORACLE_RESERVED;
use crate::storage::{Batch, Space, Store};
use std::sync::{Arc, Mutex};

/// Where commit timestamps come from.
pub trait TimestampOracle: Send + Sync {
    /// A timestamp greater than every one handed out before, by anyone, ever.
    fn next_timestamp(&self) -> Result<u64>;
}

/// How many timestamps one persisted reservation covers.
const RESERVATION: u64 = 10_000;

/// The embedded oracle: a counter with a reserved bound persisted in the meta space.
pub struct LocalOracle {
    store: Arc<Store>,
    state: Mutex<OracleState>,
}

struct OracleState {
    last: u64,
    reserved: u64,
}

impl LocalOracle {
    /// Opens the oracle above both the persisted bound and `floor` (the newest commit
    /// timestamp already in the data).
    pub fn open(store: Arc<Store>, floor: u64) -> Result<LocalOracle> {
        let reserved: u64 = match store.get(Space::Meta, META_ORACLE_RESERVED)? {
            Some(bytes) => encoding::decode(&bytes)?,
            None => 0,
        };
        let last = reserved.max(floor);
        Ok(LocalOracle {
            store,
            state: Mutex::new(OracleState {
                last,
                reserved: last,
            }),
        })
    }
}

impl TimestampOracle for LocalOracle {
    fn next_timestamp(&self) -> Result<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let next = state.last + 1;
        if next > state.reserved {
            let reserved = next + RESERVATION;
            let mut batch = Batch::default();
            batch.put(
                Space::Meta,
                META_ORACLE_RESERVED.to_vec(),
                encoding::encode(&reserved)?,
            );
            self.store.write(batch)?;
            state.reserved = reserved;
        }
        state.last = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps increase within a run and never repeat across a restart.
    #[test]
    fn monotonic_across_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut last = 0;
        for _ in 0..3 {
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let oracle = LocalOracle::open(store, 0).unwrap();
            for _ in 0..5 {
                let ts = oracle.next_timestamp().unwrap();
                assert!(ts > last);
                last = ts;
            }
        }
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let oracle = LocalOracle::open(store, 1_000_000).unwrap();
        assert!(oracle.next_timestamp().unwrap() > 1_000_000);
    }
}
