//! System views: the catalog as tables that SQL can query, in PostgreSQL's shapes, so
//! that drivers, tools and our own shell (locally or over the wire) introspect the
//! database with ordinary SELECTs.
//!
//! Each view is computed from the catalog when a statement is planned and planned as
//! literal rows; WHERE, ORDER BY, aggregates and the rest then work as on any table.
//! The catalog is small, so materializing a view costs little. The views are read-only:
//! only SELECT resolves them.
//!
//! Provided: `information_schema.tables`, `information_schema.columns`,
//! `information_schema.table_constraints`, `information_schema.key_column_usage`,
//! `pg_catalog.pg_tables` and `pg_catalog.pg_indexes` (these two also unqualified, as
//! `pg_catalog` comes first on PostgreSQL's search path), and the catalog tables of
//! [`super::pg_catalog`] that psql's `\dt` and `\di` join.

use super::expression::Identity;
use crate::catalog::{Catalog, Column, ColumnDefault, IdentityKind, Table};
use crate::types::{DataType, Value, TEXT};

/// A view's definition and its current rows.
pub struct SystemView {
    /// The columns, as a table definition the planner can scope names with.
    pub table: Table,
    /// The rows, in the view's natural order.
    pub rows: Vec<Vec<Value>>,
}

/// The schema every user table lives in.
const SCHEMA: &str = "public";
/// The owner shown for every table: Tessera has no per-table owners yet.
const OWNER: &str = "tessera";

/// Resolves `name` (as written, possibly schema-qualified) to a system view.
pub fn resolve(name: &str, catalog: &Catalog, identity: &Identity) -> Option<SystemView> {
    let (columns, rows): (&[(&str, DataType)], Vec<Vec<Value>>) = match name {
        "information_schema.tables" => (TABLES, tables(catalog, identity)),
        "information_schema.columns" => (COLUMNS, columns(catalog, identity)),
        "information_schema.sequences" => (SEQUENCES, sequences(catalog, identity)),
        "information_schema.table_constraints" => {
            (TABLE_CONSTRAINTS, table_constraints(catalog, identity))
        }
        "information_schema.key_column_usage" => {
            (KEY_COLUMN_USAGE, key_column_usage(catalog, identity))
        }
        "pg_catalog.pg_tables" | "pg_tables" => (PG_TABLES, pg_tables(catalog)),
        "pg_catalog.pg_indexes" | "pg_indexes" => (PG_INDEXES, pg_indexes(catalog)),
        "pg_catalog.pg_database" | "pg_database" => (PG_DATABASE, pg_database(identity)),
        // pg_catalog comes first on PostgreSQL's search path, so its tables resolve
        // unqualified too.
        other => {
            super::pg_catalog::resolve(other.strip_prefix("pg_catalog.").unwrap_or(other), catalog)?
        }
    };
    let table = derived_table(
        name.rsplit('.').next().unwrap_or(name),
        columns
            .iter()
            .map(|(name, data_type)| (name.to_string(), *data_type)),
    );
    Some(SystemView { table, rows })
}

/// A table definition for rows that are not stored (a view, a subquery in FROM, a
/// set-returning function), so that names scope over them like over a table's.
pub fn derived_table(name: &str, columns: impl IntoIterator<Item = (String, DataType)>) -> Table {
    Table {
        id: 0,
        name: name.to_string(),
        columns: columns
            .into_iter()
            .map(|(name, data_type)| Column::plain(&name, data_type, true))
            .collect(),
        primary_key: Vec::new(),
        indexes: Vec::new(),
        shard_count: 1,
        placement: Vec::new(),
        changed_version: 0,
    }
}

/// Whether `name` names a system view (for a clear error when one is written to).
pub fn is_system_view(name: &str) -> bool {
    name.starts_with("information_schema.")
        || name.starts_with("pg_catalog.")
        || matches!(name, "pg_tables" | "pg_indexes" | "pg_database")
        || super::pg_catalog::resolve(name, &Catalog::default()).is_some()
}

const INTEGER: DataType = DataType::Integer;

const PG_DATABASE: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("datname", TEXT),
    ("datdba", INTEGER),
    ("encoding", INTEGER),
    ("datlocprovider", TEXT),
    ("datistemplate", DataType::Boolean),
    ("datallowconn", DataType::Boolean),
    ("datconnlimit", INTEGER),
    ("datcollate", TEXT),
    ("datctype", TEXT),
    ("daticulocale", TEXT),
    ("datacl", DataType::Array(crate::types::ElementType::Text)),
];

/// OID of the one database (PostgreSQL's `postgres` database has this OID).
const DATABASE_OID: i32 = 5;

