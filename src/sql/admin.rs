//! Tessera's own administrative statements as SQL result sets: SHOW CLUSTER, SHOW
//! CHECKSUM, SHOW SHARDS, SHOW GROUPS and ALTER CLUSTER's step list. The replica layer reports what
//! it knows in its own types; turning that into columns and rows is the SQL layer's
//! job, so the replica never depends on SQL.

use crate::catalog::Table;
use crate::replica::cluster::NodeStatus;
use crate::replica::raft::membership::StepReport;
use crate::replica::raft::node::GroupStatus;
use crate::shard::GroupId;
use crate::sql::planner::OutputColumn;
use crate::types::{DataType, Value};

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

/// SHOW CHECKSUM's columns and rows from one node's (group, applied index, checksum).
pub fn checksum_table(
    node_id: u64,
    sums: &[(GroupId, Option<u64>, u64)],
) -> (Vec<OutputColumn>, Vec<Vec<Value>>) {
    let rows = sums
        .iter()
        .map(|(group, applied, sum)| {
            vec![
                big_int(node_id),
                big_int(*group),
                applied.map_or(Value::Null, big_int),
                Value::Text(format!("{sum:016x}")),
            ]
        })
        .collect();
    (checksum_columns(), rows)
}

/// SHOW SHARDS' columns and rows: one row per shard of each table, with its slice of
/// the hash space, its group, and the group's leader and voters as `groups` reports
/// them (a group nobody reported, as in an embedded database, has no leader and is
/// hosted `local`ly).
pub fn shards_table(
    tables: &[&Table],
    groups: &[GroupStatus],
) -> (Vec<OutputColumn>, Vec<Vec<Value>>) {
    let text = DataType::Text { max_length: None };
    let columns = columns(&[
        ("table_name", text),
        ("shard", DataType::Integer),
        ("hash_start", DataType::Integer),
        ("hash_end", DataType::Integer),
        ("group_id", DataType::BigInt),
        ("leader", DataType::BigInt),
        ("voters", text),
    ]);
    let mut rows = Vec::new();
    for table in tables {
        for placement in &table.placement {
            let report = groups.iter().find(|g| g.group == placement.group);
            let voters = voters_text(report);
            rows.push(vec![
                Value::Text(table.name.clone()),
                Value::Integer(i32::from(placement.shard)),
                Value::Integer(placement.hash_start as i32),
                Value::Integer(placement.hash_end as i32),
                big_int(placement.group),
                report
                    .and_then(|report| report.leader)
                    .map_or(Value::Null, big_int),
                Value::Text(voters),
            ]);
        }
    }
    (columns, rows)
}

/// SHOW GROUPS' columns and rows: one row per data group, with its leader and voters
/// as `reports` give them (`local` when none does, as in an embedded database) and the
/// table shards it hosts as `table:shard[hash_start,hash_end)` entries.
pub fn groups_table(
    groups: &[GroupId],
    tables: &[&Table],
    reports: &[GroupStatus],
) -> (Vec<OutputColumn>, Vec<Vec<Value>>) {
    let text = DataType::Text { max_length: None };
    let columns = columns(&[
        ("group_id", DataType::BigInt),
        ("leader", DataType::BigInt),
        ("voters", text),
        ("shard_count", DataType::BigInt),
        ("shards", text),
    ]);
    let rows = groups
        .iter()
        .map(|&group| {
            let report = reports.iter().find(|report| report.group == group);
            let shards: Vec<String> = tables
                .iter()
                .flat_map(|table| {
                    table
                        .placement
                        .iter()
                        .filter(move |placement| placement.group == group)
                        .map(move |placement| {
                            format!(
                                "{}:{}[{},{})",
                                table.name,
                                placement.shard,
                                placement.hash_start,
                                placement.hash_end
                            )
                        })
                })
                .collect();
            vec![
                big_int(group),
                report
                    .and_then(|report| report.leader)
                    .map_or(Value::Null, big_int),
                Value::Text(voters_text(report)),
                big_int(shards.len() as u64),
                Value::Text(shards.join(" ")),
            ]
        })
        .collect();
    (columns, rows)
}

/// A group's voters, comma-separated; `local` for a group nobody reported.
fn voters_text(report: Option<&GroupStatus>) -> String {
    match report {
        Some(report) => report
            .voters
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        None => "local".to_string(),
    }
}

fn big_int(value: u64) -> Value {
    Value::BigInt(i64::try_from(value).unwrap_or(i64::MAX))
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
