//! An Elle-style checker for list-append transactions (Kingsbury & Alvaro, "Elle:
//! inferring isolation anomalies from experimental observations").
//!
//! Every append writes a value unique to its key, so a read of a key — a list — shows
//! the order of every append to it up to that point; all reads of a key must be
//! prefixes of one another, and the longest is the key's version order. From it come
//! dependencies between committed transactions:
//!
//! - `ww`: T1 appended element i, T2 element i + 1 of the same key;
//! - `wr`: T2 read a list ending in T1's element;
//! - `rw`: T1 read a list ending at element i (or empty), T2 appended element i + 1.
//!
//! A cycle of such edges is an anomaly, classified as Adya does: only `ww` is G0; `ww`
//! and `wr` with at least one `wr`, G1c; exactly one `rw`, G-single; more, G2-item
//! when two `rw` edges follow each other, G-nonadjacent when none do.
//! Besides cycles: G1a (a read shows an append of a transaction that failed), G1b (a
//! read ends at an append its transaction followed by another to the same key),
//! `internal` (a transaction's read does not match its own earlier reads and
//! appends), `duplicate-elements`, `garbage` (elements nobody appended),
//! `incompatible-order` (two reads of a key neither a prefix of the other) and `lost`
//! (an acknowledged append missing from the final read of its key).
//!
//! Snapshot isolation, which Tessera claims, forbids all of these but G2-item (write
//! skew), which is counted and reported as a note. The checker is sound (every anomaly it names is
//! real) but, like Elle, not complete.
//!
//! With `realtime` (reads at `linearizable` or `lease`, which promise that a
//! transaction sees every commit acknowledged before it began), `rt` edges join too:
//! T1 completed `ok` before T2 was invoked. Cycles through them are the `-realtime`
//! variants (G0-realtime, G1c-realtime, G-single-realtime, G-nonadjacent-realtime:
//! forbidden by strong snapshot isolation; G2-item-realtime: allowed). Only a
//! transitive reduction of the real-time order is added — each transaction gets edges
//! from the completed transactions no later one has superseded — so the graph stays
//! linear in the history's size.
//!
//! Operations: `txn` with value `[["r", k, null | [v, ...]], ["append", k, v], ...]`
//! (reads filled in on completion); the reads after healing are `final-txn`.

use super::{Anomaly, Verdict};
use crate::history::{EventType, Operation};
use serde_json::Value;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// One micro-operation.
#[derive(Clone, Debug, PartialEq)]
enum Micro {
    Read(i64, Option<Vec<i64>>),
    Append(i64, i64),
}

/// A transaction of the history.
#[derive(Debug)]
struct Txn<'a> {
    op: &'a Operation,
    micros: Vec<Micro>,
}

/// Edge kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Dep {
    Ww,
    Wr,
    Rw,
    Rt,
}

impl Dep {
    fn name(self) -> &'static str {
        match self {
            Dep::Ww => "ww",
            Dep::Wr => "wr",
            Dep::Rw => "rw",
            Dep::Rt => "rt",
        }
    }
}

