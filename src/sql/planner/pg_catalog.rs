//! PostgreSQL's own catalog tables (`pg_class`, `pg_namespace`, `pg_attribute`, ...),
//! computed from Tessera's catalog, so that psql's `\dt`, `\di` and `\d` and drivers'
//! introspection queries run unchanged.
//!
//! Only the columns those queries read are provided, with PostgreSQL's names and
//! meanings. Object ids (OIDs) are derived from Tessera's numeric ids and so are stable
//! for the life of an object: a table is `16384 + 2 * id` (the first OID PostgreSQL
//! gives user objects), its primary key `16384 + 2 * id + 1`, a secondary index
//! `2^30 + id`. OID columns have type `integer` (Tessera has no unsigned `oid` type);
//! they compare with the quoted numbers psql sends (`c.oid = '16384'`). Every object is
//! owned by the one built-in role, `tessera` (OID 10): Tessera has no per-object owners.

use super::expression::{bind, CatalogFunction, Expression, Scope};
use super::system::default_text;
use crate::catalog::{Catalog, Column, IdentityKind, Index, Sequence, Table};
use crate::error::{Error, Result};
use crate::sql::ast::{Expr, ObjectKind};
use crate::types::{DataType, ElementType, Value, TEXT};
use std::collections::BTreeMap;

/// OID of the `pg_catalog` schema.
pub const PG_CATALOG_NAMESPACE: i32 = 11;
/// OID of the `public` schema.
pub const PUBLIC_NAMESPACE: i32 = 2200;
/// OID of the `information_schema` schema.
const INFORMATION_SCHEMA_NAMESPACE: i32 = 13000;
/// OID of the built-in role that owns every object.
pub const OWNER_ROLE: i32 = 10;
/// Name of that role.
pub const OWNER_NAME: &str = "tessera";
/// OID of the `heap` access method (tables).
const HEAP_AM: i32 = 2;
/// OID of the `btree` access method: Tessera's keys and indexes are ordered, like a B-tree.
const BTREE_AM: i32 = 403;
/// OID of the `default` collation.
const DEFAULT_COLLATION: i32 = 100;
/// PostgreSQL's number for the UTF8 encoding, the only one Tessera stores text in.
pub const UTF8_ENCODING: i64 = 6;
/// The first OID PostgreSQL gives a user object.
const FIRST_USER_OID: i64 = 16384;
/// Where secondary-index OIDs start.
const FIRST_INDEX_OID: i64 = 1 << 30;
/// Where sequence OIDs start.
const FIRST_SEQUENCE_OID: i64 = (1 << 30) + (1 << 29);

/// A relation's OID.
pub fn table_oid(table: &Table) -> i32 {
    oid(FIRST_USER_OID + 2 * i64::from(table.id))
}

/// The OID of a table's primary-key index (and constraint).
pub fn primary_key_oid(table: &Table) -> i32 {
    oid(FIRST_USER_OID + 2 * i64::from(table.id) + 1)
}

/// A secondary index's OID.
pub fn index_oid(index: &Index) -> i32 {
    oid(FIRST_INDEX_OID + i64::from(index.id))
}

/// A sequence's OID (its id changes at RESTART; its name is what tools follow).
pub fn sequence_oid(sequence: &Sequence) -> i32 {
    oid(FIRST_SEQUENCE_OID + i64::try_from(sequence.id).unwrap_or(i64::MAX >> 1))
}

fn oid(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// One index of a table as the catalog tables show it, the primary key included.
pub struct IndexView<'t> {
    /// The index's OID.
    pub oid: i32,
    /// Its name.
    pub name: String,
    /// Indexed column positions in the table.
    pub columns: &'t [usize],
    /// UNIQUE (the primary key is unique).
    pub unique: bool,
    /// Whether this is the primary key.
    pub primary: bool,
}

