//! The shard router: which shard holds a row, which group hosts a shard, and which
//! stored key spans a table-level request touches.
//!
//! A table's rows are spread by a stable hash of the encoded primary key over a 16-bit
//! hash space cut into `shard_count` equal, contiguous ranges (YugabyteDB's hash
//! sharding). Each shard is placed in one group (see [`ShardPlacement`] and the
//! catalog, which holds the map and versions it). The transaction layer asks the
//! router; the executor above it asks the transaction for rows and never sees a key,
//! a shard number's key prefix or a group.
//!
//! Groups form a bounded pool that shards are mapped onto, rather than one Raft group
//! per table shard: every group costs heartbeats, a log, a snapshot schedule and a
//! leader's batching rounds, and on a 2-core node a few dozen of them would spend the
//! CPU on bookkeeping instead of statements. A table's shards still spread its keys
//! over every group of the pool, so adding groups spreads load without re-hashing.
//!
//! What the router answers depends only on the catalog value it is given, so a
//! statement planned against one catalog version routes every row the same way.

mod range;

pub use range::KeyRange;

use crate::catalog::{Index, Table};
use crate::encoding::keycode;
use crate::storage::keys::{self, ShardId};
use crate::types::Value;
use std::ops::Bound;

/// Id of a group of replicas that hosts shards. Data groups are numbered from
/// [`FIRST_SHARD_GROUP`]; the embedded engine hosts every group in one process.
pub type GroupId = u64;

/// The first data group; group 0 is the cluster's metadata group.
pub const FIRST_SHARD_GROUP: GroupId = 1;

/// Default shards per node when CREATE TABLE names no count: the default grows with
/// the cluster, so a table created on a bigger cluster starts spread wider.
pub const SHARDS_PER_NODE: u16 = 2;
/// The fewest shards a table gets by default, so that even an embedded database or a
/// one-node cluster exercises the fan-out paths every other deployment takes.
pub const MIN_DEFAULT_SHARDS: u16 = 4;

/// Most shards a table may be split into: bounds the fan-out of every scan.
pub const MAX_TABLE_SHARDS: u16 = 256;

/// The default shard count of a new table on a deployment of `nodes` nodes.
pub fn default_shard_count(nodes: usize) -> u16 {
    let nodes = u16::try_from(nodes).unwrap_or(u16::MAX);
    nodes
        .saturating_mul(SHARDS_PER_NODE)
        .clamp(MIN_DEFAULT_SHARDS, MAX_TABLE_SHARDS)
}

/// Where one shard of a table lives: its slice of the hash space and its group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardPlacement {
    /// The shard's number within its table.
    pub shard: ShardId,
    /// First hash point of the shard's range.
    pub hash_start: u32,
    /// One past the last hash point of the range (at most 65,536).
    pub hash_end: u32,
    /// The group hosting the shard.
    pub group: GroupId,
}

/// The hash points `[start, end)` that [`keys::shard_for`] maps to `shard` of `count`.
pub fn hash_range(shard: ShardId, count: u16) -> (u32, u32) {
    let count = u64::from(count.max(1));
    // Point p is in shard s when floor(p * count / 2^16) == s.
    let start = |s: u64| (s << 16).div_ceil(count) as u32;
    (start(u64::from(shard)), start(u64::from(shard) + 1))
}

/// Places the `count` shards of table `table_id` on a pool of `groups` data groups,
/// round robin from a table-dependent start so that small tables do not all put their
/// first shard in the same group.
pub fn place_shards(table_id: keys::TableId, count: u16, groups: u64) -> Vec<ShardPlacement> {
    let groups = groups.max(1);
    (0..count.max(1))
        .map(|shard| {
            let (hash_start, hash_end) = hash_range(shard, count);
            ShardPlacement {
                shard,
                hash_start,
                hash_end,
                group: FIRST_SHARD_GROUP + (u64::from(table_id) + u64::from(shard)) % groups,
            }
        })
        .collect()
}

/// The shard a row of `table` with encoded primary key `pk` belongs to.
pub fn shard_of(table: &Table, pk: &[u8]) -> ShardId {
    keys::shard_for(pk, table.shard_count)
}

