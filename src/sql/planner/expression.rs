//! Bound expressions: names resolved to column positions, types checked, literals coerced.
//!
//! Binding follows PostgreSQL's typing where it matters to users: a string literal takes
//! the type of what it is compared with (`int_col = '5'` works, `int_col = 'x'` is 22P02),
//! numbers promote (integer + bigint is bigint, integer / integer truncates), operators
//! between unrelated types are 42883, and a non-boolean WHERE is 42804.

use super::super::ast::{BinaryOp, Expr, Select, SelectItem, UnaryOp};
use crate::error::{Error, Result};
use crate::types::aggregate::Combinable;
use crate::types::{DataType, ElementType, Value, TEXT};
use std::fmt;

/// A scalar function we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarFunction {
    /// abs(x).
    Abs,
    /// lower(text).
    Lower,
    /// upper(text).
    Upper,
    /// length(text) / char_length(text): characters.
    Length,
    /// coalesce(a, b, ...).
    Coalesce,
    /// nullif(a, b).
    NullIf,
    /// round(x): nearest integer, halves away from zero.
    Round,
    /// floor(x).
    Floor,
    /// ceil(x) / ceiling(x).
    Ceil,
    /// `array[index]`: the element, NULL outside the array.
    Subscript,
    /// array_to_string(array, separator [, null_text]).
    ArrayToString,
    /// array_upper(array, dimension).
    ArrayUpper,
    /// array_lower(array, dimension).
    ArrayLower,
    /// array_length(array, dimension).
    ArrayLength,
    /// cardinality(array): the number of elements.
    Cardinality,
    /// `array || array`: the elements of both (a NULL array counts as empty).
    ArrayConcat,
}

impl ScalarFunction {
    fn from_name(name: &str) -> Option<ScalarFunction> {
        Some(match name {
            "abs" => ScalarFunction::Abs,
            "lower" => ScalarFunction::Lower,
            "upper" => ScalarFunction::Upper,
            "length" | "char_length" | "character_length" => ScalarFunction::Length,
            "coalesce" => ScalarFunction::Coalesce,
            "nullif" => ScalarFunction::NullIf,
            "round" => ScalarFunction::Round,
            "floor" => ScalarFunction::Floor,
            "ceil" | "ceiling" => ScalarFunction::Ceil,
            "array_to_string" => ScalarFunction::ArrayToString,
            "array_upper" => ScalarFunction::ArrayUpper,
            "array_lower" => ScalarFunction::ArrayLower,
            "array_length" => ScalarFunction::ArrayLength,
            "cardinality" => ScalarFunction::Cardinality,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            ScalarFunction::Abs => "abs",
            ScalarFunction::Lower => "lower",
            ScalarFunction::Upper => "upper",
            ScalarFunction::Length => "length",
            ScalarFunction::Coalesce => "coalesce",
            ScalarFunction::NullIf => "nullif",
            ScalarFunction::Round => "round",
            ScalarFunction::Floor => "floor",
            ScalarFunction::Ceil => "ceil",
            ScalarFunction::Subscript => "subscript",
            ScalarFunction::ArrayToString => "array_to_string",
            ScalarFunction::ArrayUpper => "array_upper",
            ScalarFunction::ArrayLower => "array_lower",
            ScalarFunction::ArrayLength => "array_length",
            ScalarFunction::Cardinality => "cardinality",
            ScalarFunction::ArrayConcat => "array_cat",
        }
    }

    /// Whether the function takes an array first (bound by [`super::array`]).
    pub fn takes_array(self) -> bool {
        matches!(
            self,
            ScalarFunction::ArrayToString
                | ScalarFunction::ArrayUpper
                | ScalarFunction::ArrayLower
                | ScalarFunction::ArrayLength
                | ScalarFunction::Cardinality
        )
    }
}

/// The aggregate functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFunction {
    /// count(*) or count(x).
    Count,
    /// sum(x).
    Sum,
    /// min(x).
    Min,
    /// max(x).
    Max,
    /// avg(x).
    Avg,
    /// string_agg(text, separator): the non-NULL values joined, each after the first
    /// preceded by its row's separator.
    StringAgg,
    /// array_agg(x): every value, NULLs included, as an array.
    ArrayAgg,
}

impl AggregateFunction {
    /// The aggregate as one that can be computed per shard and combined, if it is.
    pub fn combinable(self) -> Option<Combinable> {
        match self {
            AggregateFunction::Count => Some(Combinable::Count),
            AggregateFunction::Sum => Some(Combinable::Sum),
            AggregateFunction::Min => Some(Combinable::Min),
            AggregateFunction::Max => Some(Combinable::Max),
            AggregateFunction::Avg => Some(Combinable::Avg),
            AggregateFunction::StringAgg | AggregateFunction::ArrayAgg => None,
        }
    }

    /// Recognizes an aggregate by name.
    pub fn from_name(name: &str) -> Option<AggregateFunction> {
        Some(match name {
            "count" => AggregateFunction::Count,
            "sum" => AggregateFunction::Sum,
            "min" => AggregateFunction::Min,
            "max" => AggregateFunction::Max,
            "avg" => AggregateFunction::Avg,
            "string_agg" => AggregateFunction::StringAgg,
            "array_agg" => AggregateFunction::ArrayAgg,
            _ => return None,
        })
    }

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunction::Count => "count",
            AggregateFunction::Sum => "sum",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
            AggregateFunction::Avg => "avg",
            AggregateFunction::StringAgg => "string_agg",
            AggregateFunction::ArrayAgg => "array_agg",
        }
    }

    /// Result type for an argument type. SUM of integers is BIGINT and AVG is DOUBLE
    /// PRECISION: PostgreSQL answers NUMERIC there, a type Tessera does not have yet.
    pub fn result_type(self, argument: Option<DataType>) -> Result<DataType> {
        let numeric_only = |name: &str| -> Result<DataType> {
            match argument {
                Some(t) if t.is_numeric() => Ok(t),
                None => Ok(DataType::Double),
                Some(t) => Err(Error::UndefinedFunction(format!(
                    "function {name}({}) does not exist",
                    t.sql_name()
                ))),
            }
        };
        Ok(match self {
            AggregateFunction::Count => DataType::BigInt,
            AggregateFunction::Sum => match numeric_only("sum")? {
                t if t.is_integer() => DataType::BigInt,
                t => t,
            },
            AggregateFunction::Avg => {
                numeric_only("avg")?;
                DataType::Double
            }
            AggregateFunction::Min | AggregateFunction::Max => argument.unwrap_or(TEXT),
            AggregateFunction::StringAgg => match argument {
                Some(t) if !t.is_text() => {
                    return Err(Error::UndefinedFunction(format!(
                        "function string_agg({}, text) does not exist",
                        t.sql_name()
                    )))
                }
                _ => TEXT,
            },
            AggregateFunction::ArrayAgg => match argument.map(ElementType::of) {
                None => DataType::Array(ElementType::Text),
                Some(Some(element)) => DataType::Array(element),
                Some(None) => {
                    return Err(Error::FeatureNotSupported(
                        "array_agg of arrays (multi-dimensional arrays)".into(),
                    ))
                }
            },
        })
    }
}