/// The indexes of a table, primary key first.
pub fn indexes(table: &Table) -> Vec<IndexView<'_>> {
    let mut views = Vec::new();
    if !table.has_hidden_row_id() {
        views.push(IndexView {
            oid: primary_key_oid(table),
            name: table.primary_key_name(),
            columns: &table.primary_key,
            unique: true,
            primary: true,
        });
    }
    for index in &table.indexes {
        views.push(IndexView {
            oid: index_oid(index),
            name: index.name.clone(),
            columns: &index.columns,
            unique: index.unique,
            primary: false,
        });
    }
    views
}

/// `CREATE [UNIQUE] INDEX name ON public.table USING btree (columns)`, as
/// `pg_get_indexdef` gives it.
pub fn index_definition(table: &Table, index: &IndexView) -> String {
    format!(
        "CREATE {}INDEX {} ON public.{} USING btree ({})",
        if index.unique { "UNIQUE " } else { "" },
        index.name,
        table.name,
        column_list(table, index.columns)
    )
}

/// `PRIMARY KEY (columns)` or `UNIQUE (columns)`, as `pg_get_constraintdef` gives it.
pub fn constraint_definition(table: &Table, index: &IndexView) -> String {
    format!(
        "{} ({})",
        if index.primary {
            "PRIMARY KEY"
        } else {
            "UNIQUE"
        },
        column_list(table, index.columns)
    )
}

fn column_list(table: &Table, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&c| table.columns[c].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The type modifier PostgreSQL records for a column type (`varchar(n)`: n + 4).
fn type_modifier(data_type: DataType) -> i32 {
    match data_type {
        DataType::Text {
            max_length: Some(n),
        } => i32::try_from(n).unwrap_or(i32::MAX - 4) + 4,
        _ => -1,
    }
}

/// `format_type(type_oid, modifier)`: the SQL name of a type.
pub fn format_type(type_oid: i64, modifier: Option<i64>) -> Option<String> {
    let (_, name, _) = TYPES
        .iter()
        .find(|(oid, _, _)| i64::from(*oid) == type_oid)?;
    Some(match (type_oid, modifier) {
        (1043, Some(m)) if m >= 4 => format!("character varying({})", m - 4),
        _ => name.to_string(),
    })
}

/// The types Tessera has, as (OID, `format_type` name, `typname`).
const TYPES: &[(i32, &str, &str)] = &[
    (16, "boolean", "bool"),
    (17, "bytea", "bytea"),
    (20, "bigint", "int8"),
    (21, "smallint", "int2"),
    (23, "integer", "int4"),
    (25, "text", "text"),
    (700, "real", "float4"),
    (701, "double precision", "float8"),
    (1043, "character varying", "varchar"),
];

/// The key column under which `pg_get_indexdef`'s pretty (unqualified) form is kept.
pub const PRETTY_DEFINITION: i64 = -1;

/// The answers of a catalog function by (object id, second argument or 0), computed
/// when a statement using it is planned.
pub fn function_entries(
    function: CatalogFunction,
    catalog: &Catalog,
) -> BTreeMap<(i64, i64), Value> {
    let mut entries = BTreeMap::new();
    match function {
        CatalogFunction::UserById => {
            entries.insert((i64::from(OWNER_ROLE), 0), text(OWNER_NAME));
        }
        CatalogFunction::TableIsVisible => {
            for table in catalog.tables() {
                entries.insert((i64::from(table_oid(table)), 0), Value::Boolean(true));
                for index in indexes(table) {
                    entries.insert((i64::from(index.oid), 0), Value::Boolean(true));
                }
            }
            for sequence in catalog.sequences() {
                entries.insert((i64::from(sequence_oid(sequence)), 0), Value::Boolean(true));
            }
        }
        CatalogFunction::IndexDefinition | CatalogFunction::ConstraintDefinition => {
            for table in catalog.tables() {
                for index in indexes(table) {
                    let oid = i64::from(index.oid);
                    if function == CatalogFunction::ConstraintDefinition {
                        if index.unique {
                            entries.insert((oid, 0), text(&constraint_definition(table, &index)));
                        }
                        continue;
                    }
                    let definition = index_definition(table, &index);
                    // The pretty form leaves out the schema, which is on the search path.
                    let pretty = definition.replacen(" ON public.", " ON ", 1);
                    entries.insert((oid, 0), text(&definition));
                    entries.insert((oid, PRETTY_DEFINITION), text(&pretty));
                    for (position, &column) in index.columns.iter().enumerate() {
                        let name = text(&table.columns[column].name);
                        entries.insert((oid, position as i64 + 1), name);
                    }
                }
            }
        }
        CatalogFunction::RelationIsPublishable => {
            for table in catalog.tables() {
                entries.insert((i64::from(table_oid(table)), 0), Value::Boolean(true));
                for index in indexes(table) {
                    entries.insert((i64::from(index.oid), 0), Value::Boolean(false));
                }
            }
        }
        CatalogFunction::EncodingName => {
            entries.insert((UTF8_ENCODING, 0), text("UTF8"));
        }
        // No extended statistics objects or comments exist.
        CatalogFunction::StatisticsColumns | CatalogFunction::Description => {}
        CatalogFunction::ObjectName(kind) => {
            for (oid, name) in object_names(kind, catalog) {
                entries.insert((i64::from(oid), 0), text(&name));
            }
        }
        CatalogFunction::FormatType | CatalogFunction::GetExpr => {}
    }
    entries
}

/// The SQL name of an object-identifier type.
pub fn object_type_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Relation => "regclass",
        ObjectKind::Type => "regtype",
        ObjectKind::Namespace => "regnamespace",
        ObjectKind::Role => "regrole",
    }
}

