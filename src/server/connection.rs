//! One client connection: pgwire drives the protocol, and these handlers run its simple
//! and extended queries on the connection's own [`Session`].
//!
//! The engine is synchronous (RocksDB calls block), and each connection has its own OS
//! thread (see [`super`]), so statements run inline on it: a long statement holds only
//! its own connection, as a PostgreSQL backend process does, and a CancelRequest, which
//! arrives on a connection (and thread) of its own, always gets to run.
//!
//! [`serve`] is the connection's message loop. It is ours rather than pgwire's
//! `process_socket` because a database must bound what a client can make it do: each
//! message's size is checked before it is buffered ([`super::frames`]), startup must
//! finish within [`AUTHENTICATION_TIMEOUT`], and a session idle beyond its
//! `idle_session_timeout` / `idle_in_transaction_session_timeout` is ended with the
//! FATAL error PostgreSQL sends. Message dispatch is still pgwire's `process_message`.

use super::auth::UserTable;
use super::cork::Cork;
use super::frames::{read_message, FrameLimit};
use super::wire::{self, error_info, user_error};
use crate::database::Database;
use crate::error::Error;
use crate::session::{
    CopyResult, Description, Identity, PreparedStatement, QueryResult, Session, TransactionStatus,
};
use crate::sql::execution::interrupt::Interrupt;
use crate::types::DataType;
use async_trait::async_trait;
use futures::sink::{Sink, SinkExt};
use futures::stream;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, StartupHandler,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type, METADATA_DATABASE, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{
    negotiate_tls, process_error, process_message, MaybeTls, PgWireMessageServerCodec,
};
use pgwire::tokio::TlsAcceptor;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// The `server_version` reported to clients: PostgreSQL 15 semantics, so psql and
/// drivers pick their PostgreSQL 15 code paths.
pub const SERVER_VERSION: &str = concat!("15.0 (Tessera ", env!("CARGO_PKG_VERSION"), ")");

static PID_GENERATOR: LazyLock<RandomPidSecretKeyGenerator> =
    LazyLock::new(RandomPidSecretKeyGenerator::default);

/// A statement parsed at the protocol's Parse step, with its description.
#[derive(Clone, Debug)]
pub struct ParsedStatement {
    prepared: PreparedStatement,
    description: Description,
}

/// Parses and describes statements for the extended query protocol.
pub struct StatementParser {
    database: Database,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = ParsedStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<ParsedStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = self.database.session();
        let prepared = session.prepare(sql).map_err(user_error)?;
        // Types the client declared win over inferred ones.
        let declared: Vec<Option<DataType>> = types
            .iter()
            .map(|t| t.as_ref().and_then(wire::data_type_of))
            .collect();
        let description = session.describe(&prepared, &declared).map_err(user_error)?;
        Ok(Some(ParsedStatement {
            prepared,
            description,
        }))
    }

    fn get_parameter_types(&self, statement: &ParsedStatement) -> PgWireResult<Vec<Type>> {
        Ok(statement
            .description
            .parameters
            .iter()
            .map(|t| t.map_or(Type::TEXT, wire::pg_type))
            .collect())
    }

    fn get_result_schema(
        &self,
        statement: &ParsedStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(wire::fields(&statement.description.columns, format))
    }
}

/// The query handlers of one connection.
pub struct Backend {
    session: Arc<Mutex<Session>>,
    parser: Arc<StatementParser>,
}

impl Backend {
    /// Runs `work` on the session, inline: this is the connection's own thread.
    pub(super) fn run<T>(&self, work: impl FnOnce(&mut Session) -> T) -> T {
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        work(&mut session)
    }
}

