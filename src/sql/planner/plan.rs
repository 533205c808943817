//! Physical plans: trees of operators the executor runs, and their EXPLAIN text.

use super::expression::{AggregateFunction, Expression};
use crate::catalog::{Index, Table};
use crate::sql::ast::SetOperator;
use crate::types::aggregate::{ColumnAggregate, ShardAggregation};
use crate::types::DataType;
use std::fmt::Write;
use std::ops::Bound;

/// How a scan reaches rows.
#[derive(Clone, Debug, PartialEq)]
pub enum AccessPath {
    /// Every row of the table.
    FullScan,
    /// Rows by primary key: exact keys (every key column fixed) or key ranges.
    PrimaryKey(Vec<KeyRange>),
    /// Rows through a secondary index.
    Index(Index, Vec<KeyRange>),
}

pub use crate::shard::KeyRange;

/// EXPLAIN text of key ranges.
trait DescribeRange {
    fn describe(&self, columns: &[String]) -> String;
}

impl DescribeRange for KeyRange {
    fn describe(&self, columns: &[String]) -> String {
        let mut parts: Vec<String> = self
            .prefix
            .iter()
            .zip(columns)
            .map(|(v, c)| format!("{c} = {}", Expression::Constant(v.clone())))
            .collect();
        let next = columns.get(self.prefix.len()).cloned().unwrap_or_default();
        match &self.lower {
            Bound::Included(v) => {
                parts.push(format!("{next} >= {}", Expression::Constant(v.clone())))
            }
            Bound::Excluded(v) => {
                parts.push(format!("{next} > {}", Expression::Constant(v.clone())))
            }
            Bound::Unbounded => {}
        }
        match &self.upper {
            Bound::Included(v) => {
                parts.push(format!("{next} <= {}", Expression::Constant(v.clone())))
            }
            Bound::Excluded(v) => {
                parts.push(format!("{next} < {}", Expression::Constant(v.clone())))
            }
            Bound::Unbounded => {}
        }
        parts.join(" AND ")
    }
}

/// One aggregate computed by an Aggregate node.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// Which function.
    pub function: AggregateFunction,
    /// Its argument; `None` for count(*).
    pub argument: Option<Expression>,
    /// string_agg's separator, evaluated per row.
    pub separator: Option<Expression>,
    /// DISTINCT.
    pub distinct: bool,
    /// Result type.
    pub data_type: DataType,
}

/// One sort key: a column of the input and its direction.
#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    /// Input column position.
    pub column: usize,
    /// Name, for EXPLAIN.
    pub name: String,
    /// DESC.
    pub descending: bool,
    /// Whether NULLs come first (PostgreSQL: last for ASC, first for DESC by default).
    pub nulls_first: bool,
}

/// Which rows a join emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinType {
    /// Matching pairs only.
    Inner,
    /// Matching pairs, and each unmatched left row with NULLs for the right side.
    Left,
}

/// The set-returning functions FROM accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFunction {
    /// `generate_series(start, stop [, step])`: integers from start to stop.
    GenerateSeries,
    /// `unnest(array)`: the elements, one per row.
    Unnest,
}

impl TableFunction {
    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            TableFunction::GenerateSeries => "generate_series",
            TableFunction::Unnest => "unnest",
        }
    }
}

