//! Evaluating bound expressions against a row, with PostgreSQL's semantics: three-valued
//! logic, integer arithmetic that errors on overflow (22003) and on division by zero
//! (22012) instead of wrapping, integer division that truncates, and LIKE with `%`, `_`
//! and backslash escapes.

use crate::error::{Error, Result};
use crate::sql::ast::BinaryOp;
use crate::sql::planner::expression::{
    CatalogFunction, CompiledRegex, Expression, ScalarFunction, SubqueryKind,
};
use crate::types::{DataType, Value};
use std::cmp::Ordering;

impl Expression {
    /// Evaluates the expression against one input row.
    pub fn evaluate(&self, row: &[Value]) -> Result<Value> {
        Ok(match self {
            Expression::Constant(v) => v.clone(),
            Expression::Column { index, .. } => row.get(*index).cloned().ok_or_else(|| {
                Error::Internal(format!(
                    "column {index} is beyond the row's {} values",
                    row.len()
                ))
            })?,
            Expression::Not(e) => match e.evaluate(row)? {
                Value::Boolean(b) => Value::Boolean(!b),
                _ => Value::Null,
            },
            Expression::And(a, b) => match a.evaluate(row)? {
                Value::Boolean(false) => Value::Boolean(false),
                left => match (left, b.evaluate(row)?) {
                    (_, Value::Boolean(false)) => Value::Boolean(false),
                    (Value::Boolean(true), Value::Boolean(true)) => Value::Boolean(true),
                    _ => Value::Null,
                },
            },
            Expression::Or(a, b) => match a.evaluate(row)? {
                Value::Boolean(true) => Value::Boolean(true),
                left => match (left, b.evaluate(row)?) {
                    (_, Value::Boolean(true)) => Value::Boolean(true),
                    (Value::Boolean(false), Value::Boolean(false)) => Value::Boolean(false),
                    _ => Value::Null,
                },
            },
            Expression::Compare(op, a, b) => compare(*op, &*operand(a, row)?, &*operand(b, row)?)?,
            Expression::Arithmetic(op, a, b, data_type) => {
                arithmetic(*op, a.evaluate(row)?, b.evaluate(row)?, *data_type)?
            }
            Expression::Negate(e) => negate(e.evaluate(row)?)?,
            Expression::Concat(a, b) => match (a.evaluate(row)?, b.evaluate(row)?) {
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (x, y) => Value::Text(format!("{x}{y}")),
            },
            Expression::IsNull(e) => Value::Boolean(e.evaluate(row)?.is_null()),
            Expression::IsDistinctFrom(a, b) => {
                let (x, y) = (a.evaluate(row)?, b.evaluate(row)?);
                Value::Boolean(match (x.is_null(), y.is_null()) {
                    (true, true) => false,
                    (true, false) | (false, true) => true,
                    (false, false) => x.compare(&y) != Some(Ordering::Equal),
                })
            }
            Expression::IsBoolean(e, expected) => {
                Value::Boolean(e.evaluate(row)?.as_bool() == Some(*expected))
            }
            Expression::InList(e, list) => in_list(&e.evaluate(row)?, list, row)?,
            Expression::Like {
                expr,
                pattern,
                case_insensitive,
            } => match (expr.evaluate(row)?, pattern.evaluate(row)?) {
                (Value::Text(text), Value::Text(pattern)) => Value::Boolean(if *case_insensitive {
                    like(&text.to_lowercase(), &pattern.to_lowercase())?
                } else {
                    like(&text, &pattern)?
                }),
                _ => Value::Null,
            },
            Expression::Regex {
                expr,
                pattern,
                case_insensitive,
                compiled,
            } => match (expr.evaluate(row)?, compiled) {
                (Value::Text(text), Some(regex)) => Value::Boolean(regex.0.is_match(&text)),
                (Value::Text(text), None) => match pattern.evaluate(row)? {
                    Value::Text(source) => Value::Boolean(
                        CompiledRegex::new(&source, *case_insensitive)?
                            .0
                            .is_match(&text),
                    ),
                    _ => Value::Null,
                },
                _ => Value::Null,
            },
            Expression::Cast(e, data_type) => e.evaluate(row)?.cast(*data_type)?,
            Expression::MakeArray(items, element) => Value::Array {
                element: *element,
                items: items
                    .iter()
                    .map(|item| item.evaluate(row))
                    .collect::<Result<_>>()?,
            },
            Expression::Quantified {
                op,
                left,
                right,
                all,
            } => super::array::quantified(*op, &left.evaluate(row)?, &right.evaluate(row)?, *all)?,
            Expression::OuterColumn { name, .. } => {
                return Err(Error::Internal(format!(
                    "outer column {name} reached evaluation: the executor did not substitute it"
                )))
            }
            Expression::Subquery { .. } => {
                return Err(Error::Internal(
                    "a subquery reached evaluation: the executor did not run it".into(),
                ))
            }
            Expression::Function(function, args, _) => call(*function, args, row)?,
            Expression::Catalog {
                function,
                arguments,
                entries,
            } => catalog_call(*function, arguments, entries, row)?,
            Expression::Sequence {
                function,
                arguments,
                access,
            } => {
                let values = arguments
                    .iter()
                    .map(|a| a.evaluate(row))
                    .collect::<Result<Vec<_>>>()?;
                crate::sql::planner::sequence::call(*function, access, &values)?
            }
            Expression::Case {
                branches,
                else_result,
                ..
            } => {
                for (when, then) in branches {
                    if when.evaluate(row)?.as_bool() == Some(true) {
                        return then.evaluate(row);
                    }
                }
                else_result.evaluate(row)?
            }
        })
    }