/// Turns a statement's result into the protocol response for it.
fn to_response(result: QueryResult, format: Option<&Format>) -> PgWireResult<Response> {
    match &result.copy {
        Some(CopyResult::WaitingForData { columns, .. }) => {
            return Ok(super::copy::copy_in_response(*columns))
        }
        Some(CopyResult::Data { columns, lines, .. }) => {
            return Ok(super::copy::copy_out_response(*columns, lines))
        }
        None => {}
    }
    if result.returns_rows {
        let schema = Arc::new(wire::fields(&result.columns, format));
        let mut encoder = DataRowEncoder::new(Arc::clone(&schema));
        let rows: Vec<_> = result
            .rows
            .iter()
            .map(|row| wire::encode_row(&mut encoder, &schema, row))
            .collect();
        let mut response = QueryResponse::new(schema, stream::iter(rows));
        if result.affected.is_some() {
            // A data change's RETURNING rows: its own tag (`INSERT 0`, `UPDATE`), to
            // which the protocol layer appends the row count, as for SELECT.
            let (command, _count) = result
                .tag
                .rsplit_once(' ')
                .unwrap_or((result.tag.as_str(), ""));
            response.set_command_tag(command);
        }
        return Ok(Response::Query(response));
    }
    let tag = Tag::new(&result.tag);
    Ok(match result.tag.as_str() {
        "BEGIN" => Response::TransactionStart(tag),
        "COMMIT" | "ROLLBACK" => Response::TransactionEnd(tag),
        _ => Response::Execution(tag),
    })
}

async fn send_notices<C>(client: &mut C, results: &[QueryResult]) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for notice in results.iter().flat_map(|r| &r.notices) {
        let fields = vec![
            (b'S', "NOTICE".to_string()),
            (b'V', "NOTICE".to_string()),
            (b'C', "00000".to_string()),
            (b'M', notice.clone()),
        ];
        client
            .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::new(
                fields,
            )))
            .await?;
    }
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (results, failure): (Vec<QueryResult>, Option<Error>) = self.run(|session| {
            let mut results = Vec::new();
            let outcome = session.execute_each(query, &[], |result| results.push(result));
            (results, outcome.err())
        });
        send_notices(client, &results).await?;
        let mut responses = Vec::with_capacity(results.len() + 1);
        for (position, result) in results.into_iter().enumerate() {
            // The first result's COPY TO data can go out at once, in order.
            let result = match position {
                0 => super::copy::send_copy_out(client, result).await?,
                _ => result,
            };
            responses.push(to_response(result, None)?);
        }
        if let Some(error) = failure {
            responses.push(Response::Error(Box::new(error_info(&error))));
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = ParsedStatement;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<ParsedStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = ParsedStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement: &StoredStatement<ParsedStatement> = &portal.statement;
        let params = wire::decode_parameters(portal, &statement.statement.description.parameters)?;
        let prepared = &statement.statement.prepared;
        let result = self
            .run(|session| session.execute_prepared(prepared, &params))
            .map_err(user_error)?;
        send_notices(client, std::slice::from_ref(&result)).await?;
        let result = super::copy::send_copy_out(client, result).await?;
        to_response(result, Some(&portal.result_column_format))
    }
}

/// Which session each (pid, secret key) pair of a live connection belongs to, so that a
/// CancelRequest — which arrives on a new connection — can reach the right statement.
#[derive(Default)]
pub struct CancelRegistry {
    connections: Mutex<HashMap<i32, (SecretKey, Arc<Interrupt>)>>,
}