/// A node of a plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Literal rows (SELECT without FROM: one empty row).
    Values {
        /// Rows of expressions.
        rows: Vec<Vec<Expression>>,
    },
    /// Rows of a set-returning function, one column each.
    TableFunction {
        /// Which function.
        function: TableFunction,
        /// Its arguments, evaluated when the plan runs.
        arguments: Vec<Expression>,
        /// The column's type.
        data_type: DataType,
    },
    /// Reads rows of a table.
    Scan {
        /// The table.
        table: Table,
        /// How.
        access: AccessPath,
    },
    /// Keeps rows for which the predicate is true.
    Filter {
        /// Input.
        source: Box<Plan>,
        /// Predicate.
        predicate: Expression,
    },
    /// Computes output columns.
    Project {
        /// Input.
        source: Box<Plan>,
        /// One expression per output column.
        expressions: Vec<Expression>,
    },
    /// Groups rows and computes aggregates; output is group keys then aggregates.
    Aggregate {
        /// Input.
        source: Box<Plan>,
        /// GROUP BY expressions.
        group_by: Vec<Expression>,
        /// Aggregates.
        aggregates: Vec<Aggregate>,
    },
    /// Removes duplicate rows.
    Distinct {
        /// Input.
        source: Box<Plan>,
    },
    /// Sorts rows.
    Sort {
        /// Input.
        source: Box<Plan>,
        /// Keys, most significant first.
        keys: Vec<SortKey>,
    },
    /// OFFSET then LIMIT.
    Limit {
        /// Input.
        source: Box<Plan>,
        /// Rows to return at most.
        limit: Option<u64>,
        /// Rows to skip first.
        offset: u64,
    },
    /// Joins two inputs by testing every pair (the right side is read once and kept).
    NestedLoopJoin {
        /// Left input; streams.
        left: Box<Plan>,
        /// Right input; materialized.
        right: Box<Plan>,
        /// Which rows the join keeps.
        join_type: JoinType,
        /// Condition on the joined row; `None` keeps every pair.
        predicate: Option<Expression>,
        /// Columns of a right row, for NULL-extending unmatched left rows.
        right_width: usize,
    },
    /// Joins two inputs on equal keys through a hash table of the right side.
    HashJoin {
        /// Left input; streams and probes.
        left: Box<Plan>,
        /// Right input; built into the hash table.
        right: Box<Plan>,
        /// Which rows the join keeps.
        join_type: JoinType,
        /// Key expressions over a left row.
        left_keys: Vec<Expression>,
        /// Key expressions over a right row, pairwise equal to `left_keys`.
        right_keys: Vec<Expression>,
        /// Further condition on the joined row.
        residual: Option<Expression>,
        /// Columns of a right row, for NULL-extending unmatched left rows.
        right_width: usize,
    },
    /// UNION, INTERSECT or EXCEPT of two inputs with the same column types.
    SetOperation {
        /// How rows are combined.
        operator: SetOperator,
        /// Keep duplicates (ALL).
        all: bool,
        /// Left input; streams.
        left: Box<Plan>,
        /// Right input; streams for UNION, is counted first for INTERSECT and EXCEPT.
        right: Box<Plan>,
    },
    /// Inserts the input rows (full rows in table column order, not yet coerced).
    Insert {
        /// Target.
        table: Table,
        /// Rows to insert.
        source: Box<Plan>,
        /// ON CONFLICT, if given.
        on_conflict: Option<Box<ConflictPlan>>,
        /// RETURNING, over each row as inserted (coerced, defaults in) or, through ON
        /// CONFLICT DO UPDATE, as updated.
        returning: Option<Vec<Expression>>,
    },
    /// Updates the rows the input produces (full table rows).
    Update {
        /// Target.
        table: Table,
        /// Rows to update.
        source: Box<Plan>,
        /// Column position and new value, evaluated against the old row.
        assignments: Vec<(usize, Expression)>,
        /// RETURNING, over each row as updated.
        returning: Option<Vec<Expression>>,
    },
    /// Deletes the rows the input produces (full table rows).
    Delete {
        /// Target.
        table: Table,
        /// Rows to delete.
        source: Box<Plan>,
        /// RETURNING, over each row as it was.
        returning: Option<Vec<Expression>>,
    },
}

/// Where COPY FROM puts its rows: the table, the columns each record gives, and what
/// every column gets when the data leaves it out.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyTarget {
    /// The table.
    pub table: Table,
    /// Column positions, in the order of each record's fields.
    pub targets: Vec<usize>,
    /// Per table column, its default (as for INSERT; evaluated per row).
    pub defaults: Vec<Expression>,
}

/// What an INSERT does with a row whose key or unique value is taken.
#[derive(Clone, Debug, PartialEq)]
pub struct ConflictPlan {
    /// The constraint whose conflicts are handled; others stay errors.
    pub arbiter: Arbiter,
    /// What is done about them.
    pub resolution: ConflictResolution,
}

/// The constraint an ON CONFLICT clause handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arbiter {
    /// The primary key and every unique index (DO NOTHING without a target).
    Any,
    /// The primary key.
    PrimaryKey,
    /// This unique index.
    Index(crate::storage::keys::IndexId),
}

/// ON CONFLICT's action, bound.
#[derive(Clone, Debug, PartialEq)]
pub enum ConflictResolution {
    /// The proposed row is skipped.
    Nothing,
    /// The existing row is updated; expressions see the existing row followed by the
    /// proposed one (`excluded`).
    Update {
        /// Column position and new value.
        assignments: Vec<(usize, Expression)>,
        /// Only rows this holds for are updated.
        filter: Option<Expression>,
    },
}