/// A server holds one database, reached under any name: it is listed under the name
/// this session used, as `current_database()` answers. Text is UTF-8 and compares byte
/// by byte, which is the C collation; no access privileges are recorded (NULL `datacl`,
/// as in PostgreSQL before any GRANT).
fn pg_database(identity: &Identity) -> Vec<Vec<Value>> {
    vec![vec![
        Value::Integer(DATABASE_OID),
        Value::Text(identity.database.clone()),
        Value::Integer(super::pg_catalog::OWNER_ROLE),
        Value::Integer(super::pg_catalog::UTF8_ENCODING as i32),
        Value::Text("c".into()),
        Value::Boolean(false),
        Value::Boolean(true),
        Value::Integer(-1),
        Value::Text("C".into()),
        Value::Text("C".into()),
        Value::Null,
        Value::Null,
    ]]
}

const TABLES: &[(&str, DataType)] = &[
    ("table_catalog", TEXT),
    ("table_schema", TEXT),
    ("table_name", TEXT),
    ("table_type", TEXT),
];

const COLUMNS: &[(&str, DataType)] = &[
    ("table_catalog", TEXT),
    ("table_schema", TEXT),
    ("table_name", TEXT),
    ("column_name", TEXT),
    ("ordinal_position", INTEGER),
    ("column_default", TEXT),
    ("is_nullable", TEXT),
    ("data_type", TEXT),
    ("character_maximum_length", INTEGER),
    ("is_identity", TEXT),
    ("identity_generation", TEXT),
];

const SEQUENCES: &[(&str, DataType)] = &[
    ("sequence_catalog", TEXT),
    ("sequence_schema", TEXT),
    ("sequence_name", TEXT),
    ("data_type", TEXT),
    ("numeric_precision", INTEGER),
    ("numeric_precision_radix", INTEGER),
    ("numeric_scale", INTEGER),
    ("start_value", TEXT),
    ("minimum_value", TEXT),
    ("maximum_value", TEXT),
    ("increment", TEXT),
    ("cycle_option", TEXT),
];

const TABLE_CONSTRAINTS: &[(&str, DataType)] = &[
    ("constraint_catalog", TEXT),
    ("constraint_schema", TEXT),
    ("constraint_name", TEXT),
    ("table_catalog", TEXT),
    ("table_schema", TEXT),
    ("table_name", TEXT),
    ("constraint_type", TEXT),
];

const KEY_COLUMN_USAGE: &[(&str, DataType)] = &[
    ("constraint_catalog", TEXT),
    ("constraint_schema", TEXT),
    ("constraint_name", TEXT),
    ("table_catalog", TEXT),
    ("table_schema", TEXT),
    ("table_name", TEXT),
    ("column_name", TEXT),
    ("ordinal_position", INTEGER),
];

const PG_TABLES: &[(&str, DataType)] = &[
    ("schemaname", TEXT),
    ("tablename", TEXT),
    ("tableowner", TEXT),
    ("tablespace", TEXT),
    ("hasindexes", DataType::Boolean),
    ("hasrules", DataType::Boolean),
    ("hastriggers", DataType::Boolean),
    ("rowsecurity", DataType::Boolean),
];

const PG_INDEXES: &[(&str, DataType)] = &[
    ("schemaname", TEXT),
    ("tablename", TEXT),
    ("indexname", TEXT),
    ("tablespace", TEXT),
    ("indexdef", TEXT),
];

fn text(value: &str) -> Value {
    Value::Text(value.to_string())
}

fn integer(value: usize) -> Value {
    Value::Integer(i32::try_from(value).unwrap_or(i32::MAX))
}

fn tables(catalog: &Catalog, identity: &Identity) -> Vec<Vec<Value>> {
    catalog
        .tables()
        .map(|t| {
            vec![
                text(&identity.database),
                text(SCHEMA),
                text(&t.name),
                text("BASE TABLE"),
            ]
        })
        .collect()
}

/// `ALWAYS` or `BY DEFAULT`, as information_schema spells an identity's kind.
pub fn identity_generation(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::Always => "ALWAYS",
        IdentityKind::ByDefault => "BY DEFAULT",
    }
}

fn sequences(catalog: &Catalog, identity: &Identity) -> Vec<Vec<Value>> {
    catalog
        .sequences()
        .map(|sequence| {
            let options = &sequence.options;
            let precision = match options.data_type {
                DataType::SmallInt => 16,
                DataType::Integer => 32,
                _ => 64,
            };
            vec![
                text(&identity.database),
                text(SCHEMA),
                text(&sequence.name),
                text(&options.data_type.sql_name()),
                integer(precision),
                integer(2),
                integer(0),
                text(&options.start.to_string()),
                text(&options.min_value.to_string()),
                text(&options.max_value.to_string()),
                text(&options.increment.to_string()),
                text(if options.cycle { "YES" } else { "NO" }),
            ]
        })
        .collect()
}