/// Every object of a kind, as (OID, name).
fn object_names(kind: ObjectKind, catalog: &Catalog) -> Vec<(i32, String)> {
    match kind {
        ObjectKind::Relation => catalog
            .tables()
            .flat_map(|table| {
                let indexes = indexes(table).into_iter().map(|i| (i.oid, i.name));
                std::iter::once((table_oid(table), table.name.clone())).chain(indexes)
            })
            .chain(
                catalog
                    .sequences()
                    .map(|s| (sequence_oid(s), s.name.clone())),
            )
            .collect(),
        ObjectKind::Type => TYPES
            .iter()
            .map(|(oid, name, _)| (*oid, name.to_string()))
            .collect(),
        ObjectKind::Namespace => [
            (PG_CATALOG_NAMESPACE, "pg_catalog"),
            (PUBLIC_NAMESPACE, "public"),
            (INFORMATION_SCHEMA_NAMESPACE, "information_schema"),
        ]
        .iter()
        .map(|(oid, name)| (*oid, name.to_string()))
        .collect(),
        ObjectKind::Role => vec![(OWNER_ROLE, OWNER_NAME.to_string())],
    }
}

/// `x::regclass` (and regtype, regnamespace, regrole): an OID becomes the object's name;
/// a constant name becomes the object's OID, or an error when there is none. Trade-off:
/// Tessera has no `regclass` type, so `'t'::regclass` is the number (it compares with
/// OID columns, which is what it is used for) and prints as one, where PostgreSQL
/// prints the name.
pub fn bind_object_identifier(expr: &Expr, kind: ObjectKind, scope: &Scope) -> Result<Expression> {
    let bound = bind(expr, scope)?;
    let catalog = scope
        .planner
        .map(|p| p.catalog())
        .ok_or_else(|| Error::FeatureNotSupported(format!("::{} here", object_type_name(kind))))?;
    match bound.data_type() {
        Some(t) if t.is_integer() => {
            let function = CatalogFunction::ObjectName(kind);
            Ok(Expression::Catalog {
                function,
                arguments: vec![bound],
                entries: std::sync::Arc::new(function_entries(function, catalog)),
            })
        }
        Some(t) if t.is_text() => {
            let Expression::Constant(Value::Text(name)) = super::fold(bound)? else {
                return Err(Error::FeatureNotSupported(format!(
                    "::{} of a name that is not a constant",
                    object_type_name(kind)
                )));
            };
            object_oid(kind, &name, catalog).map(|oid| Expression::Constant(Value::Integer(oid)))
        }
        None => Ok(Expression::Constant(Value::Null)),
        Some(other) => Err(Error::DatatypeMismatch(format!(
            "cannot cast type {} to {}",
            other.sql_name(),
            object_type_name(kind)
        ))),
    }
}

