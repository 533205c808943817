//! Tessera's own statement types: the subset of SQL we support, in a shape the planner
//! can consume without knowing sqlparser's (large, dialect-spanning) AST.

use crate::types::{DataType, Value};

/// One SQL statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SAVEPOINT name: a point inside the block to roll back to.
    Savepoint(String),
    /// ROLLBACK TO [SAVEPOINT] name: undoes what followed the savepoint (which stays)
    /// and recovers a failed block.
    RollbackToSavepoint(String),
    /// RELEASE [SAVEPOINT] name: forgets the savepoint and those after it, keeping
    /// their work.
    ReleaseSavepoint(String),
    /// CREATE TABLE.
    CreateTable(CreateTable),
    /// DROP TABLE.
    DropTable {
        /// Tables to drop.
        names: Vec<String>,
        /// IF EXISTS.
        if_exists: bool,
    },
    /// VACUUM or ANALYZE: accepted for PostgreSQL tools (pgbench runs them); Tessera
    /// keeps no planner statistics, and old versions are for garbage collection.
    Maintenance {
        /// Which command.
        command: Maintenance,
        /// The tables named (all when empty).
        tables: Vec<String>,
    },
    /// TRUNCATE [TABLE] name, ...: every row of the tables goes, all at once.
    Truncate {
        /// The tables.
        names: Vec<String>,
        /// RESTART IDENTITY: the tables' owned sequences would start again; refused
        /// (0A000) where a table owns one, for now.
        restart_identity: bool,
    },
    /// CREATE [UNIQUE] INDEX.
    CreateIndex {
        /// Index name; generated from table and columns when omitted.
        name: Option<String>,
        /// Indexed table.
        table: String,
        /// Indexed columns.
        columns: Vec<String>,
        /// UNIQUE.
        unique: bool,
        /// IF NOT EXISTS.
        if_not_exists: bool,
    },
    /// DROP INDEX.
    DropIndex {
        /// Indexes to drop.
        names: Vec<String>,
        /// IF EXISTS.
        if_exists: bool,
    },
    /// INSERT.
    Insert(Insert),
    /// UPDATE.
    Update(Update),
    /// DELETE.
    Delete(Delete),
    /// SELECT.
    Select(Box<Select>),
    /// EXPLAIN of another statement.
    Explain(Box<Statement>),
    /// SET name = value.
    Set {
        /// Setting name, lower-cased.
        name: String,
        /// The value as text; `None` for DEFAULT.
        value: Option<String>,
    },
    /// SHOW name.
    Show {
        /// Setting name, lower-cased.
        name: String,
    },
    /// SHOW SHARDS [FOR table]: where each shard of a table (or of every table) lives.
    ShowShards {
        /// The table, or every table when `None`.
        table: Option<String>,
    },
    /// ALTER CLUSTER: a membership change, or a test fault (Tessera's own statement).
    AlterCluster(ClusterChange),
    /// CREATE SEQUENCE.
    CreateSequence {
        /// Sequence name.
        name: String,
        /// IF NOT EXISTS.
        if_not_exists: bool,
        /// The options given.
        options: DeclaredOptions,
        /// `OWNED BY table.column`.
        owned_by: Option<(String, String)>,
    },
    /// ALTER SEQUENCE.
    AlterSequence {
        /// Sequence name.
        name: String,
        /// IF EXISTS.
        if_exists: bool,
        /// The options changed.
        options: DeclaredOptions,
        /// `RESTART [WITH n]`: `Some(None)` restarts at the start value.
        restart: Option<Option<i64>>,
        /// `OWNED BY table.column` (`Some(None)`: `OWNED BY NONE`).
        owned_by: Option<Option<(String, String)>>,
    },
    /// DROP SEQUENCE.
    DropSequence {
        /// Sequences to drop.
        names: Vec<String>,
        /// IF EXISTS.
        if_exists: bool,
    },
    /// COPY ... FROM STDIN / TO STDOUT.
    Copy(Copy),
}

