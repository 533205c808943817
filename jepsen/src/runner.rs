//! One test run: start a cluster, run concurrent clients under a nemesis, heal, read
//! everything back, check, and leave a directory a person can read.
//!
//! The run directory holds `test.json` (what was asked), `history.jsonl` (written as it
//! happens, nemesis events included), `faults.jsonl` (the nemesis's events alone: the
//! fault schedule), each node's data and log (`nN.log`), `verdict.json` and
//! `timeline.svg`. Phases: setup (cluster, schema), the workload for
//! `time` with faults drawn on the seeded schedule, heal (every rule removed, every
//! node resumed and running), recovery (every node answers a linearizable read), final
//! reads of every key used, then the check. A run whose faults never happened, or
//! whose final reads failed, is `unknown`, never valid.

use crate::checker::{Validity, Verdict};
use crate::client::{self, Completion};
use crate::cluster::Cluster;
use crate::history::{self, EventType, Process, Recorder};
use crate::nemesis::{Kind, Nemesis};
use crate::net::Network;
use crate::timeline;
use crate::workload::{self, Setup, Workload};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Mixed into the seed for the nemesis's random stream ("nemesis" in ASCII).
const NEMESIS_STREAM: u64 = 0x006e_656d_6573_6973;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The workload.
    pub workload: workload::Kind,
    /// Faults to draw from; empty: none.
    pub nemeses: Vec<Kind>,
    /// Cluster size.
    pub nodes: u64,
    /// Data groups the cluster runs (tables' shards spread over them, so most
    /// transactions span groups when there are several).
    pub data_groups: u64,
    /// How long the workload runs.
    pub time: Duration,
    /// Seeds the operations and the fault schedule.
    pub seed: u64,
    /// `linearizable`, `lease` or `stale`.
    pub read_consistency: String,
    /// Concurrent client processes.
    pub concurrency: usize,
    /// Operations per second, all clients together.
    pub rate: f64,
    /// Mean time between fault changes.
    pub interval: Duration,
    /// The `tessera` binary.
    pub binary: PathBuf,
    /// Where run directories go.
    pub store: PathBuf,
    /// Longest the checker may search.
    pub check_budget: Duration,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The run's directory.
    pub directory: PathBuf,
    /// The checker's verdict.
    pub verdict: Verdict,
}