/// The OID of the object a name (possibly schema-qualified) identifies.
fn object_oid(kind: ObjectKind, name: &str, catalog: &Catalog) -> Result<i32> {
    let unqualified = name
        .strip_prefix("public.")
        .or_else(|| name.strip_prefix("pg_catalog."))
        .unwrap_or(name);
    object_names(kind, catalog)
        .into_iter()
        .find(|(_, candidate)| candidate == unqualified || candidate == name)
        .map(|(oid, _)| oid)
        .ok_or_else(|| match kind {
            ObjectKind::Relation => {
                Error::UndefinedTable(format!("relation \"{name}\" does not exist"))
            }
            ObjectKind::Type => Error::UndefinedObject(format!("type \"{name}\" does not exist")),
            ObjectKind::Namespace => {
                Error::UndefinedObject(format!("schema \"{name}\" does not exist"))
            }
            ObjectKind::Role => Error::UndefinedObject(format!("role \"{name}\" does not exist")),
        })
}

const INTEGER: DataType = DataType::Integer;
const BOOLEAN: DataType = DataType::Boolean;
const SMALLINT: DataType = DataType::SmallInt;

/// A catalog table's columns: names and types.
type ColumnList = &'static [(&'static str, DataType)];

/// The columns and rows of the pg_catalog table `name` (unqualified), if it is one.
pub fn resolve(name: &str, catalog: &Catalog) -> Option<(ColumnList, Vec<Vec<Value>>)> {
    Some(match name {
        "pg_namespace" => (PG_NAMESPACE, pg_namespace()),
        "pg_class" => (PG_CLASS, pg_class(catalog)),
        "pg_am" => (PG_AM, pg_am()),
        "pg_index" => (PG_INDEX, pg_index(catalog)),
        "pg_attribute" => (PG_ATTRIBUTE, pg_attribute(catalog)),
        "pg_attrdef" => (PG_ATTRDEF, pg_attrdef(catalog)),
        "pg_sequence" => (PG_SEQUENCE, pg_sequence(catalog)),
        "pg_type" => (PG_TYPE, pg_type()),
        "pg_constraint" => (PG_CONSTRAINT, pg_constraint(catalog)),
        "pg_collation" => (PG_COLLATION, pg_collation()),
        "pg_roles" | "pg_user" => (PG_ROLES, pg_roles()),
        // Features Tessera does not have, so their catalogs are empty: inheritance,
        // row-level security policies, extended statistics, logical replication.
        "pg_inherits" => (PG_INHERITS, Vec::new()),
        "pg_policy" => (PG_POLICY, Vec::new()),
        "pg_statistic_ext" => (PG_STATISTIC_EXT, Vec::new()),
        "pg_publication" => (PG_PUBLICATION, Vec::new()),
        "pg_publication_namespace" => (PG_PUBLICATION_NAMESPACE, Vec::new()),
        "pg_publication_rel" => (PG_PUBLICATION_REL, Vec::new()),
        _ => return None,
    })
}

const PG_NAMESPACE: &[(&str, DataType)] =
    &[("oid", INTEGER), ("nspname", TEXT), ("nspowner", INTEGER)];

fn pg_namespace() -> Vec<Vec<Value>> {
    [
        (PG_CATALOG_NAMESPACE, "pg_catalog"),
        (PUBLIC_NAMESPACE, "public"),
        (INFORMATION_SCHEMA_NAMESPACE, "information_schema"),
    ]
    .iter()
    .map(|(oid, name)| vec![int(*oid), text(name), int(OWNER_ROLE)])
    .collect()
}

const PG_CLASS: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("relname", TEXT),
    ("relnamespace", INTEGER),
    ("reltype", INTEGER),
    ("relowner", INTEGER),
    ("relam", INTEGER),
    ("reltablespace", INTEGER),
    ("reltoastrelid", INTEGER),
    ("relhasindex", BOOLEAN),
    ("relpersistence", TEXT),
    ("relkind", TEXT),
    ("relnatts", SMALLINT),
    ("relchecks", SMALLINT),
    ("relhasrules", BOOLEAN),
    ("relhastriggers", BOOLEAN),
    ("relrowsecurity", BOOLEAN),
    ("relforcerowsecurity", BOOLEAN),
    ("relispartition", BOOLEAN),
    ("reloftype", INTEGER),
    ("relreplident", TEXT),
    ("relpartbound", TEXT),
    ("reloptions", DataType::Array(ElementType::Text)),
];