/// Checks a list-append history against snapshot isolation, strong (real-time
/// ordered) when `realtime`.
pub fn check(operations: &[Operation], realtime: bool) -> Verdict {
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();
    let mut txns = Vec::new();
    for op in operations {
        super::count(&mut stats, op);
        let value = if op.outcome == EventType::Ok {
            &op.value
        } else {
            &op.invoke
        };
        match parse(value) {
            Some(micros) => txns.push(Txn { op, micros }),
            None => {
                return Verdict::from_findings(
                    Vec::new(),
                    vec![format!("malformed transaction {op}")],
                    stats,
                )
            }
        }
    }
    let mut anomalies = Vec::new();
    let mut notes = Vec::new();
    let analysis = Analysis::new(&txns);
    analysis.element_anomalies(&mut anomalies);
    analysis.internal(&mut anomalies);
    let orders = analysis.version_orders(&mut anomalies);
    analysis.lost(&mut anomalies);
    let mut graph = analysis.graph(&orders);
    if realtime {
        analysis.add_realtime(&mut graph);
    }
    stats.insert("edges".into(), graph.values().map(|e| e.len() as u64).sum());
    let mut write_skews = Vec::new();
    for cycle in cycles(&graph) {
        let anomaly = analysis.describe_cycle(&cycle);
        if anomaly.kind.starts_with("G2-item") {
            write_skews.push(anomaly.explanation);
        } else {
            anomalies.push(anomaly);
        }
    }
    stats.insert("G2-item".into(), write_skews.len() as u64);
    if !write_skews.is_empty() {
        notes.push(format!(
            "{} G2-item cycle(s) (write skew, which snapshot isolation allows), e.g. {}",
            write_skews.len(),
            write_skews
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let mut unknown = Vec::new();
    if !txns.iter().any(|t| {
        t.op.outcome == EventType::Ok
            && t.micros
                .iter()
                .any(|m| matches!(m, Micro::Read(_, Some(l)) if !l.is_empty()))
    }) {
        unknown.push("no committed read saw anything: nothing was checked".to_string());
    }
    let mut verdict = Verdict::from_findings(anomalies, unknown, stats);
    verdict.notes.extend(notes);
    verdict
}

fn parse(value: &Value) -> Option<Vec<Micro>> {
    value
        .as_array()?
        .iter()
        .map(|micro| {
            let parts = micro.as_array()?;
            let key = parts.get(1)?.as_i64()?;
            match parts.first()?.as_str()? {
                "r" => {
                    let list = match parts.get(2)? {
                        Value::Null => None,
                        list => Some(
                            list.as_array()?
                                .iter()
                                .map(Value::as_i64)
                                .collect::<Option<Vec<_>>>()?,
                        ),
                    };
                    Some(Micro::Read(key, list))
                }
                "append" => Some(Micro::Append(key, parts.get(2)?.as_i64()?)),
                _ => None,
            }
        })
        .collect()
}

/// Facts gathered from the transactions.
struct Analysis<'a> {
    txns: &'a [Txn<'a>],
    /// (key, element) → the transaction that appended it.
    writer: HashMap<(i64, i64), usize>,
    /// Transactions taken as committed: `ok`, and `info` ones whose appends were seen.
    committed: HashSet<usize>,
}

impl<'a> Analysis<'a> {
    fn new(txns: &'a [Txn<'a>]) -> Analysis<'a> {
        let mut writer = HashMap::new();
        for (i, txn) in txns.iter().enumerate() {
            for micro in &txn.micros {
                if let Micro::Append(key, element) = micro {
                    writer.insert((*key, *element), i);
                }
            }
        }
        let mut committed: HashSet<usize> = txns
            .iter()
            .enumerate()
            .filter(|(_, t)| t.op.outcome == EventType::Ok)
            .map(|(i, _)| i)
            .collect();
        for (key, list) in Self::reads_of(txns) {
            for element in list {
                if let Some(&w) = writer.get(&(key, *element)) {
                    if txns[w].op.outcome == EventType::Info {
                        committed.insert(w);
                    }
                }
            }
        }
        Analysis {
            txns,
            writer,
            committed,
        }
    }

    /// Every (key, list) read by a committed (`ok`) transaction.
    fn reads_of(txns: &'a [Txn<'a>]) -> impl Iterator<Item = (i64, &'a Vec<i64>)> + 'a {
        txns.iter()
            .filter(|t| t.op.outcome == EventType::Ok)
            .flat_map(|t| t.micros.iter())
            .filter_map(|m| match m {
                Micro::Read(key, Some(list)) => Some((*key, list)),
                _ => None,
            })
    }

    /// The reads with the transaction that made them.
    fn reads(&self) -> impl Iterator<Item = (usize, i64, &'a Vec<i64>)> + '_ {
        self.txns
            .iter()
            .enumerate()
            .filter(|(_, t)| t.op.outcome == EventType::Ok)
            .flat_map(|(i, t)| t.micros.iter().map(move |m| (i, m)))
            .filter_map(|(i, m)| match m {
                Micro::Read(key, Some(list)) => Some((i, *key, list)),
                _ => None,
            })
    }

    fn anomaly(&self, kind: &str, explanation: String, txns: &[usize]) -> Anomaly {
        Anomaly {
            kind: kind.into(),
            explanation,
            operations: txns.iter().map(|&t| self.txns[t].op.index).collect(),
        }
    }

    /// Duplicates, garbage, aborted reads (G1a) and intermediate reads (G1b).
    fn element_anomalies(&self, anomalies: &mut Vec<Anomaly>) {
        for (reader, key, list) in self.reads() {
            let name = self.txns[reader].op;
            let mut seen = HashSet::new();
            if let Some(twice) = list.iter().find(|e| !seen.insert(**e)) {
                anomalies.push(self.anomaly(
                    "duplicate-elements",
                    format!("{name}: key {key} shows {twice} more than once: {list:?}"),
                    &[reader],
                ));
            }
            for element in list {
                match self.writer.get(&(key, *element)) {
                    None => anomalies.push(self.anomaly(
                        "garbage",
                        format!("{name}: key {key} shows {element}, which nobody appended"),
                        &[reader],
                    )),
                    Some(&w) if self.txns[w].op.outcome == EventType::Fail => {
                        anomalies.push(self.anomaly(
                            "G1a",
                            format!(
                                "{name}: key {key} shows {element}, appended by {} which failed (aborted read)",
                                self.txns[w].op
                            ),
                            &[reader, w],
                        ))
                    }
                    _ => {}
                }
            }
            if let Some(last) = list.last() {
                if let Some(&w) = self.writer.get(&(key, *last)) {
                    let later_append = self.txns[w]
                        .micros
                        .iter()
                        .skip_while(|m| **m != Micro::Append(key, *last))
                        .skip(1)
                        .any(|m| matches!(m, Micro::Append(k, _) if *k == key));
                    if w != reader && later_append {
                        anomalies.push(self.anomaly(
                            "G1b",
                            format!(
                                "{name}: key {key} ends at {last}, which {} appended before appending to it again (intermediate read)",
                                self.txns[w].op
                            ),
                            &[reader, w],
                        ));
                    }
                }
            }
        }
    }

    /// Reads inconsistent with the transaction's own earlier reads and appends.
    fn internal(&self, anomalies: &mut Vec<Anomaly>) {
        for (i, txn) in self.txns.iter().enumerate() {
            if txn.op.outcome != EventType::Ok {
                continue;
            }
            // Per key: what the transaction knows of the list (None: nothing read yet)
            // and what it appended since.
            let mut known: HashMap<i64, (Option<Vec<i64>>, Vec<i64>)> = HashMap::new();
            for micro in &txn.micros {
                match micro {
                    Micro::Append(key, element) => known.entry(*key).or_default().1.push(*element),
                    Micro::Read(key, Some(list)) => {
                        let (base, own) = known.entry(*key).or_default();
                        let consistent = match base {
                            Some(base) => *list == [base.as_slice(), own.as_slice()].concat(),
                            None => list.ends_with(own),
                        };
                        if !consistent {
                            anomalies.push(self.anomaly(
                                "internal",
                                format!(
                                    "{}: read key {key} as {list:?}, not matching its own earlier reads and appends",
                                    txn.op
                                ),
                                &[i],
                            ));
                        }
                        *base = Some(list.clone());
                        own.clear();
                    }
                    Micro::Read(_, None) => {}
                }
            }
        }
    }

    /// Each key's version order (its longest read); reads not a prefix of it are
    /// `incompatible-order`.
    fn version_orders(&self, anomalies: &mut Vec<Anomaly>) -> HashMap<i64, Vec<i64>> {
        let mut longest: HashMap<i64, (usize, &Vec<i64>)> = HashMap::new();
        for (reader, key, list) in self.reads() {
            let entry = longest.entry(key).or_insert((reader, list));
            if list.len() > entry.1.len() {
                *entry = (reader, list);
            }
        }
        for (reader, key, list) in self.reads() {
            let (other, order) = longest[&key];
            if !order.starts_with(list) {
                anomalies.push(self.anomaly(
                    "incompatible-order",
                    format!(
                        "key {key}: {} read {list:?} and {} read {order:?}; neither is a prefix of the other",
                        self.txns[reader].op, self.txns[other].op
                    ),
                    &[reader, other],
                ));
            }
        }
        longest
            .into_iter()
            .map(|(key, (_, order))| (key, order.clone()))
            .collect()
    }

    /// Acknowledged appends missing from the final read of their key.
    fn lost(&self, anomalies: &mut Vec<Anomaly>) {
        let mut final_lists: HashMap<i64, &Vec<i64>> = HashMap::new();
        for txn in self
            .txns
            .iter()
            .filter(|t| t.op.f == "final-txn" && t.op.outcome == EventType::Ok)
        {
            for micro in &txn.micros {
                if let Micro::Read(key, Some(list)) = micro {
                    final_lists.insert(*key, list);
                }
            }
        }
        for ((key, element), &w) in &self.writer {
            if self.txns[w].op.outcome != EventType::Ok {
                continue;
            }
            let Some(list) = final_lists.get(key) else {
                continue;
            };
            if !list.contains(element) {
                anomalies.push(self.anomaly(
                    "lost",
                    format!(
                        "{}: appended {element} to key {key}, acknowledged, but the final read of key {key} does not show it",
                        self.txns[w].op
                    ),
                    &[w],
                ));
            }
        }
    }

    /// The dependency graph over committed transactions.
    fn graph(&self, orders: &HashMap<i64, Vec<i64>>) -> HashMap<usize, Vec<(usize, Dep)>> {
        let mut edges: HashMap<usize, HashSet<(usize, Dep)>> = HashMap::new();
        let mut add = |from: usize, to: usize, dep: Dep| {
            if from != to && self.committed.contains(&from) && self.committed.contains(&to) {
                edges.entry(from).or_default().insert((to, dep));
            }
        };
        for (key, order) in orders {
            for pair in order.windows(2) {
                if let (Some(&a), Some(&b)) = (
                    self.writer.get(&(*key, pair[0])),
                    self.writer.get(&(*key, pair[1])),
                ) {
                    add(a, b, Dep::Ww);
                }
            }
        }
        for (reader, key, list) in self.reads() {
            if let Some(&w) = list.last().and_then(|last| self.writer.get(&(key, *last))) {
                add(w, reader, Dep::Wr);
            }
            let next = orders.get(&key).and_then(|order| order.get(list.len()));
            if let Some(&w) = next.and_then(|element| self.writer.get(&(key, *element))) {
                add(reader, w, Dep::Rw);
            }
        }
        edges
            .into_iter()
            .map(|(from, to)| {
                let mut to: Vec<(usize, Dep)> = to.into_iter().collect();
                to.sort_unstable();
                (from, to)
            })
            .collect()
    }

    /// Adds `rt` edges: from each `ok` transaction to the committed ones invoked after
    /// it completed — only from the frontier (completed, and not completed before
    /// another completed transaction was invoked), which keeps the real-time order's
    /// transitive closure with few edges.
    fn add_realtime(&self, graph: &mut HashMap<usize, Vec<(usize, Dep)>>) {
        // (time, is an invocation, transaction); at equal times invocations come
        // first: operations that touch are not ordered.
        let mut moments: Vec<(u64, bool, usize)> = Vec::new();
        for &t in &self.committed {
            let op = self.txns[t].op;
            moments.push((op.invoked_at, false, t));
            if let (EventType::Ok, Some(completed)) = (op.outcome, op.completed_at) {
                moments.push((completed, true, t));
            }
        }
        moments.sort_unstable();
        let mut frontier: Vec<usize> = Vec::new();
        for (_, completion, t) in moments {
            if completion {
                let invoked = self.txns[t].op.invoked_at;
                frontier.retain(|&earlier| {
                    self.txns[earlier]
                        .op
                        .completed_at
                        .is_some_and(|done| done >= invoked)
                });
                frontier.push(t);
            } else {
                for &earlier in &frontier {
                    let edges = graph.entry(earlier).or_default();
                    if !edges.contains(&(t, Dep::Rt)) {
                        edges.push((t, Dep::Rt));
                    }
                }
            }
        }
    }

    /// Names a cycle by its edges.
    fn describe_cycle(&self, cycle: &[(usize, Dep)]) -> Anomaly {
        let rw = cycle.iter().filter(|(_, d)| *d == Dep::Rw).count();
        let wr = cycle.iter().filter(|(_, d)| *d == Dep::Wr).count();
        let realtime = cycle.iter().any(|(_, d)| *d == Dep::Rt);
        // Two rw edges in a row (cyclically) is write skew, which snapshot isolation
        // allows; rw edges never adjacent (G-nonadjacent) it forbids.
        let adjacent_rw = (0..cycle.len())
            .any(|i| cycle[i].1 == Dep::Rw && cycle[(i + 1) % cycle.len()].1 == Dep::Rw);
        let kind = match (rw, wr) {
            (0, 0) => "G0",
            (0, _) => "G1c",
            (1, _) => "G-single",
            _ if adjacent_rw => "G2-item",
            _ => "G-nonadjacent",
        };
        let kind = if realtime {
            format!("{kind}-realtime")
        } else {
            kind.to_string()
        };
        let steps: Vec<String> = cycle
            .iter()
            .enumerate()
            .map(|(i, (from, dep))| {
                let to = cycle[(i + 1) % cycle.len()].0;
                format!(
                    "#{} -{}-> #{}",
                    self.txns[*from].op.index,
                    dep.name(),
                    self.txns[to].op.index
                )
            })
            .collect();
        let txns: Vec<usize> = cycle.iter().map(|(t, _)| *t).collect();
        self.anomaly(
            &kind,
            format!(
                "a cycle of {} transactions: {}",
                cycle.len(),
                steps.join(", ")
            ),
            &txns,
        )
    }
}

/// Cycles to report: per strongly connected component, the shortest cycle of the
/// strongest kind found (G0, then G1c, then G-single — each first without `rt` edges,
/// then with them — then any). Each cycle is a list of (transaction, kind of the edge
/// to the next one).
fn cycles(graph: &HashMap<usize, Vec<(usize, Dep)>>) -> Vec<Vec<(usize, Dep)>> {
    let mut found = Vec::new();
    for component in strongly_connected(graph) {
        if component.len() < 2 {
            continue;
        }
        let members: HashSet<usize> = component.iter().copied().collect();
        // The strongest kind first, and cycles without real-time edges before those
        // with them.
        let mut cycle = shortest_cycle(graph, &members, &[Dep::Ww]);
        for dependencies in [&[Dep::Ww, Dep::Wr][..], &[Dep::Ww, Dep::Wr, Dep::Rt]] {
            cycle = cycle
                .or_else(|| shortest_cycle(graph, &members, dependencies))
                .or_else(|| {
                    // Exactly one rw edge: rw from a to b, then back from b to a.
                    rw_edges(graph, &members).find_map(|(a, b)| {
                        let back = path(graph, &members, b, a, dependencies)?;
                        Some(close(a, Dep::Rw, back))
                    })
                });
        }
        let any = [Dep::Ww, Dep::Wr, Dep::Rw, Dep::Rt];
        found.extend(cycle.or_else(|| shortest_cycle(graph, &members, &any)));
    }
    found
}

fn rw_edges<'g>(
    graph: &'g HashMap<usize, Vec<(usize, Dep)>>,
    members: &'g HashSet<usize>,
) -> impl Iterator<Item = (usize, usize)> + 'g {
    members.iter().flat_map(move |&a| {
        graph
            .get(&a)
            .into_iter()
            .flatten()
            .filter(move |(b, d)| *d == Dep::Rw && members.contains(b))
            .map(move |(b, _)| (a, *b))
    })
}

