//! The catalog: tables, their columns, primary keys and indexes.
//!
//! The catalog is small and read by every statement, so it is kept in memory as an
//! immutable [`Catalog`] value shared through an `Arc`; a DDL command builds a new value
//! and persists it whole (as one meta key) in the same atomic batch as the data it
//! changes. Tables and indexes are known by numeric ids in keys; names live only here.

use crate::error::{Error, Result};
use crate::shard::{self, ShardPlacement};
use crate::storage::keys::{IndexId, TableId};
use crate::types::{DataType, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Name of the hidden column that keys a table declared without a primary key.
pub const HIDDEN_ROW_ID: &str = "tessera_row_id";

/// A column of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Column name (lower-cased unless quoted, as in PostgreSQL).
    pub name: String,
    /// Declared type.
    pub data_type: DataType,
    /// Whether NULL may be stored.
    pub nullable: bool,
    /// Value used when an INSERT leaves the column out; NULL when none was declared.
    /// Defaults are constant expressions, evaluated once at CREATE TABLE.
    pub default: Option<Value>,
    /// True for the row-id column of a table without a primary key: not shown by `*`.
    pub hidden: bool,
}

/// A secondary index (the primary key is not one: rows are stored in its order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Id used in keys.
    pub id: IndexId,
    /// Index name, unique among tables and indexes.
    pub name: String,
    /// Positions of the indexed columns in the table's column list.
    pub columns: Vec<usize>,
    /// Whether two live rows may not share the same non-NULL values.
    pub unique: bool,
    /// Commit timestamp of the CREATE INDEX: snapshots older than this must not read
    /// through the index, whose entries were written at this timestamp. In a cluster,
    /// [`INDEX_BUILDING`] until every data group has backfilled its shards, then the
    /// latest of their backfill timestamps.
    pub created_ts: u64,
}

/// The `created_ts` of an index whose entries are still being built in some data
/// group: no snapshot reads through it.
pub const INDEX_BUILDING: u64 = u64::MAX;

/// A table definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Id used in keys.
    pub id: TableId,
    /// Table name.
    pub name: String,
    /// Columns in declaration order (a hidden row id, if any, last).
    pub columns: Vec<Column>,
    /// Positions of the primary-key columns, in key order.
    pub primary_key: Vec<usize>,
    /// Secondary indexes.
    pub indexes: Vec<Index>,
    /// How many shards the table's hash space is split into.
    pub shard_count: u16,
    /// Where each shard lives, by shard number (the table's part of the shard map).
    pub placement: Vec<ShardPlacement>,
    /// The catalog version at which the definition last changed (created, an index
    /// added, made ready or dropped): a commit planned against an older catalog is
    /// refused, since the index writes it carries were worked out without the change.
    pub changed_version: u64,
}

impl Table {
    /// Finds a column position by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Like [`Table::column_index`] but an error naming the column when it is missing.
    pub fn require_column(&self, name: &str) -> Result<usize> {
        self.column_index(name).ok_or_else(|| {
            Error::UndefinedColumn(format!("\"{name}\" of relation \"{}\"", self.name))
        })
    }

    /// Whether the primary key is the hidden row id.
    pub fn has_hidden_row_id(&self) -> bool {
        self.columns.last().is_some_and(|c| c.hidden)
    }

    /// Name of the primary-key constraint, as PostgreSQL names it.
    pub fn primary_key_name(&self) -> String {
        format!("{}_pkey", self.name)
    }

    /// The primary-key values of a full row.
    pub fn primary_key_of(&self, row: &[Value]) -> Vec<Value> {
        self.primary_key.iter().map(|&i| row[i].clone()).collect()
    }

    /// Shards this table's rows live in.
    pub fn shards(&self) -> impl Iterator<Item = u16> {
        0..self.shard_count.max(1)
    }
}

/// A column as CREATE TABLE declares it, before ids are assigned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableSpec {
    /// Table name.
    pub name: String,
    /// Columns, including a hidden row id when there is no primary key.
    pub columns: Vec<Column>,
    /// Primary-key column positions.
    pub primary_key: Vec<usize>,
    /// Unique constraints declared with the table, each becoming a unique index.
    pub unique_constraints: Vec<IndexSpec>,
    /// Number of shards.
    pub shard_count: u16,
    /// How many data groups the shards are placed on (the deployment's pool, chosen
    /// where the statement was planned, so every replica places them alike).
    pub groups: u64,
}

