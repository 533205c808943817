//! A cluster of real `tessera server` processes on 127.0.0.11, 127.0.0.12, ... (node
//! `i` has id `i + 1` and address 127.0.0.(11 + i)), each with its data directory and
//! log file in the run's directory.
//!
//! Processes are controlled by the pid the harness started them with (never by name):
//! SIGKILL and a restart from the same directory, SIGSTOP and SIGCONT. Every process
//! still running is killed when the cluster is dropped, whatever happened.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a node to report ready.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// One node.
#[derive(Debug)]
pub struct Node {
    /// Node id (1-based).
    pub id: u64,
    /// 127.0.0.(10 + id).
    pub host: String,
    /// SQL port on `host`.
    pub sql_port: u16,
    /// Raft port on `host`.
    pub raft_port: u16,
    data: PathBuf,
    log: PathBuf,
    config: PathBuf,
    process: Option<Child>,
    paused: bool,
}

impl Node {
    /// `host:port` of the SQL listener.
    pub fn sql_address(&self) -> String {
        format!("{}:{}", self.host, self.sql_port)
    }

    /// Whether the process runs (it may be paused).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }
}

/// The running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, node `i` having id `i + 1`.
    pub nodes: Vec<Node>,
    binary: PathBuf,
}

/// A free TCP port on `host`.
fn free_port(host: &str) -> std::io::Result<u16> {
    Ok(TcpListener::bind((host, 0))?.local_addr()?.port())
}

impl Cluster {
    /// Starts `size` nodes of `binary` with their files under `directory`, with
    /// `test_faults` on (the clock nemesis needs it) and `extra` TOML lines in their
    /// `[cluster]` table; returns once each reports ready.
    pub fn start(
        binary: &Path,
        size: u64,
        directory: &Path,
        extra: &str,
    ) -> Result<Cluster, String> {
        let mut nodes = Vec::new();
        for id in 1..=size {
            let host = format!("127.0.0.{}", 10 + id);
            let port = |what: &str| {
                free_port(&host).map_err(|error| format!("no {what} port on {host}: {error}"))
            };
            nodes.push(Node {
                id,
                sql_port: port("SQL")?,
                raft_port: port("Raft")?,
                data: directory.join(format!("n{id}")),
                log: directory.join(format!("n{id}.log")),
                config: directory.join(format!("n{id}.toml")),
                host,
                process: None,
                paused: false,
            });
        }
        let members = nodes
            .iter()
            .map(|node| format!("\"{}={}:{}\"", node.id, node.host, node.raft_port))
            .collect::<Vec<_>>()
            .join(", ");
        for node in &nodes {
            let config = format!(
                "data = \"{}\"\nlisten = \"{}\"\n\n[cluster]\nnode_id = {}\nraft_listen = \"{}:{}\"\n\
                 initial_members = [{members}]\ntest_faults = true\n{extra}\n",
                node.data.display(),
                node.sql_address(),
                node.id,
                node.host,
                node.raft_port,
            );
            std::fs::write(&node.config, config)
                .map_err(|error| format!("{}: {error}", node.config.display()))?;
        }
        let mut cluster = Cluster {
            nodes,
            binary: binary.to_path_buf(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.launch(i)?;
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_ready(i, 0)?;
        }
        Ok(cluster)
    }

    /// Starts node `i`'s process (its log file is appended to).
    fn launch(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|error| format!("{}: {error}", node.log.display()))?;
        let child = Command::new(&self.binary)
            .args(["server", "--config"])
            .arg(&node.config)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", self.binary.display()))?;
        node.process = Some(child);
        node.paused = false;
        Ok(())
    }

    /// Waits until node `i` has logged "ready" more than `before` times (or died, or
    /// took too long).
    fn wait_ready(&mut self, i: usize, before: usize) -> Result<(), String> {
        let started = Instant::now();
        let log = self.nodes[i].log.clone();
        while count_ready_lines(&log) <= before {
            if let Some(child) = self.nodes[i].process.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.nodes[i].process = None;
                    return Err(format!(
                        "node {} exited at start ({status}); see {}",
                        i + 1,
                        log.display()
                    ));
                }
            }
            if started.elapsed() > STARTUP_LIMIT {
                return Err(format!(
                    "node {} not ready within {} s; see {}",
                    i + 1,
                    STARTUP_LIMIT.as_secs(),
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// SIGKILLs node `i` (by pid) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].process.take() {
            if self.nodes[i].paused {
                signal(child.id(), "CONT");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nodes[i].paused = false;
    }

    /// Restarts node `i` from its directory; returns once it is ready.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].is_running() {
            return Ok(());
        }
        let before = count_ready_lines(&self.nodes[i].log);
        self.launch(i)?;
        self.wait_ready(i, before)
    }

    /// SIGSTOPs node `i`.
    pub fn pause(&mut self, i: usize) {
        if let Some(child) = &self.nodes[i].process {
            signal(child.id(), "STOP");
            self.nodes[i].paused = true;
        }
    }

    /// SIGCONTs node `i`.
    pub fn resume(&mut self, i: usize) {
        if let Some(child) = &self.nodes[i].process {
            signal(child.id(), "CONT");
        }
        self.nodes[i].paused = false;
    }

    /// Whether node `i` is paused.
    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }
}

/// Sends a signal by pid with `kill(1)` (no name matching, ever).
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// How many times a log says "tessera server ready".
fn count_ready_lines(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|text| text.matches("tessera server ready").count())
        .unwrap_or(0)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