/// COPY: rows from the client into a table, or a table's or query's rows out to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Copy {
    /// What is read or written.
    pub relation: CopyRelation,
    /// FROM STDIN or TO STDOUT.
    pub direction: CopyDirection,
    /// The format and its options, checked.
    pub options: CopyOptions,
}

/// What a COPY reads into or writes out.
#[derive(Clone, Debug, PartialEq)]
pub enum CopyRelation {
    /// A table, with the columns named (all visible ones when `None`).
    Table {
        /// Table name.
        name: String,
        /// The column list.
        columns: Option<Vec<String>>,
    },
    /// `COPY (query) TO STDOUT`.
    Query(Box<Select>),
}

pub use crate::sql::copy::{CopyDirection, CopyOptions};

pub use crate::catalog::sequence::DeclaredOptions;

pub use crate::replica::cluster::ClusterChange;

impl Statement {
    /// Whether the statement changes the schema (such statements commit on their own).
    pub fn is_ddl(&self) -> bool {
        matches!(
            self,
            Statement::CreateTable(_)
                | Statement::DropTable { .. }
                | Statement::Truncate { .. }
                | Statement::CreateIndex { .. }
                | Statement::DropIndex { .. }
                | Statement::CreateSequence { .. }
                | Statement::AlterSequence { .. }
                | Statement::DropSequence { .. }
        )
    }
}

/// A maintenance command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maintenance {
    /// VACUUM.
    Vacuum,
    /// ANALYZE.
    Analyze,
}

/// CREATE TABLE.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateTable {
    /// Table name.
    pub name: String,
    /// Column definitions.
    pub columns: Vec<ColumnDefinition>,
    /// Table-level PRIMARY KEY columns, if declared there.
    pub primary_key: Option<Vec<String>>,
    /// Table-level UNIQUE constraints: (constraint name, columns).
    pub unique: Vec<(Option<String>, Vec<String>)>,
    /// IF NOT EXISTS.
    pub if_not_exists: bool,
    /// `WITH (shards = N)`: how many shards the hash space is split into; `None` takes
    /// the deployment's default, which grows with the cluster.
    pub shards: Option<u16>,
}

/// One column of CREATE TABLE.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDefinition {
    /// Column name.
    pub name: String,
    /// Declared type.
    pub data_type: DataType,
    /// NOT NULL (also implied by PRIMARY KEY).
    pub not_null: bool,
    /// DEFAULT expression.
    pub default: Option<Expr>,
    /// The DEFAULT expression's SQL text, as the catalog keeps a default that is not a
    /// constant.
    pub default_sql: Option<String>,
    /// Column-level PRIMARY KEY.
    pub primary_key: bool,
    /// Column-level UNIQUE.
    pub unique: bool,
    /// A SERIAL type or an identity column: values from a sequence of its own.
    pub generated: Option<GeneratedKey>,
}

/// A column whose values come from a sequence created with it.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedKey {
    /// `GENERATED ... AS IDENTITY`; `None` for a SERIAL type.
    pub identity: Option<crate::catalog::IdentityKind>,
    /// The sequence's options (an identity's `(START WITH ...)`), its type the column's.
    pub options: DeclaredOptions,
}

/// INSERT.
#[derive(Clone, Debug, PartialEq)]
pub struct Insert {
    /// Target table.
    pub table: String,
    /// Explicit column list, if any.
    pub columns: Option<Vec<String>>,
    /// Where the rows come from.
    pub source: InsertSource,
    /// `INSERT INTO table AS alias`: the name RETURNING and ON CONFLICT use for it.
    pub alias: Option<String>,
    /// ON CONFLICT, if given.
    pub on_conflict: Option<OnConflict>,
    /// RETURNING items, computed from each row written; empty without RETURNING.
    pub returning: Vec<SelectItem>,
}

/// INSERT's ON CONFLICT clause: what to do with a row whose key or unique value is
/// already taken.
#[derive(Clone, Debug, PartialEq)]
pub struct OnConflict {
    /// Which constraint's conflicts are handled.
    pub target: ConflictTarget,
    /// What is done about them.
    pub action: ConflictAction,
}