/// The shortest cycle through edges of `deps` within `members`, if any.
fn shortest_cycle(
    graph: &HashMap<usize, Vec<(usize, Dep)>>,
    members: &HashSet<usize>,
    deps: &[Dep],
) -> Option<Vec<(usize, Dep)>> {
    let mut best: Option<Vec<(usize, Dep)>> = None;
    let mut starts: Vec<usize> = members.iter().copied().collect();
    starts.sort_unstable();
    for start in starts {
        for (next, dep) in graph.get(&start).into_iter().flatten() {
            if !deps.contains(dep) || !members.contains(next) {
                continue;
            }
            if let Some(back) = path(graph, members, *next, start, deps) {
                let cycle = close(start, *dep, back);
                if best.as_ref().is_none_or(|b| cycle.len() < b.len()) {
                    best = Some(cycle);
                }
            }
        }
        if best.as_ref().is_some_and(|b| b.len() == 2) {
            break;
        }
    }
    best
}

/// A cycle from the edge `start -dep-> back[0]` and the path `back` ending at `start`.
fn close(start: usize, dep: Dep, back: Vec<(usize, Dep)>) -> Vec<(usize, Dep)> {
    let mut cycle = vec![(start, dep)];
    cycle.extend(back);
    cycle
}

/// The shortest path from `from` to `to` over edges of `deps` within `members`, as
/// (node, kind of its outgoing edge) pairs, `from` first, `to` excluded.
fn path(
    graph: &HashMap<usize, Vec<(usize, Dep)>>,
    members: &HashSet<usize>,
    from: usize,
    to: usize,
    deps: &[Dep],
) -> Option<Vec<(usize, Dep)>> {
    let mut previous: HashMap<usize, (usize, Dep)> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    let mut visited = HashSet::from([from]);
    while let Some(node) = queue.pop_front() {
        for (next, dep) in graph.get(&node).into_iter().flatten() {
            if !deps.contains(dep) || !members.contains(next) {
                continue;
            }
            if *next == to {
                let mut steps = vec![(node, *dep)];
                let mut at = node;
                while at != from {
                    let (before, before_dep) = previous[&at];
                    steps.push((before, before_dep));
                    at = before;
                }
                steps.reverse();
                return Some(steps);
            }
            if visited.insert(*next) {
                previous.insert(*next, (node, *dep));
                queue.push_back(*next);
            }
        }
    }
    None
}

