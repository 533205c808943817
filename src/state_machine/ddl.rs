//! Schema changes: what a DDL operation does to the catalog, and what a data group does
//! when a new catalog reaches it.
//!
//! The catalog has one holder that orders its changes: the embedded engine's state
//! machine, or a cluster's metadata group (so that every node, whichever groups it
//! hosts, plans against the same catalog). [`change_catalog`] is the one place a DDL
//! operation is checked and turned into a new catalog value; both holders call it, so
//! names, ids and errors are the same everywhere.
//!
//! In a cluster each data group keeps its own copy of the catalog, changed only through
//! its own log by [`Operation::InstallCatalog`](super::Operation::InstallCatalog):
//! every replica of the group applies the same copy to the same entries, so index
//! maintenance and the checks of a commit are deterministic per group even though the
//! groups receive a new catalog at different moments. Installing works out what the
//! difference means for the group's data: a dropped table's or index's keys go, a new
//! index is backfilled from the group's rows. A copy never goes backwards (an older or
//! equal version is skipped), so installs may be repeated or arrive late.

use super::{delete_prefix, delete_table_data, index_maintenance, skipped, Applied, ProgressFn};
use crate::catalog::sequence::{DeclaredOptions, SequenceOwner};
use crate::catalog::{Catalog, Index, IndexSpec, SequenceSpec, Table, TableSpec};
use crate::error::{Error, Result};
use crate::shard::GroupId;
use crate::storage::keys::{self, IndexId};
use crate::storage::{Batch, Store};

/// A DDL operation, as [`change_catalog`] applies it.
pub enum SchemaChange<'a> {
    /// CREATE TABLE.
    CreateTable {
        /// The definition.
        spec: &'a TableSpec,
        /// Whether an existing relation of that name is a notice.
        if_not_exists: bool,
    },
    /// DROP TABLE of one table or several, all at once.
    DropTables {
        /// The tables.
        names: &'a [String],
        /// Whether a missing table is skipped (the session has given its notice).
        if_exists: bool,
    },
    /// TRUNCATE: the tables keep their definitions under fresh ids; their rows go.
    Truncate {
        /// The tables.
        names: &'a [String],
    },
    /// CREATE INDEX.
    CreateIndex {
        /// The table.
        table: &'a str,
        /// The index.
        spec: &'a IndexSpec,
        /// Whether an existing relation of that name is a notice.
        if_not_exists: bool,
    },
    /// DROP INDEX.
    DropIndex {
        /// The index.
        name: &'a str,
        /// Whether a missing index is a notice.
        if_exists: bool,
    },
    /// An index built in every data group becomes readable from `ready_ts`.
    IndexReady {
        /// The index.
        index: IndexId,
        /// The latest backfill timestamp of the groups.
        ready_ts: u64,
    },
    /// CREATE SEQUENCE.
    CreateSequence {
        /// The sequence.
        spec: &'a SequenceSpec,
        /// Whether an existing relation of that name is a notice.
        if_not_exists: bool,
    },
    /// ALTER SEQUENCE.
    AlterSequence {
        /// The sequence.
        name: &'a str,
        /// The options given, completed over the current ones.
        options: &'a DeclaredOptions,
        /// `RESTART [WITH n]`.
        restart: Option<Option<i64>>,
        /// A new owner.
        owner: Option<&'a Option<SequenceOwner>>,
    },
    /// DROP SEQUENCE.
    DropSequences {
        /// The sequences.
        names: &'a [String],
        /// Whether a missing one is skipped.
        if_exists: bool,
    },
}

/// What a schema change did to the catalog, for the holder to act on its data.
pub enum CatalogEffect {
    /// Nothing changed (IF [NOT] EXISTS); the notice says why.
    Skipped(Applied),
    /// A table was created, or an index made ready: no data to touch.
    Defined,
    /// The table went: its keys must go.
    TableDropped(Table),
    /// An index was added to this table (as it now is): it needs a backfill.
    IndexAdded(Table, Index),
    /// The index of this table went: its entries must go.
    IndexDropped(Table, Index),
    /// Several effects of one change (a DROP or TRUNCATE of several tables).
    Several(Vec<CatalogEffect>),
}