    /// Rebuilds the expression with `f` applied to each direct child.
    pub fn map_children(
        self,
        f: impl Fn(Expression) -> Result<Expression> + Copy,
    ) -> Result<Expression> {
        let bx = |e: Box<Expression>| -> Result<Box<Expression>> { f(*e).map(Box::new) };
        Ok(match self {
            Expression::Constant(_)
            | Expression::Column { .. }
            | Expression::OuterColumn { .. } => self,
            Expression::Subquery {
                plan,
                kind,
                data_type,
            } => Expression::Subquery {
                plan,
                kind: match kind {
                    SubqueryKind::In(operand) => SubqueryKind::In(bx(operand)?),
                    other => other,
                },
                data_type,
            },
            Expression::Not(e) => Expression::Not(bx(e)?),
            Expression::And(a, b) => Expression::And(bx(a)?, bx(b)?),
            Expression::Or(a, b) => Expression::Or(bx(a)?, bx(b)?),
            Expression::Compare(op, a, b) => Expression::Compare(op, bx(a)?, bx(b)?),
            Expression::Arithmetic(op, a, b, t) => Expression::Arithmetic(op, bx(a)?, bx(b)?, t),
            Expression::Negate(e) => Expression::Negate(bx(e)?),
            Expression::Concat(a, b) => Expression::Concat(bx(a)?, bx(b)?),
            Expression::IsNull(e) => Expression::IsNull(bx(e)?),
            Expression::IsDistinctFrom(a, b) => Expression::IsDistinctFrom(bx(a)?, bx(b)?),
            Expression::IsBoolean(e, v) => Expression::IsBoolean(bx(e)?, v),
            Expression::InList(e, list) => {
                Expression::InList(bx(e)?, list.into_iter().map(f).collect::<Result<_>>()?)
            }
            Expression::Like {
                expr,
                pattern,
                case_insensitive,
            } => Expression::Like {
                expr: bx(expr)?,
                pattern: bx(pattern)?,
                case_insensitive,
            },
            Expression::Regex {
                expr,
                pattern,
                case_insensitive,
                compiled,
            } => Expression::Regex {
                expr: bx(expr)?,
                pattern: bx(pattern)?,
                case_insensitive,
                compiled,
            },
            Expression::Cast(e, t) => Expression::Cast(bx(e)?, t),
            Expression::MakeArray(items, element) => {
                Expression::MakeArray(items.into_iter().map(f).collect::<Result<_>>()?, element)
            }
            Expression::Quantified {
                op,
                left,
                right,
                all,
            } => Expression::Quantified {
                op,
                left: bx(left)?,
                right: bx(right)?,
                all,
            },
            Expression::Catalog {
                function,
                arguments,
                entries,
            } => Expression::Catalog {
                function,
                arguments: arguments.into_iter().map(f).collect::<Result<_>>()?,
                entries,
            },
            Expression::Sequence {
                function,
                arguments,
                access,
            } => Expression::Sequence {
                function,
                arguments: arguments.into_iter().map(f).collect::<Result<_>>()?,
                access,
            },
            Expression::Function(function, args, t) => {
                Expression::Function(function, args.into_iter().map(f).collect::<Result<_>>()?, t)
            }
            Expression::Case {
                branches,
                else_result,
                data_type,
            } => Expression::Case {
                branches: branches
                    .into_iter()
                    .map(|(w, t)| Ok((f(w)?, f(t)?)))
                    .collect::<Result<_>>()?,
                else_result: bx(else_result)?,
                data_type,
            },
        })
    }
}

