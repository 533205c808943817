//! A node's reserved sequence values: `nextval` takes the next one from memory, and
//! only when a sequence's range is used up does the node reserve another through the
//! catalog's holder (one committed command per range, not per value).
//!
//! A range is kept with the options it was reserved under; if the sequence has been
//! altered since (another increment or bound), the rest of the range is given back
//! ([`Taken::Stale`]: the holder moves the sequence back if nobody reserved after this
//! node), so the sequence goes on from the last value handed out under its new options,
//! as in PostgreSQL. Values not given back (a node that stopped, another node's range)
//! are gaps, never handed out again: the holder's position is already past them.

use crate::catalog::sequence::{Reservation, SequenceOptions, SequencePosition};
use crate::catalog::{Sequence, SequenceId};
use std::collections::HashMap;
use std::sync::Mutex;

/// Most sequences one node keeps a range for; past it the ranges are dropped (gaps).
const MAX_CACHED_SEQUENCES: usize = 10_000;

/// The ranges a node has reserved and not yet handed out, by sequence id.
#[derive(Default)]
pub struct SequenceCache {
    ranges: Mutex<HashMap<SequenceId, CachedRange>>,
}

struct CachedRange {
    /// The reservation as the holder made it.
    reservation: Reservation,
    /// The next value to hand out.
    next: i64,
    /// How many values remain from `next` on.
    remaining: u64,
    /// The options the range was reserved under.
    options: SequenceOptions,
}

/// What [`SequenceCache::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The next value.
    Value(i64),
    /// No range: reserve one.
    Empty,
    /// The sequence was altered since the range was reserved: give the rest back (if
    /// the sequence still stands at `reserved_through`, move it to `position`), then
    /// reserve anew.
    Stale {
        /// The range's last value.
        reserved_through: i64,
        /// The position from which the unused values follow.
        position: SequencePosition,
    },
}

impl SequenceCache {
    fn ranges(&self) -> std::sync::MutexGuard<'_, HashMap<SequenceId, CachedRange>> {
        self.ranges
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The next value of `sequence` from its cached range, if one is left.
    pub fn take(&self, sequence: &Sequence) -> Taken {
        let mut ranges = self.ranges();
        let Some(range) = ranges.get_mut(&sequence.id) else {
            return Taken::Empty;
        };
        if range.options != sequence.options {
            let reservation = range.reservation;
            // The range's first value was handed out when it was filled, so the last
            // value handed out is the one before `next`.
            let position = SequencePosition {
                last_value: range.next - reservation.increment,
                is_called: true,
            };
            ranges.remove(&sequence.id);
            return Taken::Stale {
                reserved_through: reservation.last(),
                position,
            };
        }
        let value = range.next;
        range.remaining -= 1;
        if range.remaining == 0 {
            ranges.remove(&sequence.id);
        } else {
            range.next = value + range.reservation.increment;
        }
        Taken::Value(value)
    }

    /// Hands out the first value of a fresh reservation and keeps the rest (replacing
    /// any range left: its values become gaps).
    pub fn fill(&self, sequence: &Sequence, reservation: Reservation) -> i64 {
        let first = reservation.first;
        let mut ranges = self.ranges();
        if reservation.count <= 1 {
            ranges.remove(&sequence.id);
            return first;
        }
        if ranges.len() >= MAX_CACHED_SEQUENCES && !ranges.contains_key(&sequence.id) {
            ranges.clear();
        }
        let range = CachedRange {
            reservation,
            next: first + reservation.increment,
            remaining: reservation.count - 1,
            options: sequence.options.clone(),
        };
        ranges.insert(sequence.id, range);
        first
    }

    /// Drops `sequence`'s range (after `setval`, so this node continues from the new
    /// position).
    pub fn forget(&self, sequence: SequenceId) {
        self.ranges().remove(&sequence);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::sequence::DeclaredOptions;

    fn sequence() -> Sequence {
        let options = DeclaredOptions::default().resolve(None).unwrap();
        Sequence {
            id: 7,
            name: "s".into(),
            restart_at: 1,
            options,
            owner: None,
        }
    }

    fn reservation() -> Reservation {
        Reservation {
            first: 10,
            count: 3,
            increment: 5,
        }
    }

    /// A range is handed out in order, once.
    #[test]
    fn ranges_hand_out_each_value_once() {
        let cache = SequenceCache::default();
        let sequence = sequence();
        assert_eq!(cache.take(&sequence), Taken::Empty);
        assert_eq!(cache.fill(&sequence, reservation()), 10);
        assert_eq!(cache.take(&sequence), Taken::Value(15));
        assert_eq!(cache.take(&sequence), Taken::Value(20));
        assert_eq!(cache.take(&sequence), Taken::Empty, "used up");
    }

    /// An altered sequence gives back what is left, from the last value handed out.
    #[test]
    fn an_altered_sequence_gives_the_rest_back() {
        let cache = SequenceCache::default();
        let mut sequence = sequence();
        cache.fill(&sequence, reservation());
        assert_eq!(cache.take(&sequence), Taken::Value(15));
        sequence.options.increment = 2;
        let stale = Taken::Stale {
            reserved_through: 20,
            position: SequencePosition {
                last_value: 15,
                is_called: true,
            },
        };
        assert_eq!(cache.take(&sequence), stale);
        assert_eq!(cache.take(&sequence), Taken::Empty);
    }
}
