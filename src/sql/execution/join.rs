//! Join executors: the left input streams, the right input is read once into memory.
//!
//! Keeping the right side in memory bounds a join by the size of that side, not by the
//! product of both; the planner puts the table written first on the left, as PostgreSQL
//! users expect from the row order of a LEFT JOIN. Rows are checked for interrupts by the
//! leaves that produce them, so a long join still honours cancellation and timeouts.

use super::Executor;
use crate::encoding::keycode;
use crate::error::Result;
use crate::sql::planner::expression::Expression;
use crate::sql::planner::plan::JoinType;
use crate::txn::Transaction;
use crate::types::Value;
use std::collections::HashMap;

/// Reads every row of an input.
fn drain(source: &mut dyn Executor, txn: &Transaction) -> Result<Vec<Vec<Value>>> {
    let mut rows = Vec::new();
    while let Some(row) = source.next(txn)? {
        rows.push(row);
    }
    Ok(rows)
}

fn joined(left: &[Value], right: &[Value]) -> Vec<Value> {
    let mut row = Vec::with_capacity(left.len() + right.len());
    row.extend_from_slice(left);
    row.extend_from_slice(right);
    row
}

fn null_extended(left: &[Value], right_width: usize) -> Vec<Value> {
    let mut row = Vec::with_capacity(left.len() + right_width);
    row.extend_from_slice(left);
    row.resize(left.len() + right_width, Value::Null);
    row
}

/// How the join finds a left row's candidate partners among the right rows.
enum Matcher {
    /// Every right row (a nested loop).
    All,
    /// The right rows whose keys equal the left row's (a hash join).
    Hash {
        left_keys: Vec<Expression>,
        right_keys: Vec<Expression>,
        table: HashMap<Vec<u8>, Vec<usize>>,
    },
}

/// Right rows (by position) still to test against the current left row.
enum Candidates {
    Range(std::ops::Range<usize>),
    List(std::vec::IntoIter<usize>),
}

impl Iterator for Candidates {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Candidates::Range(range) => range.next(),
            Candidates::List(list) => list.next(),
        }
    }
}

/// Joins a streaming left input with a materialized right input; a nested loop or a
/// hash join depending on its [`Matcher`].
pub struct Join {
    left: Box<dyn Executor>,
    /// The right input until it has been read into `right_rows`.
    right: Option<Box<dyn Executor>>,
    right_rows: Vec<Vec<Value>>,
    matcher: Matcher,
    join_type: JoinType,
    /// Condition on the joined row, beyond the hash keys.
    predicate: Option<Expression>,
    right_width: usize,
    /// The current left row, its remaining candidates, and whether it matched.
    current: Option<Vec<Value>>,
    candidates: Candidates,
    matched: bool,
}

impl Join {
    /// A nested loop join: every pair is tested against `predicate`.
    pub fn nested_loop(
        (left, right): (Box<dyn Executor>, Box<dyn Executor>),
        join_type: JoinType,
        predicate: Option<Expression>,
        right_width: usize,
    ) -> Join {
        Join::new(
            (left, right),
            Matcher::All,
            join_type,
            predicate,
            right_width,
        )
    }

    /// A hash join on pairwise-equal keys, then `residual` on the joined row.
    pub fn hash(
        (left, right): (Box<dyn Executor>, Box<dyn Executor>),
        join_type: JoinType,
        (left_keys, right_keys): (Vec<Expression>, Vec<Expression>),
        residual: Option<Expression>,
        right_width: usize,
    ) -> Join {
        let matcher = Matcher::Hash {
            left_keys,
            right_keys,
            table: HashMap::new(),
        };
        Join::new((left, right), matcher, join_type, residual, right_width)
    }

    fn new(
        (left, right): (Box<dyn Executor>, Box<dyn Executor>),
        matcher: Matcher,
        join_type: JoinType,
        predicate: Option<Expression>,
        right_width: usize,
    ) -> Join {
        Join {
            left,
            right: Some(right),
            right_rows: Vec::new(),
            matcher,
            join_type,
            predicate,
            right_width,
            current: None,
            candidates: Candidates::Range(0..0),
            matched: false,
        }
    }

    /// Reads the right input, and hashes it when this is a hash join.
    fn build(&mut self, mut right: Box<dyn Executor>, txn: &Transaction) -> Result<()> {
        self.right_rows = drain(right.as_mut(), txn)?;
        if let Matcher::Hash {
            right_keys, table, ..
        } = &mut self.matcher
        {
            for (position, row) in self.right_rows.iter().enumerate() {
                if let Some(key) = hash_key(right_keys, row)? {
                    table.entry(key).or_default().push(position);
                }
            }
        }
        Ok(())
    }

    fn candidates_for(&self, left: &[Value]) -> Result<Candidates> {
        Ok(match &self.matcher {
            Matcher::All => Candidates::Range(0..self.right_rows.len()),
            Matcher::Hash {
                left_keys, table, ..
            } => {
                let found = match hash_key(left_keys, left)? {
                    Some(key) => table.get(&key).cloned().unwrap_or_default(),
                    None => Vec::new(),
                };
                Candidates::List(found.into_iter())
            }
        })
    }
}

/// The key of a row in key encoding (so that 1 and 1.0 meet, as `=` says they do);
/// `None` when a key is NULL, which equals nothing.
fn hash_key(keys: &[Expression], row: &[Value]) -> Result<Option<Vec<u8>>> {
    let values = keys
        .iter()
        .map(|k| k.evaluate(row))
        .collect::<Result<Vec<_>>>()?;
    if values.iter().any(Value::is_null) {
        return Ok(None);
    }
    Ok(Some(keycode::encode_values(&values)))
}

impl Executor for Join {
    /// Tests the current left row's candidates, moves to the next left row when they run
    /// out, and NULL-extends an unmatched left row for a LEFT join.
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        if let Some(right) = self.right.take() {
            self.build(right, txn)?;
        }
        loop {
            if let Some(left_row) = &self.current {
                for position in self.candidates.by_ref() {
                    let row = joined(left_row, &self.right_rows[position]);
                    let keep = match &self.predicate {
                        None => true,
                        Some(p) => p.evaluate(&row)?.as_bool() == Some(true),
                    };
                    if keep {
                        self.matched = true;
                        return Ok(Some(row));
                    }
                }
                let unmatched = !self.matched && self.join_type == JoinType::Left;
                let finished = self.current.take();
                if let (true, Some(left_row)) = (unmatched, finished) {
                    return Ok(Some(null_extended(&left_row, self.right_width)));
                }
            }
            let Some(left_row) = self.left.next(txn)? else {
                return Ok(None);
            };
            self.candidates = self.candidates_for(&left_row)?;
            self.matched = false;
            self.current = Some(left_row);
        }
    }
}
