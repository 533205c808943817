//! The embedded database handle.

use crate::error::Result;
use crate::replica::cluster::ClusterReplica;
use crate::replica::{LocalReplica, Replica};
use crate::session::Session;
use crate::storage::Store;
use std::path::Path;
use std::sync::Arc;

/// A Tessera database opened in this process. Cheap to clone; clones share the same
/// storage, and any number of threads may open sessions on it at once.
#[derive(Clone)]
pub struct Database {
    replica: Arc<Replica>,
}

impl Database {
    /// Opens the database in directory `path`, creating it if it does not exist.
    /// Only one process may have a directory open at a time.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Self::over(Store::open(path.as_ref())?)
    }

    /// Opens a database in a new temporary directory, deleted when the last clone of
    /// the handle is dropped. Durable like any other until then; handy in tests.
    pub fn temporary() -> Result<Database> {
        Self::over(Store::temporary()?)
    }

    fn over(store: Store) -> Result<Database> {
        Ok(Database {
            replica: Arc::new(Replica::Local(LocalReplica::open(Arc::new(store))?)),
        })
    }

    /// The database a cluster node serves: its replica of every group.
    pub fn cluster(replica: ClusterReplica) -> Database {
        Database {
            replica: Arc::new(Replica::Cluster(replica)),
        }
    }

    /// The replica under the sessions, for the engine's own tests.
    #[cfg(test)]
    pub(crate) fn replica(&self) -> Arc<Replica> {
        Arc::clone(&self.replica)
    }

    /// Starts a session: the unit that holds settings and a transaction.
    pub fn session(&self) -> Session {
        Session::new(Arc::clone(&self.replica))
    }
}
