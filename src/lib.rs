//! Tessera: a replicated, hash-sharded SQL database engine.
//!
//! This crate is the whole engine. Embedded use needs only [`Database`] and [`Session`]:
//!
//! ```
//! use tessera::{Database, Value};
//!
//! let db = Database::temporary()?;
//! let mut session = db.session();
//! session.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")?;
//! session.execute_with_params("INSERT INTO t VALUES ($1, $2)", &[Value::from(1), Value::from("one")])?;
//! let results = session.execute("SELECT name FROM t WHERE id = 1")?;
//! assert_eq!(results[0].rows[0].try_get::<String>(0)?, "one");
//! # Ok::<(), tessera::Error>(())
//! ```
//!
//! The modules follow the path of a statement: [`session`] -> [`sql`] (parser, planner,
//! execution) -> [`txn`] (MVCC) -> [`shard`] (the router) -> [`replica`] (ordering and stamping commands) ->
//! [`state_machine`] (deterministic apply) -> [`storage`] (RocksDB, key encoding).
//! `docs/architecture.md` describes each layer and why it is shaped as it is.

#![deny(missing_docs)]

pub mod catalog;
pub mod database;
pub mod encoding;
pub mod error;
pub mod replica;
pub mod server;
pub mod session;
pub mod shard;
pub mod shell;
pub mod sql;
pub mod state_machine;
pub mod storage;
pub mod txn;
pub mod types;

pub use database::Database;
pub use error::{Error, Result};
pub use session::{FromValue, PreparedStatement, QueryResult, Row, Session, TransactionStatus};
pub use sql::planner::OutputColumn;
pub use types::{DataType, Value};