fn pg_class(catalog: &Catalog) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        let visible = table.columns.iter().filter(|c| !c.hidden).count();
        let indexes = indexes(table);
        rows.push(class_row(
            table_oid(table),
            &table.name,
            HEAP_AM,
            "r",
            visible,
            !indexes.is_empty(),
        ));
        for index in &indexes {
            rows.push(class_row(
                index.oid,
                &index.name,
                BTREE_AM,
                "i",
                index.columns.len(),
                false,
            ));
        }
    }
    for sequence in catalog.sequences() {
        // A sequence relation has three columns in PostgreSQL: last_value, log_cnt,
        // is_called.
        rows.push(class_row(
            sequence_oid(sequence),
            &sequence.name,
            0,
            "S",
            3,
            false,
        ));
    }
    rows
}

fn class_row(
    oid: i32,
    name: &str,
    am: i32,
    kind: &str,
    columns: usize,
    has_index: bool,
) -> Vec<Value> {
    vec![
        int(oid),
        text(name),
        int(PUBLIC_NAMESPACE),
        int(0),
        int(OWNER_ROLE),
        int(am),
        int(0),
        int(0),
        Value::Boolean(has_index),
        text("p"),
        text(kind),
        Value::SmallInt(i16::try_from(columns).unwrap_or(i16::MAX)),
        Value::SmallInt(0),
        Value::Boolean(false),
        Value::Boolean(false),
        Value::Boolean(false),
        Value::Boolean(false),
        Value::Boolean(false),
        int(0),
        text("d"),
        Value::Null,
        Value::Null,
    ]
}

const PG_AM: &[(&str, DataType)] = &[("oid", INTEGER), ("amname", TEXT), ("amtype", TEXT)];

fn pg_am() -> Vec<Vec<Value>> {
    vec![
        vec![int(HEAP_AM), text("heap"), text("t")],
        vec![int(BTREE_AM), text("btree"), text("i")],
    ]
}

const PG_INDEX: &[(&str, DataType)] = &[
    ("indexrelid", INTEGER),
    ("indrelid", INTEGER),
    ("indnatts", SMALLINT),
    ("indnkeyatts", SMALLINT),
    ("indisunique", BOOLEAN),
    ("indnullsnotdistinct", BOOLEAN),
    ("indisprimary", BOOLEAN),
    ("indisexclusion", BOOLEAN),
    ("indimmediate", BOOLEAN),
    ("indisclustered", BOOLEAN),
    ("indisvalid", BOOLEAN),
    ("indisready", BOOLEAN),
    ("indislive", BOOLEAN),
    ("indisreplident", BOOLEAN),
    ("indkey", TEXT),
    ("indexprs", TEXT),
    ("indpred", TEXT),
];

fn pg_index(catalog: &Catalog) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        for index in indexes(table) {
            let count = Value::SmallInt(i16::try_from(index.columns.len()).unwrap_or(i16::MAX));
            let key: Vec<String> = index.columns.iter().map(|c| (c + 1).to_string()).collect();
            rows.push(vec![
                int(index.oid),
                int(table_oid(table)),
                count.clone(),
                count,
                Value::Boolean(index.unique),
                Value::Boolean(false),
                Value::Boolean(index.primary),
                Value::Boolean(false),
                Value::Boolean(true),
                Value::Boolean(false),
                Value::Boolean(true),
                Value::Boolean(true),
                Value::Boolean(true),
                Value::Boolean(false),
                text(&key.join(" ")),
                Value::Null,
                Value::Null,
            ]);
        }
    }
    rows
}

