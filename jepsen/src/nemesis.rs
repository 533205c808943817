//! Faults on a seeded schedule: partitions, crashes, pauses, clock skew, membership
//! changes.
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
    /// Every node sees a majority, no two nodes the same one (5 nodes or more): each
    /// node keeps only its nearest neighbours on a random ring. Leaders of
    /// overlapping majorities can each believe they lead.
    PartitionMajoritiesRing,
    /// Two halves that cannot see each other, and one node that sees both (5 nodes or
    /// more): the bridge can be elected by either side.
    PartitionBridge,
    /// SIGKILL a random node; restart it when the fault stops.
    Kill,
    /// SIGKILL the data leader; restart it when the fault stops.
    KillLeader,
    /// Hold a random node's cross-group commits between their prepares and their
    /// decisions (`ALTER CLUSTER SET COMMIT PAUSE`), let them pile up there, then
    /// SIGKILL it: it dies coordinating commits whose participants are prepared and
    /// whose records are pending. The records decide; readers and cleaners resolve
    /// the rest. Restarted when the fault stops.
    KillCoordinator,
    /// SIGKILL a random majority (no quorum left: writes must stop, nothing
    /// acknowledged may be lost); restart them when the fault stops.
    KillMajority,
    /// SIGSTOP a random node (long enough for an election, were it the leader);
    /// SIGCONT when it stops.
    Pause,
    /// SIGSTOP the data leader (long enough for an election); SIGCONT when it stops.
    PauseLeader,
    /// Make the data leader's clock run at a twentieth of real time (its lease seems
    /// to last twenty times too long), then cut it off: a clock only matters to a
    /// leader that is deposed while it still trusts its lease. Healed and reset when
    /// it stops. `lease` reads may then be stale — outside their guarantee — and
    /// nothing else may break.
    ClockSkewLeader,
    /// Remove a random node from the cluster (`ALTER CLUSTER REMOVE NODE`, through
    /// another node), then stop it and delete its data; when the fault stops, the slot
    /// joins again as a new node (ids are never reused) and catches up.
    Member,
}

