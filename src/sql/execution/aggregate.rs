//! Grouping and aggregates: COUNT, SUM, MIN, MAX, AVG, STRING_AGG, ARRAY_AGG, each
//! optionally DISTINCT.
//!
//! A whole-table aggregate (grouped by plain columns or not) is computed per shard where
//! the shards are stored and the parts combined ([`ShardAggregateExecutor`]), unless
//! the transaction wrote the table (its own rows then need the row scan's overlay) or
//! the groups are too many.
//!
//! Groups are kept in a hash map keyed by the key encoding of the group values (so NULLs
//! group together and 1 = 1.0) in first-seen order. Without GROUP BY, an empty input still
//! yields one row (count 0, other aggregates NULL), as SQL requires.

use super::interrupt::Interrupt;
use super::Executor;
use crate::encoding::keycode;
use crate::error::{Error, Result};
use crate::sql::planner::expression::{AggregateFunction, Expression};
use crate::sql::planner::plan::Aggregate;
use crate::sql::planner::plan::Plan;
use crate::txn::Transaction;
use crate::types::aggregate::{self, PartialAggregate};
use crate::types::{DataType, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Running state of one aggregate in one group: the combinable ones share their state
/// with the per-shard parts (see [`crate::types::aggregate`]).
#[derive(Clone, Debug)]
enum Accumulator {
    Combinable(PartialAggregate),
    Joined(Option<String>),
    Collected(Option<Vec<Value>>),
}

impl Accumulator {
    fn new(aggregate: &Aggregate) -> Accumulator {
        match aggregate.function.combinable() {
            Some(function) => Accumulator::Combinable(PartialAggregate::new(
                function,
                aggregate.data_type.is_integer(),
            )),
            None if aggregate.function == AggregateFunction::StringAgg => Accumulator::Joined(None),
            None => Accumulator::Collected(None),
        }
    }

    /// Adds one row's value (`None`: count(*)); `separator` is string_agg's for this row.
    fn add(&mut self, value: Option<Value>, separator: Option<Value>) -> Result<()> {
        match self {
            Accumulator::Combinable(state) => state.add(value.as_ref()),
            // array_agg keeps NULLs.
            Accumulator::Collected(items) => {
                if let Some(value) = value {
                    items.get_or_insert_with(Vec::new).push(value);
                }
                Ok(())
            }
            Accumulator::Joined(text) => {
                let Some(value) = value.filter(|value| !value.is_null()) else {
                    return Ok(());
                };
                match text {
                    None => *text = Some(value.to_string()),
                    Some(text) => {
                        if let Some(separator) = separator.filter(|s| !s.is_null()) {
                            text.push_str(&separator.to_string());
                        }
                        text.push_str(&value.to_string());
                    }
                }
                Ok(())
            }
        }
    }

    fn finish(self, data_type: DataType) -> Result<Value> {
        Ok(match self {
            Accumulator::Combinable(state) => state.finish(data_type)?,
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
                group.accumulators[i].add(value, separator)?;
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

/// A whole table's combinable aggregates, grouped by plain columns or not, computed per
/// shard and combined (see `Plan::shard_aggregation`); falls back to scanning rows
/// into an [`AggregateExecutor`] when the transaction has written the table or there
/// are too many groups.
pub struct ShardAggregateExecutor {
    plan: Option<Plan>,
    aggregates: Vec<Aggregate>,
    interrupt: Arc<Interrupt>,
    /// The row-by-row executor, when the transaction's own writes must be seen.
    fallback: Option<Box<dyn Executor>>,
    output: std::vec::IntoIter<Vec<Value>>,
}

impl ShardAggregateExecutor {
    /// Aggregates per shard what `plan` (an Aggregate over a full scan) asks.
    pub fn new(
        plan: Plan,
        aggregates: Vec<Aggregate>,
        interrupt: Arc<Interrupt>,
    ) -> ShardAggregateExecutor {
        ShardAggregateExecutor {
            plan: Some(plan),
            aggregates,
            interrupt,
            fallback: None,
            output: Vec::new().into_iter(),
        }
    }

    /// Runs the fan-out; `None` when the fallback must run instead. Rows come out one
    /// per group, group keys then aggregates (as [`AggregateExecutor`]'s); without
    /// GROUP BY an empty table still yields one row.
    fn aggregate(&self, plan: &Plan, txn: &Transaction) -> Result<Option<Vec<Vec<Value>>>> {
        let Some((table, spec)) = plan.shard_aggregation() else {
            return Err(Error::Internal(
                "a shard aggregate was built for a plan that has none".into(),
            ));
        };
        let interrupt = &self.interrupt;
        let check = || interrupt.check();
        let Some(parts) = txn.aggregate_table(table, &spec, &check)? else {
            return Ok(None);
        };
        let mut groups = parts.into_groups();
        if groups.is_empty() && spec.group_by.is_empty() {
            groups.push((Vec::new(), aggregate::start_all(&spec.aggregates)));
        }
        let rows = groups.into_iter().map(|(mut row, states)| {
            for (state, aggregate) in states.into_iter().zip(&self.aggregates) {
                row.push(state.finish(aggregate.data_type)?);
            }
            Ok(row)
        });
        rows.collect::<Result<Vec<_>>>().map(Some)
    }
}

impl Executor for ShardAggregateExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        if let Some(plan) = self.plan.take() {
            match self.aggregate(&plan, txn)? {
                Some(rows) => self.output = rows.into_iter(),
                None => {
                    let Plan::Aggregate {
                        source,
                        group_by,
                        aggregates,
                    } = plan
                    else {
                        return Err(Error::Internal("a shard aggregate lost its plan".into()));
                    };
                    let source = super::build(&source, &self.interrupt)?;
                    self.fallback = Some(Box::new(AggregateExecutor::new(
                        source, group_by, aggregates,
                    )));
                }
            }
        }
        match &mut self.fallback {
            Some(fallback) => fallback.next(txn),
            None => Ok(self.output.next()),
        }
    }
}
