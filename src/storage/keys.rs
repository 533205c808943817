//! Where each kind of record lives in the key space.
//!
//! Every data key starts with the shard it belongs to, so one shard's data is one
//! contiguous key range (what a Raft snapshot of that shard streams), then a kind byte,
//! then numeric ids; names never appear in keys (renames are free, keys stay short).
//!
//! ```text
//! row:          shard u16 | 0x01 | table u32 | pk tuple           | !commit_ts u64
//! index entry:  shard u16 | 0x02 | table u32 | index u32 | values | pk tuple | !commit_ts u64
//! row lock:     shard u16 | 0x03 | table u32 | 0x01 | pk tuple
//! unique lock:  shard u16 | 0x03 | table u32 | 0x02 | index u32 | values
//! ```
//!
//! Locks are held by transactions prepared across groups (see
//! `state_machine::two_phase`); they sit in the shard's key range, so a snapshot of the
//! shard carries them, and have no version suffix (one lock per key at a time).
//!
//! The version suffix is the bitwise NOT of the commit timestamp, big-endian, so the
//! newest version of a record sorts first and a reader seeks straight to it.

/// Kind byte of a row version.
const KIND_ROW: u8 = 0x01;
/// Kind byte of an index entry version.
const KIND_INDEX: u8 = 0x02;
/// Kind byte of the locks a prepared transaction holds.
const KIND_LOCK: u8 = 0x03;
/// Lock sub-kind: a row.
const LOCK_ROW: u8 = 0x01;
/// Lock sub-kind: a value of a unique index.
const LOCK_UNIQUE: u8 = 0x02;
/// Length of the version suffix.
pub const VERSION_LEN: usize = 8;

/// A key above every row and index key: shard 0xffff with a kind byte above every kind.
pub const AFTER_ALL_DATA: &[u8] = &[0xff, 0xff, 0xff];

/// Numeric id of a table; never reused, so stale keys of a dropped table cannot resurface.
pub type TableId = u32;
/// Numeric id of an index, unique within the database.
pub type IndexId = u32;
/// Shard number within the 16-bit hash space's split.
pub type ShardId = u16;

fn header(shard: ShardId, kind: u8, table: TableId) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(&shard.to_be_bytes());
    key.push(kind);
    key.extend_from_slice(&table.to_be_bytes());
    key
}

/// Prefix of every row version of a table in one shard.
pub fn table_rows_prefix(shard: ShardId, table: TableId) -> Vec<u8> {
    header(shard, KIND_ROW, table)
}

/// Prefix of every index entry of a table in one shard (all of its indexes).
pub fn table_index_prefix(shard: ShardId, table: TableId) -> Vec<u8> {
    header(shard, KIND_INDEX, table)
}

/// Prefix of every version of one row.
pub fn row_prefix(shard: ShardId, table: TableId, pk: &[u8]) -> Vec<u8> {
    let mut key = table_rows_prefix(shard, table);
    key.extend_from_slice(pk);
    key
}

