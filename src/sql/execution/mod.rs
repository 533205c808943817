//! The executor: runs a plan over a transaction.
//!
//! Read operators are pull-based iterators ([`Executor::next`]), so LIMIT stops a scan
//! early and memory stays bounded except where an operator must see every row (sort,
//! aggregate, distinct). Writes first collect the rows to change, then change them, so
//! an UPDATE never meets the rows it has just written (the Halloween problem).

mod aggregate;
mod array;
pub mod copy;
pub mod expression;
pub mod interrupt;
mod join;
mod scan;
mod set_operation;
mod subquery;
mod table_function;
mod write;

use crate::encoding::keycode;
use crate::error::Result;
use crate::replica::Replica;
use crate::sql::planner::expression::Expression;
use crate::sql::planner::plan::{Plan, SortKey};
use crate::txn::Transaction;
use crate::types::Value;
use interrupt::Interrupt;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

/// A source of rows.
pub trait Executor {
    /// The next row, or `None` when there are no more.
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>>;
}

/// What running a plan produced.
#[derive(Debug)]
pub enum Outcome {
    /// Rows of a query.
    Rows(Vec<Vec<Value>>),
    /// Rows inserted, updated or deleted.
    Written {
        /// Which change.
        change: Change,
        /// How many rows it wrote.
        count: u64,
        /// What RETURNING computed from each row written, if asked.
        returned: Option<Vec<Vec<Value>>>,
    },
}

/// The kind of a data change, for its command tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
}

/// Runs a plan to completion.
pub fn execute(
    plan: &Plan,
    txn: &mut Transaction,
    replica: &Replica,
    interrupt: &Arc<Interrupt>,
) -> Result<Outcome> {
    match plan {
        Plan::Insert {
            table,
            source,
            on_conflict: None,
            returning,
        } => {
            let rows = write::rows_to_insert(table, collect(source, txn, interrupt)?, replica)?;
            let returned = returned(returning, rows.iter().cloned(), txn, interrupt)?;
            let count = write::insert(table, rows, txn)?;
            Ok(written(Change::Insert, count, returned))
        }
        Plan::Insert {
            table,
            source,
            on_conflict: Some(conflict),
            returning,
        } => {
            let rows = write::rows_to_insert(table, collect(source, txn, interrupt)?, replica)?;
            let keep = returning.is_some();
            let upserted = write::upsert(table, rows, conflict, keep, txn)?;
            // After the writes: which rows are returned is only known once each is
            // inserted, updated or skipped.
            let returned = returned(returning, upserted.rows.into_iter(), txn, interrupt)?;
            Ok(written(Change::Insert, upserted.count, returned))
        }
        Plan::Update {
            table,
            source,
            assignments,
            returning,
        } => {
            let rows = collect(source, txn, interrupt)?;
            let changes = write::rows_to_update(table, rows, assignments)?;
            let updated = changes.iter().map(write::RowUpdate::returned_row);
            let returned = returned(returning, updated, txn, interrupt)?;
            let count = write::update(table, changes, txn)?;
            Ok(written(Change::Update, count, returned))
        }
        Plan::Delete {
            table,
            source,
            returning,
        } => {
            let rows = write::rows_to_delete(table, collect(source, txn, interrupt)?);
            let returned = returned(returning, rows.iter().cloned(), txn, interrupt)?;
            let count = write::delete(table, &rows, txn)?;
            Ok(written(Change::Delete, count, returned))
        }
        query => collect(query, txn, interrupt).map(Outcome::Rows),
    }
}

fn written(change: Change, count: u64, returned: Option<Vec<Vec<Value>>>) -> Outcome {
    Outcome::Written {
        change,
        count,
        returned,
    }
}

/// RETURNING evaluated over the rows a data change is about to write (as written, or
/// as they were for DELETE), before any is buffered: a subquery in it reads the
/// statement's snapshot without its own changes, as in PostgreSQL.
fn returned(
    returning: &Option<Vec<Expression>>,
    rows: impl Iterator<Item = Vec<Value>>,
    txn: &Transaction,
    interrupt: &Arc<Interrupt>,
) -> Result<Option<Vec<Vec<Value>>>> {
    let Some(expressions) = returning else {
        return Ok(None);
    };
    let mut project = ProjectExecutor::new(
        Box::new(RowsExecutor {
            rows: rows.collect::<Vec<_>>().into_iter(),
        }),
        subquery::Evaluated::new(expressions.clone(), interrupt),
    );
    let mut out = Vec::new();
    while let Some(row) = project.next(txn)? {
        out.push(row);
    }
    Ok(Some(out))
}

/// Rows already computed (what a data change wrote), handed on one by one.
struct RowsExecutor {
    rows: std::vec::IntoIter<Vec<Value>>,
}