impl Plan {
    /// Calls `f` on every expression of the plan (not of subqueries inside them), so that
    /// the executor can bind a correlated subquery's plan to one outer row.
    pub fn for_each_expression_mut(
        &mut self,
        f: &mut dyn FnMut(&mut Expression) -> crate::error::Result<()>,
    ) -> crate::error::Result<()> {
        let mut each = |exprs: &mut [Expression]| exprs.iter_mut().try_for_each(&mut *f);
        match self {
            Plan::Values { rows } => rows.iter_mut().try_for_each(|row| each(row))?,
            Plan::TableFunction { arguments, .. } => each(arguments)?,
            Plan::Scan { .. } => {}
            Plan::Filter { source, predicate } => {
                each(std::slice::from_mut(predicate))?;
                return source.for_each_expression_mut(f);
            }
            Plan::Project {
                source,
                expressions,
            } => {
                each(expressions)?;
                return source.for_each_expression_mut(f);
            }
            Plan::Aggregate {
                source,
                group_by,
                aggregates,
            } => {
                each(group_by)?;
                for aggregate in aggregates {
                    if let Some(argument) = &mut aggregate.argument {
                        each(std::slice::from_mut(argument))?;
                    }
                    if let Some(separator) = &mut aggregate.separator {
                        each(std::slice::from_mut(separator))?;
                    }
                }
                return source.for_each_expression_mut(f);
            }
            Plan::Distinct { source } | Plan::Sort { source, .. } | Plan::Limit { source, .. } => {
                return source.for_each_expression_mut(f)
            }
            Plan::SetOperation { left, right, .. } => {
                left.for_each_expression_mut(f)?;
                return right.for_each_expression_mut(f);
            }
            Plan::NestedLoopJoin {
                left,
                right,
                predicate,
                ..
            } => {
                if let Some(predicate) = predicate {
                    each(std::slice::from_mut(predicate))?;
                }
                left.for_each_expression_mut(f)?;
                return right.for_each_expression_mut(f);
            }
            Plan::HashJoin {
                left,
                right,
                left_keys,
                right_keys,
                residual,
                ..
            } => {
                each(left_keys)?;
                each(right_keys)?;
                if let Some(residual) = residual {
                    each(std::slice::from_mut(residual))?;
                }
                left.for_each_expression_mut(f)?;
                return right.for_each_expression_mut(f);
            }
            Plan::Insert {
                source,
                returning,
                on_conflict,
                ..
            } => {
                if let Some(returning) = returning {
                    each(returning)?;
                }
                if let Some(ConflictResolution::Update {
                    assignments,
                    filter,
                }) = on_conflict
                    .as_deref_mut()
                    .map(|conflict| &mut conflict.resolution)
                {
                    for (_, expression) in assignments.iter_mut() {
                        each(std::slice::from_mut(expression))?;
                    }
                    if let Some(filter) = filter {
                        each(std::slice::from_mut(filter))?;
                    }
                }
                return source.for_each_expression_mut(f);
            }
            Plan::Delete {
                source, returning, ..
            } => {
                if let Some(returning) = returning {
                    each(returning)?;
                }
                return source.for_each_expression_mut(f);
            }
            Plan::Update {
                source,
                assignments,
                returning,
                ..
            } => {
                for (_, expression) in assignments.iter_mut() {
                    each(std::slice::from_mut(expression))?;
                }
                if let Some(returning) = returning {
                    each(returning)?;
                }
                return source.for_each_expression_mut(f);
            }
        }
        Ok(())
    }

