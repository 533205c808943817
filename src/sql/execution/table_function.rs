//! Set-returning functions in FROM. Arguments are evaluated on the first row asked for
//! (subqueries in them run then); rows are produced one at a time, so
//! `generate_series(1, 1000000000) LIMIT 3` costs three rows.

use super::interrupt::Interrupt;
use super::{subquery, Executor};
use crate::error::{Error, Result};
use crate::sql::planner::expression::Expression;
use crate::sql::planner::plan::TableFunction;
use crate::txn::Transaction;
use crate::types::{DataType, Value};
use std::sync::Arc;

/// Produces a set-returning function's rows.
pub struct TableFunctionExecutor {
    function: TableFunction,
    arguments: Vec<Expression>,
    data_type: DataType,
    interrupt: Arc<Interrupt>,
    state: State,
}

enum State {
    NotStarted,
    Series { next: i64, stop: i64, step: i64 },
    Elements(std::vec::IntoIter<Value>),
    Done,
}

impl TableFunctionExecutor {
    /// An executor for `function(arguments)` producing values of `data_type`.
    pub fn new(
        function: TableFunction,
        arguments: Vec<Expression>,
        data_type: DataType,
        interrupt: &Arc<Interrupt>,
    ) -> TableFunctionExecutor {
        TableFunctionExecutor {
            function,
            arguments,
            data_type,
            interrupt: Arc::clone(interrupt),
            state: State::NotStarted,
        }
    }

    fn start(&self, txn: &Transaction) -> Result<State> {
        let values: Vec<Value> = self
            .arguments
            .iter()
            .map(|a| subquery::evaluate_once(a, &[], txn, &self.interrupt))
            .collect::<Result<_>>()?;
        if values.iter().any(Value::is_null) {
            return Ok(State::Done);
        }
        Ok(match self.function {
            TableFunction::GenerateSeries => {
                let integer = |i: usize| values.get(i).and_then(Value::as_i64);
                let (Some(start), Some(stop)) = (integer(0), integer(1)) else {
                    return Ok(State::Done);
                };
                let step = integer(2).unwrap_or(1);
                if step == 0 {
                    return Err(Error::InvalidParameterValue(
                        "step size cannot equal zero".into(),
                    ));
                }
                State::Series {
                    next: start,
                    stop,
                    step,
                }
            }
            TableFunction::Unnest => match values.into_iter().next() {
                Some(Value::Array { items, .. }) => State::Elements(items.into_iter()),
                _ => State::Done,
            },
        })
    }
}

impl Executor for TableFunctionExecutor {
    fn next(&mut self, txn: &Transaction) -> Result<Option<Vec<Value>>> {
        if matches!(self.state, State::NotStarted) {
            self.state = self.start(txn)?;
        }
        let value = match &mut self.state {
            State::Series { next, stop, step } => {
                let past_end = if *step > 0 {
                    *next > *stop
                } else {
                    *next < *stop
                };
                if past_end {
                    self.state = State::Done;
                    return Ok(None);
                }
                let value = *next;
                match next.checked_add(*step) {
                    Some(following) => *next = following,
                    None => self.state = State::Done,
                }
                Value::BigInt(value).cast(self.data_type)?
            }
            State::Elements(items) => match items.next() {
                Some(value) => value,
                None => return Ok(None),
            },
            State::NotStarted | State::Done => return Ok(None),
        };
        Ok(Some(vec![value]))
    }
}