/// An index as CREATE INDEX (or a UNIQUE constraint) declares it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexSpec {
    /// Index name.
    pub name: String,
    /// Indexed column positions.
    pub columns: Vec<usize>,
    /// Whether values must be unique.
    pub unique: bool,
}

/// The current catalog, shared between the one writer (the state machine, after each
/// DDL) and every reader (planners), who take a cheap `Arc` of it without waiting for
/// the apply path.
#[derive(Clone, Debug, Default)]
pub struct SharedCatalog(Arc<RwLock<Arc<Catalog>>>);

impl SharedCatalog {
    /// A shared handle starting at `catalog`.
    pub fn new(catalog: Catalog) -> SharedCatalog {
        SharedCatalog(Arc::new(RwLock::new(Arc::new(catalog))))
    }

    /// The catalog as of now; later changes do not alter it.
    pub fn current(&self) -> Arc<Catalog> {
        Arc::clone(&self.0.read().unwrap_or_else(|poison| poison.into_inner()))
    }

    /// Makes `catalog` the current one for every holder of the handle.
    pub fn replace(&self, catalog: Arc<Catalog>) {
        *self.0.write().unwrap_or_else(|poison| poison.into_inner()) = catalog;
    }
}

/// Every table, by name, plus the id counters and the shard map's version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    tables: BTreeMap<String, Table>,
    next_table_id: TableId,
    next_index_id: IndexId,
    /// Grows with every change: a data group installs a catalog only if it is newer
    /// than its own copy, and a commit names the version it was planned against.
    version: u64,
    /// Grows with every change of where shards live (a table created or dropped), so a
    /// statement routed with an older map can be told apart.
    shard_map_version: u64,
}

impl Catalog {
    /// The version of the shard map (see the field's doc).
    pub fn shard_map_version(&self) -> u64 {
        self.shard_map_version
    }

    /// The catalog's version (see the field's doc).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Looks a table up by name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Looks a table up by name, or fails with 42P01.
    pub fn require_table(&self, name: &str) -> Result<&Table> {
        self.table(name)
            .ok_or_else(|| Error::UndefinedTable(name.to_string()))
    }

    /// Looks a table up by id.
    pub fn table_by_id(&self, id: TableId) -> Option<&Table> {
        self.tables.values().find(|t| t.id == id)
    }

    /// Every table, in name order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// Finds the table owning the index called `name`.
    pub fn index_owner(&self, name: &str) -> Option<(&Table, &Index)> {
        self.tables
            .values()
            .find_map(|t| t.indexes.iter().find(|i| i.name == name).map(|i| (t, i)))
    }

    /// Whether a table or index already uses `name` (they share one namespace).
    pub fn relation_exists(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.index_owner(name).is_some()
    }

    /// Adds a table with fresh ids; its unique constraints become indexes.
    pub fn add_table(&mut self, spec: TableSpec, created_ts: u64) -> Result<&Table> {
        if self.relation_exists(&spec.name) {
            return Err(Error::DuplicateTable(spec.name));
        }
        let id = self.next_table_id;
        self.next_table_id += 1;
        let shard_count = spec.shard_count.clamp(1, shard::MAX_TABLE_SHARDS);
        let mut table = Table {
            id,
            name: spec.name.clone(),
            columns: spec.columns,
            primary_key: spec.primary_key,
            indexes: Vec::new(),
            shard_count,
            placement: shard::place_shards(id, shard_count, spec.groups),
            changed_version: self.version + 1,
        };
        for unique in spec.unique_constraints {
            if table.indexes.iter().any(|i| i.name == unique.name)
                || self.relation_exists(&unique.name)
            {
                return Err(Error::DuplicateTable(unique.name));
            }
            table.indexes.push(self.new_index(unique, created_ts));
        }
        self.tables.insert(spec.name.clone(), table);
        self.shard_map_version += 1;
        self.version += 1;
        Ok(&self.tables[&spec.name])
    }

    fn new_index(&mut self, spec: IndexSpec, created_ts: u64) -> Index {
        let id = self.next_index_id;
        self.next_index_id += 1;
        Index {
            id,
            name: spec.name,
            columns: spec.columns,
            unique: spec.unique,
            created_ts,
        }
    }