    /// When this node aggregates a whole table with combinable aggregates of plain
    /// columns, grouped by plain columns or not: the table and what each shard computes, so the shards
    /// are aggregated where they are stored, side by side, and only the parts combined
    /// (see `replica::fan_out`).
    pub fn shard_aggregation(&self) -> Option<(&Table, ShardAggregation)> {
        let Plan::Aggregate {
            source,
            group_by,
            aggregates,
        } = self
        else {
            return None;
        };
        let Plan::Scan {
            table,
            access: AccessPath::FullScan,
        } = &**source
        else {
            return None;
        };
        let group_by = group_by
            .iter()
            .map(|key| match key {
                Expression::Column { index, .. } => Some(*index),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()?;
        let per_shard = aggregates.iter().map(|aggregate| {
            if aggregate.distinct || aggregate.separator.is_some() {
                return None;
            }
            let column = match &aggregate.argument {
                None => None,
                Some(Expression::Column { index, .. }) => Some(*index),
                Some(_) => return None,
            };
            Some(ColumnAggregate {
                function: aggregate.function.combinable()?,
                column,
                integer: aggregate.data_type.is_integer(),
            })
        });
        let aggregates = per_shard.collect::<Option<Vec<_>>>()?;
        Some((
            table,
            ShardAggregation {
                group_by,
                aggregates,
            },
        ))
    }

    /// How many shards the scan under this node reads, when only projections and
    /// filters stand between them (so a LIMIT above is pushed down to it, see
    /// `execution::build_hinted`); `None` for a key lookup or any other node.
    pub fn scanned_shards(&self) -> Option<u16> {
        match self {
            Plan::Project { source, .. } | Plan::Filter { source, .. } => source.scanned_shards(),
            Plan::Scan {
                access: AccessPath::PrimaryKey(ranges),
                table,
            } if ranges.iter().all(|r| r.is_point(table.primary_key.len())) => None,
            Plan::Scan { table, .. } => Some(table.shard_count.max(1)),
            _ => None,
        }
    }

    /// The plan as indented text, one node per line, as EXPLAIN prints it.
    pub fn explain(&self) -> Vec<String> {
        let mut lines = Vec::new();
        self.explain_into(&mut lines, 0);
        lines
    }

    fn explain_into(&self, lines: &mut Vec<String>, depth: usize) {
        let indent = if depth == 0 {
            String::new()
        } else {
            format!("{}->  ", "      ".repeat(depth - 1))
        };
        let detail_indent = "      ".repeat(depth);
        let mut line = indent;
        let mut details: Vec<String> = Vec::new();
        let children: Vec<&Plan> = match self {
            Plan::Values { rows } => {
                let _ = write!(
                    line,
                    "Values ({} row{})",
                    rows.len(),
                    if rows.len() == 1 { "" } else { "s" }
                );
                Vec::new()
            }
            Plan::TableFunction {
                function,
                arguments,
                ..
            } => {
                let items: Vec<String> = arguments.iter().map(ToString::to_string).collect();
                let _ = write!(line, "Function Scan on {}", function.name());
                details.push(format!("Arguments: {}", items.join(", ")));
                Vec::new()
            }
            Plan::Scan { table, access } => {
                let (text, condition) = describe_access(table, access);
                line.push_str(&text);
                details.extend(condition);
                details.push(describe_shards(table, access));
                Vec::new()
            }
            Plan::Filter { source, predicate } => {
                line.push_str("Filter");
                details.push(format!("Condition: {predicate}"));
                vec![&**source]
            }
            Plan::Project {
                source,
                expressions,
            } => {
                let items: Vec<String> = expressions.iter().map(ToString::to_string).collect();
                line.push_str("Project");
                details.push(format!("Output: {}", items.join(", ")));
                vec![&**source]
            }
            Plan::Aggregate {
                aggregates,
                group_by,
                ..
            } if self.shard_aggregation().is_some() => {
                // One node: no row scan runs, each shard is aggregated where it is.
                let table = self.shard_aggregation().map(|(table, _)| table);
                let name = table.map_or("", |table| table.name.as_str());
                let count = table.map_or(1, |table| table.shard_count.max(1));
                let _ = write!(line, "Shard Aggregate on {name}");
                if !group_by.is_empty() {
                    let keys: Vec<String> = group_by.iter().map(ToString::to_string).collect();
                    details.push(format!("Group Key: {}", keys.join(", ")));
                }
                let aggregates: Vec<String> = aggregates.iter().map(describe_aggregate).collect();
                details.push(format!("Aggregates: {}", aggregates.join(", ")));
                details.push(format!(
                    "Shards: all {count}, each aggregated where stored, side by side, \
                     then combined"
                ));
                Vec::new()
            }
            Plan::Aggregate {
                source,
                group_by,
                aggregates,
            } => {
                line.push_str(if group_by.is_empty() {
                    "Aggregate"
                } else {
                    "HashAggregate"
                });
                if !group_by.is_empty() {
                    let keys: Vec<String> = group_by.iter().map(ToString::to_string).collect();
                    details.push(format!("Group Key: {}", keys.join(", ")));
                }
                let aggregates: Vec<String> = aggregates.iter().map(describe_aggregate).collect();
                details.push(format!("Aggregates: {}", aggregates.join(", ")));
                vec![&**source]
            }
            Plan::Distinct { source } => {
                line.push_str("Distinct");
                vec![&**source]
            }
            Plan::Sort { source, keys } => {
                line.push_str("Sort");
                let keys: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        let mut text = k.name.clone();
                        if k.descending {
                            text.push_str(" DESC");
                        }
                        if k.nulls_first != k.descending {
                            text.push_str(if k.nulls_first {
                                " NULLS FIRST"
                            } else {
                                " NULLS LAST"
                            });
                        }
                        text
                    })
                    .collect();
                details.push(format!("Sort Key: {}", keys.join(", ")));
                vec![&**source]
            }
            Plan::Limit {
                source,
                limit,
                offset,
            } => {
                line.push_str("Limit");
                match limit {
                    Some(limit) => details.push(format!("Limit: {limit}, Offset: {offset}")),
                    None => details.push(format!("Offset: {offset}")),
                }
                if let (Some(limit), Some(shards)) = (limit, source.scanned_shards()) {
                    if shards > 1 {
                        details.push(format!(
                            "Pushed down: each shard reads {} rows first",
                            limit.saturating_add(*offset)
                        ));
                    }
                }
                vec![&**source]
            }
            Plan::NestedLoopJoin {
                left,
                right,
                join_type,
                predicate,
                ..
            } => {
                line.push_str(match join_type {
                    JoinType::Inner => "Nested Loop",
                    JoinType::Left => "Nested Loop Left Join",
                });
                if let Some(predicate) = predicate {
                    details.push(format!("Join Filter: {predicate}"));
                }
                vec![&**left, &**right]
            }
            Plan::HashJoin {
                left,
                right,
                join_type,
                left_keys,
                right_keys,
                residual,
                ..
            } => {
                line.push_str(match join_type {
                    JoinType::Inner => "Hash Join",
                    JoinType::Left => "Hash Left Join",
                });
                let keys: Vec<String> = left_keys
                    .iter()
                    .zip(right_keys)
                    .map(|(l, r)| format!("{l} = {r}"))
                    .collect();
                details.push(format!("Hash Cond: {}", keys.join(" AND ")));
                if let Some(residual) = residual {
                    details.push(format!("Join Filter: {residual}"));
                }
                vec![&**left, &**right]
            }
            Plan::SetOperation {
                operator,
                all,
                left,
                right,
            } => {
                line.push_str(match (operator, all) {
                    (SetOperator::Union, true) => "Append",
                    (SetOperator::Union, false) => "Union",
                    (SetOperator::Intersect, true) => "Intersect All",
                    (SetOperator::Intersect, false) => "Intersect",
                    (SetOperator::Except, true) => "Except All",
                    (SetOperator::Except, false) => "Except",
                });
                vec![&**left, &**right]
            }
            Plan::Insert {
                table,
                source,
                on_conflict,
                returning,
            } => {
                let _ = write!(line, "Insert on {}", table.name);
                if let Some(conflict) = on_conflict {
                    details.extend(describe_conflict(table, conflict));
                }
                details.extend(describe_returning(returning));
                vec![&**source]
            }
            Plan::Update {
                table,
                source,
                assignments,
                returning,
            } => {
                let _ = write!(line, "Update on {}", table.name);
                let sets: Vec<String> = assignments
                    .iter()
                    .map(|(c, e)| format!("{} = {e}", table.columns[*c].name))
                    .collect();
                details.push(format!("Set: {}", sets.join(", ")));
                details.extend(describe_returning(returning));
                vec![&**source]
            }
            Plan::Delete {
                table,
                source,
                returning,
            } => {
                let _ = write!(line, "Delete on {}", table.name);
                details.extend(describe_returning(returning));
                vec![&**source]
            }
        };
        lines.push(line);
        for detail in details {
            lines.push(format!("{detail_indent}  {detail}"));
        }
        for child in children {
            child.explain_into(lines, depth + 1);
        }
    }
}

