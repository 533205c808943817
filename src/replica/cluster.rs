//! The replica of a cluster node: the synchronous face the SQL layer calls, over the
//! node's asynchronous Raft groups.
//!
//! Sessions run statements on threads of their own (one per connection), so each call
//! here polls its future to completion on the session's thread, within the node's
//! runtime context; the session's thread blocks, the runtime's workers never do.
//!
//! Error mapping: a write that certainly was not applied is [`Error::Retryable`]
//! (40001); one whose outcome cannot be known is [`Error::OutcomeUnknown`] (40003),
//! never retried here. After a write, the call waits until this replica has applied it,
//! so the session's next statement (planned with this replica's catalog) sees it.

use super::raft::membership::StepReport;
use super::raft::node::{GroupStatus, NodeStatus, Proposal, RaftNode, WriteError, DATA_GROUP};
use super::raft::types::Response;
use super::ReadLevel;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::sql::ast::ClusterChange;
use crate::sql::planner::OutputColumn;
use crate::state_machine::{Applied, Operation};
use crate::storage::Store;
use crate::types::{DataType, Value};
use std::future::Future;
use std::sync::Arc;

/// A cluster node seen as a replica.
pub struct ClusterReplica {
    node: Arc<RaftNode>,
    runtime: tokio::runtime::Handle,
}

impl ClusterReplica {
    /// The replica of `node`, whose work runs on `runtime`.
    pub fn new(node: Arc<RaftNode>, runtime: tokio::runtime::Handle) -> ClusterReplica {
        ClusterReplica { node, runtime }
    }

    /// The node.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// Runs `work` to completion on this (the session's) thread, inside the node's
    /// runtime context: the timers it sets and the tasks it spawns belong to the node's
    /// runtime, whose workers drive them, while the future itself is polled here.
    /// Spawning it onto the runtime instead cost one more hand-over between threads
    /// per statement each way (a worker woken to poll it, this thread woken for its
    /// answer): +13-18 % replicated inserts, +14 % linearizable reads in A/B runs.
    ///
    /// `unconstrained` is essential, not tuning: this thread is inside its
    /// connection's own single-threaded runtime, whose cooperative budget would
    /// otherwise be spent by the future's operations and, once exhausted, make them
    /// wait for a yield to that runtime that never comes while this blocks — a hang,
    /// seen in a read retrying against a cut-off leader.
    fn run<T>(&self, work: impl Future<Output = T>) -> Result<T> {
        let _entered = self.runtime.enter();
        Ok(futures::executor::block_on(tokio::task::unconstrained(
            work,
        )))
    }

    /// Commits an operation through the data group's leader.
    pub fn propose(&self, operation: Operation) -> Result<Applied> {
        let node = Arc::clone(&self.node);
        let (log_id, response) = self
            .run(async move {
                // The leader stamps the change (one oracle call per batch of changes).
                let written = node.write(DATA_GROUP, Proposal::Change(operation)).await?;
                // Read-your-writes on this replica; a replica that cannot catch up in time
                // does not undo a committed write, so only a warning.
                if let Err(error) = node.wait_applied(DATA_GROUP, written.0.index).await {
                    tracing::warn!(%error, "a committed write is not applied here yet");
                }
                Ok::<_, WriteError>(written)
            })?
            .map_err(write_failed)?;
        match response {
            Response::Data(outcome) => outcome.map(|(applied, _commit_ts)| applied),
            other => Err(Error::Internal(format!(
                "the data group answered entry {log_id} with {other:?}"
            ))),
        }
    }

    /// Whether the data group's leader was heard from within two heartbeats (see
    /// [`RaftNode::leader_heard_within`]).
    pub fn leader_recently_heard(&self) -> bool {
        let within = self.node.settings().heartbeat * 2;
        self.node.leader_heard_within(DATA_GROUP, within)
    }

    /// A number never handed out before: a timestamp from the oracle.
    pub fn unique_id(&self) -> Result<u64> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.timestamp().await })?
            .map_err(write_failed)
    }

    /// Waits until this replica may serve a read at `level`, then returns the
    /// timestamp of everything it has applied.
    pub fn read_timestamp(&self, level: ReadLevel) -> Result<u64> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.prepare_read(DATA_GROUP, level).await })??;
        self.node.applied_commit_ts()
    }

    /// The catalog as applied on this replica.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.node.catalog()
    }

    /// The node's store.
    pub fn store(&self) -> &Store {
        self.node.store()
    }

    /// Runs an `ALTER CLUSTER` change (a clock rate: on this node only); returns what
    /// each step did.
    pub fn change_membership(&self, change: &ClusterChange) -> Result<Vec<StepReport>> {
        let node = Arc::clone(&self.node);
        let change = change.clone();
        self.run(async move {
            match change {
                ClusterChange::AddNode { raft_address } => node.add_node_at(&raft_address).await,
                ClusterChange::RemoveNode { node_id } => node.remove_node(node_id).await,
                ClusterChange::TransferLeader { to, group } => {
                    let groups: Vec<_> = group.into_iter().collect();
                    node.transfer_leadership(&groups, to).await
                }
                ClusterChange::ClockRate { rate } => node.set_clock_rate(rate),
            }
        })?
        .map_err(write_failed)
    }

    /// This replica's fingerprint of every group it hosts (SHOW CHECKSUM): node id,
    /// group, applied index, checksum.
    pub fn checksums(&self) -> Result<(Vec<OutputColumn>, Vec<Vec<Value>>)> {
        let node = Arc::clone(&self.node);
        let sums = self.run(async move { node.checksums().await })??;
        let rows = sums
            .into_iter()
            .map(|(group, applied, sum)| {
                vec![
                    Value::BigInt(self.node.id() as i64),
                    Value::BigInt(group as i64),
                    applied.map_or(Value::Null, |index| Value::BigInt(index as i64)),
                    Value::Text(format!("{sum:016x}")),
                ]
            })
            .collect();
        Ok((checksum_columns(), rows))
    }

    /// Every member's status (SHOW CLUSTER).
    pub fn status(&self) -> Result<Vec<NodeStatus>> {
        let node = Arc::clone(&self.node);
        self.run(async move { node.cluster_status().await })
    }
}

