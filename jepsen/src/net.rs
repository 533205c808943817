//! Network partitions: iptables rules dropping Raft traffic between nodes' 127.0.0.x
//! addresses.
//!
//! A cut between nodes A and B is two `OUTPUT` rules: packets from A's address to B's
//! Raft port, and from B's to A's, are dropped (a silent black hole, as a real
//! partition is: connections stall and time out). Rules name the Raft ports, so runs
//! and tests on other ports are never cut, and carry a comment naming this run. Every
//! rule added is deleted on [`Network::heal`] and when the network is dropped; the
//! harness refuses to run when it cannot add and remove a rule (no silent fault-free
//! run).

use crate::cluster::Cluster;
use std::process::Command;

/// The iptables rules this run added.
#[derive(Debug)]
pub struct Network {
    comment: String,
    rules: Vec<Vec<String>>,
}

fn iptables() -> &'static str {
    if std::path::Path::new("/usr/sbin/iptables").exists() {
        "/usr/sbin/iptables"
    } else {
        "iptables"
    }
}

fn run_iptables(action: &str, rule: &[String]) -> Result<(), String> {
    let output = Command::new(iptables())
        .arg("-w")
        .arg(action)
        .args(rule)
        .output()
        .map_err(|error| {
            format!("cannot run iptables (install it: apt-get install -y iptables): {error}")
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {action} {}: {}",
            rule.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Network {
    /// A network whose rules carry `comment`; checks that a rule can be added and
    /// removed here, or says why not.
    pub fn new(comment: &str) -> Result<Network, String> {
        let mut network = Network {
            comment: comment.to_string(),
            rules: Vec::new(),
        };
        // A rule no packet matches (port 9 on 127.0.0.254 is nobody's Raft port).
        network.add(rule("127.0.0.254", "127.0.0.254", 9, comment))?;
        network.heal()?;
        Ok(network)
    }

    /// A network the run will not cut (no partition nemesis): nothing to check.
    pub fn untouched() -> Network {
        Network {
            comment: String::new(),
            rules: Vec::new(),
        }
    }

    fn add(&mut self, rule: Vec<String>) -> Result<(), String> {
        run_iptables("-I", &rule)?;
        self.rules.push(rule);
        Ok(())
    }

    /// Cuts every node of `side` off from every node of `other`, both ways.
    pub fn cut(
        &mut self,
        cluster: &Cluster,
        side: &[usize],
        other: &[usize],
    ) -> Result<(), String> {
        for &a in side {
            for &b in other {
                for (from, to) in [(a, b), (b, a)] {
                    let (from, to) = (&cluster.nodes[from], &cluster.nodes[to]);
                    self.add(rule(
                        &from.host,
                        &to.host,
                        to.raft_port,
                        &self.comment.clone(),
                    ))?;
                }
            }
        }
        Ok(())
    }

    /// Splits the nodes into components that only talk among themselves.
    pub fn partition(
        &mut self,
        cluster: &Cluster,
        components: &[Vec<usize>],
    ) -> Result<(), String> {
        for (i, side) in components.iter().enumerate() {
            for other in &components[i + 1..] {
                self.cut(cluster, side, other)?;
            }
        }
        Ok(())
    }

    /// Whether any cut is in place.
    pub fn is_cut(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Deletes every rule added; reports the first that could not be deleted (after
    /// trying them all).
    pub fn heal(&mut self) -> Result<(), String> {
        let mut first_error = None;
        for rule in self.rules.drain(..) {
            if let Err(error) = run_iptables("-D", &rule) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The rule dropping packets from `from` to `to`'s Raft port.
fn rule(from: &str, to: &str, port: u16, comment: &str) -> Vec<String> {
    [
        "OUTPUT",
        "-s",
        from,
        "-d",
        to,
        "-p",
        "tcp",
        "--dport",
        &port.to_string(),
        "-m",
        "comment",
        "--comment",
        comment,
        "-j",
        "DROP",
    ]
    .iter()
    .map(|part| part.to_string())
    .collect()
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(error) = self.heal() {
            eprintln!("could not remove an iptables rule: {error}");
        }
    }
}
