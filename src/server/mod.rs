//! The server: `tessera server`, speaking the PostgreSQL wire protocol (v3) so that psql,
//! pgbench and PostgreSQL drivers connect to Tessera as to PostgreSQL.
//!
//! pgwire implements the protocol's messages and the SCRAM exchange; [`connection`] runs
//! each connection's message loop and its queries on its own session; [`wire`] converts
//! values and errors; [`auth`] holds the users, [`tls`] the certificate, [`frames`] the
//! message-size limit. Connections are limited (a client beyond the limit gets SQLSTATE
//! 53300, as from PostgreSQL), and SIGTERM or Ctrl-C shut the server down gracefully: it
//! stops accepting, ends every session (an open transaction is rolled back: it was
//! never written), closes the database and exits 0.
//!
//! Access: with no users configured the server trusts every client and may listen only
//! on a loopback address, like a development database. With `[[users]]` in the config
//! file every client must pass SCRAM-SHA-256, and any address may be used.

pub mod auth;
pub mod binary_array;
pub mod connection;
pub mod copy;
pub mod cork;
pub mod frames;
pub mod tls;
pub mod wire;

use crate::database::Database;
use crate::error::{Error, Result};
use crate::replica::cluster::ClusterReplica;
use crate::replica::raft::node::RaftNode;
use auth::{UserConfig, UserTable};
use connection::{Authentication, ServerShared};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tls::{Tls, TlsConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Default address: loopback only, PostgreSQL's port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5432";
/// Default limit on concurrent connections (PostgreSQL's `max_connections` default).
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// How the server logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Server settings, from flags and an optional TOML file (flags win).
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Database directory.
    pub data: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most concurrent client connections.
    pub max_connections: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Largest message body a client may send, in bytes.
    pub max_message_size: usize,
    /// Users who may log in with SCRAM-SHA-256; empty means trust (loopback only).
    pub users: Vec<UserConfig>,
    /// TLS certificate and key, when clients may (or must) encrypt.
    pub tls: Option<TlsConfig>,
    /// Defaults for session settings: `statement_timeout`, `idle_session_timeout`,
    /// `idle_in_transaction_session_timeout`.
    pub session_defaults: Vec<(String, String)>,
    /// Cluster membership, when this server is a node of a replicated cluster; `None`
    /// serves a single embedded database.
    pub cluster: Option<ClusterConfig>,
}

/// How a server takes part in a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id: a positive number, unique in the cluster, never reused.
    pub node_id: u64,
    /// Address of the Raft transport (`host:port`), listened on and told to peers.
    pub raft_listen: String,
    /// The members of a new cluster as `ID=HOST:PORT` (Raft addresses), the same list
    /// on every member; ignored once the node has joined.
    #[serde(default)]
    pub initial_members: Vec<String>,
    /// The Raft address of a member to join through, for a node added later.
    pub join: Option<String>,
    /// Leader heartbeat period in milliseconds (default 100).
    pub heartbeat_ms: Option<u64>,
    /// Shortest election timeout in milliseconds (default 250; the longest is twice it).
    pub election_timeout_ms: Option<u64>,
    /// Fewest entries between snapshots (default 5000); a snapshot also waits for a
    /// log half its size.
    pub snapshot_threshold: Option<u64>,
    /// Accept fault-injection commands meant for tests (`ALTER CLUSTER SET CLOCK
    /// RATE`). Never in production: a skewed clock breaks `lease` reads.
    #[serde(default)]
    pub test_faults: bool,
    /// How many data groups the cluster runs, 1 to 16 (default 1); the same on every
    /// member. Tables' shards are spread over them.
    pub data_groups: Option<u64>,
    /// How many nodes replicate each data group when the cluster forms, 1 to 7
    /// (default 3); with more nodes than this, each node hosts only its groups.
    pub replication_factor: Option<usize>,
}

