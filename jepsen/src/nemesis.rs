//! Faults on a seeded schedule: partitions, crashes, pauses.
//!
//! The nemesis alternates: wait, start a fault, wait, stop it — each wait drawn from
//! the run's seeded generator around the interval, each fault drawn from the kinds
//! asked for — until the run's time is up; then everything is healed (rules removed,
//! paused nodes resumed, killed nodes restarted). Each start and stop is recorded in
//! the history as an `info` event of process `"nemesis"` with what it did, so the
//! checkers and the timeline know when the faults were.

use crate::cluster::Cluster;
use crate::history::{EventType, Process, Recorder};
use crate::net::Network;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Cut the data group's leader off from every other node.
    PartitionLeader,
    /// Cut one random node off.
    PartitionOne,
    /// Split the nodes into a random majority and minority.
    PartitionHalves,
    /// SIGKILL a random node; restart it when the fault stops.
    Kill,
    /// SIGKILL the data leader; restart it when the fault stops.
    KillLeader,
    /// SIGSTOP the data leader (long enough for an election); SIGCONT when it stops.
    PauseLeader,
    /// Make the data leader's clock run at a twentieth of real time (its lease seems
    /// to last twenty times too long), then cut it off: a clock only matters to a
    /// leader that is deposed while it still trusts its lease. Healed and reset when
    /// it stops. `lease` reads may then be stale — outside their guarantee — and
    /// nothing else may break.
    ClockSkewLeader,
}

impl Kind {
    /// Every kind, by its command-line name.
    pub const ALL: [(&'static str, Kind); 7] = [
        ("partition-leader", Kind::PartitionLeader),
        ("partition-one", Kind::PartitionOne),
        ("partition-halves", Kind::PartitionHalves),
        ("kill", Kind::Kill),
        ("kill-leader", Kind::KillLeader),
        ("pause-leader", Kind::PauseLeader),
        ("clock-skew-leader", Kind::ClockSkewLeader),
    ];

    /// Whether it needs iptables.
    pub fn needs_network(self) -> bool {
        matches!(
            self,
            Kind::PartitionLeader
                | Kind::PartitionOne
                | Kind::PartitionHalves
                | Kind::ClockSkewLeader
        )
    }

    fn name(self) -> &'static str {
        Kind::ALL
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("?", |(name, _)| name)
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(text: &str) -> Result<Kind, String> {
        Kind::ALL
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|(name, _)| *name).collect();
                format!("unknown nemesis {text}; one of {}", names.join(", "))
            })
    }
}

/// A fault in place, to undo.
#[derive(Debug)]
enum Active {
    Cut,
    Killed(usize),
    Paused(usize),
    Skewed(usize),
}

/// Drives faults until `stop` is set; shares the cluster and network with the run.
pub struct Nemesis<'a> {
    /// The kinds to draw from.
    pub kinds: Vec<Kind>,
    /// Mean time between fault changes.
    pub interval: Duration,
    /// The cluster.
    pub cluster: &'a Mutex<Cluster>,
    /// The network.
    pub network: &'a Mutex<Network>,
    /// The history.
    pub recorder: &'a Recorder,
    /// Finds the data group's leader (index), asking the nodes over SQL.
    pub find_leader: &'a (dyn Fn() -> Option<usize> + Sync),
    /// Sets a node's clock rate (`ALTER CLUSTER SET CLOCK RATE` on that node).
    pub set_clock_rate: &'a (dyn Fn(usize, f64) -> Result<(), String> + Sync),
}

/// How fast a skewed leader's clock runs.
const SKEWED_RATE: f64 = 0.05;

