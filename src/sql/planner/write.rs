//! Data changes: INSERT (with ON CONFLICT), UPDATE and DELETE, each with RETURNING.
//!
//! The plans produce full table rows (defaults filled in for INSERT, the scanned rows
//! for UPDATE and DELETE); the executor coerces them, checks NOT NULL and hands them to
//! the transaction, which enforces keys and unique values as it buffers them.

use super::expression::{
    self, bind, bind_boolean, bind_for_column, Expression, Scope, ScopeColumn,
};
use super::plan::{Arbiter, ConflictPlan, ConflictResolution, CopyTarget, Plan};
use super::{fold, visible_columns, OutputColumn, Planner};
use crate::catalog::{Column, ColumnDefault, IdentityKind, Table};
use crate::error::{Error, Result};
use crate::sql::ast::{
    ConflictAction, ConflictTarget, Delete, Expr, FromItem, Insert, InsertSource, JoinKind,
    OnConflict, SelectItem, TableReference, Update,
};
use crate::sql::parser;
use crate::types::Value;

impl Planner<'_> {
    /// Plans an INSERT: the source yields full rows in table column order, defaults
    /// filled in; the executor coerces and checks them. Returns the RETURNING columns
    /// (none without RETURNING).
    pub fn plan_insert(&self, insert: &Insert) -> Result<(Plan, Vec<OutputColumn>)> {
        let table = self.catalog.require_table(&insert.table)?;
        let targets = target_columns(table, insert.columns.as_deref())?;
        let column_defaults = self.column_defaults(table)?;
        let defaults = || column_defaults.clone();
        let source = match &insert.source {
            InsertSource::DefaultValues => Plan::Values {
                rows: vec![defaults()],
            },
            InsertSource::Values(rows) => {
                let scope = self.empty_scope("VALUES");
                let mut planned = Vec::with_capacity(rows.len());
                for row in rows {
                    if row.len() > targets.len() {
                        return Err(Error::Syntax {
                            message: "INSERT has more expressions than target columns".into(),
                            position: None,
                        });
                    }
                    if row.len() < targets.len() {
                        return Err(Error::Syntax {
                            message: "INSERT has more target columns than expressions".into(),
                            position: None,
                        });
                    }
                    let mut full = defaults();
                    for (item, &position) in row.iter().zip(&targets) {
                        if let Some(expr) = item {
                            let column = &table.columns[position];
                            refuse_generated_always(column)?;
                            full[position] = fold(bind_for_column(
                                expr,
                                &scope,
                                column.data_type,
                                &column.name,
                            )?)?;
                        }
                    }
                    planned.push(full);
                }
                Plan::Values { rows: planned }
            }
            InsertSource::Select(select) => {
                let (plan, columns) = self.plan_select(select)?;
                if columns.len() != targets.len() {
                    return Err(Error::Syntax {
                        message: format!(
                            "INSERT has {} target columns but the query returns {}",
                            targets.len(),
                            columns.len()
                        ),
                        position: None,
                    });
                }
                let mut full = defaults();
                for (i, &position) in targets.iter().enumerate() {
                    refuse_generated_always(&table.columns[position])?;
                    full[position] = Expression::Column {
                        index: i,
                        name: columns[i].name.clone(),
                        data_type: columns[i].data_type,
                    };
                }
                Plan::Project {
                    source: Box::new(plan),
                    expressions: full,
                }
            }
        };
        let visible = insert.alias.as_deref().unwrap_or(&table.name);
        let on_conflict = insert
            .on_conflict
            .as_ref()
            .map(|clause| self.plan_on_conflict(table, visible, clause).map(Box::new))
            .transpose()?;
        let written = TargetRows {
            plan: Plan::Values { rows: Vec::new() },
            columns: self.table_scope(table, visible, "RETURNING").columns,
            tables: vec![(visible.to_string(), table.clone())],
        };
        let (returning, columns) = self.plan_returning(&written, &insert.returning)?;
        let plan = Plan::Insert {
            table: table.clone(),
            source: Box::new(source),
            on_conflict,
            returning,
        };
        Ok((plan, columns))
    }

    /// Plans COPY FROM into `name`: the columns the data gives (all visible ones when
    /// `columns` is `None`) and what the others get. As in PostgreSQL, COPY may give
    /// values for GENERATED ALWAYS columns (a load restores rows as they were).
    pub fn plan_copy_target(&self, name: &str, columns: Option<&[String]>) -> Result<CopyTarget> {
        let table = self.catalog.require_table(name)?;
        let targets = target_columns(table, columns)?;
        let defaults = self.column_defaults(table)?;
        Ok(CopyTarget {
            table: table.clone(),
            targets,
            defaults,
        })
    }

    /// What each column of `table` gets when an INSERT leaves it out: its DEFAULT (an
    /// expression default is planned again by every INSERT and evaluated per row, so
    /// `nextval` gives each row its own value), or NULL.
    fn column_defaults(&self, table: &Table) -> Result<Vec<Expression>> {
        let scope = self.empty_scope("DEFAULT expressions");
        let default_of = |column: &Column| match &column.default {
            None => Ok(Expression::Constant(Value::Null)),
            Some(ColumnDefault::Constant(value)) => Ok(Expression::Constant(value.clone())),
            Some(ColumnDefault::Expression(sql)) => {
                let expr = parser::parse_expression(sql)?;
                fold(bind_for_column(
                    &expr,
                    &scope,
                    column.data_type,
                    &column.name,
                )?)
            }
        };
        table.columns.iter().map(default_of).collect()
    }

    /// Plans an UPDATE (with FROM, joined to the target by WHERE), with its RETURNING
    /// columns. The source yields the target's full row followed by the FROM tables'
    /// columns; assignments and RETURNING see them all.
    pub fn plan_update(&self, update: &Update) -> Result<(Plan, Vec<OutputColumn>)> {
        let table = self.catalog.require_table(&update.table)?;
        let visible = update.alias.as_deref().unwrap_or(&table.name);
        let target =
            self.target_rows(table, visible, update.from.as_ref(), update.filter.as_ref())?;
        let scope = self.scope_over(target.columns.clone(), "UPDATE");
        let bound = bind_assignments(table, &update.assignments, &scope, "UPDATE ... SET")?;
        let (returning, columns) = self.plan_returning(&target, &update.returning)?;
        let plan = Plan::Update {
            table: table.clone(),
            source: Box::new(target.plan),
            assignments: bound,
            returning,
        };
        Ok((plan, columns))
    }

    /// The rows an UPDATE or DELETE works on: the target's rows that WHERE selects,
    /// each followed, with FROM / USING, by the joined tables' columns.
    fn target_rows(
        &self,
        table: &Table,
        visible: &str,
        joined: Option<&FromItem>,
        filter: Option<&Expr>,
    ) -> Result<TargetRows> {
        let Some(joined) = joined else {
            return Ok(TargetRows {
                plan: self.filtered_scan(table, visible, filter)?,
                columns: self.table_scope(table, visible, "WHERE").columns,
                tables: vec![(visible.to_string(), table.clone())],
            });
        };
        let target = FromItem::Table(TableReference {
            name: table.name.clone(),
            alias: Some(visible.to_string()),
        });
        let from = FromItem::Join {
            left: Box::new(target),
            right: Box::new(joined.clone()),
            kind: JoinKind::Cross,
            on: None,
        };
        let planned = self.plan_from(&from, filter)?;
        Ok(TargetRows {
            plan: planned.plan,
            columns: planned.columns,
            tables: planned
                .sources
                .into_iter()
                .map(|source| (source.visible, source.table))
                .collect(),
        })
    }

    /// Binds ON CONFLICT: finds the arbiter the target names, and binds DO UPDATE's
    /// expressions over the existing row (as `visible`) followed by the proposed one
    /// (as `excluded`).
    fn plan_on_conflict(
        &self,
        table: &Table,
        visible: &str,
        clause: &OnConflict,
    ) -> Result<ConflictPlan> {
        let arbiter = arbiter(table, &clause.target)?;
        let resolution = match &clause.action {
            ConflictAction::Nothing => ConflictResolution::Nothing,
            ConflictAction::Update {
                assignments,
                filter,
            } => {
                let mut scope = self.table_scope(table, visible, "ON CONFLICT DO UPDATE");
                let proposed = self.table_scope(table, "excluded", "ON CONFLICT DO UPDATE");
                scope.columns.extend(proposed.columns);
                let assignments =
                    bind_assignments(table, assignments, &scope, "ON CONFLICT DO UPDATE")?;
                let filter = match filter {
                    None => None,
                    Some(filter) => {
                        let bound = fold(bind_boolean(filter, &scope, "WHERE")?)?;
                        if bound.has_subquery() {
                            return Err(Error::FeatureNotSupported(
                                "subqueries in ON CONFLICT DO UPDATE ... WHERE".into(),
                            ));
                        }
                        Some(bound)
                    }
                };
                ConflictResolution::Update {
                    assignments,
                    filter,
                }
            }
        };
        Ok(ConflictPlan {
            arbiter,
            resolution,
        })
    }

    /// Plans a DELETE (with USING, joined to the target by WHERE), with its RETURNING
    /// columns.
    pub fn plan_delete(&self, delete: &Delete) -> Result<(Plan, Vec<OutputColumn>)> {
        let table = self.catalog.require_table(&delete.table)?;
        let visible = delete.alias.as_deref().unwrap_or(&table.name);
        let target = self.target_rows(
            table,
            visible,
            delete.using.as_ref(),
            delete.filter.as_ref(),
        )?;
        let (returning, columns) = self.plan_returning(&target, &delete.returning)?;
        let plan = Plan::Delete {
            table: table.clone(),
            source: Box::new(target.plan),
            returning,
        };
        Ok((plan, columns))
    }

    /// Binds a RETURNING list against the rows written (each followed, for UPDATE ...
    /// FROM and DELETE ... USING, by the joined tables' columns; hidden columns left out
    /// of `*`): the expressions and the columns they return, or nothing without
    /// RETURNING.
    fn plan_returning(
        &self,
        target: &TargetRows,
        items: &[SelectItem],
    ) -> Result<(Option<Vec<Expression>>, Vec<OutputColumn>)> {
        if items.is_empty() {
            return Ok((None, Vec::new()));
        }
        let mut written: Vec<(Expr, String)> = Vec::new();
        for item in items {
            match item {
                SelectItem::Wildcard => {
                    for (visible, table) in &target.tables {
                        written.extend(visible_columns(table, Some(visible)));
                    }
                }
                SelectItem::QualifiedWildcard(name) => {
                    let (_, table) = target
                        .tables
                        .iter()
                        .find(|(visible, _)| visible == name)
                        .ok_or_else(|| {
                            Error::UndefinedTable(format!(
                                "{name}\" (missing FROM-clause entry for table \"{name}"
                            ))
                        })?;
                    written.extend(visible_columns(table, Some(name)))
                }
                SelectItem::Expression { expr, alias } => {
                    if expression::contains_aggregate(expr) {
                        return Err(Error::Grouping(
                            "aggregate functions are not allowed in RETURNING".into(),
                        ));
                    }
                    let name = alias
                        .clone()
                        .unwrap_or_else(|| expression::default_column_name(expr));
                    written.push((expr.clone(), name));
                }
            }
        }
        let scope = self.scope_over(target.columns.clone(), "RETURNING");
        let mut expressions = Vec::with_capacity(written.len());
        let mut columns = Vec::with_capacity(written.len());
        for (expr, name) in &written {
            let bound = fold(bind(expr, &scope)?)?;
            columns.push(OutputColumn {
                name: name.clone(),
                data_type: bound.data_type().unwrap_or(crate::types::TEXT),
            });
            expressions.push(bound);
        }
        Ok((Some(expressions), columns))
    }
}