impl ClusterConfig {
    /// The node's start-up settings.
    pub fn node_config(
        &self,
        data: &Path,
        sql_address: SocketAddr,
    ) -> Result<crate::replica::raft::node::NodeConfig> {
        use crate::replica::raft::node::{Bootstrap, NodeConfig, RaftSettings};
        if self.node_id == 0 {
            return Err(Error::InvalidParameterValue(
                "node_id must be a positive number".into(),
            ));
        }
        let bootstrap = match (&self.join, self.initial_members.is_empty()) {
            (Some(_), false) => {
                return Err(Error::InvalidParameterValue(
                    "give either initial members or an address to join, not both".into(),
                ))
            }
            (Some(address), true) => Bootstrap::Join(address.clone()),
            (None, false) => Bootstrap::InitialMembers(parse_members(&self.initial_members)?),
            (None, true) => Bootstrap::Restart,
        };
        if let Bootstrap::InitialMembers(members) = &bootstrap {
            let own = members
                .get(&self.node_id)
                .map(|node| node.raft_address.as_str());
            if own != Some(self.raft_listen.as_str()) {
                return Err(Error::InvalidParameterValue(format!(
                    "the initial members must list this node as {}={}",
                    self.node_id, self.raft_listen
                )));
            }
        }
        let mut settings = RaftSettings::default();
        if let Some(heartbeat) = self.heartbeat_ms {
            settings.heartbeat = std::time::Duration::from_millis(heartbeat);
        }
        if let Some(election) = self.election_timeout_ms {
            settings.election_timeout = std::time::Duration::from_millis(election);
        }
        if let Some(threshold) = self.snapshot_threshold {
            settings.snapshot_threshold = threshold;
            settings.logs_kept_after_snapshot = settings.logs_kept_after_snapshot.min(threshold);
        }
        Ok(NodeConfig {
            node_id: self.node_id,
            data_dir: data.to_path_buf(),
            raft_address: self.raft_listen.clone(),
            sql_address: sql_address.to_string(),
            bootstrap,
            settings,
            test_faults: self.test_faults,
            data_groups: self.data_groups.unwrap_or(1),
            replication_factor: self
                .replication_factor
                .unwrap_or(crate::replica::raft::placement::DEFAULT_REPLICATION_FACTOR),
        })
    }
}

/// Parses `ID=HOST:PORT` member entries (each may itself be a comma-separated list).
pub fn parse_members(
    entries: &[String],
) -> Result<std::collections::BTreeMap<u64, crate::replica::raft::types::Node>> {
    let mut members = std::collections::BTreeMap::new();
    for entry in entries.iter().flat_map(|entry| entry.split(',')) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let invalid = || {
            Error::InvalidParameterValue(format!(
                "invalid member \"{entry}\" (expected ID=HOST:PORT, e.g. 1=127.0.0.1:7001)"
            ))
        };
        let (id, address) = entry.split_once('=').ok_or_else(invalid)?;
        let id: u64 = id.trim().parse().map_err(|_| invalid())?;
        let address = address.trim();
        if id == 0 || address.parse::<SocketAddr>().is_err() {
            return Err(invalid());
        }
        // Every member must be given the same list, so no member's SQL address is in
        // it: each node reports its own.
        let node = crate::replica::raft::types::Node {
            raft_address: address.to_string(),
            sql_address: String::new(),
        };
        if members.insert(id, node).is_some() {
            return Err(Error::InvalidParameterValue(format!(
                "member {id} is listed twice"
            )));
        }
    }
    Ok(members)
}

/// The session settings a config file may give defaults for.
pub const SESSION_DEFAULTS: &[&str] = &[
    "statement_timeout",
    "idle_session_timeout",
    "idle_in_transaction_session_timeout",
];

