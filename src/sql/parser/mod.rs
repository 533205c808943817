//! From SQL text to [`Statement`]s: sqlparser (PostgreSQL dialect) parses, and this module
//! translates its AST into ours, refusing clearly what we do not support (0A000) rather
//! than silently ignoring a clause. Syntax errors carry PostgreSQL's 1-based character
//! position so clients can point at the mistake.

use super::ast::*;
use crate::error::{Error, Result};
use crate::types::{DataType, Value};
use sqlparser::ast as sp;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan};

mod copy;
mod sequence;

/// Longest statement text accepted, so hostile input cannot exhaust memory in the parser.
pub const MAX_SQL_BYTES: usize = 16 << 20;
/// Deepest expression nesting accepted (sqlparser's guard against stack overflow).
const MAX_RECURSION_DEPTH: usize = 200;

/// Parses SQL text holding zero or more `;`-separated statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(Error::InvalidParameterValue(format!(
            "statement text of {} bytes exceeds the limit of {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    let dialect = PostgreSqlDialect {};
    let tokens = sqlparser::tokenizer::Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| syntax_error(sql, e.into()))?;
    let tokens = sequence::order_identity_options(tokens).map_err(|e| syntax_error(sql, e))?;
    let tokens = copy::spell_boolean_options(tokens);
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(MAX_RECURSION_DEPTH)
        .with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    // sqlparser's statement loop, with Tessera's own ALTER CLUSTER recognised first.
    let mut expecting_delimiter = false;
    loop {
        while parser.consume_token(&Token::SemiColon) {
            expecting_delimiter = false;
        }
        let next = parser.peek_token();
        if next.token == Token::EOF {
            break;
        }
        if expecting_delimiter {
            let error = parser.expected::<()>("end of statement", next);
            return Err(syntax_error(sql, error.unwrap_err()));
        }
        let statement = if is_word(&next, "alter") && is_word(&parser.peek_nth_token(1), "cluster")
        {
            parse_alter_cluster(&mut parser).map_err(|e| syntax_error(sql, e))?
        } else if (is_word(&next, "alter") || is_word(&next, "create"))
            && is_word(&parser.peek_nth_token(1), "sequence")
        {
            sequence::parse_create_or_alter(&mut parser, sql)?
        } else if is_word(&next, "show") && is_word(&parser.peek_nth_token(1), "shards") {
            parse_show_shards(&mut parser).map_err(|e| syntax_error(sql, e))?
        } else if is_word(&next, "vacuum") || is_word(&next, "analyze") {
            let (command, tables) =
                parse_maintenance(&mut parser).map_err(|e| syntax_error(sql, e))?;
            let tables = tables.iter().map(object_name).collect::<Result<_>>()?;
            Statement::Maintenance { command, tables }
        } else {
            if is_word(&next, "copy") {
                copy::refuse_statements_after_copy_in(&parser)?;
            }
            let parsed = parser.parse_statement().map_err(|e| syntax_error(sql, e))?;
            translate_statement(parsed)?
        };
        statements.push(statement);
        expecting_delimiter = true;
    }
    Ok(statements)
}

/// Parses one expression (a column's DEFAULT as the catalog keeps it).
pub fn parse_expression(sql: &str) -> Result<Expr> {
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(MAX_RECURSION_DEPTH)
        .try_with_sql(sql)
        .map_err(|e| syntax_error(sql, e))?;
    let expr = parser.parse_expr().map_err(|e| syntax_error(sql, e))?;
    let rest = parser.peek_token();
    if rest.token != Token::EOF {
        let error = parser.expected::<()>("end of expression", rest);
        return Err(syntax_error(sql, error.unwrap_err()));
    }
    translate_expr(&expr)
}