/// Applies `change` to `catalog`, new indexes of existing tables getting `created_ts`
/// (the commit timestamp where they are backfilled at once, or
/// [`crate::catalog::INDEX_BUILDING`] where data groups build them later).
pub fn change_catalog(
    catalog: &mut Catalog,
    change: SchemaChange,
    created_ts: u64,
) -> Result<CatalogEffect> {
    match change {
        SchemaChange::CreateTable {
            spec,
            if_not_exists,
        } => {
            if if_not_exists && catalog.relation_exists(&spec.name) {
                return Ok(CatalogEffect::Skipped(already_exists(&spec.name)));
            }
            // A new table has no rows: its indexes are complete from the start.
            catalog.add_table(spec.clone(), 0)?;
            Ok(CatalogEffect::Defined)
        }
        SchemaChange::DropTables { names, if_exists } => {
            let mut dropped = Vec::with_capacity(names.len());
            for name in names {
                if if_exists && catalog.table(name).is_none() {
                    continue;
                }
                dropped.push(CatalogEffect::TableDropped(catalog.remove_table(name)?));
            }
            if dropped.is_empty() {
                return Ok(CatalogEffect::Skipped(skipped(format!(
                    "table \"{}\" does not exist, skipping",
                    names.join("\", \"")
                ))));
            }
            Ok(CatalogEffect::Several(dropped))
        }
        SchemaChange::Truncate { names } => {
            let mut emptied = Vec::with_capacity(names.len());
            for name in names {
                emptied.push(CatalogEffect::TableDropped(catalog.renew_table(name)?));
            }
            Ok(CatalogEffect::Several(emptied))
        }
        SchemaChange::CreateIndex {
            table,
            spec,
            if_not_exists,
        } => {
            if if_not_exists && catalog.relation_exists(&spec.name) {
                return Ok(CatalogEffect::Skipped(already_exists(&spec.name)));
            }
            let index = catalog.add_index(table, spec.clone(), created_ts)?;
            let table = catalog.require_table(table)?.clone();
            Ok(CatalogEffect::IndexAdded(table, index))
        }
        SchemaChange::DropIndex { name, if_exists } => {
            if if_exists && catalog.index_owner(name).is_none() {
                return Ok(CatalogEffect::Skipped(skipped(format!(
                    "index \"{name}\" does not exist, skipping"
                ))));
            }
            let (table_id, index) = catalog.remove_index(name)?;
            let table = catalog
                .table_by_id(table_id)
                .ok_or_else(|| Error::Internal("index owner vanished".into()))?
                .clone();
            Ok(CatalogEffect::IndexDropped(table, index))
        }
        SchemaChange::IndexReady { index, ready_ts } => {
            catalog.set_index_ready(index, ready_ts)?;
            Ok(CatalogEffect::Defined)
        }
        SchemaChange::CreateSequence {
            spec,
            if_not_exists,
        } => {
            if if_not_exists && catalog.relation_exists(&spec.name) {
                return Ok(CatalogEffect::Skipped(already_exists(&spec.name)));
            }
            catalog.add_sequence(spec.clone())?;
            Ok(CatalogEffect::Defined)
        }
        SchemaChange::AlterSequence {
            name,
            options,
            restart,
            owner,
        } => {
            catalog.alter_sequence(name, options, restart, owner.cloned())?;
            Ok(CatalogEffect::Defined)
        }
        SchemaChange::DropSequences { names, if_exists } => {
            let mut dropped = 0;
            for name in names {
                if if_exists && catalog.sequence(name).is_none() {
                    continue;
                }
                catalog.remove_sequence(name)?;
                dropped += 1;
            }
            if dropped == 0 {
                return Ok(CatalogEffect::Skipped(skipped(format!(
                    "sequence \"{}\" does not exist, skipping",
                    names.join("\", \"")
                ))));
            }
            // A sequence has no data in the data groups; its position record goes
            // where the catalog is held (see `sequences::forget_dropped`).
            Ok(CatalogEffect::Defined)
        }
    }
}

/// Adds to `batch` what a catalog effect does to the data of `group` in `store` at `ts`.
pub fn apply_effect(
    store: &Store,
    group: GroupId,
    effect: &CatalogEffect,
    ts: u64,
    prepared: usize,
    batch: &mut Batch,
    progress: Option<ProgressFn>,
) -> Result<()> {
    match effect {
        CatalogEffect::Skipped(_) | CatalogEffect::Defined => Ok(()),
        CatalogEffect::TableDropped(table) => {
            delete_table_data(table, batch);
            Ok(())
        }
        CatalogEffect::Several(effects) => effects.iter().try_for_each(|effect| {
            apply_effect(store, group, effect, ts, prepared, batch, progress)
        }),
        CatalogEffect::IndexAdded(table, index) => {
            if prepared > 0 {
                super::two_phase::refuse_while_prepared(store, table.id, &table.name)?;
            }
            index_maintenance::backfill(store, group, table, index, ts, batch, progress)
        }
        CatalogEffect::IndexDropped(table, index) => {
            for shard in table.shards() {
                delete_prefix(&keys::index_prefix(shard, table.id, index.id), batch);
            }
            Ok(())
        }
    }
}

/// What installing `new` over a group's copy `old` does to the group's data: one
/// effect per table dropped, index dropped and index added (tables created need
/// nothing). Effects are listed drops first, so a backfill never reads keys about to go.
pub fn install_effects(old: &Catalog, new: &Catalog) -> Vec<CatalogEffect> {
    let mut drops = Vec::new();
    let mut adds = Vec::new();
    for table in old.tables() {
        let Some(kept) = new.table_by_id(table.id) else {
            drops.push(CatalogEffect::TableDropped(table.clone()));
            continue;
        };
        for index in &table.indexes {
            if !kept
                .indexes
                .iter()
                .any(|candidate| candidate.id == index.id)
            {
                drops.push(CatalogEffect::IndexDropped(table.clone(), index.clone()));
            }
        }
        for index in &kept.indexes {
            if !table
                .indexes
                .iter()
                .any(|candidate| candidate.id == index.id)
            {
                adds.push(CatalogEffect::IndexAdded(kept.clone(), index.clone()));
            }
        }
    }
    drops.extend(adds);
    drops
}

