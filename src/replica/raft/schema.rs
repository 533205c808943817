//! DDL in a cluster: the catalog changes in the metadata group, then every data group
//! installs the new catalog through its own log.
//!
//! Why two steps rather than DDL in each data group: the catalog must be one value that
//! every node plans against, whichever groups it hosts, with ids assigned once; the
//! metadata group (on every node) orders schema changes, and a data group's copy only
//! ever moves to a newer version of that value (see `state_machine::ddl`). A commit
//! names the catalog version it was planned against, and a group whose copy is older
//! refuses it (retryable), so no group applies writes to a table it does not know yet.
//!
//! A new index of an existing table is added as building (no snapshot reads through
//! it); each group backfills its shards when it installs the catalog, at its own commit
//! timestamp; once all have, the index is declared ready from the latest of those
//! timestamps, so a snapshot at or after it finds every row's entry in every group. A
//! group that cannot build it (a duplicate value of a unique index) refuses the install;
//! the index is then dropped again and the error reported.
//!
//! A unique index over several groups has a second step before it is ready: entries
//! that belong in another group than their row's are sent there (`raft::index_build`);
//! duplicates across groups are found where the entries meet, and fail the build the
//! same way.
//!
//! A node that stops between the steps leaves some groups behind; the leader of each
//! data group installs the newest catalog it finds behind ([`RaftNode::catch_up_catalog`]).

use super::node::{Proposal, RaftNode};
use super::types::{GroupId, Request, METADATA_GROUP};
use crate::error::{Error, Result};
use crate::shard::{self, FIRST_SHARD_GROUP};
use crate::state_machine::{Applied, Operation};
use std::collections::BTreeMap;

impl RaftNode {
    /// Runs one DDL operation across the cluster; returns once every data group has
    /// installed its effect.
    pub async fn change_schema(&self, operation: Operation) -> Result<Applied> {
        let applied = self.change_catalog(operation.clone()).await?;
        if let Applied::Skipped { .. } = applied {
            return Ok(applied);
        }
        let mut installed = self.install_catalog_everywhere().await;
        // An index a block created and dropped again (or whose table it dropped) is
        // not in the catalog it committed: there is nothing to build.
        let catalog = self.catalog();
        let created = created_indexes(&operation);
        let to_build = created
            .into_iter()
            .filter(|name| catalog.index_owner(name).is_some());
        for name in to_build {
            installed = Ok(self.finish_index(name, installed).await?);
        }
        installed.map(|_| applied)
    }

    /// Builds index `name`, created by a schema change that every group has installed
    /// (`installed`), and declares it ready; a group that cannot build it (a duplicate
    /// of a unique index) has it dropped again, and its error is the answer. Returns
    /// the groups' install timestamps after the last step.
    async fn finish_index(
        &self,
        name: &str,
        installed: Result<BTreeMap<GroupId, u64>>,
    ) -> Result<BTreeMap<GroupId, u64>> {
        match self.build_index(name, installed).await {
            Ok(ready_ts) => {
                let catalog = self.catalog();
                let Some((_, index)) = catalog.index_owner(name) else {
                    return Err(Error::Retryable(format!(
                        "index \"{name}\" was dropped while it was being built"
                    )));
                };
                if index.created_ts != crate::catalog::INDEX_BUILDING {
                    return self.install_catalog_everywhere().await;
                }
                let ready = Operation::IndexReady {
                    index: index.id,
                    ready_ts,
                };
                self.change_catalog(ready).await?;
                self.install_catalog_everywhere().await
            }
            Err(error) if error.is_deterministic() => {
                // Some group cannot build the index: it goes, as if never created.
                let drop = Operation::DropIndex {
                    name: name.to_string(),
                    if_exists: true,
                };
                self.change_catalog(drop).await?;
                self.install_catalog_everywhere().await?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// Finishes building index `name` once every group installed it (`installed`: each
    /// group's install timestamp): a unique index over several groups also needs the
    /// entries each group could not write itself (see `raft::index_build`). Returns
    /// the timestamp from which the index is complete in every group.
    async fn build_index(
        &self,
        name: &str,
        installed: Result<BTreeMap<GroupId, u64>>,
    ) -> Result<u64> {
        let installed = installed?;
        let ready_ts = installed.values().copied().max().unwrap_or(0);
        let catalog = self.catalog();
        let Some((table, index)) = catalog.index_owner(name) else {
            return Ok(ready_ts); // dropped meanwhile: reported by the caller
        };
        if !index.unique || !shard::spans_groups(table) {
            return Ok(ready_ts);
        }
        let sent_ts = self
            .backfill_entries_elsewhere(table, index, &installed)
            .await?;
        Ok(ready_ts.max(sent_ts))
    }

    /// Commits a sequence reservation or `setval` in the metadata group, which keeps
    /// sequence positions beside the catalog (no data group is involved).
    pub async fn change_sequence(&self, operation: Operation) -> Result<Applied> {
        self.change_catalog(operation).await
    }

    /// Commits a schema change in the metadata group and waits until this replica has
    /// applied it (the next statement here plans against it).
    async fn change_catalog(&self, operation: Operation) -> Result<Applied> {
        let request = Request::Schema { operation };
        let proposal = Proposal::Entry(request);
        let (applied, _) = self.commit_and_apply(METADATA_GROUP, proposal).await?;
        Ok(applied)
    }

    /// Installs this replica's catalog in every data group, concurrently; returns each
    /// group's install commit timestamp (an install skipped because a newer copy is
    /// there counts at its own timestamp, which is later than that copy's).
    async fn install_catalog_everywhere(&self) -> Result<BTreeMap<GroupId, u64>> {
        let installs = self
            .pool()
            .map(|group| async move { (group, self.install_catalog(group).await) });
        let mut installed = BTreeMap::new();
        for (group, outcome) in futures::future::join_all(installs).await {
            installed.insert(group, outcome?);
        }
        Ok(installed)
    }

    /// Installs this replica's catalog in `group`; returns the install's commit
    /// timestamp once this replica has applied it.
    async fn install_catalog(&self, group: GroupId) -> Result<u64> {
        let catalog = Box::new((*self.catalog()).clone());
        let install = Operation::InstallCatalog { catalog };
        let (_, commit_ts) = self
            .commit_and_apply(group, Proposal::Change(install))
            .await?;
        Ok(commit_ts)
    }

    /// Every data group of the cluster, hosted here or not.
    pub fn pool(&self) -> impl Iterator<Item = GroupId> {
        FIRST_SHARD_GROUP..FIRST_SHARD_GROUP + self.data_group_count()
    }

    /// As leader of data group `group`: installs the cluster's catalog if the group's
    /// copy is older (a schema change whose proposer stopped half-way).
    pub(super) async fn catch_up_catalog(&self, group: GroupId) {
        let Ok(state) = self.group(group) else {
            return;
        };
        if state.catalog_version() >= self.catalog().version() {
            return;
        }
        match self.install_catalog(group).await {
            Ok(_) => tracing::info!(group, "installed a newer catalog left behind"),
            Err(error) => tracing::warn!(group, %error, "could not install the catalog"),
        }
    }
}

/// The names of the indexes a schema change creates (CREATE INDEX, alone or among a
/// block's changes), in order: each is built once the change is installed.
fn created_indexes(operation: &Operation) -> Vec<&str> {
    let operations = operation.ddl_steps();
    operations
        .iter()
        .filter_map(|operation| match operation {
            Operation::CreateIndex { spec, .. } => Some(spec.name.as_str()),
            _ => None,
        })
        .collect()
}
