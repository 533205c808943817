//! Access-path selection: which key or index a scan should use for a WHERE clause.
//!
//! The WHERE clause is split into AND-ed terms; terms of the form `column op constant`
//! (=, <, <=, >, >=, BETWEEN) and `column IN (constants)` bound key columns. For the
//! primary key and for every index this snapshot may use, the longest prefix of key
//! columns fixed by equality (IN lists multiply into several points) plus at most one
//! ranged column makes a set of key ranges. The best candidate wins: a full primary-key
//! point lookup, then a full unique-index lookup, then the most equality columns, then a
//! range, the primary key before an index on ties. The whole WHERE clause is still
//! applied as a filter above the scan, so a range only has to be a superset of the
//! matching rows, never exact — which keeps this code simple and safe.

use super::expression::Expression;
use super::plan::{AccessPath, KeyRange};
use crate::catalog::{Index, Table};
use crate::sql::ast::BinaryOp;
use crate::types::Value;
use std::collections::HashMap;
use std::ops::Bound;

/// Most key points an IN list (or several) may expand to before we fall back to a range
/// or a scan.
const MAX_POINTS: usize = 1000;

/// What the WHERE clause says about one column.
#[derive(Default, Debug)]
struct ColumnConstraint {
    /// Values from `=` or `IN`.
    equals: Option<Vec<Value>>,
    lower: Option<Bound<Value>>,
    upper: Option<Bound<Value>>,
}

/// Picks the access path for a scan of `table` filtered by `predicate`.
pub fn choose(
    table: &Table,
    predicate: Option<&Expression>,
    index_usable: &dyn Fn(&Index) -> bool,
) -> AccessPath {
    let Some(predicate) = predicate else {
        return AccessPath::FullScan;
    };
    let constraints = collect_constraints(table, predicate);
    if constraints.is_empty() {
        return AccessPath::FullScan;
    }
    let mut best: Option<(Score, AccessPath)> = None;
    let mut consider = |score: Score, path: AccessPath| {
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, path));
        }
    };
    if let Some((score, ranges)) = ranges_for(&table.primary_key, &constraints, true, true) {
        consider(score, AccessPath::PrimaryKey(ranges));
    }
    for index in table.indexes.iter().filter(|i| index_usable(i)) {
        if let Some((score, ranges)) = ranges_for(&index.columns, &constraints, index.unique, false)
        {
            consider(score, AccessPath::Index(index.clone(), ranges));
        }
    }
    best.map(|(_, path)| path).unwrap_or(AccessPath::FullScan)
}

/// Larger is better: (full unique point lookup, primary key point, equality columns, has
/// range, is primary key).
type Score = (bool, bool, usize, bool, bool);

fn ranges_for(
    key_columns: &[usize],
    constraints: &HashMap<usize, ColumnConstraint>,
    unique: bool,
    primary: bool,
) -> Option<(Score, Vec<KeyRange>)> {
    let mut prefixes: Vec<Vec<Value>> = vec![Vec::new()];
    let mut equality_columns = 0;
    let mut lower = Bound::Unbounded;
    let mut upper = Bound::Unbounded;
    for column in key_columns {
        let Some(constraint) = constraints.get(column) else {
            break;
        };
        if let Some(values) = &constraint.equals {
            if prefixes.len() * values.len() > MAX_POINTS {
                break;
            }
            prefixes = prefixes
                .iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut p = prefix.clone();
                        p.push(v.clone());
                        p
                    })
                })
                .collect();
            equality_columns += 1;
            continue;
        }
        lower = constraint.lower.clone().unwrap_or(Bound::Unbounded);
        upper = constraint.upper.clone().unwrap_or(Bound::Unbounded);
        break;
    }
    let has_range = !matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded));
    if equality_columns == 0 && !has_range {
        return None;
    }
    let full_point = equality_columns == key_columns.len();
    let score = (
        full_point && unique,
        full_point && primary,
        equality_columns,
        has_range,
        primary,
    );
    let ranges = prefixes
        .into_iter()
        .map(|prefix| KeyRange {
            prefix,
            lower: lower.clone(),
            upper: upper.clone(),
        })
        .collect();
    Some((score, ranges))
}

fn collect_constraints(table: &Table, predicate: &Expression) -> HashMap<usize, ColumnConstraint> {
    let mut constraints: HashMap<usize, ColumnConstraint> = HashMap::new();
    for term in predicate.conjuncts() {
        match term {
            Expression::Compare(op, left, right) => {
                let (column, value, op) = match (left.as_ref(), right.as_ref()) {
                    (Expression::Column { index, .. }, Expression::Constant(v)) => (*index, v, *op),
                    (Expression::Constant(v), Expression::Column { index, .. }) => {
                        (*index, v, flip(*op))
                    }
                    _ => continue,
                };
                let Some(value) = key_value(table, column, value) else {
                    continue;
                };
                let entry = constraints.entry(column).or_default();
                match op {
                    BinaryOp::Equal => {
                        entry.equals.get_or_insert_with(|| vec![value]);
                    }
                    BinaryOp::Greater => entry.lower = Some(Bound::Excluded(value)),
                    BinaryOp::GreaterOrEqual => entry.lower = Some(Bound::Included(value)),
                    BinaryOp::Less => entry.upper = Some(Bound::Excluded(value)),
                    BinaryOp::LessOrEqual => entry.upper = Some(Bound::Included(value)),
                    _ => {}
                }
            }
            Expression::InList(operand, items) => {
                let Expression::Column { index, .. } = operand.as_ref() else {
                    continue;
                };
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Expression::Constant(v) => match key_value(table, *index, v) {
                            Some(value) if !values.contains(&value) => values.push(value),
                            Some(_) => {}
                            // A NULL or inexact item matches nothing; leave it out.
                            None => {}
                        },
                        _ => {
                            values.clear();
                            break;
                        }
                    }
                }
                if !values.is_empty() {
                    constraints
                        .entry(*index)
                        .or_default()
                        .equals
                        .get_or_insert(values);
                }
            }
            _ => {}
        }
    }
    constraints
}

/// The constant as a value of the column's type, if it converts exactly (so that
/// `int_col = 2.5` does not become a lookup of 3). NULL never matches a comparison.
fn key_value(table: &Table, column: usize, value: &Value) -> Option<Value> {
    if value.is_null() {
        return None;
    }
    let column_type = table.columns.get(column)?.data_type;
    let converted = value.clone().cast(column_type).ok()?;
    (converted == *value).then_some(converted)
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Less => BinaryOp::Greater,
        BinaryOp::LessOrEqual => BinaryOp::GreaterOrEqual,
        BinaryOp::Greater => BinaryOp::Less,
        BinaryOp::GreaterOrEqual => BinaryOp::LessOrEqual,
        other => other,
    }
}
