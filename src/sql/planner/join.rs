//! FROM clauses: tables, subqueries and set-returning functions, joins, and where each
//! WHERE and ON condition is applied.
//!
//! The joined row is the columns of every item in FROM, left to right. A subquery or a
//! function is planned on its own and its rows feed the join like a table's (terms on
//! it filter its rows; they cannot choose its access path). Binding happens
//! against that whole row; then each condition is pushed as far down the join tree as
//! its meaning allows, so that a test on one table filters that table's scan (and can
//! pick its primary key or an index) before any join sees its rows:
//!
//! - a WHERE term that reads one side of a join moves into that side, except into the
//!   NULL-extended (right) side of a LEFT JOIN, where it must see the NULLs;
//! - an ON term of a LEFT JOIN that reads only the right side filters the right side;
//!   one that reads the left side stays in the join (it must not drop left rows);
//! - what is left at a join becomes its condition (inner and cross joins) or a filter
//!   above it (WHERE terms over a LEFT JOIN).
//!
//! A join whose condition has `left_expr = right_expr` terms is a hash join (the right
//! side is built into a hash table, the left side streams); otherwise it is a nested
//! loop over the materialized right side. Trade-off: joins do not yet look rows up by
//! key (an index nested loop), so the right side is always read in full once.

use super::expression::{bind_boolean, Expression, Scope, ScopeColumn};
use super::plan::{JoinType, Plan};
use super::{fold, system, Planner};
use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::sql::ast::{Expr, FromItem, JoinKind};
use crate::types::{DataType, Value};
use std::collections::BTreeSet;

/// One table (or system view, subquery or function) of a FROM clause.
pub struct Source {
    /// The name columns are qualified with: the alias, else the table name.
    pub visible: String,
    /// The table's definition (for a subquery or function, its columns).
    pub table: Table,
    /// Where the rows come from.
    rows: SourceRows,
}

/// Where a FROM item's rows come from.
enum SourceRows {
    /// A stored table, scanned by the access path its filters allow.
    Stored,
    /// A system view's rows, computed at plan time.
    Fixed(Vec<Vec<Value>>),
    /// A subquery's or a set-returning function's plan.
    Planned(Plan),
}

/// A planned FROM clause with its WHERE applied.
pub struct PlannedFrom {
    /// Produces joined rows that satisfy WHERE.
    pub plan: Plan,
    /// The columns of a joined row.
    pub columns: Vec<ScopeColumn>,
    /// The tables, in row order, for `*` and `t.*`.
    pub sources: Vec<Source>,
}

/// A join tree whose conditions are bound to positions of the whole joined row.
enum Node {
    Leaf {
        source: usize,
        start: usize,
        width: usize,
        filters: Vec<Expression>,
    },
    Join {
        left: Box<Node>,
        right: Box<Node>,
        kind: JoinKind,
        /// Terms of the join condition.
        condition: Vec<Expression>,
        /// Terms applied after the join (WHERE over a LEFT JOIN's NULL-extended side).
        after: Vec<Expression>,
    },
}

impl Node {
    fn range(&self) -> (usize, usize) {
        match self {
            Node::Leaf { start, width, .. } => (*start, start + width),
            Node::Join { left, right, .. } => (left.range().0, right.range().1),
        }
    }

    fn covers(&self, used: &BTreeSet<usize>) -> bool {
        let (start, end) = self.range();
        used.iter().all(|c| (start..end).contains(c))
    }

    /// Places one term as low in the tree as its meaning allows. `own_on` marks a term of
    /// this join's own ON clause (which may filter a LEFT JOIN's right side).
    fn place(&mut self, term: Expression, own_on: bool) {
        let used = columns_used(&term);
        match self {
            Node::Leaf { filters, .. } => filters.push(term),
            Node::Join {
                left,
                right,
                kind,
                condition,
                after,
            } => {
                let left_only = left.covers(&used);
                let right_only = !used.is_empty() && right.covers(&used);
                match kind {
                    JoinKind::Left if own_on => {
                        if right_only {
                            right.place(term, false)
                        } else {
                            condition.push(term)
                        }
                    }
                    JoinKind::Left => {
                        if left_only {
                            left.place(term, false)
                        } else {
                            after.push(term)
                        }
                    }
                    JoinKind::Inner | JoinKind::Cross => {
                        if left_only {
                            left.place(term, false)
                        } else if right_only {
                            right.place(term, false)
                        } else {
                            condition.push(term)
                        }
                    }
                }
            }
        }
    }
}

/// The row positions an expression reads.
fn columns_used(expr: &Expression) -> BTreeSet<usize> {
    let mut used = BTreeSet::new();
    expr.walk(&mut |e| {
        if let Expression::Column { index, .. } = e {
            used.insert(*index);
        }
    });
    used
}

/// Moves column references by `by` positions (to re-base a term on a sub-plan's row).
fn shift(expr: Expression, by: isize) -> Result<Expression> {
    match expr {
        Expression::Column {
            index,
            name,
            data_type,
        } => {
            let index = index.checked_add_signed(by).ok_or_else(|| {
                Error::Internal(format!("column {index} shifted by {by} is out of range"))
            })?;
            Ok(Expression::Column {
                index,
                name,
                data_type,
            })
        }
        other => other.map_children(move |child| shift(child, by)),
    }
}