fn is_word(token: &TokenWithSpan, word: &str) -> bool {
    matches!(&token.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Consumes `word` (any case, unquoted) or fails naming what was expected.
fn expect_word(parser: &mut Parser, word: &str) -> std::result::Result<(), ParserError> {
    let next = parser.peek_token();
    if is_word(&next, word) {
        parser.next_token();
        Ok(())
    } else {
        parser.expected(&word.to_uppercase(), next)
    }
}

/// `VACUUM [(option, ...)] [FULL] [FREEZE] [VERBOSE] [ANALYZE] [table [(columns)], ...]`
/// and `ANALYZE [(option, ...)] [VERBOSE] [table [(columns)], ...]` in PostgreSQL's
/// grammar (sqlparser's VACUUM is Redshift's): the command and the tables named.
fn parse_maintenance(
    parser: &mut Parser,
) -> std::result::Result<(Maintenance, Vec<sp::ObjectName>), ParserError> {
    let command = if is_word(&parser.peek_token(), "vacuum") {
        Maintenance::Vacuum
    } else {
        Maintenance::Analyze
    };
    parser.next_token();
    if parser.consume_token(&Token::LParen) {
        // Options, each a word with an optional value: accepted, none changes anything.
        loop {
            let next = parser.next_token();
            match next.token {
                Token::RParen => break,
                Token::Word(_) | Token::Number(..) | Token::Comma => {}
                _ => return parser.expected("a VACUUM or ANALYZE option", next),
            }
        }
    }
    let options = ["full", "freeze", "verbose", "analyze", "skip_locked"];
    while options
        .iter()
        .any(|word| is_word(&parser.peek_token(), word))
    {
        parser.next_token();
    }
    let mut tables = Vec::new();
    let next = parser.peek_token();
    if next.token == Token::EOF || next.token == Token::SemiColon {
        return Ok((command, tables));
    }
    loop {
        tables.push(parser.parse_object_name(false)?);
        if parser.peek_token().token == Token::LParen {
            parser
                .parse_parenthesized_column_list(sqlparser::parser::IsOptional::Mandatory, false)?;
        }
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    Ok((command, tables))
}

/// `ALTER CLUSTER ADD NODE 'raft address' | REMOVE NODE id |
/// TRANSFER LEADER TO NODE id [FOR GROUP g] | SET CLOCK RATE r | SET COMMIT PAUSE ms`:
/// membership changes and test faults, Tessera's own statement (sqlparser knows no such syntax, so it is
/// parsed here).
fn parse_alter_cluster(parser: &mut Parser) -> std::result::Result<Statement, ParserError> {
    expect_word(parser, "alter")?;
    expect_word(parser, "cluster")?;
    let next = parser.peek_token();
    let change = if is_word(&next, "add") {
        parser.next_token();
        expect_word(parser, "node")?;
        ClusterChange::AddNode {
            raft_address: parser.parse_literal_string()?,
        }
    } else if is_word(&next, "remove") {
        parser.next_token();
        expect_word(parser, "node")?;
        ClusterChange::RemoveNode {
            node_id: parser.parse_literal_uint()?,
        }
    } else if is_word(&next, "transfer") {
        parser.next_token();
        expect_word(parser, "leader")?;
        expect_word(parser, "to")?;
        expect_word(parser, "node")?;
        let to = parser.parse_literal_uint()?;
        let group = if is_word(&parser.peek_token(), "for") {
            parser.next_token();
            expect_word(parser, "group")?;
            Some(parser.parse_literal_uint()?)
        } else {
            None
        };
        ClusterChange::TransferLeader { to, group }
    } else if is_word(&next, "set") {
        parser.next_token();
        if is_word(&parser.peek_token(), "commit") {
            parser.next_token();
            expect_word(parser, "pause")?;
            ClusterChange::CommitPause {
                millis: parser.parse_literal_uint()?,
            }
        } else {
            expect_word(parser, "clock")?;
            expect_word(parser, "rate")?;
            ClusterChange::ClockRate {
                rate: parse_literal_number(parser)?,
            }
        }
    } else {
        return parser.expected(
            "ADD NODE, REMOVE NODE, TRANSFER LEADER, SET CLOCK RATE or SET COMMIT PAUSE",
            next,
        );
    };
    Ok(Statement::AlterCluster(change))
}

/// `SHOW SHARDS [FOR table]`, Tessera's own statement.
fn parse_show_shards(parser: &mut Parser) -> std::result::Result<Statement, ParserError> {
    expect_word(parser, "show")?;
    expect_word(parser, "shards")?;
    let table = if is_word(&parser.peek_token(), "for") {
        parser.next_token();
        let name = parser.parse_object_name(false)?;
        Some(object_name(&name).map_err(|error| ParserError::ParserError(error.to_string()))?)
    } else {
        None
    };
    Ok(Statement::ShowShards { table })
}

/// A number literal (`2`, `0.5`) as a float.
fn parse_literal_number(parser: &mut Parser) -> std::result::Result<f64, ParserError> {
    let next = parser.next_token();
    match &next.token {
        Token::Number(text, _) => text
            .parse()
            .map_err(|_| ParserError::ParserError(format!("invalid number {text}"))),
        _ => parser.expected("a number", next),
    }
}

fn syntax_error(sql: &str, error: ParserError) -> Error {
    let text = match error {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => "expression nested too deeply".to_string(),
    };
    // sqlparser reports "... at Line: L, Column: C"; PostgreSQL reports a character offset.
    let (message, position) = match text.rsplit_once(" at Line: ") {
        Some((message, location)) => (message.to_string(), line_column_to_position(sql, location)),
        None => (text, None),
    };
    Error::Syntax { message, position }
}

fn line_column_to_position(sql: &str, location: &str) -> Option<u32> {
    let (line, column) = location.split_once(", Column: ")?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = column.trim().parse().ok()?;
    let preceding: usize = sql
        .split('\n')
        .take(line.saturating_sub(1))
        .map(|l| l.chars().count() + 1)
        .sum();
    u32::try_from(preceding + column).ok()
}

fn unsupported(what: impl Into<String>) -> Error {
    Error::FeatureNotSupported(format!("{} is not supported", what.into()))
}

/// Identifiers fold to lower case unless quoted, as in PostgreSQL.
fn ident(ident: &sp::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// A possibly schema-qualified name; `public.` and `pg_catalog.`-free names only.
fn object_name(name: &sp::ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            sp::ObjectNamePart::Identifier(i) => Ok(ident(i)),
            sp::ObjectNamePart::Function(_) => Err(unsupported("a function in an object name")),
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [name] => Ok(name.clone()),
        [schema, name] if schema == "public" => Ok(name.clone()),
        // System views keep their schema: `information_schema.tables`.
        [schema, name] if schema == "information_schema" || schema == "pg_catalog" => {
            Ok(format!("{schema}.{name}"))
        }
        _ => Err(unsupported(format!("the qualified name {name}"))),
    }
}

fn translate_statement(statement: sp::Statement) -> Result<Statement> {
    match statement {
        sp::Statement::StartTransaction { .. } => Ok(Statement::Begin),
        sp::Statement::Commit { chain: false, .. } => Ok(Statement::Commit),
        sp::Statement::Rollback {
            chain: false,
            savepoint: None,
        } => Ok(Statement::Rollback),
        sp::Statement::Rollback {
            chain: false,
            savepoint: Some(name),
        } => Ok(Statement::RollbackToSavepoint(ident(&name))),
        sp::Statement::Savepoint { name } => Ok(Statement::Savepoint(ident(&name))),
        sp::Statement::ReleaseSavepoint { name } => Ok(Statement::ReleaseSavepoint(ident(&name))),
        sp::Statement::CreateTable(create) => translate_create_table(create),
        sp::Statement::Truncate(truncate) => translate_truncate(truncate),
        sp::Statement::CreateIndex(create) => translate_create_index(create),
        sp::Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => {
            if cascade {
                return Err(unsupported("DROP ... CASCADE"));
            }
            let names = names.iter().map(object_name).collect::<Result<_>>()?;
            match object_type {
                sp::ObjectType::Table => Ok(Statement::DropTable { names, if_exists }),
                sp::ObjectType::Index => Ok(Statement::DropIndex { names, if_exists }),
                sp::ObjectType::Sequence => Ok(Statement::DropSequence { names, if_exists }),
                other => Err(unsupported(format!("DROP {other}"))),
            }
        }
        sp::Statement::Insert(insert) => translate_insert(insert),
        sp::Statement::Update(update) => translate_update(update),
        sp::Statement::Delete(delete) => translate_delete(delete),
        sp::Statement::Query(query) => Ok(Statement::Select(Box::new(translate_query(*query)?))),
        copy @ sp::Statement::Copy { .. } => copy::translate_copy(copy),
        sp::Statement::Explain {
            statement, analyze, ..
        } => {
            if analyze {
                return Err(unsupported("EXPLAIN ANALYZE"));
            }
            Ok(Statement::Explain(Box::new(translate_statement(
                *statement,
            )?)))
        }
        sp::Statement::Set(set) => translate_set(set),
        sp::Statement::ShowVariable { variable } => Ok(Statement::Show {
            name: variable.iter().map(ident).collect::<Vec<_>>().join(" "),
        }),
        other => Err(unsupported(first_words(&other.to_string()))),
    }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

fn translate_set(set: sp::Set) -> Result<Statement> {
    match set {
        sp::Set::SingleAssignment {
            variable, values, ..
        } => {
            let name = object_name(&variable)?;
            let value = match values.as_slice() {
                [sp::Expr::Identifier(i)]
                    if i.value.eq_ignore_ascii_case("default") && i.quote_style.is_none() =>
                {
                    None
                }
                [sp::Expr::Identifier(i)] => Some(i.value.clone()),
                [sp::Expr::Value(v)] => Some(match &v.value {
                    sp::Value::SingleQuotedString(s) => s.clone(),
                    sp::Value::Number(n, _) => n.clone(),
                    sp::Value::Boolean(b) => b.to_string(),
                    other => other.to_string(),
                }),
                _ => return Err(unsupported("SET with this value")),
            };
            Ok(Statement::Set { name, value })
        }
        other => Err(unsupported(first_words(&other.to_string()))),
    }
}

fn translate_create_table(create: sp::CreateTable) -> Result<Statement> {
    if create.query.is_some() {
        return Err(unsupported("CREATE TABLE AS"));
    }
    refuse_unsupported_table_clauses(&create)?;
    let shards = translate_table_options(&create.table_options)?;
    let name = object_name(&create.name)?;
    let mut columns = Vec::new();
    for column in &create.columns {
        columns.push(translate_column(column)?);
    }
    let mut primary_key = None;
    let mut unique = Vec::new();
    for constraint in &create.constraints {
        match constraint {
            sp::TableConstraint::PrimaryKey(pk) => {
                if primary_key.is_some() {
                    return Err(Error::InvalidTableDefinition(format!(
                        "multiple primary keys for table \"{name}\" are not allowed"
                    )));
                }
                primary_key = Some(index_columns(&pk.columns)?);
            }
            sp::TableConstraint::Unique(u) => {
                unique.push((u.name.as_ref().map(ident), index_columns(&u.columns)?));
            }
            other => return Err(unsupported(format!("the constraint {other}"))),
        }
    }
    Ok(Statement::CreateTable(CreateTable {
        name,
        columns,
        primary_key,
        unique,
        if_not_exists: create.if_not_exists,
        shards,
    }))
}

/// Clauses of CREATE TABLE that Tessera does not act on are refused rather than
/// silently ignored: a table that is not what was asked for is worse than an error.
fn refuse_unsupported_table_clauses(create: &sp::CreateTable) -> Result<()> {
    let refused = [
        (create.or_replace, "CREATE OR REPLACE TABLE"),
        (create.temporary, "CREATE TEMPORARY TABLE"),
        (create.unlogged, "CREATE UNLOGGED TABLE"),
        (create.like.is_some(), "CREATE TABLE ... LIKE"),
        (create.inherits.is_some(), "CREATE TABLE ... INHERITS"),
        (
            create.partition_of.is_some(),
            "CREATE TABLE ... PARTITION OF",
        ),
        (
            create.partition_by.is_some(),
            "CREATE TABLE ... PARTITION BY",
        ),
        (create.on_commit.is_some(), "CREATE TABLE ... ON COMMIT"),
    ];
    match refused.iter().find(|(present, _)| *present) {
        Some((_, what)) => Err(unsupported(*what)),
        None => Ok(()),
    }
}

/// `WITH (shards = N)` sets the table's shard count; `fillfactor` is accepted for
/// compatibility (pgbench sends it) and has no effect, since an LSM tree has no pages
/// to leave room in; any other option is refused with 0A000.
fn translate_table_options(options: &sp::CreateTableOptions) -> Result<Option<u16>> {
    let options = match options {
        sp::CreateTableOptions::None => return Ok(None),
        sp::CreateTableOptions::With(options) => options,
        other => return Err(unsupported(format!("the table options {other}"))),
    };
    let mut shards = None;
    for option in options {
        let sp::SqlOption::KeyValue { key, value } = option else {
            return Err(unsupported(format!("the table option {option}")));
        };
        match ident(key).as_str() {
            "shards" => {
                let count = option_integer(value, "shards", 1, i64::from(crate::shard::MAX_TABLE_SHARDS))?;
                shards = Some(count as u16);
            }
            "fillfactor" => {
                option_integer(value, "fillfactor", 10, 100)?;
            }
            _ => {
                return Err(unsupported(format!(
                    "the table option \"{}\" (Tessera acts on shards; fillfactor is accepted and ignored)",
                    ident(key)
                )))
            }
        }
    }
    Ok(shards)
}

/// An integer table option within `[low, high]`, or 22023 naming the option.
fn option_integer(value: &sp::Expr, name: &str, low: i64, high: i64) -> Result<i64> {
    let number = match value {
        sp::Expr::Value(v) => match &v.value {
            sp::Value::Number(text, _) => text.parse::<i64>().ok(),
            sp::Value::SingleQuotedString(text) => text.parse::<i64>().ok(),
            _ => None,
        },
        _ => None,
    };
    match number {
        Some(n) if (low..=high).contains(&n) => Ok(n),
        _ => Err(Error::InvalidParameterValue(format!(
            "value {value} out of bounds for option \"{name}\": an integer from {low} to {high}"
        ))),
    }
}

fn index_columns(columns: &[sp::IndexColumn]) -> Result<Vec<String>> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            sp::Expr::Identifier(i) => Ok(ident(i)),
            other => Err(unsupported(format!("an index on the expression {other}"))),
        })
        .collect()
}

fn translate_column(column: &sp::ColumnDef) -> Result<ColumnDefinition> {
    let serial = sequence::serial_type(&column.data_type);
    let data_type = match serial {
        Some(data_type) => data_type,
        None => translate_type(&column.data_type)?,
    };
    if matches!(data_type, DataType::Array(_)) {
        return Err(unsupported(
            "array columns (arrays are values of queries only, for now)",
        ));
    }
    let mut definition = ColumnDefinition {
        name: ident(&column.name),
        data_type,
        not_null: false,
        default: None,
        default_sql: None,
        primary_key: false,
        unique: false,
        generated: serial.map(|data_type| GeneratedKey {
            identity: None,
            options: DeclaredOptions {
                data_type: Some(data_type),
                ..DeclaredOptions::default()
            },
        }),
    };
    for option in &column.options {
        match &option.option {
            sp::ColumnOption::Null => definition.not_null = false,
            sp::ColumnOption::NotNull => definition.not_null = true,
            sp::ColumnOption::Default(expr) => {
                definition.default = Some(translate_expr(expr)?);
                definition.default_sql = Some(expr.to_string());
            }
            sp::ColumnOption::Generated {
                generated_as,
                sequence_options,
                generation_expr: None,
                ..
            } => {
                if definition.generated.is_some() {
                    return Err(Error::Syntax {
                        message: format!(
                            "multiple identity specifications for column \"{}\"",
                            definition.name
                        ),
                        position: None,
                    });
                }
                definition.generated = Some(sequence::identity(
                    generated_as,
                    sequence_options.as_deref(),
                    data_type,
                )?);
            }
            sp::ColumnOption::PrimaryKey(_) => definition.primary_key = true,
            sp::ColumnOption::Unique(_) => definition.unique = true,
            other => return Err(unsupported(format!("the column option {other}"))),
        }
    }
    Ok(definition)
}

/// Maps a SQL type name to one of ours.
pub fn translate_type(data_type: &sp::DataType) -> Result<DataType> {
    use sp::DataType as T;
    Ok(match data_type {
        T::Bool | T::Boolean => DataType::Boolean,
        T::SmallInt(_) | T::Int2(_) => DataType::SmallInt,
        T::Int(_) | T::Integer(_) | T::Int4(_) => DataType::Integer,
        T::BigInt(_) | T::Int8(_) => DataType::BigInt,
        T::Real | T::Float4 => DataType::Real,
        T::Double(_) | T::DoublePrecision | T::Float8 => DataType::Double,
        T::Float(sp::ExactNumberInfo::Precision(p)) if *p <= 24 => DataType::Real,
        T::Float(_) => DataType::Double,
        T::Text | T::String(None) => DataType::Text { max_length: None },
        T::Varchar(length) | T::CharacterVarying(length) => DataType::Text {
            max_length: match length {
                None | Some(sp::CharacterLength::Max) => None,
                Some(sp::CharacterLength::IntegerLength { length, .. }) => {
                    let n = u32::try_from(*length)
                        .ok()
                        .filter(|n| (1..=10_485_760).contains(n))
                        .ok_or_else(|| {
                            Error::InvalidParameterValue(format!(
                                "length for type varchar must be between 1 and 10485760, not {length}"
                            ))
                        })?;
                    Some(n)
                }
            },
        },
        T::Bytea => DataType::Bytea,
        T::Array(
            sp::ArrayElemTypeDef::SquareBracket(element, _)
            | sp::ArrayElemTypeDef::Qualified(element, _),
        ) => {
            let element = translate_type(element)?;
            DataType::Array(
                crate::types::ElementType::of(element)
                    .ok_or_else(|| unsupported("multi-dimensional arrays"))?,
            )
        }
        T::Custom(name, modifiers) if modifiers.is_empty() => {
            match catalog_type_name(name).as_deref() {
                Some("bool" | "boolean") => DataType::Boolean,
                Some("int2" | "smallint") => DataType::SmallInt,
                // Object identifiers: ours all fit in INTEGER.
                Some("int4" | "int" | "integer" | "oid") => DataType::Integer,
                Some("int8" | "bigint") => DataType::BigInt,
                Some("float4" | "real") => DataType::Real,
                Some("float8") => DataType::Double,
                Some("text" | "varchar" | "name" | "char") => DataType::Text { max_length: None },
                Some("bytea") => DataType::Bytea,
                _ => return Err(unsupported(format!("the type {data_type}"))),
            }
        }
        T::Char(None) if data_type.to_string() == "\"char\"" => DataType::Text { max_length: None },
        other => return Err(unsupported(format!("the type {other}"))),
    })
}

/// A type name written as `name` or `pg_catalog.name`, lower-cased; `None` if it names
/// another schema.
fn catalog_type_name(name: &sp::ObjectName) -> Option<String> {
    let name = object_name(name).ok()?;
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    (!name.contains('.')).then(|| name.to_string())
}

/// The object-identifier alias types: `x::regclass` turns an OID into the object's name
/// and a name into its OID.
fn object_identifier_type(data_type: &sp::DataType) -> Option<ObjectKind> {
    if matches!(data_type, sp::DataType::Regclass) {
        return Some(ObjectKind::Relation);
    }
    let sp::DataType::Custom(name, modifiers) = data_type else {
        return None;
    };
    if !modifiers.is_empty() {
        return None;
    }
    Some(match catalog_type_name(name)?.as_str() {
        "regclass" => ObjectKind::Relation,
        "regtype" => ObjectKind::Type,
        "regnamespace" => ObjectKind::Namespace,
        "regrole" => ObjectKind::Role,
        _ => return None,
    })
}

fn translate_truncate(truncate: sp::Truncate) -> Result<Statement> {
    if truncate.partitions.is_some() || truncate.on_cluster.is_some() || truncate.if_exists {
        return Err(unsupported(format!("{truncate}")));
    }
    if matches!(truncate.cascade, Some(sp::CascadeOption::Cascade)) {
        return Err(unsupported("TRUNCATE ... CASCADE"));
    }
    let names = truncate
        .table_names
        .iter()
        .map(|target| object_name(&target.name))
        .collect::<Result<Vec<_>>>()?;
    let restart_identity = matches!(truncate.identity, Some(sp::TruncateIdentityOption::Restart));
    Ok(Statement::Truncate {
        names,
        restart_identity,
    })
}

fn translate_create_index(create: sp::CreateIndex) -> Result<Statement> {
    if create.predicate.is_some() {
        return Err(unsupported("a partial index (WHERE)"));
    }
    if !create.include.is_empty() {
        return Err(unsupported("INCLUDE columns"));
    }
    Ok(Statement::CreateIndex {
        name: create.name.as_ref().map(object_name).transpose()?,
        table: object_name(&create.table_name)?,
        columns: index_columns(&create.columns)?,
        unique: create.unique,
        if_not_exists: create.if_not_exists,
    })
}

fn translate_insert(insert: sp::Insert) -> Result<Statement> {
    let on_conflict = match &insert.on {
        None => None,
        Some(sp::OnInsert::OnConflict(clause)) => Some(translate_on_conflict(clause)?),
        Some(other) => return Err(unsupported(format!("INSERT ...{other}"))),
    };
    let alias = insert.table_alias.as_ref().map(|alias| ident(&alias.alias));
    let returning = translate_returning(insert.returning.as_deref())?;
    let table = match &insert.table {
        sp::TableObject::TableName(name) => object_name(name)?,
        other => return Err(unsupported(format!("INSERT INTO {other}"))),
    };
    let columns = if insert.columns.is_empty() {
        None
    } else {
        Some(
            insert
                .columns
                .iter()
                .map(object_name)
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let source = match insert.source {
        None => InsertSource::DefaultValues,
        Some(query) => match *query.body {
            sp::SetExpr::Values(values)
                if query.order_by.is_none() && query.limit_clause.is_none() =>
            {
                let mut rows = Vec::with_capacity(values.rows.len());
                for row in values.rows {
                    rows.push(
                        row.content
                            .iter()
                            .map(translate_insert_item)
                            .collect::<Result<Vec<_>>>()?,
                    );
                }
                InsertSource::Values(rows)
            }
            _ => InsertSource::Select(Box::new(translate_query(*query)?)),
        },
    };
    Ok(Statement::Insert(Insert {
        table,
        columns,
        source,
        alias,
        on_conflict,
        returning,
    }))
}

fn translate_on_conflict(clause: &sp::OnConflict) -> Result<OnConflict> {
    let target = match &clause.conflict_target {
        None => ConflictTarget::Any,
        Some(sp::ConflictTarget::Columns(columns)) => {
            ConflictTarget::Columns(columns.iter().map(ident).collect())
        }
        Some(sp::ConflictTarget::OnConstraint(name)) => {
            ConflictTarget::Constraint(object_name(name)?)
        }
    };
    let action = match &clause.action {
        sp::OnConflictAction::DoNothing => ConflictAction::Nothing,
        sp::OnConflictAction::DoUpdate(update) => {
            if target == ConflictTarget::Any {
                return Err(Error::Syntax {
                    message: "ON CONFLICT DO UPDATE requires inference specification or \
                              constraint name"
                        .into(),
                    position: None,
                });
            }
            ConflictAction::Update {
                assignments: translate_assignments(&update.assignments)?,
                filter: update.selection.as_ref().map(translate_expr).transpose()?,
            }
        }
    };
    Ok(OnConflict { target, action })
}

/// `column = expression` pairs of UPDATE ... SET and ON CONFLICT DO UPDATE SET.
fn translate_assignments(assignments: &[sp::Assignment]) -> Result<Vec<(String, Expr)>> {
    let mut translated = Vec::with_capacity(assignments.len());
    for assignment in assignments {
        let column = match &assignment.target {
            sp::AssignmentTarget::ColumnName(name) => object_name(name)?,
            sp::AssignmentTarget::Tuple(_) => return Err(unsupported("tuple assignment")),
        };
        translated.push((column, translate_expr(&assignment.value)?));
    }
    Ok(translated)
}

fn translate_insert_item(expr: &sp::Expr) -> Result<Option<Expr>> {
    match expr {
        sp::Expr::Identifier(i)
            if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default") =>
        {
            Ok(None)
        }
        other => translate_expr(other).map(Some),
    }
}

/// The target table of UPDATE or DELETE, with its alias.
fn target_table(table: &sp::TableWithJoins) -> Result<(String, Option<String>)> {
    if !table.joins.is_empty() {
        return Err(unsupported("joins on the target table (use FROM / USING)"));
    }
    match &table.relation {
        sp::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            if alias
                .as_ref()
                .is_some_and(|alias| !alias.columns.is_empty())
            {
                return Err(unsupported("column aliases on the target table"));
            }
            Ok((
                object_name(name)?,
                alias.as_ref().map(|alias| ident(&alias.name)),
            ))
        }
        other => Err(unsupported(format!("the table expression {other}"))),
    }
}

fn translate_update(update: sp::Update) -> Result<Statement> {
    let from = match &update.from {
        None => None,
        Some(sp::UpdateTableFromKind::AfterSet(tables)) => translate_from_list(tables)?,
        Some(sp::UpdateTableFromKind::BeforeSet(_)) => {
            return Err(unsupported("UPDATE FROM ... SET (FROM goes after SET)"))
        }
    };
    let returning = translate_returning(update.returning.as_deref())?;
    let (table, alias) = target_table(&update.table)?;
    let assignments = translate_assignments(&update.assignments)?;
    let filter = update.selection.as_ref().map(translate_expr).transpose()?;
    Ok(Statement::Update(Update {
        table,
        alias,
        from,
        assignments,
        filter,
        returning,
    }))
}

fn translate_delete(delete: sp::Delete) -> Result<Statement> {
    let using = match &delete.using {
        None => None,
        Some(tables) => translate_from_list(tables)?,
    };
    let returning = translate_returning(delete.returning.as_deref())?;
    let tables = match &delete.from {
        sp::FromTable::WithFromKeyword(tables) | sp::FromTable::WithoutKeyword(tables) => tables,
    };
    let (table, alias) = match tables.as_slice() {
        [table] => target_table(table)?,
        _ => return Err(unsupported("DELETE from several tables")),
    };
    let filter = delete.selection.as_ref().map(translate_expr).transpose()?;
    Ok(Statement::Delete(Delete {
        table,
        alias,
        using,
        filter,
        returning,
    }))
}

/// A RETURNING list (empty without one): select items, as in a select list.
fn translate_returning(items: Option<&[sp::SelectItem]>) -> Result<Vec<SelectItem>> {
    items.map_or(Ok(Vec::new()), translate_select_items)
}

fn translate_query(query: sp::Query) -> Result<Select> {
    if query.with.is_some() {
        return Err(unsupported("WITH"));
    }
    if query.fetch.is_some() || !query.locks.is_empty() {
        return Err(unsupported("FETCH / FOR UPDATE"));
    }
    let mut select = match *query.body {
        sp::SetExpr::Select(select) => translate_select(*select)?,
        sp::SetExpr::Query(inner) => translate_query(*inner)?,
        sp::SetExpr::Values(_) => return Err(unsupported("VALUES as a query")),
        body => translate_set_expr(body)?,
    };
    if let Some(order_by) = query.order_by {
        match order_by.kind {
            sp::OrderByKind::Expressions(items) => {
                for item in items {
                    select.order_by.push(OrderItem {
                        expr: translate_expr(&item.expr)?,
                        descending: matches!(item.options.sort, Some(sp::OrderBySort::Desc)),
                        nulls_first: item.options.nulls_first,
                    });
                }
            }
            sp::OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL")),
        }
    }
    match query.limit_clause {
        None => {}
        Some(sp::LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(unsupported("LIMIT BY"));
            }
            select.limit = limit.as_ref().map(translate_expr).transpose()?;
            select.offset = offset
                .as_ref()
                .map(|o| translate_expr(&o.value))
                .transpose()?;
        }
        Some(sp::LimitClause::OffsetCommaLimit { .. }) => {
            return Err(unsupported("LIMIT offset, count"))
        }
    }
    Ok(select)
}

/// A query body that is not a plain SELECT: a set operation or a parenthesized query.
fn translate_set_expr(body: sp::SetExpr) -> Result<Select> {
    match body {
        sp::SetExpr::Select(select) => translate_select(*select),
        sp::SetExpr::Query(inner) => translate_query(*inner),
        sp::SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } => {
            let operator = match op {
                sp::SetOperator::Union => SetOperator::Union,
                sp::SetOperator::Intersect => SetOperator::Intersect,
                sp::SetOperator::Except => SetOperator::Except,
                other => return Err(unsupported(format!("{other}"))),
            };
            let all = match set_quantifier {
                sp::SetQuantifier::All => true,
                sp::SetQuantifier::Distinct | sp::SetQuantifier::None => false,
                other => return Err(unsupported(format!("{operator:?} {other}"))),
            };
            Ok(Select {
                set_operation: Some(SetOperation {
                    operator,
                    all,
                    left: Box::new(translate_set_expr(*left)?),
                    right: Box::new(translate_set_expr(*right)?),
                }),
                ..Select::default()
            })
        }
        sp::SetExpr::Values(_) => Err(unsupported("VALUES as a query")),
        other => Err(unsupported(first_words(&other.to_string()))),
    }
}

