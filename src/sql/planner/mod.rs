//! The planner: binds statements against the catalog and builds physical plans.
//!
//! A SELECT becomes `FROM (scans and joins, WHERE pushed down) -> [Aggregate ->
//! Filter(HAVING)] -> Project -> [Distinct] -> [Sort] -> [Limit] -> [Project]`: the last
//! projection drops columns that were computed only to sort by; [`join`] plans FROM;
//! `set_operation` plans UNION, INTERSECT and EXCEPT over two such queries.
//! Constant sub-expressions are folded at plan time so that `id = 1 + 1` or `id = $1`
//! can use the primary key.

pub mod access;
mod array;
pub mod expression;
pub mod join;
pub mod pg_catalog;
pub mod plan;
mod schema;
pub mod sequence;
mod set_operation;
pub mod system;
mod table_function;
mod write;

use super::ast::{Expr, OrderItem, Select, SelectItem};
use crate::catalog::{Catalog, Index, Table};
use crate::error::{Error, Result};
use crate::types::{DataType, Value, TEXT};
use expression::{
    bind, bind_boolean, AggregateFunction, Expression, Grouping, Identity, ParameterTypes, Scope,
    ScopeColumn,
};
use plan::{Aggregate, Plan, SortKey};

/// A column of a query's result.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputColumn {
    /// Header.
    pub name: String,
    /// Type; untyped NULL columns are reported as text, as PostgreSQL does.
    pub data_type: DataType,
}

/// A planned query with what a set operation needs to know of its columns.
struct QueryPlan {
    plan: Plan,
    columns: Vec<OutputColumn>,
    /// Per column: whether its type was only assumed (a NULL or a string literal).
    untyped: Vec<bool>,
}

/// Plans statements against one catalog with one set of parameter values.
#[derive(Clone, Copy)]
pub struct Planner<'a> {
    catalog: &'a Catalog,
    params: &'a [Value],
    index_usable: &'a dyn Fn(&Index) -> bool,
    inferred: Option<&'a ParameterTypes>,
    identity: &'a Identity,
    /// The scope of the query around the one being planned (for a subquery).
    outer: Option<&'a Scope<'a>>,
    /// The session's sequences, for `nextval` and friends (`None`: not callable).
    sequences: Option<&'a sequence::SequenceAccess>,
}

static DEFAULT_IDENTITY: std::sync::LazyLock<Identity> =
    std::sync::LazyLock::new(Identity::default);