impl Executor for RowsExecutor {
    fn next(&mut self, _txn: &Transaction) -> Result<Option<Vec<Value>>> {
        Ok(self.rows.next())
    }
}

fn collect(plan: &Plan, txn: &Transaction, interrupt: &Arc<Interrupt>) -> Result<Vec<Vec<Value>>> {
    let mut executor = build(plan, interrupt)?;
    let mut rows = Vec::new();
    while let Some(row) = executor.next(txn)? {
        rows.push(row);
    }
    Ok(rows)
}

/// Builds the executor tree for a read plan. Leaves (scans, VALUES) produce every row a
/// statement touches, so they are where cancellation and timeouts are checked.
pub fn build(plan: &Plan, interrupt: &Arc<Interrupt>) -> Result<Box<dyn Executor>> {
    build_hinted(plan, interrupt, None)
}

/// [`build`], with `rows_wanted`: how many rows a LIMIT above asks of this node (through
/// projections and filters only), so a scan of many shards reads about that many from
/// each first instead of a full batch (see `Plan::limit_pushdown`).
fn build_hinted(
    plan: &Plan,
    interrupt: &Arc<Interrupt>,
    rows_wanted: Option<u64>,
) -> Result<Box<dyn Executor>> {
    Ok(match plan {
        Plan::Values { rows } => Checked::wrap(
            ValuesExecutor {
                rows: rows.clone().into_iter(),
                interrupt: Arc::clone(interrupt),
            },
            interrupt,
        ),
        Plan::Scan { table, access } => Checked::wrap(
            scan::ScanExecutor::new(table.clone(), access).wanting(rows_wanted),
            interrupt,
        ),
        Plan::TableFunction {
            function,
            arguments,
            data_type,
        } => Checked::wrap(
            table_function::TableFunctionExecutor::new(
                *function,
                arguments.clone(),
                *data_type,
                interrupt,
            ),
            interrupt,
        ),
        Plan::Filter { source, predicate } => Box::new(FilterExecutor {
            source: build_hinted(source, interrupt, rows_wanted)?,
            predicate: subquery::Evaluated::new(vec![predicate.clone()], interrupt),
        }),
        Plan::Project {
            source,
            expressions,
        } => Box::new(ProjectExecutor::new(
            build_hinted(source, interrupt, rows_wanted)?,
            subquery::Evaluated::new(expressions.clone(), interrupt),
        )),
        Plan::Aggregate { aggregates, .. } if plan.shard_aggregation().is_some() => {
            Box::new(aggregate::ShardAggregateExecutor::new(
                plan.clone(),
                aggregates.clone(),
                Arc::clone(interrupt),
            ))
        }
        Plan::Aggregate {
            source,
            group_by,
            aggregates,
        } => Box::new(aggregate::AggregateExecutor::new(
            build(source, interrupt)?,
            group_by.clone(),
            aggregates.clone(),
        )),
        Plan::Distinct { source } => Box::new(DistinctExecutor {
            source: build(source, interrupt)?,
            seen: HashSet::new(),
        }),
        Plan::Sort { source, keys } => Box::new(SortExecutor {
            source: Some(build(source, interrupt)?),
            keys: keys.clone(),
            sorted: Vec::new().into_iter(),
        }),
        Plan::Limit {
            source,
            limit,
            offset,
        } => Box::new(LimitExecutor {
            source: build_hinted(source, interrupt, limit.map(|n| n.saturating_add(*offset)))?,
            remaining: *limit,
            to_skip: *offset,
        }),
        Plan::NestedLoopJoin {
            left,
            right,
            join_type,
            predicate,
            right_width,
        } => Box::new(join::Join::nested_loop(
            (build(left, interrupt)?, build(right, interrupt)?),
            *join_type,
            predicate.clone(),
            *right_width,
        )),
        Plan::HashJoin {
            left,
            right,
            join_type,
            left_keys,
            right_keys,
            residual,
            right_width,
        } => Box::new(join::Join::hash(
            (build(left, interrupt)?, build(right, interrupt)?),
            *join_type,
            (left_keys.clone(), right_keys.clone()),
            residual.clone(),
            *right_width,
        )),
        Plan::SetOperation {
            operator,
            all,
            left,
            right,
        } => Box::new(set_operation::SetOperationExecutor::new(
            *operator,
            *all,
            build(left, interrupt)?,
            build(right, interrupt)?,
        )),
        Plan::Insert { .. } | Plan::Update { .. } | Plan::Delete { .. } => {
            return Err(crate::error::Error::FeatureNotSupported(
                "data-modifying statements inside a query".into(),
            ))
        }
    })
}

/// Checks the interrupt every [`interrupt::CHECK_EVERY_ROWS`] rows of a leaf executor.
struct Checked<E> {
    inner: E,
    interrupt: Arc<Interrupt>,
    rows_since_check: u32,
}