impl ServerConfig {
    /// Settings with every default, serving `data` on `listen`.
    pub fn new(data: PathBuf, listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            data,
            listen,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            log_format: LogFormat::Human,
            max_message_size: frames::DEFAULT_MAX_MESSAGE_SIZE,
            users: Vec::new(),
            tls: None,
            session_defaults: Vec::new(),
            cluster: None,
        }
    }

    /// Merges a config file with command-line flags; a flag wins over the file.
    pub fn resolve(file: ConfigFile, flags: ServerFlags) -> Result<ServerConfig> {
        let listen = flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let data = flags
            .data
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from("./tessera-data"));
        let mut config = ServerConfig::new(data, parse_listen(&listen)?);
        config.max_connections = flags
            .max_connections
            .or(file.max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        config.log_format = flags.log_format.or(file.log_format).unwrap_or_default();
        config.max_message_size = file
            .max_message_size
            .unwrap_or(frames::DEFAULT_MAX_MESSAGE_SIZE);
        config.users = file.users;
        config.tls = file.tls;
        config.cluster = ClusterFlags::merge(flags.cluster, file.cluster)?;
        for (name, value) in [
            ("statement_timeout", file.statement_timeout),
            ("idle_session_timeout", file.idle_session_timeout),
            (
                "idle_in_transaction_session_timeout",
                file.idle_in_transaction_session_timeout,
            ),
        ] {
            if let Some(value) = value {
                config.session_defaults.push((name.to_string(), value));
            }
        }
        Ok(config)
    }
}

/// The command-line flags of `tessera server` that a config file can also set.
#[derive(Debug, Default)]
pub struct ServerFlags {
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// The cluster flags.
    pub cluster: ClusterFlags,
}

/// The cluster flags of `tessera server`; with any of them (or a `[cluster]` table) the
/// server is a cluster node.
#[derive(Debug, Default)]
pub struct ClusterFlags {
    /// `--node-id`.
    pub node_id: Option<u64>,
    /// `--raft-listen`.
    pub raft_listen: Option<String>,
    /// `--initial-members`.
    pub initial_members: Option<String>,
    /// `--join`.
    pub join: Option<String>,
    /// `--data-groups`.
    pub data_groups: Option<u64>,
    /// `--replication-factor`.
    pub replication_factor: Option<usize>,
}

impl ClusterFlags {
    /// Flags over the file's `[cluster]` table; `None` when neither makes a cluster.
    fn merge(flags: ClusterFlags, file: Option<ClusterConfig>) -> Result<Option<ClusterConfig>> {
        let any_flag = flags.node_id.is_some()
            || flags.raft_listen.is_some()
            || flags.initial_members.is_some()
            || flags.join.is_some()
            || flags.data_groups.is_some()
            || flags.replication_factor.is_some();
        if !any_flag && file.is_none() {
            return Ok(None);
        }
        let mut config = file.unwrap_or_default();
        if let Some(node_id) = flags.node_id {
            config.node_id = node_id;
        }
        if let Some(raft_listen) = flags.raft_listen {
            config.raft_listen = raft_listen;
        }
        if let Some(members) = flags.initial_members {
            config.initial_members = vec![members];
        }
        if flags.join.is_some() {
            config.join = flags.join;
        }
        if flags.data_groups.is_some() {
            config.data_groups = flags.data_groups;
        }
        if flags.replication_factor.is_some() {
            config.replication_factor = flags.replication_factor;
        }
        if config.node_id == 0 || config.raft_listen.is_empty() {
            return Err(Error::InvalidParameterValue(
                "a cluster node needs --node-id and --raft-listen (or node_id and raft_listen in [cluster])".into(),
            ));
        }
        Ok(Some(config))
    }
}