impl<'a> Planner<'a> {
    /// The catalog statements are planned against.
    pub fn catalog(&self) -> &'a Catalog {
        self.catalog
    }

    /// A planner for a subquery of `scope`.
    pub fn nested<'s>(&'s self, scope: &'s Scope<'s>) -> Planner<'s> {
        Planner {
            outer: Some(scope),
            ..*self
        }
    }

    /// The same planner answering `current_user` and `current_database()` for `identity`.
    pub fn with_identity(self, identity: &'a Identity) -> Planner<'a> {
        Planner { identity, ..self }
    }

    /// The same planner binding `nextval` and the other sequence functions to `access`.
    pub fn with_sequences(self, access: &'a sequence::SequenceAccess) -> Planner<'a> {
        Planner {
            sequences: Some(access),
            ..self
        }
    }

    /// The session's sequences, if the sequence functions may be called.
    pub fn sequences(&self) -> Option<&'a sequence::SequenceAccess> {
        self.sequences
    }

    /// A planner; `index_usable` tells which indexes the reading snapshot may use.
    pub fn new(
        catalog: &'a Catalog,
        params: &'a [Value],
        index_usable: &'a dyn Fn(&Index) -> bool,
    ) -> Planner<'a> {
        Planner {
            catalog,
            params,
            index_usable,
            inferred: None,
            identity: &DEFAULT_IDENTITY,
            outer: None,
            sequences: None,
        }
    }

    /// A planner for describing a statement before its parameters have values: `$n`
    /// plans as NULL and its inferred type is recorded in `inferred`.
    pub fn describing(
        catalog: &'a Catalog,
        index_usable: &'a dyn Fn(&Index) -> bool,
        inferred: &'a ParameterTypes,
    ) -> Planner<'a> {
        Planner {
            catalog,
            params: &[],
            index_usable,
            inferred: Some(inferred),
            identity: &DEFAULT_IDENTITY,
            outer: None,
            sequences: None,
        }
    }

    fn table_scope(&self, table: &Table, visible_name: &str, clause: &'static str) -> Scope<'_> {
        Scope {
            columns: table
                .columns
                .iter()
                .map(|c| ScopeColumn {
                    name: c.name.clone(),
                    table: Some(visible_name.to_string()),
                    data_type: c.data_type,
                })
                .collect(),
            params: self.params,
            grouping: None,
            clause,
            inferred: self.inferred,
            identity: self.identity,
            planner: Some(self),
            outer: self.outer,
        }
    }

    fn empty_scope(&self, clause: &'static str) -> Scope<'_> {
        Scope {
            columns: Vec::new(),
            params: self.params,
            grouping: None,
            clause,
            inferred: self.inferred,
            identity: self.identity,
            planner: Some(self),
            outer: self.outer,
        }
    }

    /// Plans a SELECT, returning the plan and its result columns.
    pub fn plan_select(&self, select: &Select) -> Result<(Plan, Vec<OutputColumn>)> {
        self.plan_query(select)
            .map(|query| (query.plan, query.columns))
    }

    fn plan_query(&self, select: &Select) -> Result<QueryPlan> {
        match &select.set_operation {
            Some(operation) => self.plan_set_operation(operation, select),
            None => self.plan_single_select(select),
        }
    }

    fn plan_single_select(&self, select: &Select) -> Result<QueryPlan> {
        let (mut plan, scope, sources) = match &select.from {
            Some(from) => {
                let planned = self.plan_from(from, select.filter.as_ref())?;
                (
                    planned.plan,
                    self.scope_over(planned.columns, "WHERE"),
                    planned.sources,
                )
            }
            None => {
                let scope = self.empty_scope("WHERE");
                let mut plan = Plan::Values {
                    rows: vec![Vec::new()],
                };
                if let Some(filter) = &select.filter {
                    plan = Plan::Filter {
                        source: Box::new(plan),
                        predicate: fold(bind_boolean(filter, &scope, "WHERE")?)?,
                    };
                }
                (plan, scope, Vec::new())
            }
        };

        // Expand the select list into (expression as written, header).
        let mut items: Vec<(Expr, String)> = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard => {
                    if sources.is_empty() {
                        return Err(Error::Syntax {
                            message: "SELECT * with no tables specified is not valid".into(),
                            position: None,
                        });
                    }
                    for source in &sources {
                        items.extend(visible_columns(&source.table, Some(&source.visible)));
                    }
                }
                SelectItem::QualifiedWildcard(name) => {
                    let source = sources.iter().find(|s| &s.visible == name).ok_or_else(|| {
                        Error::UndefinedTable(format!(
                            "{name}\" (missing FROM-clause entry for table \"{name}"
                        ))
                    })?;
                    items.extend(visible_columns(&source.table, Some(name)));
                }
                SelectItem::Expression { expr, alias } => {
                    let name = alias
                        .clone()
                        .unwrap_or_else(|| expression::default_column_name(expr));
                    items.push((expr.clone(), name));
                }
            }
        }

        let aggregating = !select.group_by.is_empty()
            || select.having.is_some()
            || items.iter().any(|(e, _)| expression::contains_aggregate(e))
            || select
                .order_by
                .iter()
                .any(|o| expression::contains_aggregate(&o.expr));
        if select
            .filter
            .as_ref()
            .is_some_and(expression::contains_aggregate)
        {
            return Err(Error::Grouping(
                "aggregate functions are not allowed in WHERE".into(),
            ));
        }

        let mut aggregate_calls = Vec::new();
        let output_scope = if aggregating {
            for (expr, _) in &items {
                expression::collect_aggregates(expr, &mut aggregate_calls);
            }
            if let Some(having) = &select.having {
                expression::collect_aggregates(having, &mut aggregate_calls);
            }
            for item in &select.order_by {
                expression::collect_aggregates(&item.expr, &mut aggregate_calls);
            }
            let group_scope = Scope {
                clause: "GROUP BY",
                ..self.scope_like(&scope)
            };
            let group_by: Vec<Expression> = select
                .group_by
                .iter()
                .map(|g| bind(g, &group_scope).and_then(fold))
                .collect::<Result<_>>()?;
            let aggregates = self.bind_aggregates(&aggregate_calls, &scope)?;
            let arguments = aggregates
                .iter()
                .flat_map(|a| a.argument.iter().chain(a.separator.iter()));
            if group_by
                .iter()
                .chain(arguments)
                .any(Expression::has_subquery)
            {
                return Err(Error::FeatureNotSupported(
                    "subqueries in GROUP BY or in aggregate arguments".into(),
                ));
            }
            let grouping = Grouping {
                group_exprs: &select.group_by,
                group_types: group_by
                    .iter()
                    .map(|g| g.data_type().unwrap_or(crate::types::TEXT))
                    .collect(),
                aggregates: &aggregate_calls,
                aggregate_types: aggregates.iter().map(|a| a.data_type).collect(),
            };
            plan = Plan::Aggregate {
                source: Box::new(plan),
                group_by,
                aggregates,
            };
            // Input columns stay visible only so that a reference to one is told apart
            // from a missing column (42803 rather than 42703).
            let grouped = Scope {
                columns: scope.columns.clone(),
                params: self.params,
                grouping: Some(grouping),
                clause: "HAVING",
                inferred: self.inferred,
                identity: self.identity,
                planner: Some(self),
                outer: self.outer,
            };
            if let Some(having) = &select.having {
                let predicate = fold(bind_boolean(having, &grouped, "HAVING")?)?;
                plan = Plan::Filter {
                    source: Box::new(plan),
                    predicate,
                };
            }
            grouped
        } else {
            scope
        };

        let mut expressions: Vec<Expression> = items
            .iter()
            .map(|(e, _)| bind(e, &output_scope).and_then(fold))
            .collect::<Result<_>>()?;
        let columns: Vec<OutputColumn> = items
            .iter()
            .zip(&expressions)
            .map(|((_, name), e)| OutputColumn {
                name: name.clone(),
                data_type: e.data_type().unwrap_or(crate::types::TEXT),
            })
            .collect();
        // A NULL or a string literal has no type of its own yet: a set operation may
        // give it the type of the other side's column.
        let untyped = items
            .iter()
            .zip(&expressions)
            .map(|((e, _), bound)| {
                matches!(e, Expr::StringLiteral(_))
                    || matches!(bound, Expression::Constant(Value::Null))
            })
            .collect();
        let visible_count = expressions.len();
        let keys = self.sort_keys(
            &select.order_by,
            &items,
            &mut expressions,
            &output_scope,
            select.distinct,
        )?;
        plan = Plan::Project {
            source: Box::new(plan),
            expressions: expressions.clone(),
        };
        if select.distinct {
            plan = Plan::Distinct {
                source: Box::new(plan),
            };
        }
        if !keys.is_empty() {
            plan = Plan::Sort {
                source: Box::new(plan),
                keys,
            };
        }
        plan = self.limited(plan, select)?;
        if expressions.len() > visible_count {
            let trimmed = columns
                .iter()
                .enumerate()
                .map(|(index, c)| Expression::Column {
                    index,
                    name: c.name.clone(),
                    data_type: c.data_type,
                })
                .collect();
            plan = Plan::Project {
                source: Box::new(plan),
                expressions: trimmed,
            };
        }
        Ok(QueryPlan {
            plan,
            columns,
            untyped,
        })
    }

    /// `plan` under the query's OFFSET and LIMIT, if it has them.
    fn limited(&self, plan: Plan, select: &Select) -> Result<Plan> {
        let limit = select
            .limit
            .as_ref()
            .map(|e| self.row_count(e, "LIMIT"))
            .transpose()?
            .flatten();
        let offset = select
            .offset
            .as_ref()
            .map(|e| self.row_count(e, "OFFSET"))
            .transpose()?
            .flatten()
            .unwrap_or(0);
        Ok(if limit.is_some() || offset > 0 {
            Plan::Limit {
                source: Box::new(plan),
                limit,
                offset,
            }
        } else {
            plan
        })
    }

    fn scope_like(&self, scope: &Scope) -> Scope<'_> {
        Scope {
            columns: scope.columns.clone(),
            params: self.params,
            grouping: None,
            clause: scope.clause,
            inferred: self.inferred,
            identity: self.identity,
            planner: Some(self),
            outer: self.outer,
        }
    }

    fn bind_aggregates(&self, calls: &[Expr], scope: &Scope) -> Result<Vec<Aggregate>> {
        let argument_scope = Scope {
            clause: "aggregate arguments",
            ..self.scope_like(scope)
        };
        let mut aggregates = Vec::with_capacity(calls.len());
        for call in calls {
            let Expr::Function {
                name,
                args,
                star,
                distinct,
            } = call
            else {
                return Err(Error::Internal(
                    "collected aggregate is not a function call".into(),
                ));
            };
            let function = AggregateFunction::from_name(name)
                .ok_or_else(|| Error::Internal("collected aggregate is not an aggregate".into()))?;
            let nested = |arg: &Expr| {
                if expression::contains_aggregate(arg) {
                    return Err(Error::Grouping(
                        "aggregate function calls cannot be nested".into(),
                    ));
                }
                fold(bind(arg, &argument_scope)?)
            };
            let mut separator = None;
            let argument = match (args.as_slice(), *star) {
                ([], true) if function == AggregateFunction::Count => None,
                ([arg], false) if function != AggregateFunction::StringAgg => Some(nested(arg)?),
                ([arg, between], false) if function == AggregateFunction::StringAgg => {
                    let bound =
                        expression::coerce_to(nested(between)?, between, TEXT, &argument_scope)?;
                    if bound.data_type().is_some_and(|t| !t.is_text()) {
                        return Err(Error::UndefinedFunction(format!(
                            "function string_agg(text, {}) does not exist",
                            bound
                                .data_type()
                                .map(DataType::sql_name)
                                .unwrap_or_default()
                        )));
                    }
                    separator = Some(bound);
                    Some(nested(arg)?)
                }
                _ => {
                    return Err(Error::UndefinedFunction(format!(
                        "function {name} with {} arguments does not exist",
                        args.len()
                    )))
                }
            };
            let data_type =
                function.result_type(argument.as_ref().and_then(Expression::data_type))?;
            aggregates.push(Aggregate {
                function,
                argument,
                separator,
                distinct: *distinct,
                data_type,
            });
        }
        Ok(aggregates)
    }

    /// Resolves ORDER BY items to output columns, appending hidden columns for sort
    /// expressions that are not in the select list.
    fn sort_keys(
        &self,
        order_by: &[OrderItem],
        items: &[(Expr, String)],
        expressions: &mut Vec<Expression>,
        scope: &Scope,
        distinct: bool,
    ) -> Result<Vec<SortKey>> {
        let mut keys = Vec::with_capacity(order_by.len());
        for item in order_by {
            let column = match &item.expr {
                Expr::Literal(value) if value.as_i64().is_some() => {
                    order_by_position(value, items.len())?
                }
                Expr::Column { table: None, name }
                    if items.iter().filter(|(_, n)| n == name).count() == 1 =>
                {
                    items
                        .iter()
                        .position(|(_, n)| n == name)
                        .unwrap_or_default()
                }
                expr => match items.iter().position(|(e, n)| {
                    e == expr || matches!(expr, Expr::Column { table: None, name } if name == n)
                }) {
                    Some(position) => position,
                    None => {
                        if distinct {
                            return Err(Error::InvalidColumnReference(
                                "for SELECT DISTINCT, ORDER BY expressions must appear in select list".into(),
                            ));
                        }
                        expressions.push(fold(bind(expr, scope)?)?);
                        expressions.len() - 1
                    }
                },
            };
            keys.push(SortKey {
                column,
                name: expressions[column].to_string(),
                descending: item.descending,
                nulls_first: item.nulls_first.unwrap_or(item.descending),
            });
        }
        Ok(keys)
    }

    fn row_count(&self, expr: &Expr, clause: &'static str) -> Result<Option<u64>> {
        if let (Expr::Parameter(n), Some(inferred)) = (expr, self.inferred) {
            inferred.record(*n, DataType::BigInt);
        }
        let value = fold(bind(expr, &self.empty_scope(clause))?)?;
        let Expression::Constant(value) = value else {
            return Err(Error::Syntax {
                message: format!("argument of {clause} must not contain variables"),
                position: None,
            });
        };
        if value.is_null() {
            return Ok(None);
        }
        let count = value.cast(DataType::BigInt)?.as_i64().unwrap_or_default();
        if count < 0 {
            return Err(Error::InvalidRowCount {
                clause: clause.to_string(),
            });
        }
        Ok(Some(count as u64))
    }

    fn scan(&self, table: &Table, predicate: Option<&Expression>) -> Plan {
        Plan::Scan {
            table: table.clone(),
            access: access::choose(table, predicate, self.index_usable),
        }
    }

    fn filtered_scan(&self, table: &Table, visible: &str, filter: Option<&Expr>) -> Result<Plan> {
        let scope = self.table_scope(table, visible, "WHERE");
        let predicate = filter
            .map(|f| bind_boolean(f, &scope, "WHERE"))
            .transpose()?
            .map(fold)
            .transpose()?;
        let scan = self.scan(table, predicate.as_ref());
        Ok(match predicate {
            Some(predicate) => Plan::Filter {
                source: Box::new(scan),
                predicate,
            },
            None => scan,
        })
    }
}

