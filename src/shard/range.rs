//! Table-level key ranges: what the planner asks for in values, before the router turns
//! them into stored key spans per shard.

use crate::types::Value;
use std::ops::Bound;

/// A set of keys: those starting with `prefix` whose next column lies between the bounds.
/// With unbounded bounds it is every key with the prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRange {
    /// Values of the leading key columns, fixed by equality.
    pub prefix: Vec<Value>,
    /// Lower bound on the next key column.
    pub lower: Bound<Value>,
    /// Upper bound on the next key column.
    pub upper: Bound<Value>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> KeyRange {
        KeyRange {
            prefix: Vec::new(),
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        }
    }

    /// Exactly the key `values` (every key column fixed).
    pub fn point(values: Vec<Value>) -> KeyRange {
        KeyRange {
            prefix: values,
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        }
    }

    /// Whether the range is a single point for a key of `key_len` columns.
    pub fn is_point(&self, key_len: usize) -> bool {
        self.prefix.len() == key_len
            && matches!(
                (&self.lower, &self.upper),
                (Bound::Unbounded, Bound::Unbounded)
            )
    }
}
