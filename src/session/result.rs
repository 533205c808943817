//! What a statement returns: rows, their typed accessors, and the command tag, notices and
//! counts a client sees.

use crate::error::{Error, Result};
use crate::sql::planner::OutputColumn;
use crate::types::Value;

/// One row of a result.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Wraps values as a row.
    pub fn new(values: Vec<Value>) -> Row {
        Row { values }
    }

    /// The value in column `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// The value in column `index` converted to a Rust type; an error names the mismatch.
    pub fn try_get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = self
            .values
            .get(index)
            .ok_or_else(|| Error::InvalidParameterValue(format!("row has no column {index}")))?;
        T::from_value(value)
    }

    /// Every value, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values out of the row.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

/// Conversion from a SQL value to a Rust type, for [`Row::try_get`].
pub trait FromValue: Sized {
    /// Converts, or fails with 42804 when the value's type does not fit.
    fn from_value(value: &Value) -> Result<Self>;
}

fn mismatch(value: &Value, wanted: &str) -> Error {
    let found = value
        .data_type()
        .map(|t| t.sql_name())
        .unwrap_or_else(|| "NULL".into());
    Error::DatatypeMismatch(format!("cannot read a {found} value as {wanted}"))
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self> {
        value.as_i64().ok_or_else(|| mismatch(value, "i64"))
    }
}

impl FromValue for i32 {
    fn from_value(value: &Value) -> Result<Self> {
        value
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| mismatch(value, "i32"))
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self> {
        value.as_f64().ok_or_else(|| mismatch(value, "f64"))
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self> {
        value.as_bool().ok_or_else(|| mismatch(value, "bool"))
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self> {
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| mismatch(value, "String"))
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Bytea(bytes) => Ok(bytes.clone()),
            other => Err(mismatch(other, "Vec<u8>")),
        }
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self> {
        Ok(value.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self> {
        if value.is_null() {
            Ok(None)
        } else {
            T::from_value(value).map(Some)
        }
    }
}

/// The result of one statement.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// PostgreSQL's command tag: `SELECT 3`, `INSERT 0 1`, `BEGIN`, ...
    pub tag: String,
    /// Result columns; empty for statements that return no rows.
    pub columns: Vec<OutputColumn>,
    /// Result rows.
    pub rows: Vec<Row>,
    /// Whether the statement returns rows (a query), even if there are none.
    pub returns_rows: bool,
    /// Rows inserted, updated or deleted, for data-changing statements.
    pub affected: Option<u64>,
    /// Notices, such as "relation already exists, skipping".
    pub notices: Vec<String>,
    /// What a COPY hands to its client (COPY statements only).
    pub copy: Option<super::CopyResult>,
}

impl QueryResult {
    /// A result with only a command tag (`CREATE TABLE`, `BEGIN`).
    pub fn command(tag: impl Into<String>) -> QueryResult {
        QueryResult {
            tag: tag.into(),
            columns: Vec::new(),
            rows: Vec::new(),
            returns_rows: false,
            affected: None,
            notices: Vec::new(),
            copy: None,
        }
    }

    pub(super) fn with_notice(mut self, notice: Option<String>) -> QueryResult {
        self.notices.extend(notice);
        self
    }

    /// A result with rows, tagged `SELECT n`.
    pub fn rows(columns: Vec<OutputColumn>, rows: Vec<Vec<Value>>) -> QueryResult {
        QueryResult {
            tag: format!("SELECT {}", rows.len()),
            columns,
            rows: rows.into_iter().map(Row::new).collect(),
            returns_rows: true,
            affected: None,
            notices: Vec::new(),
            copy: None,
        }
    }
}