/// Tarjan's strongly connected components (iterative: histories can be long).
fn strongly_connected(graph: &HashMap<usize, Vec<(usize, Dep)>>) -> Vec<Vec<usize>> {
    let mut nodes: Vec<usize> = graph
        .iter()
        .flat_map(|(from, to)| std::iter::once(*from).chain(to.iter().map(|(t, _)| *t)))
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut index_of: HashMap<usize, usize> = HashMap::new();
    let mut low: HashMap<usize, usize> = HashMap::new();
    let mut on_stack: HashSet<usize> = HashSet::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut components = Vec::new();
    let mut next_index = 0;
    let empty = Vec::new();
    for &root in &nodes {
        if index_of.contains_key(&root) {
            continue;
        }
        // (node, position in its edge list)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index_of.insert(root, next_index);
        low.insert(root, next_index);
        next_index += 1;
        stack.push(root);
        on_stack.insert(root);
        while let Some(&mut (node, ref mut position)) = work.last_mut() {
            let edges = graph.get(&node).unwrap_or(&empty);
            if let Some(&(next, _)) = edges.get(*position) {
                *position += 1;
                match index_of.entry(next) {
                    Entry::Vacant(slot) => {
                        slot.insert(next_index);
                        low.insert(next, next_index);
                        next_index += 1;
                        stack.push(next);
                        on_stack.insert(next);
                        work.push((next, 0));
                    }
                    Entry::Occupied(found) if on_stack.contains(&next) => {
                        let candidate = *found.get();
                        let entry = low.entry(node).or_default();
                        *entry = (*entry).min(candidate);
                    }
                    Entry::Occupied(_) => {}
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                let child_low = low[&node];
                let entry = low.entry(parent).or_default();
                *entry = (*entry).min(child_low);
            }
            if low[&node] == index_of[&node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack.remove(&member);
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}