impl CancelRegistry {
    /// Interrupts every running statement (at shutdown).
    pub fn interrupt_all(&self) {
        for (_, interrupt) in self.lock().values() {
            interrupt.cancel();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (SecretKey, Arc<Interrupt>)>> {
        self.connections
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[async_trait]
impl CancelHandler for CancelRegistry {
    async fn on_cancel_request(&self, request: CancelRequest) {
        // A wrong secret key is ignored silently, as PostgreSQL does. The same 4-byte
        // key may decode as an integer on one connection and as bytes on another.
        if let Some((secret, interrupt)) = self.lock().get(&request.pid) {
            if secret.eq_value(&request.secret_key) {
                tracing::info!(pid = request.pid, "cancel request");
                interrupt.cancel();
            }
        }
    }
}

/// How a client must prove who it is.
pub enum Authentication {
    /// Anyone may connect as any user (loopback servers without users configured).
    Trust,
    /// SCRAM-SHA-256 against the configured users.
    Scram {
        /// For plaintext connections.
        plain: Arc<ScramStartup>,
        /// For TLS connections: also offers SCRAM-SHA-256-PLUS (channel binding), which
        /// must never be offered without TLS (libpq refuses such a server).
        secure: Arc<ScramStartup>,
    },
}

type ScramStartup = SASLAuthStartupHandler<DefaultServerParameterProvider>;

impl Authentication {
    /// SCRAM over `users`; with TLS, SCRAM-SHA-256-PLUS (channel binding) is offered too.
    pub fn scram(users: UserTable, certificate_pem: Option<&[u8]>) -> crate::Result<Self> {
        let users: Arc<UserTable> = Arc::new(users);
        let handler = |scram: ScramAuth| {
            Arc::new(
                SASLAuthStartupHandler::new(Arc::new(server_parameters()))
                    .with_scram(scram)
                    .with_pid_secret_key_generator(
                        Arc::new(RandomPidSecretKeyGenerator::default()),
                    ),
            )
        };
        let plain = handler(ScramAuth::new(Arc::clone(&users) as _));
        let mut bound = ScramAuth::new(users as _);
        if let Some(pem) = certificate_pem {
            bound.configure_certificate(pem).map_err(|e| {
                Error::InvalidParameterValue(format!(
                    "the TLS certificate cannot be used for SCRAM channel binding: {e}"
                ))
            })?;
        }
        Ok(Authentication::Scram {
            plain,
            secure: handler(bound),
        })
    }
}

fn server_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = SERVER_VERSION.to_string();
    parameters
}

/// Startup: authenticates (trust or SCRAM), refuses plaintext when TLS is required,
/// gives the session its user and database, and registers the connection for cancel
/// requests until it is dropped.
pub struct Startup {
    authentication: Arc<Authentication>,
    tls_required: bool,
    registry: Arc<CancelRegistry>,
    session: Arc<Mutex<Session>>,
    interrupt: Arc<Interrupt>,
    pid: Mutex<Option<i32>>,
}

impl Drop for Startup {
    fn drop(&mut self) {
        if let Some(pid) = *self.pid.lock().unwrap_or_else(|poison| poison.into_inner()) {
            self.registry.lock().remove(&pid);
        }
    }
}

/// A FATAL error: the session ends after it is sent.
fn fatal_info(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("FATAL".to_string(), code.to_string(), message.into())
}

fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(fatal_info(code, message)))
}

impl Startup {
    /// Settings from the `options` startup parameter (libpq's `PGOPTIONS`, e.g.
    /// `-c read_consistency=lease`) become the session's defaults. Applied when the
    /// startup message arrives, before authentication completes, so a bad option
    /// refuses the connection with the reason, as in PostgreSQL.
    fn apply_options(&self, startup: &pgwire::messages::startup::Startup) -> PgWireResult<()> {
        let Some(options) = startup.parameters.get("options") else {
            return Ok(());
        };
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for (name, value) in startup_options(options).map_err(|e| fatal("22023", e))? {
            session
                .set_default(&name, &value)
                .map_err(|error| fatal(error.sqlstate(), error.to_string()))?;
        }
        Ok(())
    }

    /// Once the client is in: identity for the session, pid for cancel requests.
    fn on_ready<C: ClientInfo>(&self, client: &C) {
        let metadata = client.metadata();
        let user = metadata.get(METADATA_USER).cloned().unwrap_or_default();
        let database = metadata
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| user.clone());
        self.session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .set_identity(Identity { user, database });
        let (pid, secret_key) = client.pid_and_secret_key();
        self.registry
            .lock()
            .insert(pid, (secret_key, Arc::clone(&self.interrupt)));
        *self.pid.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(pid);
    }
}

