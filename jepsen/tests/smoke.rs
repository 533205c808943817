//! End to end, on real clusters with real faults: a short register run under leader
//! partitions must be linearizable, a bank run under crashes must conserve money, and
//! the negative control — `stale` reads under leader partitions — must be caught as not
//! linearizable within a few seeds, proof that the suite sees what it claims to see. Needs root, iptables and the `tessera` binary
//! built next to the test (`cargo nextest run --workspace` builds it).

use std::path::PathBuf;
use std::time::Duration;
use tessera_jepsen::checker::Validity;
use tessera_jepsen::nemesis::Kind;
use tessera_jepsen::runner::{run, Options, Outcome};
use tessera_jepsen::workload;

/// `target/<profile>/tessera`, next to this test's `deps` directory.
fn tessera() -> PathBuf {
    let me = std::env::current_exe().expect("test executable");
    let profile = me
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile.join("tessera");
    assert!(
        binary.exists(),
        "{} is missing: build it (cargo build --bin tessera) or run the whole workspace's tests",
        binary.display()
    );
    binary
}

fn options(read_consistency: &str, seed: u64, store: &std::path::Path) -> Options {
    Options {
        workload: workload::Kind::Register,
        nemeses: vec![Kind::PartitionLeader],
        nodes: 3,
        data_groups: 1,
        time: Duration::from_secs(20),
        seed,
        read_consistency: read_consistency.into(),
        concurrency: 8,
        rate: 150.0,
        interval: Duration::from_secs(4),
        binary: tessera(),
        store: store.to_path_buf(),
        check_budget: Duration::from_secs(60),
    }
}

/// Fails unless the run was judged valid, naming the verdict and the run directory.
fn assert_valid(outcome: &Outcome) {
    assert_eq!(
        outcome.verdict.valid,
        Validity::Valid,
        "{} ({})",
        outcome.verdict.summary(),
        outcome.directory.display()
    );
}

/// Linearizable reads and every write stay linearizable while the leader is cut off
/// again and again.
#[test]
fn registers_stay_linearizable_under_leader_partitions() {
    let store = tempfile::tempdir().expect("store");
    let outcome = run(&options("linearizable", 1, store.path())).expect("run");
    assert_valid(&outcome);
    assert!(outcome.verdict.stats.get("faults").copied().unwrap_or(0) > 0);
    // The run directory holds what a person reads: the fault schedule among it.
    for file in [
        "test.json",
        "history.jsonl",
        "faults.jsonl",
        "verdict.json",
        "timeline.svg",
    ] {
        assert!(outcome.directory.join(file).exists(), "no {file}");
    }
    let schedule = std::fs::read_to_string(outcome.directory.join("faults.jsonl")).expect("read");
    assert!(schedule.contains("start-partition"), "{schedule}");
    assert!(
        schedule
            .lines()
            .all(|line| line.contains("\"process\":\"nemesis\"")),
        "client events in the schedule: {schedule}"
    );
}

/// Transfers stay atomic and money is conserved while nodes are SIGKILLed and
/// restarted.
#[test]
fn bank_totals_hold_under_crashes() {
    let store = tempfile::tempdir().expect("store");
    let mut bank = options("linearizable", 1, store.path());
    bank.workload = workload::Kind::Bank;
    bank.nemeses = vec![Kind::Kill, Kind::KillLeader];
    let outcome = run(&bank).expect("run");
    assert_valid(&outcome);
}

/// Transfers between accounts spread over five data groups on five nodes, each group
/// on three of them (so most transfers commit across groups by two-phase commit, and
/// most reads and writes reach groups the client's node does not host), stay atomic
/// and conserve money while the leader of a random group is killed or cut off.
#[test]
fn bank_totals_hold_across_groups_under_leader_faults() {
    let store = tempfile::tempdir().expect("store");
    let mut bank = options("linearizable", 1, store.path());
    bank.workload = workload::Kind::Bank;
    bank.nodes = 5;
    bank.data_groups = 5;
    bank.nemeses = vec![Kind::KillLeader, Kind::PartitionLeader];
    let outcome = run(&bank).expect("run");
    assert_valid(&outcome);
    assert!(outcome.verdict.stats.get("faults").copied().unwrap_or(0) > 0);
}

/// List appends over four data groups on three nodes (every node hosts every group,
/// so write transactions start unconfirmed and most commit across groups) stay
/// snapshot-isolated and lose no acknowledged append while group leaders are killed or
/// cut off and coordinators die holding commits between prepare and decision. It
/// caught a lost update: a snapshot confirmed between a cross-group
/// commit's decision and its resolve in a written row's group.
#[test]
fn appends_across_groups_lose_nothing_under_leader_faults() {
    let store = tempfile::tempdir().expect("store");
    let mut append = options("linearizable", 1, store.path());
    append.workload = workload::Kind::Append;
    append.data_groups = 4;
    append.nemeses = vec![
        Kind::KillLeader,
        Kind::PartitionLeader,
        Kind::KillCoordinator,
    ];
    let outcome = run(&append).expect("run");
    assert_valid(&outcome);
    assert!(outcome.verdict.stats.get("faults").copied().unwrap_or(0) > 0);
}

/// The negative control: `stale` reads on a cut-off old leader return values the
/// majority has overwritten, and the checker must say so within three seeds.
#[test]
fn stale_reads_under_leader_partitions_are_caught() {
    let store = tempfile::tempdir().expect("store");
    let mut verdicts = Vec::new();
    for seed in 1..=3 {
        let outcome = run(&options("stale", seed, store.path())).expect("run");
        if outcome.verdict.valid == Validity::Invalid {
            let anomaly = &outcome.verdict.anomalies[0];
            assert_eq!(anomaly.kind, "nonlinearizable");
            return;
        }
        verdicts.push(outcome.verdict.summary());
    }
    panic!("stale reads went unnoticed in three seeds: {verdicts:#?}");
}