/// Whether `table`'s shards live in more than one group (only then can a unique index
/// entry live in another group than its row).
pub fn spans_groups(table: &Table) -> bool {
    table
        .placement
        .first()
        .is_some_and(|first| table.placement.iter().any(|p| p.group != first.group))
}

/// The group hosting `shard` of `table`.
pub fn group_of(table: &Table, shard: ShardId) -> GroupId {
    match table.placement.get(usize::from(shard)) {
        Some(placement) => placement.group,
        None => panic!(
            "shard {shard} of table {} has no placement: the catalog's shard map is broken",
            table.name
        ),
    }
}

/// Where one row is stored: its group and the record prefix of its versions.
pub fn locate_row(table: &Table, pk: &[u8]) -> (GroupId, Vec<u8>) {
    let shard = shard_of(table, pk);
    (
        group_of(table, shard),
        keys::row_prefix(shard, table.id, pk),
    )
}

/// One shard's part of a table-level request: the stored keys `[start, end)` in one
/// group. `prefix_len` bytes of each key are the shard's fixed prefix; what follows
/// (the encoded key values) sorts the same way in every shard, so spans of different
/// shards can be merged into one key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSpan {
    /// The shard.
    pub shard: ShardId,
    /// Its group.
    pub group: GroupId,
    /// First stored key.
    pub start: Vec<u8>,
    /// One past the last stored key.
    pub end: Vec<u8>,
    /// Length of the fixed prefix before the encoded values.
    pub prefix_len: usize,
}

/// The shards a primary-key range can hold rows of: one when it fixes every key
/// column (the hash of the key names the shard), every shard otherwise, since the hash
/// of a partial key says nothing about where its rows are.
pub fn shards_for_range(table: &Table, range: &KeyRange) -> Vec<ShardId> {
    if range.is_point(table.primary_key.len()) {
        vec![shard_of(table, &keycode::encode_values(&range.prefix))]
    } else {
        table.shards().collect()
    }
}

/// The spans holding the rows of `table` in `range`, one per shard it may touch.
pub fn row_spans(table: &Table, range: &KeyRange) -> Vec<ShardSpan> {
    shards_for_range(table, range)
        .into_iter()
        .map(|shard| {
            span(
                table,
                shard,
                keys::table_rows_prefix(shard, table.id),
                range,
            )
        })
        .collect()
}

/// The shard holding the entry of `index` with encoded `values` for a row in
/// `row_shard`. A non-unique index's entries live in their row's shard (written in the
/// row's own batch); a unique index's live in the shard its values hash to, so that one
/// shard — one group — sees every row claiming a value and can refuse the second
/// (entries of another group's rows reach it through the cross-group commit).
pub fn entry_shard(table: &Table, index: &Index, values: &[u8], row_shard: ShardId) -> ShardId {
    if index.unique {
        keys::shard_for(values, table.shard_count)
    } else {
        row_shard
    }
}

/// The shards an index lookup of `range` may find entries in: one when the index is
/// unique and the range fixes every indexed column (the values' hash names it), every
/// shard otherwise.
pub fn index_shards(table: &Table, index: &Index, range: &KeyRange) -> Vec<ShardId> {
    if index.unique && range.is_point(index.columns.len()) {
        let values = keycode::encode_values(&range.prefix);
        vec![entry_shard(table, index, &values, 0)]
    } else {
        table.shards().collect()
    }
}

/// The spans holding the entries of `index` in `range`, one per shard it may touch.
pub fn index_spans(table: &Table, index: &Index, range: &KeyRange) -> Vec<ShardSpan> {
    index_shards(table, index, range)
        .into_iter()
        .map(|shard| {
            let base = keys::index_prefix(shard, table.id, index.id);
            span(table, shard, base, range)
        })
        .collect()
}

