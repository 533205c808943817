//! Replication: each group is a Raft group (openraft 0.9) whose replicas keep their log,
//! vote and state in the node's RocksDB.
//!
//! Work in progress for the replication issue: [`types`] (the shared type
//! configuration) and [`log_store`] (the log and vote of every hosted group) are built;
//! the state machine adapter, snapshots, transport and cluster node follow.

pub mod log_store;
pub mod types;