/// The rows an UPDATE or DELETE works on, and what names their columns.
struct TargetRows {
    /// Yields the target's full rows, each followed by the joined tables' columns.
    plan: Plan,
    /// The columns of such a row.
    columns: Vec<ScopeColumn>,
    /// The tables in row order, target first, by visible name (for `*` and `t.*`).
    tables: Vec<(String, Table)>,
}

/// The position of the column `name` a statement may name (not a hidden row id).
fn visible_column(table: &Table, name: &str) -> Option<usize> {
    table
        .column_index(name)
        .filter(|&i| !table.columns[i].hidden)
}

/// [`visible_column`] as a data change's target, or 42703 naming the relation.
/// The positions an INSERT's or COPY's column list names, each at most once; without
/// a list, every visible column.
fn target_columns(table: &Table, names: Option<&[String]>) -> Result<Vec<usize>> {
    let Some(names) = names else {
        return Ok((0..table.columns.len())
            .filter(|&i| !table.columns[i].hidden)
            .collect());
    };
    let mut positions = Vec::with_capacity(names.len());
    for name in names {
        let position = target_column(table, name)?;
        if positions.contains(&position) {
            return Err(Error::DuplicateColumn(name.clone()));
        }
        positions.push(position);
    }
    Ok(positions)
}