fn translate_select(select: sp::Select) -> Result<Select> {
    let distinct = match select.distinct {
        None | Some(sp::Distinct::All) => false,
        Some(sp::Distinct::Distinct) => true,
        Some(sp::Distinct::On(_)) => return Err(unsupported("DISTINCT ON")),
    };
    let from = translate_from_list(&select.from)?;
    let projection = translate_select_items(&select.projection)?;
    let group_by = match &select.group_by {
        sp::GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => {
            exprs.iter().map(translate_expr).collect::<Result<_>>()?
        }
        _ => return Err(unsupported("this GROUP BY form")),
    };
    Ok(Select {
        distinct,
        projection,
        from,
        filter: select.selection.as_ref().map(translate_expr).transpose()?,
        group_by,
        having: select.having.as_ref().map(translate_expr).transpose()?,
        ..Select::default()
    })
}

/// A comma-separated FROM list (of SELECT, UPDATE ... FROM, DELETE ... USING): its
/// items cross-joined in order, or nothing for an empty list.
fn translate_from_list(tables: &[sp::TableWithJoins]) -> Result<Option<FromItem>> {
    let mut from: Option<FromItem> = None;
    for table in tables {
        let item = translate_table_with_joins(table)?;
        from = Some(match from {
            None => item,
            Some(left) => FromItem::Join {
                left: Box::new(left),
                right: Box::new(item),
                kind: JoinKind::Cross,
                on: None,
            },
        });
    }
    Ok(from)
}

