//! How bytes on disk and on the wire are made.
//!
//! Two encodings, kept apart on purpose:
//! - [`keycode`]: an order-preserving encoding for keys, so that RocksDB's byte order is
//!   SQL value order and range scans work;
//! - this module's [`encode`]/[`decode`]: values (rows, catalog entries, commands) in
//!   bincode 2, each prefixed by a format-version byte so that a later format can be read
//!   beside this one. bincode sits behind these two functions only, so it can be swapped.
//!
//! Format evolution: bincode is not self-describing, so a struct that gains a field
//! cannot read its old bytes by itself. Every value is written in the current
//! [`FORMAT_VERSION`]; [`decode`] accepts every version since [`OLDEST_FORMAT_VERSION`]
//! and, while it decodes, [`decoding_version`] tells a type's `Deserialize` which
//! version the bytes are in, so a changed type reads its older layout and converts it
//! (see `catalog::legacy`). Types that never changed need nothing. Raft logs, snapshots
//! and stored catalogs written by an older Tessera therefore stay readable.

pub mod keycode;

use crate::error::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};

/// The format-version byte written in front of every persisted value. Version 2: column
/// defaults became expressions, columns may be identity columns, the catalog holds
/// sequences and a table spec the sequences its SERIAL columns own.
pub const FORMAT_VERSION: u8 = 2;

/// The oldest format [`decode`] still reads.
pub const OLDEST_FORMAT_VERSION: u8 = 1;

thread_local! {
    /// The format version of the value [`decode`] is decoding on this thread.
    static DECODING: std::cell::Cell<u8> = const { std::cell::Cell::new(FORMAT_VERSION) };
}

/// The format version of the bytes being decoded on this thread ([`FORMAT_VERSION`]
/// outside [`decode`]): a type whose layout changed reads its older layout by it.
pub fn decoding_version() -> u8 {
    DECODING.with(|version| version.get())
}

/// Restores the decoding version a nested [`decode`] replaced, even if decoding panics.
struct DecodingVersion(u8);

impl DecodingVersion {
    fn enter(version: u8) -> DecodingVersion {
        DecodingVersion(DECODING.with(|current| current.replace(version)))
    }
}

impl Drop for DecodingVersion {
    fn drop(&mut self) {
        DECODING.with(|current| current.set(self.0));
    }
}

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

/// Decodes a value written by [`encode`] in any format still read; unknown versions and
/// trailing bytes are corruption, not panics.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (version, body) = bytes
        .split_first()
        .ok_or_else(|| Error::Corruption("empty value".into()))?;
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(version) {
        return Err(Error::Corruption(format!(
            "unknown value format version {version}"
        )));
    }
    let _version = DecodingVersion::enter(*version);
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
