//! One-dimensional arrays: PostgreSQL's `type[]` for every scalar type, as values of
//! queries (ARRAY[...], ARRAY(SELECT ...), `'{1,2}'::int[]`, catalog columns such as
//! `pg_policy.polroles`), with PostgreSQL's text form `{1,2,NULL,"a b"}`.
//!
//! Arrays are not yet storable in table columns; multi-dimensional arrays and lower
//! bounds other than 1 are not supported (both are rare in practice and would each need
//! their own storage and wire formats).

use super::{DataType, Value, TEXT};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The types an array's elements may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElementType {
    /// `boolean[]`.
    Boolean,
    /// `smallint[]`.
    SmallInt,
    /// `integer[]`.
    Integer,
    /// `bigint[]`.
    BigInt,
    /// `real[]`.
    Real,
    /// `double precision[]`.
    Double,
    /// `text[]` (also what `varchar(n)[]` becomes: the length is not kept).
    Text,
    /// `bytea[]`.
    Bytea,
}

impl ElementType {
    /// The element type for values of `data_type`; `None` for arrays (no nesting).
    pub fn of(data_type: DataType) -> Option<ElementType> {
        Some(match data_type {
            DataType::Boolean => ElementType::Boolean,
            DataType::SmallInt => ElementType::SmallInt,
            DataType::Integer => ElementType::Integer,
            DataType::BigInt => ElementType::BigInt,
            DataType::Real => ElementType::Real,
            DataType::Double => ElementType::Double,
            DataType::Text { .. } => ElementType::Text,
            DataType::Bytea => ElementType::Bytea,
            DataType::Array(_) => return None,
        })
    }

    /// The scalar type of the elements.
    pub fn data_type(self) -> DataType {
        match self {
            ElementType::Boolean => DataType::Boolean,
            ElementType::SmallInt => DataType::SmallInt,
            ElementType::Integer => DataType::Integer,
            ElementType::BigInt => DataType::BigInt,
            ElementType::Real => DataType::Real,
            ElementType::Double => DataType::Double,
            ElementType::Text => TEXT,
            ElementType::Bytea => DataType::Bytea,
        }
    }

    /// PostgreSQL's OID of the array type (`_int4` and so on).
    pub fn array_oid(self) -> u32 {
        match self {
            ElementType::Boolean => 1000,
            ElementType::Bytea => 1001,
            ElementType::SmallInt => 1005,
            ElementType::Integer => 1007,
            ElementType::Text => 1009,
            ElementType::BigInt => 1016,
            ElementType::Real => 1021,
            ElementType::Double => 1022,
        }
    }
}

/// Reads PostgreSQL's array text form, `{a,b,"c d",NULL}`, into elements of `element`.
pub fn parse(text: &str, element: ElementType) -> Result<Vec<Value>> {
    let malformed = |why: &str| {
        Error::InvalidTextRepresentation(format!("malformed array literal: \"{text}\" ({why})"))
    };
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or_else(|| malformed("an array value must start with \"{\" and end with \"}\""))?;
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return Ok(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let (raw, quoted) = if chars.next_if_eq(&'"').is_some() {
            let mut raw = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => {
                        raw.push(chars.next().ok_or_else(|| malformed("unended escape"))?)
                    }
                    Some(c) => raw.push(c),
                    None => return Err(malformed("unended quoted element")),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            (raw, true)
        } else {
            let mut raw = String::new();
            while let Some(c) = chars.next_if(|c| *c != ',') {
                match c {
                    '{' | '}' | '"' => return Err(malformed("unexpected character")),
                    '\\' => raw.push(chars.next().ok_or_else(|| malformed("unended escape"))?),
                    c => raw.push(c),
                }
            }
            (raw.trim_end().to_string(), false)
        };
        if !quoted && raw.is_empty() {
            return Err(malformed("empty element"));
        }
        items.push(if !quoted && raw.eq_ignore_ascii_case("NULL") {
            Value::Null
        } else {
            Value::Text(raw).cast(element.data_type())?
        });
        match chars.next() {
            None => return Ok(items),
            Some(',') => {}
            Some(_) => return Err(malformed("junk after element")),
        }
    }
}

/// Writes elements in PostgreSQL's array text form, quoting those that need it.
pub fn format(f: &mut fmt::Formatter<'_>, items: &[Value]) -> fmt::Result {
    f.write_str("{")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        if item.is_null() {
            f.write_str("NULL")?;
            continue;
        }
        let text = item.to_string();
        let needs_quotes = text.is_empty()
            || text.eq_ignore_ascii_case("NULL")
            || text
                .chars()
                .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
        if needs_quotes {
            f.write_str("\"")?;
            for c in text.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        } else {
            f.write_str(&text)?;
        }
    }
    f.write_str("}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text form reads back what PostgreSQL writes, quoting and NULLs included.
    #[test]
    fn text_form_round_trips() {
        let items = parse(r#"{1, 2 ,NULL}"#, ElementType::Integer).unwrap();
        assert_eq!(
            items,
            vec![Value::Integer(1), Value::Integer(2), Value::Null]
        );
        let items = parse(r#"{"a b","",x,"NULL","q\"uote"}"#, ElementType::Text).unwrap();
        let value = Value::Array {
            element: ElementType::Text,
            items,
        };
        assert_eq!(value.to_string(), r#"{"a b","",x,"NULL","q\"uote"}"#);
        assert!(parse("{}", ElementType::Integer).unwrap().is_empty());
    }

    /// Malformed literals and bad elements are errors, not guesses.
    #[test]
    fn malformed_literals_are_refused() {
        for bad in ["1,2", "{1,,2}", "{\"a}", "{1}}", "{a{b}"] {
            let error = parse(bad, ElementType::Text).unwrap_err();
            assert_eq!(error.sqlstate(), "22P02", "{bad}");
        }
        assert_eq!(
            parse("{1,x}", ElementType::Integer).unwrap_err().sqlstate(),
            "22P02"
        );
    }
}