/// The constraint an ON CONFLICT clause handles.
#[derive(Clone, Debug, PartialEq)]
pub enum ConflictTarget {
    /// No target (DO NOTHING only): any unique constraint.
    Any,
    /// `(columns)`: the primary key or unique index over exactly these columns.
    Columns(Vec<String>),
    /// `ON CONSTRAINT name`.
    Constraint(String),
}

/// ON CONFLICT's action.
#[derive(Clone, Debug, PartialEq)]
pub enum ConflictAction {
    /// DO NOTHING: the row is skipped.
    Nothing,
    /// DO UPDATE SET ... [WHERE ...]: the existing row is updated, with `excluded`
    /// naming the row proposed for insertion.
    Update {
        /// `column = expression` pairs.
        assignments: Vec<(String, Expr)>,
        /// WHERE: rows it does not hold for are left as they are.
        filter: Option<Expr>,
    },
}

/// UPDATE.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// Target table.
    pub table: String,
    /// `UPDATE table [AS] alias`: the name the statement uses for it.
    pub alias: Option<String>,
    /// `column = expression` pairs.
    pub assignments: Vec<(String, Expr)>,
    /// UPDATE ... FROM: other tables joined to the target by WHERE.
    pub from: Option<FromItem>,
    /// WHERE.
    pub filter: Option<Expr>,
    /// RETURNING items, computed from each row as updated; empty without RETURNING.
    pub returning: Vec<SelectItem>,
}

/// DELETE.
#[derive(Clone, Debug, PartialEq)]
pub struct Delete {
    /// Target table.
    pub table: String,
    /// `DELETE FROM table [AS] alias`: the name the statement uses for it.
    pub alias: Option<String>,
    /// DELETE ... USING: other tables joined to the target by WHERE.
    pub using: Option<FromItem>,
    /// WHERE.
    pub filter: Option<Expr>,
    /// RETURNING items, computed from each row as it was; empty without RETURNING.
    pub returning: Vec<SelectItem>,
}

/// The rows an INSERT writes.
#[derive(Clone, Debug, PartialEq)]
pub enum InsertSource {
    /// VALUES lists; `None` marks a DEFAULT item.
    Values(Vec<Vec<Option<Expr>>>),
    /// INSERT ... SELECT.
    Select(Box<Select>),
    /// DEFAULT VALUES.
    DefaultValues,
}

/// SELECT, or a set operation (UNION, INTERSECT, EXCEPT) of two queries when
/// `set_operation` is present: then only ORDER BY, LIMIT and OFFSET apply on top of it
/// and the other clauses are empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Select {
    /// DISTINCT.
    pub distinct: bool,
    /// The select list.
    pub projection: Vec<SelectItem>,
    /// FROM: one item, comma-separated items being cross joins.
    pub from: Option<FromItem>,
    /// WHERE.
    pub filter: Option<Expr>,
    /// GROUP BY.
    pub group_by: Vec<Expr>,
    /// HAVING.
    pub having: Option<Expr>,
    /// ORDER BY.
    pub order_by: Vec<OrderItem>,
    /// LIMIT.
    pub limit: Option<Expr>,
    /// OFFSET.
    pub offset: Option<Expr>,
    /// `left UNION|INTERSECT|EXCEPT [ALL] right`, whose rows this query returns.
    pub set_operation: Option<SetOperation>,
}

/// Two queries combined row by row.
#[derive(Clone, Debug, PartialEq)]
pub struct SetOperation {
    /// How the rows are combined.
    pub operator: SetOperator,
    /// ALL: keep duplicates (counted, for INTERSECT and EXCEPT).
    pub all: bool,
    /// Left query; its column names name the result.
    pub left: Box<Select>,
    /// Right query, with as many columns as the left.
    pub right: Box<Select>,
}

/// The set operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOperator {
    /// Rows of either side.
    Union,
    /// Rows of both sides.
    Intersect,
    /// Rows of the left side that are not in the right.
    Except,
}

impl SetOperator {
    /// The operator as SQL writes it.
    pub fn keyword(self) -> &'static str {
        match self {
            SetOperator::Union => "UNION",
            SetOperator::Intersect => "INTERSECT",
            SetOperator::Except => "EXCEPT",
        }
    }
}