/// EXPLAIN's lines for ON CONFLICT, as PostgreSQL words them.
fn describe_conflict(table: &Table, conflict: &ConflictPlan) -> Vec<String> {
    let mut lines = Vec::new();
    let resolution = match &conflict.resolution {
        ConflictResolution::Nothing => "NOTHING",
        ConflictResolution::Update { .. } => "UPDATE",
    };
    lines.push(format!("Conflict Resolution: {resolution}"));
    let arbiters = match &conflict.arbiter {
        Arbiter::Any => None,
        Arbiter::PrimaryKey => Some(table.primary_key_name()),
        Arbiter::Index(id) => table
            .indexes
            .iter()
            .find(|index| index.id == *id)
            .map(|index| index.name.clone()),
    };
    lines.extend(arbiters.map(|name| format!("Conflict Arbiter Indexes: {name}")));
    if let ConflictResolution::Update {
        assignments,
        filter,
    } = &conflict.resolution
    {
        let sets: Vec<String> = assignments
            .iter()
            .map(|(c, e)| format!("{} = {e}", table.columns[*c].name))
            .collect();
        lines.push(format!("Set: {}", sets.join(", ")));
        lines.extend(filter.as_ref().map(|f| format!("Conflict Filter: {f}")));
    }
    lines
}