/// Select items (a select list or a RETURNING list) in our AST.
fn translate_select_items(items: &[sp::SelectItem]) -> Result<Vec<SelectItem>> {
    let mut projection = Vec::with_capacity(items.len());
    for item in items {
        projection.push(match item {
            sp::SelectItem::Wildcard(_) => SelectItem::Wildcard,
            sp::SelectItem::QualifiedWildcard(
                sp::SelectItemQualifiedWildcardKind::ObjectName(name),
                _,
            ) => SelectItem::QualifiedWildcard(object_name(name)?),
            sp::SelectItem::UnnamedExpr(expr) => SelectItem::Expression {
                expr: translate_expr(expr)?,
                alias: None,
            },
            sp::SelectItem::ExprWithAlias { expr, alias } => SelectItem::Expression {
                expr: translate_expr(expr)?,
                alias: Some(ident(alias)),
            },
            other => return Err(unsupported(format!("the select item {other}"))),
        });
    }
    Ok(projection)
}

/// One comma-separated FROM entry: a table and the joins chained onto it.
fn translate_table_with_joins(table: &sp::TableWithJoins) -> Result<FromItem> {
    let mut item = translate_table_factor(&table.relation)?;
    for join in &table.joins {
        let right = translate_table_factor(&join.relation)?;
        let (kind, constraint) = match &join.join_operator {
            sp::JoinOperator::Join(c) | sp::JoinOperator::Inner(c) => (JoinKind::Inner, Some(c)),
            sp::JoinOperator::Left(c) | sp::JoinOperator::LeftOuter(c) => (JoinKind::Left, Some(c)),
            sp::JoinOperator::CrossJoin(_) => (JoinKind::Cross, None),
            sp::JoinOperator::Right(_) | sp::JoinOperator::RightOuter(_) => {
                return Err(unsupported("RIGHT JOIN (write it as a LEFT JOIN)"))
            }
            sp::JoinOperator::FullOuter(_) => return Err(unsupported("FULL JOIN")),
            _ => return Err(unsupported("this kind of join")),
        };
        let on = match constraint {
            None | Some(sp::JoinConstraint::None) => None,
            Some(sp::JoinConstraint::On(expr)) => Some(translate_expr(expr)?),
            Some(sp::JoinConstraint::Using(_)) => return Err(unsupported("JOIN ... USING")),
            Some(sp::JoinConstraint::Natural) => return Err(unsupported("NATURAL joins")),
        };
        if kind != JoinKind::Cross && on.is_none() {
            return Err(Error::Syntax {
                message: "JOIN needs an ON condition".into(),
                position: None,
            });
        }
        item = FromItem::Join {
            left: Box::new(item),
            right: Box::new(right),
            kind,
            on,
        };
    }
    Ok(item)
}