/// An item of FROM: a table, a subquery, a set-returning function, or two items joined.
#[derive(Clone, Debug, PartialEq)]
pub enum FromItem {
    /// A table or view.
    Table(TableReference),
    /// `(SELECT ...) AS alias [(columns)]`: a derived table.
    Subquery {
        /// The query.
        query: Box<Select>,
        /// Its name in this query (PostgreSQL 15 requires one).
        alias: String,
        /// New names for its first columns, if given.
        columns: Vec<String>,
    },
    /// `generate_series(...) [AS alias [(column)]]` and other set-returning functions.
    Function {
        /// Function name, lower-cased.
        name: String,
        /// Arguments.
        args: Vec<Expr>,
        /// Alias, if given (it also names the one column when no column alias is).
        alias: Option<String>,
        /// Column alias, if given.
        columns: Vec<String>,
    },
    /// `left JOIN right ON condition` (or a cross join, which has no condition).
    Join {
        /// Left side.
        left: Box<FromItem>,
        /// Right side.
        right: Box<FromItem>,
        /// Which rows the join keeps.
        kind: JoinKind,
        /// ON condition; `None` for a cross join.
        on: Option<Expr>,
    },
}

/// Which rows a join keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    /// Every pair of rows (a comma in FROM, or CROSS JOIN).
    Cross,
    /// Pairs for which the condition holds.
    Inner,
    /// Inner pairs, plus each left row without a match, its right side NULL.
    Left,
}

/// A table in FROM.
#[derive(Clone, Debug, PartialEq)]
pub struct TableReference {
    /// Table name.
    pub name: String,
    /// Alias, if given.
    pub alias: Option<String>,
}

/// One item of a select list.
#[derive(Clone, Debug, PartialEq)]
pub enum SelectItem {
    /// `*`.
    Wildcard,
    /// `t.*`.
    QualifiedWildcard(String),
    /// An expression with an optional alias.
    Expression {
        /// The expression.
        expr: Expr,
        /// AS alias.
        alias: Option<String>,
    },
}

/// One ORDER BY item.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderItem {
    /// Sort expression (or output column name or position).
    pub expr: Expr,
    /// DESC.
    pub descending: bool,
    /// NULLS FIRST / LAST; by default NULLs sort as if larger than every value.
    pub nulls_first: Option<bool>,
}