/// Runs a test; errors are set-up failures (no cluster, no iptables), not verdicts.
pub fn run(options: &Options) -> Result<Outcome, String> {
    check_sizes(options)?;
    let workload = Workload::new(options.workload);
    let directory = run_directory(options)?;
    std::fs::write(directory.join("test.json"), test_description(options))
        .map_err(|error| format!("{}: {error}", directory.display()))?;
    let network = if options.nemeses.iter().any(|kind| kind.needs_network()) {
        Network::new(&format!("tessera-jepsen-{}", std::process::id()))
            .map_err(|error| format!("cannot inject partitions, so will not run: {error}"))?
    } else {
        Network::untouched()
    };
    let extra = format!("data_groups = {}", options.data_groups);
    let cluster = Cluster::start(&options.binary, options.nodes, &directory, &extra)?;
    let addresses: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| node.sql_address())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the client runtime: {error}"))?;
    runtime.block_on(setup(&addresses[0], &workload.setup()))?;
    let history_file = std::fs::File::create(directory.join("history.jsonl"))
        .map_err(|error| format!("{}: {error}", directory.display()))?;
    let recorder = Recorder::new(
        Box::new(std::io::BufWriter::new(history_file)),
        Instant::now(),
    );
    let cluster = Mutex::new(cluster);
    let network = Mutex::new(network);
    let stop = AtomicBool::new(false);
    let find_leader = |group| runtime.block_on(group_leader(&addresses, group));
    let admin = |node: usize, statement: &str| runtime.block_on(admin(&addresses[node], statement));
    let nemesis = Nemesis {
        kinds: options.nemeses.clone(),
        interval: options.interval,
        cluster: &cluster,
        network: &network,
        recorder: &recorder,
        find_leader: &find_leader,
        data_groups: options.data_groups,
        admin: &admin,
    };
    let faults = std::thread::scope(|scope| {
        let faults = scope.spawn(|| {
            if nemesis.kinds.is_empty() {
                return Ok(0);
            }
            // Its own stream, so the schedule does not depend on how many operations ran.
            let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ NEMESIS_STREAM);
            nemesis.run(&mut rng, &stop)
        });
        let workers = Workers {
            options,
            addresses: &addresses,
            recorder: &recorder,
            workload: &workload,
        };
        let outcome = runtime.block_on(workers.run());
        stop.store(true, Ordering::SeqCst);
        let faults = faults
            .join()
            .map_err(|_| "the nemesis panicked".to_string())?;
        outcome.and(faults)
    })?;
    nemesis.heal_all()?;
    let table = workload.setup().table;
    let recovered = runtime.block_on(wait_until_all_answer(&addresses, table));
    let final_ok = runtime.block_on(final_reads(&addresses, &workload, &recorder, options));
    let events = recorder.events();
    let linearizable_reads = options.read_consistency != "stale";
    let mut verdict = match history::pair(&events) {
        Ok(operations) => workload.check(&operations, linearizable_reads, options.check_budget),
        Err(error) => return Err(format!("the recorded history is malformed: {error}")),
    };
    add_vacuity_notes(&mut verdict, options, faults, recovered, final_ok);
    std::fs::write(
        directory.join("verdict.json"),
        serde_json::to_string_pretty(&verdict).unwrap_or_default(),
    )
    .map_err(|error| format!("{}: {error}", directory.display()))?;
    std::fs::write(directory.join("timeline.svg"), timeline::svg(&events))
        .map_err(|error| format!("{}: {error}", directory.display()))?;
    std::fs::write(directory.join("faults.jsonl"), fault_schedule(&events))
        .map_err(|error| format!("{}: {error}", directory.display()))?;
    Ok(Outcome { directory, verdict })
}

/// The nemesis's events alone, one JSON line each (also in the history): the fault
/// schedule as it happened, for reading without the clients' operations around it.
fn fault_schedule(events: &[history::Event]) -> String {
    events
        .iter()
        .filter(|event| !matches!(event.process, Process::Client(_)))
        .filter_map(|event| serde_json::to_string(event).ok())
        .map(|line| line + "\n")
        .collect()
}

/// Refuses cluster sizes the harness or a fault cannot work with.
fn check_sizes(options: &Options) -> Result<(), String> {
    if !(1..=MAX_NODES).contains(&options.nodes) {
        return Err(format!("--nodes must be 1 to {MAX_NODES}"));
    }
    if !(1..=MAX_DATA_GROUPS).contains(&options.data_groups) {
        return Err(format!("--data-groups must be 1 to {MAX_DATA_GROUPS}"));
    }
    for kind in &options.nemeses {
        if options.nodes < kind.min_nodes() {
            return Err(format!(
                "the {} nemesis needs at least {} nodes",
                kind.name(),
                kind.min_nodes()
            ));
        }
    }
    Ok(())
}

/// Most nodes a run starts (127.0.0.11 onwards).
const MAX_NODES: u64 = 9;
/// Most data groups a cluster runs (Tessera's own bound).
const MAX_DATA_GROUPS: u64 = 16;

/// A run that proves nothing is `unknown`: faults asked for never happened, the
/// cluster did not recover, or the final reads failed.
fn add_vacuity_notes(
    verdict: &mut Verdict,
    options: &Options,
    faults: u64,
    recovered: bool,
    final_ok: bool,
) {
    let mut notes = Vec::new();
    if !options.nemeses.is_empty() && faults == 0 {
        notes.push(
            "no fault was injected (the run was shorter than the nemesis interval?)".to_string(),
        );
    }
    if !recovered {
        notes.push("the cluster did not answer on every node after healing".to_string());
    }
    if !final_ok {
        notes.push("the final reads did not all succeed".to_string());
    }
    if verdict.valid == Validity::Valid && !notes.is_empty() {
        verdict.valid = Validity::Unknown;
    }
    verdict.notes.extend(notes);
    verdict.stats.insert("faults".into(), faults);
}

