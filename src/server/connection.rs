//! One client connection: pgwire drives the protocol, and these handlers run its simple
//! and extended queries on the connection's own [`Session`].
//!
//! The engine is synchronous (RocksDB calls block), so each statement runs inside
//! `block_in_place`: the worker thread is handed over to blocking work and other
//! connections keep being served by the runtime's remaining workers.

use super::wire::{self, error_info, user_error};
use crate::database::Database;
use crate::error::Error;
use crate::session::{Description, PreparedStatement, QueryResult, Session};
use crate::sql::execution::interrupt::Interrupt;
use async_trait::async_trait;
use futures::sink::{Sink, SinkExt};
use futures::stream;
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
    ClientInfo, ClientPortalStore, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, LazyLock, Mutex};

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
        let mut description = session.describe(&prepared).map_err(user_error)?;
        // Types the client declared win over inferred ones.
        for (i, declared) in types.iter().enumerate() {
            if let Some(data_type) = declared.as_ref().and_then(wire::data_type_of) {
                if description.parameters.len() <= i {
                    description.parameters.resize(i + 1, None);
                }
                description.parameters[i] = Some(data_type);
            }
        }
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
    fn run<T: Send>(&self, work: impl FnOnce(&mut Session) -> T + Send) -> T {
        let session = Arc::clone(&self.session);
        tokio::task::block_in_place(move || {
            let mut session = session.lock().unwrap_or_else(|poison| poison.into_inner());
            work(&mut session)
        })
    }
}

/// Turns a statement's result into the protocol response for it.
fn to_response(result: QueryResult, format: Option<&Format>) -> PgWireResult<Response> {
    if result.returns_rows {
        let schema = Arc::new(wire::fields(&result.columns, format));
        let mut encoder = DataRowEncoder::new(Arc::clone(&schema));
        let rows: Vec<_> = result
            .rows
            .iter()
            .map(|row| wire::encode_row(&mut encoder, &schema, row))
            .collect();
        return Ok(Response::Query(QueryResponse::new(
            schema,
            stream::iter(rows),
        )));
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
        let query = query.to_string();
        let (results, failure): (Vec<QueryResult>, Option<Error>) = self.run(move |session| {
            let mut results = Vec::new();
            let outcome = session.execute_each(&query, &[], |result| results.push(result));
            (results, outcome.err())
        });
        send_notices(client, &results).await?;
        let mut responses = results
            .into_iter()
            .map(|r| to_response(r, None))
            .collect::<PgWireResult<Vec<_>>>()?;
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
        let prepared = statement.statement.prepared.clone();
        let result = self
            .run(move |session| session.execute_prepared(&prepared, &params))
            .map_err(user_error)?;
        send_notices(client, std::slice::from_ref(&result)).await?;
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

/// Startup without authentication (trust), announcing PostgreSQL 15 parameters and
/// registering the connection for cancel requests (until it is dropped).
pub struct TrustStartup {
    registry: Arc<CancelRegistry>,
    interrupt: Arc<Interrupt>,
    pid: Mutex<Option<i32>>,
}

impl Drop for TrustStartup {
    fn drop(&mut self) {
        if let Some(pid) = *self.pid.lock().unwrap_or_else(|poison| poison.into_inner()) {
            self.registry.lock().remove(&pid);
        }
    }
}

#[async_trait]
impl StartupHandler for TrustStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            let (pid, secret_key) = PID_GENERATOR.generate(client);
            client.set_pid_and_secret_key(pid, secret_key.clone());
            self.registry
                .lock()
                .insert(pid, (secret_key, Arc::clone(&self.interrupt)));
            *self.pid.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(pid);
            let mut parameters = DefaultServerParameterProvider::default();
            parameters.server_version = SERVER_VERSION.to_string();
            finish_authentication(client, &parameters).await?;
        }
        Ok(())
    }
}

/// Everything pgwire needs to serve one connection.
pub struct ConnectionHandlers {
    backend: Arc<Backend>,
    startup: Arc<TrustStartup>,
    cancel: Arc<CancelRegistry>,
}

impl ConnectionHandlers {
    /// Handlers over a fresh session of `database`; `registry` is the server's.
    pub fn new(database: &Database, registry: &Arc<CancelRegistry>) -> ConnectionHandlers {
        let session = database.session();
        let interrupt = session.interrupt_handle();
        ConnectionHandlers {
            backend: Arc::new(Backend {
                session: Arc::new(Mutex::new(session)),
                parser: Arc::new(StatementParser {
                    database: database.clone(),
                }),
            }),
            startup: Arc::new(TrustStartup {
                registry: Arc::clone(registry),
                interrupt,
                pid: Mutex::new(None),
            }),
            cancel: Arc::clone(registry),
        }
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.backend)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.backend)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}