/// An operand's value, borrowed from the row when it is a plain column (comparisons are
/// the hot path of every filter, and cloning a text value there costs an allocation).
fn operand<'a>(expr: &'a Expression, row: &'a [Value]) -> Result<std::borrow::Cow<'a, Value>> {
    match expr {
        Expression::Column { index, .. } => row
            .get(*index)
            .map(std::borrow::Cow::Borrowed)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "column {index} is beyond the row's {} values",
                    row.len()
                ))
            }),
        Expression::Constant(value) => Ok(std::borrow::Cow::Borrowed(value)),
        other => other.evaluate(row).map(std::borrow::Cow::Owned),
    }
}

pub(super) fn compare(op: BinaryOp, a: &Value, b: &Value) -> Result<Value> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    let ordering = a.compare(b).ok_or_else(|| {
        Error::UndefinedFunction(format!(
            "operator does not exist: {} {} {}",
            a.data_type().map(|t| t.sql_name()).unwrap_or_default(),
            op.symbol(),
            b.data_type().map(|t| t.sql_name()).unwrap_or_default()
        ))
    })?;
    Ok(Value::Boolean(match op {
        BinaryOp::Equal => ordering == Ordering::Equal,
        BinaryOp::NotEqual => ordering != Ordering::Equal,
        BinaryOp::Less => ordering == Ordering::Less,
        BinaryOp::LessOrEqual => ordering != Ordering::Greater,
        BinaryOp::Greater => ordering == Ordering::Greater,
        BinaryOp::GreaterOrEqual => ordering != Ordering::Less,
        other => {
            return Err(Error::Internal(format!(
                "{} is not a comparison",
                other.symbol()
            )))
        }
    }))
}

fn in_list(value: &Value, list: &[Expression], row: &[Value]) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let mut saw_null = false;
    for item in list {
        let candidate = item.evaluate(row)?;
        if candidate.is_null() {
            saw_null = true;
        } else if value.compare(&candidate) == Some(Ordering::Equal) {
            return Ok(Value::Boolean(true));
        }
    }
    Ok(if saw_null {
        Value::Null
    } else {
        Value::Boolean(false)
    })
}

fn arithmetic(op: BinaryOp, a: Value, b: Value, result: DataType) -> Result<Value> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    if result.is_integer() {
        let (x, y) = (
            a.as_i64().unwrap_or_default(),
            b.as_i64().unwrap_or_default(),
        );
        let value = match op {
            BinaryOp::Add => x.checked_add(y),
            BinaryOp::Subtract => x.checked_sub(y),
            BinaryOp::Multiply => x.checked_mul(y),
            BinaryOp::Divide | BinaryOp::Modulo if y == 0 => return Err(Error::DivisionByZero),
            BinaryOp::Divide => x.checked_div(y),
            BinaryOp::Modulo => Some(x.checked_rem(y).unwrap_or(0)),
            other => {
                return Err(Error::Internal(format!(
                    "{} is not arithmetic",
                    other.symbol()
                )))
            }
        };
        let value = value.ok_or_else(|| crate::types::value::out_of_range(result))?;
        return Value::BigInt(value).cast(result);
    }
    let (x, y) = (
        a.as_f64().unwrap_or_default(),
        b.as_f64().unwrap_or_default(),
    );
    let value = match op {
        BinaryOp::Add => x + y,
        BinaryOp::Subtract => x - y,
        BinaryOp::Multiply => x * y,
        BinaryOp::Divide if y == 0.0 => return Err(Error::DivisionByZero),
        BinaryOp::Divide => x / y,
        other => {
            return Err(Error::Internal(format!(
                "{} is not float arithmetic",
                other.symbol()
            )))
        }
    };
    let finite_inputs = x.is_finite() && y.is_finite();
    let value = if result == DataType::Real {
        Value::Real(value as f32)
    } else {
        Value::Double(value)
    };
    if finite_inputs && value.as_f64().is_some_and(f64::is_infinite) {
        return Err(Error::NumericOutOfRange(
            "value out of range: overflow".into(),
        ));
    }
    Ok(value)
}

