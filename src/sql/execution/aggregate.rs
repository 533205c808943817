//! Grouping and aggregates: COUNT, SUM, MIN, MAX, AVG, STRING_AGG, ARRAY_AGG, each
//! optionally DISTINCT.
//!
//! Groups are kept in a hash map keyed by the key encoding of the group values (so NULLs
//! group together and 1 = 1.0) in first-seen order. Without GROUP BY, an empty input still
//! yields one row (count 0, other aggregates NULL), as SQL requires.

use super::Executor;
use crate::encoding::keycode;
use crate::error::{Error, Result};
use crate::sql::planner::expression::{AggregateFunction, Expression};
use crate::sql::planner::plan::Aggregate;
use crate::txn::Transaction;
use crate::types::{DataType, Value};
use std::collections::{HashMap, HashSet};

/// Running state of one aggregate in one group.
#[derive(Clone, Debug)]
enum Accumulator {
    Count(i64),
    SumInteger(Option<i64>),
    SumFloat(Option<f64>),
    Extreme(Option<Value>),
    Average { sum: f64, count: i64 },
    Joined(Option<String>),
    Collected(Option<Vec<Value>>),
}

impl Accumulator {
    fn new(aggregate: &Aggregate) -> Accumulator {
        match aggregate.function {
            AggregateFunction::Count => Accumulator::Count(0),
            AggregateFunction::Sum if aggregate.data_type.is_integer() => {
                Accumulator::SumInteger(None)
            }
            AggregateFunction::Sum => Accumulator::SumFloat(None),
            AggregateFunction::Min | AggregateFunction::Max => Accumulator::Extreme(None),
            AggregateFunction::Avg => Accumulator::Average { sum: 0.0, count: 0 },
            AggregateFunction::StringAgg => Accumulator::Joined(None),
            AggregateFunction::ArrayAgg => Accumulator::Collected(None),
        }
    }

    /// Adds one row's value; `separator` is string_agg's for this row.
    fn add(
        &mut self,
        function: AggregateFunction,
        value: Option<Value>,
        separator: Option<Value>,
    ) -> Result<()> {
        // array_agg keeps NULLs; every other aggregate skips them.
        if let (Accumulator::Collected(items), Some(value)) = (&mut *self, &value) {
            items.get_or_insert_with(Vec::new).push(value.clone());
            return Ok(());
        }
        let Some(value) = value else {
            // count(*): every row counts.
            if let Accumulator::Count(n) = self {
                *n += 1;
            }
            return Ok(());
        };
        if value.is_null() {
            return Ok(());
        }
        match self {
            Accumulator::Count(n) => *n += 1,
            Accumulator::SumInteger(sum) => {
                let v = value.as_i64().unwrap_or_default();
                *sum = Some(
                    sum.unwrap_or(0)
                        .checked_add(v)
                        .ok_or_else(|| Error::NumericOutOfRange("bigint out of range".into()))?,
                );
            }
            Accumulator::SumFloat(sum) => {
                *sum = Some(sum.unwrap_or(0.0) + value.as_f64().unwrap_or_default())
            }
            Accumulator::Extreme(current) => {
                let replace = match current {
                    None => true,
                    Some(existing) => {
                        let ordering = value.sort_cmp(existing);
                        if function == AggregateFunction::Min {
                            ordering.is_lt()
                        } else {
                            ordering.is_gt()
                        }
                    }
                };
                if replace {
                    *current = Some(value);
                }
            }
            Accumulator::Average { sum, count } => {
                *sum += value.as_f64().unwrap_or_default();
                *count += 1;
            }
            Accumulator::Joined(text) => match text {
                None => *text = Some(value.to_string()),
                Some(text) => {
                    if let Some(separator) = separator.filter(|s| !s.is_null()) {
                        text.push_str(&separator.to_string());
                    }
                    text.push_str(&value.to_string());
                }
            },
            Accumulator::Collected(_) => {}
        }
        Ok(())
    }

