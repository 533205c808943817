//! Hosting groups: opening a group's replica when the node starts, or later when the
//! cluster moves a replica of a data group here (see `rebalance`), and retiring one
//! that was moved away.
//!
//! A replica moved here starts empty and uninitialized: the group's leader adds it as
//! a learner and streams it a snapshot or the log, so it holds nothing the group did
//! not send, and it is never initialized locally (a `MOVED_IN` mark in its directory
//! says so, so a restart does not mistake it for one of the groups the node formed
//! with). A replica moved away is retired only after the group committed a membership
//! without it: it is marked `RETIRED` first (a crash from there on finishes the job at
//! the next start), taken out of the node's groups (reads and writes for the group go
//! to its hosts from then on), its Raft stopped, its log and state deleted from the
//! node store, and its store's files deleted once no reader holds it any more. The
//! mark stays, so a restarted node whose ring placement once put the group here does
//! not bring it back.

use super::log_store::{self, LeaderPipelining, LogStore, LogSyncer};
use super::network::{GroupNetwork, PeerClient};
use super::node::{
    proposal_rounds, read_rounds, Group, NodeConfig, RaftNode, StartedGroup, WriteError,
};
use super::state_machine::{GroupKind, GroupStateMachine};
use super::types::{GroupId, METADATA_GROUP};
use crate::error::{Error, Result};
use crate::shard::FIRST_SHARD_GROUP;
use crate::storage::Store;
use openraft::{Config, Raft};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The file in a data group's directory saying its replica here was retired.
const RETIRED_MARK: &str = "RETIRED";
/// The file in a data group's directory saying the replica was moved here (it joined
/// the group as a learner), so it must never be initialized here.
const MOVED_IN_MARK: &str = "MOVED_IN";
/// Longest a retired store waits for its last readers before its files are deleted.
const RETIRE_DRAIN: Duration = Duration::from_secs(30);
/// How often a retired store looks again whether its readers are gone.
const RETIRE_POLL: Duration = Duration::from_millis(50);
/// How long a data group's replica may go without hearing from a leader before its
/// node asks whether the group still has it (and again after as long).
pub(super) const STALE_AFTER: Duration = Duration::from_secs(10);

/// Where data group `group`'s store lives on the node with `config`.
pub(super) fn group_directory(config: &NodeConfig, group: GroupId) -> PathBuf {
    config.data_dir.join("groups").join(group.to_string())
}

/// Where data group `group`'s snapshot files live.
fn snapshot_directory(config: &NodeConfig, group: GroupId) -> PathBuf {
    config.data_dir.join("snapshots").join(group.to_string())
}

/// What this node's directory says of data group `group`'s replica here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hosting {
    /// No directory: never hosted here.
    Never,
    /// Hosted; `moved_in` when it joined as a learner rather than forming the group.
    Hosted { moved_in: bool },
    /// Retired: moved away, files deleted or to be deleted.
    Retired,
}

/// What the directory of `group` on the node with `config` says.
pub(super) fn hosting(config: &NodeConfig, group: GroupId) -> Hosting {
    let directory = group_directory(config, group);
    if !directory.exists() {
        Hosting::Never
    } else if directory.join(RETIRED_MARK).exists() {
        Hosting::Retired
    } else {
        Hosting::Hosted {
            moved_in: directory.join(MOVED_IN_MARK).exists(),
        }
    }
}

/// Deletes a retired group's files (its store's and its snapshots'), keeping the mark;
/// at start, for a retirement a crash cut short.
pub(super) fn delete_retired_files(config: &NodeConfig, group: GroupId) -> Result<()> {
    let directory = group_directory(config, group);
    for entry in std::fs::read_dir(&directory)? {
        let entry = entry?;
        if entry.file_name() == RETIRED_MARK {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    let snapshots = snapshot_directory(config, group);
    if snapshots.exists() {
        std::fs::remove_dir_all(&snapshots)?;
    }
    Ok(())
}

/// What opening a group's replica needs of its node.
pub(super) struct GroupOpening<'a> {
    /// The node's configuration.
    pub config: &'a NodeConfig,
    /// The node store: every group's log, and the metadata group's state.
    pub node_store: &'a Arc<Store>,
    /// The node store's log syncer.
    pub syncer: &'a Arc<LogSyncer>,
    /// The node's peer connections.
    pub peers: &'a Arc<PeerClient>,
    /// openraft's settings, the same for every group.
    pub openraft_config: &'a Arc<Config>,
}

impl GroupOpening<'_> {
    /// Opens the replica of `group` here (its store, state machine, log) and starts its
    /// Raft, which is not initialized by this.
    pub(super) async fn open(&self, group: GroupId, kind: GroupKind) -> Result<StartedGroup> {
        let config = self.config;
        let group_store = match kind {
            GroupKind::Metadata => Arc::clone(self.node_store),
            GroupKind::Data => Arc::new(Store::open(&group_directory(config, group))?),
        };
        let directory = snapshot_directory(config, group);
        let machine = GroupStateMachine::open(Arc::clone(&group_store), group, kind, &directory)?;
        let view = machine.view();
        let pacing = machine.pacing();
        let catalog = machine.catalog_handle();
        let pipelining = Arc::new(LeaderPipelining::default());
        let log = LogStore::new(
            Arc::clone(self.node_store),
            group,
            Arc::clone(self.syncer),
            config.node_id,
            Arc::clone(&pipelining),
            Arc::clone(&pacing),
        )?;
        let network = GroupNetwork {
            node_id: config.node_id,
            group,
            peers: Arc::clone(self.peers),
            retry_unreachable: config.settings.heartbeat,
            durability: log.durability(),
        };
        let raft = Raft::new(
            config.node_id,
            Arc::clone(self.openraft_config),
            network,
            log,
            machine,
        )
        .await
        .map_err(|error| Error::Internal(format!("cannot start group {group}: {error}")))?;
        Ok(StartedGroup {
            group,
            kind,
            raft,
            view,
            pipelining,
            pacing,
            store: group_store,
            catalog,
        })
    }
}