/// The notice of CREATE ... IF NOT EXISTS when the name is taken.
fn already_exists(name: &str) -> Applied {
    skipped(format!("relation \"{name}\" already exists, skipping"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> TableSpec {
        crate::catalog::test_table_spec(name, 2, 1)
    }

    /// Installing a newer catalog over an older copy drops what went and backfills what
    /// was added to a table that already existed (not the indexes of a new table).
    #[test]
    fn install_effects_follow_the_difference() {
        let mut old = Catalog::default();
        for name in ["kept", "gone"] {
            let create = SchemaChange::CreateTable {
                spec: &spec(name),
                if_not_exists: false,
            };
            change_catalog(&mut old, create, 1).unwrap();
        }
        let index = IndexSpec {
            name: "kept_old".into(),
            columns: vec![0],
            unique: false,
        };
        let add = |catalog: &mut Catalog, spec: &IndexSpec| {
            let create = SchemaChange::CreateIndex {
                table: "kept",
                spec,
                if_not_exists: false,
            };
            change_catalog(catalog, create, crate::catalog::INDEX_BUILDING).unwrap();
        };
        add(&mut old, &index);
        let mut new = old.clone();
        let gone = ["gone".to_string()];
        let drop = SchemaChange::DropTables {
            names: &gone,
            if_exists: false,
        };
        change_catalog(&mut new, drop, 2).unwrap();
        let drop_index = SchemaChange::DropIndex {
            name: "kept_old",
            if_exists: false,
        };
        change_catalog(&mut new, drop_index, 2).unwrap();
        let fresh = IndexSpec {
            name: "kept_new".into(),
            ..index
        };
        add(&mut new, &fresh);
        let create = SchemaChange::CreateTable {
            spec: &spec("born"),
            if_not_exists: false,
        };
        change_catalog(&mut new, create, 2).unwrap();
        assert!(new.version() > old.version());
        let effects: Vec<String> = install_effects(&old, &new)
            .iter()
            .map(|effect| match effect {
                CatalogEffect::TableDropped(table) => format!("drop {}", table.name),
                CatalogEffect::IndexDropped(_, index) => format!("drop {}", index.name),
                CatalogEffect::IndexAdded(_, index) => format!("add {}", index.name),
                CatalogEffect::Skipped(_) | CatalogEffect::Defined | CatalogEffect::Several(_) => {
                    "other".into()
                }
            })
            .collect();
        assert_eq!(effects, ["drop gone", "drop kept_old", "add kept_new"]);
        assert!(install_effects(&new, &new).is_empty());
    }

    /// TRUNCATE keeps a table's definition under fresh table and index ids (never
    /// reused), and a group installing the result drops the rows of the old ids; a DROP
    /// of several tables where one is missing is refused whole.
    #[test]
    fn truncate_renews_ids_and_a_failed_drop_of_several_changes_nothing() {
        let mut catalog = Catalog::default();
        let create = SchemaChange::CreateTable {
            spec: &spec("t"),
            if_not_exists: false,
        };
        change_catalog(&mut catalog, create, 1).unwrap();
        let index = IndexSpec {
            name: "t_v".into(),
            columns: vec![1],
            unique: true,
        };
        let add = SchemaChange::CreateIndex {
            table: "t",
            spec: &index,
            if_not_exists: false,
        };
        change_catalog(&mut catalog, add, 1).unwrap();
        let before = catalog.clone();
        let names = ["t".to_string()];
        change_catalog(&mut catalog, SchemaChange::Truncate { names: &names }, 2).unwrap();
        let (old, new) = (before.table("t").unwrap(), catalog.table("t").unwrap());
        assert_ne!(old.id, new.id);
        assert_ne!(old.indexes[0].id, new.indexes[0].id);
        assert_eq!(new.indexes[0].created_ts, 0);
        assert_eq!(
            (&old.columns, &old.primary_key),
            (&new.columns, &new.primary_key)
        );
        let effects = install_effects(&before, &catalog);
        assert!(matches!(&effects[..], [CatalogEffect::TableDropped(t)] if t.id == old.id));

        // A missing table fails the whole change; the holders apply it to a copy of
        // the catalog and a batch that they drop on failure, so nothing went.
        let names = ["t".to_string(), "missing".to_string()];
        let drop = SchemaChange::DropTables {
            names: &names,
            if_exists: false,
        };
        let refused = change_catalog(&mut catalog.clone(), drop, 3);
        assert!(matches!(refused, Err(Error::UndefinedTable(name)) if name == "missing"));
    }
}