/// The spans holding the entries of `index` whose values encode to `values` (every
/// indexed column fixed): what a uniqueness check looks through — the values' own
/// shard for a unique index, every shard otherwise.
pub fn index_value_spans(table: &Table, index: &Index, values: &[u8]) -> Vec<ShardSpan> {
    let shards: Vec<ShardId> = if index.unique {
        vec![entry_shard(table, index, values, 0)]
    } else {
        table.shards().collect()
    };
    shards
        .into_iter()
        .filter_map(|shard| {
            let base = keys::index_prefix(shard, table.id, index.id);
            let prefix_len = base.len();
            let mut start = base;
            start.extend_from_slice(values);
            let end = keycode::prefix_end(&start)?;
            Some(ShardSpan {
                shard,
                group: group_of(table, shard),
                start,
                end,
                prefix_len,
            })
        })
        .collect()
}

fn span(table: &Table, shard: ShardId, base: Vec<u8>, range: &KeyRange) -> ShardSpan {
    let prefix_len = base.len();
    let (start, end) = raw_bounds(&base, range);
    ShardSpan {
        shard,
        group: group_of(table, shard),
        start,
        end,
        prefix_len,
    }
}

/// The raw key interval `[start, end)` holding the keys of `range` under `base`.
fn raw_bounds(base: &[u8], range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = base.to_vec();
    prefix.extend_from_slice(&keycode::encode_values(&range.prefix));
    let after =
        |bytes: Vec<u8>| keycode::prefix_end(&bytes).unwrap_or_else(|| vec![0xFF; bytes.len() + 1]);
    let with_value = |value: &Value| {
        let mut key = prefix.clone();
        keycode::encode_value(&mut key, value);
        key
    };
    let unbounded = matches!(
        (&range.lower, &range.upper),
        (Bound::Unbounded, Bound::Unbounded)
    );
    if unbounded {
        return (prefix.clone(), after(prefix));
    }
    let start = match &range.lower {
        Bound::Included(v) => with_value(v),
        Bound::Excluded(v) => after(with_value(v)),
        Bound::Unbounded => {
            // Comparisons never match NULL, which sorts first: start just after it.
            let mut key = prefix.clone();
            key.push(keycode::FIRST_NON_NULL);
            key
        }
    };
    let end = match &range.upper {
        Bound::Included(v) => after(with_value(v)),
        Bound::Excluded(v) => with_value(v),
        Bound::Unbounded => after(prefix.clone()),
    };
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash ranges of a table's shards tile the whole 16-bit space with no gap or
    /// overlap, and agree with the shard `keys::shard_for` picks for every point.
    #[test]
    fn hash_ranges_tile_the_space_and_match_the_hash() {
        for count in [1u16, 3, 4, 7, 8, 256] {
            let mut next = 0;
            for shard in 0..count {
                let (start, end) = hash_range(shard, count);
                assert_eq!(start, next, "{count} shards: gap before shard {shard}");
                assert!(end > start, "{count} shards: shard {shard} is empty");
                next = end;
                for point in [start, end - 1] {
                    assert_eq!(
                        ((point * u32::from(count)) >> 16) as u16,
                        shard,
                        "{count} shards: point {point}"
                    );
                }
            }
            assert_eq!(next, 1 << 16, "{count} shards cover the space");
        }
    }

    /// Shards spread over every group of the pool, and tables start at different groups.
    #[test]
    fn placement_spreads_over_the_pool() {
        let placed = place_shards(7, 8, 3);
        let groups: std::collections::BTreeSet<_> = placed.iter().map(|p| p.group).collect();
        assert_eq!(groups.len(), 3);
        assert!(groups.iter().all(|g| (1..=3).contains(g)));
        assert_ne!(
            place_shards(1, 2, 3)[0].group,
            place_shards(2, 2, 3)[0].group
        );
        assert!(place_shards(9, 4, 1).iter().all(|p| p.group == 1));
    }

    /// The default grows with the cluster and stays within the bounds.
    #[test]
    fn default_shard_count_grows_with_the_cluster() {
        assert_eq!(default_shard_count(1), MIN_DEFAULT_SHARDS);
        assert_eq!(default_shard_count(3), 6);
        assert_eq!(default_shard_count(5), 10);
        assert_eq!(default_shard_count(100_000), MAX_TABLE_SHARDS);
    }
}
