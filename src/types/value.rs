//! [`Value`]: one typed SQL value, with PostgreSQL's casts, comparisons and text formats.

use super::{array, DataType, ElementType};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// One SQL value. `Null` has no type of its own; the column or expression gives it one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL: unknown.
    Null,
    /// `BOOLEAN`.
    Boolean(bool),
    /// `SMALLINT`.
    SmallInt(i16),
    /// `INTEGER`.
    Integer(i32),
    /// `BIGINT`.
    BigInt(i64),
    /// `REAL`.
    Real(f32),
    /// `DOUBLE PRECISION`.
    Double(f64),
    /// `TEXT` / `VARCHAR`.
    Text(String),
    /// `BYTEA`.
    Bytea(Vec<u8>),
    /// `type[]`: elements of one type, NULLs allowed.
    Array {
        /// The elements' type (kept so that an empty array still has one).
        element: ElementType,
        /// The elements, first at subscript 1.
        items: Vec<Value>,
    },
}

impl Value {
    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value's type; `None` for NULL.
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Boolean(_) => DataType::Boolean,
            Value::SmallInt(_) => DataType::SmallInt,
            Value::Integer(_) => DataType::Integer,
            Value::BigInt(_) => DataType::BigInt,
            Value::Real(_) => DataType::Real,
            Value::Double(_) => DataType::Double,
            Value::Text(_) => super::TEXT,
            Value::Bytea(_) => DataType::Bytea,
            Value::Array { element, .. } => DataType::Array(*element),
        })
    }

    /// The value as a 64-bit integer, for integer-typed values.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::SmallInt(v) => Some(i64::from(*v)),
            Value::Integer(v) => Some(i64::from(*v)),
            Value::BigInt(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a double, for any numeric value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Real(v) => Some(f64::from(*v)),
            Value::Double(v) => Some(*v),
            other => other.as_i64().map(|v| v as f64),
        }
    }

    /// The value as a string slice, for text values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean, for boolean values.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Converts the value to `target` as an explicit `CAST` would, with PostgreSQL's
    /// range checks and input syntax. NULL stays NULL.
    pub fn cast(self, target: DataType) -> Result<Value> {
        if self.is_null() || self.data_type() == Some(target) {
            return Ok(self);
        }
        match target {
            DataType::Boolean => self.cast_to_boolean(),
            DataType::SmallInt | DataType::Integer | DataType::BigInt => {
                let wide = self.cast_to_i64(target)?;
                integer_of_type(wide, target)
            }
            DataType::Real => match self {
                Value::Text(s) => Ok(Value::Real(parse_float(&s, target)? as f32)),
                other => {
                    let v = other.numeric_or_mismatch(target)?;
                    let narrowed = v as f32;
                    if v.is_finite() && narrowed.is_infinite() {
                        return Err(Error::NumericOutOfRange(
                            "value out of range: overflow".into(),
                        ));
                    }
                    Ok(Value::Real(narrowed))
                }
            },
            DataType::Double => match self {
                Value::Text(s) => Ok(Value::Double(parse_float(&s, target)?)),
                other => Ok(Value::Double(other.numeric_or_mismatch(target)?)),
            },
            DataType::Text { max_length } => {
                let text = match self {
                    Value::Text(s) => s,
                    other => other.to_string(),
                };
                if let Some(max) = max_length {
                    if text.chars().count() > max as usize {
                        return Err(Error::StringTooLong(format!(
                            "value too long for type character varying({max})"
                        )));
                    }
                }
                Ok(Value::Text(text))
            }
            DataType::Bytea => match self {
                Value::Text(s) => Ok(Value::Bytea(parse_bytea(&s)?)),
                other => Err(cannot_cast(&other, target)),
            },
            DataType::Array(element) => match self {
                Value::Text(s) => Ok(Value::Array {
                    element,
                    items: array::parse(&s, element)?,
                }),
                Value::Array { items, .. } => Ok(Value::Array {
                    element,
                    items: items
                        .into_iter()
                        .map(|item| item.cast(element.data_type()))
                        .collect::<Result<_>>()?,
                }),
                other => Err(cannot_cast(&other, target)),
            },
        }
    }

    fn cast_to_boolean(self) -> Result<Value> {
        match self {
            Value::Text(s) => parse_bool(&s).map(Value::Boolean),
            Value::Integer(v) => Ok(Value::Boolean(v != 0)),
            other => Err(cannot_cast(&other, DataType::Boolean)),
        }
    }

    fn cast_to_i64(self, target: DataType) -> Result<i64> {
        match self {
            Value::Text(s) => {
                let trimmed = s.trim();
                trimmed.parse::<i64>().map_err(|_| {
                    if !trimmed.is_empty()
                        && trimmed
                            .trim_start_matches(['-', '+'])
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    {
                        out_of_range(target)
                    } else {
                        Error::InvalidTextRepresentation(format!(
                            "invalid input syntax for type {}: \"{s}\"",
                            target.sql_name()
                        ))
                    }
                })
            }
            Value::Boolean(b) => Ok(i64::from(b)),
            Value::Real(_) | Value::Double(_) => {
                let f = self.as_f64().unwrap_or(f64::NAN).round_ties_even();
                if f.is_nan() || f < i64::MIN as f64 || f >= i64::MAX as f64 {
                    return Err(out_of_range(target));
                }
                Ok(f as i64)
            }
            other => other.as_i64().ok_or_else(|| cannot_cast(&other, target)),
        }
    }

    fn numeric_or_mismatch(&self, target: DataType) -> Result<f64> {
        self.as_f64().ok_or_else(|| cannot_cast(self, target))
    }

    /// Compares two non-NULL values of comparable types: numbers with numbers (promoted
    /// as PostgreSQL does), text with text by bytes, and so on. NaN equals NaN and is
    /// greater than every other number; -0 equals +0. `None` for NULL or for values that
    /// cannot be compared.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Null, _) | (_, Null) => None,
            (Boolean(a), Boolean(b)) => Some(a.cmp(b)),
            (Text(a), Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Bytea(a), Bytea(b)) => Some(a.cmp(b)),
            (Array { items: a, .. }, Array { items: b, .. }) => compare_arrays(a, b),
            (Array { .. }, _) | (_, Array { .. }) => None,
            (a, b) => match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => Some(compare_floats(a.as_f64()?, b.as_f64()?)),
            },
        }
    }

    /// A total order for sorting: NULL sorts after every value (PostgreSQL's default for
    /// ascending order), values of incomparable types by a fixed type rank.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        match (self.is_null(), other.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self
                .compare(other)
                .unwrap_or_else(|| self.type_rank().cmp(&other.type_rank())),
        }
    }

    fn type_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Boolean(_) => 1,
            Value::SmallInt(_) | Value::Integer(_) | Value::BigInt(_) => 2,
            Value::Real(_) | Value::Double(_) => 2,
            Value::Text(_) => 3,
            Value::Bytea(_) => 4,
            Value::Array { .. } => 5,
        }
    }
}

