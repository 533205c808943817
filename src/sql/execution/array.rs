//! Evaluating array expressions: subscripts, the array functions and `op ANY|ALL`, with
//! PostgreSQL's NULL rules (a NULL array gives NULL; `x = ANY(...)` is NULL rather than
//! false when no element matched but some element was NULL).

use crate::error::{Error, Result};
use crate::sql::ast::BinaryOp;
use crate::sql::planner::expression::ScalarFunction;
use crate::types::Value;

/// Calls an array function (or the subscript) on evaluated arguments.
pub fn call(function: ScalarFunction, values: Vec<Value>) -> Result<Value> {
    if function == ScalarFunction::ArrayConcat {
        return Ok(concatenate(values));
    }
    let mut values = values.into_iter();
    let items = match values.next() {
        Some(Value::Array { items, .. }) => items,
        _ => return Ok(Value::Null),
    };
    let rest: Vec<Value> = values.collect();
    let integer = |position: usize| rest.get(position).and_then(Value::as_i64);
    let length = items.len() as i64;
    let first_dimension = integer(0) == Some(1) && length > 0;
    Ok(match function {
        ScalarFunction::Subscript => match integer(0) {
            Some(index) if (1..=length).contains(&index) => items[index as usize - 1].clone(),
            _ => Value::Null,
        },
        ScalarFunction::ArrayToString => {
            let Some(separator) = rest.first().and_then(Value::as_str) else {
                return Ok(Value::Null);
            };
            let null_text = rest.get(1).and_then(Value::as_str);
            let parts: Vec<String> = items
                .iter()
                .filter_map(|item| match item {
                    Value::Null => null_text.map(str::to_string),
                    value => Some(value.to_string()),
                })
                .collect();
            Value::Text(parts.join(separator))
        }
        ScalarFunction::ArrayUpper | ScalarFunction::ArrayLength if first_dimension => {
            Value::Integer(i32::try_from(length).unwrap_or(i32::MAX))
        }
        ScalarFunction::ArrayLower if first_dimension => Value::Integer(1),
        ScalarFunction::ArrayUpper | ScalarFunction::ArrayLength | ScalarFunction::ArrayLower => {
            Value::Null
        }
        ScalarFunction::Cardinality => Value::Integer(i32::try_from(length).unwrap_or(i32::MAX)),
        other => {
            return Err(Error::Internal(format!(
                "{other:?} is not an array function"
            )))
        }
    })
}

/// `a || b` over arrays: NULL only when both are NULL.
fn concatenate(values: Vec<Value>) -> Value {
    let mut result: Option<Value> = None;
    for value in values {
        let Value::Array { element, items } = value else {
            continue;
        };
        match &mut result {
            Some(Value::Array { items: all, .. }) => all.extend(items),
            _ => result = Some(Value::Array { element, items }),
        }
    }
    result.unwrap_or(Value::Null)
}

/// `left op ANY (right)` or `left op ALL (right)`.
pub fn quantified(op: BinaryOp, left: &Value, right: &Value, all: bool) -> Result<Value> {
    let Value::Array { items, .. } = right else {
        return Ok(Value::Null);
    };
    if items.is_empty() {
        return Ok(Value::Boolean(all));
    }
    if left.is_null() {
        return Ok(Value::Null);
    }
    let mut saw_null = false;
    for item in items {
        match super::expression::compare(op, left, item)? {
            Value::Boolean(outcome) if outcome != all => return Ok(Value::Boolean(!all)),
            Value::Null => saw_null = true,
            _ => {}
        }
    }
    Ok(if saw_null {
        Value::Null
    } else {
        Value::Boolean(all)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ElementType;

    fn array(items: Vec<Value>) -> Value {
        Value::Array {
            element: ElementType::Integer,
            items,
        }
    }

    /// ANY and ALL follow three-valued logic, and an empty array decides alone.
    #[test]
    fn any_and_all() {
        let with_null = array(vec![Value::Integer(1), Value::Null]);
        let eq = |v: i32, a: &Value, all| quantified(BinaryOp::Equal, &Value::Integer(v), a, all);
        assert_eq!(eq(1, &with_null, false).unwrap(), Value::Boolean(true));
        assert_eq!(eq(2, &with_null, false).unwrap(), Value::Null);
        assert_eq!(eq(2, &array(vec![]), false).unwrap(), Value::Boolean(false));
        assert_eq!(eq(2, &array(vec![]), true).unwrap(), Value::Boolean(true));
        assert_eq!(eq(2, &with_null, true).unwrap(), Value::Boolean(false));
        let ones = array(vec![Value::Integer(1), Value::Integer(1)]);
        assert_eq!(eq(1, &ones, true).unwrap(), Value::Boolean(true));
    }

    /// Subscripts are 1-based and NULL outside; the dimension functions know one dimension.
    #[test]
    fn subscripts_and_dimensions() {
        let a = array(vec![Value::Integer(5), Value::Integer(6)]);
        let call_with = |f, extra: Vec<Value>| {
            let mut values = vec![a.clone()];
            values.extend(extra);
            call(f, values).unwrap()
        };
        assert_eq!(
            call_with(ScalarFunction::Subscript, vec![Value::Integer(2)]),
            Value::Integer(6)
        );
        assert_eq!(
            call_with(ScalarFunction::Subscript, vec![Value::Integer(0)]),
            Value::Null
        );
        assert_eq!(
            call_with(ScalarFunction::ArrayUpper, vec![Value::Integer(1)]),
            Value::Integer(2)
        );
        assert_eq!(
            call_with(ScalarFunction::ArrayUpper, vec![Value::Integer(2)]),
            Value::Null
        );
        assert_eq!(
            call_with(ScalarFunction::ArrayToString, vec![Value::Text("-".into())]),
            Value::Text("5-6".into())
        );
    }
}
