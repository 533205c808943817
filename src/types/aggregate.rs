//! Aggregates that can be computed in parts and combined: COUNT, SUM, MIN, MAX, AVG.
//!
//! A table's shards are aggregated where they are stored (each group's host, or each
//! shard of the embedded engine on its own thread) and the parts combined, so a
//! full-table aggregate moves one state per shard instead of every row, and the
//! shards are read side by side. The state is what both the executor and the shard
//! hosts keep, so a combined answer is exactly the one-pass answer: sums of integers
//! stay exact (and overflow as PostgreSQL's bigint does), MIN/MAX compare by the
//! values' sort order, AVG keeps a sum and a count.

use super::{DataType, Value};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which combinable aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Combinable {
    /// count(*) or count(x).
    Count,
    /// sum(x).
    Sum,
    /// min(x).
    Min,
    /// max(x).
    Max,
    /// avg(x).
    Avg,
}

/// One aggregate over a table's stored rows, as a shard host computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnAggregate {
    /// Which aggregate.
    pub function: Combinable,
    /// The column aggregated; `None` for count(*).
    pub column: Option<usize>,
    /// Whether a sum is over integers (exact) rather than floats.
    pub integer: bool,
}

/// What every shard computes for a fan-out aggregate: its rows grouped by plain
/// columns (none: one group of every row) and the aggregates of each group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardAggregation {
    /// The grouping columns, in GROUP BY order.
    pub group_by: Vec<usize>,
    /// The aggregates, in the select list's order.
    pub aggregates: Vec<ColumnAggregate>,
}

/// The running state of one combinable aggregate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PartialAggregate {
    /// Rows (or non-NULL values) counted.
    Count(i64),
    /// An exact sum of integers; `None` until a value came.
    SumInteger(Option<i64>),
    /// A sum of floats; `None` until a value came.
    SumFloat(Option<f64>),
    /// The smallest value so far.
    Min(Option<Value>),
    /// The largest value so far.
    Max(Option<Value>),
    /// AVG's sum and count.
    Average {
        /// Sum of the values.
        sum: f64,
        /// How many.
        count: i64,
    },
}

impl PartialAggregate {
    /// The state before any row, for `function` (a sum over integers when `integer`).
    pub fn new(function: Combinable, integer: bool) -> PartialAggregate {
        match function {
            Combinable::Count => PartialAggregate::Count(0),
            Combinable::Sum if integer => PartialAggregate::SumInteger(None),
            Combinable::Sum => PartialAggregate::SumFloat(None),
            Combinable::Min => PartialAggregate::Min(None),
            Combinable::Max => PartialAggregate::Max(None),
            Combinable::Avg => PartialAggregate::Average { sum: 0.0, count: 0 },
        }
    }

    /// Adds one row: `None` is count(*)'s row without an argument; a NULL value is
    /// skipped by every aggregate, as SQL says.
    pub fn add(&mut self, value: Option<&Value>) -> Result<()> {
        let Some(value) = value else {
            if let PartialAggregate::Count(n) = self {
                *n += 1;
            }
            return Ok(());
        };
        if value.is_null() {
            return Ok(());
        }
        match self {
            PartialAggregate::Count(n) => *n += 1,
            PartialAggregate::SumInteger(sum) => {
                *sum = Some(add_exact(
                    sum.unwrap_or(0),
                    value.as_i64().unwrap_or_default(),
                )?);
            }
            PartialAggregate::SumFloat(sum) => {
                *sum = Some(sum.unwrap_or(0.0) + value.as_f64().unwrap_or_default());
            }
            PartialAggregate::Min(current) => keep_extreme(current, value, true),
            PartialAggregate::Max(current) => keep_extreme(current, value, false),
            PartialAggregate::Average { sum, count } => {
                *sum += value.as_f64().unwrap_or_default();
                *count += 1;
            }
        }
        Ok(())
    }

    /// Folds another part of the same aggregate into this one.
    pub fn combine(&mut self, other: PartialAggregate) -> Result<()> {
        match (self, other) {
            (PartialAggregate::Count(n), PartialAggregate::Count(m)) => *n += m,
            (PartialAggregate::SumInteger(sum), PartialAggregate::SumInteger(other)) => {
                if let Some(other) = other {
                    *sum = Some(add_exact(sum.unwrap_or(0), other)?);
                }
            }
            (PartialAggregate::SumFloat(sum), PartialAggregate::SumFloat(other)) => {
                if let Some(other) = other {
                    *sum = Some(sum.unwrap_or(0.0) + other);
                }
            }
            (PartialAggregate::Min(current), PartialAggregate::Min(Some(other))) => {
                keep_extreme(current, &other, true)
            }
            (PartialAggregate::Max(current), PartialAggregate::Max(Some(other))) => {
                keep_extreme(current, &other, false)
            }
            (PartialAggregate::Min(_), PartialAggregate::Min(None))
            | (PartialAggregate::Max(_), PartialAggregate::Max(None)) => {}
            (
                PartialAggregate::Average { sum, count },
                PartialAggregate::Average {
                    sum: other_sum,
                    count: other_count,
                },
            ) => {
                *sum += other_sum;
                *count += other_count;
            }
            (mine, other) => {
                return Err(Error::Internal(format!(
                    "parts of different aggregates combined: {mine:?} and {other:?}"
                )))
            }
        }
        Ok(())
    }