fn target_column(table: &Table, name: &str) -> Result<usize> {
    visible_column(table, name)
        .ok_or_else(|| Error::UndefinedColumn(format!("\"{name}\" of relation \"{}\"", table.name)))
}

/// Binds `column = expression` pairs (of UPDATE or ON CONFLICT DO UPDATE, named by
/// `clause`) to column positions, each column at most once.
fn bind_assignments(
    table: &Table,
    assignments: &[(String, Expr)],
    scope: &Scope,
    clause: &str,
) -> Result<Vec<(usize, Expression)>> {
    let mut bound: Vec<(usize, Expression)> = Vec::with_capacity(assignments.len());
    for (name, expr) in assignments {
        let position = target_column(table, name)?;
        if bound.iter().any(|(p, _)| *p == position) {
            return Err(Error::Syntax {
                message: format!("multiple assignments to same column \"{name}\""),
                position: None,
            });
        }
        let column = &table.columns[position];
        if column.identity == Some(IdentityKind::Always) {
            return Err(Error::GeneratedAlways(format!(
                "column \"{name}\" can only be updated to DEFAULT"
            )));
        }
        let value = fold(bind_for_column(
            expr,
            scope,
            column.data_type,
            &column.name,
        )?)?;
        if value.has_subquery() {
            return Err(Error::FeatureNotSupported(format!(
                "subqueries in {clause}"
            )));
        }
        bound.push((position, value));
    }
    Ok(bound)
}