/// An expression as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A literal value; string literals are [`Expr::StringLiteral`].
    Literal(Value),
    /// A string literal, whose type comes from its context as in PostgreSQL.
    StringLiteral(String),
    /// `$n` (1-based).
    Parameter(usize),
    /// A column reference, optionally qualified by table name or alias.
    Column {
        /// Qualifier.
        table: Option<String>,
        /// Column name.
        name: String,
    },
    /// A unary operator.
    Unary {
        /// Operator.
        op: UnaryOp,
        /// Operand.
        expr: Box<Expr>,
    },
    /// A binary operator.
    Binary {
        /// Operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `x IS [NOT] NULL`.
    IsNull {
        /// Operand.
        expr: Box<Expr>,
        /// IS NOT NULL.
        negated: bool,
    },
    /// `x IS [NOT] TRUE/FALSE`.
    IsBoolean {
        /// Operand.
        expr: Box<Expr>,
        /// TRUE or FALSE.
        value: bool,
        /// IS NOT.
        negated: bool,
    },
    /// `a IS [NOT] DISTINCT FROM b`.
    IsDistinctFrom {
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
        /// IS NOT DISTINCT FROM.
        negated: bool,
    },
    /// `x [NOT] IN (list)`.
    InList {
        /// Operand.
        expr: Box<Expr>,
        /// List items.
        list: Vec<Expr>,
        /// NOT IN.
        negated: bool,
    },
    /// `x [NOT] BETWEEN low AND high`.
    Between {
        /// Operand.
        expr: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// NOT BETWEEN.
        negated: bool,
    },
    /// `x [NOT] LIKE/ILIKE pattern`.
    Like {
        /// Operand.
        expr: Box<Expr>,
        /// Pattern with `%` and `_`.
        pattern: Box<Expr>,
        /// NOT LIKE.
        negated: bool,
        /// ILIKE.
        case_insensitive: bool,
    },
    /// `x ~ pattern` and its variants (`~*`, `!~`, `!~*`): POSIX regular expressions.
    Regex {
        /// Operand.
        expr: Box<Expr>,
        /// The regular expression.
        pattern: Box<Expr>,
        /// `!~`.
        negated: bool,
        /// `~*`.
        case_insensitive: bool,
    },
    /// `CAST(x AS type)` or `x::type`.
    Cast {
        /// Operand.
        expr: Box<Expr>,
        /// Target type.
        data_type: DataType,
    },
    /// A function call, aggregates included.
    Function {
        /// Function name, lower-cased.
        name: String,
        /// Arguments.
        args: Vec<Expr>,
        /// `f(*)`.
        star: bool,
        /// `f(DISTINCT ...)`.
        distinct: bool,
    },
    /// `(SELECT ...)` used as a value.
    Subquery(Box<Select>),
    /// `[NOT] EXISTS (SELECT ...)`.
    Exists {
        /// The subquery.
        subquery: Box<Select>,
        /// NOT EXISTS.
        negated: bool,
    },
    /// `x [NOT] IN (SELECT ...)`.
    InSubquery {
        /// Operand.
        expr: Box<Expr>,
        /// The subquery, returning one column.
        subquery: Box<Select>,
        /// NOT IN.
        negated: bool,
    },
    /// `ARRAY[a, b, ...]`.
    Array(Vec<Expr>),
    /// `ARRAY(SELECT ...)`: the subquery's one column as an array.
    ArraySubquery(Box<Select>),
    /// `array[index]` (1-based; NULL outside the array).
    Subscript {
        /// The array.
        expr: Box<Expr>,
        /// The subscript.
        index: Box<Expr>,
    },
    /// `left op ANY (array)` or `left op ALL (array)`.
    Quantified {
        /// Compared value.
        left: Box<Expr>,
        /// Comparison operator.
        op: BinaryOp,
        /// The array.
        right: Box<Expr>,
        /// ALL rather than ANY.
        all: bool,
    },
    /// `x::regclass` and the other object-identifier types: an OID becomes the object's
    /// name, a name its OID.
    ObjectIdentifier {
        /// The OID or name.
        expr: Box<Expr>,
        /// What kind of object it identifies.
        kind: ObjectKind,
    },
    /// CASE.
    Case {
        /// `CASE operand WHEN ...`, if given.
        operand: Option<Box<Expr>>,
        /// WHEN ... THEN ... pairs.
        branches: Vec<(Expr, Expr)>,
        /// ELSE.
        else_result: Option<Box<Expr>>,
    },
}

/// The kinds of object PostgreSQL's object-identifier types name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// `regclass`: tables and indexes.
    Relation,
    /// `regtype`.
    Type,
    /// `regnamespace`: schemas.
    Namespace,
    /// `regrole`.
    Role,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// NOT.
    Not,
    /// `-`.
    Negate,
    /// `+`.
    Plus,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// AND.
    And,
    /// OR.
    Or,
    /// `=`.
    Equal,
    /// `<>` / `!=`.
    NotEqual,
    /// `<`.
    Less,
    /// `<=`.
    LessOrEqual,
    /// `>`.
    Greater,
    /// `>=`.
    GreaterOrEqual,
    /// `+`.
    Add,
    /// `-`.
    Subtract,
    /// `*`.
    Multiply,
    /// `/`.
    Divide,
    /// `%`.
    Modulo,
    /// `||`.
    Concat,
}

impl BinaryOp {
    /// The operator as SQL writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Equal => "=",
            BinaryOp::NotEqual => "<>",
            BinaryOp::Less => "<",
            BinaryOp::LessOrEqual => "<=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterOrEqual => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
            BinaryOp::Concat => "||",
        }
    }

    /// Whether this is a comparison (its result is boolean).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal
                | BinaryOp::NotEqual
                | BinaryOp::Less
                | BinaryOp::LessOrEqual
                | BinaryOp::Greater
                | BinaryOp::GreaterOrEqual
        )
    }
}
