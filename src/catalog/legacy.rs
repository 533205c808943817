//! Reading catalog values written in older formats (see `encoding`'s format evolution).
//!
//! Catalog types are inside Raft log entries (DDL operations), snapshots and the stored
//! catalog, so a node upgraded to a newer format meets their older layouts. Each type
//! whose layout changed decodes here: in the layout of the version being decoded
//! ([`encoding::decoding_version`]), converted to the current one. Format 1 (before
//! sequences): a column's default was a constant, with no identity; a table spec had no
//! sequences; the catalog had none either.

use super::{Catalog, Column, ColumnDefault, IdentityKind, IndexSpec, Table, TableSpec};
use super::{Sequence, SequenceId, SequenceSpec};
use crate::encoding;
use crate::storage::keys::{IndexId, TableId};
use crate::types::{DataType, Value};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Whether the value being decoded was written in format 1.
fn format_one() -> bool {
    encoding::decoding_version() == 1
}

#[derive(Deserialize)]
struct ColumnFormat1 {
    name: String,
    data_type: DataType,
    nullable: bool,
    default: Option<Value>,
    hidden: bool,
}

#[derive(Deserialize)]
struct ColumnFormat2 {
    name: String,
    data_type: DataType,
    nullable: bool,
    default: Option<ColumnDefault>,
    hidden: bool,
    identity: Option<IdentityKind>,
}

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Column, D::Error> {
        if format_one() {
            let old = ColumnFormat1::deserialize(deserializer)?;
            return Ok(Column {
                name: old.name,
                data_type: old.data_type,
                nullable: old.nullable,
                default: old.default.map(ColumnDefault::Constant),
                hidden: old.hidden,
                identity: None,
            });
        }
        let current = ColumnFormat2::deserialize(deserializer)?;
        Ok(Column {
            name: current.name,
            data_type: current.data_type,
            nullable: current.nullable,
            default: current.default,
            hidden: current.hidden,
            identity: current.identity,
        })
    }
}

#[derive(Deserialize)]
struct TableSpecFormat2 {
    name: String,
    columns: Vec<Column>,
    primary_key: Vec<usize>,
    unique_constraints: Vec<IndexSpec>,
    shard_count: u16,
    groups: u64,
    /// Absent in format 1.
    sequences: Vec<SequenceSpec>,
}

#[derive(Deserialize)]
struct TableSpecFormat1 {
    name: String,
    columns: Vec<Column>,
    primary_key: Vec<usize>,
    unique_constraints: Vec<IndexSpec>,
    shard_count: u16,
    groups: u64,
}

impl<'de> Deserialize<'de> for TableSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TableSpec, D::Error> {
        let spec = if format_one() {
            let old = TableSpecFormat1::deserialize(deserializer)?;
            TableSpecFormat2 {
                name: old.name,
                columns: old.columns,
                primary_key: old.primary_key,
                unique_constraints: old.unique_constraints,
                shard_count: old.shard_count,
                groups: old.groups,
                sequences: Vec::new(),
            }
        } else {
            TableSpecFormat2::deserialize(deserializer)?
        };
        Ok(TableSpec {
            name: spec.name,
            columns: spec.columns,
            primary_key: spec.primary_key,
            unique_constraints: spec.unique_constraints,
            shard_count: spec.shard_count,
            groups: spec.groups,
            sequences: spec.sequences,
        })
    }
}

#[derive(Deserialize)]
struct CatalogFormat1 {
    tables: BTreeMap<String, Table>,
    next_table_id: TableId,
    next_index_id: IndexId,
    version: u64,
    shard_map_version: u64,
}

#[derive(Deserialize)]
struct CatalogFormat2 {
    tables: BTreeMap<String, Table>,
    next_table_id: TableId,
    next_index_id: IndexId,
    version: u64,
    shard_map_version: u64,
    sequences: BTreeMap<String, Sequence>,
    next_sequence_id: SequenceId,
}

impl<'de> Deserialize<'de> for Catalog {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Catalog, D::Error> {
        let catalog = if format_one() {
            let old = CatalogFormat1::deserialize(deserializer)?;
            CatalogFormat2 {
                tables: old.tables,
                next_table_id: old.next_table_id,
                next_index_id: old.next_index_id,
                version: old.version,
                shard_map_version: old.shard_map_version,
                sequences: BTreeMap::new(),
                next_sequence_id: 0,
            }
        } else {
            CatalogFormat2::deserialize(deserializer)?
        };
        Ok(Catalog {
            tables: catalog.tables,
            next_table_id: catalog.next_table_id,
            next_index_id: catalog.next_index_id,
            version: catalog.version,
            shard_map_version: catalog.shard_map_version,
            sequences: catalog.sequences,
            next_sequence_id: catalog.next_sequence_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    /// Format 1's layouts, as an older Tessera wrote them.
    #[derive(Serialize)]
    struct WrittenColumn {
        name: String,
        data_type: DataType,
        nullable: bool,
        default: Option<Value>,
        hidden: bool,
    }

    #[derive(Serialize)]
    struct WrittenSpec {
        name: String,
        columns: Vec<WrittenColumn>,
        primary_key: Vec<usize>,
        unique_constraints: Vec<IndexSpec>,
        shard_count: u16,
        groups: u64,
    }

    fn format_one_bytes<T: Serialize>(value: &T) -> Vec<u8> {
        let mut bytes = encoding::encode(value).unwrap();
        bytes[0] = 1;
        bytes
    }

    /// A table spec written in format 1 (a constant default, no sequences) reads as
    /// the current type, and a format-1 catalog reads with no sequences.
    #[test]
    fn format_one_values_still_decode() {
        let written = WrittenSpec {
            name: "t".into(),
            columns: vec![WrittenColumn {
                name: "a".into(),
                data_type: DataType::Integer,
                nullable: true,
                default: Some(Value::Integer(7)),
                hidden: false,
            }],
            primary_key: vec![0],
            unique_constraints: vec![],
            shard_count: 4,
            groups: 1,
        };
        let spec: TableSpec = encoding::decode(&format_one_bytes(&written)).unwrap();
        assert_eq!(
            spec.columns[0].default,
            Some(ColumnDefault::Constant(Value::Integer(7)))
        );
        assert_eq!(spec.columns[0].identity, None);
        assert!(spec.sequences.is_empty());
        // A format-1 catalog: tables (none here), the id counters and versions.
        let no_tables = BTreeMap::<String, Table>::new();
        let old_catalog = (no_tables, 3 as TableId, 5 as IndexId, 9u64, 2u64);
        let catalog: Catalog = encoding::decode(&format_one_bytes(&old_catalog)).unwrap();
        assert_eq!((catalog.version(), catalog.shard_map_version()), (9, 2));
        assert_eq!(catalog.sequences().count(), 0);
        let back: Catalog = encoding::decode(&encoding::encode(&catalog).unwrap()).unwrap();
        assert_eq!(back, catalog);
    }
}