/// Arrays compare element by element (NULL elements after all others, as PostgreSQL
/// orders them), then by length.
fn compare_arrays(a: &[Value], b: &[Value]) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b) {
        let ordering = x.sort_cmp(y);
        if ordering != Ordering::Equal {
            return Some(ordering);
        }
    }
    Some(a.len().cmp(&b.len()))
}

/// Floats ordered as PostgreSQL does: NaN is equal to itself and above everything.
fn compare_floats(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// SQL equality is value equality: `Integer(1) == BigInt(1)`, `-0.0 == 0.0`, `NaN == NaN`.
/// NULL equals NULL here (this is for grouping and tests, not for the SQL `=` operator).
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            _ => self.compare(other) == Some(Ordering::Equal),
        }
    }
}

fn integer_of_type(value: i64, target: DataType) -> Result<Value> {
    match target {
        DataType::SmallInt => i16::try_from(value)
            .map(Value::SmallInt)
            .map_err(|_| out_of_range(target)),
        DataType::Integer => i32::try_from(value)
            .map(Value::Integer)
            .map_err(|_| out_of_range(target)),
        _ => Ok(Value::BigInt(value)),
    }
}

/// The 22003 error PostgreSQL raises when a number does not fit `target`.
pub(crate) fn out_of_range(target: DataType) -> Error {
    Error::NumericOutOfRange(format!("{} out of range", target.sql_name()))
}