const PG_ATTRIBUTE: &[(&str, DataType)] = &[
    ("attrelid", INTEGER),
    ("attname", TEXT),
    ("atttypid", INTEGER),
    ("attlen", SMALLINT),
    ("attnum", SMALLINT),
    ("atttypmod", INTEGER),
    ("attnotnull", BOOLEAN),
    ("atthasdef", BOOLEAN),
    ("attidentity", TEXT),
    ("attgenerated", TEXT),
    ("attisdropped", BOOLEAN),
    ("attcollation", INTEGER),
    ("attstorage", TEXT),
    ("attcompression", TEXT),
    ("attstattarget", INTEGER),
];

fn pg_attribute(catalog: &Catalog) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        let visible = table.columns.iter().filter(|c| !c.hidden);
        for (position, column) in visible.enumerate() {
            rows.push(attribute_row(table_oid(table), position + 1, column));
        }
        for index in indexes(table) {
            for (position, &c) in index.columns.iter().enumerate() {
                rows.push(attribute_row(index.oid, position + 1, &table.columns[c]));
            }
        }
    }
    rows
}

fn attribute_row(relation: i32, number: usize, column: &Column) -> Vec<Value> {
    let collation = if column.data_type.is_text() {
        DEFAULT_COLLATION
    } else {
        0
    };
    vec![
        int(relation),
        text(&column.name),
        int(column.data_type.oid() as i32),
        Value::SmallInt(-1),
        Value::SmallInt(i16::try_from(number).unwrap_or(i16::MAX)),
        int(type_modifier(column.data_type)),
        Value::Boolean(!column.nullable),
        Value::Boolean(column.default.is_some() && column.identity.is_none()),
        text(match column.identity {
            Some(IdentityKind::Always) => "a",
            Some(IdentityKind::ByDefault) => "d",
            None => "",
        }),
        text(""),
        Value::Boolean(false),
        int(collation),
        // Variable-width values may be stored out of line ("extended"), fixed ones not.
        text(
            if column.data_type.is_text() || column.data_type == DataType::Bytea {
                "x"
            } else {
                "p"
            },
        ),
        text(""),
        int(-1),
    ]
}

const PG_ATTRDEF: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("adrelid", INTEGER),
    ("adnum", SMALLINT),
    ("adbin", TEXT),
];

fn pg_attrdef(catalog: &Catalog) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        let visible = table.columns.iter().filter(|c| !c.hidden);
        for (position, column) in visible.enumerate() {
            if let Some(default) = default_text(column) {
                let number = i16::try_from(position + 1).unwrap_or(i16::MAX);
                rows.push(vec![
                    int(table_oid(table)),
                    int(table_oid(table)),
                    Value::SmallInt(number),
                    text(&default),
                ]);
            }
        }
    }
    rows
}

const PG_SEQUENCE: &[(&str, DataType)] = &[
    ("seqrelid", INTEGER),
    ("seqtypid", INTEGER),
    ("seqstart", DataType::BigInt),
    ("seqincrement", DataType::BigInt),
    ("seqmax", DataType::BigInt),
    ("seqmin", DataType::BigInt),
    ("seqcache", DataType::BigInt),
    ("seqcycle", BOOLEAN),
];

fn pg_sequence(catalog: &Catalog) -> Vec<Vec<Value>> {
    catalog
        .sequences()
        .map(|sequence| {
            let options = &sequence.options;
            vec![
                int(sequence_oid(sequence)),
                int(options.data_type.oid() as i32),
                Value::BigInt(options.start),
                Value::BigInt(options.increment),
                Value::BigInt(options.max_value),
                Value::BigInt(options.min_value),
                Value::BigInt(options.cache),
                Value::Boolean(options.cycle),
            ]
        })
        .collect()
}

const PG_TYPE: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("typname", TEXT),
    ("typnamespace", INTEGER),
    ("typlen", SMALLINT),
    ("typtype", TEXT),
    ("typcollation", INTEGER),
];

