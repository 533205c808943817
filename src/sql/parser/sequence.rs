//! Sequences in SQL: CREATE / ALTER / DROP SEQUENCE, and the SERIAL types and identity
//! columns of CREATE TABLE that create one.
//!
//! sqlparser parses CREATE SEQUENCE and a column's `GENERATED ... AS IDENTITY`; it has
//! no ALTER SEQUENCE, which is parsed here with the same option words.

use super::{expect_word, ident, is_word, object_name, syntax_error, translate_type, unsupported};
use crate::catalog::sequence::DeclaredOptions;
use crate::catalog::IdentityKind;
use crate::error::{Error, Result};
use crate::sql::ast::{GeneratedKey, Statement};
use crate::types::DataType;
use sqlparser::ast as sp;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan};

/// The integer type and generated key of a SERIAL type name (`serial`, `serial4`,
/// `bigserial`, `serial8`, `smallserial`, `serial2`), or `None` for any other type.
pub fn serial_type(data_type: &sp::DataType) -> Option<DataType> {
    let sp::DataType::Custom(name, modifiers) = data_type else {
        return None;
    };
    if !modifiers.is_empty() || name.0.len() != 1 {
        return None;
    }
    let sp::ObjectNamePart::Identifier(word) = &name.0[0] else {
        return None;
    };
    match word.value.to_lowercase().as_str() {
        "serial" | "serial4" => Some(DataType::Integer),
        "bigserial" | "serial8" => Some(DataType::BigInt),
        "smallserial" | "serial2" => Some(DataType::SmallInt),
        _ => None,
    }
}

/// A column's `GENERATED {ALWAYS | BY DEFAULT} AS IDENTITY [(options)]`; `None` for a
/// generated expression column, which is refused by the caller.
pub fn identity(
    generated_as: &sp::GeneratedAs,
    options: Option<&[sp::SequenceOptions]>,
    data_type: DataType,
) -> Result<GeneratedKey> {
    let kind = match generated_as {
        sp::GeneratedAs::Always => IdentityKind::Always,
        sp::GeneratedAs::ByDefault => IdentityKind::ByDefault,
        sp::GeneratedAs::ExpStored => return Err(unsupported("generated columns")),
    };
    let mut declared = declared_options(options.unwrap_or_default())?;
    declared.data_type = Some(data_type);
    Ok(GeneratedKey {
        identity: Some(kind),
        options: declared,
    })
}

/// `OWNED BY table.column` as (table, column); `OWNED BY NONE` as `None`.
fn owner(name: &sp::ObjectName) -> Result<Option<(String, String)>> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            sp::ObjectNamePart::Identifier(i) => Ok(ident(i)),
            sp::ObjectNamePart::Function(_) => Err(unsupported("a function in OWNED BY")),
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [none] if none == "none" => Ok(None),
        [table, column] | [_, table, column] => Ok(Some((table.clone(), column.clone()))),
        _ => Err(Error::InvalidParameterValue(
            "invalid OWNED BY option: specify OWNED BY table.column or OWNED BY NONE".into(),
        )),
    }
}

/// sqlparser's sequence options as ours.
fn declared_options(options: &[sp::SequenceOptions]) -> Result<DeclaredOptions> {
    let mut declared = DeclaredOptions::default();
    for option in options {
        match option {
            sp::SequenceOptions::IncrementBy(value, _) => {
                declared.increment = Some(integer(value, "INCREMENT")?)
            }
            sp::SequenceOptions::MinValue(value) => {
                declared.min_value =
                    Some(value.as_ref().map(|v| integer(v, "MINVALUE")).transpose()?)
            }
            sp::SequenceOptions::MaxValue(value) => {
                declared.max_value =
                    Some(value.as_ref().map(|v| integer(v, "MAXVALUE")).transpose()?)
            }
            sp::SequenceOptions::StartWith(value, _) => {
                declared.start = Some(integer(value, "START")?)
            }
            sp::SequenceOptions::Cache(value) => declared.cache = Some(integer(value, "CACHE")?),
            sp::SequenceOptions::Cycle(no) => declared.cycle = Some(!no),
        }
    }
    Ok(declared)
}

/// An option's value: an integer literal, possibly negative.
fn integer(value: &sp::Expr, option: &str) -> Result<i64> {
    let (negative, literal) = match value {
        sp::Expr::UnaryOp {
            op: sp::UnaryOperator::Minus,
            expr,
        } => (true, expr.as_ref()),
        other => (false, other),
    };
    let text = match literal {
        sp::Expr::Value(v) => match &v.value {
            sp::Value::Number(text, _) => Some(text.as_str()),
            _ => None,
        },
        _ => None,
    };
    let parsed = text.and_then(|t| {
        let signed = if negative {
            format!("-{t}")
        } else {
            t.to_string()
        };
        signed.parse::<i64>().ok()
    });
    parsed.ok_or_else(|| {
        Error::InvalidParameterValue(format!("{option} must be an integer, not {value}"))
    })
}