impl<E: Executor + 'static> Checked<E> {
    fn wrap(inner: E, interrupt: &Arc<Interrupt>) -> Box<dyn Executor> {
        Box::new(Checked {
            inner,
            interrupt: Arc::clone(interrupt),
            rows_since_check: interrupt::CHECK_EVERY_ROWS,
        })
    }
}

impl<E: Executor> Executor for Checked<E> {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        self.rows_since_check += 1;
        if self.rows_since_check >= interrupt::CHECK_EVERY_ROWS {
            self.rows_since_check = 0;
            self.interrupt.check()?;
        }
        self.inner.next(txn)
    }
}

struct ValuesExecutor {
    rows: std::vec::IntoIter<Vec<Expression>>,
    interrupt: Arc<Interrupt>,
}

impl Executor for ValuesExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        match self.rows.next() {
            Some(row) => Ok(Some(
                row.iter()
                    .map(|e| subquery::evaluate_once(e, &[], txn, &self.interrupt))
                    .collect::<Result<_>>()?,
            )),
            None => Ok(None),
        }
    }
}

struct FilterExecutor {
    source: Box<dyn Executor>,
    predicate: subquery::Evaluated,
}

impl Executor for FilterExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        while let Some(row) = self.source.next(txn)? {
            if self.predicate.evaluate(0, &row, txn)?.as_bool() == Some(true) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

struct ProjectExecutor {
    source: Box<dyn Executor>,
    expressions: subquery::Evaluated,
    /// When every output is a distinct input column, values are moved, not cloned.
    moves: Option<Vec<usize>>,
}

impl ProjectExecutor {
    fn new(source: Box<dyn Executor>, expressions: subquery::Evaluated) -> ProjectExecutor {
        let columns: Vec<usize> = expressions
            .expressions()
            .iter()
            .filter_map(|e| match e {
                Expression::Column { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        let distinct = columns.iter().collect::<HashSet<_>>().len() == columns.len();
        let moves =
            (columns.len() == expressions.expressions().len() && distinct).then_some(columns);
        ProjectExecutor {
            source,
            expressions,
            moves,
        }
    }
}

impl Executor for ProjectExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        let Some(mut row) = self.source.next(txn)? else {
            return Ok(None);
        };
        if let Some(columns) = &self.moves {
            let mut out = Vec::with_capacity(columns.len());
            for &index in columns {
                let value = row.get_mut(index).ok_or_else(|| {
                    crate::error::Error::Internal(format!("column {index} is beyond the row"))
                })?;
                out.push(std::mem::replace(value, Value::Null));
            }
            return Ok(Some(out));
        }
        let count = self.expressions.expressions().len();
        Ok(Some(
            (0..count)
                .map(|i| self.expressions.evaluate(i, &row, txn))
                .collect::<Result<_>>()?,
        ))
    }
}

struct DistinctExecutor {
    source: Box<dyn Executor>,
    /// Rows seen, in key encoding (which treats 1 and 1.0, -0 and 0 as equal).
    seen: HashSet<Vec<u8>>,
}

impl Executor for DistinctExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        while let Some(row) = self.source.next(txn)? {
            if self.seen.insert(keycode::encode_values(&row)) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

struct SortExecutor {
    source: Option<Box<dyn Executor>>,
    keys: Vec<SortKey>,
    sorted: std::vec::IntoIter<Vec<Value>>,
}

impl Executor for SortExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        if let Some(mut source) = self.source.take() {
            let mut rows = Vec::new();
            while let Some(row) = source.next(txn)? {
                rows.push(row);
            }
            rows.sort_by(|a, b| compare_rows(a, b, &self.keys));
            self.sorted = rows.into_iter();
        }
        Ok(self.sorted.next())
    }
}

/// Orders two rows by sort keys, with PostgreSQL's NULL placement rules.
fn compare_rows(a: &[Value], b: &[Value], keys: &[SortKey]) -> Ordering {
    for key in keys {
        let (x, y) = (&a[key.column], &b[key.column]);
        let ordering = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if key.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if key.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let ordering = x.sort_cmp(y);
                if key.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            }
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

struct LimitExecutor {
    source: Box<dyn Executor>,
    remaining: Option<u64>,
    to_skip: u64,
}

impl Executor for LimitExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        if self.remaining == Some(0) {
            return Ok(None);
        }
        while self.to_skip > 0 {
            if self.source.next(txn)?.is_none() {
                return Ok(None);
            }
            self.to_skip -= 1;
        }
        let row = self.source.next(txn)?;
        if row.is_some() {
            if let Some(remaining) = self.remaining.as_mut() {
                *remaining -= 1;
            }
        }
        Ok(row)
    }
}
