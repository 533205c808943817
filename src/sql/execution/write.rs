//! INSERT, UPDATE and DELETE: coerce values to column types and enforce NOT NULL here;
//! the transaction enforces key uniqueness as it buffers each change.

use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::sql::planner::expression::Expression;
use crate::sql::planner::plan::{Arbiter, ConflictPlan, ConflictResolution};
use crate::txn::{encode_primary_key, Transaction};
use crate::types::Value;
use std::collections::HashSet;

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

/// One row an UPDATE writes.
pub struct RowUpdate {
    /// The old row's primary key.
    pub key: Vec<u8>,
    /// The row as updated, coerced and checked.
    pub row: Vec<Value>,
    /// The columns of the tables UPDATE ... FROM joined, for RETURNING.
    pub joined: Vec<Value>,
}

impl RowUpdate {
    /// The row RETURNING sees: the updated row, then the joined tables' columns.
    pub fn returned_row(&self) -> Vec<Value> {
        let mut row = self.row.clone();
        row.extend(self.joined.iter().cloned());
        row
    }
}

/// The rows an UPDATE writes, from its source's rows (the target's full row, then with
/// FROM the joined tables' columns), the assignments evaluated against all of it. A
/// target row that FROM matches more than once is updated once, with the first match,
/// as in PostgreSQL.
pub fn rows_to_update(
    table: &Table,
    rows: Vec<Vec<Value>>,
    assignments: &[(usize, Expression)],
) -> Result<Vec<RowUpdate>> {
    let width = table.columns.len();
    let mut matched = FirstMatch::new(table, &rows);
    let mut changes = Vec::with_capacity(rows.len());
    for mut source in rows {
        let key = encode_primary_key(table, &source);
        if !matched.first(&key) {
            continue;
        }
        let mut new = source[..width].to_vec();
        for (column, expression) in assignments {
            new[*column] = expression.evaluate(&source)?;
        }
        let joined = source.split_off(width);
        changes.push(RowUpdate {
            key,
            row: conform(table, new)?,
            joined,
        });
    }
    Ok(changes)
}

/// Buffers the updates made by [`rows_to_update`].
pub fn update(table: &Table, changes: Vec<RowUpdate>, txn: &mut Transaction) -> Result<u64> {
    let count = changes.len() as u64;
    for change in changes {
        txn.update(table, &change.key, change.row)?;
    }
    Ok(count)
}

/// The source rows of a DELETE (the target's full row, then with USING the joined
/// tables' columns), each target row once (the first match) as in PostgreSQL.
pub fn rows_to_delete(table: &Table, rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    let mut matched = FirstMatch::new(table, &rows);
    if !matched.joined {
        return rows;
    }
    rows.into_iter()
        .filter(|row| matched.first(&encode_primary_key(table, row)))
        .collect()
}

/// Which target rows an UPDATE ... FROM or DELETE ... USING has met already. Without
/// FROM / USING (source rows no wider than the table) each row comes once, so nothing
/// is remembered and a plain UPDATE or DELETE pays no hashing.
struct FirstMatch {
    joined: bool,
    seen: HashSet<Vec<u8>>,
}

impl FirstMatch {
    fn new(table: &Table, rows: &[Vec<Value>]) -> FirstMatch {
        FirstMatch {
            joined: rows
                .first()
                .is_some_and(|row| row.len() > table.columns.len()),
            seen: HashSet::new(),
        }
    }

    /// Whether this is the first source row of the target row with primary key `key`.
    fn first(&mut self, key: &[u8]) -> bool {
        !self.joined || self.seen.insert(key.to_vec())
    }
}

/// Buffers the deletes of rows made by [`rows_to_delete`].
pub fn delete(table: &Table, rows: &[Vec<Value>], txn: &mut Transaction) -> Result<u64> {
    for row in rows {
        txn.delete(table, &encode_primary_key(table, row))?;
    }
    Ok(rows.len() as u64)
}

/// What an INSERT ... ON CONFLICT wrote: rows inserted or updated (skipped ones do not
/// count, as in PostgreSQL's tag), and the rows themselves when RETURNING needs them.
#[derive(Default)]
pub struct Upserted {
    /// Rows inserted or updated.
    pub count: u64,
    /// Those rows as written, when kept.
    pub rows: Vec<Vec<Value>>,
}

/// Buffers the rows of an INSERT ... ON CONFLICT, one by one: a row that conflicts with
/// a live row (committed at the snapshot, or written earlier by this transaction or
/// statement) on the arbiter is skipped or updates that row; any other conflict stays
/// an error. Atomic under concurrency by the commit's checks: a conflicting row
/// committed after the snapshot makes the commit fail (40001 for a primary key, as a
/// write-write conflict; 23505 for a unique value), so two sessions never both insert.
pub fn upsert(
    table: &Table,
    rows: Vec<Vec<Value>>,
    conflict: &ConflictPlan,
    keep: bool,
    txn: &mut Transaction,
) -> Result<Upserted> {
    let mut upserted = Upserted::default();
    // Primary keys this statement inserted or updated: DO UPDATE may not touch one twice.
    let mut touched: HashSet<Vec<u8>> = HashSet::new();
    for row in rows {
        let Some((existing_pk, existing)) = conflicting_row(table, &conflict.arbiter, &row, txn)?
        else {
            touched.insert(encode_primary_key(table, &row));
            if keep {
                upserted.rows.push(row.clone());
            }
            txn.insert(table, row)?;
            upserted.count += 1;
            continue;
        };
        let ConflictResolution::Update {
            assignments,
            filter,
        } = &conflict.resolution
        else {
            continue;
        };
        if touched.contains(&existing_pk) {
            return Err(Error::CardinalityViolation(
                "ON CONFLICT DO UPDATE command cannot affect row a second time (rows \
                 proposed for insertion within the same command have duplicate \
                 constrained values)"
                    .into(),
            ));
        }
        let mut both = existing.clone();
        both.extend(row);
        if let Some(filter) = filter {
            if filter.evaluate(&both)?.as_bool() != Some(true) {
                continue;
            }
        }
        let mut new = existing;
        for (column, expression) in assignments {
            new[*column] = expression.evaluate(&both)?;
        }
        let new = conform(table, new)?;
        touched.insert(encode_primary_key(table, &new));
        if keep {
            upserted.rows.push(new.clone());
        }
        txn.update(table, &existing_pk, new)?;
        upserted.count += 1;
    }
    Ok(upserted)
}

/// The live row `row` conflicts with on `arbiter`, with its primary key.
fn conflicting_row(
    table: &Table,
    arbiter: &Arbiter,
    row: &[Value],
    txn: &Transaction,
) -> Result<Option<(Vec<u8>, Vec<Value>)>> {
    match arbiter {
        Arbiter::PrimaryKey => txn.conflicting_row(table, None, row),
        Arbiter::Index(id) => {
            let index = table
                .indexes
                .iter()
                .find(|index| index.id == *id)
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "the ON CONFLICT arbiter (index {id}) is not an index of {}",
                        table.name
                    ))
                })?;
            txn.conflicting_row(table, Some(index), row)
        }
        Arbiter::Any => {
            if let Some(found) = txn.conflicting_row(table, None, row)? {
                return Ok(Some(found));
            }
            for index in table.indexes.iter().filter(|index| index.unique) {
                if let Some(found) = txn.conflicting_row(table, Some(index), row)? {
                    return Ok(Some(found));
                }
            }
            Ok(None)
        }
    }
}
