//! SQL data types and values.
//!
//! A [`Value`] carries its own type, so results can be described (column types, wire OIDs)
//! without consulting the catalog again. Semantics follow PostgreSQL: integers are range
//! checked, `-0.0 = 0.0`, NaN equals NaN and sorts above every other float, text compares
//! by bytes (the "C" collation), and text input/output uses PostgreSQL's formats.

pub mod aggregate;
pub mod array;
pub(crate) mod value;

pub use array::ElementType;
pub use value::{format_float4, format_float8, Value};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A column or expression type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// `BOOLEAN`.
    Boolean,
    /// `SMALLINT` (16-bit).
    SmallInt,
    /// `INTEGER` (32-bit).
    Integer,
    /// `BIGINT` (64-bit).
    BigInt,
    /// `REAL` (32-bit float).
    Real,
    /// `DOUBLE PRECISION` (64-bit float).
    Double,
    /// `TEXT`, or `VARCHAR(n)` when a maximum length in characters is given.
    Text {
        /// The maximum length in characters, for `VARCHAR(n)`.
        max_length: Option<u32>,
    },
    /// `BYTEA`.
    Bytea,
    /// `type[]`: a one-dimensional array (see [`array`]).
    Array(ElementType),
}

/// Plain `TEXT`, the type of string literals and most string expressions.
pub const TEXT: DataType = DataType::Text { max_length: None };

impl DataType {
    /// Whether this is one of the integer types.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::SmallInt | DataType::Integer | DataType::BigInt
        )
    }

    /// Whether this is one of the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DataType::Real | DataType::Double)
    }

    /// Whether arithmetic applies to this type.
    pub fn is_numeric(self) -> bool {
        self.is_integer() || self.is_float()
    }

    /// Whether this is `TEXT` or `VARCHAR`.
    pub fn is_text(self) -> bool {
        matches!(self, DataType::Text { .. })
    }

    /// The PostgreSQL name of the type, as `\d` and error messages show it.
    pub fn sql_name(self) -> String {
        match self {
            DataType::Boolean => "boolean".into(),
            DataType::SmallInt => "smallint".into(),
            DataType::Integer => "integer".into(),
            DataType::BigInt => "bigint".into(),
            DataType::Real => "real".into(),
            DataType::Double => "double precision".into(),
            DataType::Text { max_length: None } => "text".into(),
            DataType::Text {
                max_length: Some(n),
            } => format!("character varying({n})"),
            DataType::Bytea => "bytea".into(),
            DataType::Array(element) => format!("{}[]", element.data_type().sql_name()),
        }
    }

    /// The PostgreSQL type OID, for clients that describe result columns.
    pub fn oid(self) -> u32 {
        match self {
            DataType::Boolean => 16,
            DataType::Bytea => 17,
            DataType::BigInt => 20,
            DataType::SmallInt => 21,
            DataType::Integer => 23,
            DataType::Text { max_length: None } => 25,
            DataType::Text { .. } => 1043,
            DataType::Real => 700,
            DataType::Double => 701,
            DataType::Array(element) => element.array_oid(),
        }
    }

    /// The wider of two numeric types, following PostgreSQL's implicit promotions
    /// (smallint < integer < bigint < real < double precision; integers meeting a float
    /// become double precision unless both sides fit real exactly, as PostgreSQL does for
    /// `real op integer` only through double). `None` when either side is not numeric.
    pub fn numeric_common(left: DataType, right: DataType) -> Option<DataType> {
        if !left.is_numeric() || !right.is_numeric() {
            return None;
        }
        let rank = |t: DataType| match t {
            DataType::SmallInt => 0,
            DataType::Integer => 1,
            DataType::BigInt => 2,
            DataType::Real => 3,
            _ => 4,
        };
        let wider = if rank(left) >= rank(right) {
            left
        } else {
            right
        };
        // PostgreSQL has no real (op) integer operators: the integer is cast to double.
        if wider == DataType::Real && (left.is_integer() || right.is_integer()) {
            return Some(DataType::Double);
        }
        Some(wider)
    }

    /// Checks that a value of this type can be stored in a column of type `self`,
    /// converting it when PostgreSQL would do so implicitly on assignment.
    pub fn coerce_for_assignment(self, value: Value, column: &str) -> Result<Value> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let source = value.data_type().unwrap_or(self);
        let assignable = match self {
            DataType::Boolean => source == DataType::Boolean,
            DataType::SmallInt | DataType::Integer | DataType::BigInt => source.is_numeric(),
            DataType::Real | DataType::Double => source.is_numeric(),
            DataType::Text { .. } => source.is_text(),
            DataType::Bytea => source == DataType::Bytea,
            DataType::Array(_) => source == self || source == TEXT,
        };
        if !assignable {
            return Err(Error::DatatypeMismatch(format!(
                "column \"{column}\" is of type {} but expression is of type {}",
                self.sql_name(),
                source.sql_name()
            )));
        }
        value.cast(self)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Promotion follows PostgreSQL: int + bigint is bigint, int + real is double.
    #[test]
    fn numeric_promotion() {
        use DataType::*;
        assert_eq!(DataType::numeric_common(Integer, BigInt), Some(BigInt));
        assert_eq!(DataType::numeric_common(SmallInt, SmallInt), Some(SmallInt));
        assert_eq!(DataType::numeric_common(Real, Real), Some(Real));
        assert_eq!(DataType::numeric_common(Integer, Real), Some(Double));
        assert_eq!(DataType::numeric_common(Integer, Double), Some(Double));
        assert_eq!(DataType::numeric_common(Integer, TEXT), None);
    }

    /// Assignment accepts numbers into any numeric column but refuses text into integers.
    #[test]
    fn assignment_coercion() {
        let v = DataType::BigInt
            .coerce_for_assignment(Value::Integer(5), "c")
            .unwrap();
        assert_eq!(v, Value::BigInt(5));
        let err = DataType::Integer
            .coerce_for_assignment(Value::Text("x".into()), "c")
            .unwrap_err();
        assert_eq!(err.sqlstate(), "42804");
        let err = DataType::SmallInt
            .coerce_for_assignment(Value::Integer(40000), "c")
            .unwrap_err();
        assert_eq!(err.sqlstate(), "22003");
    }
}