fn translate_table_factor(factor: &sp::TableFactor) -> Result<FromItem> {
    match factor {
        sp::TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } => {
            let args = args
                .args
                .iter()
                .map(|arg| match arg {
                    sp::FunctionArg::Unnamed(sp::FunctionArgExpr::Expr(e)) => translate_expr(e),
                    other => Err(unsupported(format!("the argument {other}"))),
                })
                .collect::<Result<_>>()?;
            let name = object_name(name)?;
            Ok(FromItem::Function {
                name: name
                    .strip_prefix("pg_catalog.")
                    .unwrap_or(&name)
                    .to_string(),
                args,
                alias: alias.as_ref().map(|a| ident(&a.name)),
                columns: alias_columns(alias.as_ref()),
            })
        }
        sp::TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } => Ok(FromItem::Function {
            name: "unnest".into(),
            args: array_exprs
                .iter()
                .map(translate_expr)
                .collect::<Result<_>>()?,
            alias: alias.as_ref().map(|a| ident(&a.name)),
            columns: alias_columns(alias.as_ref()),
        }),
        sp::TableFactor::Derived {
            lateral,
            subquery,
            alias,
            ..
        } => {
            if *lateral {
                return Err(unsupported("LATERAL"));
            }
            let Some(alias) = alias else {
                return Err(Error::Syntax {
                    message: "subquery in FROM must have an alias".into(),
                    position: None,
                });
            };
            Ok(FromItem::Subquery {
                query: Box::new(translate_query((**subquery).clone())?),
                alias: ident(&alias.name),
                columns: alias_columns(Some(alias)),
            })
        }
        sp::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                return Err(unsupported("column aliases on a table"));
            }
            Ok(FromItem::Table(TableReference {
                name: object_name(name)?,
                alias: alias.as_ref().map(|a| ident(&a.name)),
            }))
        }
        sp::TableFactor::NestedJoin {
            table_with_joins,
            alias: None,
        } => translate_table_with_joins(table_with_joins),
        other => Err(unsupported(format!("the table expression {other}"))),
    }
}

