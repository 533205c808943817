//! The embedded database handle.

use crate::error::Result;
use crate::replica::cluster::ClusterReplica;
use crate::replica::{LocalReplica, Replica};
use crate::session::Session;
use crate::storage::Store;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

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

    /// The database a cluster node serves: its replica of every group. Starts the
    /// node's cleaner of abandoned cross-group commits (see [`crate::txn`]), which
    /// stops once the last handle is dropped.
    pub fn cluster(replica: ClusterReplica) -> Result<Database> {
        let replica = Arc::new(Replica::Cluster(replica));
        let watched = Arc::downgrade(&replica);
        std::thread::Builder::new()
            .name("tessera-lock-cleaner".into())
            .spawn(move || clean_abandoned_shares(watched))?;
        Ok(Database { replica })
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

/// How often a node looks for prepared shares abandoned in the groups it leads.
const CLEAN_EVERY: Duration = Duration::from_secs(1);

/// Settles, in every data group this node leads, the prepared shares of cross-group
/// commits that have stood too long (their coordinator died), until the replica goes.
fn clean_abandoned_shares(replica: Weak<Replica>) {
    let mut seen = crate::txn::FirstSeen::new();
    loop {
        std::thread::sleep(CLEAN_EVERY);
        let Some(replica) = replica.upgrade() else {
            return;
        };
        let Some(cluster) = replica.cluster() else {
            return;
        };
        for group in cluster.led_data_groups() {
            if let Err(error) = crate::txn::clean_abandoned(&replica, group, &mut seen) {
                tracing::debug!(group, %error, "abandoned shares not settled yet");
            }
        }
    }
}