/// The TOML file's shape; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Database directory.
    pub data: Option<PathBuf>,
    /// Address to listen on, `host:port`.
    pub listen: Option<String>,
    /// Most concurrent client connections.
    pub max_connections: Option<usize>,
    /// `human` or `json`.
    pub log_format: Option<LogFormat>,
    /// Largest message a client may send, in bytes (default 64 MiB).
    pub max_message_size: Option<usize>,
    /// Default `statement_timeout` for every session (e.g. "30s").
    pub statement_timeout: Option<String>,
    /// Default `idle_session_timeout` (e.g. "10min").
    pub idle_session_timeout: Option<String>,
    /// Default `idle_in_transaction_session_timeout` (e.g. "1min").
    pub idle_in_transaction_session_timeout: Option<String>,
    /// Users who log in with SCRAM-SHA-256 (`[[users]]` tables).
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// TLS certificate and key (`[tls]` table).
    pub tls: Option<TlsConfig>,
    /// Cluster membership (`[cluster]` table).
    pub cluster: Option<ClusterConfig>,
}

impl ConfigFile {
    /// Reads and parses a config file; errors name the file and the problem.
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            Error::InvalidParameterValue(format!("invalid config file {}: {e}", path.display()))
        })
    }
}

/// Parses `host:port`.
pub fn parse_listen(text: &str) -> Result<SocketAddr> {
    text.parse().map_err(|_| {
        Error::InvalidParameterValue(format!(
            "invalid listen address \"{text}\" (expected host:port, e.g. 127.0.0.1:5432)"
        ))
    })
}

impl ServerConfig {
    /// Checks the settings that can be wrong before anything starts.
    pub fn validate(&self) -> Result<()> {
        if !self.listen.ip().is_loopback() && self.users.is_empty() {
            return Err(Error::InvalidParameterValue(format!(
                "refusing to listen on {}: it is not a loopback address and no authentication is configured, \
                 so anyone who can reach it could connect as any user. Either listen on a loopback address \
                 (--listen 127.0.0.1:5432), or declare users in the config file (--config FILE) with a \
                 password verifier made by `tessera hash-password`:\n\n  [[users]]\n  name = \"alice\"\n  \
                 password = \"SCRAM-SHA-256$4096:...\"\n\nand preferably a [tls] table with cert and key files",
                self.listen
            )));
        }
        if self.max_message_size < 1024 {
            return Err(Error::InvalidParameterValue(
                "max_message_size must be at least 1024 bytes".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::InvalidParameterValue(
                "max_connections must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(config: ServerConfig) -> Result<()> {
    config.validate()?;
    // Panics reach the log (JSON when asked) rather than raw stderr. A panic inside a
    // connection's task ends only that connection.
    std::panic::set_hook(Box::new(|info| tracing::error!(%info, "panic")));
    let tls = config.tls.as_ref().map(Tls::load).transpose()?;
    let authentication = if config.users.is_empty() {
        Authentication::Trust
    } else {
        let users = UserTable::new(&config.users)?;
        Authentication::scram(users, tls.as_ref().map(|t| t.certificate_pem.as_slice()))?
    };
    if !config.listen.ip().is_loopback() && tls.is_none() {
        tracing::warn!(listen = %config.listen, "listening beyond loopback without TLS: passwords are safe (SCRAM), but queries and results travel unencrypted");
    }
    // A cluster node's Raft groups run on a runtime of their own (two workers: this
    // is one process among others on small machines), apart from the connections.
    let node_runtime = match &config.cluster {
        Some(_) => Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("tessera-raft")
                .build()?,
        ),
        None => None,
    };
    let (database, node) = match (&config.cluster, &node_runtime) {
        (Some(cluster), Some(runtime)) => {
            let node_config = cluster.node_config(&config.data, config.listen)?;
            let node = runtime.block_on(RaftNode::start(node_config))?;
            tracing::info!(node_id = cluster.node_id, raft_listen = %cluster.raft_listen, "cluster node started");
            let replica = ClusterReplica::new(Arc::clone(&node), runtime.handle().clone());
            (Database::cluster(replica)?, Some(node))
        }
        _ => (Database::open(&config.data)?, None),
    };
    let outcome = serve_database(config, database, tls, authentication);
    if let (Some(node), Some(runtime)) = (node, node_runtime) {
        runtime.block_on(node.shutdown());
    }
    outcome
}

/// Serves `database` until SIGTERM or Ctrl-C.
fn serve_database(
    config: ServerConfig,
    database: Database,
    tls: Option<Tls>,
    authentication: Authentication,
) -> Result<()> {
    // A bad default (say, statement_timeout = "soon") is found now, not per connection.
    let mut probe = database.session();
    for (name, value) in &config.session_defaults {
        probe.set_default(name, value)?;
    }
    drop(probe);
    let shared = Arc::new(ServerShared {
        database,
        registry: Arc::new(connection::CancelRegistry::default()),
        authentication: Arc::new(authentication),
        tls_required: tls.as_ref().is_some_and(|t| t.required),
        tls: tls.map(|t| t.acceptor),
        max_message_size: config.max_message_size,
        session_defaults: config.session_defaults.clone(),
        stop: CancellationToken::new(),
    });
    // This runtime only accepts connections and watches for signals; each connection
    // runs on a thread of its own (see `spawn_connection`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("tessera-server")
        .build()?;
    runtime.block_on(serve(config, shared))
}

async fn serve(config: ServerConfig, shared: Arc<ServerShared>) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Io(format!("cannot listen on {}: {e}", config.listen)))?;
    let authentication = match *shared.authentication {
        Authentication::Trust => "trust",
        Authentication::Scram { .. } => "scram-sha-256",
    };
    tracing::info!(listen = %config.listen, data = %config.data.display(), max_connections = config.max_connections, authentication, tls = shared.tls.is_some(), "tessera server ready");
    let slots = Arc::new(Semaphore::new(config.max_connections));
    // Every connection thread holds a sender; the channel closes when the last ends.
    let (alive, mut all_ended) = tokio::sync::mpsc::channel::<()>(1);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let ticket = ConnectionTicket { _slot: slot, _alive: alive.clone() };
                        if let Err(e) = spawn_connection(socket, peer, Arc::clone(&shared), ticket) {
                            tracing::warn!(%peer, error = %e, "cannot start a thread for the connection");
                        }
                    }
                    Err(_) => {
                        tracing::warn!(%peer, limit = config.max_connections, "connection refused: too many clients");
                        tokio::spawn(refuse_too_many(socket));
                    }
                }
            }
            signal = &mut shutdown => {
                let open_connections = config.max_connections - slots.available_permits();
                tracing::info!(signal, open_connections, "shutting down");
                break;
            }
        }
    }
    drop(listener);
    drop(alive);
    end_connections(&shared, &mut all_ended).await;
    drop(shared);
    tracing::info!("shut down cleanly");
    Ok(())
}