impl Nemesis<'_> {
    /// Runs faults until `stop`, then undoes the one in place (the run heals the rest
    /// with [`Nemesis::heal_all`]). Returns how many faults began.
    pub fn run(&self, rng: &mut ChaCha8Rng, stop: &AtomicBool) -> Result<u64, String> {
        let mut started = 0;
        let mut active: Option<Active> = None;
        while !stop.load(Ordering::SeqCst) {
            let wait = self.interval.mul_f64(rng.random_range(0.5..1.5));
            if sleep_unless(stop, wait) {
                break;
            }
            match active.take() {
                Some(fault) => self.undo(fault)?,
                None => {
                    let kind = self.kinds[rng.random_range(0..self.kinds.len())];
                    if let Some(fault) = self.start(kind, rng)? {
                        active = Some(fault);
                        started += 1;
                    }
                }
            }
        }
        if let Some(fault) = active {
            self.undo(fault)?;
        }
        Ok(started)
    }

    fn record(&self, f: &str, value: serde_json::Value) {
        // A history that cannot be written fails the run where the workers write.
        let _ = self.recorder.record(
            EventType::Info,
            Process::Named("nemesis".into()),
            f,
            value,
            None,
            None,
        );
    }

    fn start(&self, kind: Kind, rng: &mut ChaCha8Rng) -> Result<Option<Active>, String> {
        let size = self.lock_cluster().nodes.len();
        let leader = match kind {
            Kind::PartitionLeader
            | Kind::KillLeader
            | Kind::PauseLeader
            | Kind::ClockSkewLeader => match (self.find_leader)() {
                Some(leader) => Some(leader),
                None => {
                    self.record(
                        "skip",
                        json!({"kind": kind.name(), "why": "no leader known"}),
                    );
                    return Ok(None);
                }
            },
            _ => None,
        };
        let random_node = rng.random_range(0..size);
        let fault = match kind {
            Kind::PartitionLeader | Kind::PartitionOne => {
                let alone = leader.unwrap_or(random_node);
                let others: Vec<usize> = (0..size).filter(|&i| i != alone).collect();
                let cluster = self.lock_cluster();
                self.lock_network().cut(&cluster, &[alone], &others)?;
                self.record(
                    "start-partition",
                    json!({"kind": kind.name(), "components": [[alone + 1], others.iter().map(|i| i + 1).collect::<Vec<_>>()]}),
                );
                Active::Cut
            }
            Kind::PartitionHalves => {
                let mut order: Vec<usize> = (0..size).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                let (minority, majority) = order.split_at(size / 2);
                let cluster = self.lock_cluster();
                self.lock_network()
                    .partition(&cluster, &[minority.to_vec(), majority.to_vec()])?;
                let ids = |side: &[usize]| side.iter().map(|i| i + 1).collect::<Vec<_>>();
                self.record(
                    "start-partition",
                    json!({"kind": kind.name(), "components": [ids(minority), ids(majority)]}),
                );
                Active::Cut
            }
            Kind::Kill | Kind::KillLeader => {
                let victim = leader.unwrap_or(random_node);
                self.lock_cluster().kill(victim);
                self.record("kill", json!({"kind": kind.name(), "node": victim + 1}));
                Active::Killed(victim)
            }
            Kind::PauseLeader => {
                let victim = leader.unwrap_or(random_node);
                self.lock_cluster().pause(victim);
                self.record("pause", json!({"kind": kind.name(), "node": victim + 1}));
                Active::Paused(victim)
            }
            Kind::ClockSkewLeader => {
                let victim = leader.unwrap_or(random_node);
                (self.set_clock_rate)(victim, SKEWED_RATE)?;
                let others: Vec<usize> = (0..size).filter(|&i| i != victim).collect();
                let cluster = self.lock_cluster();
                self.lock_network().cut(&cluster, &[victim], &others)?;
                self.record(
                    "skew-clock",
                    json!({"kind": kind.name(), "node": victim + 1, "rate": SKEWED_RATE, "cut_off": true}),
                );
                Active::Skewed(victim)
            }
        };
        Ok(Some(fault))
    }

    fn undo(&self, fault: Active) -> Result<(), String> {
        match fault {
            Active::Cut => {
                self.lock_network().heal()?;
                self.record("stop-partition", json!(null));
            }
            Active::Killed(node) => {
                self.lock_cluster().restart(node)?;
                self.record("restart", json!({"node": node + 1}));
            }
            Active::Paused(node) => {
                self.lock_cluster().resume(node);
                self.record("resume", json!({"node": node + 1}));
            }
            Active::Skewed(node) => {
                self.lock_network().heal()?;
                (self.set_clock_rate)(node, 1.0)?;
                self.record("reset-clock", json!({"node": node + 1}));
            }
        }
        Ok(())
    }

    /// Removes every rule, resumes every paused node, restarts every stopped one.
    pub fn heal_all(&self) -> Result<(), String> {
        self.lock_network().heal()?;
        let mut cluster = self.lock_cluster();
        for i in 0..cluster.nodes.len() {
            if cluster.is_paused(i) {
                cluster.resume(i);
            }
            if !cluster.nodes[i].is_running() {
                cluster.restart(i)?;
            }
        }
        drop(cluster);
        self.record("heal", json!(null));
        Ok(())
    }

    fn lock_cluster(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.cluster
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn lock_network(&self) -> std::sync::MutexGuard<'_, Network> {
        self.network
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Sleeps `wait` in short steps; returns true if `stop` was set meanwhile.
fn sleep_unless(stop: &AtomicBool, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(
            Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())),
        );
    }
    stop.load(Ordering::SeqCst)
}
