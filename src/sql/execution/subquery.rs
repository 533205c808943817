//! Running subqueries inside expressions.
//!
//! Expressions evaluate without the transaction, so a subquery is run by the executor
//! that owns the expression and its value put in its place first. An uncorrelated
//! subquery (one that reads nothing of the rows around it) runs once, on the executor's
//! first row, and becomes a constant. A correlated one runs for every row, its plan first
//! bound to that row: every reference to the outer row becomes the row's value.
//! Trade-off: a correlated subquery's scans were chosen before the outer values were
//! known, so it reads its tables in full for each outer row (no index lookups by the
//! outer value yet); that suits the small catalog queries tools send, not large joins,
//! which should be written as joins.

use super::build;
use super::interrupt::Interrupt;
use crate::error::{Error, Result};
use crate::sql::planner::expression::{Expression, SubqueryKind};
use crate::sql::planner::plan::Plan;
use crate::txn::Transaction;
use crate::types::Value;
use std::sync::Arc;

/// The expressions of one executor, evaluated with their subqueries run.
pub struct Evaluated {
    expressions: Vec<Expression>,
    interrupt: Arc<Interrupt>,
    /// Whether uncorrelated subqueries have been run and replaced by their values.
    prepared: bool,
    /// Per expression, whether a correlated subquery remains in it (then each row runs it).
    correlated: Vec<bool>,
}

impl Evaluated {
    /// Wraps an executor's expressions.
    pub fn new(expressions: Vec<Expression>, interrupt: &Arc<Interrupt>) -> Evaluated {
        let any = expressions.iter().any(Expression::has_subquery);
        Evaluated {
            expressions,
            interrupt: Arc::clone(interrupt),
            prepared: !any,
            correlated: Vec::new(),
        }
    }

    /// The expressions (uncorrelated subqueries already replaced once prepared).
    pub fn expressions(&self) -> &[Expression] {
        &self.expressions
    }

    /// Evaluates expression `position` against `row`.
    pub fn evaluate(&mut self, position: usize, row: &[Value], txn: &Transaction) -> Result<Value> {
        if !self.prepared {
            self.prepare(txn)?;
        }
        let expression = self.expressions.get(position).ok_or_else(|| {
            Error::Internal(format!("expression {position} of an executor is missing"))
        })?;
        if self.correlated.get(position) == Some(&true) {
            run_subqueries(expression.clone(), row, txn, &self.interrupt)?.evaluate(row)
        } else {
            expression.evaluate(row)
        }
    }

    fn prepare(&mut self, txn: &Transaction) -> Result<()> {
        for expression in &mut self.expressions {
            let taken = std::mem::replace(expression, Expression::Constant(Value::Null));
            *expression = run_uncorrelated(taken, txn, &self.interrupt)?;
        }
        self.correlated = self
            .expressions
            .iter()
            .map(Expression::has_subquery)
            .collect();
        self.prepared = true;
        Ok(())
    }
}

/// Evaluates an expression once (VALUES rows), running any subquery in it.
pub fn evaluate_once(
    expression: &Expression,
    row: &[Value],
    txn: &Transaction,
    interrupt: &Arc<Interrupt>,
) -> Result<Value> {
    if expression.has_subquery() {
        run_subqueries(expression.clone(), row, txn, interrupt)?.evaluate(row)
    } else {
        expression.evaluate(row)
    }
}

/// Replaces every subquery that reads nothing of the rows around it by its value: a
/// scalar or EXISTS subquery by a constant, `x IN (subquery)` by `x IN (values)`.
fn run_uncorrelated(
    expression: Expression,
    txn: &Transaction,
    interrupt: &Arc<Interrupt>,
) -> Result<Expression> {
    match expression {
        Expression::Subquery { plan, kind, .. } if !reads_outside(&plan, 1) => match kind {
            SubqueryKind::In(operand) => {
                let operand = run_uncorrelated(*operand, txn, interrupt)?;
                let values = first_column(&plan, txn, interrupt)?;
                Ok(Expression::InList(
                    Box::new(operand),
                    values.into_iter().map(Expression::Constant).collect(),
                ))
            }
            kind => Ok(Expression::Constant(run(&plan, kind, &[], txn, interrupt)?)),
        },
        other => other.map_children(|child| run_uncorrelated(child, txn, interrupt)),
    }
}