/// A started replica as the node runs it: its batching rounds begun, stopped with
/// `stop` (a child of the node's, so retiring the group stops them too).
pub(super) fn running_group(
    node: Weak<RaftNode>,
    started: StartedGroup,
    stop: CancellationToken,
) -> Group {
    let group = started.group;
    let proposals =
        (started.kind == GroupKind::Data).then(|| proposal_rounds(node, group, stop.clone()));
    let linearizable_reads = read_rounds(started.raft.clone(), stop.clone());
    Group {
        raft: started.raft,
        kind: started.kind,
        store: started.store,
        catalog: started.catalog,
        view: started.view,
        fresh_as_of: Mutex::new(None),
        last_leader_contact: Mutex::new(None),
        moving_to: Mutex::new(None),
        proposals,
        linearizable_reads,
        pipelining: started.pipelining,
        membership_changes: Mutex::new(0),
        pacing: started.pacing,
        stop,
        hosted_at: Instant::now(),
    }
}

impl RaftNode {
    /// Starts an empty replica of data group `group` here, for the group's leader to
    /// add as a learner next; does nothing when one is hosted already.
    pub(super) async fn host_group(&self, group: GroupId) -> Result<String, WriteError> {
        let last = FIRST_SHARD_GROUP + self.data_group_count();
        if !(FIRST_SHARD_GROUP..last).contains(&group) {
            return Err(WriteError::Refused(format!(
                "there is no data group {group}"
            )));
        }
        let _one_at_a_time = self.hosting_changes.lock().await;
        if self.hosts(group) {
            return Ok(format!("node {} already hosts group {group}", self.id()));
        }
        if self.is_retiring(group) {
            return Err(WriteError::Retry(format!(
                "node {}'s old replica of group {group} is still being deleted",
                self.id()
            )));
        }
        let failed = |error: std::io::Error| WriteError::Retry(error.to_string());
        let config = self.config();
        let directory = group_directory(config, group);
        if directory.exists() {
            // Retired (its files gone), or left by an opening that failed half-way.
            std::fs::remove_dir_all(&directory).map_err(failed)?;
        }
        std::fs::create_dir_all(&directory).map_err(failed)?;
        std::fs::write(directory.join(MOVED_IN_MARK), b"").map_err(failed)?;
        let started = self
            .opening()
            .open(group, GroupKind::Data)
            .await
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        let state = running_group(self.weak_self(), started, self.stop_token().child_token());
        self.insert_group(group, state);
        tracing::info!(
            group,
            "hosting a new replica of the group, to be added as a learner"
        );
        Ok(format!(
            "node {} hosts a new replica of group {group}",
            self.id()
        ))
    }

    /// Retires this node's replica of data group `group`, which the group's
    /// membership no longer has (see the module doc); nothing when none is hosted.
    pub(super) async fn retire_group(&self, group: GroupId) -> Result<String, WriteError> {
        if group == METADATA_GROUP {
            return Err(WriteError::Refused(
                "the metadata group is on every node and never retired".into(),
            ));
        }
        let _one_at_a_time = self.hosting_changes.lock().await;
        if !self.hosts(group) {
            return Ok(format!("node {} does not host group {group}", self.id()));
        }
        let config = self.config();
        let directory = group_directory(config, group);
        std::fs::write(directory.join(RETIRED_MARK), b"")
            .map_err(|error| WriteError::Retry(error.to_string()))?;
        let Some(state) = self.remove_group(group) else {
            return Ok(format!("node {} does not host group {group}", self.id()));
        };
        self.set_retiring(group, true);
        state.stop.cancel();
        let stopping = Instant::now();
        if let Err(error) = state.raft.shutdown().await {
            tracing::warn!(group, %error, "the retired replica's Raft did not stop cleanly");
        }
        if let Err(error) = log_store::forget_group(self.node_store(), self.syncer(), group) {
            tracing::error!(group, %error, "the retired replica's log stays in the node store");
        }
        let store = Arc::clone(&state.store);
        drop(state);
        tracing::info!(
            group,
            millis = stopping.elapsed().as_millis() as u64,
            "retired this node's replica of the group"
        );
        // The files go once the last reader lets the store go; nothing waits for that.
        let node = self.weak_self();
        let config = config.clone();
        tokio::spawn(async move {
            let draining = Instant::now();
            match delete_when_unused(store, config, group).await {
                Ok(()) => tracing::info!(
                    group,
                    millis = draining.elapsed().as_millis() as u64,
                    "deleted the retired replica's files"
                ),
                Err(error) => tracing::error!(
                    group,
                    %error,
                    "the retired replica's files are deleted at the next start"
                ),
            }
            if let Some(node) = node.upgrade() {
                node.set_retiring(group, false);
            }
        });
        Ok(format!(
            "node {} retired its replica of group {group}",
            self.id()
        ))
    }
}

