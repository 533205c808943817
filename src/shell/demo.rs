//! `tessera demo --nodes N`: a throwaway local cluster and a shell on it, so a newcomer
//! can try replication in one command and watch failover by stopping a node from the
//! shell (`\node stop 1`) while querying another.
//!
//! Each node is a real `tessera server` child process (this same executable) on its
//! own loopback address, 127.0.0.1 to 127.0.0.N, with its data and log in a temporary
//! directory removed at exit. The shell talks to one node over the PostgreSQL
//! protocol; when that node is stopped or its connection breaks, it reconnects to a
//! running one. Children are killed (by pid) when the demo ends, however it ends short
//! of the shell itself being killed.

use super::backend::{Backend, Remote};
use crate::error::{Error, Result};
use crate::session::{QueryResult, TransactionStatus};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Most nodes a demo runs (loopback addresses 127.0.0.1 upwards; more would not fit
/// a laptop's cores anyway).
pub const MAX_NODES: usize = 7;
/// Longest wait for a node to report ready.
const START_LIMIT: Duration = Duration::from_secs(60);

/// Stops and starts the nodes of a local cluster (the shell's `\node` meta-command).
pub trait NodeControl {
    /// Kills node `id` (SIGKILL, like a crash).
    fn stop(&mut self, id: u64) -> Result<String>;
    /// Starts node `id` again from its data directory.
    fn start(&mut self, id: u64) -> Result<String>;
    /// One line per node: id, addresses, running or stopped, log file.
    fn describe(&self) -> String;
}

/// One demo node.
struct DemoNode {
    id: u64,
    sql_address: String,
    raft_address: String,
    process: Option<Child>,
}

/// A local cluster of child processes, and the shell's connection to one of them.
pub struct DemoCluster {
    executable: PathBuf,
    directory: tempfile::TempDir,
    nodes: Vec<DemoNode>,
    members: String,
    /// The node the shell is connected to, and the connection.
    connection: Option<(u64, Remote)>,
}

fn free_port(host: &str) -> Result<u16> {
    std::net::TcpListener::bind((host, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| Error::Io(format!("no free port on {host}: {error}")))
}

impl DemoCluster {
    /// Starts `size` nodes and connects to node 1; reports progress on stderr.
    pub fn start(size: usize) -> Result<DemoCluster> {
        if size == 0 || size > MAX_NODES {
            return Err(Error::InvalidParameterValue(format!(
                "--nodes must be between 1 and {MAX_NODES}"
            )));
        }
        let executable = std::env::current_exe()
            .map_err(|error| Error::Io(format!("cannot find the tessera executable: {error}")))?;
        let directory = tempfile::Builder::new()
            .prefix("tessera-demo-")
            .tempdir()
            .map_err(|error| Error::Io(format!("cannot make a temporary directory: {error}")))?;
        let mut nodes = Vec::new();
        for id in 1..=size as u64 {
            let host = format!("127.0.0.{id}");
            nodes.push(DemoNode {
                id,
                sql_address: format!("{host}:{}", free_port(&host)?),
                raft_address: format!("{host}:{}", free_port(&host)?),
                process: None,
            });
        }
        let members = nodes
            .iter()
            .map(|node| format!("{}={}", node.id, node.raft_address))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = DemoCluster {
            executable,
            directory,
            nodes,
            members,
            connection: None,
        };
        for id in 1..=size as u64 {
            cluster.spawn(id)?;
        }
        for id in 1..=size as u64 {
            cluster.wait_ready(id)?;
        }
        cluster.reconnect()?;
        Ok(cluster)
    }

    fn node(&self, id: u64) -> Result<&DemoNode> {
        self.nodes
            .iter()
            .find(|node| node.id == id)
            .ok_or_else(|| Error::InvalidParameterValue(format!("there is no node {id}")))
    }

    fn log_path(&self, id: u64) -> PathBuf {
        self.directory.path().join(format!("node{id}.log"))
    }

    fn spawn(&mut self, id: u64) -> Result<()> {
        let node = self.node(id)?;
        let log = std::fs::File::create(self.log_path(id))
            .map_err(|error| Error::Io(format!("cannot create node {id}'s log: {error}")))?;
        let child = Command::new(&self.executable)
            .arg("server")
            .arg("--data")
            .arg(self.directory.path().join(format!("node{id}")))
            .args(["--listen", &node.sql_address])
            .args(["--node-id", &id.to_string()])
            .args(["--raft-listen", &node.raft_address])
            .args(["--initial-members", &self.members])
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|error| Error::Io(format!("cannot start node {id}: {error}")))?;
        eprintln!("starting node {id}: SQL {}", node.sql_address);
        if let Some(node) = self.nodes.iter_mut().find(|node| node.id == id) {
            node.process = Some(child);
        }
        Ok(())
    }

    /// Waits for node `id`'s "ready" log line, or for it to exit.
    fn wait_ready(&mut self, id: u64) -> Result<()> {
        let started = Instant::now();
        let log_path = self.log_path(id);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains("tessera server ready") {
                return Ok(());
            }
            let exited = self
                .nodes
                .iter_mut()
                .find(|node| node.id == id)
                .and_then(|node| node.process.as_mut())
                .map(|child| matches!(child.try_wait(), Ok(Some(_))))
                .unwrap_or(true);
            if exited || started.elapsed() > START_LIMIT {
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(Error::Io(format!(
                    "node {id} did not start; its log ends with:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Connects the shell to the first running node that answers.
    fn reconnect(&mut self) -> Result<()> {
        self.connection = None;
        let mut last_error = None;
        for node in &self.nodes {
            if node.process.is_none() {
                continue;
            }
            let url = format!(
                "postgres://demo@{}/tessera?sslmode=disable",
                node.sql_address
            );
            match Remote::connect(&url) {
                Ok(remote) => {
                    eprintln!("connected to node {} ({})", node.id, node.sql_address);
                    self.connection = Some((node.id, remote));
                    return Ok(());
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            Error::Io("no node is running; start one with \\node start N".into())
        }))
    }

    /// The connection, re-established if it was lost.
    fn remote(&mut self) -> Result<&mut Remote> {
        if self.connection.is_none() {
            self.reconnect()?;
        }
        match &mut self.connection {
            Some((_, remote)) => Ok(remote),
            None => Err(Error::Internal(
                "reconnect returned without a connection".into(),
            )),
        }
    }
}

/// Whether an error means the connection itself is gone (08xxx).
fn connection_lost(error: &Error) -> bool {
    error.sqlstate().starts_with("08")
}

impl Backend for DemoCluster {
    fn execute_each(&mut self, sql: &str, on_result: &mut dyn FnMut(QueryResult)) -> Result<()> {
        let outcome = self.remote()?.execute_each(sql, on_result);
        if let Err(error) = &outcome {
            if connection_lost(error) {
                // The next statement goes to a running node.
                self.connection = None;
            }
        }
        outcome
    }

    fn transaction_status(&self) -> TransactionStatus {
        match &self.connection {
            Some((_, remote)) => remote.transaction_status(),
            None => TransactionStatus::Idle,
        }
    }

    fn node_control(&mut self) -> Option<&mut dyn NodeControl> {
        Some(self)
    }
}

impl NodeControl for DemoCluster {
    fn stop(&mut self, id: u64) -> Result<String> {
        self.node(id)?;
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.id == id)
            .ok_or_else(|| Error::Internal(format!("node {id} vanished")))?;
        let Some(mut child) = node.process.take() else {
            return Ok(format!("node {id} is already stopped"));
        };
        let _ = child.kill();
        let _ = child.wait();
        let mut message = format!("node {id} killed (SIGKILL)");
        if self.connection.as_ref().is_some_and(|(on, _)| *on == id) {
            self.connection = None;
            if self.reconnect().is_ok() {
                if let Some((now, _)) = &self.connection {
                    message.push_str(&format!("; the shell now talks to node {now}"));
                }
            }
        }
        Ok(message)
    }

    fn start(&mut self, id: u64) -> Result<String> {
        if self.node(id)?.process.is_some() {
            return Ok(format!("node {id} is already running"));
        }
        self.spawn(id)?;
        self.wait_ready(id)?;
        Ok(format!("node {id} restarted from its data directory"))
    }

    fn describe(&self) -> String {
        let connected = self.connection.as_ref().map(|(id, _)| *id);
        let mut lines = Vec::new();
        for node in &self.nodes {
            lines.push(format!(
                "node {}  sql {}  raft {}  {}{}  log {}",
                node.id,
                node.sql_address,
                node.raft_address,
                if node.process.is_some() {
                    "running"
                } else {
                    "stopped"
                },
                if connected == Some(node.id) {
                    " (this shell)"
                } else {
                    ""
                },
                self.log_path(node.id).display()
            ));
        }
        lines.join("\n")
    }
}

impl Drop for DemoCluster {
    fn drop(&mut self) {
        self.connection = None;
        for node in &mut self.nodes {
            if let Some(mut child) = node.process.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
