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

/// Inserts rows; a table without a primary key gets a fresh hidden row id per row.
pub fn insert(
    table: &Table,
    rows: Vec<Vec<Value>>,
    txn: &mut Transaction,
    replica: &Replica,
) -> Result<u64> {
    let hidden = table.has_hidden_row_id();
    let mut count = 0;
    for mut row in rows {
        if hidden {
            let last = row.len() - 1;
            row[last] = Value::BigInt(
                i64::try_from(replica.unique_id()?)
                    .map_err(|_| Error::Internal("row ids exhausted".into()))?,
            );
        }
        txn.insert(table, conform(table, row)?)?;
        count += 1;
    }
    Ok(count)
}

/// Updates rows (full rows from the scan), applying assignments to each old row.
pub fn update(
    table: &Table,
    rows: Vec<Vec<Value>>,
    assignments: &[(usize, Expression)],
    txn: &mut Transaction,
) -> Result<u64> {
    let mut count = 0;
    for old in rows {
        let mut new = old.clone();
        for (column, expression) in assignments {
            new[*column] = expression.evaluate(&old)?;
        }
        let new = conform(table, new)?;
        txn.update(table, &encode_primary_key(table, &old), new)?;
        count += 1;
    }
    Ok(count)
}

/// Deletes rows.
pub fn delete(table: &Table, rows: Vec<Vec<Value>>, txn: &mut Transaction) -> Result<u64> {
    for row in &rows {
        txn.delete(table, &encode_primary_key(table, row))?;
    }
    Ok(rows.len() as u64)
}