fn run_directory(options: &Options) -> Result<PathBuf, String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let faults: Vec<&str> = options
        .nemeses
        .iter()
        .map(|kind| {
            Kind::ALL
                .iter()
                .find(|(_, k)| k == kind)
                .map_or("?", |(name, _)| *name)
        })
        .collect();
    let name = format!(
        "{stamp}-{}-{}-{}-seed{}",
        options.workload.name(),
        if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join("+")
        },
        options.read_consistency,
        options.seed
    );
    let directory = options.store.join(name);
    std::fs::create_dir_all(&directory)
        .map_err(|error| format!("{}: {error}", directory.display()))?;
    Ok(directory)
}

fn test_description(options: &Options) -> String {
    let description = json!({
        "workload": options.workload.name(),
        "nemeses": options.nemeses.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>(),
        "nodes": options.nodes,
        "data_groups": options.data_groups,
        "time_seconds": options.time.as_secs_f64(),
        "seed": options.seed,
        "read_consistency": options.read_consistency,
        "concurrency": options.concurrency,
        "rate": options.rate,
        "interval_seconds": options.interval.as_secs_f64(),
        "tessera": options.binary.display().to_string(),
    });
    serde_json::to_string_pretty(&description).unwrap_or_default()
}

/// Creates the schema through node `address`, retrying while the cluster settles.
async fn setup(address: &str, schema: &Setup) -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(60) {
        match try_setup(address, schema).await {
            Ok(()) => return Ok(()),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("could not create the schema: {last}"))
}

