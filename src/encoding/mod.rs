//! How bytes on disk and on the wire are made.
//!
//! Two encodings, kept apart on purpose:
//! - [`keycode`]: an order-preserving encoding for keys, so that RocksDB's byte order is
//!   SQL value order and range scans work;
//! - this module's [`encode`]/[`decode`]: values (rows, catalog entries, commands) in
//!   bincode 2, each prefixed by a format-version byte so that a later format can be read
//!   beside this one. bincode sits behind these two functions only, so it can be swapped.

pub mod keycode;

use crate::error::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};

/// The format-version byte written in front of every persisted value.
pub const FORMAT_VERSION: u8 = 1;

/// Limit on one decoded value, so corrupt or hostile bytes cannot make us allocate
/// without bound (the largest legitimate value is a row or a command batch).
const DECODE_LIMIT_BYTES: usize = 256 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT_BYTES>()
}

/// Encodes a value with the current format version in front.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config())
        .map_err(|e| Error::Internal(format!("cannot encode value: {e}")))?;
    Ok(out)
}

/// How many bytes [`encode`] would make of `value`, without making them (to bound a
/// batch before building it).
pub fn encoded_len<T: Serialize>(value: &T) -> Result<usize> {
    let mut counter = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut counter, config())
        .map_err(|e| Error::Internal(format!("cannot encode value: {e}")))?;
    Ok(1 + counter.bytes_written)
}

/// Decodes a value written by [`encode`]; unknown versions and trailing bytes are
/// corruption, not panics.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (version, body) = bytes
        .split_first()
        .ok_or_else(|| Error::Corruption("empty value".into()))?;
    if *version != FORMAT_VERSION {
        return Err(Error::Corruption(format!(
            "unknown value format version {version}"
        )));
    }
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| Error::Corruption(format!("cannot decode value: {e}")))?;
    if used != body.len() {
        return Err(Error::Corruption(format!(
            "{} trailing bytes after value",
            body.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Value;

    /// A row survives the round trip, and damaged bytes are reported as corruption.
    #[test]
    fn round_trip_and_corruption() {
        let row = vec![Value::Integer(1), Value::Text("x".into()), Value::Null];
        let bytes = encode(&row).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: Vec<Value> = decode(&bytes).unwrap();
        assert_eq!(back, row);
        assert_eq!(decode::<Vec<Value>>(&[]).unwrap_err().sqlstate(), "XX001");
        assert_eq!(
            decode::<Vec<Value>>(&[9, 1]).unwrap_err().sqlstate(),
            "XX001"
        );
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode::<Vec<Value>>(&long).is_err());
    }

    /// The length counted without encoding is the length of the encoding.
    #[test]
    fn encoded_len_matches_encode() {
        let row = vec![
            Value::Integer(1),
            Value::Text("a longer text value".into()),
            Value::Null,
        ];
        assert_eq!(encoded_len(&row).unwrap(), encode(&row).unwrap().len());
    }
}