/// The SQL error of a write that did not happen, or may not have.
fn write_failed(error: WriteError) -> Error {
    match error {
        WriteError::NotLeader(_) => {
            Error::Retryable("the leader changed before the write was proposed".into())
        }
        WriteError::Retry(why) => Error::Retryable(why),
        WriteError::Unknown(why) => Error::OutcomeUnknown(why),
        WriteError::Refused(why) => Error::ObjectNotInPrerequisiteState(why),
    }
}

/// SHOW CLUSTER's columns and rows: one row per node and group, with the replication
/// lag the group's leader reports for that node.
pub fn status_table(statuses: &[NodeStatus]) -> (Vec<OutputColumn>, Vec<Vec<Value>>) {
    let text = DataType::Text { max_length: None };
    let columns = columns(&[
        ("node_id", DataType::BigInt),
        ("raft_address", text),
        ("sql_address", text),
        ("group_id", DataType::BigInt),
        ("role", text),
        ("term", DataType::BigInt),
        ("leader", DataType::BigInt),
        ("last_index", DataType::BigInt),
        ("commit_index", DataType::BigInt),
        ("applied_index", DataType::BigInt),
        ("lag", DataType::BigInt),
    ]);
    let number = |value: Option<u64>| match value {
        Some(value) => Value::BigInt(i64::try_from(value).unwrap_or(i64::MAX)),
        None => Value::Null,
    };
    let mut rows = Vec::new();
    for status in statuses {
        let identity = [
            Value::BigInt(status.node_id as i64),
            Value::Text(status.raft_address.clone()),
            Value::Text(status.sql_address.clone()),
        ];
        if status.groups.is_empty() {
            let mut row = identity.to_vec();
            row.extend([Value::Null, Value::Text("unreachable".into())]);
            row.extend(std::iter::repeat_n(Value::Null, 6));
            rows.push(row);
            continue;
        }
        for group in &status.groups {
            let lag = leader_report(statuses, group.group).and_then(|leader| {
                if leader.leader == Some(status.node_id) && group.role == "leader" {
                    Some(0)
                } else {
                    leader.lag.get(&status.node_id).copied()
                }
            });
            let mut row = identity.to_vec();
            row.extend([
                number(Some(group.group)),
                Value::Text(group.role.clone()),
                number(Some(group.term)),
                number(group.leader),
                number(group.last_log),
                number(group.committed),
                number(group.applied),
                number(lag),
            ]);
            rows.push(row);
        }
    }
    (columns, rows)
}

/// Output columns from (name, type) pairs.
fn columns(named: &[(&str, DataType)]) -> Vec<OutputColumn> {
    named
        .iter()
        .map(|(name, data_type)| OutputColumn {
            name: (*name).into(),
            data_type: *data_type,
        })
        .collect()
}

/// SHOW CHECKSUM's columns.
pub fn checksum_columns() -> Vec<OutputColumn> {
    columns(&[
        ("node_id", DataType::BigInt),
        ("group_id", DataType::BigInt),
        ("applied_index", DataType::BigInt),
        ("checksum", DataType::Text { max_length: None }),
    ])
}

/// ALTER CLUSTER's columns and rows: one row per step, in the order they ran.
pub fn step_table(steps: &[StepReport]) -> (Vec<OutputColumn>, Vec<Vec<Value>>) {
    let columns = columns(&[
        ("group_id", DataType::BigInt),
        ("action", DataType::Text { max_length: None }),
        ("elapsed_ms", DataType::BigInt),
    ]);
    let rows = steps
        .iter()
        .map(|step| {
            vec![
                Value::BigInt(step.group as i64),
                Value::Text(step.action.clone()),
                Value::BigInt(i64::try_from(step.millis).unwrap_or(i64::MAX)),
            ]
        })
        .collect();
    (columns, rows)
}

/// The report of `group` by a node that leads it, if any answered.
fn leader_report(statuses: &[NodeStatus], group: u64) -> Option<&GroupStatus> {
    statuses
        .iter()
        .flat_map(|status| {
            status
                .groups
                .iter()
                .map(move |report| (status.node_id, report))
        })
        .find(|(node, report)| {
            report.group == group && report.leader == Some(*node) && report.role == "leader"
        })
        .map(|(_, report)| report)
}
