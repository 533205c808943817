//! A cluster of real `tessera server` processes on 127.0.0.1, 127.0.0.2, ... for the
//! whole-cluster tests, with the faults they inject: SIGKILL, SIGSTOP/SIGCONT, and
//! network partitions made of iptables rules.
//!
//! Cleanup is by guard: a process is killed (by pid) when its guard drops, and every
//! iptables rule a [`Partition`] added is deleted when it drops, so a failing test
//! leaves nothing behind. Rules match the test's own Raft ports, so tests running at the
//! same time on the same addresses never cut each other off.

use super::ChildGuard;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for a node to report ready.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// Most log lines kept per node (the oldest are dropped).
const LOG_LINES_KEPT: usize = 20_000;

/// One node: its process, addresses and log.
pub struct NodeProcess {
    /// Node id (1-based; node `i` has id `i + 1`).
    pub id: u64,
    process: Option<ChildGuard>,
    /// SQL port on `host`.
    pub sql_port: u16,
    /// Raft port on `host`.
    pub raft_port: u16,
    /// 127.0.0.id.
    pub host: String,
    /// How it first found its cluster: `--initial-members` or `--join ADDRESS`.
    bootstrap: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
}

/// A cluster in a temporary directory.
pub struct Cluster {
    /// The nodes, node `i` having id `i + 1`.
    pub nodes: Vec<NodeProcess>,
    /// Extra `[cluster]` settings (TOML lines) every node starts with.
    settings: String,
    data: tempfile::TempDir,
}