impl RaftNode {
    /// The data groups whose replica here has heard from no leader for
    /// [`STALE_AFTER`] (since it started, if never) while this node does not lead
    /// them: replicas that may have been removed while this node was down or cut off,
    /// which no leader tells (a leader stops sending to a removed node).
    pub(super) fn replicas_maybe_removed(&self) -> Vec<GroupId> {
        self.data_groups()
            .into_iter()
            .filter(|&group| {
                let Ok(state) = self.group(group) else {
                    return false;
                };
                let contact = *state
                    .last_leader_contact
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner());
                let heard = contact.unwrap_or(state.hosted_at);
                !self.leads(group) && heard.elapsed() >= STALE_AFTER
            })
            .collect()
    }

    /// Retires this node's replica of `group` if the group's leader reports a
    /// committed membership without this node (see [`RaftNode::replicas_maybe_removed`]);
    /// keeps it when no such report comes (a partition, say).
    pub(super) async fn retire_if_removed(&self, group: GroupId) {
        let statuses = self.cluster_status().await;
        let Some(view) = super::rebalance::group_view(&statuses, group) else {
            return;
        };
        let me = self.id();
        if view.settled && !view.voters.contains(&me) && !view.learners.contains(&me) {
            tracing::warn!(
                group,
                "this replica was removed from its group while away; retiring it"
            );
            if let Err(error) = self.retire_group(group).await {
                tracing::warn!(group, ?error, "the removed replica was not retired yet");
            }
        }
    }
}

/// Waits (at most [`RETIRE_DRAIN`]) until `store` is held by nothing else, closes it
/// and deletes the retired group's files.
async fn delete_when_unused(store: Arc<Store>, config: NodeConfig, group: GroupId) -> Result<()> {
    let started = Instant::now();
    while Arc::strong_count(&store) > 1 && started.elapsed() < RETIRE_DRAIN {
        tokio::time::sleep(RETIRE_POLL).await;
    }
    if Arc::strong_count(&store) > 1 {
        return Err(Error::Internal(format!(
            "group {group}'s store is still in use after {} s",
            RETIRE_DRAIN.as_secs()
        )));
    }
    drop(store);
    tokio::task::spawn_blocking(move || delete_retired_files(&config, group))
        .await
        .map_err(|error| Error::Internal(format!("deleting group {group}'s files: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory's marks say what the replica is: none hosted, hosted as formed,
    /// moved in, retired; deleting a retired one's files keeps its mark, so it stays
    /// retired across restarts.
    #[test]
    fn directory_marks_say_what_a_replica_is() {
        let data = tempfile::tempdir().unwrap();
        let config = NodeConfig {
            node_id: 1,
            data_dir: data.path().to_path_buf(),
            raft_address: "127.0.0.1:1".into(),
            sql_address: String::new(),
            bootstrap: super::super::node::Bootstrap::Restart,
            settings: super::super::node::RaftSettings::default(),
            test_faults: false,
            data_groups: 2,
            replication_factor: 3,
        };
        assert_eq!(hosting(&config, 2), Hosting::Never);
        let directory = group_directory(&config, 2);
        std::fs::create_dir_all(directory.join("store-files")).unwrap();
        assert_eq!(hosting(&config, 2), Hosting::Hosted { moved_in: false });
        std::fs::write(directory.join(MOVED_IN_MARK), b"").unwrap();
        assert_eq!(hosting(&config, 2), Hosting::Hosted { moved_in: true });
        std::fs::write(directory.join(RETIRED_MARK), b"").unwrap();
        std::fs::create_dir_all(snapshot_directory(&config, 2)).unwrap();
        assert_eq!(hosting(&config, 2), Hosting::Retired);
        delete_retired_files(&config, 2).unwrap();
        assert_eq!(hosting(&config, 2), Hosting::Retired);
        assert!(!directory.join("store-files").exists());
        assert!(!directory.join(MOVED_IN_MARK).exists());
        assert!(!snapshot_directory(&config, 2).exists());
    }
}