fn conjunction(terms: Vec<Expression>) -> Option<Expression> {
    terms
        .into_iter()
        .reduce(|a, b| Expression::And(Box::new(a), Box::new(b)))
}

impl<'a> Planner<'a> {
    /// Plans FROM and WHERE together: resolves the tables, binds ON and WHERE, pushes
    /// each condition down and chooses each join's algorithm.
    pub(super) fn plan_from(&self, from: &FromItem, filter: Option<&Expr>) -> Result<PlannedFrom> {
        let mut sources = Vec::new();
        let mut columns = Vec::new();
        let mut root = self.bind_from(from, &mut sources, &mut columns)?;
        // Terms with subqueries stay above every join: their subqueries address the
        // whole joined row.
        let mut top = Vec::new();
        if let Some(filter) = filter {
            let scope = self.scope_over(columns.clone(), "WHERE");
            let predicate = fold(bind_boolean(filter, &scope, "WHERE")?)?;
            for term in predicate.conjuncts() {
                if term.has_subquery() {
                    top.push(term.clone());
                } else {
                    root.place(term.clone(), false);
                }
            }
        }
        let plan = filtered(self.build_node(root, &sources)?, conjunction(top));
        Ok(PlannedFrom {
            plan,
            columns,
            sources,
        })
    }

    /// Resolves the tables of `item` (appending them to `sources` and their columns to
    /// `columns`) and binds each ON condition over the two sides it joins.
    fn bind_from(
        &self,
        item: &FromItem,
        sources: &mut Vec<Source>,
        columns: &mut Vec<ScopeColumn>,
    ) -> Result<Node> {
        match item {
            FromItem::Table(reference) => {
                let visible = reference.alias.clone().unwrap_or_else(|| {
                    reference
                        .name
                        .rsplit('.')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                });
                let (table, rows) =
                    match system::resolve(&reference.name, self.catalog, self.identity) {
                        Some(view) => (view.table, SourceRows::Fixed(view.rows)),
                        None => (
                            self.catalog.require_table(&reference.name)?.clone(),
                            SourceRows::Stored,
                        ),
                    };
                add_source(sources, columns, visible, table, rows)
            }
            FromItem::Subquery {
                query,
                alias,
                columns: renamed,
            } => {
                let (plan, output) = self.plan_select(query)?;
                let mut names: Vec<(String, DataType)> =
                    output.into_iter().map(|c| (c.name, c.data_type)).collect();
                rename(alias, &mut names, renamed)?;
                let table = system::derived_table(alias, names);
                add_source(
                    sources,
                    columns,
                    alias.clone(),
                    table,
                    SourceRows::Planned(plan),
                )
            }
            FromItem::Function {
                name,
                args,
                alias,
                columns: renamed,
            } => {
                let visible = alias.clone().unwrap_or_else(|| name.clone());
                let (plan, data_type) = self.plan_table_function(name, args)?;
                // A function of one column names it after the alias, as PostgreSQL does.
                let mut names = vec![(visible.clone(), data_type)];
                rename(&visible, &mut names, renamed)?;
                let table = system::derived_table(&visible, names);
                add_source(sources, columns, visible, table, SourceRows::Planned(plan))
            }
            FromItem::Join {
                left,
                right,
                kind,
                on,
            } => {
                let start = columns.len();
                let left = self.bind_from(left, sources, columns)?;
                let right = self.bind_from(right, sources, columns)?;
                let mut node = Node::Join {
                    left: Box::new(left),
                    right: Box::new(right),
                    kind: *kind,
                    condition: Vec::new(),
                    after: Vec::new(),
                };
                if let Some(on) = on {
                    // ON sees only the two sides it joins: bind over their columns, then
                    // re-base onto the whole row.
                    let scope = self.scope_over(columns[start..].to_vec(), "JOIN/ON");
                    let bound = fold(bind_boolean(on, &scope, "JOIN/ON")?)?;
                    if bound.has_subquery() {
                        return Err(Error::FeatureNotSupported(
                            "subqueries in JOIN ... ON (write them in WHERE)".into(),
                        ));
                    }
                    let bound = shift(bound, start as isize)?;
                    for term in bound.conjuncts() {
                        node.place(term.clone(), true);
                    }
                }
                Ok(node)
            }
        }
    }