fn negate(value: Value) -> Result<Value> {
    Ok(match value {
        Value::SmallInt(v) => Value::SmallInt(
            v.checked_neg()
                .ok_or_else(|| crate::types::value::out_of_range(DataType::SmallInt))?,
        ),
        Value::Integer(v) => Value::Integer(
            v.checked_neg()
                .ok_or_else(|| crate::types::value::out_of_range(DataType::Integer))?,
        ),
        Value::BigInt(v) => Value::BigInt(
            v.checked_neg()
                .ok_or_else(|| crate::types::value::out_of_range(DataType::BigInt))?,
        ),
        Value::Real(v) => Value::Real(-v),
        Value::Double(v) => Value::Double(-v),
        Value::Null => Value::Null,
        other => {
            return Err(Error::UndefinedFunction(format!(
                "operator does not exist: - {}",
                other.data_type().map(|t| t.sql_name()).unwrap_or_default()
            )))
        }
    })
}

fn catalog_call(
    function: CatalogFunction,
    arguments: &[Expression],
    entries: &std::collections::BTreeMap<(i64, i64), Value>,
    row: &[Value],
) -> Result<Value> {
    let values: Vec<Value> = arguments
        .iter()
        .map(|a| a.evaluate(row))
        .collect::<Result<_>>()?;
    if function == CatalogFunction::GetExpr {
        return Ok(values.into_iter().next().unwrap_or(Value::Null));
    }
    let Some(id) = values.first().and_then(Value::as_i64) else {
        return Ok(Value::Null);
    };
    let second = values.get(1).and_then(Value::as_i64);
    Ok(match function {
        CatalogFunction::FormatType => {
            let modifier = second.filter(|m| *m >= 0);
            match crate::sql::planner::pg_catalog::format_type(id, modifier) {
                Some(name) => Value::Text(name),
                None => Value::Text("???".into()),
            }
        }
        CatalogFunction::IndexDefinition => {
            let pretty = values.get(2).and_then(Value::as_bool) == Some(true);
            let column = match second.unwrap_or(0) {
                0 if pretty => crate::sql::planner::pg_catalog::PRETTY_DEFINITION,
                column => column,
            };
            entries.get(&(id, column)).cloned().unwrap_or(Value::Null)
        }
        CatalogFunction::UserById => entries
            .get(&(id, 0))
            .cloned()
            .unwrap_or_else(|| Value::Text(format!("unknown (OID={id})"))),
        CatalogFunction::ObjectName(_) => entries
            .get(&(id, 0))
            .cloned()
            .unwrap_or_else(|| Value::Text(id.to_string())),
        // PostgreSQL answers an unknown encoding number with an empty name.
        CatalogFunction::EncodingName => entries
            .get(&(id, 0))
            .cloned()
            .unwrap_or_else(|| Value::Text(String::new())),
        _ => entries.get(&(id, 0)).cloned().unwrap_or(Value::Null),
    })
}

fn call(function: ScalarFunction, args: &[Expression], row: &[Value]) -> Result<Value> {
    if function == ScalarFunction::Coalesce {
        for arg in args {
            let value = arg.evaluate(row)?;
            if !value.is_null() {
                return Ok(value);
            }
        }
        return Ok(Value::Null);
    }
    let values: Vec<Value> = args
        .iter()
        .map(|a| a.evaluate(row))
        .collect::<Result<_>>()?;
    if matches!(
        function,
        ScalarFunction::Subscript | ScalarFunction::ArrayConcat
    ) || function.takes_array()
    {
        return super::array::call(function, values);
    }
    if function == ScalarFunction::NullIf {
        let equal = values[0].compare(&values[1]) == Some(Ordering::Equal);
        return Ok(if equal {
            Value::Null
        } else {
            values[0].clone()
        });
    }
    let Some(value) = values.into_iter().next() else {
        return Ok(Value::Null);
    };
    Ok(match (function, value) {
        (_, Value::Null) => Value::Null,
        (ScalarFunction::Abs, Value::Real(v)) => Value::Real(v.abs()),
        (ScalarFunction::Abs, Value::Double(v)) => Value::Double(v.abs()),
        (ScalarFunction::Abs, v) => {
            let data_type = v.data_type().unwrap_or(DataType::BigInt);
            let x = v.as_i64().unwrap_or_default();
            Value::BigInt(
                x.checked_abs()
                    .ok_or_else(|| crate::types::value::out_of_range(data_type))?,
            )
            .cast(data_type)?
        }
        (ScalarFunction::Lower, Value::Text(s)) => Value::Text(s.to_lowercase()),
        (ScalarFunction::Upper, Value::Text(s)) => Value::Text(s.to_uppercase()),
        (ScalarFunction::Length, Value::Text(s)) => {
            Value::Integer(i32::try_from(s.chars().count()).unwrap_or(i32::MAX))
        }
        (ScalarFunction::Round, Value::Double(v)) => Value::Double(v.round_ties_even()),
        (ScalarFunction::Round, Value::Real(v)) => Value::Real(v.round_ties_even()),
        (ScalarFunction::Floor, Value::Double(v)) => Value::Double(v.floor()),
        (ScalarFunction::Floor, Value::Real(v)) => Value::Real(v.floor()),
        (ScalarFunction::Ceil, Value::Double(v)) => Value::Double(v.ceil()),
        (ScalarFunction::Ceil, Value::Real(v)) => Value::Real(v.ceil()),
        (ScalarFunction::Round | ScalarFunction::Floor | ScalarFunction::Ceil, v) => v,
        (function, v) => {
            return Err(Error::UndefinedFunction(format!(
                "function {function:?}({}) does not exist",
                v.data_type().map(|t| t.sql_name()).unwrap_or_default()
            )))
        }
    })
}

