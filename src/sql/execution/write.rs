//! INSERT, UPDATE and DELETE: coerce values to column types and enforce NOT NULL here;
//! the transaction enforces key uniqueness as it buffers each change.

use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::sql::planner::expression::Expression;
use crate::txn::{encode_primary_key, Transaction};
use crate::types::Value;

/// Coerces a full row to the table's column types and checks NOT NULL.
fn conform(table: &Table, row: Vec<Value>) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(row.len());
    for (value, column) in row.into_iter().zip(&table.columns) {
        let value = column
            .data_type
            .coerce_for_assignment(value, &column.name)?;
        if value.is_null() && !column.nullable {
            return Err(Error::NotNullViolation {
                table: table.name.clone(),
                column: column.name.clone(),
            });
        }
        out.push(value);
    }
    Ok(out)
}

/// The rows an INSERT writes, as they will be stored: coerced, checked for NOT NULL,
/// and, in a table without a primary key, given a fresh hidden row id each.
pub fn rows_to_insert(
    table: &Table,
    rows: Vec<Vec<Value>>,
    replica: &Replica,
) -> Result<Vec<Vec<Value>>> {
    let hidden = table.has_hidden_row_id();
    let mut stored = Vec::with_capacity(rows.len());
    for mut row in rows {
        if hidden {
            let last = row.len() - 1;
            row[last] = Value::BigInt(
                i64::try_from(replica.unique_id()?)
                    .map_err(|_| Error::Internal("row ids exhausted".into()))?,
            );
        }
        stored.push(conform(table, row)?);
    }
    Ok(stored)
}

/// Buffers the inserts of rows made by [`rows_to_insert`].
pub fn insert(table: &Table, rows: Vec<Vec<Value>>, txn: &mut Transaction) -> Result<u64> {
    let count = rows.len() as u64;
    for row in rows {
        txn.insert(table, row)?;
    }
    Ok(count)
}

/// The rows an UPDATE writes: each old row's primary key, with the row the assignments
/// (evaluated against the old row) make of it, coerced and checked.
pub fn rows_to_update(
    table: &Table,
    rows: Vec<Vec<Value>>,
    assignments: &[(usize, Expression)],
) -> Result<Vec<(Vec<u8>, Vec<Value>)>> {
    let mut changes = Vec::with_capacity(rows.len());
    for old in rows {
        let mut new = old.clone();
        for (column, expression) in assignments {
            new[*column] = expression.evaluate(&old)?;
        }
        changes.push((encode_primary_key(table, &old), conform(table, new)?));
    }
    Ok(changes)
}

/// Buffers the updates made by [`rows_to_update`].
pub fn update(
    table: &Table,
    changes: Vec<(Vec<u8>, Vec<Value>)>,
    txn: &mut Transaction,
) -> Result<u64> {
    let count = changes.len() as u64;
    for (key, new) in changes {
        txn.update(table, &key, new)?;
    }
    Ok(count)
}

/// Buffers the deletes of rows (full rows from the scan).
pub fn delete(table: &Table, rows: &[Vec<Value>], txn: &mut Transaction) -> Result<u64> {
    for row in rows {
        txn.delete(table, &encode_primary_key(table, row))?;
    }
    Ok(rows.len() as u64)
}