/// What a connection's thread holds while it runs: its place under the connection
/// limit, and a sender whose drop tells shutdown that it ended.
struct ConnectionTicket {
    _slot: tokio::sync::OwnedSemaphorePermit,
    _alive: tokio::sync::mpsc::Sender<()>,
}

/// Stack of a connection's thread: the parser, planner and executors recurse over
/// expressions; sqlparser bounds the nesting, this leaves room for it.
const CONNECTION_STACK_SIZE: usize = 4 * 1024 * 1024;

/// Serves one connection on a thread of its own with a single-threaded runtime for its
/// socket and timers. The engine is synchronous, so statements run inline on that
/// thread: no hand-over between threads per statement (which cost most of a point
/// SELECT's time when statements ran under `block_in_place` on a shared runtime), and a
/// long statement holds only its own connection, as a PostgreSQL backend does, while
/// the operating system shares the cores. `max_connections` bounds the threads.
fn spawn_connection(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<ServerShared>,
    ticket: ConnectionTicket,
) -> std::io::Result<()> {
    let socket = socket.into_std()?;
    std::thread::Builder::new()
        .name("tessera-connection".into())
        .stack_size(CONNECTION_STACK_SIZE)
        .spawn(move || {
            let _ticket = ticket;
            let span = tracing::info_span!("connection", %peer);
            let _entered = span.enter();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the connection's runtime");
                    return;
                }
            };
            tracing::debug!("connected");
            let outcome = runtime.block_on(async move {
                let socket = TcpStream::from_std(socket)?;
                connection::serve(socket, shared).await
            });
            if let Err(e) = outcome {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        })?;
    Ok(())
}

