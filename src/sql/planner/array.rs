//! Binding array expressions: `ARRAY[...]`, `ARRAY(SELECT ...)`, subscripts,
//! `x op ANY|ALL (array)` and the array functions, with PostgreSQL's typing: elements
//! meet at a common type, a string literal on one side takes the type of the other
//! (`polroles = '{0}'`, `'d' = ANY(stxkind)`).

use super::expression::{
    bind, check_comparable, coerce_all, coerce_to, common_type, plan_subquery, Expression,
    ScalarFunction, Scope, SubqueryKind,
};
use crate::error::{Error, Result};
use crate::sql::ast::{BinaryOp, Expr, Select};
use crate::types::{DataType, ElementType, Value, TEXT};

/// `ARRAY[a, b, ...]`: elements coerced to their common type (text when all are NULL).
pub fn bind_constructor(items: &[Expr], scope: &Scope) -> Result<Expression> {
    let bound: Vec<Expression> = items
        .iter()
        .map(|i| bind(i, scope))
        .collect::<Result<_>>()?;
    let common = common_type(&bound, items, "ARRAY")?;
    let element = element_of(common.unwrap_or(TEXT))?;
    let coerced = coerce_all(bound, items, Some(element.data_type()), scope)?;
    Ok(Expression::MakeArray(coerced, element))
}

/// `ARRAY(SELECT one_column ...)`: the column's values in the subquery's order.
pub fn bind_subquery(select: &Select, scope: &Scope) -> Result<Expression> {
    let (plan, data_type) = plan_subquery(select, scope)?;
    let element = element_of(data_type)?;
    Ok(Expression::Subquery {
        plan: Box::new(plan),
        kind: SubqueryKind::Array(element),
        data_type: Some(DataType::Array(element)),
    })
}

/// `array[index]`.
pub fn bind_subscript(array: &Expr, index: &Expr, scope: &Scope) -> Result<Expression> {
    let array_bound = bind(array, scope)?;
    let element = match array_bound.data_type() {
        Some(DataType::Array(element)) => element,
        Some(other) => {
            return Err(Error::DatatypeMismatch(format!(
                "cannot subscript type {} because it is not an array",
                other.sql_name()
            )))
        }
        None => ElementType::Text,
    };
    let index_bound = coerce_to(bind(index, scope)?, index, DataType::Integer, scope)?;
    if let Some(t) = index_bound.data_type().filter(|t| !t.is_integer()) {
        return Err(Error::DatatypeMismatch(format!(
            "array subscript must have type integer, not {}",
            t.sql_name()
        )));
    }
    Ok(Expression::Function(
        ScalarFunction::Subscript,
        vec![array_bound, index_bound],
        Some(element.data_type()),
    ))
}

/// `left op ANY (array)` / `left op ALL (array)`.
pub fn bind_quantified(
    left: &Expr,
    op: BinaryOp,
    right: &Expr,
    all: bool,
    scope: &Scope,
) -> Result<Expression> {
    let mut left_bound = bind(left, scope)?;
    let mut right_bound = bind(right, scope)?;
    // An untyped literal array takes the left operand's type, and vice versa.
    let left_element = left_bound.data_type().and_then(ElementType::of);
    if let Some(element) = left_element {
        if matches!(right, Expr::StringLiteral(_) | Expr::Parameter(_)) {
            right_bound = coerce_to(right_bound, right, DataType::Array(element), scope)?;
        }
    }
    let element = match right_bound.data_type() {
        Some(DataType::Array(element)) => element,
        None => left_element.unwrap_or(ElementType::Text),
        Some(other) => {
            return Err(Error::UndefinedFunction(format!(
                "op ANY/ALL (array) requires array on right side, not {}",
                other.sql_name()
            )))
        }
    };
    left_bound = coerce_to(left_bound, left, element.data_type(), scope)?;
    let probe = Expression::Cast(
        Box::new(Expression::Constant(Value::Null)),
        element.data_type(),
    );
    check_comparable(&left_bound, &probe, op.symbol())?;
    Ok(Expression::Quantified {
        op,
        left: Box::new(left_bound),
        right: Box::new(right_bound),
        all,
    })
}

/// The array functions' argument checks and result types.
pub fn bind_function(
    function: ScalarFunction,
    bound: Vec<Expression>,
    written: &[Expr],
    scope: &Scope,
    no_such: impl Fn() -> Error,
) -> Result<Expression> {
    let mut bound = bound;
    let array_type = bound.first().and_then(Expression::data_type);
    if !matches!(array_type, Some(DataType::Array(_)) | None) {
        return Err(no_such());
    }
    let (arity, tail_type, result) = match function {
        ScalarFunction::ArrayToString => (2..=3, TEXT, TEXT),
        ScalarFunction::ArrayUpper | ScalarFunction::ArrayLower | ScalarFunction::ArrayLength => {
            (2..=2, DataType::Integer, DataType::Integer)
        }
        ScalarFunction::Cardinality => (1..=1, DataType::Integer, DataType::Integer),
        other => {
            return Err(Error::Internal(format!(
                "{other:?} is not an array function"
            )))
        }
    };
    if !arity.contains(&bound.len()) {
        return Err(no_such());
    }
    for (argument, written) in bound.iter_mut().zip(written).skip(1) {
        let taken = std::mem::replace(argument, Expression::Constant(Value::Null));
        *argument = coerce_to(taken, written, tail_type, scope)?;
        let fits = match argument.data_type() {
            None => true,
            Some(t) => {
                (t.is_integer() && tail_type.is_integer()) || (t.is_text() && tail_type.is_text())
            }
        };
        if !fits {
            return Err(no_such());
        }
    }
    Ok(Expression::Function(function, bound, Some(result)))
}

/// `a || b` where either side is an array: both become arrays of the same element type
/// (a string literal is read as an array literal). Appending a single element is not
/// supported yet.
pub fn bind_concatenation(
    left: Expression,
    left_written: &Expr,
    right: Expression,
    right_written: &Expr,
    scope: &Scope,
) -> Result<Expression> {
    let array_type = [&left, &right]
        .iter()
        .find_map(|e| e.data_type().filter(|t| matches!(t, DataType::Array(_))))
        .unwrap_or(DataType::Array(ElementType::Text));
    let left = coerce_to(left, left_written, array_type, scope)?;
    let right = coerce_to(right, right_written, array_type, scope)?;
    let mut operands = Vec::with_capacity(2);
    for operand in [left, right] {
        operands.push(match operand.data_type() {
            None => operand,
            Some(t) if t == array_type => operand,
            Some(DataType::Array(_)) => Expression::Cast(Box::new(operand), array_type),
            Some(other) => {
                return Err(Error::FeatureNotSupported(format!(
                    "{} || {}: appending a single element to an array",
                    array_type.sql_name(),
                    other.sql_name()
                )))
            }
        });
    }
    Ok(Expression::Function(
        ScalarFunction::ArrayConcat,
        operands,
        Some(array_type),
    ))
}

fn element_of(data_type: DataType) -> Result<ElementType> {
    ElementType::of(data_type).ok_or_else(|| {
        Error::FeatureNotSupported("arrays of arrays (multi-dimensional arrays)".into())
    })
}