/// SQL LIKE: `%` matches any run of characters, `_` one character, `\` escapes the next.
pub fn like(text: &str, pattern: &str) -> Result<bool> {
    let text: Vec<char> = text.chars().collect();
    let mut tokens: Vec<LikeToken> = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => LikeToken::AnyRun,
            '_' => LikeToken::AnyOne,
            '\\' => LikeToken::Literal(chars.next().ok_or_else(|| {
                Error::InvalidParameterValue(
                    "LIKE pattern must not end with escape character".into(),
                )
            })?),
            c => LikeToken::Literal(c),
        });
    }
    // Classic two-pointer match with backtracking to the last `%`: linear in practice.
    let (mut t, mut p) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(LikeToken::AnyRun) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(LikeToken::AnyOne) => {
                t += 1;
                p += 1;
            }
            Some(LikeToken::Literal(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return Ok(false),
            },
        }
    }
    Ok(tokens[p..]
        .iter()
        .all(|token| matches!(token, LikeToken::AnyRun)))
}

enum LikeToken {
    AnyRun,
    AnyOne,
    Literal(char),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LIKE handles wildcards, escapes and backtracking.
    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o").unwrap());
        assert!(like("hello", "h_llo").unwrap());
        assert!(!like("hello", "h_lo").unwrap());
        assert!(like("", "%").unwrap());
        assert!(like("a%b", "a\\%b").unwrap());
        assert!(!like("axb", "a\\%b").unwrap());
        assert!(like("mississippi", "%iss%pi").unwrap());
        assert!(like("abcabc", "%abc").unwrap());
        assert!(like("AB", "_B").unwrap());
        assert!(like("x", "x\\").is_err());
    }

    /// Integer arithmetic errors instead of wrapping and truncates on division.
    #[test]
    fn integer_arithmetic() {
        let r = arithmetic(
            BinaryOp::Divide,
            Value::Integer(7),
            Value::Integer(-2),
            DataType::Integer,
        )
        .unwrap();
        assert_eq!(r, Value::Integer(-3));
        let r = arithmetic(
            BinaryOp::Modulo,
            Value::Integer(-7),
            Value::Integer(2),
            DataType::Integer,
        )
        .unwrap();
        assert_eq!(r, Value::Integer(-1));
        let e = arithmetic(
            BinaryOp::Add,
            Value::Integer(i32::MAX),
            Value::Integer(1),
            DataType::Integer,
        )
        .unwrap_err();
        assert_eq!(e.sqlstate(), "22003");
        let e = arithmetic(
            BinaryOp::Divide,
            Value::BigInt(1),
            Value::BigInt(0),
            DataType::BigInt,
        )
        .unwrap_err();
        assert_eq!(e.sqlstate(), "22012");
        let e = arithmetic(
            BinaryOp::Divide,
            Value::Double(1.0),
            Value::Double(0.0),
            DataType::Double,
        )
        .unwrap_err();
        assert_eq!(e.sqlstate(), "22012");
        let e = arithmetic(
            BinaryOp::Divide,
            Value::BigInt(i64::MIN),
            Value::BigInt(-1),
            DataType::BigInt,
        )
        .unwrap_err();
        assert_eq!(e.sqlstate(), "22003");
    }
}