/// PostgreSQL's catalog functions that tools call with object ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogFunction {
    /// `pg_get_userbyid(role)`: a role's name.
    UserById,
    /// `pg_table_is_visible(relation)`: whether the search path finds it (every relation
    /// lives in `public`, which is on it).
    TableIsVisible,
    /// `format_type(type, modifier)`: a type's SQL name.
    FormatType,
    /// `pg_get_expr(expression, relation [, pretty])`: an expression's text (Tessera's
    /// catalog columns hold the text already).
    GetExpr,
    /// `pg_get_indexdef(index [, column, pretty])`: CREATE INDEX, or one column's name.
    IndexDefinition,
    /// `pg_get_constraintdef(constraint [, pretty])`: `PRIMARY KEY (...)`, `UNIQUE (...)`.
    ConstraintDefinition,
    /// `pg_relation_is_publishable(relation)`: whether logical replication could publish
    /// it (true for tables, false for indexes).
    RelationIsPublishable,
    /// `pg_get_statisticsobjdef_columns(statistics)`: an extended statistics object's
    /// columns (there are none in Tessera).
    StatisticsColumns,
    /// `obj_description(object, catalog)` and `col_description(table, column)`: the
    /// comment on an object (Tessera has no COMMENT ON yet, so always NULL).
    Description,
    /// `pg_encoding_to_char(encoding)`: an encoding's name (Tessera's text is UTF-8).
    EncodingName,
    /// `oid::regclass` and the other object-identifier casts: the object's name (the
    /// number itself, as text, when no such object exists, as PostgreSQL prints it).
    ObjectName(crate::sql::ast::ObjectKind),
}

impl CatalogFunction {
    fn from_name(name: &str) -> Option<CatalogFunction> {
        Some(match name {
            "pg_get_userbyid" => CatalogFunction::UserById,
            "pg_table_is_visible" => CatalogFunction::TableIsVisible,
            "format_type" => CatalogFunction::FormatType,
            "pg_get_expr" => CatalogFunction::GetExpr,
            "pg_get_indexdef" => CatalogFunction::IndexDefinition,
            "pg_get_constraintdef" => CatalogFunction::ConstraintDefinition,
            "pg_relation_is_publishable" => CatalogFunction::RelationIsPublishable,
            "pg_get_statisticsobjdef_columns" => CatalogFunction::StatisticsColumns,
            "pg_encoding_to_char" => CatalogFunction::EncodingName,
            "obj_description" | "col_description" | "shobj_description" => {
                CatalogFunction::Description
            }
            _ => return None,
        })
    }

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            CatalogFunction::UserById => "pg_get_userbyid",
            CatalogFunction::TableIsVisible => "pg_table_is_visible",
            CatalogFunction::FormatType => "format_type",
            CatalogFunction::GetExpr => "pg_get_expr",
            CatalogFunction::IndexDefinition => "pg_get_indexdef",
            CatalogFunction::ConstraintDefinition => "pg_get_constraintdef",
            CatalogFunction::RelationIsPublishable => "pg_relation_is_publishable",
            CatalogFunction::StatisticsColumns => "pg_get_statisticsobjdef_columns",
            CatalogFunction::Description => "obj_description",
            CatalogFunction::EncodingName => "pg_encoding_to_char",
            CatalogFunction::ObjectName(kind) => super::pg_catalog::object_type_name(kind),
        }
    }

    /// Positions of the arguments that are object ids or numbers.
    fn integer_arguments(self) -> &'static [usize] {
        match self {
            CatalogFunction::GetExpr => &[1],
            CatalogFunction::FormatType | CatalogFunction::IndexDefinition => &[0, 1],
            _ => &[0],
        }
    }

    /// Argument counts accepted, and the result type.
    fn signature(self) -> (std::ops::RangeInclusive<usize>, DataType) {
        match self {
            CatalogFunction::UserById => (1..=1, TEXT),
            CatalogFunction::TableIsVisible => (1..=1, DataType::Boolean),
            CatalogFunction::FormatType => (2..=2, TEXT),
            CatalogFunction::GetExpr => (2..=3, TEXT),
            CatalogFunction::IndexDefinition => (1..=3, TEXT),
            CatalogFunction::ConstraintDefinition => (1..=2, TEXT),
            CatalogFunction::ObjectName(_) => (1..=1, TEXT),
            CatalogFunction::RelationIsPublishable => (1..=1, DataType::Boolean),
            CatalogFunction::StatisticsColumns => (1..=1, TEXT),
            CatalogFunction::Description => (1..=2, TEXT),
            CatalogFunction::EncodingName => (1..=1, TEXT),
        }
    }
}

/// A compiled regular expression; two are equal when their sources are.
#[derive(Clone, Debug)]
pub struct CompiledRegex(pub std::sync::Arc<regex::Regex>);

impl PartialEq for CompiledRegex {
    fn eq(&self, other: &CompiledRegex) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl CompiledRegex {
    /// Compiles `pattern` (PostgreSQL's advanced regular expressions share the syntax of
    /// the common cases: anchors, classes, groups, alternation, repetition).
    pub fn new(pattern: &str, case_insensitive: bool) -> Result<CompiledRegex> {
        regex::RegexBuilder::new(pattern)
            .case_insensitive(case_insensitive)
            .size_limit(1 << 20)
            .build()
            .map(|r| CompiledRegex(std::sync::Arc::new(r)))
            .map_err(|e| Error::InvalidRegularExpression(e.to_string()))
    }
}

/// What a subquery's rows mean to the expression around it.
#[derive(Clone, Debug, PartialEq)]
pub enum SubqueryKind {
    /// `(SELECT ...)`: the one value of its one row; NULL when it has no rows.
    Scalar,
    /// `EXISTS (SELECT ...)`: whether it has a row.
    Exists,
    /// `operand IN (SELECT ...)`: three-valued membership of the operand.
    In(Box<Expression>),
    /// `ARRAY(SELECT ...)`: the one column's values as an array.
    Array(ElementType),
}

/// An expression ready to evaluate against a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Expression {
    /// A constant (after parameter substitution and folding).
    Constant(Value),
    /// The value at a position of the input row.
    Column {
        /// Position in the input row.
        index: usize,
        /// Name, for EXPLAIN and result headers.
        name: String,
        /// Type.
        data_type: DataType,
    },
    /// NOT.
    Not(Box<Expression>),
    /// AND (three-valued).
    And(Box<Expression>, Box<Expression>),
    /// OR (three-valued).
    Or(Box<Expression>, Box<Expression>),
    /// A comparison; operands have comparable types.
    Compare(BinaryOp, Box<Expression>, Box<Expression>),
    /// `+ - * / %` with the result type.
    Arithmetic(BinaryOp, Box<Expression>, Box<Expression>, DataType),
    /// Unary minus.
    Negate(Box<Expression>),
    /// `||`.
    Concat(Box<Expression>, Box<Expression>),
    /// IS NULL.
    IsNull(Box<Expression>),
    /// IS DISTINCT FROM (never NULL).
    IsDistinctFrom(Box<Expression>, Box<Expression>),
    /// IS TRUE / IS FALSE (never NULL).
    IsBoolean(Box<Expression>, bool),
    /// IN (list), three-valued.
    InList(Box<Expression>, Vec<Expression>),
    /// LIKE / ILIKE.
    Like {
        /// Operand.
        expr: Box<Expression>,
        /// Pattern.
        pattern: Box<Expression>,
        /// ILIKE.
        case_insensitive: bool,
    },
    /// `~` / `~*`: whether the text matches a POSIX regular expression.
    Regex {
        /// Operand.
        expr: Box<Expression>,
        /// The regular expression.
        pattern: Box<Expression>,
        /// `~*`.
        case_insensitive: bool,
        /// The pattern compiled once at plan time, when it is a constant.
        compiled: Option<CompiledRegex>,
    },
    /// CAST.
    Cast(Box<Expression>, DataType),
    /// `ARRAY[...]`, elements already of the element type.
    MakeArray(Vec<Expression>, ElementType),
    /// `left op ANY (right)` or, when `all`, `left op ALL (right)`; `right` is an array.
    Quantified {
        /// The comparison.
        op: BinaryOp,
        /// Compared value.
        left: Box<Expression>,
        /// The array.
        right: Box<Expression>,
        /// ALL rather than ANY.
        all: bool,
    },
    /// A scalar function.
    Function(ScalarFunction, Vec<Expression>, Option<DataType>),
    /// A column of an enclosing query's row: what a correlated subquery reads from the
    /// query around it. The executor replaces it by the value before running the
    /// subquery for one outer row.
    OuterColumn {
        /// How many query levels out (1: the query directly around the subquery).
        depth: usize,
        /// Position in that query's row.
        index: usize,
        /// Name, for EXPLAIN.
        name: String,
        /// Type.
        data_type: DataType,
    },
    /// A subquery. It needs the transaction to run, so the executor runs it and puts its
    /// value in its place before the expression is evaluated.
    Subquery {
        /// The subquery's plan.
        plan: Box<super::plan::Plan>,
        /// What its rows mean.
        kind: SubqueryKind,
        /// Result type (NULL-typed for a scalar subquery of an untyped NULL).
        data_type: Option<DataType>,
    },
    /// A function answered from the catalog as it was when the statement was planned.
    Catalog {
        /// Which function.
        function: CatalogFunction,
        /// Its arguments.
        arguments: Vec<Expression>,
        /// Answers by (object id, second argument or 0).
        entries: std::sync::Arc<std::collections::BTreeMap<(i64, i64), Value>>,
    },
    /// A sequence function (see [`super::sequence`]): never folded, run per evaluation.
    Sequence {
        /// Which function.
        function: super::sequence::SequenceFunction,
        /// Its arguments (the sequence's name first).
        arguments: Vec<Expression>,
        /// The session's handle on sequences.
        access: super::sequence::SequenceAccess,
    },
    /// CASE WHEN ... (a `CASE x WHEN` form is bound to comparisons).
    Case {
        /// WHEN condition, THEN result.
        branches: Vec<(Expression, Expression)>,
        /// ELSE result (NULL when absent).
        else_result: Box<Expression>,
        /// Result type.
        data_type: Option<DataType>,
    },
}