/// The constraint an ON CONFLICT target names: the primary key, or the unique index
/// over exactly those columns (in any order) or of that name, as PostgreSQL infers it.
fn arbiter(table: &Table, target: &ConflictTarget) -> Result<Arbiter> {
    let has_key = !table.has_hidden_row_id();
    match target {
        ConflictTarget::Any => Ok(Arbiter::Any),
        ConflictTarget::Columns(names) => {
            let mut wanted = Vec::with_capacity(names.len());
            for name in names {
                let position = visible_column(table, name).ok_or_else(|| {
                    Error::UndefinedColumn(format!("column \"{name}\" does not exist"))
                })?;
                wanted.push(position);
            }
            wanted.sort_unstable();
            wanted.dedup();
            let same = |columns: &[usize]| {
                let mut columns = columns.to_vec();
                columns.sort_unstable();
                columns == wanted
            };
            if has_key && same(&table.primary_key) {
                return Ok(Arbiter::PrimaryKey);
            }
            table
                .indexes
                .iter()
                .find(|index| index.unique && same(&index.columns))
                .map(|index| Arbiter::Index(index.id))
                .ok_or_else(|| {
                    Error::InvalidColumnReference(
                        "there is no unique or exclusion constraint matching the ON \
                         CONFLICT specification"
                            .into(),
                    )
                })
        }
        ConflictTarget::Constraint(name) => {
            if has_key && *name == table.primary_key_name() {
                return Ok(Arbiter::PrimaryKey);
            }
            table
                .indexes
                .iter()
                .find(|index| index.unique && index.name == *name)
                .map(|index| Arbiter::Index(index.id))
                .ok_or_else(|| {
                    Error::UndefinedObject(format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        table.name
                    ))
                })
        }
    }
}

/// A value given for a `GENERATED ALWAYS` identity column: 428C9, as PostgreSQL says it
/// (Tessera has no `OVERRIDING SYSTEM VALUE` yet).
fn refuse_generated_always(column: &Column) -> Result<()> {
    if column.identity == Some(IdentityKind::Always) {
        return Err(Error::GeneratedAlways(format!(
            "cannot insert a non-DEFAULT value into column \"{}\"",
            column.name
        )));
    }
    Ok(())
}
