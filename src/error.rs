//! The one error type of Tessera, mapped to PostgreSQL SQLSTATE codes.
//!
//! Every layer returns [`Error`]. It is flat and serializable because errors cross process
//! boundaries later (Raft apply results, the wire protocol), and each variant knows its
//! SQLSTATE so that clients can react to a class of failure (retry on 40001, fix the input
//! on 42xxx) without parsing messages. [`Error::is_deterministic`] tells a replicated state
//! machine whether a failed command counts as applied (every replica fails it the same way)
//! or whether the node itself is broken and must stop.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the SQLSTATE a PostgreSQL client expects for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Error {
    /// The SQL text does not parse (42601). `position` is a 1-based character offset.
    Syntax {
        /// What the parser expected or found.
        message: String,
        /// 1-based character offset into the statement text, when known.
        position: Option<u32>,
    },
    /// A table or index named by the statement does not exist (42P01 / 42704).
    UndefinedTable(String),
    /// An index named by the statement does not exist (42704).
    UndefinedObject(String),
    /// A column named by the statement does not exist (42703).
    UndefinedColumn(String),
    /// A function or operator does not exist for the argument types (42883).
    UndefinedFunction(String),
    /// A table or index with this name already exists (42P07).
    DuplicateTable(String),
    /// A column is named twice in one definition (42701).
    DuplicateColumn(String),
    /// A column reference matches more than one column (42702).
    AmbiguousColumn(String),
    /// Two tables in one FROM clause have the same visible name (42712).
    DuplicateAlias(String),
    /// A regular expression does not compile (2201B).
    InvalidRegularExpression(String),
    /// A subquery used as a value returned more than one row (21000).
    CardinalityViolation(String),
    /// A value's type does not fit where it is used (42804).
    DatatypeMismatch(String),
    /// A table definition is invalid, e.g. two primary keys (42P16).
    InvalidTableDefinition(String),
    /// ORDER BY names a column that is not there (42P10).
    InvalidColumnReference(String),
    /// A LIMIT or OFFSET is negative (2201W / 2201X).
    InvalidRowCount {
        /// LIMIT or OFFSET.
        clause: String,
    },
    /// A grouping or aggregate rule is broken (42803).
    Grouping(String),
    /// Text could not be read as a value of the wanted type (22P02).
    InvalidTextRepresentation(String),
    /// A value sent in binary format could not be read (22P03).
    InvalidBinaryRepresentation(String),
    /// A number does not fit its type (22003).
    NumericOutOfRange(String),
    /// A string is longer than its column allows (22001).
    StringTooLong(String),
    /// Division or modulo by zero (22012).
    DivisionByZero,
    /// Some other bad value, e.g. a negative LIMIT (22023).
    InvalidParameterValue(String),
    /// A NULL where the column forbids it (23502).
    NotNullViolation {
        /// The table written to.
        table: String,
        /// The NOT NULL column.
        column: String,
    },
    /// A duplicate in a primary key or unique index (23505).
    UniqueViolation {
        /// The constraint or index that was violated.
        constraint: String,
        /// Which values collided, as `(col)=(value)`.
        detail: String,
    },
    /// A write-write conflict under snapshot isolation (40001); the client should retry.
    SerializationFailure(String),
    /// The cluster could not do it now (no leader, no quorum, a replica too far behind)
    /// and certainly did not apply it (40001, so drivers retry it).
    Retryable(String),
    /// A commit was sent to the leader but whether it was applied cannot be known (a
    /// timeout, a broken connection, a leader change after it was proposed): 40003,
    /// statement_completion_unknown. Never retried by Tessera, which could apply it twice.
    OutcomeUnknown(String),
    /// The command ran inside a transaction block where it is not allowed (25001).
    ActiveTransaction(String),
    /// The cluster is not in a state where the command can be done (55000), e.g.
    /// removing a group's last voter.
    ObjectNotInPrerequisiteState(String),
    /// A command needs a transaction block and there is none (25P01); PostgreSQL warns only.
    NoActiveTransaction(String),
    /// The statement was cancelled by the client or by `statement_timeout` (57014).
    QueryCanceled(String),
    /// A limit Tessera sets was reached (54000), such as savepoints per block.
    ProgramLimitExceeded(String),
    /// ROLLBACK TO or RELEASE named a savepoint the block does not have (3B001).
    InvalidSavepoint(String),
    /// The transaction has failed; only ROLLBACK is accepted (25P02).
    TransactionAborted,
    /// The statement is valid SQL that Tessera does not support yet (0A000).
    FeatureNotSupported(String),
    /// A wrong number or kind of parameters was given for `$n` placeholders (08P01 / 42P02).
    UndefinedParameter(String),
    /// A setting name is unknown (42704).
    UnknownSetting(String),
    /// The storage engine failed (58030). Not deterministic: the node must stop applying.
    Storage(String),
    /// An operating-system I/O error outside the storage engine (58030).
    Io(String),
    /// Persisted bytes could not be decoded (XX001). Not deterministic.
    Corruption(String),
    /// A broken invariant inside Tessera (XX000). Reported instead of panicking.
    Internal(String),
    /// An error a server reported to `tessera shell --connect`, with its own SQLSTATE.
    Remote(Box<RemoteError>),
    /// A sequence reached its bound and does not cycle (2200H).
    SequenceGeneratorLimitExceeded(String),
    /// A value given for a `GENERATED ALWAYS` identity column (428C9).
    GeneratedAlways(String),
    /// An object cannot go while others depend on it (2BP01).
    DependentObjectsStillExist(String),
    /// An object of one kind named where another is needed, e.g. `nextval` of a table
    /// (42809).
    WrongObjectType(String),
    /// COPY data that does not fit the table or format: too few or too many fields, an
    /// unterminated quote (22P04).
    BadCopyFileFormat(String),
    /// Bytes that are not valid UTF-8 where text is expected (22021).
    InvalidByteSequence(String),
    /// An error with where it happened, PostgreSQL's CONTEXT field (COPY's line and
    /// column). Everything but the context is the inner error's.
    WithContext {
        /// What went wrong.
        error: Box<Error>,
        /// Where.
        context: String,
    },
}

