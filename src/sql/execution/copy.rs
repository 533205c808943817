//! COPY FROM's rows into the table, one record at a time, through INSERT's own steps:
//! each field read as its column's type (the type's text input, as a cast from text),
//! the missing columns' defaults evaluated (so SERIAL columns draw from their sequence),
//! then NOT NULL, the hidden row id and the transaction's key and unique checks. One
//! row at a time, so an error names the record it came from.

use super::interrupt::Interrupt;
use super::{subquery, write};
use crate::catalog::Column;
use crate::error::Result;
use crate::replica::Replica;
use crate::sql::planner::expression::Expression;
use crate::sql::planner::plan::CopyTarget;
use crate::txn::Transaction;
use crate::types::Value;
use std::sync::Arc;

/// A field's text as a value of `column`'s type (NULL stays NULL).
pub fn field_value(column: &Column, field: Option<String>) -> Result<Value> {
    match field {
        None => Ok(Value::Null),
        Some(text) => Value::Text(text).cast(column.data_type),
    }
}

/// Inserts one row whose `values` are the target columns' (in the COPY's order) into
/// `txn`, the other columns given their defaults.
pub fn insert_row(
    target: &CopyTarget,
    values: Vec<Value>,
    txn: &mut Transaction,
    replica: &Replica,
    interrupt: &Arc<Interrupt>,
) -> Result<()> {
    let mut given: Vec<Option<Value>> = vec![None; target.defaults.len()];
    for (&position, value) in target.targets.iter().zip(values) {
        given[position] = Some(value);
    }
    let mut row: Vec<Value> = Vec::with_capacity(given.len());
    for (value, default) in given.into_iter().zip(&target.defaults) {
        row.push(match (value, default) {
            (Some(value), _) => value,
            (None, Expression::Constant(value)) => value.clone(),
            (None, expression) => subquery::evaluate_once(expression, &[], txn, interrupt)?,
        });
    }
    let rows = write::rows_to_insert(&target.table, vec![row], replica)?;
    write::insert(&target.table, rows, txn)?;
    Ok(())
}