fn alias_columns(alias: Option<&sp::TableAlias>) -> Vec<String> {
    alias.map_or_else(Vec::new, |a| {
        a.columns.iter().map(|c| ident(&c.name)).collect()
    })
}

fn boxed(expr: &sp::Expr) -> Result<Box<Expr>> {
    translate_expr(expr).map(Box::new)
}

/// Translates one expression.
pub fn translate_expr(expr: &sp::Expr) -> Result<Expr> {
    use sp::Expr as E;
    Ok(match expr {
        E::Identifier(i) => Expr::Column {
            table: None,
            name: ident(i),
        },
        E::CompoundIdentifier(parts) => match parts.as_slice() {
            [table, column] => Expr::Column {
                table: Some(ident(table)),
                name: ident(column),
            },
            _ => return Err(unsupported(format!("the name {expr}"))),
        },
        E::Value(value) => translate_value(&value.value)?,
        E::Array(array) => Expr::Array(
            array
                .elem
                .iter()
                .map(translate_expr)
                .collect::<Result<_>>()?,
        ),
        E::CompoundFieldAccess { root, access_chain } => match access_chain.as_slice() {
            [sp::AccessExpr::Subscript(sp::Subscript::Index { index })] => Expr::Subscript {
                expr: boxed(root)?,
                index: boxed(index)?,
            },
            _ => {
                return Err(unsupported(format!(
                    "the access {expr} (only one subscript)"
                )))
            }
        },
        E::AnyOp {
            left,
            compare_op,
            right,
            ..
        } => quantified(left, compare_op, right, false)?,
        E::AllOp {
            left,
            compare_op,
            right,
        } => quantified(left, compare_op, right, true)?,
        E::Nested(inner) => translate_expr(inner)?,
        // IS [NOT] UNKNOWN is IS [NOT] NULL on a boolean.
        E::IsNull(e) | E::IsUnknown(e) => Expr::IsNull {
            expr: boxed(e)?,
            negated: false,
        },
        E::IsNotNull(e) | E::IsNotUnknown(e) => Expr::IsNull {
            expr: boxed(e)?,
            negated: true,
        },
        E::IsTrue(e) => Expr::IsBoolean {
            expr: boxed(e)?,
            value: true,
            negated: false,
        },
        E::IsNotTrue(e) => Expr::IsBoolean {
            expr: boxed(e)?,
            value: true,
            negated: true,
        },
        E::IsFalse(e) => Expr::IsBoolean {
            expr: boxed(e)?,
            value: false,
            negated: false,
        },
        E::IsNotFalse(e) => Expr::IsBoolean {
            expr: boxed(e)?,
            value: false,
            negated: true,
        },
        E::IsDistinctFrom(a, b) => Expr::IsDistinctFrom {
            left: boxed(a)?,
            right: boxed(b)?,
            negated: false,
        },
        E::IsNotDistinctFrom(a, b) => Expr::IsDistinctFrom {
            left: boxed(a)?,
            right: boxed(b)?,
            negated: true,
        },
        E::InList {
            expr,
            list,
            negated,
        } => Expr::InList {
            expr: boxed(expr)?,
            list: list.iter().map(translate_expr).collect::<Result<_>>()?,
            negated: *negated,
        },
        E::Between {
            expr,
            negated,
            low,
            high,
        } => Expr::Between {
            expr: boxed(expr)?,
            low: boxed(low)?,
            high: boxed(high)?,
            negated: *negated,
        },
        E::Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            any: false,
        } => Expr::Like {
            expr: boxed(expr)?,
            pattern: boxed(pattern)?,
            negated: *negated,
            case_insensitive: false,
        },
        E::ILike {
            negated,
            expr,
            pattern,
            escape_char: None,
            any: false,
        } => Expr::Like {
            expr: boxed(expr)?,
            pattern: boxed(pattern)?,
            negated: *negated,
            case_insensitive: true,
        },
        E::BinaryOp { left, op, right } => match regex_operator(op) {
            Some((negated, case_insensitive)) => Expr::Regex {
                expr: boxed(left)?,
                pattern: boxed(right)?,
                negated,
                case_insensitive,
            },
            None => Expr::Binary {
                op: translate_binary_op(op)?,
                left: boxed(left)?,
                right: boxed(right)?,
            },
        },
        // Text compares by bytes, which is what these three collations mean.
        E::Collate { expr, collation } => {
            let name = object_name(collation)?;
            let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
            if !matches!(name, "default" | "C" | "POSIX" | "c" | "posix") {
                return Err(unsupported(format!("the collation {collation}")));
            }
            translate_expr(expr)?
        }
        E::UnaryOp { op, expr: inner } => {
            let op = match op {
                sp::UnaryOperator::Not => UnaryOp::Not,
                sp::UnaryOperator::Minus => UnaryOp::Negate,
                sp::UnaryOperator::Plus => UnaryOp::Plus,
                other => return Err(unsupported(format!("the operator {other}"))),
            };
            // Fold `-<number>` here so that i64::MIN and friends parse as literals.
            if let (UnaryOp::Negate, E::Value(v)) = (op, inner.as_ref()) {
                if let sp::Value::Number(n, _) = &v.value {
                    return number_literal(&format!("-{n}"));
                }
            }
            Expr::Unary {
                op,
                expr: boxed(inner)?,
            }
        }
        E::Cast {
            expr,
            data_type,
            format: None,
            kind,
        } => {
            if matches!(kind, sp::CastKind::TryCast | sp::CastKind::SafeCast) {
                return Err(unsupported("TRY_CAST"));
            }
            if let Some(kind) = object_identifier_type(data_type) {
                return Ok(Expr::ObjectIdentifier {
                    expr: boxed(expr)?,
                    kind,
                });
            }
            Expr::Cast {
                expr: boxed(expr)?,
                data_type: translate_type(data_type)?,
            }
        }
        E::TypedString(typed) => Expr::Cast {
            expr: Box::new(translate_value(&typed.value.value)?),
            data_type: translate_type(&typed.data_type)?,
        },
        E::Function(function) => translate_function(function)?,
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => Expr::Case {
            operand: operand
                .as_deref()
                .map(translate_expr)
                .transpose()?
                .map(Box::new),
            branches: conditions
                .iter()
                .map(|w| Ok((translate_expr(&w.condition)?, translate_expr(&w.result)?)))
                .collect::<Result<_>>()?,
            else_result: else_result
                .as_deref()
                .map(translate_expr)
                .transpose()?
                .map(Box::new),
        },
        E::Subquery(query) => Expr::Subquery(Box::new(translate_query((**query).clone())?)),
        E::Exists { subquery, negated } => Expr::Exists {
            subquery: Box::new(translate_query((**subquery).clone())?),
            negated: *negated,
        },
        E::InSubquery {
            expr,
            subquery,
            negated,
        } => Expr::InSubquery {
            expr: boxed(expr)?,
            subquery: Box::new(translate_query((**subquery).clone())?),
            negated: *negated,
        },
        other => return Err(unsupported(format!("the expression {other}"))),
    })
}

