//! PostgreSQL's binary format for one-dimensional arrays, which drivers such as
//! tokio-postgres and psycopg use for `type[]` results and parameters:
//! `ndim, has_nulls, element_oid, [length, lower_bound]*ndim, ([length, bytes] | -1)*`,
//! all integers 32-bit big-endian, elements in their own binary formats.

use crate::error::{Error, Result};
use crate::types::{ElementType, Value};

/// Encodes an array value (elements already of `element`'s type).
pub fn encode(element: ElementType, items: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + items.len() * 8);
    let dimensions: i32 = if items.is_empty() { 0 } else { 1 };
    out.extend_from_slice(&dimensions.to_be_bytes());
    out.extend_from_slice(&i32::from(items.iter().any(Value::is_null)).to_be_bytes());
    out.extend_from_slice(&element.data_type().oid().to_be_bytes());
    if !items.is_empty() {
        out.extend_from_slice(&(items.len() as i32).to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
    }
    for item in items {
        match encode_element(element, item) {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(bytes) => {
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
        }
    }
    out
}

fn encode_element(element: ElementType, item: &Value) -> Option<Vec<u8>> {
    if item.is_null() {
        return None;
    }
    let integer = || item.as_i64().unwrap_or_default();
    let float = || item.as_f64().unwrap_or(f64::NAN);
    Some(match element {
        ElementType::Boolean => vec![u8::from(item.as_bool() == Some(true))],
        ElementType::SmallInt => (integer() as i16).to_be_bytes().to_vec(),
        ElementType::Integer => (integer() as i32).to_be_bytes().to_vec(),
        ElementType::BigInt => integer().to_be_bytes().to_vec(),
        ElementType::Real => (float() as f32).to_be_bytes().to_vec(),
        ElementType::Double => float().to_be_bytes().to_vec(),
        ElementType::Text => item.to_string().into_bytes(),
        ElementType::Bytea => match item {
            Value::Bytea(bytes) => bytes.clone(),
            other => other.to_string().into_bytes(),
        },
    })
}

/// Decodes an array parameter a client sent in binary format.
pub fn decode(bytes: &[u8], element: ElementType) -> Result<Value> {
    let mut reader = Reader { bytes, position: 0 };
    let dimensions = reader.int()?;
    let _has_nulls = reader.int()?;
    let _element_oid = reader.int()?;
    let length = match dimensions {
        0 => 0,
        1 => {
            let length = reader.int()?;
            let _lower_bound = reader.int()?;
            usize::try_from(length).map_err(|_| malformed("negative array length"))?
        }
        _ => {
            return Err(Error::FeatureNotSupported(
                "multi-dimensional arrays".into(),
            ))
        }
    };
    let mut items = Vec::with_capacity(length.min(bytes.len()));
    for _ in 0..length {
        let size = reader.int()?;
        items.push(match usize::try_from(size) {
            Err(_) => Value::Null,
            Ok(size) => decode_element(element, reader.take(size)?)?,
        });
    }
    if reader.position != bytes.len() {
        return Err(malformed("bytes after the last element"));
    }
    Ok(Value::Array { element, items })
}

fn decode_element(element: ElementType, bytes: &[u8]) -> Result<Value> {
    let fixed = |n: usize| -> Result<&[u8]> {
        (bytes.len() == n)
            .then_some(bytes)
            .ok_or_else(|| malformed("element of the wrong size"))
    };
    Ok(match element {
        ElementType::Boolean => Value::Boolean(fixed(1)?[0] != 0),
        ElementType::SmallInt => Value::SmallInt(i16::from_be_bytes(array_of(fixed(2)?))),
        ElementType::Integer => Value::Integer(i32::from_be_bytes(array_of(fixed(4)?))),
        ElementType::BigInt => Value::BigInt(i64::from_be_bytes(array_of(fixed(8)?))),
        ElementType::Real => Value::Real(f32::from_be_bytes(array_of(fixed(4)?))),
        ElementType::Double => Value::Double(f64::from_be_bytes(array_of(fixed(8)?))),
        ElementType::Text => Value::Text(
            String::from_utf8(bytes.to_vec()).map_err(|_| malformed("text is not UTF-8"))?,
        ),
        ElementType::Bytea => Value::Bytea(bytes.to_vec()),
    })
}

fn array_of<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn malformed(why: &str) -> Error {
    Error::InvalidBinaryRepresentation(format!("malformed binary array: {why}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8]> {
        let end = self
            .position
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| malformed("array ends early"))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn int(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(array_of(self.take(4)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is encoded decodes to the same array, NULLs and empty arrays included.
    #[test]
    fn round_trip() {
        for (element, items) in [
            (
                ElementType::Integer,
                vec![Value::Integer(1), Value::Null, Value::Integer(-3)],
            ),
            (ElementType::Text, vec![Value::Text("a b".into())]),
            (ElementType::Double, vec![]),
        ] {
            let bytes = encode(element, &items);
            let decoded = decode(&bytes, element).unwrap();
            assert_eq!(decoded, Value::Array { element, items });
        }
    }

    /// Truncated or inconsistent input is an error, never a panic.
    #[test]
    fn malformed_input_is_refused() {
        let bytes = encode(ElementType::BigInt, &[Value::BigInt(7), Value::BigInt(8)]);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], ElementType::BigInt).is_err(), "{cut}");
        }
        assert!(decode(&bytes, ElementType::Integer).is_err());
    }
}
