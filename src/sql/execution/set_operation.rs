//! UNION, INTERSECT and EXCEPT over two inputs with the same column types.
//!
//! UNION streams both inputs, remembering rows seen unless ALL; INTERSECT and EXCEPT
//! first count the right input's rows, then stream the left against the counts. Rows are
//! compared in key encoding, so NULLs are equal to each other here, as SQL's set
//! operations require (unlike `=`). Memory grows with the distinct rows remembered.

use super::Executor;
use crate::encoding::keycode;
use crate::error::Result;
use crate::sql::ast::SetOperator;
use crate::txn::Transaction;
use crate::types::Value;
use std::collections::{HashMap, HashSet};

/// Combines the rows of two executors.
pub struct SetOperationExecutor {
    operator: SetOperator,
    all: bool,
    left: Box<dyn Executor>,
    right: Box<dyn Executor>,
    left_exhausted: bool,
    /// UNION without ALL: rows already returned.
    seen: HashSet<Vec<u8>>,
    /// INTERSECT and EXCEPT: how many times each row is still to be matched on the
    /// right; `None` until the right input has been read.
    right_counts: Option<HashMap<Vec<u8>, u64>>,
}

impl SetOperationExecutor {
    /// `left OPERATOR [ALL] right`.
    pub fn new(
        operator: SetOperator,
        all: bool,
        left: Box<dyn Executor>,
        right: Box<dyn Executor>,
    ) -> SetOperationExecutor {
        SetOperationExecutor {
            operator,
            all,
            left,
            right,
            left_exhausted: false,
            seen: HashSet::new(),
            right_counts: None,
        }
    }

    fn next_union(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        loop {
            let row = if self.left_exhausted {
                self.right.next(txn)?
            } else {
                match self.left.next(txn)? {
                    Some(row) => Some(row),
                    None => {
                        self.left_exhausted = true;
                        continue;
                    }
                }
            };
            let Some(row) = row else { return Ok(None) };
            if self.all || self.seen.insert(keycode::encode_values(&row)) {
                return Ok(Some(row));
            }
        }
    }

    fn count_right(&mut self, txn: &Transaction) -> Result<HashMap<Vec<u8>, u64>> {
        let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
        while let Some(row) = self.right.next(txn)? {
            *counts.entry(keycode::encode_values(&row)).or_default() += 1;
        }
        Ok(counts)
    }

    fn next_matched(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        let mut counts = match self.right_counts.take() {
            Some(counts) => counts,
            None => self.count_right(txn)?,
        };
        let result = loop {
            let Some(row) = self.left.next(txn)? else {
                break None;
            };
            let key = keycode::encode_values(&row);
            let keep = match (self.operator, self.all) {
                (SetOperator::Intersect, true) => take_one(&mut counts, &key),
                // Once returned, the count drops to zero so the row is not returned again.
                (SetOperator::Intersect, false) => {
                    counts.get_mut(&key).is_some_and(|c| std::mem::take(c) > 0)
                }
                (SetOperator::Except, true) => !take_one(&mut counts, &key),
                // A returned row is recorded with count zero: present, so skipped again.
                (SetOperator::Except, false) => match counts.entry(key) {
                    std::collections::hash_map::Entry::Occupied(_) => false,
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(0);
                        true
                    }
                },
                (SetOperator::Union, _) => true,
            };
            if keep {
                break Some(row);
            }
        };
        self.right_counts = Some(counts);
        Ok(result)
    }
}

/// Uses up one occurrence of `key` on the right; whether there was one.
fn take_one(counts: &mut HashMap<Vec<u8>, u64>, key: &[u8]) -> bool {
    match counts.get_mut(key) {
        Some(count) if *count > 0 => {
            *count -= 1;
            true
        }
        _ => false,
    }
}

impl Executor for SetOperationExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        match self.operator {
            SetOperator::Union => self.next_union(txn),
            SetOperator::Intersect | SetOperator::Except => self.next_matched(txn),
        }
    }
}