/// A column default as PostgreSQL shows it (`'x'::text`, `0`); none for an identity
/// column, whose values come from its sequence without a DEFAULT.
pub fn default_text(column: &Column) -> Option<String> {
    if column.identity.is_some() {
        return None;
    }
    column.default.as_ref().map(|default| match default {
        ColumnDefault::Constant(Value::Text(s)) => format!(
            "'{}'::{}",
            s.replace('\'', "''"),
            base_type_name(column.data_type)
        ),
        ColumnDefault::Constant(other) => other.to_string(),
        ColumnDefault::Expression(sql) => sql.clone(),
    })
}

/// The type's name without modifiers (`character varying`, not `character varying(20)`),
/// as information_schema's data_type and PostgreSQL's default casts show it.
fn base_type_name(data_type: DataType) -> String {
    match data_type {
        DataType::Text {
            max_length: Some(_),
        } => "character varying".to_string(),
        other => other.sql_name(),
    }
}

fn columns(catalog: &Catalog, identity: &Identity) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        for (position, column) in table.columns.iter().filter(|c| !c.hidden).enumerate() {
            let max_length = match column.data_type {
                DataType::Text {
                    max_length: Some(n),
                } => integer(n as usize),
                _ => Value::Null,
            };
            let data_type = base_type_name(column.data_type);
            rows.push(vec![
                text(&identity.database),
                text(SCHEMA),
                text(&table.name),
                text(&column.name),
                integer(position + 1),
                default_text(column).map_or(Value::Null, Value::Text),
                text(if column.nullable { "YES" } else { "NO" }),
                text(&data_type),
                max_length,
                text(if column.identity.is_some() {
                    "YES"
                } else {
                    "NO"
                }),
                column
                    .identity
                    .map_or(Value::Null, |kind| text(identity_generation(kind))),
            ]);
        }
    }
    rows
}

/// Each table's primary key and unique indexes, as constraints: (name, type, columns).
fn constraints(table: &Table) -> Vec<(String, &'static str, Vec<String>)> {
    let names = |positions: &[usize]| {
        positions
            .iter()
            .map(|&i| table.columns[i].name.clone())
            .collect::<Vec<_>>()
    };
    let mut found = Vec::new();
    if !table.has_hidden_row_id() {
        found.push((
            table.primary_key_name(),
            "PRIMARY KEY",
            names(&table.primary_key),
        ));
    }
    for index in table.indexes.iter().filter(|i| i.unique) {
        found.push((index.name.clone(), "UNIQUE", names(&index.columns)));
    }
    found
}

/// The six columns both constraint views start with: where the constraint and its
/// table live.
fn constraint_location(identity: &Identity, constraint: &str, table: &Table) -> Vec<Value> {
    vec![
        text(&identity.database),
        text(SCHEMA),
        text(constraint),
        text(&identity.database),
        text(SCHEMA),
        text(&table.name),
    ]
}

fn table_constraints(catalog: &Catalog, identity: &Identity) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        for (name, kind, _) in constraints(table) {
            let mut row = constraint_location(identity, &name, table);
            row.push(text(kind));
            rows.push(row);
        }
    }
    rows
}

fn key_column_usage(catalog: &Catalog, identity: &Identity) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        for (name, _, columns) in constraints(table) {
            for (position, column) in columns.iter().enumerate() {
                let mut row = constraint_location(identity, &name, table);
                row.extend([text(column), integer(position + 1)]);
                rows.push(row);
            }
        }
    }
    rows
}

fn pg_tables(catalog: &Catalog) -> Vec<Vec<Value>> {
    catalog
        .tables()
        .map(|t| {
            vec![
                text(SCHEMA),
                text(&t.name),
                text(OWNER),
                Value::Null,
                Value::Boolean(!t.has_hidden_row_id() || !t.indexes.is_empty()),
                Value::Boolean(false),
                Value::Boolean(false),
                Value::Boolean(false),
            ]
        })
        .collect()
}

/// `CREATE [UNIQUE] INDEX name ON public.table (columns)`, as PostgreSQL's pg_indexes
/// shows it (without `USING btree`: Tessera's indexes are ordered RocksDB keys).
fn index_definition(table: &Table, name: &str, unique: bool, columns: &[usize]) -> String {
    let columns: Vec<&str> = columns
        .iter()
        .map(|&i| table.columns[i].name.as_str())
        .collect();
    format!(
        "CREATE {}INDEX {name} ON {SCHEMA}.{} ({})",
        if unique { "UNIQUE " } else { "" },
        table.name,
        columns.join(", ")
    )
}

fn pg_indexes(catalog: &Catalog) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        let mut row = |name: &str, unique: bool, columns: &[usize]| {
            rows.push(vec![
                text(SCHEMA),
                text(&table.name),
                text(name),
                Value::Null,
                text(&index_definition(table, name, unique, columns)),
            ]);
        };
        if !table.has_hidden_row_id() {
            row(&table.primary_key_name(), true, &table.primary_key);
        }
        for index in &table.indexes {
            row(&index.name, index.unique, &index.columns);
        }
    }
    rows
}
