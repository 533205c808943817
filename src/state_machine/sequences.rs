//! Sequence positions, as the group that holds the catalog keeps them: the embedded
//! state machine, or a cluster's metadata group (both call these functions).
//!
//! A position is one small record per sequence id, apart from the catalog so that a
//! reservation does not make a new catalog version (which every data group would have
//! to install). A sequence without a record stands at its `restart_at`, not yet
//! called, so CREATE SEQUENCE and ALTER SEQUENCE ... RESTART (which gives the sequence
//! a fresh id) write none. Reservations are applied in log order, so two nodes asking
//! at once get disjoint ranges on every replica alike.

use super::Applied;
use crate::catalog::sequence::SequencePosition;
use crate::catalog::{Catalog, Sequence, SequenceId};
use crate::encoding;
use crate::error::{Error, Result};
use crate::storage::{keys, Batch, Space, Store};

/// The sequence with id `id`, or 42P01 when it was dropped or restarted (its id
/// renewed) after the proposer looked it up: the proposer looks again.
fn sequence_by_id(catalog: &Catalog, id: SequenceId) -> Result<&Sequence> {
    catalog.sequence_by_id(id).ok_or_else(|| {
        Error::UndefinedTable(format!(
            "sequence with id {id} (dropped or restarted meanwhile)"
        ))
    })
}

/// Where sequence `sequence` stands in `store`.
pub fn position(store: &Store, sequence: &Sequence) -> Result<SequencePosition> {
    match store.get(Space::Meta, &keys::sequence_position_key(sequence.id))? {
        Some(bytes) => encoding::decode(&bytes),
        None => Ok(sequence.initial_position()),
    }
}

fn put_position(id: SequenceId, position: &SequencePosition, batch: &mut Batch) -> Result<()> {
    batch.put(
        Space::Meta,
        keys::sequence_position_key(id),
        encoding::encode(position)?,
    );
    Ok(())
}

/// Reserves up to `count` values of sequence `id`, recording the new position in
/// `batch`.
pub fn advance(
    store: &Store,
    catalog: &Catalog,
    id: SequenceId,
    count: u64,
    batch: &mut Batch,
) -> Result<Applied> {
    let sequence = sequence_by_id(catalog, id)?;
    let (reservation, after) = sequence.reserve(position(store, sequence)?, count)?;
    put_position(id, &after, batch)?;
    Ok(Applied::SequenceValues(reservation))
}

/// Moves sequence `id` back to `position` if it still stands where the releasing node's
/// reservation left it (`reserved_through`); otherwise changes nothing.
pub fn release(
    store: &Store,
    catalog: &Catalog,
    id: SequenceId,
    reserved_through: i64,
    position: SequencePosition,
    batch: &mut Batch,
) -> Result<Applied> {
    let sequence = sequence_by_id(catalog, id)?;
    let current = self::position(store, sequence)?;
    if current.is_called && current.last_value == reserved_through {
        put_position(id, &position, batch)?;
    }
    Ok(Applied::Done)
}

/// `setval`: moves sequence `id` to `value`, checked against its bounds.
pub fn set(
    catalog: &Catalog,
    id: SequenceId,
    value: i64,
    is_called: bool,
    batch: &mut Batch,
) -> Result<Applied> {
    let sequence = sequence_by_id(catalog, id)?;
    sequence.check_set(value)?;
    let position = SequencePosition {
        last_value: value,
        is_called,
    };
    put_position(id, &position, batch)?;
    Ok(Applied::Done)
}

/// Removes the position records of sequences in `old` that `new` no longer has under
/// the same id (dropped, or restarted under a fresh id).
pub fn forget_dropped(old: &Catalog, new: &Catalog, batch: &mut Batch) {
    for sequence in old.sequences() {
        if new.sequence_by_id(sequence.id).is_none() {
            batch.delete(Space::Meta, keys::sequence_position_key(sequence.id));
        }
    }
}