/// The fields of a server's ErrorResponse, kept as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteError {
    /// SQLSTATE.
    pub code: String,
    /// Primary message.
    pub message: String,
    /// DETAIL.
    pub detail: Option<String>,
    /// HINT.
    pub hint: Option<String>,
    /// 1-based character position in the statement.
    pub position: Option<u32>,
}

impl Error {
    /// The five-character SQLSTATE code PostgreSQL uses for this class of error.
    pub fn sqlstate(&self) -> &str {
        match self {
            Error::Remote(remote) => &remote.code,
            Error::Syntax { .. } => "42601",
            Error::UndefinedTable(_) => "42P01",
            Error::UndefinedObject(_) => "42704",
            Error::UndefinedColumn(_) => "42703",
            Error::UndefinedFunction(_) => "42883",
            Error::DuplicateTable(_) => "42P07",
            Error::DuplicateColumn(_) => "42701",
            Error::AmbiguousColumn(_) => "42702",
            Error::DuplicateAlias(_) => "42712",
            Error::CardinalityViolation(_) => "21000",
            Error::InvalidRegularExpression(_) => "2201B",
            Error::DatatypeMismatch(_) => "42804",
            Error::Grouping(_) => "42803",
            Error::InvalidTableDefinition(_) => "42P16",
            Error::InvalidColumnReference(_) => "42P10",
            Error::InvalidRowCount { clause } if clause == "LIMIT" => "2201W",
            Error::InvalidRowCount { .. } => "2201X",
            Error::InvalidTextRepresentation(_) => "22P02",
            Error::InvalidBinaryRepresentation(_) => "22P03",
            Error::NumericOutOfRange(_) => "22003",
            Error::StringTooLong(_) => "22001",
            Error::DivisionByZero => "22012",
            Error::InvalidParameterValue(_) => "22023",
            Error::NotNullViolation { .. } => "23502",
            Error::UniqueViolation { .. } => "23505",
            Error::SerializationFailure(_) | Error::Retryable(_) => "40001",
            Error::OutcomeUnknown(_) => "40003",
            Error::ActiveTransaction(_) => "25001",
            Error::ObjectNotInPrerequisiteState(_) => "55000",
            Error::NoActiveTransaction(_) => "25P01",
            Error::TransactionAborted => "25P02",
            Error::InvalidSavepoint(_) => "3B001",
            Error::ProgramLimitExceeded(_) => "54000",
            Error::QueryCanceled(_) => "57014",
            Error::FeatureNotSupported(_) => "0A000",
            Error::UndefinedParameter(_) => "42P02",
            Error::UnknownSetting(_) => "42704",
            Error::Storage(_) | Error::Io(_) => "58030",
            Error::Corruption(_) => "XX001",
            Error::Internal(_) => "XX000",
            Error::SequenceGeneratorLimitExceeded(_) => "2200H",
            Error::GeneratedAlways(_) => "428C9",
            Error::DependentObjectsStillExist(_) => "2BP01",
            Error::WrongObjectType(_) => "42809",
            Error::BadCopyFileFormat(_) => "22P04",
            Error::InvalidByteSequence(_) => "22021",
            Error::WithContext { error, .. } => error.sqlstate(),
        }
    }