    /// The aggregate's value, of `data_type`.
    pub fn finish(self, data_type: DataType) -> Result<Value> {
        Ok(match self {
            PartialAggregate::Count(n) => Value::BigInt(n),
            PartialAggregate::SumInteger(sum) => sum.map_or(Value::Null, Value::BigInt),
            PartialAggregate::SumFloat(None) => Value::Null,
            PartialAggregate::SumFloat(Some(sum)) => Value::Double(sum).cast(data_type)?,
            PartialAggregate::Min(value) | PartialAggregate::Max(value) => {
                value.unwrap_or(Value::Null)
            }
            PartialAggregate::Average { count: 0, .. } => Value::Null,
            PartialAggregate::Average { sum, count } => Value::Double(sum / count as f64),
        })
    }
}

/// The states of `aggregates` before any row.
pub fn start_all(aggregates: &[ColumnAggregate]) -> Vec<PartialAggregate> {
    aggregates
        .iter()
        .map(|aggregate| PartialAggregate::new(aggregate.function, aggregate.integer))
        .collect()
}

/// Adds one stored row to the states of `aggregates`.
pub fn add_row(
    aggregates: &[ColumnAggregate],
    states: &mut [PartialAggregate],
    row: &[Value],
) -> Result<()> {
    for (aggregate, state) in aggregates.iter().zip(states.iter_mut()) {
        let value = match aggregate.column {
            Some(column) => Some(row.get(column).ok_or_else(|| {
                Error::Corruption(format!("a stored row has no column {column}"))
            })?),
            None => None,
        };
        state.add(value)?;
    }
    Ok(())
}

/// Folds `parts` (one state per aggregate) into `into`.
pub fn combine_all(into: &mut [PartialAggregate], parts: Vec<PartialAggregate>) -> Result<()> {
    if into.len() != parts.len() {
        return Err(Error::Internal(format!(
            "{} aggregate parts answered for {} aggregates",
            parts.len(),
            into.len()
        )));
    }
    for (state, part) in into.iter_mut().zip(parts) {
        state.combine(part)?;
    }
    Ok(())
}

fn add_exact(sum: i64, value: i64) -> Result<i64> {
    sum.checked_add(value)
        .ok_or_else(|| Error::NumericOutOfRange("bigint out of range".into()))
}

/// Keeps the smaller (`min`) or larger of `current` and `value`.
fn keep_extreme(current: &mut Option<Value>, value: &Value, min: bool) {
    let replace = match current {
        None => true,
        Some(existing) => {
            let ordering = value.sort_cmp(existing);
            if min {
                ordering.is_lt()
            } else {
                ordering.is_gt()
            }
        }
    };
    if replace {
        *current = Some(value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aggregate(function: Combinable, integer: bool) -> ColumnAggregate {
        ColumnAggregate {
            function,
            column: Some(0),
            integer,
        }
    }

    /// Aggregating in parts and combining gives the one-pass answer, for every
    /// combinable function, with NULLs and empty parts among the parts.
    #[test]
    fn parts_combined_equal_one_pass() {
        let values: Vec<Value> = vec![
            Value::Integer(5),
            Value::Null,
            Value::Integer(-3),
            Value::Integer(12),
            Value::Integer(7),
        ];
        let specs = [
            ColumnAggregate {
                function: Combinable::Count,
                column: None,
                integer: false,
            },
            aggregate(Combinable::Count, false),
            aggregate(Combinable::Sum, true),
            aggregate(Combinable::Min, false),
            aggregate(Combinable::Max, false),
            aggregate(Combinable::Avg, false),
        ];
        let mut one_pass = start_all(&specs);
        for value in &values {
            add_row(&specs, &mut one_pass, std::slice::from_ref(value)).unwrap();
        }
        let mut combined = start_all(&specs);
        for part in [&values[..2], &[][..], &values[2..]] {
            let mut states = start_all(&specs);
            for value in part {
                add_row(&specs, &mut states, std::slice::from_ref(value)).unwrap();
            }
            combine_all(&mut combined, states).unwrap();
        }
        let finish = |states: Vec<PartialAggregate>| -> Vec<String> {
            states
                .into_iter()
                .map(|state| format!("{:?}", state.finish(DataType::BigInt).unwrap()))
                .collect()
        };
        assert_eq!(finish(combined.clone()), finish(one_pass));
        assert_eq!(
            finish(combined),
            [
                "BigInt(5)",
                "BigInt(4)",
                "BigInt(21)",
                "Integer(-3)",
                "Integer(12)",
                "Double(5.25)"
            ]
        );
    }

    /// An exact sum that overflows in the combination is an error, as in one pass.
    #[test]
    fn combined_integer_sums_overflow_like_one_pass() {
        let mut sum = PartialAggregate::SumInteger(Some(i64::MAX));
        let error = sum
            .combine(PartialAggregate::SumInteger(Some(1)))
            .unwrap_err();
        assert!(matches!(error, Error::NumericOutOfRange(_)), "{error:?}");
    }
}