    /// Adds an index to a table; the caller backfills its entries in the same batch.
    pub fn add_index(&mut self, table: &str, spec: IndexSpec, created_ts: u64) -> Result<Index> {
        if self.relation_exists(&spec.name) {
            return Err(Error::DuplicateTable(spec.name));
        }
        let index = self.new_index(spec, created_ts);
        let table = self
            .tables
            .get_mut(table)
            .ok_or_else(|| Error::UndefinedTable(table.to_string()))?;
        table.indexes.push(index.clone());
        self.version += 1;
        table.changed_version = self.version;
        Ok(index)
    }

    /// Makes a built index usable by snapshots at or after `ready_ts` (see
    /// [`INDEX_BUILDING`]).
    pub fn set_index_ready(&mut self, index: IndexId, ready_ts: u64) -> Result<()> {
        let version = self.version + 1;
        let table = self
            .tables
            .values_mut()
            .find(|table| table.indexes.iter().any(|candidate| candidate.id == index))
            .ok_or_else(|| Error::UndefinedObject(format!("index with id {index}")))?;
        for candidate in table.indexes.iter_mut().filter(|c| c.id == index) {
            candidate.created_ts = ready_ts;
        }
        table.changed_version = version;
        self.version = version;
        Ok(())
    }

    /// Removes a table, returning its definition.
    pub fn remove_table(&mut self, name: &str) -> Result<Table> {
        let table = self
            .tables
            .remove(name)
            .ok_or_else(|| Error::UndefinedTable(name.to_string()))?;
        self.shard_map_version += 1;
        self.version += 1;
        Ok(table)
    }

    /// Gives table `name` and its indexes fresh ids, keeping its definition and shard
    /// placement (TRUNCATE: the rows under the old ids go, the table is empty under the
    /// new ones, and ids are never reused, so nothing stale can reappear). Returns the
    /// table as it was.
    pub fn renew_table(&mut self, name: &str) -> Result<Table> {
        let old = self.require_table(name)?.clone();
        let mut renewed = old.clone();
        renewed.id = self.next_table_id;
        self.next_table_id += 1;
        for index in &mut renewed.indexes {
            index.id = self.next_index_id;
            self.next_index_id += 1;
            // An empty table's indexes are complete from the start.
            index.created_ts = 0;
        }
        self.version += 1;
        renewed.changed_version = self.version;
        self.shard_map_version += 1;
        self.tables.insert(name.to_string(), renewed);
        Ok(old)
    }

    /// Removes an index by name, returning its table id and the index.
    pub fn remove_index(&mut self, name: &str) -> Result<(TableId, Index)> {
        for table in self.tables.values_mut() {
            if let Some(position) = table.indexes.iter().position(|i| i.name == name) {
                self.version += 1;
                table.changed_version = self.version;
                return Ok((table.id, table.indexes.remove(position)));
            }
        }
        Err(Error::UndefinedObject(format!(
            "index \"{name}\" does not exist"
        )))
    }
}

/// For tests: a table `name (id BIGINT PRIMARY KEY)` in `shard_count` shards over
/// `groups` groups.
#[cfg(test)]
pub fn test_table_spec(name: &str, shard_count: u16, groups: u64) -> TableSpec {
    TableSpec {
        name: name.into(),
        columns: vec![Column {
            name: "id".into(),
            data_type: DataType::BigInt,
            nullable: false,
            default: None,
            hidden: false,
        }],
        primary_key: vec![0],
        unique_constraints: vec![],
        shard_count,
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> TableSpec {
        test_table_spec(name, 1, 1)
    }

    /// Ids are never reused and tables and indexes share one namespace.
    #[test]
    fn ids_and_namespace() {
        let mut catalog = Catalog::default();
        let first = catalog.add_table(spec("a"), 1).unwrap().id;
        catalog.remove_table("a").unwrap();
        let second = catalog.add_table(spec("a"), 2).unwrap().id;
        assert_ne!(first, second);
        assert_eq!(catalog.shard_map_version(), 3, "two creates and a drop");
        let index = IndexSpec {
            name: "a_idx".into(),
            columns: vec![0],
            unique: false,
        };
        catalog.add_index("a", index.clone(), 3).unwrap();
        assert_eq!(
            catalog.add_index("a", index, 4).unwrap_err().sqlstate(),
            "42P07"
        );
        assert_eq!(
            catalog.add_table(spec("a_idx"), 5).unwrap_err().sqlstate(),
            "42P07"
        );
        assert_eq!(catalog.index_owner("a_idx").unwrap().0.name, "a");
        catalog.remove_index("a_idx").unwrap();
        assert_eq!(
            catalog.remove_index("a_idx").unwrap_err().sqlstate(),
            "42704"
        );
    }
}
