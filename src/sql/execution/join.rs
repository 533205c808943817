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

/// The state both join algorithms share: the current left row and what it matched.
struct Probe {
    left: Option<Vec<Value>>,
    /// Right rows (by position) still to test against the current left row.
    candidates: std::vec::IntoIter<usize>,
    matched: bool,
}

impl Probe {
    fn new() -> Probe {
        Probe {
            left: None,
            candidates: Vec::new().into_iter(),
            matched: false,
        }
    }
}

/// Tests each left row against every right row.
pub struct NestedLoopJoin {
    left: Box<dyn Executor>,
    right: Option<Box<dyn Executor>>,
    right_rows: Vec<Vec<Value>>,
    join_type: JoinType,
    predicate: Option<Expression>,
    right_width: usize,
    probe: Probe,
}

impl NestedLoopJoin {
    /// A nested loop join of two inputs.
    pub fn new(
        left: Box<dyn Executor>,
        right: Box<dyn Executor>,
        join_type: JoinType,
        predicate: Option<Expression>,
        right_width: usize,
    ) -> NestedLoopJoin {
        NestedLoopJoin {
            left,
            right: Some(right),
            right_rows: Vec::new(),
            join_type,
            predicate,
            right_width,
            probe: Probe::new(),
        }
    }
}

impl Executor for NestedLoopJoin {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        if let Some(mut right) = self.right.take() {
            self.right_rows = drain(right.as_mut(), txn)?;
        }
        let all: Vec<usize> = (0..self.right_rows.len()).collect();
        next_joined(
            &mut self.probe,
            self.left.as_mut(),
            txn,
            &self.right_rows,
            |_| Ok(all.clone()),
            self.predicate.as_ref(),
            self.join_type,
            self.right_width,
        )
    }
}

/// Finds a left row's partners through a hash table of the right side's keys.
pub struct HashJoin {
    left: Box<dyn Executor>,
    right: Option<Box<dyn Executor>>,
    right_rows: Vec<Vec<Value>>,
    table: HashMap<Vec<u8>, Vec<usize>>,
    join_type: JoinType,
    left_keys: Vec<Expression>,
    right_keys: Vec<Expression>,
    residual: Option<Expression>,
    right_width: usize,
    probe: Probe,
}

impl HashJoin {
    /// A hash join of two inputs on pairwise-equal keys.
    pub fn new(
        left: Box<dyn Executor>,
        right: Box<dyn Executor>,
        join_type: JoinType,
        keys: (Vec<Expression>, Vec<Expression>),
        residual: Option<Expression>,
        right_width: usize,
    ) -> HashJoin {
        HashJoin {
            left,
            right: Some(right),
            right_rows: Vec::new(),
            table: HashMap::new(),
            join_type,
            left_keys: keys.0,
            right_keys: keys.1,
            residual,
            right_width,
            probe: Probe::new(),
        }
    }

    fn build(&mut self, mut right: Box<dyn Executor>, txn: &Transaction) -> Result<()> {
        self.right_rows = drain(right.as_mut(), txn)?;
        for (position, row) in self.right_rows.iter().enumerate() {
            if let Some(key) = hash_key(&self.right_keys, row)? {
                self.table.entry(key).or_default().push(position);
            }
        }
        Ok(())
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

impl Executor for HashJoin {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        if let Some(right) = self.right.take() {
            self.build(right, txn)?;
        }
        let (table, left_keys) = (&self.table, &self.left_keys);
        next_joined(
            &mut self.probe,
            self.left.as_mut(),
            txn,
            &self.right_rows,
            |left| {
                Ok(match hash_key(left_keys, left)? {
                    Some(key) => table.get(&key).cloned().unwrap_or_default(),
                    None => Vec::new(),
                })
            },
            self.residual.as_ref(),
            self.join_type,
            self.right_width,
        )
    }
}

/// The next joined row: tests the current left row's candidates, moves to the next left
/// row when they run out, and NULL-extends an unmatched left row for a LEFT join.
#[allow(clippy::too_many_arguments)]
fn next_joined(
    probe: &mut Probe,
    left: &mut dyn Executor,
    txn: &Transaction,
    right_rows: &[Vec<Value>],
    candidates_for: impl Fn(&[Value]) -> Result<Vec<usize>>,
    predicate: Option<&Expression>,
    join_type: JoinType,
    right_width: usize,
) -> Result<Option<Vec<Value>>> {
    loop {
        if let Some(left_row) = &probe.left {
            for position in probe.candidates.by_ref() {
                let row = joined(left_row, &right_rows[position]);
                let keep = match predicate {
                    None => true,
                    Some(p) => p.evaluate(&row)?.as_bool() == Some(true),
                };
                if keep {
                    probe.matched = true;
                    return Ok(Some(row));
                }
            }
            let unmatched = !probe.matched && join_type == JoinType::Left;
            let finished = probe.left.take();
            if let (true, Some(left_row)) = (unmatched, finished) {
                return Ok(Some(null_extended(&left_row, right_width)));
            }
        }
        let Some(left_row) = left.next(txn)? else {
            return Ok(None);
        };
        probe.candidates = candidates_for(&left_row)?.into_iter();
        probe.matched = false;
        probe.left = Some(left_row);
    }
}