    fn finish(self, data_type: DataType) -> Result<Value> {
        Ok(match self {
            Accumulator::Count(n) => Value::BigInt(n),
            Accumulator::SumInteger(sum) => sum.map_or(Value::Null, Value::BigInt),
            Accumulator::SumFloat(sum) => match sum {
                None => Value::Null,
                Some(s) => Value::Double(s).cast(data_type)?,
            },
            Accumulator::Extreme(value) => value.unwrap_or(Value::Null),
            Accumulator::Average { count: 0, .. } => Value::Null,
            Accumulator::Average { sum, count } => Value::Double(sum / count as f64),
            Accumulator::Joined(text) => text.map_or(Value::Null, Value::Text),
            Accumulator::Collected(items) => match (items, data_type) {
                (Some(items), DataType::Array(element)) => Value::Array { element, items },
                _ => Value::Null,
            },
        })
    }
}

struct Group {
    keys: Vec<Value>,
    accumulators: Vec<Accumulator>,
    /// For DISTINCT aggregates: values already counted, per aggregate.
    distinct_seen: Vec<HashSet<Vec<u8>>>,
}

/// Consumes its input on the first call, then yields one row per group.
pub struct AggregateExecutor {
    source: Option<Box<dyn Executor>>,
    group_by: Vec<Expression>,
    aggregates: Vec<Aggregate>,
    output: std::vec::IntoIter<Vec<Value>>,
}

impl AggregateExecutor {
    /// Aggregates `source`'s rows.
    pub fn new(
        source: Box<dyn Executor>,
        group_by: Vec<Expression>,
        aggregates: Vec<Aggregate>,
    ) -> AggregateExecutor {
        AggregateExecutor {
            source: Some(source),
            group_by,
            aggregates,
            output: Vec::new().into_iter(),
        }
    }

    fn new_group(&self, keys: Vec<Value>) -> Group {
        Group {
            keys,
            accumulators: self.aggregates.iter().map(Accumulator::new).collect(),
            distinct_seen: vec![HashSet::new(); self.aggregates.len()],
        }
    }

    fn consume(
        &mut self,
        mut source: Box<dyn Executor>,
        txn: &Transaction,
    ) -> Result<Vec<Vec<Value>>> {
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        while let Some(row) = source.next(txn)? {
            let keys: Vec<Value> = self
                .group_by
                .iter()
                .map(|e| e.evaluate(&row))
                .collect::<Result<_>>()?;
            let encoded = keycode::encode_values(&keys);
            let position = match index.get(&encoded) {
                Some(&position) => position,
                None => {
                    groups.push(self.new_group(keys));
                    index.insert(encoded, groups.len() - 1);
                    groups.len() - 1
                }
            };
            let group = &mut groups[position];
            for (i, aggregate) in self.aggregates.iter().enumerate() {
                let value = aggregate
                    .argument
                    .as_ref()
                    .map(|a| a.evaluate(&row))
                    .transpose()?;
                if aggregate.distinct {
                    if let Some(v) = &value {
                        if v.is_null()
                            || !group.distinct_seen[i]
                                .insert(keycode::encode_values(std::slice::from_ref(v)))
                        {
                            continue;
                        }
                    }
                }
                let separator = aggregate
                    .separator
                    .as_ref()
                    .map(|s| s.evaluate(&row))
                    .transpose()?;
                group.accumulators[i].add(aggregate.function, value, separator)?;
            }
        }
        if groups.is_empty() && self.group_by.is_empty() {
            groups.push(self.new_group(Vec::new()));
        }
        groups
            .into_iter()
            .map(|group| {
                let mut row = group.keys;
                for (accumulator, aggregate) in group.accumulators.into_iter().zip(&self.aggregates)
                {
                    row.push(accumulator.finish(aggregate.data_type)?);
                }
                Ok(row)
            })
            .collect()
    }
}

impl Executor for AggregateExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        if let Some(source) = self.source.take() {
            self.output = self.consume(source, txn)?.into_iter();
        }
        Ok(self.output.next())
    }
}