    /// Whether every replica applying the same command to the same state fails the same
    /// way. A deterministic failure counts as applied; a non-deterministic one (disk,
    /// corruption, bugs) means this node cannot go on applying and must stop.
    pub fn is_deterministic(&self) -> bool {
        if let Error::WithContext { error, .. } = self {
            return error.is_deterministic();
        }
        !matches!(
            self,
            Error::Storage(_)
                | Error::Io(_)
                | Error::Corruption(_)
                | Error::Internal(_)
                | Error::Remote(_)
        )
    }

    /// Whether the client may simply run the transaction again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::WithContext { error, .. } => error.is_retryable(),
            other => matches!(other, Error::SerializationFailure(_) | Error::Retryable(_)),
        }
    }

    /// Adds where the error happened (PostgreSQL's CONTEXT); an outer context comes
    /// after the inner one, one per line, as PostgreSQL lists them.
    pub fn with_context(self, context: impl Into<String>) -> Error {
        match self {
            Error::WithContext {
                error,
                context: inner,
            } => Error::WithContext {
                error,
                context: format!("{inner}\n{}", context.into()),
            },
            error => Error::WithContext {
                error: Box::new(error),
                context: context.into(),
            },
        }
    }

    /// Where the error happened, if known (PostgreSQL's CONTEXT field).
    pub fn context(&self) -> Option<String> {
        match self {
            Error::WithContext { context, .. } => Some(context.clone()),
            _ => None,
        }
    }

    /// The error without its context.
    pub fn without_context(&self) -> &Error {
        match self {
            Error::WithContext { error, .. } => error,
            other => other,
        }
    }

    /// The 1-based character position of a syntax error, if known.
    pub fn position(&self) -> Option<u32> {
        match self {
            Error::Syntax { position, .. } => *position,
            Error::Remote(remote) => remote.position,
            Error::WithContext { error, .. } => error.position(),
            _ => None,
        }
    }

    /// Extra detail for the client (PostgreSQL's DETAIL field), if any.
    pub fn detail(&self) -> Option<String> {
        match self {
            Error::UniqueViolation { detail, .. } => Some(detail.clone()),
            Error::Remote(remote) => remote.detail.clone(),
            Error::WithContext { error, .. } => error.detail(),
            _ => None,
        }
    }

    /// A hint for the client (PostgreSQL's HINT field), if any.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::SerializationFailure(_) | Error::Retryable(_) => {
                Some("The transaction might succeed if retried.")
            }
            Error::OutcomeUnknown(_) => Some(
                "The transaction may or may not have been committed; check before running it again.",
            ),
            Error::Remote(remote) => remote.hint.as_deref(),
            Error::WithContext { error, .. } => error.hint(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax { message, .. } => write!(f, "syntax error: {message}"),
            Error::Remote(remote) => write!(f, "{}", remote.message),
            Error::UndefinedTable(name) => write!(f, "relation \"{name}\" does not exist"),
            Error::UndefinedObject(message) => write!(f, "{message}"),
            Error::UndefinedColumn(name) => write!(f, "column {name} does not exist"),
            Error::UndefinedFunction(message) => write!(f, "{message}"),
            Error::DuplicateTable(name) => write!(f, "relation \"{name}\" already exists"),
            Error::DuplicateColumn(name) => {
                write!(f, "column \"{name}\" specified more than once")
            }
            Error::AmbiguousColumn(name) => write!(f, "column reference \"{name}\" is ambiguous"),
            Error::CardinalityViolation(message) => write!(f, "{message}"),
            Error::InvalidRegularExpression(message) => {
                write!(f, "invalid regular expression: {message}")
            }
            Error::DuplicateAlias(name) => {
                write!(f, "table name \"{name}\" specified more than once")
            }
            Error::InvalidRowCount { clause } => write!(f, "{clause} must not be negative"),
            Error::DatatypeMismatch(message)
            | Error::InvalidTableDefinition(message)
            | Error::InvalidColumnReference(message)
            | Error::QueryCanceled(message)
            | Error::Grouping(message)
            | Error::InvalidTextRepresentation(message)
            | Error::InvalidBinaryRepresentation(message)
            | Error::NumericOutOfRange(message)
            | Error::StringTooLong(message)
            | Error::InvalidParameterValue(message)
            | Error::FeatureNotSupported(message)
            | Error::UndefinedParameter(message)
            | Error::ActiveTransaction(message)
            | Error::ObjectNotInPrerequisiteState(message)
            | Error::NoActiveTransaction(message)
            | Error::InvalidSavepoint(message)
            | Error::ProgramLimitExceeded(message)
            | Error::SequenceGeneratorLimitExceeded(message)
            | Error::GeneratedAlways(message)
            | Error::DependentObjectsStillExist(message)
            | Error::WrongObjectType(message)
            | Error::BadCopyFileFormat(message)
            | Error::InvalidByteSequence(message) => write!(f, "{message}"),
            Error::WithContext { error, .. } => write!(f, "{error}"),
            Error::DivisionByZero => write!(f, "division by zero"),
            Error::NotNullViolation { table, column } => write!(
                f,
                "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
            ),
            Error::UniqueViolation { constraint, .. } => write!(
                f,
                "duplicate key value violates unique constraint \"{constraint}\""
            ),
            Error::SerializationFailure(message) => write!(
                f,
                "could not serialize access: {message}; retry the transaction"
            ),
            Error::Retryable(message) => {
                write!(f, "{message}; nothing was applied, retry the transaction")
            }
            Error::OutcomeUnknown(message) => {
                write!(f, "the outcome of the commit is unknown: {message}")
            }
            Error::TransactionAborted => write!(
                f,
                "current transaction is aborted, commands ignored until end of transaction block"
            ),
            Error::UnknownSetting(name) => {
                write!(f, "unrecognized configuration parameter \"{name}\"")
            }
            Error::Storage(message) => write!(f, "storage error: {message}"),
            Error::Io(message) => write!(f, "I/O error: {message}"),
            Error::Corruption(message) => write!(f, "data corruption: {message}"),
            Error::Internal(message) => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rocksdb::Error> for Error {
    fn from(error: rocksdb::Error) -> Self {
        Error::Storage(error.into_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Storage and corruption errors must stop a replica; conflicts and bad input must not.
    #[test]
    fn determinism_classification() {
        assert!(Error::SerializationFailure("x".into()).is_deterministic());
        assert!(Error::DivisionByZero.is_deterministic());
        assert!(!Error::Storage("disk".into()).is_deterministic());
        assert!(!Error::Corruption("bad".into()).is_deterministic());
    }

    /// The codes clients rely on most are the PostgreSQL ones.
    #[test]
    fn sqlstates_match_postgres() {
        assert_eq!(
            Error::SerializationFailure(String::new()).sqlstate(),
            "40001"
        );
        assert_eq!(Error::DivisionByZero.sqlstate(), "22012");
        assert_eq!(Error::UndefinedTable("t".into()).sqlstate(), "42P01");
        assert_eq!(
            Error::Syntax {
                message: String::new(),
                position: None
            }
            .sqlstate(),
            "42601"
        );
    }
}
