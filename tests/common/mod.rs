//! Helpers shared by the integration tests: a throwaway PostgreSQL server (the anchor
//! that SQL results are checked against) and process cleanup guards.
#![allow(dead_code)]

pub mod cluster;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL server in a temporary directory on a free 127.0.0.1 port, stopped (and
/// its directory removed) when dropped, even if the test panics.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// TCP port it listens on.
    pub port: u16,
}

fn postgres_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|bin| bin.join("initdb").exists())
        .expect("PostgreSQL is not installed (scripts/setup.sh installs it)")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (PostgreSQL refuses
/// to run as root).
fn run_tool(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    let program = bin.join(tool);
    let output = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&program)
            .args(args)
            .output()
    } else {
        Command::new(&program).args(args).output()
    };
    output.unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl Postgres {
    /// Creates and starts a server (fsync off: it is a reference for results, not for
    /// durability).
    pub fn start() -> Postgres {
        let bin = postgres_bin();
        let dir = tempfile::Builder::new()
            .prefix("tessera-pg-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "cannot hand the temp dir to the postgres user"
            );
        }
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf-8 path");
        let output = run_tool(
            &bin,
            "initdb",
            &[
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            dir.path().display()
        );
        let log = dir.path().join("log");
        let output = run_tool(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data,
                "-o",
                &options,
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        let server = Postgres { dir, bin, port };
        assert!(
            output.status.success(),
            "PostgreSQL did not start: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        server
    }

    /// A connection string for database `name`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={name}",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        // Stops exactly this server (pg_ctl reads its postmaster.pid), never by name.
        let _ = run_tool(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

/// Kills a child process (by pid) when dropped, so a failing test leaves nothing running.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a `tessera server` command and waits for its "ready" log line rather than
/// probing the port (which would take a connection slot); the log is drained from then
/// on so the server never blocks on it, and lines with `echo_marker` (if any) are
/// echoed to the test's output, labelled `label`.
pub fn spawn_until_ready(
    command: &mut Command,
    limit: std::time::Duration,
    label: &str,
    echo_marker: Option<&'static str>,
) -> ChildGuard {
    let discarded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    spawn_logged(command, limit, label, echo_marker, discarded, 0)
}

/// [`spawn_until_ready`], also keeping the last `keep` log lines in `log`.
pub fn spawn_logged(
    command: &mut Command,
    limit: std::time::Duration,
    label: &str,
    echo_marker: Option<&'static str>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    keep: usize,
) -> ChildGuard {
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tessera server");
    let mut process = ChildGuard(child);
    let stderr = process.0.stderr.take().expect("stderr");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let owned_label = label.to_string();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("tessera server ready") {
                let _ = ready_tx.send(());
            }
            if echo_marker.is_some_and(|marker| line.contains(marker)) {
                eprintln!("{owned_label}: {line}");
            }
            if keep > 0 {
                let mut lines = log.lock().unwrap_or_else(|poison| poison.into_inner());
                if lines.len() >= keep {
                    lines.remove(0);
                }
                lines.push(line);
            }
        }
    });
    ready_rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{label} did not report ready in time"));
    process
}
