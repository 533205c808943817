//! Set-returning functions in FROM: `generate_series(start, stop [, step])` and
//! `unnest(array)`. Their arguments may read the rows of enclosing queries (psql's `\d`
//! numbers a catalog array's elements with `generate_series(0, array_upper(arr, 1))`
//! inside a correlated subquery), so they are evaluated when the plan runs.

use super::expression::{bind, coerce_to, Expression};
use super::plan::{Plan, TableFunction};
use super::{fold, Planner};
use crate::error::{Error, Result};
use crate::sql::ast::Expr;
use crate::types::DataType;

impl Planner<'_> {
    /// Plans a FROM-clause function call, returning its plan and its one column's type.
    pub(super) fn plan_table_function(
        &self,
        name: &str,
        args: &[Expr],
    ) -> Result<(Plan, DataType)> {
        let scope = self.empty_scope("functions in FROM");
        let bound: Vec<Expression> = args
            .iter()
            .map(|a| bind(a, &scope).and_then(fold))
            .collect::<Result<_>>()?;
        let types: Vec<String> = bound
            .iter()
            .map(|a| {
                a.data_type()
                    .map_or_else(|| "unknown".into(), |t| t.sql_name())
            })
            .collect();
        let no_such = || {
            Error::UndefinedFunction(format!(
                "function {name}({}) does not exist",
                types.join(", ")
            ))
        };
        let (function, arguments, data_type) = match name {
            "generate_series" if (2..=3).contains(&bound.len()) => {
                let mut arguments = Vec::with_capacity(bound.len());
                for (argument, written) in bound.into_iter().zip(args) {
                    arguments.push(coerce_to(argument, written, DataType::Integer, &scope)?);
                }
                let mut data_type = DataType::Integer;
                for argument in &arguments {
                    match argument.data_type() {
                        Some(DataType::BigInt) => data_type = DataType::BigInt,
                        Some(t) if t.is_integer() => {}
                        None => {}
                        Some(_) => return Err(no_such()),
                    }
                }
                (TableFunction::GenerateSeries, arguments, data_type)
            }
            "unnest" if bound.len() == 1 => match bound[0].data_type() {
                Some(DataType::Array(element)) => {
                    (TableFunction::Unnest, bound, element.data_type())
                }
                _ => return Err(no_such()),
            },
            "generate_series" | "unnest" => return Err(no_such()),
            _ => {
                return Err(Error::FeatureNotSupported(format!(
                    "the function {name} in FROM (generate_series and unnest are)"
                )))
            }
        };
        Ok((
            Plan::TableFunction {
                function,
                arguments,
                data_type,
            },
            data_type,
        ))
    }
}