fn cannot_cast(value: &Value, target: DataType) -> Error {
    let source = value.data_type().map(|t| t.sql_name()).unwrap_or_default();
    Error::DatatypeMismatch(format!(
        "cannot cast type {source} to {}",
        target.sql_name()
    ))
}

fn parse_bool(text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
        _ => Err(Error::InvalidTextRepresentation(format!(
            "invalid input syntax for type boolean: \"{text}\""
        ))),
    }
}

fn parse_float(text: &str, target: DataType) -> Result<f64> {
    let trimmed = text.trim();
    let special = match trimmed.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    };
    if let Some(value) = special {
        return Ok(value);
    }
    let invalid = || {
        Error::InvalidTextRepresentation(format!(
            "invalid input syntax for type {}: \"{text}\"",
            target.sql_name()
        ))
    };
    // Rust accepts "inf"/"nan" spellings we handled above; anything else alphabetic is bad.
    if trimmed.is_empty()
        || trimmed
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return Err(invalid());
    }
    let value: f64 = trimmed.parse().map_err(|_| invalid())?;
    if value.is_infinite() {
        return Err(Error::NumericOutOfRange(format!(
            "\"{trimmed}\" is out of range for type {}",
            target.sql_name()
        )));
    }
    Ok(value)
}

/// Parses PostgreSQL's bytea input: `\x` followed by hex digits, or the escape format
/// where `\\` is a backslash and `\nnn` an octal byte.
fn parse_bytea(text: &str) -> Result<Vec<u8>> {
    let invalid = || Error::InvalidTextRepresentation("invalid input syntax for type bytea".into());
    if let Some(hex) = text.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err(Error::InvalidTextRepresentation(
                "invalid hexadecimal data: odd number of digits".into(),
            ));
        }
        return digits
            .chunks(2)
            .map(|pair| {
                let hi = (pair[0] as char).to_digit(16);
                let lo = (pair[1] as char).to_digit(16);
                match (hi, lo) {
                    (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                    _ => Err(Error::InvalidTextRepresentation(
                        "invalid hexadecimal digit".into(),
                    )),
                }
            })
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = bytes.get(i + 1..i + 4).ok_or_else(invalid)?;
            let text = std::str::from_utf8(octal).map_err(|_| invalid())?;
            out.push(u8::from_str_radix(text, 8).map_err(|_| invalid())?);
            i += 4;
        }
    }
    Ok(out)
}

/// Formats a double the way PostgreSQL prints it (shortest text that reads back to the
/// same value; exponent form below 1e-4 and from 1e15 on).
pub fn format_float8(value: f64) -> String {
    format_shortest(value, 15)
}

/// Formats a real the way PostgreSQL prints it (exponent form from 1e6 on).
pub fn format_float4(value: f32) -> String {
    if value.is_nan() || value.is_infinite() {
        return format_shortest(f64::from(value), 6);
    }
    // Shortest digits for the f32 itself, not for its widened f64.
    let scientific = format!("{value:e}");
    format_scientific(&scientific, 6)
}

fn format_shortest(value: f64, digits_threshold: i32) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    format_scientific(&format!("{value:e}"), digits_threshold)
}

/// Turns Rust's shortest scientific form (`-1.2345e6`) into PostgreSQL's layout.
fn format_scientific(scientific: &str, digits_threshold: i32) -> String {
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if negative { "-" } else { "" };
    if exponent < -4 || exponent >= digits_threshold {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exponent.abs());
    }
    let point = exponent + 1; // digits before the decimal point
    if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!(
            "{sign}{digits}{}",
            "0".repeat(point as usize - digits.len())
        )
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{sign}{whole}.{fraction}")
    }
}