/// How long shutdown waits for sessions to end before exiting anyway.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);
/// How often shutdown interrupts running statements while it waits.
const SHUTDOWN_INTERRUPT_EVERY: Duration = Duration::from_millis(100);

/// Ends every session: idle ones get PostgreSQL's FATAL 57P01 ("terminating connection
/// due to administrator command"); running statements are interrupted, again and again
/// until their connections end, so a statement that started after the first interrupt
/// cannot hold shutdown up. An open transaction was only ever buffered in memory, so
/// dropping its session is the rollback.
async fn end_connections(shared: &ServerShared, all_ended: &mut tokio::sync::mpsc::Receiver<()>) {
    shared.stop.cancel();
    let give_up = tokio::time::Instant::now() + SHUTDOWN_WAIT;
    while tokio::time::Instant::now() < give_up {
        shared.registry.interrupt_all();
        if let Ok(None) = tokio::time::timeout(SHUTDOWN_INTERRUPT_EVERY, all_ended.recv()).await {
            return;
        }
    }
    tracing::warn!(waited = ?SHUTDOWN_WAIT, "sessions still running at shutdown; exiting anyway");
}

/// Tells a client beyond the connection limit why, as PostgreSQL does (FATAL 53300).
async fn refuse_too_many(mut socket: TcpStream) {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "53300"),
        (b'M', "sorry, too many clients already"),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    message.extend_from_slice(&body);
    let _ = socket.write_all(&message).await;
    let _ = socket.shutdown().await;
}

/// Resolves with the name of the first shutdown signal received.
async fn shutdown_signal() -> &'static str {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-loopback address is refused with advice; loopback passes.
    #[test]
    fn non_loopback_listen_is_refused() {
        let mut config =
            ServerConfig::new(PathBuf::from("x"), parse_listen("0.0.0.0:5432").unwrap());
        let error = config.validate().unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
        assert!(
            error.to_string().contains("tessera hash-password"),
            "{error}"
        );
        config.listen = parse_listen("127.0.0.2:5432").unwrap();
        config.validate().unwrap();
        // With users declared, any address is allowed.
        config.listen = parse_listen("0.0.0.0:5432").unwrap();
        config.users.push(UserConfig {
            name: "alice".into(),
            password: "SCRAM-SHA-256$4096:x$y:z".into(),
        });
        config.validate().unwrap();
        assert!(parse_listen("localhost").is_err());
    }

    /// Config files parse, and unknown keys are errors, not silently ignored.
    #[test]
    fn config_file_parsing() {
        let file: ConfigFile = toml::from_str(
            "listen = \"127.0.0.1:6000\"\nmax_connections = 5\nlog_format = \"json\"",
        )
        .unwrap();
        assert_eq!(file.listen.as_deref(), Some("127.0.0.1:6000"));
        assert_eq!(file.log_format, Some(LogFormat::Json));
        assert!(toml::from_str::<ConfigFile>("listne = \"x\"").is_err());
        let file: ConfigFile = toml::from_str(
            "idle_session_timeout = \"10min\"\nmax_message_size = 4096\n\
             [tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nrequired = true\n\
             [[users]]\nname = \"alice\"\npassword = \"SCRAM-SHA-256$...\"\n",
        )
        .unwrap();
        let config = ServerConfig::resolve(
            file,
            ServerFlags {
                max_connections: Some(7),
                ..ServerFlags::default()
            },
        )
        .unwrap();
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.max_message_size, 4096);
        assert_eq!(config.users[0].name, "alice");
        assert!(config.tls.as_ref().unwrap().required);
        assert_eq!(
            config.session_defaults,
            vec![("idle_session_timeout".to_string(), "10min".to_string())]
        );
    }
}