fn first_column(plan: &Plan, txn: &Transaction, interrupt: &Arc<Interrupt>) -> Result<Vec<Value>> {
    let mut executor = build(plan, interrupt)?;
    let mut values = Vec::new();
    while let Some(found) = executor.next(txn)? {
        values.push(found.into_iter().next().unwrap_or(Value::Null));
    }
    Ok(values)
}

/// Replaces every subquery by its value for `row`.
fn run_subqueries(
    expression: Expression,
    row: &[Value],
    txn: &Transaction,
    interrupt: &Arc<Interrupt>,
) -> Result<Expression> {
    match expression {
        Expression::Subquery { plan, kind, .. } => {
            let mut plan = *plan;
            bind_to_row(&mut plan, row, 1)?;
            let value = run(&plan, kind, row, txn, interrupt)?;
            Ok(Expression::Constant(value))
        }
        other => other.map_children(|child| run_subqueries(child, row, txn, interrupt)),
    }
}

fn run(
    plan: &Plan,
    kind: SubqueryKind,
    row: &[Value],
    txn: &Transaction,
    interrupt: &Arc<Interrupt>,
) -> Result<Value> {
    let mut executor = build(plan, interrupt)?;
    match kind {
        SubqueryKind::Exists => Ok(Value::Boolean(executor.next(txn)?.is_some())),
        SubqueryKind::Scalar => {
            let Some(first) = executor.next(txn)? else {
                return Ok(Value::Null);
            };
            if executor.next(txn)?.is_some() {
                return Err(Error::CardinalityViolation(
                    "more than one row returned by a subquery used as an expression".into(),
                ));
            }
            Ok(first.into_iter().next().unwrap_or(Value::Null))
        }
        SubqueryKind::Array(element) => {
            drop(executor);
            let items = first_column(plan, txn, interrupt)?;
            Ok(Value::Array { element, items })
        }
        SubqueryKind::In(operand) => {
            drop(executor);
            let operand = evaluate_once(&operand, row, txn, interrupt)?;
            let candidates = first_column(plan, txn, interrupt)?;
            let candidates = candidates.into_iter().map(Expression::Constant).collect();
            Expression::InList(Box::new(Expression::Constant(operand)), candidates).evaluate(&[])
        }
    }
}

/// Whether a subquery plan (at nesting `level` below the row being evaluated) reads a
/// row outside itself.
fn reads_outside(plan: &Plan, level: usize) -> bool {
    let mut plan = plan.clone();
    let mut found = false;
    let _ = plan.for_each_expression_mut(&mut |expression| {
        expression.walk(&mut |e| match e {
            Expression::OuterColumn { depth, .. } if *depth >= level => found = true,
            Expression::Subquery { plan, .. } if reads_outside(plan, level + 1) => found = true,
            _ => {}
        });
        Ok(())
    });
    found
}

/// Binds a subquery plan to one outer row: references `level` queries out become that
/// row's values, including those inside subqueries nested in the plan.
fn bind_to_row(plan: &mut Plan, row: &[Value], level: usize) -> Result<()> {
    plan.for_each_expression_mut(&mut |expression| {
        let taken = std::mem::replace(expression, Expression::Constant(Value::Null));
        *expression = substitute(taken, row, level)?;
        Ok(())
    })
}

fn substitute(expression: Expression, row: &[Value], level: usize) -> Result<Expression> {
    match expression {
        Expression::OuterColumn { depth, index, .. } if depth == level => row
            .get(index)
            .cloned()
            .map(Expression::Constant)
            .ok_or_else(|| Error::Internal(format!("outer column {index} is beyond the row"))),
        Expression::Subquery {
            mut plan,
            kind,
            data_type,
        } => {
            bind_to_row(&mut plan, row, level + 1)?;
            let kind = match kind {
                SubqueryKind::In(operand) => {
                    SubqueryKind::In(Box::new(substitute(*operand, row, level)?))
                }
                other => other,
            };
            Ok(Expression::Subquery {
                plan,
                kind,
                data_type,
            })
        }
        other => other.map_children(|child| substitute(child, row, level)),
    }
}
