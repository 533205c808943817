//! `tessera-jepsen`: runs a test against a real cluster (`test`) or checks a recorded
//! history (`check`).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tessera_jepsen::checker::{Validity, Verdict};
use tessera_jepsen::history;
use tessera_jepsen::nemesis::Kind;
use tessera_jepsen::runner::{self, Options};
use tessera_jepsen::workload;

/// A Jepsen-style consistency suite for Tessera.
#[derive(Parser)]
#[command(name = "tessera-jepsen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Starts a cluster, runs the workload under faults, checks the history. Needs
    /// root and iptables for partitions.
    Test {
        /// What the clients do.
        #[arg(long, value_enum)]
        workload: Workload,
        /// Faults, comma-separated: partition-leader, partition-one, partition-halves,
        /// partition-majorities-ring, partition-bridge, kill, kill-leader,
        /// kill-majority, pause, pause-leader, clock-skew-leader, member; or none.
        #[arg(long, default_value = "none")]
        nemesis: String,
        /// Cluster size (1 to 9; the ring and bridge partitions need 5).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Data groups the cluster runs (1 to 16): with several, tables' shards spread
        /// over them and most transactions commit across groups.
        #[arg(long, default_value_t = 1)]
        data_groups: u64,
        /// Seconds of workload.
        #[arg(long, default_value_t = 30)]
        time: u64,
        /// Seeds the operations and the fault schedule.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// linearizable, lease or stale.
        #[arg(long, default_value = "linearizable")]
        read_consistency: String,
        /// Concurrent client processes.
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
        /// Operations per second, all clients together.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Mean seconds between fault changes.
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
        /// The tessera binary (default: next to this one).
        #[arg(long)]
        tessera: Option<PathBuf>,
        /// Where run directories go.
        #[arg(long, default_value = "jepsen/store")]
        store: PathBuf,
        /// Longest time the checker may search, in seconds.
        #[arg(long, default_value_t = 60)]
        check_limit: u64,
    },
    /// Checks a history file (JSON lines, Jepsen's format; see jepsen/README.md).
    Check {
        /// What the history is of, which decides the checker.
        #[arg(long, value_enum)]
        workload: Workload,
        /// Longest time the checker may search before answering `unknown`, in seconds.
        #[arg(long, default_value_t = 60)]
        time_limit: u64,
        /// The read level the history's reads ran at (`stale` reads need not see
        /// every acknowledged write).
        #[arg(long, default_value = "linearizable")]
        read_consistency: String,
        /// The history.
        history: PathBuf,
    },
}

/// The workloads.
#[derive(Clone, Copy, ValueEnum)]
enum Workload {
    /// Read, write and compare-and-set on independent registers: linearizability.
    Register,
    /// Transfers between accounts: totals conserved, no negative balance.
    Bank,
    /// Unique inserts and reads: nothing lost, nothing from nowhere, no stale read.
    Set,
    /// Elle-style list-append transactions: G0, G1a/b/c, G-single, G2-item, lost,
    /// duplicated and garbage elements.
    Append,
}

impl Workload {
    fn kind(self) -> workload::Kind {
        match self {
            Workload::Register => workload::Kind::Register,
            Workload::Bank => workload::Kind::Bank,
            Workload::Set => workload::Kind::Set,
            Workload::Append => workload::Kind::Append,
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Test {
            workload,
            nemesis,
            nodes,
            data_groups,
            time,
            seed,
            read_consistency,
            concurrency,
            rate,
            interval,
            tessera,
            store,
            check_limit,
        } => {
            let nemeses = match parse_nemeses(&nemesis) {
                Ok(nemeses) => nemeses,
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::from(3);
                }
            };
            let Some(binary) = tessera.or_else(default_tessera) else {
                eprintln!("no tessera binary next to this one: give --tessera PATH");
                return ExitCode::from(3);
            };
            let options = Options {
                workload: workload.kind(),
                nemeses,
                nodes,
                data_groups,
                time: Duration::from_secs(time),
                seed,
                read_consistency,
                concurrency,
                rate,
                interval: Duration::from_secs_f64(interval),
                binary,
                store,
                check_budget: Duration::from_secs(check_limit),
            };
            match runner::run(&options) {
                Ok(outcome) => {
                    println!("run directory: {}", outcome.directory.display());
                    report(&outcome.verdict)
                }
                Err(error) => {
                    eprintln!("the test could not run: {error}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Check {
            workload,
            time_limit,
            read_consistency,
            history,
        } => check(
            workload,
            &history,
            read_consistency != "stale",
            Duration::from_secs(time_limit),
        ),
    }
}

fn parse_nemeses(text: &str) -> Result<Vec<Kind>, String> {
    if text == "none" {
        return Ok(Vec::new());
    }
    text.split(',').map(|name| name.trim().parse()).collect()
}

/// `tessera` in the directory of this executable (both come out of one cargo build).
fn default_tessera() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let candidate = me.parent()?.join("tessera");
    candidate.exists().then_some(candidate)
}

/// Prints the verdict; the exit status is 0 for valid, 1 for invalid, 2 for unknown.
fn report(verdict: &Verdict) -> ExitCode {
    println!("{}", verdict.summary());
    match verdict.valid {
        Validity::Valid => ExitCode::SUCCESS,
        Validity::Invalid => ExitCode::from(1),
        Validity::Unknown => ExitCode::from(2),
    }
}

/// Checks a history file; 3 when it cannot be read.
fn check(workload: Workload, path: &Path, linearizable_reads: bool, budget: Duration) -> ExitCode {
    let operations = match history::read(path).and_then(|events| history::pair(&events)) {
        Ok(operations) => operations,
        Err(error) => {
            eprintln!("cannot check {}: {error}", path.display());
            return ExitCode::from(3);
        }
    };
    let verdict = tessera_jepsen::workload::Workload::new(workload.kind()).check(
        &operations,
        linearizable_reads,
        budget,
    );
    report(&verdict)
}
