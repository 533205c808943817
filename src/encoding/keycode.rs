//! Order-preserving key encoding: `a < b` as SQL values exactly when `encode(a) < encode(b)`
//! as bytes, for single values and for tuples (composite keys).
//!
//! Each value is a type tag followed by a body:
//! - NULL `0x00` (sorts first in keys; ORDER BY places NULLs itself);
//! - boolean `0x01`, then `0`/`1`;
//! - every integer width `0x02`, then the value as i64 big-endian with the sign bit flipped,
//!   so SMALLINT 3 and BIGINT 3 encode alike (a column has one type anyway);
//! - every float `0x03`, then the f64 bits with the sign bit flipped for positives and all
//!   bits flipped for negatives; -0 is written as +0 and every NaN as one canonical NaN
//!   above +infinity, because SQL treats them as equal;
//! - text `0x04` and bytea `0x05`, then the bytes with `0x00` escaped as `0x00 0xFF`,
//!   ended by `0x00 0x01`; the escape keeps the encoding prefix-free, so tuples compare
//!   element by element;
//! - arrays `0x06`, then `0x01` and the encoding of each element, ended by `0x00`: equal
//!   arrays encode alike (what DISTINCT, hash joins and set operations need); arrays are
//!   not index keys, so their byte order (NULL elements first) is not SQL's.

use crate::error::{Error, Result};
use crate::types::Value;

const TAG_NULL: u8 = 0x00;
const TAG_BOOLEAN: u8 = 0x01;
const TAG_INTEGER: u8 = 0x02;
const TAG_FLOAT: u8 = 0x03;
const TAG_TEXT: u8 = 0x04;
const TAG_BYTEA: u8 = 0x05;
const TAG_ARRAY: u8 = 0x06;
const ARRAY_ELEMENT: u8 = 0x01;
const ARRAY_END: u8 = 0x00;

/// The first byte after every NULL encoding: a key range that starts here skips NULLs.
pub const FIRST_NON_NULL: u8 = TAG_BOOLEAN;

/// Appends the encoding of one value.
pub fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Boolean(b) => {
            out.push(TAG_BOOLEAN);
            out.push(u8::from(*b));
        }
        Value::SmallInt(_) | Value::Integer(_) | Value::BigInt(_) => {
            out.push(TAG_INTEGER);
            let v = value.as_i64().unwrap_or_default();
            out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Real(_) | Value::Double(_) => {
            out.push(TAG_FLOAT);
            out.extend_from_slice(&float_key(value.as_f64().unwrap_or(f64::NAN)).to_be_bytes());
        }
        Value::Text(s) => encode_bytes(out, TAG_TEXT, s.as_bytes()),
        Value::Bytea(bytes) => encode_bytes(out, TAG_BYTEA, bytes),
        Value::Array { items, .. } => {
            out.push(TAG_ARRAY);
            for item in items {
                out.push(ARRAY_ELEMENT);
                encode_value(out, item);
            }
            out.push(ARRAY_END);
        }
    }
}

/// Encodes a tuple of values (a composite key).
pub fn encode_values(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 9);
    for value in values {
        encode_value(&mut out, value);
    }
    out
}

fn float_key(value: f64) -> u64 {
    let canonical = if value.is_nan() {
        f64::NAN
    } else if value == 0.0 {
        0.0 // folds -0 into +0
    } else {
        value
    };
    let bits = canonical.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn encode_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    for &b in bytes {
        if b == 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// Decodes one value starting at `*position`, advancing past it. Integers come back as
/// BIGINT and floats as DOUBLE PRECISION; the caller casts to the column's type.
pub fn decode_value(bytes: &[u8], position: &mut usize) -> Result<Value> {
    let tag = *bytes
        .get(*position)
        .ok_or_else(|| Error::Corruption("key ends before a value".into()))?;
    *position += 1;
    let value = match tag {
        TAG_NULL => Value::Null,
        TAG_BOOLEAN => Value::Boolean(take(bytes, position, 1)?[0] != 0),
        TAG_INTEGER => {
            let raw = u64::from_be_bytes(fixed8(take(bytes, position, 8)?));
            Value::BigInt((raw ^ (1 << 63)) as i64)
        }
        TAG_FLOAT => {
            let raw = u64::from_be_bytes(fixed8(take(bytes, position, 8)?));
            let bits = if raw >> 63 == 1 {
                raw & !(1 << 63)
            } else {
                !raw
            };
            Value::Double(f64::from_bits(bits))
        }
        TAG_TEXT => {
            let raw = decode_bytes(bytes, position)?;
            Value::Text(
                String::from_utf8(raw)
                    .map_err(|_| Error::Corruption("key text is not UTF-8".into()))?,
            )
        }
        TAG_BYTEA => Value::Bytea(decode_bytes(bytes, position)?),
        TAG_ARRAY => decode_array(bytes, position)?,
        other => return Err(Error::Corruption(format!("unknown key tag {other:#x}"))),
    };
    Ok(value)
}

/// An array's elements, up to its end marker; the element type is that of the first
/// non-NULL element (the caller casts to the expression's type, as for scalars).
fn decode_array(bytes: &[u8], position: &mut usize) -> Result<Value> {
    let mut items = Vec::new();
    loop {
        match take(bytes, position, 1)?[0] {
            ARRAY_END => break,
            ARRAY_ELEMENT => items.push(decode_value(bytes, position)?),
            other => return Err(Error::Corruption(format!("bad array marker {other:#x}"))),
        }
    }
    let element = items
        .iter()
        .find_map(Value::data_type)
        .and_then(crate::types::ElementType::of)
        .unwrap_or(crate::types::ElementType::Text);
    Ok(Value::Array { element, items })
}

/// Decodes `count` consecutive values starting at `*position`.
pub fn decode_values(bytes: &[u8], position: &mut usize, count: usize) -> Result<Vec<Value>> {
    (0..count).map(|_| decode_value(bytes, position)).collect()
}

fn take<'a>(bytes: &'a [u8], position: &mut usize, len: usize) -> Result<&'a [u8]> {
    let slice = bytes
        .get(*position..*position + len)
        .ok_or_else(|| Error::Corruption("key is truncated".into()))?;
    *position += len;
    Ok(slice)
}