impl Expression {
    /// The expression's type; `None` when it is an untyped NULL.
    pub fn data_type(&self) -> Option<DataType> {
        match self {
            Expression::Constant(v) => v.data_type(),
            Expression::Column { data_type, .. } | Expression::OuterColumn { data_type, .. } => {
                Some(*data_type)
            }
            Expression::Subquery {
                kind: SubqueryKind::Exists | SubqueryKind::In(_),
                ..
            } => Some(DataType::Boolean),
            Expression::Subquery { data_type, .. } => *data_type,
            Expression::Not(_)
            | Expression::And(..)
            | Expression::Or(..)
            | Expression::Compare(..)
            | Expression::IsNull(_)
            | Expression::IsDistinctFrom(..)
            | Expression::IsBoolean(..)
            | Expression::InList(..)
            | Expression::Regex { .. }
            | Expression::Quantified { .. }
            | Expression::Like { .. } => Some(DataType::Boolean),
            Expression::MakeArray(_, element) => Some(DataType::Array(*element)),
            Expression::Arithmetic(_, _, _, t) | Expression::Cast(_, t) => Some(*t),
            Expression::Negate(e) => e.data_type(),
            Expression::Concat(..) => Some(TEXT),
            Expression::Function(_, _, t) | Expression::Case { data_type: t, .. } => *t,
            Expression::Catalog { function, .. } => Some(function.signature().1),
            Expression::Sequence { .. } => Some(DataType::BigInt),
        }
    }

    /// Whether the expression reads no column and runs no subquery (so it can be folded
    /// to a constant at plan time).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |e| {
            if matches!(
                e,
                Expression::Column { .. }
                    | Expression::OuterColumn { .. }
                    | Expression::Subquery { .. }
                    | Expression::Sequence { .. }
            ) {
                constant = false;
            }
        });
        constant
    }

    /// Whether evaluating the expression runs a subquery.
    pub fn has_subquery(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expression::Subquery { .. }));
        found
    }

    /// Visits this expression and every sub-expression.
    pub fn walk(&self, visit: &mut dyn FnMut(&Expression)) {
        visit(self);
        match self {
            Expression::Constant(_)
            | Expression::Column { .. }
            | Expression::OuterColumn { .. }
            | Expression::Subquery {
                kind: SubqueryKind::Scalar | SubqueryKind::Exists | SubqueryKind::Array(_),
                ..
            } => {}
            Expression::Subquery {
                kind: SubqueryKind::In(operand),
                ..
            } => operand.walk(visit),
            Expression::Not(e)
            | Expression::Negate(e)
            | Expression::IsNull(e)
            | Expression::IsBoolean(e, _)
            | Expression::Cast(e, _) => e.walk(visit),
            Expression::And(a, b)
            | Expression::Or(a, b)
            | Expression::Compare(_, a, b)
            | Expression::Arithmetic(_, a, b, _)
            | Expression::Concat(a, b)
            | Expression::IsDistinctFrom(a, b)
            | Expression::Quantified {
                left: a, right: b, ..
            } => {
                a.walk(visit);
                b.walk(visit);
            }
            Expression::MakeArray(items, _) => items.iter().for_each(|i| i.walk(visit)),
            Expression::InList(e, list) => {
                e.walk(visit);
                list.iter().for_each(|i| i.walk(visit));
            }
            Expression::Like { expr, pattern, .. } | Expression::Regex { expr, pattern, .. } => {
                expr.walk(visit);
                pattern.walk(visit);
            }
            Expression::Function(_, args, _)
            | Expression::Sequence {
                arguments: args, ..
            }
            | Expression::Catalog {
                arguments: args, ..
            } => args.iter().for_each(|a| a.walk(visit)),
            Expression::Case {
                branches,
                else_result,
                ..
            } => {
                for (when, then) in branches {
                    when.walk(visit);
                    then.walk(visit);
                }
                else_result.walk(visit);
            }
        }
    }

    /// Splits a conjunction into its terms (`a AND b AND c` -> `[a, b, c]`).
    pub fn conjuncts(&self) -> Vec<&Expression> {
        match self {
            Expression::And(a, b) => {
                let mut terms = a.conjuncts();
                terms.extend(b.conjuncts());
                terms
            }
            other => vec![other],
        }
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expression::Constant(Value::Null) => write!(f, "NULL"),
            Expression::Constant(v @ Value::Text(_)) => {
                write!(f, "'{}'", v.to_string().replace('\'', "''"))
            }
            Expression::Constant(v @ Value::Bytea(_)) => write!(f, "'{v}'::bytea"),
            Expression::Constant(v) => write!(f, "{v}"),
            Expression::Column { name, .. } | Expression::OuterColumn { name, .. } => {
                write!(f, "{name}")
            }
            Expression::Subquery { kind, .. } => match kind {
                SubqueryKind::Scalar => write!(f, "(SubPlan)"),
                SubqueryKind::Exists => write!(f, "EXISTS(SubPlan)"),
                SubqueryKind::In(operand) => write!(f, "({operand} IN (SubPlan))"),
                SubqueryKind::Array(_) => write!(f, "ARRAY(SubPlan)"),
            },
            Expression::MakeArray(items, _) => {
                let items: Vec<String> = items.iter().map(ToString::to_string).collect();
                write!(f, "ARRAY[{}]", items.join(", "))
            }
            Expression::Quantified {
                op,
                left,
                right,
                all,
            } => write!(
                f,
                "({left} {} {}({right}))",
                op.symbol(),
                if *all { "ALL " } else { "ANY " }
            ),
            Expression::Function(ScalarFunction::Subscript, args, _) if args.len() == 2 => {
                write!(f, "({})[{}]", args[0], args[1])
            }
            Expression::Not(e) => write!(f, "NOT ({e})"),
            Expression::And(a, b) => write!(f, "({a} AND {b})"),
            Expression::Or(a, b) => write!(f, "({a} OR {b})"),
            Expression::Compare(op, a, b) | Expression::Arithmetic(op, a, b, _) => {
                write!(f, "({a} {} {b})", op.symbol())
            }
            Expression::Negate(e) => write!(f, "(-{e})"),
            Expression::Concat(a, b) => write!(f, "({a} || {b})"),
            Expression::IsNull(e) => write!(f, "({e} IS NULL)"),
            Expression::IsDistinctFrom(a, b) => write!(f, "({a} IS DISTINCT FROM {b})"),
            Expression::IsBoolean(e, v) => {
                write!(f, "({e} IS {})", if *v { "TRUE" } else { "FALSE" })
            }
            Expression::InList(e, list) => {
                let items: Vec<String> = list.iter().map(ToString::to_string).collect();
                write!(f, "({e} IN ({}))", items.join(", "))
            }
            Expression::Like {
                expr,
                pattern,
                case_insensitive,
            } => {
                write!(
                    f,
                    "({expr} {} {pattern})",
                    if *case_insensitive { "ILIKE" } else { "LIKE" }
                )
            }
            Expression::Regex {
                expr,
                pattern,
                case_insensitive,
                ..
            } => write!(
                f,
                "({expr} {} {pattern})",
                if *case_insensitive { "~*" } else { "~" }
            ),
            Expression::Cast(e, t) => write!(f, "({e})::{t}"),
            Expression::Function(function, args, _) => {
                let items: Vec<String> = args.iter().map(ToString::to_string).collect();
                write!(f, "{}({})", function.name(), items.join(", "))
            }
            Expression::Catalog {
                function,
                arguments,
                ..
            } => {
                let items: Vec<String> = arguments.iter().map(ToString::to_string).collect();
                write!(f, "{}({})", function.name(), items.join(", "))
            }
            Expression::Sequence {
                function,
                arguments,
                ..
            } => {
                let items: Vec<String> = arguments.iter().map(ToString::to_string).collect();
                write!(f, "{}({})", function.name(), items.join(", "))
            }
            Expression::Case {
                branches,
                else_result,
                ..
            } => {
                write!(f, "CASE")?;
                for (when, then) in branches {
                    write!(f, " WHEN {when} THEN {then}")?;
                }
                write!(f, " ELSE {else_result} END")
            }
        }
    }
}