/// A free TCP port on `host`.
pub fn free_port(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

impl Cluster {
    /// Starts `size` nodes with default settings.
    pub fn start(size: u64) -> Cluster {
        Cluster::start_with(size, "")
    }

    /// Starts `size` nodes with these extra `[cluster]` TOML settings; returns once
    /// every node knows the metadata group's leader and group 1 has one (the cluster
    /// has formed).
    pub fn start_with(size: u64, settings: &str) -> Cluster {
        let data = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            settings: settings.to_string(),
            data,
        };
        for _ in 0..size {
            cluster.nodes.push(cluster.new_node(Vec::new()));
        }
        let members = cluster
            .nodes
            .iter()
            .map(|node| format!("\"{}={}:{}\"", node.id, node.host, node.raft_port))
            .collect::<Vec<_>>()
            .join(", ");
        for node in &mut cluster.nodes {
            node.bootstrap = vec![format!("initial_members = [{members}]")];
        }
        for i in 0..cluster.nodes.len() {
            cluster.launch(i);
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_for_leader(0, i, None);
        }
        // Group 1 is on every node only while there are no more nodes than its
        // replication factor: wait for a leader as its hosts see it.
        let started = Instant::now();
        while (0..cluster.nodes.len()).all(|i| cluster.leader(1, i).is_none()) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no leader of group 1 within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn new_node(&self, bootstrap: Vec<String>) -> NodeProcess {
        let id = self.nodes.len() as u64 + 1;
        let host = format!("127.0.0.{id}");
        NodeProcess {
            id,
            process: None,
            sql_port: free_port(&host),
            raft_port: free_port(&host),
            host,
            bootstrap,
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Starts one more node that joins through node `via`; returns its index once it
    /// reports ready (which it does only after it has joined every group).
    pub fn join_new_node(&mut self, via: usize) -> usize {
        let through = self.raft_address(via);
        let node = self.new_node(vec![format!("join = \"{through}\"")]);
        self.nodes.push(node);
        let i = self.nodes.len() - 1;
        self.launch(i);
        i
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.data.path().join(format!("node{}", self.nodes[i].id))
    }

    /// Starts node `i` (again) from its data directory and waits until it is ready.
    pub fn launch(&mut self, i: usize) {
        let node = &self.nodes[i];
        let config = format!(
            "data = {data:?}\nlisten = \"{host}:{sql}\"\n\n[cluster]\nnode_id = {id}\n\
             raft_listen = \"{host}:{raft}\"\n{bootstrap}\n{settings}\n",
            data = self.data_dir(i).display().to_string(),
            host = node.host,
            sql = node.sql_port,
            raft = node.raft_port,
            id = node.id,
            bootstrap = node.bootstrap.join("\n"),
            settings = self.settings,
        );
        let config_path = self.data.path().join(format!("node{}.toml", node.id));
        std::fs::write(&config_path, config).expect("write config");
        let process = super::spawn_logged(
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(["server", "--config"])
                .arg(&config_path)
                .env("RUST_LOG", "info,openraft=warn"),
            STARTUP_LIMIT,
            &format!("node {}", node.id),
            Some("ERROR"),
            Arc::clone(&node.log),
            LOG_LINES_KEPT,
        );
        self.nodes[i].process = Some(process);
    }

    /// SIGKILLs node `i` and waits for it to be gone.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].process = None;
    }

    /// Whether node `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].process.is_some()
    }

    /// Sends a signal (`STOP`, `CONT`) to node `i`'s process, by pid.
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.nodes[i]
            .process
            .as_ref()
            .expect("node is running")
            .0
            .id();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Node `i`'s Raft address.
    pub fn raft_address(&self, i: usize) -> String {
        format!("{}:{}", self.nodes[i].host, self.nodes[i].raft_port)
    }

    /// A client of node `i`, or why not.
    pub fn try_connect(&self, i: usize) -> Result<postgres::Client, postgres::Error> {
        let node = &self.nodes[i];
        let url = format!(
            "host={} port={} user=tester dbname=tessera connect_timeout=10",
            node.host, node.sql_port
        );
        postgres::Client::connect(&url, postgres::NoTls)
    }

    /// A client of node `i`.
    pub fn connect(&self, i: usize) -> postgres::Client {
        self.try_connect(i).expect("connect")
    }

    /// The index of the node leading `group`, as SHOW CLUSTER on node `via` reports it.
    pub fn leader(&self, group: i64, via: usize) -> Option<usize> {
        let rows = self
            .try_connect(via)
            .ok()?
            .query("SHOW CLUSTER", &[])
            .ok()?;
        rows.iter()
            .find(|row| {
                row.get::<_, Option<i64>>("group_id") == Some(group)
                    && row.get::<_, Option<i64>>("node_id") == Some(self.nodes[via].id as i64)
            })
            .and_then(|row| row.get::<_, Option<i64>>("leader"))
            .map(|leader| leader as usize - 1)
    }

    /// Moves the leadership of every group to the data group's leader; returns it.
    pub fn one_leader_for_all(&self) -> usize {
        let leader = self.leader(1, 0).expect("a leader");
        self.connect(leader)
            .batch_execute(&format!(
                "ALTER CLUSTER TRANSFER LEADER TO NODE {}",
                leader + 1
            ))
            .expect("transfer");
        leader
    }

    /// Waits until node `via` sees one node leading both the metadata and the data
    /// group (the metadata leadership follows the data leader by itself); returns it.
    pub fn wait_for_co_located_leaders(&self, via: usize) -> usize {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            match (self.leader(0, via), self.leader(1, via)) {
                (Some(metadata), Some(data)) if metadata == data => return data,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        panic!("the metadata and data leaders were still apart after 30 s");
    }

    /// Waits until node `via` sees a leader of `group` other than `not`; returns it.
    pub fn wait_for_leader(&self, group: i64, via: usize, not: Option<usize>) -> usize {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            match self.leader(group, via) {
                Some(leader) if Some(leader) != not => return leader,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        panic!("no new leader of group {group} within 30 s");
    }

    /// Node `i`'s SHOW CHECKSUM rows: (group, applied index, checksum).
    pub fn checksums(&self, i: usize) -> Vec<(i64, Option<i64>, String)> {
        self.connect(i)
            .query("SHOW CHECKSUM", &[])
            .expect("checksum")
            .iter()
            .map(|row| (row.get(1), row.get(2), row.get(3)))
            .collect()
    }

    /// Waits until every running node that hosts a group reports the same checksum
    /// for it (same applied index, same contents); panics with them if they do not
    /// within 30 s.
    pub fn assert_converged(&self) {
        let started = Instant::now();
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.is_running(*i))
            .collect();
        loop {
            let sums: Vec<_> = running.iter().map(|i| self.checksums(*i)).collect();
            let mut by_group: std::collections::BTreeMap<_, std::collections::BTreeSet<_>> =
                Default::default();
            for (group, applied, sum) in sums.iter().flatten() {
                by_group
                    .entry(*group)
                    .or_default()
                    .insert((*applied, sum.clone()));
            }
            if by_group.values().all(|copies| copies.len() == 1) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "replicas did not converge: {sums:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether node `i`'s log has a line containing `text`.
    pub fn log_contains(&self, i: usize, text: &str) -> bool {
        self.nodes[i]
            .log
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .any(|line| line.contains(text))
    }

    /// Cuts the Raft traffic between node `i` and every other node, both ways, until
    /// the returned guard drops.
    pub fn isolate(&self, i: usize) -> Partition {
        let others: Vec<usize> = (0..self.nodes.len()).filter(|j| *j != i).collect();
        self.cut(&[i], &others)
    }

    /// Cuts the Raft traffic between the nodes of `side` and those of `other`, both
    /// ways: packets from one side's address to the other side's Raft ports are dropped.
    pub fn cut(&self, side: &[usize], other: &[usize]) -> Partition {
        let mut partition = Partition { rules: Vec::new() };
        for a in side {
            for b in other {
                for (from, to) in [(*a, *b), (*b, *a)] {
                    let rule = vec![
                        "OUTPUT".to_string(),
                        "-s".into(),
                        self.nodes[from].host.clone(),
                        "-d".into(),
                        self.nodes[to].host.clone(),
                        "-p".into(),
                        "tcp".into(),
                        "--dport".into(),
                        self.nodes[to].raft_port.to_string(),
                        "-m".into(),
                        "comment".into(),
                        "--comment".into(),
                        "tessera-test".into(),
                        "-j".into(),
                        "DROP".into(),
                    ];
                    partition.add(rule);
                }
            }
        }
        partition
    }
}

/// iptables rules cutting nodes off; deleted when dropped.
pub struct Partition {
    rules: Vec<Vec<String>>,
}

fn iptables() -> &'static str {
    if std::path::Path::new("/usr/sbin/iptables").exists() {
        "/usr/sbin/iptables"
    } else {
        "iptables"
    }
}

impl Partition {
    fn add(&mut self, rule: Vec<String>) {
        let output = Command::new(iptables())
            .arg("-I")
            .args(&rule)
            .output()
            .expect("run iptables (scripts/setup.sh installs it)");
        assert!(
            output.status.success(),
            "iptables -I {}: {}",
            rule.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        self.rules.push(rule);
    }

    /// Removes the rules now (the network heals).
    pub fn heal(self) {}
}

impl Drop for Partition {
    fn drop(&mut self) {
        for rule in self.rules.drain(..) {
            let deleted = Command::new(iptables())
                .arg("-D")
                .args(&rule)
                .status()
                .map(|status| status.success())
                .unwrap_or(false);
            if !deleted {
                eprintln!("could not delete iptables rule: {}", rule.join(" "));
            }
        }
    }
}

/// Counts the rows of `table` through `client`.
pub fn count(client: &mut postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .expect("count")
        .get(0)
}

/// Whether the error is 40001 (certainly not applied; retry) .
pub fn is_retryable(error: &postgres::Error) -> bool {
    error.code() == Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE)
}

/// Whether the error is 40003 (outcome unknown).
pub fn is_outcome_unknown(error: &postgres::Error) -> bool {
    error.code() == Some(&postgres::error::SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN)
}