/// Recognizes the regular-expression operators, also as `OPERATOR(pg_catalog.~)`:
/// (negated, case-insensitive).
fn regex_operator(op: &sp::BinaryOperator) -> Option<(bool, bool)> {
    use sp::BinaryOperator as B;
    let symbol = match op {
        B::PGRegexMatch => "~",
        B::PGRegexIMatch => "~*",
        B::PGRegexNotMatch => "!~",
        B::PGRegexNotIMatch => "!~*",
        B::PGCustomBinaryOperator(parts) => match parts.as_slice() {
            [schema, symbol] if schema == "pg_catalog" => symbol.as_str(),
            [symbol] => symbol.as_str(),
            _ => return None,
        },
        _ => return None,
    };
    Some(match symbol {
        "~" => (false, false),
        "~*" => (false, true),
        "!~" => (true, false),
        "!~*" => (true, true),
        _ => return None,
    })
}

fn translate_binary_op(op: &sp::BinaryOperator) -> Result<BinaryOp> {
    use sp::BinaryOperator as B;
    if let B::PGCustomBinaryOperator(parts) = op {
        // OPERATOR(pg_catalog.=) and friends: the schema-qualified spelling of ours.
        if let [schema, symbol] = parts.as_slice() {
            let plain = match symbol.as_str() {
                "=" => Some(B::Eq),
                "<>" | "!=" => Some(B::NotEq),
                "<" => Some(B::Lt),
                "<=" => Some(B::LtEq),
                ">" => Some(B::Gt),
                ">=" => Some(B::GtEq),
                _ => None,
            };
            if let (true, Some(plain)) = (schema == "pg_catalog", plain) {
                return translate_binary_op(&plain);
            }
        }
    }
    Ok(match op {
        B::And => BinaryOp::And,
        B::Or => BinaryOp::Or,
        B::Eq => BinaryOp::Equal,
        B::NotEq => BinaryOp::NotEqual,
        B::Lt => BinaryOp::Less,
        B::LtEq => BinaryOp::LessOrEqual,
        B::Gt => BinaryOp::Greater,
        B::GtEq => BinaryOp::GreaterOrEqual,
        B::Plus => BinaryOp::Add,
        B::Minus => BinaryOp::Subtract,
        B::Multiply => BinaryOp::Multiply,
        B::Divide => BinaryOp::Divide,
        B::Modulo => BinaryOp::Modulo,
        B::StringConcat => BinaryOp::Concat,
        other => return Err(unsupported(format!("the operator {other}"))),
    })
}

/// `left op ANY|ALL (right)`: over an array, or over a subquery for the two forms that
/// are IN and NOT IN.
fn quantified(
    left: &sp::Expr,
    op: &sp::BinaryOperator,
    right: &sp::Expr,
    all: bool,
) -> Result<Expr> {
    let op = translate_binary_op(op)?;
    if !op.is_comparison() {
        return Err(unsupported(format!("{} with ANY or ALL", op.symbol())));
    }
    if let sp::Expr::Subquery(query) = right {
        return match (op, all) {
            (BinaryOp::Equal, false) | (BinaryOp::NotEqual, true) => Ok(Expr::InSubquery {
                expr: boxed(left)?,
                subquery: Box::new(translate_query((**query).clone())?),
                negated: all,
            }),
            _ => Err(unsupported(format!(
                "{} {} (subquery); only = ANY and <> ALL take a subquery",
                op.symbol(),
                if all { "ALL" } else { "ANY" }
            ))),
        };
    }
    Ok(Expr::Quantified {
        left: boxed(left)?,
        op,
        right: boxed(right)?,
        all,
    })
}