/// `ORDER BY 2`: the 0-based result column a position names.
fn order_by_position(value: &Value, column_count: usize) -> Result<usize> {
    let position = value.as_i64().unwrap_or_default();
    if position < 1 || position as usize > column_count {
        return Err(Error::InvalidColumnReference(format!(
            "ORDER BY position {position} is not in select list"
        )));
    }
    Ok(position as usize - 1)
}

fn visible_columns(table: &Table, qualifier: Option<&str>) -> Vec<(Expr, String)> {
    table
        .columns
        .iter()
        .filter(|c| !c.hidden)
        .map(|c| {
            (
                Expr::Column {
                    table: qualifier.map(str::to_string),
                    name: c.name.clone(),
                },
                c.name.clone(),
            )
        })
        .collect()
}

/// Replaces constant sub-expressions by their values.
pub fn fold(expr: Expression) -> Result<Expression> {
    if matches!(expr, Expression::Constant(_)) {
        return Ok(expr);
    }
    if expr.is_constant() {
        let value = expr.evaluate(&[])?;
        // A NULL keeps the type it had (`abs($1)` while describing is still an integer).
        return Ok(match (value, expr.data_type()) {
            (Value::Null, Some(data_type)) => {
                Expression::Cast(Box::new(Expression::Constant(Value::Null)), data_type)
            }
            (value, _) => Expression::Constant(value),
        });
    }
    expr.map_children(fold)
}
