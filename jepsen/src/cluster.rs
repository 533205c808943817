//! A cluster of real `tessera server` processes on 127.0.0.11, 127.0.0.12, ... (slot
//! `i` has address 127.0.0.(11 + i) and starts as node id `i + 1`), each with its data
//! directory and log file in the run's directory.
//!
//! Processes are controlled by the pid the harness started them with (never by name):
//! SIGKILL and a restart from the same directory, SIGSTOP and SIGCONT. A slot whose
//! node was removed from the cluster is wiped and joins again as a new node: Tessera
//! never reuses a node id, so the slot takes the next one. Every process still running
//! is killed when the cluster is dropped, whatever happened.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a node to report ready.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// One slot: an address and the node that runs there.
#[derive(Debug)]
pub struct Node {
    /// Node id: slot + 1 at first, a new one after each rejoin.
    pub id: u64,
    /// 127.0.0.(11 + slot).
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

    /// `host:port` of the Raft listener.
    pub fn raft_address(&self) -> String {
        format!("{}:{}", self.host, self.raft_port)
    }

    /// Whether the process runs (it may be paused).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }
}

/// The running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The slots.
    pub nodes: Vec<Node>,
    binary: PathBuf,
    /// Extra `[cluster]` lines every node's configuration carries.
    extra: String,
    /// The id the next rejoining node takes.
    next_id: u64,
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
            .map(|node| format!("\"{}={}\"", node.id, node.raft_address()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut cluster = Cluster {
            next_id: size + 1,
            nodes,
            binary: binary.to_path_buf(),
            extra: extra.to_string(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.write_config(i, &format!("initial_members = [{members}]"))?;
        }
        for i in 0..cluster.nodes.len() {
            cluster.launch(i)?;
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_ready(i, 0)?;
        }
        Ok(cluster)
    }

    /// Writes slot `i`'s configuration, with `membership` (initial members or the
    /// member to join through) in its `[cluster]` table.
    fn write_config(&self, i: usize, membership: &str) -> Result<(), String> {
        let node = &self.nodes[i];
        let config = format!(
            "data = \"{}\"\nlisten = \"{}\"\n\n[cluster]\nnode_id = {}\nraft_listen = \"{}\"\n\
             {membership}\ntest_faults = true\n{}\n",
            node.data.display(),
            node.sql_address(),
            node.id,
            node.raft_address(),
            self.extra,
        );
        std::fs::write(&node.config, config)
            .map_err(|error| format!("{}: {error}", node.config.display()))
    }

    /// The slot node `id` runs in.
    pub fn slot_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|node| node.id == id)
    }

    /// Kills slot `i`'s node and deletes its data: for a node removed from the
    /// cluster, which may never come back under its id.
    pub fn wipe(&mut self, i: usize) -> Result<(), String> {
        self.kill(i);
        let data = &self.nodes[i].data;
        match std::fs::remove_dir_all(data) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(format!("cannot wipe {}: {error}", data.display())),
        }
    }

    /// Starts a new node in the wiped slot `i`, under the next unused id, joining
    /// through slot `via`; returns its id once it is a voter of every group (that is
    /// when a joining node reports ready).
    pub fn rejoin(&mut self, i: usize, via: usize) -> Result<u64, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.nodes[i].id = id;
        let join = format!("join = \"{}\"", self.nodes[via].raft_address());
        self.write_config(i, &join)?;
        let before = count_ready_lines(&self.nodes[i].log);
        self.launch(i)?;
        self.wait_ready(i, before)?;
        Ok(id)
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