    fn build_node(&self, node: Node, sources: &[Source]) -> Result<Plan> {
        match node {
            Node::Leaf {
                source,
                start,
                filters,
                ..
            } => {
                let filters = filters
                    .into_iter()
                    .map(|f| shift(f, -(start as isize)))
                    .collect::<Result<Vec<_>>>()?;
                let predicate = conjunction(filters);
                let source = &sources[source];
                let plan = match &source.rows {
                    SourceRows::Fixed(rows) => Plan::Values {
                        rows: rows
                            .iter()
                            .map(|row| row.iter().cloned().map(Expression::Constant).collect())
                            .collect(),
                    },
                    SourceRows::Planned(plan) => plan.clone(),
                    SourceRows::Stored => self.scan(&source.table, predicate.as_ref()),
                };
                Ok(filtered(plan, predicate))
            }
            Node::Join {
                left,
                right,
                kind,
                condition,
                after,
            } => {
                let (start, split) = (left.range().0, left.range().1);
                let (right_start, right_end) = right.range();
                let left_plan = self.build_node(*left, sources)?;
                let right_plan = self.build_node(*right, sources)?;
                let join_type = match kind {
                    JoinKind::Left => JoinType::Left,
                    JoinKind::Inner | JoinKind::Cross => JoinType::Inner,
                };
                let rebase = |terms: Vec<Expression>| {
                    terms
                        .into_iter()
                        .map(|t| shift(t, -(start as isize)))
                        .collect::<Result<Vec<_>>>()
                };
                let condition = rebase(condition)?;
                let left_range = 0..split - start;
                let right_range = right_start - start..right_end - start;
                let (left_keys, right_keys, residual) =
                    equi_keys(condition, &left_range, &right_range)?;
                let join = if left_keys.is_empty() {
                    Plan::NestedLoopJoin {
                        left: Box::new(left_plan),
                        right: Box::new(right_plan),
                        join_type,
                        predicate: conjunction(residual),
                        right_width: right_range.len(),
                    }
                } else {
                    Plan::HashJoin {
                        left: Box::new(left_plan),
                        right: Box::new(right_plan),
                        join_type,
                        left_keys,
                        right_keys,
                        residual: conjunction(residual),
                        right_width: right_range.len(),
                    }
                };
                Ok(filtered(join, conjunction(rebase(after)?)))
            }
        }
    }

    /// A scope over explicit columns (a joined row, or the two sides of one join).
    pub(super) fn scope_over(&self, columns: Vec<ScopeColumn>, clause: &'static str) -> Scope<'_> {
        Scope {
            columns,
            ..self.empty_scope(clause)
        }
    }
}

/// Appends a FROM item's columns and source, returning its leaf; two items may not
/// have the same visible name.
fn add_source(
    sources: &mut Vec<Source>,
    columns: &mut Vec<ScopeColumn>,
    visible: String,
    table: Table,
    rows: SourceRows,
) -> Result<Node> {
    if sources.iter().any(|s| s.visible == visible) {
        return Err(Error::DuplicateAlias(visible));
    }
    let start = columns.len();
    columns.extend(table.columns.iter().map(|c| ScopeColumn {
        name: c.name.clone(),
        table: Some(visible.clone()),
        data_type: c.data_type,
    }));
    let width = table.columns.len();
    sources.push(Source {
        visible,
        table,
        rows,
    });
    Ok(Node::Leaf {
        source: sources.len() - 1,
        start,
        width,
        filters: Vec::new(),
    })
}

/// Applies a column alias list (`AS s(a, b)`) to the first columns.
fn rename(alias: &str, names: &mut [(String, DataType)], renamed: &[String]) -> Result<()> {
    if renamed.len() > names.len() {
        return Err(Error::InvalidColumnReference(format!(
            "table \"{alias}\" has {} columns available but {} columns specified",
            names.len(),
            renamed.len()
        )));
    }
    for ((name, _), new_name) in names.iter_mut().zip(renamed) {
        *name = new_name.clone();
    }
    Ok(())
}

fn filtered(plan: Plan, predicate: Option<Expression>) -> Plan {
    match predicate {
        Some(predicate) => Plan::Filter {
            source: Box::new(plan),
            predicate,
        },
        None => plan,
    }
}

/// Splits a join condition into hash keys (`left_expr = right_expr` terms, the right
/// expression re-based onto the right row) and the residual terms.
#[allow(clippy::type_complexity)]
fn equi_keys(
    condition: Vec<Expression>,
    left: &std::ops::Range<usize>,
    right: &std::ops::Range<usize>,
) -> Result<(Vec<Expression>, Vec<Expression>, Vec<Expression>)> {
    let within = |e: &Expression, range: &std::ops::Range<usize>| {
        let used = columns_used(e);
        !used.is_empty() && used.iter().all(|c| range.contains(c))
    };
    let (mut left_keys, mut right_keys, mut residual) = (Vec::new(), Vec::new(), Vec::new());
    for term in condition {
        if let Expression::Compare(crate::sql::ast::BinaryOp::Equal, a, b) = &term {
            let hashable = match (a.data_type(), b.data_type()) {
                (Some(x), Some(y)) => {
                    x == y || (x.is_numeric() && y.is_numeric()) || (x.is_text() && y.is_text())
                }
                _ => false,
            };
            let sides = if within(a, left) && within(b, right) {
                Some((a, b))
            } else if within(b, left) && within(a, right) {
                Some((b, a))
            } else {
                None
            };
            if let (true, Some((l, r))) = (hashable, sides) {
                left_keys.push(l.as_ref().clone());
                right_keys.push(shift(r.as_ref().clone(), -(right.start as isize))?);
                continue;
            }
        }
        residual.push(term);
    }
    Ok((left_keys, right_keys, residual))
}
