//! Whole-cluster behaviour: the real `tessera` binary as separate processes on
//! 127.0.0.1, 127.0.0.2 and 127.0.0.3, talked to through the PostgreSQL protocol.
//! Every process is killed when its guard drops, even when a test fails.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

/// Longest wait for a node to report ready.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// One node: its process and addresses.
struct NodeProcess {
    id: u64,
    process: Option<common::ChildGuard>,
    sql_port: u16,
    host: String,
}

/// A three-node cluster in temporary directories.
struct Cluster {
    nodes: Vec<NodeProcess>,
    members: String,
    raft_ports: Vec<u16>,
    _data: tempfile::TempDir,
}

fn free_port(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

impl Cluster {
    fn start(size: u64) -> Cluster {
        let data = tempfile::tempdir().expect("temp dir");
        let hosts: Vec<String> = (1..=size).map(|id| format!("127.0.0.{id}")).collect();
        let raft_ports: Vec<u16> = hosts.iter().map(|host| free_port(host)).collect();
        let members = hosts
            .iter()
            .zip(&raft_ports)
            .enumerate()
            .map(|(i, (host, port))| format!("{}={host}:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            members,
            raft_ports,
            _data: data,
        };
        for (i, host) in hosts.into_iter().enumerate() {
            let node = NodeProcess {
                id: i as u64 + 1,
                process: None,
                sql_port: free_port(&host),
                host,
            };
            cluster.nodes.push(node);
        }
        for i in 0..cluster.nodes.len() {
            cluster.launch(i);
        }
        cluster
    }

    /// Starts node `i` (again) from its data directory and waits until it is ready.
    fn launch(&mut self, i: usize) {
        let node = &self.nodes[i];
        let data = self._data.path().join(format!("node{}", node.id));
        let process = common::spawn_until_ready(
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(["server", "--data"])
                .arg(&data)
                .args(["--listen", &format!("{}:{}", node.host, node.sql_port)])
                .args(["--node-id", &node.id.to_string()])
                .args([
                    "--raft-listen",
                    &format!("{}:{}", node.host, self.raft_ports[i]),
                ])
                .args(["--initial-members", &self.members])
                .env("RUST_LOG", "info,openraft=warn"),
            STARTUP_LIMIT,
            &format!("node {}", node.id),
            Some("ERROR"),
        );
        self.nodes[i].process = Some(process);
    }

    /// SIGKILLs node `i`.
    fn kill(&mut self, i: usize) {
        self.nodes[i].process = None;
    }

    fn connect(&self, i: usize) -> postgres::Client {
        let node = &self.nodes[i];
        let url = format!(
            "host={} port={} user=tester dbname=tessera connect_timeout=10",
            node.host, node.sql_port
        );
        postgres::Client::connect(&url, postgres::NoTls).expect("connect")
    }

    /// The index of the node leading the data group, as SHOW CLUSTER on node `via` says.
    fn data_leader(&self, via: usize) -> Option<usize> {
        let rows = self.connect(via).query("SHOW CLUSTER", &[]).ok()?;
        rows.iter()
            .find(|row| row.get::<_, Option<i64>>("group_id") == Some(1))
            .and_then(|row| row.get::<_, Option<i64>>("leader"))
            .map(|leader| leader as usize - 1)
    }
}

fn count(client: &mut postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .expect("count")
        .get(0)
}

/// DDL and DML made through any node reach every node: a table created on one node,
/// rows inserted through the others, read back through each at the default
/// (linearizable) level; SHOW CLUSTER lists every node with one leader per group.
#[test]
fn replicates_ddl_and_dml_through_any_node() {
    let cluster = Cluster::start(3);
    cluster
        .connect(1)
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v)")
        .expect("create");
    for i in 0..3 {
        let mut client = cluster.connect(i);
        for n in 0..10 {
            let id = (i * 10 + n) as i32;
            client
                .execute("INSERT INTO t VALUES ($1, $2)", &[&id, &format!("v{id}")])
                .expect("insert");
        }
    }
    for i in 0..3 {
        let mut client = cluster.connect(i);
        assert_eq!(count(&mut client, "t"), 30, "node {}", i + 1);
        let row = client
            .query_one("SELECT id FROM t WHERE v = 'v17'", &[])
            .expect("index read");
        assert_eq!(row.get::<_, i32>(0), 17);
    }
    let error = cluster
        .connect(2)
        .execute("INSERT INTO t VALUES (1, 'again')", &[])
        .expect_err("duplicate key");
    assert_eq!(
        error.code(),
        Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    let rows = cluster.connect(0).query("SHOW CLUSTER", &[]).expect("show");
    assert_eq!(rows.len(), 6, "three nodes, two groups each");
    for group in [0i64, 1] {
        let leaders = rows
            .iter()
            .filter(|row| row.get::<_, Option<i64>>("group_id") == Some(group))
            .filter(|row| row.get::<_, String>("role") == "leader")
            .count();
        assert_eq!(leaders, 1, "group {group}");
    }
}

/// Killing the data group's leader (SIGKILL): the others elect a new leader, writes
/// resume within the target bound, and every acknowledged write is still there, on
/// the survivors and on the killed node once it is restarted from its directory.
#[test]
fn writes_resume_after_the_leader_is_killed() {
    let mut cluster = Cluster::start(3);
    cluster
        .connect(0)
        .batch_execute("CREATE TABLE acked (id INT PRIMARY KEY)")
        .expect("create");
    let mut acknowledged = 0;
    for id in 0..20 {
        cluster
            .connect(id % 3)
            .execute("INSERT INTO acked VALUES ($1)", &[&(id as i32)])
            .expect("insert");
        acknowledged += 1;
    }
    let leader = cluster.data_leader(0).expect("a leader");
    let survivor = (leader + 1) % 3;
    cluster.kill(leader);
    let killed_at = Instant::now();
    let mut client = cluster.connect(survivor);
    let mut next = 1000;
    loop {
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "writes did not resume within 15 s"
        );
        match client.execute("INSERT INTO acked VALUES ($1)", &[&next]) {
            Ok(_) => {
                acknowledged += 1;
                break;
            }
            Err(error) => {
                // Only "retry" is acceptable here: the statement certainly did nothing.
                assert_eq!(
                    error.code(),
                    Some(&postgres::error::SqlState::T_R_SERIALIZATION_FAILURE),
                    "{error}"
                );
                next += 1;
            }
        }
    }
    let resumed_after = killed_at.elapsed();
    eprintln!(
        "writes resumed {} ms after the kill",
        resumed_after.as_millis()
    );
    assert!(resumed_after < Duration::from_secs(3), "{resumed_after:?}");
    for i in 0..3 {
        if i == leader {
            continue;
        }
        assert_eq!(count(&mut cluster.connect(i), "acked"), acknowledged);
    }
    cluster.launch(leader);
    let mut restarted = cluster.connect(leader);
    assert_eq!(count(&mut restarted, "acked"), acknowledged);
}