/// The `name=value` settings of an `options` startup parameter: `-c name=value`,
/// `-cname=value` or `--name=value`, separated by spaces.
fn startup_options(options: &str) -> Result<Vec<(String, String)>, String> {
    let mut settings = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let assignment = if word == "-c" {
            words
                .next()
                .ok_or_else(|| "options: -c needs name=value".to_string())?
        } else if let Some(rest) = word.strip_prefix("-c").or_else(|| word.strip_prefix("--")) {
            rest
        } else {
            return Err(format!(
                "options: unsupported \"{word}\" (use -c name=value)"
            ));
        };
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("options: \"{assignment}\" is not name=value"))?;
        settings.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(settings)
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if self.tls_required && !client.is_secure() {
            return Err(fatal(
                "28000",
                "this server accepts only TLS connections (use sslmode=require)",
            ));
        }
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            self.apply_options(startup)?;
        }
        match (&*self.authentication, message) {
            (Authentication::Trust, PgWireFrontendMessage::Startup(ref startup)) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let (pid, secret_key) = PID_GENERATOR.generate(client);
                client.set_pid_and_secret_key(pid, secret_key);
                finish_authentication(client, &server_parameters()).await?;
            }
            (Authentication::Trust, _) => {}
            (Authentication::Scram { plain, secure }, message) => {
                let handler = if client.is_secure() { secure } else { plain };
                handler
                    .on_startup(client, message)
                    .await
                    .map_err(|error| match error {
                        // PostgreSQL's exact message, naming the user.
                        PgWireError::InvalidPassword(_) => fatal(
                            "28P01",
                            format!(
                                "password authentication failed for user \"{}\"",
                                client
                                    .metadata()
                                    .get(METADATA_USER)
                                    .map(String::as_str)
                                    .unwrap_or_default()
                            ),
                        ),
                        other => other,
                    })?;
            }
        }
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            self.on_ready(client);
            tracing::debug!(
                user = client.metadata().get(METADATA_USER).map(String::as_str),
                "session started"
            );
        }
        Ok(())
    }
}

/// Everything pgwire needs to serve one connection.
pub struct ConnectionHandlers {
    backend: Arc<Backend>,
    startup: Arc<Startup>,
    cancel: Arc<CancelRegistry>,
    stop: tokio_util::sync::CancellationToken,
}

/// What every connection of a server shares.
pub struct ServerShared {
    /// The database.
    pub database: Database,
    /// Live connections, for cancel requests.
    pub registry: Arc<CancelRegistry>,
    /// How clients authenticate.
    pub authentication: Arc<Authentication>,
    /// TLS, when configured.
    pub tls: Option<TlsAcceptor>,
    /// Whether plaintext clients are refused.
    pub tls_required: bool,
    /// Largest message body a client may send, in bytes.
    pub max_message_size: usize,
    /// Settings every new session starts from (the config file's timeouts).
    pub session_defaults: Vec<(String, String)>,
    /// Cancelled when the server shuts down: every session ends.
    pub stop: tokio_util::sync::CancellationToken,
}

impl ConnectionHandlers {
    /// Handlers over a fresh session of the shared database.
    pub fn new(shared: &ServerShared) -> crate::Result<ConnectionHandlers> {
        let mut session = shared.database.session();
        for (name, value) in &shared.session_defaults {
            session.set_default(name, value)?;
        }
        let interrupt = session.interrupt_handle();
        let session = Arc::new(Mutex::new(session));
        Ok(ConnectionHandlers {
            backend: Arc::new(Backend {
                session: Arc::clone(&session),
                parser: Arc::new(StatementParser {
                    database: shared.database.clone(),
                }),
            }),
            startup: Arc::new(Startup {
                authentication: Arc::clone(&shared.authentication),
                tls_required: shared.tls_required,
                registry: Arc::clone(&shared.registry),
                session,
                interrupt,
                pid: Mutex::new(None),
            }),
            cancel: Arc::clone(&shared.registry),
            stop: shared.stop.clone(),
        })
    }

    /// The idle timeout that applies now, with the error that ends the session.
    fn idle_timeout(&self) -> Option<(Duration, &'static str, &'static str)> {
        let session = self
            .backend
            .session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match session.transaction_status() {
            TransactionStatus::Idle => session.timeout("idle_session_timeout").map(|t| {
                (
                    t,
                    "57P05",
                    "terminating connection due to idle-session timeout",
                )
            }),
            _ => session
                .timeout("idle_in_transaction_session_timeout")
                .map(|t| {
                    (
                        t,
                        "25P03",
                        "terminating connection due to idle-in-transaction timeout",
                    )
                }),
        }
    }
}

