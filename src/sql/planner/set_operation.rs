//! UNION, INTERSECT and EXCEPT: two queries planned on their own, their columns matched
//! by position and given one type each, combined by [`Plan::SetOperation`].
//!
//! As in PostgreSQL the left query names the result columns, a column that is only a NULL
//! or a string literal takes the other side's type, two numeric types meet at the wider
//! one, and any other mismatch is an error (42804). ORDER BY over the result may name
//! result columns by name or position only: the combined rows have no other columns.

use super::expression::Expression;
use super::plan::{Plan, SortKey};
use super::{OutputColumn, Planner, QueryPlan};
use crate::error::{Error, Result};
use crate::sql::ast::{Expr, OrderItem, Select, SetOperation};
use crate::types::{DataType, TEXT};

impl Planner<'_> {
    /// Plans `left OP right` with `query`'s ORDER BY, LIMIT and OFFSET on top.
    pub(super) fn plan_set_operation(
        &self,
        operation: &SetOperation,
        query: &Select,
    ) -> Result<QueryPlan> {
        let keyword = operation.operator.keyword();
        let left = self.plan_query(&operation.left)?;
        let right = self.plan_query(&operation.right)?;
        if left.columns.len() != right.columns.len() {
            return Err(Error::Syntax {
                message: format!("each {keyword} query must have the same number of columns"),
                position: None,
            });
        }
        let mut types = Vec::with_capacity(left.columns.len());
        let mut untyped = Vec::with_capacity(left.columns.len());
        for index in 0..left.columns.len() {
            types.push(common_type(&left, &right, index, keyword)?);
            untyped.push(left.untyped[index] && right.untyped[index]);
        }
        let columns: Vec<OutputColumn> = left
            .columns
            .iter()
            .zip(&types)
            .map(|(column, data_type)| OutputColumn {
                name: column.name.clone(),
                data_type: *data_type,
            })
            .collect();
        let mut plan = Plan::SetOperation {
            operator: operation.operator,
            all: operation.all,
            left: Box::new(converted(left, &types)),
            right: Box::new(converted(right, &types)),
        };
        let keys = result_sort_keys(&query.order_by, &columns, keyword)?;
        if !keys.is_empty() {
            plan = Plan::Sort {
                source: Box::new(plan),
                keys,
            };
        }
        Ok(QueryPlan {
            plan: self.limited(plan, query)?,
            columns,
            untyped,
        })
    }
}

/// The type both sides' column `index` is converted to.
fn common_type(
    left: &QueryPlan,
    right: &QueryPlan,
    index: usize,
    keyword: &str,
) -> Result<DataType> {
    let (left_type, right_type) = (
        left.columns[index].data_type,
        right.columns[index].data_type,
    );
    let (left_untyped, right_untyped) = (left.untyped[index], right.untyped[index]);
    if left_type == right_type {
        return Ok(left_type);
    }
    if let Some(numeric) = DataType::numeric_common(left_type, right_type) {
        return Ok(numeric);
    }
    if left_type.is_text() && right_type.is_text() {
        return Ok(TEXT);
    }
    match (left_untyped, right_untyped) {
        (true, false) => Ok(right_type),
        (false, true) => Ok(left_type),
        _ => Err(Error::DatatypeMismatch(format!(
            "{keyword} types {} and {} cannot be matched",
            left_type.sql_name(),
            right_type.sql_name()
        ))),
    }
}

/// The side's plan with its columns cast where their type differs from the common one.
fn converted(side: QueryPlan, types: &[DataType]) -> Plan {
    if side
        .columns
        .iter()
        .zip(types)
        .all(|(column, data_type)| column.data_type == *data_type)
    {
        return side.plan;
    }
    let expressions = side
        .columns
        .iter()
        .zip(types)
        .enumerate()
        .map(|(index, (column, data_type))| {
            let value = Expression::Column {
                index,
                name: column.name.clone(),
                data_type: column.data_type,
            };
            if column.data_type == *data_type {
                value
            } else {
                Expression::Cast(Box::new(value), *data_type)
            }
        })
        .collect();
    Plan::Project {
        source: Box::new(side.plan),
        expressions,
    }
}

/// ORDER BY over a set operation's result: result column names or positions only.
fn result_sort_keys(
    order_by: &[OrderItem],
    columns: &[OutputColumn],
    keyword: &str,
) -> Result<Vec<SortKey>> {
    let mut keys = Vec::with_capacity(order_by.len());
    for item in order_by {
        let column = match &item.expr {
            Expr::Literal(value) if value.as_i64().is_some() => {
                super::order_by_position(value, columns.len())?
            }
            Expr::Column { table: None, name } => {
                let mut matching = columns.iter().enumerate().filter(|(_, c)| &c.name == name);
                match (matching.next(), matching.next()) {
                    (Some((index, _)), None) => index,
                    (Some(_), Some(_)) => {
                        return Err(Error::AmbiguousColumn(format!(
                            "ORDER BY \"{name}\" is ambiguous"
                        )))
                    }
                    (None, _) => {
                        return Err(Error::UndefinedColumn(format!(
                            "column \"{name}\" does not exist"
                        )))
                    }
                }
            }
            _ => {
                return Err(Error::FeatureNotSupported(format!(
                    "ORDER BY on a {keyword} result by an expression (only result column \
                     names or positions can be used)"
                )))
            }
        };
        keys.push(SortKey {
            column,
            name: columns[column].name.clone(),
            descending: item.descending,
            nulls_first: item.nulls_first.unwrap_or(item.descending),
        });
    }
    Ok(keys)
}