/// Prefix of every entry of one index in one shard.
pub fn index_prefix(shard: ShardId, table: TableId, index: IndexId) -> Vec<u8> {
    let mut key = table_index_prefix(shard, table);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// Prefix of every version of one index entry: index values followed by the row's pk.
pub fn index_entry_prefix(
    shard: ShardId,
    table: TableId,
    index: IndexId,
    values: &[u8],
    pk: &[u8],
) -> Vec<u8> {
    let mut key = index_prefix(shard, table, index);
    key.extend_from_slice(values);
    key.extend_from_slice(pk);
    key
}

/// The key of the lock a prepared transaction holds on one row.
pub fn row_lock_key(shard: ShardId, table: TableId, pk: &[u8]) -> Vec<u8> {
    let mut key = header(shard, KIND_LOCK, table);
    key.push(LOCK_ROW);
    key.extend_from_slice(pk);
    key
}

/// The key of the lock a prepared transaction holds on a value of a unique index, so
/// that no other commit can claim the value before the transaction is decided.
pub fn unique_lock_key(shard: ShardId, table: TableId, index: IndexId, values: &[u8]) -> Vec<u8> {
    let mut key = header(shard, KIND_LOCK, table);
    key.push(LOCK_UNIQUE);
    key.extend_from_slice(&index.to_be_bytes());
    key.extend_from_slice(values);
    key
}

/// Prefix of every lock on a table in one shard.
pub fn table_locks_prefix(shard: ShardId, table: TableId) -> Vec<u8> {
    header(shard, KIND_LOCK, table)
}

/// Appends the version suffix for `commit_ts` to a record prefix.
pub fn with_version(mut prefix: Vec<u8>, commit_ts: u64) -> Vec<u8> {
    prefix.extend_from_slice(&(!commit_ts).to_be_bytes());
    prefix
}

/// Splits a versioned key into its record prefix and commit timestamp; `None` when the
/// key is too short to carry a version (corruption).
pub fn split_version(key: &[u8]) -> Option<(&[u8], u64)> {
    let split = key.len().checked_sub(VERSION_LEN)?;
    let (prefix, suffix) = key.split_at(split);
    let mut raw = [0u8; VERSION_LEN];
    raw.copy_from_slice(suffix);
    Some((prefix, !u64::from_be_bytes(raw)))
}

/// Which of `shard_count` equal ranges of the 16-bit hash space a primary key falls in.
/// The hash is FNV-1a followed by murmur3's 64-bit finalizer: stable across processes,
/// versions and platforms (std's SipHash is randomly keyed and would scatter the same key
/// to different shards). The finalizer matters: FNV alone barely changes its top bits
/// for short keys that differ in their last byte, and the top bits pick the shard.
pub fn shard_for(pk: &[u8], shard_count: u16) -> ShardId {
    if shard_count <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in pk {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    let point = (hash >> 48) as u32; // top 16 bits: the point in the hash space
    ((point * u32::from(shard_count)) >> 16) as ShardId
}

/// Meta key holding the persisted catalog.
pub const META_CATALOG: &[u8] = b"catalog";
/// Meta key holding the timestamp oracle's reserved upper bound.
pub const META_ORACLE_RESERVED: &[u8] = b"oracle/reserved";
/// Meta key holding the commit timestamp of the last applied command.
pub const META_LAST_APPLIED_TS: &[u8] = b"applied/last_ts";
/// Meta prefix of the transactions prepared in this group and not yet resolved.
pub const META_PREPARED_PREFIX: &[u8] = b"txn/prepared/";
/// Meta prefix of the records of cross-group transactions this group holds.
pub const META_TXN_RECORD_PREFIX: &[u8] = b"txn/record/";
/// Prefix of sequence positions (the last value reserved), by sequence id; kept by the
/// group that holds the catalog.
pub const META_SEQUENCE_PREFIX: &[u8] = b"sequence/";

/// Key of a sequence's position record.
pub fn sequence_position_key(sequence: u64) -> Vec<u8> {
    [META_SEQUENCE_PREFIX, &sequence.to_be_bytes()].concat()
}

/// Meta key of one prepared transaction.
pub fn prepared_txn_key(txn: u64) -> Vec<u8> {
    [META_PREPARED_PREFIX, &txn.to_be_bytes()].concat()
}

/// Meta key of one transaction record.
pub fn txn_record_key(txn: u64) -> Vec<u8> {
    [META_TXN_RECORD_PREFIX, &txn.to_be_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Newer versions sort before older ones, and the suffix round-trips.
    #[test]
    fn versions_sort_newest_first() {
        let old = with_version(row_prefix(0, 1, b"k"), 5);
        let new = with_version(row_prefix(0, 1, b"k"), 9);
        assert!(new < old);
        assert_eq!(split_version(&new), Some((&row_prefix(0, 1, b"k")[..], 9)));
    }

    /// Shards spread keys over every range and stay stable for the same key.
    #[test]
    fn shard_hash_is_stable_and_spread() {
        let mut seen = [0u32; 4];
        for i in 0..1000u32 {
            let shard = shard_for(&i.to_be_bytes(), 4);
            seen[shard as usize] += 1;
            assert_eq!(shard, shard_for(&i.to_be_bytes(), 4));
        }
        assert!(seen.iter().all(|count| *count > 150), "{seen:?}");
        assert_eq!(shard_for(b"anything", 1), 0);
    }
}