/// One column visible to expressions: its name, the table it comes from, its type.
#[derive(Clone, Debug)]
pub struct ScopeColumn {
    /// Column name.
    pub name: String,
    /// Table name or alias, when the column comes from a table.
    pub table: Option<String>,
    /// Type.
    pub data_type: DataType,
}

/// Aggregation context: expressions after GROUP BY see group keys and aggregate results.
pub struct Grouping<'a> {
    /// GROUP BY expressions as written, matched structurally.
    pub group_exprs: &'a [Expr],
    /// Their bound types.
    pub group_types: Vec<DataType>,
    /// Aggregate calls as written, matched structurally.
    pub aggregates: &'a [Expr],
    /// Their result types.
    pub aggregate_types: Vec<DataType>,
}

/// What names mean while binding.
pub struct Scope<'a> {
    /// Columns of the input row, by position.
    pub columns: Vec<ScopeColumn>,
    /// Values of `$1`, `$2`, ...
    pub params: &'a [Value],
    /// Set when binding expressions evaluated after aggregation.
    pub grouping: Option<Grouping<'a>>,
    /// Where we are, for error messages such as "aggregate functions are not allowed in WHERE".
    pub clause: &'static str,
    /// Set when describing a statement without parameter values: `$n` binds to NULL
    /// and the type it is used as is recorded here.
    pub inferred: Option<&'a ParameterTypes>,
    /// Who is asking, for `current_user` and `current_database()`.
    pub identity: &'a Identity,
    /// The planner, for subqueries; `None` where subqueries cannot appear.
    pub planner: Option<&'a super::Planner<'a>>,
    /// The scope of the query around this one, for a subquery's correlated references.
    pub outer: Option<&'a Scope<'a>>,
}

/// Who runs a statement: what `current_user` and `current_database()` answer. A server
/// session takes both from the client's startup message; an embedded one uses
/// `tessera`, the name of the one database a data directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub user: String,
    /// The database name the client asked for.
    pub database: String,
}

impl Default for Identity {
    fn default() -> Identity {
        Identity {
            user: "tessera".into(),
            database: "tessera".into(),
        }
    }
}