impl Kind {
    /// Every kind, by its command-line name.
    pub const ALL: [(&'static str, Kind); 13] = [
        ("partition-leader", Kind::PartitionLeader),
        ("partition-one", Kind::PartitionOne),
        ("partition-halves", Kind::PartitionHalves),
        ("partition-majorities-ring", Kind::PartitionMajoritiesRing),
        ("partition-bridge", Kind::PartitionBridge),
        ("kill", Kind::Kill),
        ("kill-leader", Kind::KillLeader),
        ("kill-coordinator", Kind::KillCoordinator),
        ("kill-majority", Kind::KillMajority),
        ("pause", Kind::Pause),
        ("pause-leader", Kind::PauseLeader),
        ("clock-skew-leader", Kind::ClockSkewLeader),
        ("member", Kind::Member),
    ];

    /// Whether it needs iptables.
    pub fn needs_network(self) -> bool {
        matches!(
            self,
            Kind::PartitionLeader
                | Kind::PartitionOne
                | Kind::PartitionHalves
                | Kind::PartitionMajoritiesRing
                | Kind::PartitionBridge
                | Kind::ClockSkewLeader
        )
    }

    /// The fewest nodes the fault makes sense on.
    pub fn min_nodes(self) -> u64 {
        match self {
            Kind::PartitionMajoritiesRing | Kind::PartitionBridge => 5,
            _ => 3,
        }
    }

    /// Its command-line name.
    pub fn name(self) -> &'static str {
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
    Killed(Vec<usize>),
    Paused(usize),
    Skewed(usize),
    Removed(usize),
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
    /// Finds the leader (node id) of a data group, asking the nodes over SQL.
    pub find_leader: &'a (dyn Fn(u64) -> Option<u64> + Sync),
    /// How many data groups the cluster runs: a leader fault picks one at random.
    pub data_groups: u64,
    /// Runs an administrative statement (`ALTER CLUSTER …`) on a slot's node.
    pub admin: &'a (dyn Fn(usize, &str) -> Result<(), String> + Sync),
}

/// How fast a skewed leader's clock runs.
const SKEWED_RATE: f64 = 0.05;
/// How long a coordinator about to be killed holds each cross-group commit between its
/// prepares and its decision.
const COMMIT_HOLD: Duration = Duration::from_millis(600);

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
            | Kind::ClockSkewLeader => {
                let group = rng.random_range(1..=self.data_groups.max(1));
                match self.leader_slot(group) {
                    Some(leader) => {
                        self.record(
                            "target",
                            json!({"kind": kind.name(), "group": group, "leader": leader + 1}),
                        );
                        Some(leader)
                    }
                    None => {
                        self.record(
                            "skip",
                            json!({"kind": kind.name(), "group": group, "why": "no leader known"}),
                        );
                        return Ok(None);
                    }
                }
            }
            _ => None,
        };
        let order = shuffled(size, rng);
        let victim = leader.unwrap_or(order[0]);
        let fault = match kind {
            Kind::PartitionLeader | Kind::PartitionOne => {
                let others: Vec<usize> = (0..size).filter(|&i| i != victim).collect();
                self.partition(kind, &[vec![victim], others])?
            }
            Kind::PartitionHalves => {
                let (minority, majority) = order.split_at(size / 2);
                self.partition(kind, &[minority.to_vec(), majority.to_vec()])?
            }
            Kind::PartitionBridge => {
                let (left, bridge, right) = bridge(&order);
                let cluster = self.lock_cluster();
                self.lock_network().cut(&cluster, &left, &right)?;
                self.record(
                    "start-partition",
                    json!({"kind": kind.name(), "components": [slots(&left), slots(&right)], "bridge": bridge + 1}),
                );
                Active::Cut
            }
            Kind::PartitionMajoritiesRing => {
                let cut = majorities_ring(&order);
                let cluster = self.lock_cluster();
                let mut network = self.lock_network();
                for (a, b) in &cut {
                    network.cut(&cluster, &[*a], &[*b])?;
                }
                let ring = slots(&order);
                self.record(
                    "start-partition",
                    json!({"kind": kind.name(), "ring": ring, "cut": cut.iter().map(|(a, b)| [a + 1, b + 1]).collect::<Vec<_>>()}),
                );
                Active::Cut
            }
            Kind::Kill | Kind::KillLeader => self.kill(kind, vec![victim]),
            Kind::KillCoordinator => return self.kill_coordinator(victim),
            Kind::KillMajority => self.kill(kind, order[..size / 2 + 1].to_vec()),
            Kind::Pause | Kind::PauseLeader => {
                self.lock_cluster().pause(victim);
                self.record("pause", json!({"kind": kind.name(), "node": victim + 1}));
                Active::Paused(victim)
            }
            Kind::ClockSkewLeader => {
                (self.admin)(
                    victim,
                    &format!("ALTER CLUSTER SET CLOCK RATE {SKEWED_RATE}"),
                )?;
                let others: Vec<usize> = (0..size).filter(|&i| i != victim).collect();
                let cluster = self.lock_cluster();
                self.lock_network().cut(&cluster, &[victim], &others)?;
                self.record(
                    "skew-clock",
                    json!({"kind": kind.name(), "node": victim + 1, "rate": SKEWED_RATE, "cut_off": true}),
                );
                Active::Skewed(victim)
            }
            Kind::Member => return self.remove(victim, order[1]),
        };
        Ok(Some(fault))
    }

    /// The slot of data group `group`'s leader.
    fn leader_slot(&self, group: u64) -> Option<usize> {
        let id = (self.find_leader)(group)?;
        self.lock_cluster().slot_of(id)
    }

    fn partition(&self, kind: Kind, components: &[Vec<usize>]) -> Result<Active, String> {
        let cluster = self.lock_cluster();
        self.lock_network().partition(&cluster, components)?;
        let components: Vec<Vec<usize>> = components.iter().map(|side| slots(side)).collect();
        self.record(
            "start-partition",
            json!({"kind": kind.name(), "components": components}),
        );
        Ok(Active::Cut)
    }

    fn kill(&self, kind: Kind, victims: Vec<usize>) -> Active {
        let mut cluster = self.lock_cluster();
        for &victim in &victims {
            cluster.kill(victim);
        }
        drop(cluster);
        self.record(
            "kill",
            json!({"kind": kind.name(), "nodes": slots(&victims)}),
        );
        Active::Killed(victims)
    }

    /// Holds slot `victim`'s cross-group commits mid-way for [`COMMIT_HOLD`], waits
    /// part of it so that commits are caught there, then kills the node. A node that
    /// refuses the hold (no test faults) is recorded and skipped.
    fn kill_coordinator(&self, victim: usize) -> Result<Option<Active>, String> {
        let hold = format!("ALTER CLUSTER SET COMMIT PAUSE {}", COMMIT_HOLD.as_millis());
        if let Err(error) = (self.admin)(victim, &hold) {
            self.record(
                "skip",
                json!({"kind": Kind::KillCoordinator.name(), "node": victim + 1, "why": error}),
            );
            return Ok(None);
        }
        self.record(
            "hold-commits",
            json!({"node": victim + 1, "millis": COMMIT_HOLD.as_millis() as u64}),
        );
        std::thread::sleep(COMMIT_HOLD / 2);
        Ok(Some(self.kill(Kind::KillCoordinator, vec![victim])))
    }

    /// Removes slot `victim`'s node through slot `via`, then stops it and wipes its
    /// data. A removal refused or unanswered (no leader, say) is recorded and skipped:
    /// the node stays, as it may or may not have been removed.
    fn remove(&self, victim: usize, via: usize) -> Result<Option<Active>, String> {
        let id = self.lock_cluster().nodes[victim].id;
        if let Err(error) = (self.admin)(via, &format!("ALTER CLUSTER REMOVE NODE {id}")) {
            self.record(
                "skip",
                json!({"kind": Kind::Member.name(), "node": victim + 1, "id": id, "why": error}),
            );
            return Ok(None);
        }
        self.lock_cluster().wipe(victim)?;
        self.record(
            "remove-node",
            json!({"kind": Kind::Member.name(), "node": victim + 1, "id": id, "via": via + 1}),
        );
        Ok(Some(Active::Removed(victim)))
    }

    /// Brings a removed slot back as a new node, joining through a running one.
    fn rejoin(&self, slot: usize) -> Result<(), String> {
        let mut cluster = self.lock_cluster();
        let via = (0..cluster.nodes.len())
            .find(|&i| i != slot && cluster.nodes[i].is_running())
            .ok_or("no running node to join through")?;
        let id = cluster.rejoin(slot, via)?;
        drop(cluster);
        self.record(
            "rejoin",
            json!({"node": slot + 1, "id": id, "via": via + 1}),
        );
        Ok(())
    }

    fn undo(&self, fault: Active) -> Result<(), String> {
        match fault {
            Active::Cut => {
                self.lock_network().heal()?;
                self.record("stop-partition", json!(null));
            }
            Active::Killed(victims) => {
                let mut cluster = self.lock_cluster();
                for &victim in &victims {
                    cluster.restart(victim)?;
                }
                drop(cluster);
                self.record("restart", json!({"nodes": slots(&victims)}));
            }
            Active::Paused(node) => {
                self.lock_cluster().resume(node);
                self.record("resume", json!({"node": node + 1}));
            }
            Active::Skewed(node) => {
                self.lock_network().heal()?;
                (self.admin)(node, "ALTER CLUSTER SET CLOCK RATE 1")?;
                self.record("reset-clock", json!({"node": node + 1}));
            }
            Active::Removed(node) => self.rejoin(node)?,
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

/// Slots 0..size in a random order.
fn shuffled(size: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..size).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    order
}

/// Slot numbers as people read them (1-based).
fn slots(side: &[usize]) -> Vec<usize> {
    side.iter().map(|i| i + 1).collect()
}

/// The pairs to cut so that, on the ring `order`, each node sees only the nodes within
/// `reach` places of it, `reach` being the least that makes that (itself included) a
/// majority: on 5 nodes each sees its two neighbours.
pub fn majorities_ring(order: &[usize]) -> Vec<(usize, usize)> {
    let size = order.len();
    let majority = size / 2 + 1;
    let reach = (majority - 1).div_ceil(2);
    let mut cut = Vec::new();
    for a in 0..size {
        for b in a + 1..size {
            let distance = (b - a).min(size - (b - a));
            if distance > reach {
                cut.push((order[a], order[b]));
            }
        }
    }
    cut
}

/// Splits `order` into two halves and the bridge between them (the middle node).
pub fn bridge(order: &[usize]) -> (Vec<usize>, usize, Vec<usize>) {
    let middle = (order.len() - 1) / 2;
    (
        order[..middle].to_vec(),
        order[middle],
        order[middle + 1..].to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Who each node still sees once `cut` is in place.
    fn visible(size: usize, cut: &[(usize, usize)]) -> Vec<BTreeSet<usize>> {
        (0..size)
            .map(|a| {
                (0..size)
                    .filter(|&b| !cut.contains(&(a, b)) && !cut.contains(&(b, a)))
                    .collect()
            })
            .collect()
    }

    /// On 5 and 7 nodes, every node sees a majority and no two see the same one.
    #[test]
    fn a_majorities_ring_gives_each_node_its_own_majority() {
        for size in [5, 7] {
            let order: Vec<usize> = (0..size).rev().collect();
            let seen = visible(size, &majorities_ring(&order));
            for (node, others) in seen.iter().enumerate() {
                assert!(others.len() > size / 2, "node {node} sees {others:?}");
                assert!(others.len() < size, "node {node} sees everyone");
            }
            let distinct: BTreeSet<_> = seen.iter().collect();
            assert_eq!(distinct.len(), size, "two nodes see the same majority");
        }
    }

    /// The bridge sees both halves; the halves do not see each other, and neither is
    /// a majority without the bridge.
    #[test]
    fn a_bridge_joins_two_minorities() {
        let (left, bridge_node, right) = bridge(&[4, 2, 0, 1, 3]);
        assert_eq!(
            (left.as_slice(), bridge_node, right.as_slice()),
            (&[4, 2][..], 0, &[1, 3][..])
        );
        let cut: Vec<(usize, usize)> = left
            .iter()
            .flat_map(|&a| right.iter().map(move |&b| (a, b)))
            .collect();
        let seen = visible(5, &cut);
        assert_eq!(seen[0].len(), 5);
        assert_eq!(seen[4], BTreeSet::from([4, 2, 0]));
        assert_eq!(seen[1], BTreeSet::from([1, 3, 0]));
    }
}