fn translate_function(function: &sp::Function) -> Result<Expr> {
    if function.over.is_some() {
        return Err(unsupported("window functions"));
    }
    if function.filter.is_some() || !function.within_group.is_empty() {
        return Err(unsupported("FILTER / WITHIN GROUP"));
    }
    let name = object_name(&function.name)?;
    // Every function lives in pg_catalog, which is always on the search path.
    let name = name
        .strip_prefix("pg_catalog.")
        .unwrap_or(&name)
        .to_string();
    let mut args = Vec::new();
    let mut star = false;
    let mut distinct = false;
    match &function.args {
        sp::FunctionArguments::None => {}
        sp::FunctionArguments::Subquery(query) if name == "array" => {
            return Ok(Expr::ArraySubquery(Box::new(translate_query(
                (**query).clone(),
            )?)))
        }
        sp::FunctionArguments::Subquery(_) => return Err(unsupported("subqueries")),
        sp::FunctionArguments::List(list) => {
            distinct = matches!(
                list.duplicate_treatment,
                Some(sp::DuplicateTreatment::Distinct)
            );
            if !list.clauses.is_empty() {
                return Err(unsupported(format!("the arguments of {name}")));
            }
            for arg in &list.args {
                match arg {
                    sp::FunctionArg::Unnamed(sp::FunctionArgExpr::Expr(e)) => {
                        args.push(translate_expr(e)?)
                    }
                    sp::FunctionArg::Unnamed(sp::FunctionArgExpr::Wildcard) => star = true,
                    _ => return Err(unsupported(format!("the arguments of {name}"))),
                }
            }
        }
    }
    Ok(Expr::Function {
        name,
        args,
        star,
        distinct,
    })
}

fn translate_value(value: &sp::Value) -> Result<Expr> {
    Ok(match value {
        sp::Value::Number(n, _) => return number_literal(n),
        sp::Value::SingleQuotedString(s) | sp::Value::EscapedStringLiteral(s) => {
            Expr::StringLiteral(s.clone())
        }
        sp::Value::DollarQuotedString(s) => Expr::StringLiteral(s.value.clone()),
        sp::Value::Boolean(b) => Expr::Literal(Value::Boolean(*b)),
        sp::Value::Null => Expr::Literal(Value::Null),
        sp::Value::Placeholder(p) => {
            let index = p
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| Error::Syntax {
                    message: format!("bad parameter {p}"),
                    position: None,
                })?;
            Expr::Parameter(index)
        }
        other => return Err(unsupported(format!("the literal {other}"))),
    })
}

/// Integer literals are INTEGER when they fit, else BIGINT; anything with a point or an
/// exponent is DOUBLE PRECISION (PostgreSQL would say NUMERIC, which we do not have yet).
fn number_literal(text: &str) -> Result<Expr> {
    if let Ok(v) = text.parse::<i32>() {
        return Ok(Expr::Literal(Value::Integer(v)));
    }
    if let Ok(v) = text.parse::<i64>() {
        return Ok(Expr::Literal(Value::BigInt(v)));
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(Error::NumericOutOfRange(format!(
            "value \"{text}\" is out of range for type bigint"
        )));
    }
    text.parse::<f64>()
        .map(|v| Expr::Literal(Value::Double(v)))
        .map_err(|_| Error::Syntax {
            message: format!("invalid number {text}"),
            position: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Syntax errors carry SQLSTATE 42601 and a 1-based character position.
    #[test]
    fn syntax_error_position() {
        let err = parse("SELECT 1;\nSELEC x").unwrap_err();
        assert_eq!(err.sqlstate(), "42601");
        assert_eq!(err.position(), Some(11));
    }

    /// ALTER CLUSTER's statements parse to their changes; a clock rate takes any
    /// number, and anything else after SET CLOCK RATE is a syntax error.
    #[test]
    fn alter_cluster_statements() {
        let parsed = parse(
            "ALTER CLUSTER TRANSFER LEADER TO NODE 2 FOR GROUP 1; alter cluster set clock rate 0.25; ALTER CLUSTER SET CLOCK RATE 3",
        )
        .expect("parse");
        assert_eq!(
            parsed,
            vec![
                Statement::AlterCluster(ClusterChange::TransferLeader {
                    to: 2,
                    group: Some(1)
                }),
                Statement::AlterCluster(ClusterChange::ClockRate { rate: 0.25 }),
                Statement::AlterCluster(ClusterChange::ClockRate { rate: 3.0 }),
            ]
        );
        for bad in [
            "ALTER CLUSTER SET CLOCK RATE 'fast'",
            "ALTER CLUSTER SET CLOCK 2",
            "ALTER CLUSTER SET CLOCK RATE",
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.sqlstate(), "42601", "{bad}: {error}");
        }
    }

    /// `WITH (shards = N)` sets the shard count, fillfactor is accepted, and every other
    /// option or clause Tessera would ignore is refused (0A000), bad values with 22023.
    #[test]
    fn table_options_are_acted_on_or_refused() {
        let shards = |sql: &str| match &parse(sql).expect(sql)[0] {
            Statement::CreateTable(create) => create.shards,
            other => panic!("{other:?}"),
        };
        assert_eq!(shards("CREATE TABLE t (a INT) WITH (shards = 8)"), Some(8));
        assert_eq!(
            shards("CREATE TABLE t (a INT) WITH (fillfactor = 100)"),
            None
        );
        assert_eq!(shards("CREATE TABLE t (a INT)"), None);
        for (bad, code) in [
            (
                "CREATE TABLE t (a INT) WITH (autovacuum_enabled = false)",
                "0A000",
            ),
            ("CREATE TEMPORARY TABLE t (a INT)", "0A000"),
            ("CREATE UNLOGGED TABLE t (a INT)", "0A000"),
            ("CREATE TABLE t (a INT) PARTITION BY RANGE (a)", "0A000"),
            ("CREATE TABLE t (a INT) WITH (shards = 0)", "22023"),
            ("CREATE TABLE t (a INT) WITH (shards = 100000)", "22023"),
            ("CREATE TABLE t (a INT) WITH (shards = 'many')", "22023"),
            ("CREATE TABLE t (a INT) WITH (fillfactor = 5)", "22023"),
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.sqlstate(), code, "{bad}: {error}");
        }
    }

    /// Unsupported SQL is refused with 0A000, not silently misread.
    #[test]
    fn unsupported_is_clear() {
        let err = parse("SELECT * FROM a RIGHT JOIN b ON a.x = b.x").unwrap_err();
        assert_eq!(err.sqlstate(), "0A000");
        assert!(err.to_string().contains("RIGHT JOIN"), "{err}");
    }

    /// Identifiers fold to lower case unless quoted; literals get PostgreSQL's types.
    #[test]
    fn identifiers_and_literals() {
        let statements =
            parse("SELECT Abc, \"Abc\", 1, 3000000000, 1.5, 'x', -9223372036854775808").unwrap();
        let Statement::Select(select) = &statements[0] else {
            panic!("not a select")
        };
        let exprs: Vec<_> = select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::Expression { expr, .. } => expr.clone(),
                _ => panic!("unexpected item"),
            })
            .collect();
        assert_eq!(
            exprs[0],
            Expr::Column {
                table: None,
                name: "abc".into()
            }
        );
        assert_eq!(
            exprs[1],
            Expr::Column {
                table: None,
                name: "Abc".into()
            }
        );
        assert_eq!(exprs[2], Expr::Literal(Value::Integer(1)));
        assert_eq!(exprs[3], Expr::Literal(Value::BigInt(3_000_000_000)));
        assert_eq!(exprs[4], Expr::Literal(Value::Double(1.5)));
        assert_eq!(exprs[5], Expr::StringLiteral("x".into()));
        assert_eq!(exprs[6], Expr::Literal(Value::BigInt(i64::MIN)));
    }
}
