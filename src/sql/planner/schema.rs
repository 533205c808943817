//! Planning schema changes: CREATE TABLE into a table definition (columns, keys,
//! defaults, and the sequences of its SERIAL and identity columns), CREATE INDEX into an
//! index definition, and CREATE / ALTER SEQUENCE into a sequence's options.

use super::expression::{bind_for_column, Expression};
use super::{fold, Planner};
use crate::catalog::sequence::{SequenceOwner, SequenceSpec};
use crate::catalog::{Column, ColumnDefault, IndexSpec, TableSpec, HIDDEN_ROW_ID};
use crate::error::{Error, Result};
use crate::sql::ast::{ColumnDefinition, CreateTable, DeclaredOptions};
use crate::types::DataType;

impl Planner<'_> {
    /// Turns CREATE TABLE into a table definition: checks names, resolves the primary
    /// key (adding a hidden row id when there is none) and evaluates defaults. The
    /// table gets `WITH (shards = N)` shards, or `default_shards`, placed on a pool of
    /// `groups` data groups.
    pub fn table_spec(
        &self,
        create: &CreateTable,
        default_shards: u16,
        groups: u64,
    ) -> Result<TableSpec> {
        let mut columns: Vec<Column> = Vec::with_capacity(create.columns.len() + 1);
        let mut sequences = Vec::new();
        for definition in &create.columns {
            if columns.iter().any(|c| c.name == definition.name) {
                return Err(Error::DuplicateColumn(definition.name.clone()));
            }
            let mut column =
                Column::plain(&definition.name, definition.data_type, !definition.not_null);
            column.default = self.column_default(definition)?;
            if let Some(generated) = &definition.generated {
                let taken = |name: &str| sequences.iter().any(|s: &SequenceSpec| s.name == name);
                let name = self
                    .free_relation_name(&format!("{}_{}_seq", create.name, definition.name), taken);
                let sequence = self.generated_key_sequence(definition, &generated.options, name)?;
                column.default = Some(ColumnDefault::Expression(next_value_sql(&sequence.name)));
                column.nullable = false;
                column.identity = generated.identity;
                sequences.push(SequenceSpec {
                    owner: Some(SequenceOwner {
                        table: create.name.clone(),
                        column: definition.name.clone(),
                    }),
                    ..sequence
                });
            }
            columns.push(column);
        }
        let column_level: Vec<String> = create
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.clone())
            .collect();
        let key_names = match (&create.primary_key, column_level.len()) {
            (Some(_), n) if n > 0 => return Err(multiple_primary_keys(&create.name)),
            (Some(names), _) => names.clone(),
            (None, 0 | 1) => column_level,
            (None, _) => return Err(multiple_primary_keys(&create.name)),
        };
        let position_of = |name: &String, columns: &[Column]| {
            columns.iter().position(|c| &c.name == name).ok_or_else(|| {
                Error::UndefinedColumn(format!("\"{name}\" named in key does not exist"))
            })
        };
        let mut primary_key = Vec::with_capacity(key_names.len());
        for name in &key_names {
            let position = position_of(name, &columns)?;
            if primary_key.contains(&position) {
                return Err(Error::DuplicateColumn(name.clone()));
            }
            columns[position].nullable = false;
            primary_key.push(position);
        }
        let mut unique_constraints = Vec::new();
        let mut add_unique =
            |name: Option<String>, names: &[String], columns: &[Column]| -> Result<()> {
                let positions = names
                    .iter()
                    .map(|n| position_of(n, columns))
                    .collect::<Result<Vec<_>>>()?;
                let name =
                    name.unwrap_or_else(|| format!("{}_{}_key", create.name, names.join("_")));
                unique_constraints.push(IndexSpec {
                    name,
                    columns: positions,
                    unique: true,
                });
                Ok(())
            };
        for definition in create.columns.iter().filter(|c| c.unique) {
            add_unique(None, std::slice::from_ref(&definition.name), &columns)?;
        }
        for (name, names) in &create.unique {
            add_unique(name.clone(), names, &columns)?;
        }
        if primary_key.is_empty() {
            columns.push(Column {
                hidden: true,
                ..Column::plain(HIDDEN_ROW_ID, DataType::BigInt, false)
            });
            primary_key.push(columns.len() - 1);
        }
        Ok(TableSpec {
            name: create.name.clone(),
            columns,
            primary_key,
            unique_constraints,
            shard_count: create.shards.unwrap_or(default_shards),
            groups,
            sequences,
        })
    }

    /// Turns CREATE INDEX into an index definition, naming it as PostgreSQL would when
    /// no name is given.
    pub fn index_spec(
        &self,
        name: Option<&str>,
        table: &str,
        columns: &[String],
        unique: bool,
    ) -> Result<IndexSpec> {
        let table = self.catalog.require_table(table)?;
        let mut positions = Vec::with_capacity(columns.len());
        for column in columns {
            let position = table
                .column_index(column)
                .filter(|&i| !table.columns[i].hidden)
                .ok_or_else(|| Error::UndefinedColumn(format!("\"{column}\" does not exist")))?;
            positions.push(position);
        }
        let name = match name {
            Some(name) => name.to_string(),
            None => self.free_index_name(&format!(
                "{}_{}_{}",
                table.name,
                columns.join("_"),
                if unique { "key" } else { "idx" }
            )),
        };
        Ok(IndexSpec {
            name,
            columns: positions,
            unique,
        })
    }

    fn free_index_name(&self, base: &str) -> String {
        self.free_relation_name(base, |_| false)
    }

    /// `base`, or `base1`, `base2`, ... whichever is the first name no relation has
    /// (nor `taken` says is spoken for), as PostgreSQL names implicit relations.
    fn free_relation_name(&self, base: &str, taken: impl Fn(&str) -> bool) -> String {
        let free = |name: &str| !self.catalog.relation_exists(name) && !taken(name);
        if free(base) {
            return base.to_string();
        }
        (1..)
            .map(|n| format!("{base}{n}"))
            .find(|n| free(n))
            .unwrap_or_else(|| base.to_string())
    }

    /// A column's DEFAULT: a constant when it folds to one (evaluated once, now), else
    /// the expression's text, planned again by each INSERT (`nextval(...)`, `now()`).
    fn column_default(&self, definition: &ColumnDefinition) -> Result<Option<ColumnDefault>> {
        let Some(expr) = &definition.default else {
            return Ok(None);
        };
        if definition.generated.is_some() {
            return Err(Error::Syntax {
                message: format!(
                    "multiple default values specified for column \"{}\"",
                    definition.name
                ),
                position: None,
            });
        }
        let scope = self.empty_scope("DEFAULT expressions");
        let bound = fold(bind_for_column(
            expr,
            &scope,
            definition.data_type,
            &definition.name,
        )?)?;
        if let Expression::Constant(value) = bound {
            let value = definition
                .data_type
                .coerce_for_assignment(value, &definition.name)?;
            return Ok(Some(ColumnDefault::Constant(value)));
        }
        if bound.has_subquery() {
            return Err(Error::FeatureNotSupported(
                "cannot use subquery in DEFAULT expression".into(),
            ));
        }
        let sql = definition.default_sql.clone().ok_or_else(|| {
            Error::Internal(format!(
                "the DEFAULT of \"{}\" has no text",
                definition.name
            ))
        })?;
        Ok(Some(ColumnDefault::Expression(sql)))
    }

    /// The sequence of a SERIAL or identity column, its type the column's.
    fn generated_key_sequence(
        &self,
        definition: &ColumnDefinition,
        declared: &DeclaredOptions,
        name: String,
    ) -> Result<SequenceSpec> {
        if !definition.data_type.is_integer() {
            return Err(Error::InvalidParameterValue(format!(
                "identity column type must be smallint, integer, or bigint, not {}",
                definition.data_type.sql_name()
            )));
        }
        let declared = DeclaredOptions {
            data_type: Some(definition.data_type),
            ..declared.clone()
        };
        Ok(SequenceSpec {
            name,
            options: declared.resolve(None)?,
            owner: None,
        })
    }

    /// CREATE SEQUENCE's definition: options checked, the owner's column found.
    pub fn sequence_spec(
        &self,
        name: &str,
        declared: &DeclaredOptions,
        owned_by: Option<&(String, String)>,
    ) -> Result<SequenceSpec> {
        let owner = owned_by
            .map(|(table, column)| {
                self.catalog.require_table(table)?.require_column(column)?;
                Ok::<_, Error>(SequenceOwner {
                    table: table.clone(),
                    column: column.clone(),
                })
            })
            .transpose()?;
        Ok(SequenceSpec {
            name: name.to_string(),
            options: declared.resolve(None)?,
            owner,
        })
    }
}

/// The DEFAULT of a SERIAL or identity column, as PostgreSQL shows it.
pub fn next_value_sql(sequence: &str) -> String {
    format!("nextval('{}'::regclass)", sequence.replace('\'', "''"))
}

fn multiple_primary_keys(table: &str) -> Error {
    Error::InvalidTableDefinition(format!(
        "multiple primary keys for table \"{table}\" are not allowed"
    ))
}