/// PostgreSQL's text output format: `t`/`f`, shortest floats, `\x`-hex bytea.
/// NULL prints as the empty string; callers that must tell NULL apart check first.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Boolean(b) => f.write_str(if *b { "t" } else { "f" }),
            Value::SmallInt(v) => write!(f, "{v}"),
            Value::Integer(v) => write!(f, "{v}"),
            Value::BigInt(v) => write!(f, "{v}"),
            Value::Real(v) => f.write_str(&format_float4(*v)),
            Value::Double(v) => f.write_str(&format_float8(*v)),
            Value::Text(s) => f.write_str(s),
            Value::Bytea(bytes) => {
                f.write_str("\\x")?;
                for b in bytes {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            Value::Array { items, .. } => array::format(f, items),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<i16> for Value {
    fn from(v: i16) -> Self {
        Value::SmallInt(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Integer(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::BigInt(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Real(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytea(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Float text output matches what PostgreSQL 15 prints for the same values.
    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(format_float8(1.5), "1.5");
        assert_eq!(format_float8(100.0), "100");
        assert_eq!(format_float8(1e15), "1e+15");
        assert_eq!(format_float8(123456789012345.0), "123456789012345");
        assert_eq!(format_float8(0.0001), "0.0001");
        assert_eq!(format_float8(0.00001), "1e-05");
        assert_eq!(format_float8(-2.5e-10), "-2.5e-10");
        assert_eq!(format_float8(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_float8(f64::NAN), "NaN");
        assert_eq!(format_float8(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(format_float4(0.1), "0.1");
        assert_eq!(format_float4(1e6), "1e+06");
        assert_eq!(format_float4(123456.0), "123456");
    }

    /// Casts check ranges and input syntax with PostgreSQL's SQLSTATEs.
    #[test]
    fn casts() {
        assert_eq!(
            Value::Text(" 42 ".into()).cast(DataType::Integer).unwrap(),
            Value::Integer(42)
        );
        assert_eq!(
            Value::Text("abc".into())
                .cast(DataType::Integer)
                .unwrap_err()
                .sqlstate(),
            "22P02"
        );
        assert_eq!(
            Value::BigInt(1 << 40)
                .cast(DataType::Integer)
                .unwrap_err()
                .sqlstate(),
            "22003"
        );
        assert_eq!(
            Value::Double(2.5).cast(DataType::Integer).unwrap(),
            Value::Integer(2)
        );
        assert_eq!(
            Value::Double(3.5).cast(DataType::Integer).unwrap(),
            Value::Integer(4)
        );
        assert_eq!(
            Value::Text("yes".into()).cast(DataType::Boolean).unwrap(),
            Value::Boolean(true)
        );
        assert_eq!(
            Value::Text("\\x0aff".into()).cast(DataType::Bytea).unwrap(),
            Value::Bytea(vec![10, 255])
        );
        assert_eq!(
            Value::Text("abcd".into())
                .cast(DataType::Text {
                    max_length: Some(3)
                })
                .unwrap_err()
                .sqlstate(),
            "22001"
        );
    }

    /// NaN sorts above infinity, -0 equals 0, and integers compare across widths.
    #[test]
    fn comparisons() {
        assert_eq!(
            Value::Double(f64::NAN).compare(&Value::Double(f64::INFINITY)),
            Some(Ordering::Greater)
        );
        assert_eq!(Value::Double(-0.0), Value::Double(0.0));
        assert_eq!(Value::SmallInt(3), Value::BigInt(3));
        assert_eq!(
            Value::Integer(2).compare(&Value::Double(2.5)),
            Some(Ordering::Less)
        );
        assert_eq!(Value::Null.sort_cmp(&Value::Integer(1)), Ordering::Greater);
    }
}