/// `CREATE SEQUENCE [IF NOT EXISTS] name option ...` and `ALTER SEQUENCE [IF EXISTS]
/// name option ...`, parsed here: PostgreSQL takes the options in any order (sqlparser
/// only in one, and has no ALTER SEQUENCE). ALTER adds `RESTART [[WITH] n]`.
pub fn parse_create_or_alter(parser: &mut Parser, sql: &str) -> Result<Statement> {
    parse_words(parser).map_err(|error| syntax_error(sql, error))?
}

/// What one sequence statement's options say.
#[derive(Default)]
struct ParsedOptions {
    options: DeclaredOptions,
    restart: Option<Option<i64>>,
    owned_by: Option<Option<(String, String)>>,
}

fn parse_words(parser: &mut Parser) -> std::result::Result<Result<Statement>, ParserError> {
    let create = is_word(&parser.peek_token(), "create");
    parser.next_token();
    expect_word(parser, "sequence")?;
    let guarded = if is_word(&parser.peek_token(), "if") {
        parser.next_token();
        if create {
            expect_word(parser, "not")?;
        }
        expect_word(parser, "exists")?;
        true
    } else {
        false
    };
    let name = parser.parse_object_name(false)?;
    let parsed = match parse_options(parser, !create)? {
        Ok(parsed) => parsed,
        Err(error) => return Ok(Err(error)),
    };
    let name = match object_name(&name) {
        Ok(name) => name,
        Err(error) => return Ok(Err(error)),
    };
    Ok(Ok(if create {
        Statement::CreateSequence {
            name,
            if_not_exists: guarded,
            options: parsed.options,
            owned_by: parsed.owned_by.flatten(),
        }
    } else {
        Statement::AlterSequence {
            name,
            if_exists: guarded,
            options: parsed.options,
            restart: parsed.restart,
            owned_by: parsed.owned_by,
        }
    }))
}

/// The options up to the statement's end; RESTART only where `restart_allowed`.
fn parse_options(
    parser: &mut Parser,
    restart_allowed: bool,
) -> std::result::Result<Result<ParsedOptions>, ParserError> {
    let mut parsed = ParsedOptions::default();
    let options = &mut parsed.options;
    loop {
        let next = parser.peek_token();
        if matches!(next.token, Token::EOF | Token::SemiColon) {
            break;
        }
        let word = match &next.token {
            Token::Word(word) if word.quote_style.is_none() => word.value.to_lowercase(),
            _ => return parser.expected("a sequence option", next),
        };
        parser.next_token();
        match word.as_str() {
            "restart" if restart_allowed => {
                if is_word(&parser.peek_token(), "with") {
                    parser.next_token();
                }
                let value = match parser.peek_token().token {
                    Token::Number(..) | Token::Minus => Some(signed_number(parser)?),
                    _ => None,
                };
                parsed.restart = Some(value);
            }
            "increment" => {
                if is_word(&parser.peek_token(), "by") {
                    parser.next_token();
                }
                options.increment = Some(signed_number(parser)?);
            }
            "minvalue" => options.min_value = Some(Some(signed_number(parser)?)),
            "maxvalue" => options.max_value = Some(Some(signed_number(parser)?)),
            "start" => {
                if is_word(&parser.peek_token(), "with") {
                    parser.next_token();
                }
                options.start = Some(signed_number(parser)?);
            }
            "cache" => options.cache = Some(signed_number(parser)?),
            "cycle" => options.cycle = Some(true),
            "no" => {
                let what = parser.next_token();
                match &what.token {
                    Token::Word(w) if w.value.eq_ignore_ascii_case("minvalue") => {
                        options.min_value = Some(None)
                    }
                    Token::Word(w) if w.value.eq_ignore_ascii_case("maxvalue") => {
                        options.max_value = Some(None)
                    }
                    Token::Word(w) if w.value.eq_ignore_ascii_case("cycle") => {
                        options.cycle = Some(false)
                    }
                    _ => return parser.expected("MINVALUE, MAXVALUE or CYCLE", what),
                }
            }
            "as" => {
                let data_type = parser.parse_data_type()?;
                options.data_type = Some(match translate_type(&data_type) {
                    Ok(data_type) => data_type,
                    Err(error) => return Ok(Err(error)),
                });
            }
            "owned" => {
                expect_word(parser, "by")?;
                let target = parser.parse_object_name(false)?;
                parsed.owned_by = Some(match owner(&target) {
                    Ok(target) => target,
                    Err(error) => return Ok(Err(error)),
                });
            }
            _ => return parser.expected("a sequence option", next),
        }
    }
    Ok(Ok(parsed))
}