/// `version()`'s answer: PostgreSQL 15's shape, which drivers parse, naming Tessera.
pub fn version_string() -> String {
    format!(
        "PostgreSQL 15.0 (Tessera {}) on {}-linux, compiled by rustc",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// The functions that answer from the session rather than from data; `None` for any
/// other name.
fn session_function(name: &str, args: &[Expr], scope: &Scope) -> Result<Option<Value>> {
    let value = match name {
        "version" => version_string(),
        "current_user" | "session_user" | "current_role" => scope.identity.user.clone(),
        "current_database" | "current_catalog" => scope.identity.database.clone(),
        "current_schema" => "public".to_string(),
        _ => return Ok(None),
    };
    if !args.is_empty() {
        return Err(Error::UndefinedFunction(format!(
            "function {name}() takes no arguments"
        )));
    }
    Ok(Some(Value::Text(value)))
}

/// Parameter types inferred while binding a statement whose parameters have no values
/// yet (the extended query protocol's Describe): each `$n` takes the type of what it is
/// compared with, assigned to or combined with, as in PostgreSQL.
#[derive(Debug, Default)]
pub struct ParameterTypes {
    types: std::cell::RefCell<Vec<Option<DataType>>>,
}

impl ParameterTypes {
    /// Notes that `$n` exists, without a type yet.
    pub fn note(&self, n: usize) {
        let mut types = self.types.borrow_mut();
        if types.len() < n {
            types.resize(n, None);
        }
    }

    /// Records that `$n` is used as a `data_type` (the first use decides).
    pub fn record(&self, n: usize, data_type: DataType) {
        self.note(n);
        let mut types = self.types.borrow_mut();
        if types[n - 1].is_none() {
            types[n - 1] = Some(data_type);
        }
    }

    /// The type decided for `$n` so far.
    pub fn get(&self, n: usize) -> Option<DataType> {
        self.types.borrow().get(n - 1).copied().flatten()
    }

    /// The types by position; `None` where nothing decided the type.
    pub fn into_types(self) -> Vec<Option<DataType>> {
        self.types.into_inner()
    }
}

impl Scope<'_> {
    fn resolve(&self, table: Option<&str>, name: &str) -> Result<(usize, &ScopeColumn)> {
        if let Some(table) = table {
            if !self
                .columns
                .iter()
                .any(|c| c.table.as_deref() == Some(table))
            {
                return Err(Error::UndefinedTable(format!(
                    "{table}\" (missing FROM-clause entry for table \"{table}"
                )));
            }
        }
        let mut found =
            self.columns.iter().enumerate().filter(|(_, c)| {
                c.name == name && (table.is_none() || c.table.as_deref() == table)
            });
        let first = found.next();
        if found.next().is_some() {
            return Err(Error::AmbiguousColumn(name.to_string()));
        }
        first.ok_or_else(|| {
            let qualified = table
                .map(|t| format!("{t}.{name}"))
                .unwrap_or_else(|| name.to_string());
            Error::UndefinedColumn(qualified)
        })
    }
}

/// Whether an expression as written contains an aggregate call.
pub fn contains_aggregate(expr: &Expr) -> bool {
    let mut found = false;
    visit_ast(expr, &mut |e| {
        if let Expr::Function { name, .. } = e {
            if AggregateFunction::from_name(name).is_some() {
                found = true;
            }
        }
    });
    found
}

/// Collects the distinct aggregate calls of an expression as written.
pub fn collect_aggregates(expr: &Expr, into: &mut Vec<Expr>) {
    visit_ast(expr, &mut |e| {
        if let Expr::Function { name, .. } = e {
            if AggregateFunction::from_name(name).is_some() && !into.contains(e) {
                into.push(e.clone());
            }
        }
    });
}

/// Visits an AST expression and its sub-expressions, not descending into aggregate calls.
fn visit_ast(expr: &Expr, visit: &mut dyn FnMut(&Expr)) {
    visit(expr);
    match expr {
        Expr::Function { name, args, .. } => {
            if AggregateFunction::from_name(name).is_none() {
                args.iter().for_each(|a| visit_ast(a, visit));
            }
        }
        Expr::Unary { expr, .. }
        | Expr::IsNull { expr, .. }
        | Expr::IsBoolean { expr, .. }
        | Expr::ObjectIdentifier { expr, .. }
        | Expr::Cast { expr, .. } => visit_ast(expr, visit),
        Expr::Array(items) => items.iter().for_each(|i| visit_ast(i, visit)),
        Expr::Subscript {
            expr: left,
            index: right,
        }
        | Expr::Quantified { left, right, .. }
        | Expr::Binary { left, right, .. }
        | Expr::IsDistinctFrom { left, right, .. } => {
            visit_ast(left, visit);
            visit_ast(right, visit);
        }
        Expr::InList { expr, list, .. } => {
            visit_ast(expr, visit);
            list.iter().for_each(|i| visit_ast(i, visit));
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            visit_ast(expr, visit);
            visit_ast(low, visit);
            visit_ast(high, visit);
        }
        Expr::Like { expr, pattern, .. } | Expr::Regex { expr, pattern, .. } => {
            visit_ast(expr, visit);
            visit_ast(pattern, visit);
        }
        Expr::Case {
            operand,
            branches,
            else_result,
        } => {
            if let Some(o) = operand {
                visit_ast(o, visit);
            }
            for (when, then) in branches {
                visit_ast(when, visit);
                visit_ast(then, visit);
            }
            if let Some(e) = else_result {
                visit_ast(e, visit);
            }
        }
        // A subquery's aggregates are its own; only an IN operand belongs to this query.
        Expr::InSubquery { expr, .. } => visit_ast(expr, visit),
        Expr::Subquery(_)
        | Expr::ArraySubquery(_)
        | Expr::Exists { .. }
        | Expr::Literal(_)
        | Expr::StringLiteral(_)
        | Expr::Parameter(_)
        | Expr::Column { .. } => {}
    }
}

/// The column header PostgreSQL would give an unaliased select item.
pub fn default_column_name(expr: &Expr) -> String {
    match expr {
        Expr::Column { name, .. } => name.clone(),
        Expr::Function { name, .. } => name.clone(),
        Expr::Cast { data_type, expr } => match expr.as_ref() {
            Expr::Column { name, .. } => name.clone(),
            _ => match data_type {
                DataType::Text {
                    max_length: Some(_),
                } => "varchar".into(),
                DataType::Double => "float8".into(),
                DataType::Real => "float4".into(),
                DataType::SmallInt => "int2".into(),
                DataType::Integer => "int4".into(),
                DataType::BigInt => "int8".into(),
                DataType::Boolean => "bool".into(),
                // PostgreSQL names an array cast after the element type's short name.
                DataType::Array(element) => match element.data_type() {
                    DataType::Array(_) => "array".into(),
                    scalar => default_column_name(&Expr::Cast {
                        expr: Box::new(Expr::Literal(Value::Null)),
                        data_type: scalar,
                    }),
                },
                other => other.sql_name(),
            },
        },
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Array(_) | Expr::ArraySubquery(_) => "array".into(),
        Expr::Subscript { expr, .. } => default_column_name(expr),
        Expr::ObjectIdentifier { expr, kind } => match expr.as_ref() {
            Expr::Column { name, .. } => name.clone(),
            _ => super::pg_catalog::object_type_name(*kind).into(),
        },
        // PostgreSQL names a scalar subquery after its one output column.
        Expr::Subquery(select) => match select.projection.as_slice() {
            [SelectItem::Expression {
                alias: Some(alias), ..
            }] => alias.clone(),
            [SelectItem::Expression { expr, alias: None }] => default_column_name(expr),
            _ => "?column?".into(),
        },
        _ => "?column?".into(),
    }
}

/// Binds an expression in a scope.
pub fn bind(expr: &Expr, scope: &Scope) -> Result<Expression> {
    if let Some(grouping) = &scope.grouping {
        if let Some(i) = grouping.group_exprs.iter().position(|g| g == expr) {
            return Ok(Expression::Column {
                index: i,
                name: expr_label(expr),
                data_type: grouping.group_types[i],
            });
        }
        if let Some(i) = grouping.aggregates.iter().position(|a| a == expr) {
            let index = grouping.group_exprs.len() + i;
            return Ok(Expression::Column {
                index,
                name: expr_label(expr),
                data_type: grouping.aggregate_types[i],
            });
        }
    }
    match expr {
        Expr::Literal(v) => Ok(Expression::Constant(v.clone())),
        Expr::StringLiteral(s) => Ok(Expression::Constant(Value::Text(s.clone()))),
        Expr::Parameter(n) => match scope.inferred {
            // While describing, a parameter whose type is already known (declared by
            // the client, or decided by an earlier use) is a NULL of that type.
            Some(inferred) => {
                inferred.note(*n);
                Ok(match inferred.get(*n) {
                    Some(data_type) => {
                        Expression::Cast(Box::new(Expression::Constant(Value::Null)), data_type)
                    }
                    None => Expression::Constant(Value::Null),
                })
            }
            None => scope
                .params
                .get(n - 1)
                .cloned()
                .map(Expression::Constant)
                .ok_or_else(|| Error::UndefinedParameter(format!("there is no parameter ${n}"))),
        },
        Expr::Column { table, name } => {
            if scope.grouping.is_some() {
                let qualified = table
                    .as_ref()
                    .map(|t| format!("{t}.{name}"))
                    .unwrap_or_else(|| name.clone());
                scope.resolve(table.as_deref(), name)?;
                return Err(Error::Grouping(format!(
                    "column \"{qualified}\" must appear in the GROUP BY clause or be used in an aggregate function"
                )));
            }
            let (index, column) = match scope.resolve(table.as_deref(), name) {
                Ok(found) => found,
                Err(error) => return bind_outer_column(table.as_deref(), name, scope, error),
            };
            // Over several tables, EXPLAIN shows which one a column comes from.
            let joined = scope.columns.iter().any(|c| c.table != column.table);
            let name = match (&column.table, joined) {
                (Some(table), true) => format!("{table}.{}", column.name),
                _ => column.name.clone(),
            };
            Ok(Expression::Column {
                index,
                name,
                data_type: column.data_type,
            })
        }
        Expr::Unary {
            op: UnaryOp::Not,
            expr,
        } => Ok(Expression::Not(Box::new(bind_boolean(expr, scope, "NOT")?))),
        Expr::Unary {
            op: UnaryOp::Plus,
            expr,
        } => {
            let bound = bind(expr, scope)?;
            require_numeric(&bound, "+")?;
            Ok(bound)
        }
        Expr::Unary {
            op: UnaryOp::Negate,
            expr,
        } => {
            let bound = bind(expr, scope)?;
            require_numeric(&bound, "-")?;
            Ok(Expression::Negate(Box::new(bound)))
        }
        Expr::Binary { op, left, right } => bind_binary(*op, left, right, scope),
        Expr::IsNull { expr, negated } => {
            let test = Expression::IsNull(Box::new(bind(expr, scope)?));
            Ok(if *negated {
                Expression::Not(Box::new(test))
            } else {
                test
            })
        }
        Expr::IsBoolean {
            expr,
            value,
            negated,
        } => {
            let test =
                Expression::IsBoolean(Box::new(bind_boolean(expr, scope, "IS TRUE")?), *value);
            Ok(if *negated {
                Expression::Not(Box::new(test))
            } else {
                test
            })
        }
        Expr::IsDistinctFrom {
            left,
            right,
            negated,
        } => {
            let (l, r) = bind_comparable(left, right, scope, "IS DISTINCT FROM")?;
            let test = Expression::IsDistinctFrom(Box::new(l), Box::new(r));
            Ok(if *negated {
                Expression::Not(Box::new(test))
            } else {
                test
            })
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let operand = bind(expr, scope)?;
            let mut items = Vec::with_capacity(list.len());
            for item in list {
                items.push(coerce_against(&operand, item, scope, "=")?);
            }
            let test = Expression::InList(Box::new(operand), items);
            Ok(if *negated {
                Expression::Not(Box::new(test))
            } else {
                test
            })
        }
        Expr::Between {
            expr,
            low,
            high,
            negated,
        } => {
            let lower = bind_binary(BinaryOp::GreaterOrEqual, expr, low, scope)?;
            let upper = bind_binary(BinaryOp::LessOrEqual, expr, high, scope)?;
            let test = Expression::And(Box::new(lower), Box::new(upper));
            Ok(if *negated {
                Expression::Not(Box::new(test))
            } else {
                test
            })
        }
        Expr::Like {
            expr,
            pattern,
            negated,
            case_insensitive,
        } => {
            let operand = bind(expr, scope)?;
            let pattern = bind(pattern, scope)?;
            for side in [&operand, &pattern] {
                if let Some(t) = side.data_type() {
                    if !t.is_text() {
                        return Err(Error::UndefinedFunction(format!(
                            "operator does not exist: {} ~~ {}",
                            operand.data_type().unwrap_or(TEXT).sql_name(),
                            t.sql_name()
                        )));
                    }
                }
            }
            let test = Expression::Like {
                expr: Box::new(operand),
                pattern: Box::new(pattern),
                case_insensitive: *case_insensitive,
            };
            Ok(if *negated {
                Expression::Not(Box::new(test))
            } else {
                test
            })
        }
        Expr::Regex {
            expr,
            pattern,
            negated,
            case_insensitive,
        } => {
            let operand = coerce_to(bind(expr, scope)?, expr, TEXT, scope)?;
            let pattern = coerce_to(bind(pattern, scope)?, pattern, TEXT, scope)?;
            for side in [&operand, &pattern] {
                if let Some(t) = side.data_type().filter(|t| !t.is_text()) {
                    return Err(Error::UndefinedFunction(format!(
                        "operator does not exist: {} ~ {}",
                        operand.data_type().unwrap_or(TEXT).sql_name(),
                        t.sql_name()
                    )));
                }
            }
            let compiled = match &pattern {
                Expression::Constant(Value::Text(source)) => {
                    Some(CompiledRegex::new(source, *case_insensitive)?)
                }
                _ => None,
            };
            let test = Expression::Regex {
                expr: Box::new(operand),
                pattern: Box::new(pattern),
                case_insensitive: *case_insensitive,
                compiled,
            };
            Ok(negate_if(test, *negated))
        }
        Expr::Cast { expr, data_type } => {
            Ok(Expression::Cast(Box::new(bind(expr, scope)?), *data_type))
        }
        Expr::Function {
            name,
            args,
            star,
            distinct,
        } => {
            if AggregateFunction::from_name(name).is_some() {
                return Err(Error::Grouping(if scope.grouping.is_some() {
                    "aggregate function calls cannot be nested".to_string()
                } else {
                    format!("aggregate functions are not allowed in {}", scope.clause)
                }));
            }
            if *star || *distinct {
                return Err(Error::Syntax {
                    message: format!("{name}(*) or DISTINCT used with a non-aggregate function"),
                    position: None,
                });
            }
            if let Some(value) = session_function(name, args, scope)? {
                return Ok(Expression::Constant(value));
            }
            if let Some(call) = super::sequence::bind_call(name, args, scope)? {
                return Ok(call);
            }
            bind_function(name, args, scope)
        }
        Expr::Case {
            operand,
            branches,
            else_result,
        } => bind_case(operand.as_deref(), branches, else_result.as_deref(), scope),
        Expr::Subquery(select) => {
            let (plan, data_type) = plan_subquery(select, scope)?;
            Ok(Expression::Subquery {
                plan: Box::new(plan),
                kind: SubqueryKind::Scalar,
                data_type: Some(data_type),
            })
        }
        Expr::Exists { subquery, negated } => {
            let planner = subquery_planner(scope)?;
            let (plan, _) = planner.plan_select(subquery)?;
            let test = Expression::Subquery {
                plan: Box::new(plan),
                kind: SubqueryKind::Exists,
                data_type: Some(DataType::Boolean),
            };
            Ok(negate_if(test, *negated))
        }
        Expr::Array(items) => super::array::bind_constructor(items, scope),
        Expr::ArraySubquery(select) => super::array::bind_subquery(select, scope),
        Expr::Subscript { expr, index } => super::array::bind_subscript(expr, index, scope),
        Expr::Quantified {
            left,
            op,
            right,
            all,
        } => super::array::bind_quantified(left, *op, right, *all, scope),
        Expr::ObjectIdentifier { expr, kind } => {
            super::pg_catalog::bind_object_identifier(expr, *kind, scope)
        }
        Expr::InSubquery {
            expr,
            subquery,
            negated,
        } => {
            let (plan, data_type) = plan_subquery(subquery, scope)?;
            let operand = coerce_to(bind(expr, scope)?, expr, data_type, scope)?;
            let probe = Expression::Constant(Value::Null);
            check_comparable(&operand, &Expression::Cast(Box::new(probe), data_type), "=")?;
            let test = Expression::Subquery {
                plan: Box::new(plan),
                kind: SubqueryKind::In(Box::new(operand)),
                data_type: Some(DataType::Boolean),
            };
            Ok(negate_if(test, *negated))
        }
    }
}

fn negate_if(test: Expression, negated: bool) -> Expression {
    if negated {
        Expression::Not(Box::new(test))
    } else {
        test
    }
}

/// A planner for a subquery of `scope`: its names resolve in the subquery first, then in
/// the queries around it.
fn subquery_planner<'s>(scope: &'s Scope<'s>) -> Result<super::Planner<'s>> {
    let planner = scope
        .planner
        .ok_or_else(|| Error::FeatureNotSupported(format!("subqueries in {}", scope.clause)))?;
    Ok(planner.nested(scope))
}

/// Plans a subquery that must return one column, giving its plan and that column's type.
pub(super) fn plan_subquery(
    select: &Select,
    scope: &Scope,
) -> Result<(super::plan::Plan, DataType)> {
    let (plan, columns) = subquery_planner(scope)?.plan_select(select)?;
    match columns.as_slice() {
        [column] => Ok((plan, column.data_type)),
        _ => Err(Error::Syntax {
            message: "subquery must return only one column".into(),
            position: None,
        }),
    }
}

/// Resolves a name missing from `scope` in the queries around it (a correlated
/// reference), or returns the original error when no enclosing query has it.
fn bind_outer_column(
    table: Option<&str>,
    name: &str,
    scope: &Scope,
    error: Error,
) -> Result<Expression> {
    if !matches!(error, Error::UndefinedColumn(_) | Error::UndefinedTable(_)) {
        return Err(error);
    }
    let mut outer = scope.outer;
    let mut depth = 1;
    while let Some(enclosing) = outer {
        match enclosing.resolve(table, name) {
            Ok((index, column)) => {
                if enclosing.grouping.is_some() {
                    return Err(Error::FeatureNotSupported(
                        "a subquery reading a column of an aggregating query".into(),
                    ));
                }
                let name = match &column.table {
                    Some(table) => format!("{table}.{}", column.name),
                    None => column.name.clone(),
                };
                return Ok(Expression::OuterColumn {
                    depth,
                    index,
                    name,
                    data_type: column.data_type,
                });
            }
            Err(Error::UndefinedColumn(_) | Error::UndefinedTable(_)) => {
                outer = enclosing.outer;
                depth += 1;
            }
            Err(other) => return Err(other),
        }
    }
    Err(error)
}

/// A short label for a grouped expression, shown by EXPLAIN.
fn expr_label(expr: &Expr) -> String {
    match expr {
        Expr::Column { name, .. } => name.clone(),
        Expr::Function {
            name, star: true, ..
        } => format!("{name}(*)"),
        Expr::Function { name, args, .. } if args.len() == 1 => {
            format!("{name}({})", expr_label(&args[0]))
        }
        other => default_column_name(other),
    }
}

fn require_numeric(expr: &Expression, op: &str) -> Result<()> {
    match expr.data_type() {
        Some(t) if !t.is_numeric() => Err(Error::UndefinedFunction(format!(
            "operator does not exist: {op} {}",
            t.sql_name()
        ))),
        _ => Ok(()),
    }
}

/// Binds an expression that must be boolean (WHERE, HAVING, AND, NOT, ...).
pub fn bind_boolean(expr: &Expr, scope: &Scope, context: &str) -> Result<Expression> {
    let bound = coerce_to(bind(expr, scope)?, expr, DataType::Boolean, scope)?;
    match bound.data_type() {
        None | Some(DataType::Boolean) => Ok(bound),
        Some(other) => Err(Error::DatatypeMismatch(format!(
            "argument of {context} must be type boolean, not type {}",
            other.sql_name()
        ))),
    }
}

/// Casts a string literal (PostgreSQL's "unknown" type) to `target`; other expressions
/// are returned unchanged.
pub(super) fn coerce_to(
    bound: Expression,
    written: &Expr,
    target: DataType,
    scope: &Scope,
) -> Result<Expression> {
    if let (Expr::Parameter(n), Some(inferred)) = (written, scope.inferred) {
        inferred.record(*n, target);
    }
    let is_untyped = matches!(written, Expr::StringLiteral(_) | Expr::Parameter(_));
    match &bound {
        Expression::Constant(v @ Value::Text(_)) if is_untyped && !target.is_text() => {
            Ok(Expression::Constant(v.clone().cast(target)?))
        }
        _ => Ok(bound),
    }
}

/// Binds `right` against an already bound `left`, coercing an untyped literal to the
/// left side's type, and checks the two can meet under `op`.
fn coerce_against(left: &Expression, right: &Expr, scope: &Scope, op: &str) -> Result<Expression> {
    let right_bound = bind(right, scope)?;
    let right_bound = match left.data_type() {
        Some(t) => coerce_to(right_bound, right, t, scope)?,
        None => right_bound,
    };
    check_comparable(left, &right_bound, op)?;
    Ok(right_bound)
}

fn bind_comparable(
    left: &Expr,
    right: &Expr,
    scope: &Scope,
    op: &str,
) -> Result<(Expression, Expression)> {
    let l = bind(left, scope)?;
    let r = bind(right, scope)?;
    let l = match r.data_type() {
        Some(t) if !matches!(right, Expr::StringLiteral(_) | Expr::Parameter(_)) => {
            coerce_to(l, left, t, scope)?
        }
        _ => l,
    };
    let r = match l.data_type() {
        Some(t) => coerce_to(r, right, t, scope)?,
        None => r,
    };
    check_comparable(&l, &r, op)?;
    Ok((l, r))
}

pub(super) fn check_comparable(left: &Expression, right: &Expression, op: &str) -> Result<()> {
    match (left.data_type(), right.data_type()) {
        (Some(a), Some(b)) => {
            let ok = (a.is_numeric() && b.is_numeric()) || (a.is_text() && b.is_text()) || a == b;
            if ok {
                Ok(())
            } else {
                Err(Error::UndefinedFunction(format!(
                    "operator does not exist: {} {op} {}",
                    a.sql_name(),
                    b.sql_name()
                )))
            }
        }
        _ => Ok(()),
    }
}

fn bind_binary(op: BinaryOp, left: &Expr, right: &Expr, scope: &Scope) -> Result<Expression> {
    match op {
        BinaryOp::And => Ok(Expression::And(
            Box::new(bind_boolean(left, scope, "AND")?),
            Box::new(bind_boolean(right, scope, "AND")?),
        )),
        BinaryOp::Or => Ok(Expression::Or(
            Box::new(bind_boolean(left, scope, "OR")?),
            Box::new(bind_boolean(right, scope, "OR")?),
        )),
        BinaryOp::Concat => {
            let (l, r) = (bind(left, scope)?, bind(right, scope)?);
            match (l.data_type(), r.data_type()) {
                (Some(DataType::Array(_)), _) | (_, Some(DataType::Array(_))) => {
                    super::array::bind_concatenation(l, left, r, right, scope)
                }
                _ => Ok(Expression::Concat(Box::new(l), Box::new(r))),
            }
        }
        op if op.is_comparison() => {
            let (l, r) = bind_comparable(left, right, scope, op.symbol())?;
            Ok(Expression::Compare(op, Box::new(l), Box::new(r)))
        }
        op => {
            let (l, r) = bind_comparable(left, right, scope, op.symbol())?;
            let result = match (l.data_type(), r.data_type()) {
                (Some(a), Some(b)) => DataType::numeric_common(a, b).ok_or_else(|| {
                    Error::UndefinedFunction(format!(
                        "operator does not exist: {} {} {}",
                        a.sql_name(),
                        op.symbol(),
                        b.sql_name()
                    ))
                })?,
                (Some(t), None) | (None, Some(t)) if t.is_numeric() => t,
                (None, None) => DataType::Integer,
                (Some(t), None) | (None, Some(t)) => {
                    return Err(Error::UndefinedFunction(format!(
                        "operator does not exist: {} {} unknown",
                        t.sql_name(),
                        op.symbol()
                    )))
                }
            };
            if op == BinaryOp::Modulo && result.is_float() {
                return Err(Error::UndefinedFunction(
                    "operator does not exist: double precision % double precision".into(),
                ));
            }
            Ok(Expression::Arithmetic(op, Box::new(l), Box::new(r), result))
        }
    }
}

fn bind_function(name: &str, args: &[Expr], scope: &Scope) -> Result<Expression> {
    let bound: Vec<Expression> = args.iter().map(|a| bind(a, scope)).collect::<Result<_>>()?;
    let types: Vec<String> = bound
        .iter()
        .map(|a| {
            a.data_type()
                .map(|t| t.sql_name())
                .unwrap_or_else(|| "unknown".into())
        })
        .collect();
    let no_such = || {
        Error::UndefinedFunction(format!(
            "function {name}({}) does not exist",
            types.join(", ")
        ))
    };
    if let Some(function) = CatalogFunction::from_name(name) {
        let (arity, _) = function.signature();
        // Object ids are integers here; a quoted id ('16384') is one too.
        let mut bound = bound;
        for &position in function.integer_arguments() {
            if let (Some(argument), Some(written)) = (bound.get_mut(position), args.get(position)) {
                let taken = std::mem::replace(argument, Expression::Constant(Value::Null));
                *argument = coerce_to(taken, written, DataType::Integer, scope)?;
                if argument.data_type().is_some_and(|t| !t.is_integer()) {
                    return Err(no_such());
                }
            }
        }
        if !arity.contains(&bound.len()) {
            return Err(no_such());
        }
        let catalog = scope.planner.map(|p| p.catalog()).ok_or_else(no_such)?;
        return Ok(Expression::Catalog {
            function,
            arguments: bound,
            entries: std::sync::Arc::new(super::pg_catalog::function_entries(function, catalog)),
        });
    }
    let function = ScalarFunction::from_name(name).ok_or_else(no_such)?;
    if function.takes_array() {
        return super::array::bind_function(function, bound, args, scope, no_such);
    }
    let first = bound.first().and_then(Expression::data_type);
    let result_type = match function {
        ScalarFunction::Abs
        | ScalarFunction::Round
        | ScalarFunction::Floor
        | ScalarFunction::Ceil => {
            if bound.len() != 1 || first.is_some_and(|t| !t.is_numeric()) {
                return Err(no_such());
            }
            first
        }
        ScalarFunction::Lower | ScalarFunction::Upper | ScalarFunction::Length => {
            if bound.len() != 1 || first.is_some_and(|t| !t.is_text()) {
                return Err(no_such());
            }
            if function == ScalarFunction::Length {
                Some(DataType::Integer)
            } else {
                Some(TEXT)
            }
        }
        ScalarFunction::Coalesce | ScalarFunction::NullIf => {
            if bound.is_empty() || (function == ScalarFunction::NullIf && bound.len() != 2) {
                return Err(no_such());
            }
            let result = common_type(&bound, args, "COALESCE")?;
            let coerced = coerce_all(bound, args, result, scope)?;
            return Ok(Expression::Function(function, coerced, result));
        }
        other => {
            return Err(Error::Internal(format!(
                "{other:?} is bound elsewhere, not by name"
            )))
        }
    };
    Ok(Expression::Function(function, bound, result_type))
}

/// The one type a list of expressions (CASE results, COALESCE arguments) resolves to.
pub(super) fn common_type(
    exprs: &[Expression],
    written: &[Expr],
    context: &str,
) -> Result<Option<DataType>> {
    let mut result: Option<DataType> = None;
    for (expr, ast) in exprs.iter().zip(written) {
        let Some(t) = expr.data_type() else { continue };
        if matches!(ast, Expr::StringLiteral(_)) && result.is_some() {
            continue;
        }
        result = Some(match result {
            None => t,
            Some(r) if r == t => r,
            Some(r) => match DataType::numeric_common(r, t) {
                Some(common) => common,
                None if r.is_text() && t.is_text() => crate::types::TEXT,
                None => {
                    return Err(Error::DatatypeMismatch(format!(
                        "{context} types {} and {} cannot be matched",
                        r.sql_name(),
                        t.sql_name()
                    )))
                }
            },
        });
    }
    Ok(result)
}

pub(super) fn coerce_all(
    exprs: Vec<Expression>,
    written: &[Expr],
    target: Option<DataType>,
    scope: &Scope,
) -> Result<Vec<Expression>> {
    let Some(target) = target else {
        return Ok(exprs);
    };
    exprs
        .into_iter()
        .zip(written)
        .map(|(e, ast)| {
            let e = coerce_to(e, ast, target, scope)?;
            Ok(match e.data_type() {
                Some(t) if t != target => Expression::Cast(Box::new(e), target),
                _ => e,
            })
        })
        .collect()
}

fn bind_case(
    operand: Option<&Expr>,
    branches: &[(Expr, Expr)],
    else_result: Option<&Expr>,
    scope: &Scope,
) -> Result<Expression> {
    let mut conditions = Vec::with_capacity(branches.len());
    for (when, _) in branches {
        conditions.push(match operand {
            Some(operand) => bind_binary(BinaryOp::Equal, operand, when, scope)?,
            None => bind_boolean(when, scope, "CASE/WHEN")?,
        });
    }
    let mut results_written: Vec<Expr> = branches.iter().map(|(_, then)| then.clone()).collect();
    let mut results: Vec<Expression> = results_written
        .iter()
        .map(|r| bind(r, scope))
        .collect::<Result<_>>()?;
    let else_written = else_result.cloned().unwrap_or(Expr::Literal(Value::Null));
    results.push(bind(&else_written, scope)?);
    results_written.push(else_written);
    let data_type = common_type(&results, &results_written, "CASE")?;
    let mut results = coerce_all(results, &results_written, data_type, scope)?;
    let else_bound = results.pop().unwrap_or(Expression::Constant(Value::Null));
    Ok(Expression::Case {
        branches: conditions.into_iter().zip(results).collect(),
        else_result: Box::new(else_bound),
        data_type,
    })
}

/// Binds a value for a column on INSERT or UPDATE: untyped literals take the column's
/// type, and the expression's type must be assignable to the column (42804 otherwise),
/// checked now so the error comes even when no row is written.
pub fn bind_for_column(
    expr: &Expr,
    scope: &Scope,
    target: DataType,
    column: &str,
) -> Result<Expression> {
    let bound = coerce_to(bind(expr, scope)?, expr, target, scope)?;
    if let Some(source) = bound.data_type() {
        let assignable = source == target
            || (source.is_numeric() && target.is_numeric())
            || (source.is_text() && target.is_text());
        if !assignable {
            return Err(Error::DatatypeMismatch(format!(
                "column \"{column}\" is of type {} but expression is of type {}",
                target.sql_name(),
                source.sql_name()
            )));
        }
    }
    Ok(bound)
}