/// One attempt; a row insert that finds its rows there (23505: an earlier attempt
/// got through) counts as done.
async fn try_setup(address: &str, schema: &Setup) -> Result<(), String> {
    let client = client::connect(address, "linearizable").await?;
    client
        .batch_execute(schema.create)
        .await
        .map_err(|error| error.to_string())?;
    for statement in &schema.rows {
        match client.batch_execute(statement).await {
            Ok(()) => {}
            Err(error) if error.code().is_some_and(|c| c.code() == "23505") => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(())
}

/// Data group `group`'s leader (node id) as some node reports it.
async fn group_leader(addresses: &[String], group: u64) -> Option<u64> {
    let group = i64::try_from(group).ok()?;
    for address in addresses {
        let Ok(client) = client::connect(address, "stale").await else {
            continue;
        };
        let query = client.query("SHOW CLUSTER", &[]);
        let Ok(Ok(rows)) = tokio::time::timeout(Duration::from_secs(2), query).await else {
            continue;
        };
        let leader = rows.iter().find_map(|row| {
            let role: Option<String> = row.try_get("role").ok()?;
            let node: Option<i64> = row.try_get("node_id").ok()?;
            let row_group: Option<i64> = row.try_get("group_id").ok()?;
            (row_group == Some(group) && role.as_deref() == Some("leader")).then_some(node?)
        });
        if let Some(node) = leader {
            return u64::try_from(node).ok();
        }
    }
    None
}

/// Longest an administrative statement may take: a removal moves the node's group
/// replicas to other nodes first (each caught up, often by snapshot) and its
/// leaderships before that.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs an administrative statement (`ALTER CLUSTER …`) on the node at `address`.
async fn admin(address: &str, statement: &str) -> Result<(), String> {
    let client = client::connect(address, "stale").await?;
    match tokio::time::timeout(ADMIN_TIMEOUT, client.batch_execute(statement)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("{address}: {statement}: {error}")),
        Err(_) => Err(format!("{address}: {statement}: no answer")),
    }
}

/// Waits (at most a minute) until every node answers a linearizable read of `table`.
async fn wait_until_all_answer(addresses: &[String], table: &str) -> bool {
    let started = Instant::now();
    let query = format!("SELECT count(*) FROM {table}");
    for address in addresses {
        loop {
            if started.elapsed() > Duration::from_secs(60) {
                return false;
            }
            if let Ok(client) = client::connect(address, "linearizable").await {
                let read = client.query_opt(&query, &[]);
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), read).await {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    true
}

/// Runs the workload's final reads at `linearizable`, through the nodes in turn, as a
/// process of its own; returns whether every one succeeded.
async fn final_reads(
    addresses: &[String],
    workload: &Workload,
    recorder: &Recorder,
    options: &Options,
) -> bool {
    let process = 1_000_000 + options.concurrency as u64;
    let mut all_ok = true;
    for (i, op) in workload.final_reads().iter().enumerate() {
        let address = &addresses[i % addresses.len()];
        let Ok(mut client) = client::connect(address, "linearizable").await else {
            all_ok = false;
            continue;
        };
        let node = Some(address.clone());
        let record = |kind, value, error| {
            recorder.record(
                kind,
                Process::Client(process),
                op.f,
                value,
                node.clone(),
                error,
            )
        };
        if record(EventType::Invoke, op.value.clone(), None).is_err() {
            return false;
        }
        let (completion, _) = workload.invoke(&mut client, op).await;
        let written = match completion {
            Completion::Ok(value) => record(EventType::Ok, value, None),
            Completion::Fail(why) | Completion::Info(why) => {
                all_ok = false;
                record(EventType::Fail, op.value.clone(), Some(why))
            }
        };
        if written.is_err() {
            return false;
        }
    }
    all_ok
}

/// The client processes of a run.
struct Workers<'a> {
    options: &'a Options,
    addresses: &'a [String],
    recorder: &'a Recorder,
    workload: &'a Workload,
}

impl Workers<'_> {
    /// Runs every worker until the run's time is up; fails if the history cannot be
    /// written.
    async fn run(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.options.time;
        let rng = Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(self.options.seed)));
        let mut tasks = Vec::new();
        for worker in 0..self.options.concurrency {
            tasks.push(self.worker(worker as u64, deadline, Arc::clone(&rng)));
        }
        let results = futures::future::join_all(tasks).await;
        results.into_iter().collect()
    }

    async fn worker(
        &self,
        first_process: u64,
        deadline: Instant,
        rng: Arc<Mutex<ChaCha8Rng>>,
    ) -> Result<(), String> {
        let concurrency = self.options.concurrency as u64;
        let pause = Duration::from_secs_f64(concurrency as f64 / self.options.rate.max(0.1));
        let mut process = first_process;
        let mut client: Option<tokio_postgres::Client> = None;
        while Instant::now() < deadline {
            let jitter = {
                let mut rng = rng.lock().unwrap_or_else(|poison| poison.into_inner());
                pause.mul_f64(rng.random_range(0.5..1.5))
            };
            tokio::time::sleep(jitter).await;
            // Each worker keeps to one node, whatever process it has become (as in
            // Jepsen, where a process's node is its number modulo the node count and
            // a new process is the old one plus the concurrency).
            let address = &self.addresses[(first_process % self.addresses.len() as u64) as usize];
            let mut connected = match client.take() {
                Some(connected) => connected,
                None => match client::connect(address, &self.options.read_consistency).await {
                    Ok(connected) => connected,
                    // Nothing was sent: no operation to record.
                    Err(_) => continue,
                },
            };
            let op = {
                let mut rng = rng.lock().unwrap_or_else(|poison| poison.into_inner());
                self.workload.next(&mut rng)
            };
            let Some(op) = op else {
                return Ok(());
            };
            let node = Some(address.clone());
            let record = |kind, value, error| {
                self.recorder
                    .record(
                        kind,
                        Process::Client(process),
                        op.f,
                        value,
                        node.clone(),
                        error,
                    )
                    .map_err(|error| format!("cannot write the history: {error}"))
            };
            record(EventType::Invoke, op.value.clone(), None)?;
            let (completion, usable) = self.workload.invoke(&mut connected, &op).await;
            match completion {
                Completion::Ok(value) => {
                    record(EventType::Ok, value, None)?;
                }
                Completion::Fail(why) => {
                    record(EventType::Fail, op.value.clone(), Some(why))?;
                }
                Completion::Info(why) => {
                    record(EventType::Info, op.value.clone(), Some(why))?;
                    process += concurrency;
                }
            }
            if usable {
                client = Some(connected);
            }
        }
        Ok(())
    }
}
