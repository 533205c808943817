//! Talking to a node: connections, time limits, and what an error means for the
//! history.
//!
//! Jepsen's rules: `ok` only when the server acknowledged; `fail` only when the
//! operation certainly had no effect — the server said so (SQLSTATE 40001: nothing was
//! applied), or nothing was sent; `info` for everything else (a timeout, a broken
//! connection, 40003 outcome unknown, any error the client cannot place). A read has
//! no effect, so a read that went wrong is a `fail`. Clients never retry on their own.

use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// Longest wait for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for one operation before it is given up on as unknown.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// How an operation ended, for the history.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// Acknowledged, with the value to record.
    Ok(serde_json::Value),
    /// Certainly without effect, and why.
    Fail(String),
    /// Unknown, and why.
    Info(String),
}

/// Connects to a node at `address` reading at `read_consistency`.
pub async fn connect(address: &str, read_consistency: &str) -> Result<Client, String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("bad address {address}"))?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse().map_err(|_| format!("bad port in {address}"))?)
        .user("jepsen")
        .dbname("tessera")
        .options(format!("-c read_consistency={read_consistency}"))
        .connect_timeout(CONNECT_TIMEOUT);
    let connecting = config.connect(NoTls);
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("connecting to {address} timed out"))?
        .map_err(|error| format!("connecting to {address}: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// What a failed statement means: `fail` if the server said nothing was done (or the
/// operation is a read), `info` otherwise.
pub fn classify(error: &tokio_postgres::Error, is_read: bool) -> Completion {
    let text = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    };
    let nothing_done = error
        .code()
        .is_some_and(|code| code.code() == "40001" || code.code() == "23505");
    if is_read || nothing_done {
        Completion::Fail(text)
    } else {
        Completion::Info(text)
    }
}

/// Runs `work` within [`OPERATION_TIMEOUT`]; a timeout is `fail` for a read and
/// `info` otherwise. Returns whether the connection is still usable (not after a
/// timeout or a broken connection).
pub async fn with_timeout<F>(work: F, is_read: bool) -> (Completion, bool)
where
    F: std::future::Future<Output = Result<serde_json::Value, tokio_postgres::Error>>,
{
    run_timed(async { work.await.map(Completion::Ok) }, is_read).await
}

/// [`with_timeout`] for work that decides its own completion (a transfer refused for
/// want of funds is a `fail` without any error).
pub async fn run_timed<F>(work: F, is_read: bool) -> (Completion, bool)
where
    F: std::future::Future<Output = Result<Completion, tokio_postgres::Error>>,
{
    match tokio::time::timeout(OPERATION_TIMEOUT, work).await {
        Ok(Ok(completion)) => (completion, true),
        Ok(Err(error)) => {
            let usable = !error.is_closed() && error.as_db_error().is_some();
            (classify(&error, is_read), usable)
        }
        Err(_) => {
            let why = format!("no answer within {} s", OPERATION_TIMEOUT.as_secs());
            if is_read {
                (Completion::Fail(why), false)
            } else {
                (Completion::Info(why), false)
            }
        }
    }
}