/// EXPLAIN's line for a RETURNING list, if there is one.
fn describe_returning(returning: &Option<Vec<Expression>>) -> Option<String> {
    let expressions = returning.as_ref()?;
    let listed: Vec<String> = expressions.iter().map(ToString::to_string).collect();
    Some(format!("Returning: {}", listed.join(", ")))
}

fn describe_aggregate(aggregate: &Aggregate) -> String {
    let distinct = if aggregate.distinct { "DISTINCT " } else { "" };
    let separator = aggregate
        .separator
        .as_ref()
        .map(|s| format!(", {s}"))
        .unwrap_or_default();
    match &aggregate.argument {
        None => format!("{}(*)", aggregate.function.name()),
        Some(arg) => format!("{}({distinct}{arg}{separator})", aggregate.function.name()),
    }
}

/// Which shards a scan touches: primary-key points only the shards their keys hash to,
/// points of a unique index only the shards their values hash to (then each row's own);
/// anything else every shard, read together and merged in key order.
fn describe_shards(table: &Table, access: &AccessPath) -> String {
    let count = table.shard_count.max(1);
    if let AccessPath::Index(index, ranges) = access {
        if index.unique && ranges.iter().all(|r| r.is_point(index.columns.len())) {
            let touched: std::collections::BTreeSet<_> = ranges
                .iter()
                .flat_map(|range| crate::shard::index_shards(table, index, range))
                .collect();
            return format!(
                "Shards: {} of {count} (by value hash), then each row's own",
                touched.len()
            );
        }
    }
    let points = match access {
        AccessPath::PrimaryKey(ranges)
            if ranges.iter().all(|r| r.is_point(table.primary_key.len())) =>
        {
            Some(ranges)
        }
        _ => None,
    };
    match points {
        Some(ranges) => {
            let touched: std::collections::BTreeSet<_> = ranges
                .iter()
                .flat_map(|range| crate::shard::shards_for_range(table, range))
                .collect();
            format!("Shards: {} of {count} (by key hash)", touched.len())
        }
        None if count == 1 => "Shards: 1 of 1".to_string(),
        None => format!("Shards: all {count}, merged in key order"),
    }
}

fn describe_access(table: &Table, access: &AccessPath) -> (String, Option<String>) {
    let names = |columns: &[usize]| -> Vec<String> {
        columns
            .iter()
            .map(|&c| table.columns[c].name.clone())
            .collect()
    };
    let describe_ranges = |ranges: &[KeyRange], columns: &[String]| -> String {
        let parts: Vec<String> = ranges.iter().map(|r| r.describe(columns)).collect();
        if parts.len() == 1 {
            parts[0].clone()
        } else {
            parts
                .iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" OR ")
        }
    };
    match access {
        AccessPath::FullScan => (format!("Seq Scan on {}", table.name), None),
        AccessPath::PrimaryKey(ranges) => {
            let columns = names(&table.primary_key);
            let kind = if ranges.iter().all(|r| r.is_point(columns.len())) {
                "Key Lookup"
            } else {
                "Key Range Scan"
            };
            (
                format!(
                    "{kind} using {} on {}",
                    table.primary_key_name(),
                    table.name
                ),
                Some(format!("Key Cond: {}", describe_ranges(ranges, &columns))),
            )
        }
        AccessPath::Index(index, ranges) => {
            let columns = names(&index.columns);
            (
                format!("Index Scan using {} on {}", index.name, table.name),
                Some(format!("Index Cond: {}", describe_ranges(ranges, &columns))),
            )
        }
    }
}
