//! The cluster statements of a session: SHOW CLUSTER, CHECKSUM, GROUPS and SHARDS, and
//! ALTER CLUSTER, answered by the node behind the session.

use super::{QueryResult, Session};
use crate::error::{Error, Result};
use crate::sql::admin;
use crate::sql::ast::ClusterChange;
use crate::sql::planner::OutputColumn;
use crate::types::Value;

/// Rows with their own command tag (SHOW, ALTER CLUSTER) instead of SELECT's.
pub(super) fn tagged_rows(
    tag: &str,
    columns: Vec<OutputColumn>,
    rows: Vec<Vec<Value>>,
) -> QueryResult {
    let mut result = QueryResult::rows(columns, rows);
    result.tag = tag.into();
    result
}

impl Session {
    /// The cluster node behind this session; `statement` names what needs one.
    pub(super) fn cluster_node(
        &self,
        statement: &str,
    ) -> Result<&crate::replica::cluster::ClusterReplica> {
        self.replica.cluster().ok_or_else(|| {
            Error::FeatureNotSupported(format!(
                "{statement}: this is an embedded database, not a cluster node"
            ))
        })
    }

    /// SHOW CLUSTER: every node's view of every group it hosts.
    pub(super) fn show_cluster(&self) -> Result<QueryResult> {
        let statuses = self.cluster_node("SHOW CLUSTER")?.status()?;
        let (columns, rows) = admin::status_table(&statuses);
        Ok(tagged_rows("SHOW", columns, rows))
    }

    /// SHOW CHECKSUM: this replica's fingerprint of each group, to compare replicas.
    pub(super) fn show_checksum(&self) -> Result<QueryResult> {
        let node = self.cluster_node("SHOW CHECKSUM")?;
        let (columns, rows) = admin::checksum_table(node.node().id(), &node.checksums()?);
        Ok(tagged_rows("SHOW", columns, rows))
    }

    /// SHOW GROUPS: each data group with its leader, voters and the table shards (with
    /// their hash ranges) placed on it. An embedded database hosts every shard in one
    /// local group.
    pub(super) fn show_groups(&self) -> Result<QueryResult> {
        let catalog = self.fresh_catalog()?;
        let tables: Vec<&crate::catalog::Table> = catalog.tables().collect();
        let (groups, reports) = match self.replica.cluster() {
            Some(cluster) => {
                let pool = crate::shard::FIRST_SHARD_GROUP
                    ..crate::shard::FIRST_SHARD_GROUP + cluster.data_group_count();
                (pool.collect(), cluster.group_reports()?)
            }
            None => (vec![crate::shard::FIRST_SHARD_GROUP], Vec::new()),
        };
        let (columns, rows) = admin::groups_table(&groups, &tables, &reports);
        Ok(tagged_rows("SHOW", columns, rows))
    }

    /// SHOW SHARDS [FOR table]: each shard's hash range and group, with the group's
    /// leader and voters on a cluster node (as this node's view of them reports).
    pub(super) fn show_shards(&self, table: Option<&str>) -> Result<QueryResult> {
        let catalog = self.fresh_catalog()?;
        let tables: Vec<&crate::catalog::Table> = match table {
            Some(name) => vec![catalog.require_table(name)?],
            None => catalog.tables().collect(),
        };
        let groups = match self.replica.cluster() {
            Some(cluster) => cluster.group_reports()?,
            None => Vec::new(),
        };
        let (columns, rows) = admin::shards_table(&tables, &groups);
        Ok(tagged_rows("SHOW", columns, rows))
    }

    /// ALTER CLUSTER: runs the membership change group by group and lists each step.
    /// Not inside a transaction block: it cannot be rolled back.
    pub(super) fn alter_cluster(&mut self, change: &ClusterChange) -> Result<QueryResult> {
        self.cluster_node("ALTER CLUSTER")?;
        if self.transaction.is_some() {
            self.failed = true;
            return Err(Error::ActiveTransaction(
                "ALTER CLUSTER cannot run inside a transaction block".into(),
            ));
        }
        let steps = self
            .cluster_node("ALTER CLUSTER")?
            .change_membership(change)?;
        let (columns, rows) = admin::step_table(&steps);
        Ok(tagged_rows("ALTER CLUSTER", columns, rows))
    }
}