fn fixed8(slice: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(slice);
    out
}

fn decode_bytes(bytes: &[u8], position: &mut usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let b = take(bytes, position, 1)?[0];
        if b != 0 {
            out.push(b);
            continue;
        }
        match take(bytes, position, 1)?[0] {
            0xFF => out.push(0),
            0x01 => return Ok(out),
            other => return Err(Error::Corruption(format!("bad escape {other:#x} in key"))),
        }
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, or
/// `None` when no such bound exists (the prefix is all `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    /// SQL order of two tuples of the same shape, with NULL first as keys place it.
    fn sql_tuple_order(a: &[Value], b: &[Value]) -> Ordering {
        for (x, y) in a.iter().zip(b) {
            let ordering = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => x.compare(y).expect("same-typed values compare"),
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    fn float_strategy() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(0.0),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::NAN),
            Just(-f64::NAN),
            Just(f64::MIN_POSITIVE),
            Just(-f64::MIN_POSITIVE),
        ]
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-c\\x00\\xff]{0,4}",
            any::<String>(),
            Just("\u{0}".to_string()),
            Just("é漢字🦀".to_string()),
        ]
    }

    /// A value of the given type (0..=7: boolean, bigint, smallint, double, text, integer,
    /// real, bytea), or NULL now and then.
    fn value_of_kind(kind: u8) -> BoxedStrategy<Value> {
        let non_null: BoxedStrategy<Value> = match kind {
            0 => any::<bool>().prop_map(Value::Boolean).boxed(),
            1 => prop_oneof![
                any::<i64>(),
                Just(0i64),
                Just(-1),
                Just(i64::MIN),
                Just(i64::MAX)
            ]
            .prop_map(Value::BigInt)
            .boxed(),
            2 => any::<i16>().prop_map(Value::SmallInt).boxed(),
            3 => float_strategy().prop_map(Value::Double).boxed(),
            4 => text_strategy().prop_map(Value::Text).boxed(),
            5 => any::<i32>().prop_map(Value::Integer).boxed(),
            6 => prop_oneof![
                any::<f32>(),
                Just(-0.0f32),
                Just(f32::INFINITY),
                Just(f32::NEG_INFINITY),
                Just(f32::NAN)
            ]
            .prop_map(Value::Real)
            .boxed(),
            _ => proptest::collection::vec(
                prop_oneof![Just(0u8), Just(1), Just(255), any::<u8>()],
                0..5,
            )
            .prop_map(Value::Bytea)
            .boxed(),
        };
        prop_oneof![1 => Just(Value::Null), 6 => non_null].boxed()
    }

    /// Two tuples with the same column types (1 to 3 columns).
    fn tuple_pair() -> impl Strategy<Value = (Vec<Value>, Vec<Value>)> {
        proptest::collection::vec(0u8..8, 1..4).prop_flat_map(|kinds| {
            let a: Vec<_> = kinds.iter().map(|k| value_of_kind(*k)).collect();
            let b: Vec<_> = kinds.iter().map(|k| value_of_kind(*k)).collect();
            (a, b)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Byte order of encodings equals SQL order of the values, for single values and
        /// composite keys of every type, NULL, ±0, ±inf, NaN and odd strings included.
        #[test]
        fn encoding_preserves_order((a, b) in tuple_pair()) {
            let expected = sql_tuple_order(&a, &b);
            let actual = encode_values(&a).cmp(&encode_values(&b));
            prop_assert_eq!(actual, expected, "{:?} vs {:?}", a, b);
        }

        /// Decoding gives back the same values (integers widened, floats as doubles).
        #[test]
        fn encoding_round_trips((a, _b) in tuple_pair()) {
            let bytes = encode_values(&a);
            let mut position = 0;
            let back = decode_values(&bytes, &mut position, a.len()).unwrap();
            prop_assert_eq!(position, bytes.len());
            prop_assert_eq!(back, a);
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn decoding_garbage_does_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut position = 0;
            let _ = decode_values(&bytes, &mut position, 3);
        }
    }

    /// The corner cases named by the design, spelled out.
    #[test]
    fn fixed_corner_cases() {
        let order = [
            Value::Null,
            Value::Double(f64::NEG_INFINITY),
            Value::Double(-1.5),
            Value::Double(0.0),
            Value::Double(2.0),
            Value::Double(f64::INFINITY),
            Value::Double(f64::NAN),
        ];
        for pair in order.windows(2) {
            assert!(
                encode_values(&pair[..1]) < encode_values(&pair[1..]),
                "{pair:?}"
            );
        }
        assert_eq!(
            encode_values(&[Value::Double(-0.0)]),
            encode_values(&[Value::Double(0.0)])
        );
        assert!(
            encode_values(&[Value::Text(String::new())])
                < encode_values(&[Value::Text("\0".into())])
        );
        assert!(
            encode_values(&[Value::Text("a".into()), Value::Integer(9)])
                < encode_values(&[Value::Text("ab".into()), Value::Integer(1)])
        );
        assert!(encode_values(&[Value::BigInt(-1)]) < encode_values(&[Value::SmallInt(0)]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
    }
}
