//! The sequence functions — `nextval`, `currval`, `setval`, `lastval` — as expressions.
//!
//! They are not functions of their arguments: each call changes or reads state outside
//! the statement (the sequence's position, the session's last values), so they are
//! never folded into constants and run once per evaluation, that is, once per row. The
//! planner binds them to a [`SequenceAccess`], the session's handle on sequences (its
//! node's cached ranges and its own `currval`/`lastval`), so that expressions evaluate
//! without the transaction, like every other expression. As in PostgreSQL they are not
//! transactional: a value handed out is gone even if the transaction rolls back.

use super::expression::{bind, Expression, Scope};
use crate::error::{Error, Result};
use crate::sql::ast::{Expr, ObjectKind};
use crate::types::{DataType, Value, TEXT};
use std::fmt;
use std::sync::Arc;

/// Which sequence function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceFunction {
    /// `nextval(sequence)`: the sequence's next value, now this session's current one.
    NextValue,
    /// `currval(sequence)`: the value `nextval` last gave this session for it.
    CurrentValue,
    /// `setval(sequence, value [, is_called])`: moves the sequence.
    SetValue,
    /// `lastval()`: the value `nextval` last gave this session, of any sequence.
    LastValue,
}

impl SequenceFunction {
    fn from_name(name: &str) -> Option<SequenceFunction> {
        Some(match name {
            "nextval" => SequenceFunction::NextValue,
            "currval" => SequenceFunction::CurrentValue,
            "setval" => SequenceFunction::SetValue,
            "lastval" => SequenceFunction::LastValue,
            _ => return None,
        })
    }

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            SequenceFunction::NextValue => "nextval",
            SequenceFunction::CurrentValue => "currval",
            SequenceFunction::SetValue => "setval",
            SequenceFunction::LastValue => "lastval",
        }
    }

    /// Argument counts accepted.
    fn arity(self) -> std::ops::RangeInclusive<usize> {
        match self {
            SequenceFunction::NextValue | SequenceFunction::CurrentValue => 1..=1,
            SequenceFunction::SetValue => 2..=3,
            SequenceFunction::LastValue => 0..=0,
        }
    }
}

/// What the sequence functions reach: implemented by the session.
pub trait SequenceSource: Send + Sync {
    /// `nextval`.
    fn next_value(&self, sequence: &str) -> Result<i64>;
    /// `currval`.
    fn current_value(&self, sequence: &str) -> Result<i64>;
    /// `setval`; returns `value`.
    fn set_value(&self, sequence: &str, value: i64, is_called: bool) -> Result<i64>;
    /// `lastval`.
    fn last_value(&self) -> Result<i64>;
}

/// A session's handle on sequences, carried by the expressions that call them.
#[derive(Clone)]
pub struct SequenceAccess(pub Arc<dyn SequenceSource>);

impl fmt::Debug for SequenceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SequenceAccess")
    }
}

impl PartialEq for SequenceAccess {
    fn eq(&self, other: &SequenceAccess) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Binds a call of a sequence function; `None` when `name` is not one.
pub fn bind_call(name: &str, args: &[Expr], scope: &Scope) -> Result<Option<Expression>> {
    let Some(function) = SequenceFunction::from_name(name) else {
        return Ok(None);
    };
    if !function.arity().contains(&args.len()) {
        return Err(Error::UndefinedFunction(format!(
            "function {name} with {} arguments does not exist",
            args.len()
        )));
    }
    let access = scope
        .planner
        .and_then(|planner| planner.sequences())
        .ok_or_else(|| {
            Error::FeatureNotSupported(format!("{name}() cannot be used in {}", scope.clause))
        })?;
    let mut arguments = Vec::with_capacity(args.len());
    for (position, arg) in args.iter().enumerate() {
        // `'name'::regclass`, as PostgreSQL writes a SERIAL column's default: the name.
        let arg = match arg {
            Expr::ObjectIdentifier {
                expr,
                kind: ObjectKind::Relation,
            } if position == 0 => expr.as_ref(),
            other => other,
        };
        let bound = bind(arg, scope)?;
        let expected = match position {
            0 => TEXT,
            1 => DataType::BigInt,
            _ => DataType::Boolean,
        };
        let fits = bound.data_type().is_none_or(|t| {
            t == expected
                || (expected == DataType::BigInt && t.is_integer())
                || (expected.is_text() && t.is_text())
        });
        if !fits {
            return Err(Error::UndefinedFunction(format!(
                "function {name}({}) does not exist",
                bound.data_type().map(|t| t.sql_name()).unwrap_or_default()
            )));
        }
        arguments.push(bound);
    }
    Ok(Some(Expression::Sequence {
        function,
        arguments,
        access: access.clone(),
    }))
}

/// Evaluates a sequence function's call with its arguments' values.
pub fn call(
    function: SequenceFunction,
    access: &SequenceAccess,
    values: &[Value],
) -> Result<Value> {
    if values.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let source = &access.0;
    let name = || sequence_name(values.first());
    let value = match function {
        SequenceFunction::NextValue => source.next_value(&name()?)?,
        SequenceFunction::CurrentValue => source.current_value(&name()?)?,
        SequenceFunction::LastValue => source.last_value()?,
        SequenceFunction::SetValue => {
            let value = values.get(1).and_then(Value::as_i64).ok_or_else(|| {
                Error::InvalidParameterValue("setval needs an integer value".into())
            })?;
            let is_called = values.get(2).and_then(Value::as_bool).unwrap_or(true);
            source.set_value(&name()?, value, is_called)?
        }
    };
    Ok(Value::BigInt(value))
}

/// A sequence named as `regclass` text: unquoted names fold to lower case, a quoted one
/// keeps its case, and `public.` may qualify it.
fn sequence_name(value: Option<&Value>) -> Result<String> {
    let Some(Value::Text(text)) = value else {
        return Err(Error::InvalidParameterValue(
            "a sequence is named by text".into(),
        ));
    };
    let text = text.trim();
    let unqualified = text.strip_prefix("public.").unwrap_or(text);
    Ok(
        match unqualified
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
        {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => unqualified.to_lowercase(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names fold as regclass input does.
    #[test]
    fn names_fold_like_regclass() {
        let name = |text: &str| sequence_name(Some(&Value::Text(text.into()))).unwrap();
        assert_eq!(name("Orders_Id_Seq"), "orders_id_seq");
        assert_eq!(name("public.s"), "s");
        assert_eq!(name("\"Mixed\""), "Mixed");
    }
}