/// How long a client may take from connecting to being ready for queries
/// (PostgreSQL's `authentication_timeout` default).
pub const AUTHENTICATION_TIMEOUT: Duration = Duration::from_secs(60);

type Connection = Framed<FrameLimit<Cork<MaybeTls>>, PgWireMessageServerCodec<ParsedStatement>>;

/// Serves one client connection until it ends; errors are the connection's own and
/// never affect other connections.
pub async fn serve(socket: TcpStream, shared: Arc<ServerShared>) -> std::io::Result<()> {
    let handlers = ConnectionHandlers::new(&shared).map_err(std::io::Error::other)?;
    let deadline = tokio::time::Instant::now() + AUTHENTICATION_TIMEOUT;
    let negotiation = tokio::time::timeout_at(
        deadline,
        negotiate_tls::<ParsedStatement>(socket, shared.tls.clone()),
    );
    let negotiated = tokio::select! {
        negotiated = negotiation => negotiated,
        () = shared.stop.cancelled() => return Ok(()), // shutting down
    };
    let negotiated = match negotiated {
        Err(_) => return Ok(()), // startup did not finish in time
        Ok(result) => result?,
    };
    let Some(negotiated) = negotiated else {
        // Direct TLS from a client while TLS is not configured.
        return Ok(());
    };
    let parts = negotiated.into_parts();
    let io = FrameLimit::new(
        Cork::new(parts.io),
        shared.max_message_size,
        &parts.read_buf,
    );
    let mut limited = FramedParts::new(io, parts.codec);
    limited.read_buf = parts.read_buf;
    limited.write_buf = parts.write_buf;
    let mut socket: Connection = Framed::from_parts(limited);
    let outcome = message_loop(&mut socket, &handlers, deadline).await;
    // A FATAL error may still be held back; the socket may be gone already.
    let _ = write_out(&mut socket).await;
    outcome
}

/// Writes out every response held back while the connection was corked.
async fn write_out(socket: &mut Connection) -> std::io::Result<()> {
    socket.get_mut().get_mut().uncork();
    socket.flush().await.map_err(std::io::Error::other)
}

/// Whether the bytes already read hold the whole next message, so the client's batch
/// goes on and its responses can wait. Only typed messages are judged (every message
/// after startup); otherwise the answer is no, which costs at most an early flush.
fn next_message_buffered(socket: &Connection) -> bool {
    let typed = matches!(
        socket.state(),
        PgWireConnectionState::ReadyForQuery
            | PgWireConnectionState::QueryInProgress
            | PgWireConnectionState::AwaitingSync
    );
    let buffered = socket.read_buffer();
    if !typed || buffered.len() < 5 {
        return false;
    }
    let length = u32::from_be_bytes([buffered[1], buffered[2], buffered[3], buffered[4]]);
    (length as usize) < buffered.len()
}

/// What waiting for the next message turned up.
enum Next {
    Message(PgWireFrontendMessage),
    Closed,
    Broken(PgWireError),
    TimedOut(Option<(&'static str, &'static str)>),
    /// The server is shutting down.
    Stopped,
}

async fn next_message(
    socket: &mut Connection,
    handlers: &ConnectionHandlers,
    deadline: tokio::time::Instant,
) -> Next {
    let limit = match socket.state() {
        PgWireConnectionState::AwaitingStartup
        | PgWireConnectionState::AuthenticationInProgress => Some((deadline, None)),
        PgWireConnectionState::ReadyForQuery => handlers
            .idle_timeout()
            .map(|(t, code, message)| (tokio::time::Instant::now() + t, Some((code, message)))),
        _ => None,
    };
    if handlers.stop.is_cancelled() {
        return Next::Stopped;
    }
    let stop = handlers.stop.clone();
    let read = async {
        match limit {
            Some((until, error)) => tokio::time::timeout_at(until, read_message(socket))
                .await
                .map_err(|_| Next::TimedOut(error)),
            None => Ok(read_message(socket).await),
        }
    };
    let next = tokio::select! {
        next = read => match next {
            Ok(next) => next,
            Err(timed_out) => return timed_out,
        },
        () = stop.cancelled() => return Next::Stopped,
    };
    match next {
        None => Next::Closed,
        Some(Ok(message)) => Next::Message(message),
        Some(Err(error)) => Next::Broken(error),
    }
}

