//! The server: `tessera server`, speaking the PostgreSQL wire protocol (v3) so that psql,
//! pgbench and PostgreSQL drivers connect to Tessera as to PostgreSQL.
//!
//! pgwire implements the protocol's framing and message flows; [`connection`] runs each
//! connection's queries on its own session; [`wire`] converts values and errors.
//! Connections are limited (a client beyond the limit gets SQLSTATE 53300, as from
//! PostgreSQL), and SIGTERM or Ctrl-C shut the server down gracefully: it stops
//! accepting, ends every session (an open transaction is rolled back: it was never
//! written), closes the database and exits 0.

pub mod connection;
pub mod wire;

use crate::database::Database;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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
        if !self.listen.ip().is_loopback() {
            return Err(Error::InvalidParameterValue(format!(
                "refusing to listen on {}: it is not a loopback address and no authentication is configured. \
                 Password authentication (SCRAM-SHA-256) is not available yet, so listen on a loopback address \
                 such as 127.0.0.1 (--listen 127.0.0.1:5432)",
                self.listen
            )));
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
    let database = Database::open(&config.data)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tessera-server")
        .build()?;
    runtime.block_on(serve(config, database))
}

async fn serve(config: ServerConfig, database: Database) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Io(format!("cannot listen on {}: {e}", config.listen)))?;
    tracing::info!(listen = %config.listen, data = %config.data.display(), max_connections = config.max_connections, "tessera server ready");
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let cancel_registry = Arc::new(connection::CancelRegistry::default());
    let mut connections = JoinSet::new();
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
                        let handlers = Arc::new(connection::ConnectionHandlers::new(&database, &cancel_registry));
                        connections.spawn(async move {
                            let _slot = slot;
                            let span = tracing::info_span!("connection", %peer);
                            let _entered = span.enter();
                            tracing::debug!("connected");
                            drop(_entered);
                            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Err(_) => {
                        tracing::warn!(%peer, limit = config.max_connections, "connection refused: too many clients");
                        tokio::spawn(refuse_too_many(socket));
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            signal = &mut shutdown => {
                tracing::info!(signal, open_connections = connections.len(), "shutting down");
                break;
            }
        }
    }
    drop(listener);
    // Ending a connection's task drops its session; an open transaction was only ever
    // buffered in memory, so dropping it is the rollback.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    drop(database);
    tracing::info!("shut down cleanly");
    Ok(())
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
        let mut config = ServerConfig {
            data: PathBuf::from("x"),
            listen: parse_listen("0.0.0.0:5432").unwrap(),
            max_connections: 10,
            log_format: LogFormat::Human,
        };
        let error = config.validate().unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
        config.listen = parse_listen("127.0.0.2:5432").unwrap();
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
    }
}