fn pg_type() -> Vec<Vec<Value>> {
    TYPES
        .iter()
        .map(|(oid, _, name)| {
            let collation = if matches!(*oid, 25 | 1043) {
                DEFAULT_COLLATION
            } else {
                0
            };
            let length = match *oid {
                16 => 1,
                21 => 2,
                23 | 700 => 4,
                20 | 701 => 8,
                _ => -1,
            };
            vec![
                int(*oid),
                text(name),
                int(PG_CATALOG_NAMESPACE),
                Value::SmallInt(length),
                text("b"),
                int(collation),
            ]
        })
        .collect()
}

const PG_CONSTRAINT: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("conname", TEXT),
    ("connamespace", INTEGER),
    ("contype", TEXT),
    ("condeferrable", BOOLEAN),
    ("condeferred", BOOLEAN),
    ("convalidated", BOOLEAN),
    ("conrelid", INTEGER),
    ("conindid", INTEGER),
    ("confrelid", INTEGER),
];

fn pg_constraint(catalog: &Catalog) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for table in catalog.tables() {
        for index in indexes(table).iter().filter(|i| i.unique) {
            rows.push(vec![
                int(index.oid),
                text(&index.name),
                int(PUBLIC_NAMESPACE),
                text(if index.primary { "p" } else { "u" }),
                Value::Boolean(false),
                Value::Boolean(false),
                Value::Boolean(true),
                int(table_oid(table)),
                int(index.oid),
                int(0),
            ]);
        }
    }
    rows
}

const PG_COLLATION: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("collname", TEXT),
    ("collnamespace", INTEGER),
];

fn pg_collation() -> Vec<Vec<Value>> {
    [(DEFAULT_COLLATION, "default"), (950, "C"), (951, "POSIX")]
        .iter()
        .map(|(oid, name)| vec![int(*oid), text(name), int(PG_CATALOG_NAMESPACE)])
        .collect()
}

const PG_ROLES: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("rolname", TEXT),
    ("rolsuper", BOOLEAN),
    ("rolcanlogin", BOOLEAN),
];

fn pg_roles() -> Vec<Vec<Value>> {
    vec![vec![
        int(OWNER_ROLE),
        text(OWNER_NAME),
        Value::Boolean(true),
        Value::Boolean(true),
    ]]
}

const INTEGER_ARRAY: DataType = DataType::Array(ElementType::Integer);
const SMALLINT_ARRAY: DataType = DataType::Array(ElementType::SmallInt);

const PG_POLICY: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("polname", TEXT),
    ("polrelid", INTEGER),
    ("polcmd", TEXT),
    ("polpermissive", BOOLEAN),
    ("polroles", INTEGER_ARRAY),
    ("polqual", TEXT),
    ("polwithcheck", TEXT),
];

const PG_STATISTIC_EXT: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("stxrelid", INTEGER),
    ("stxname", TEXT),
    ("stxnamespace", INTEGER),
    ("stxowner", INTEGER),
    ("stxstattarget", INTEGER),
    ("stxkeys", SMALLINT_ARRAY),
    ("stxkind", DataType::Array(ElementType::Text)),
    ("stxexprs", TEXT),
];

const PG_PUBLICATION: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("pubname", TEXT),
    ("pubowner", INTEGER),
    ("puballtables", BOOLEAN),
    ("pubinsert", BOOLEAN),
    ("pubupdate", BOOLEAN),
    ("pubdelete", BOOLEAN),
    ("pubtruncate", BOOLEAN),
    ("pubviaroot", BOOLEAN),
];

const PG_PUBLICATION_NAMESPACE: &[(&str, DataType)] =
    &[("oid", INTEGER), ("pnpubid", INTEGER), ("pnnspid", INTEGER)];

const PG_PUBLICATION_REL: &[(&str, DataType)] = &[
    ("oid", INTEGER),
    ("prpubid", INTEGER),
    ("prrelid", INTEGER),
    ("prqual", TEXT),
    ("prattrs", SMALLINT_ARRAY),
];

const PG_INHERITS: &[(&str, DataType)] = &[
    ("inhrelid", INTEGER),
    ("inhparent", INTEGER),
    ("inhseqno", INTEGER),
    ("inhdetachpending", BOOLEAN),
];

fn int(value: i32) -> Value {
    Value::Integer(value)
}

fn text(value: &str) -> Value {
    Value::Text(value.to_string())
}