async fn message_loop(
    socket: &mut Connection,
    handlers: &ConnectionHandlers,
    deadline: tokio::time::Instant,
) -> std::io::Result<()> {
    loop {
        if !next_message_buffered(socket) {
            write_out(socket).await?;
        }
        let message = match next_message(socket, handlers, deadline).await {
            Next::Message(message) => message,
            Next::Closed => return Ok(()),
            Next::TimedOut(None) => {
                tracing::info!("closing a connection that did not finish startup in time");
                return Ok(());
            }
            Next::TimedOut(Some((code, text))) => {
                tracing::info!(sqlstate = code, "{text}");
                return send_fatal(socket, code, text).await;
            }
            Next::Broken(error) => return refuse_frame(socket, error).await,
            Next::Stopped => {
                let text = "terminating connection due to administrator command";
                return send_fatal(socket, "57P01", text).await;
            }
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let is_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let is_cancel = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        socket.get_mut().get_mut().cork();
        let outcome = process_message(
            message,
            socket,
            Arc::clone(&handlers.startup),
            Arc::clone(&handlers.backend),
            Arc::clone(&handlers.backend),
            Arc::clone(&handlers.backend),
            Arc::clone(&handlers.cancel),
        )
        .await;
        if let Err(error) = outcome {
            let is_fatal = error.is_fatal();
            process_error(socket, error, is_extended).await?;
            if is_fatal {
                return Ok(());
            }
        }
        if is_cancel {
            return Ok(());
        }
    }
}

/// A message that could not be read: too large, malformed or a broken socket. The
/// client is told why (FATAL 08P01) when the socket still works, then disconnected.
async fn refuse_frame(socket: &mut Connection, error: PgWireError) -> std::io::Result<()> {
    let reason = match &error {
        PgWireError::IoError(io) => match socket.get_ref().error() {
            Some(frame_error) => frame_error.to_string(),
            None if io.kind() == std::io::ErrorKind::InvalidData => io.to_string(),
            // The socket itself failed (reset, TLS alert): nobody to tell.
            None => return Ok(()),
        },
        other => other.to_string(),
    };
    tracing::info!(%reason, "closing a connection after an invalid message");
    let message = format!("invalid frontend message: {reason}");
    send_error(socket, fatal_info("08P01", message)).await?;
    write_out(socket).await?;
    // The client learns why before it learns that the connection is closing.
    socket.get_mut().drain(DRAIN_TIME, DRAIN_BYTES).await;
    socket.close().await.map_err(std::io::Error::other)
}

/// Bounds on reading a refused client's remaining bytes before closing (see
/// [`FrameLimit::drain`]): enough for a query that was a little too large, too little
/// for a client to hold the connection open.
const DRAIN_TIME: Duration = Duration::from_secs(2);
const DRAIN_BYTES: usize = 16 * 1024 * 1024;

async fn send_error(socket: &mut Connection, info: ErrorInfo) -> std::io::Result<()> {
    socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await
        .map_err(std::io::Error::other)
}

async fn send_fatal(socket: &mut Connection, code: &str, message: &str) -> std::io::Result<()> {
    send_error(socket, fatal_info(code, message)).await?;
    socket.close().await.map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::startup_options;

    /// libpq's forms of `-c` all parse; anything else is refused, not ignored.
    #[test]
    fn startup_options_forms() {
        let parsed =
            startup_options("-c read_consistency=lease  -cstatement_timeout=5s --max-staleness=1s");
        assert_eq!(
            parsed.unwrap(),
            vec![
                ("read_consistency".to_string(), "lease".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
                ("max_staleness".to_string(), "1s".to_string()),
            ]
        );
        assert!(startup_options("-c").is_err());
        assert!(startup_options("-c novalue").is_err());
        assert!(startup_options("-x foo").is_err());
        assert_eq!(startup_options("").unwrap(), Vec::new());
    }
}