/// Puts the options of every `AS IDENTITY (options)` in the one order sqlparser
/// accepts (PostgreSQL takes any order, and ORMs write them in theirs), so that CREATE
/// TABLE parses; the options themselves are read as CREATE SEQUENCE's are.
pub fn order_identity_options(
    tokens: Vec<TokenWithSpan>,
) -> Result<Vec<TokenWithSpan>, ParserError> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut index = 0;
    while index < tokens.len() {
        let token = &tokens[index];
        out.push(token.clone());
        index += 1;
        if !is_word(token, "identity") || !follows_generated_as(&out[..out.len() - 1]) {
            continue;
        }
        let Some(open) = (index..tokens.len()).find(|&i| !is_space(&tokens[i])) else {
            continue;
        };
        if tokens[open].token != Token::LParen {
            continue;
        }
        let close = matching_parenthesis(&tokens, open)?;
        let mut inner: Vec<TokenWithSpan> = tokens[open + 1..close].to_vec();
        inner.push(TokenWithSpan::wrap(Token::EOF));
        let dialect = sqlparser::dialect::PostgreSqlDialect {};
        let mut parser = Parser::new(&dialect).with_tokens_with_locations(inner);
        let parsed = parse_options(&mut parser, false)?
            .map_err(|error| ParserError::ParserError(error.to_string()))?;
        if parsed.options.data_type.is_some() || parsed.owned_by.is_some() {
            return Err(ParserError::ParserError(
                "AS and OWNED BY are not identity options".into(),
            ));
        }
        let span = tokens[open].span;
        out.extend(
            canonical_options(&parsed.options)
                .into_iter()
                .map(|token| TokenWithSpan { token, span }),
        );
        index = close + 1;
    }
    Ok(out)
}

fn is_space(token: &TokenWithSpan) -> bool {
    matches!(token.token, Token::Whitespace(_))
}

/// Whether `tokens` end with `ALWAYS AS` or `BY DEFAULT AS` (an identity, not an
/// alias called identity).
fn follows_generated_as(tokens: &[TokenWithSpan]) -> bool {
    let mut words = tokens.iter().rev().filter(|t| !is_space(t));
    let (Some(last), Some(before)) = (words.next(), words.next()) else {
        return false;
    };
    is_word(last, "as") && (is_word(before, "always") || is_word(before, "default"))
}

/// The position of the `)` that closes the `(` at `open`.
fn matching_parenthesis(tokens: &[TokenWithSpan], open: usize) -> Result<usize, ParserError> {
    let mut depth = 0usize;
    for (position, token) in tokens.iter().enumerate().skip(open) {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(position);
                }
            }
            _ => {}
        }
    }
    Err(ParserError::ParserError(
        "identity options are not closed by )".into(),
    ))
}

/// `( INCREMENT BY n MINVALUE n MAXVALUE n START WITH n CACHE n CYCLE )`, each given
/// option in sqlparser's order.
fn canonical_options(options: &DeclaredOptions) -> Vec<Token> {
    let word = |w: &str| Token::make_keyword(w);
    let number = |n: i64| {
        let mut tokens = Vec::new();
        if n < 0 {
            tokens.push(Token::Minus);
        }
        tokens.push(Token::Number(n.unsigned_abs().to_string(), false));
        tokens
    };
    let space = || Token::Whitespace(sqlparser::tokenizer::Whitespace::Space);
    let mut out = vec![Token::LParen];
    let mut option = |words: &[&str], value: Option<i64>| {
        for w in words {
            out.push(word(w));
            out.push(space());
        }
        if let Some(value) = value {
            out.extend(number(value));
            out.push(space());
        }
    };
    if let Some(increment) = options.increment {
        option(&["INCREMENT", "BY"], Some(increment));
    }
    match options.min_value {
        Some(Some(value)) => option(&["MINVALUE"], Some(value)),
        Some(None) => option(&["NO", "MINVALUE"], None),
        None => {}
    }
    match options.max_value {
        Some(Some(value)) => option(&["MAXVALUE"], Some(value)),
        Some(None) => option(&["NO", "MAXVALUE"], None),
        None => {}
    }
    if let Some(start) = options.start {
        option(&["START", "WITH"], Some(start));
    }
    if let Some(cache) = options.cache {
        option(&["CACHE"], Some(cache));
    }
    match options.cycle {
        Some(true) => option(&["CYCLE"], None),
        Some(false) => option(&["NO", "CYCLE"], None),
        None => {}
    }
    out.push(Token::RParen);
    out
}

/// An integer literal with an optional minus sign.
fn signed_number(parser: &mut Parser) -> std::result::Result<i64, ParserError> {
    let negative = parser.consume_token(&Token::Minus);
    let next = parser.next_token();
    match &next.token {
        Token::Number(text, _) => {
            let signed = if negative {
                format!("-{text}")
            } else {
                text.clone()
            };
            signed
                .parse()
                .map_err(|_| ParserError::ParserError(format!("invalid integer {signed}")))
        }
        _ => parser.expected("an integer", next),
    }
}
