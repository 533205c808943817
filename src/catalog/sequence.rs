//! Sequences: named counters that hand out numbers for generated keys (SERIAL, identity
//! columns, `nextval`), with PostgreSQL's options and errors.
//!
//! A sequence's definition lives in the catalog and changes only by DDL; its position
//! (the last value handed out) changes with every reservation, so it is kept apart from
//! the catalog, as one small record in the group that holds the catalog (the embedded
//! state machine, a cluster's metadata group). Values are handed out in reservations of
//! many at once ([`Sequence::reserve`]): a node keeps its reserved range in memory and
//! serves `nextval` from it without a round trip, as PostgreSQL's CACHE and
//! CockroachDB's node cache do. A reservation is committed before any of its values is
//! used, so values are never handed out twice, across nodes and failovers; values a
//! node reserved but never used are lost when it stops (gaps, as PostgreSQL allows).

use crate::error::{Error, Result};
use crate::types::DataType;
use serde::{Deserialize, Serialize};

/// Id of a sequence, never reused (the key of its position record).
pub type SequenceId = u64;

/// A sequence's options, checked and completed with PostgreSQL's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceOptions {
    /// `AS smallint | integer | bigint`: bounds the values.
    pub data_type: DataType,
    /// Step between values; never zero (negative: a descending sequence).
    pub increment: i64,
    /// Smallest value.
    pub min_value: i64,
    /// Largest value.
    pub max_value: i64,
    /// The first value handed out (and where RESTART goes back to).
    pub start: i64,
    /// How many values one node reserves at a time, at least.
    pub cache: i64,
    /// Whether the sequence wraps around at its bound rather than failing.
    pub cycle: bool,
}

/// Options as CREATE or ALTER SEQUENCE gives them: each `None` keeps the default (or,
/// for ALTER, the current value); `Some(None)` is `NO MINVALUE` / `NO MAXVALUE`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredOptions {
    /// `AS type`.
    pub data_type: Option<DataType>,
    /// `INCREMENT [BY] n`.
    pub increment: Option<i64>,
    /// `MINVALUE n` or `NO MINVALUE`.
    pub min_value: Option<Option<i64>>,
    /// `MAXVALUE n` or `NO MAXVALUE`.
    pub max_value: Option<Option<i64>>,
    /// `START [WITH] n`.
    pub start: Option<i64>,
    /// `CACHE n`.
    pub cache: Option<i64>,
    /// `[NO] CYCLE`.
    pub cycle: Option<bool>,
}

/// The bounds of a sequence data type.
fn type_bounds(data_type: DataType) -> Result<(i64, i64)> {
    match data_type {
        DataType::SmallInt => Ok((i16::MIN.into(), i16::MAX.into())),
        DataType::Integer => Ok((i32::MIN.into(), i32::MAX.into())),
        DataType::BigInt => Ok((i64::MIN, i64::MAX)),
        other => Err(Error::InvalidParameterValue(format!(
            "sequence type must be smallint, integer, or bigint, not {}",
            other.sql_name()
        ))),
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidParameterValue(message)
}

impl DeclaredOptions {
    /// Completes these options over `base` (the current options for ALTER SEQUENCE, none
    /// for CREATE) and checks them as PostgreSQL does.
    pub fn resolve(&self, base: Option<&SequenceOptions>) -> Result<SequenceOptions> {
        let data_type = self
            .data_type
            .or(base.map(|b| b.data_type))
            .unwrap_or(DataType::BigInt);
        let (type_min, type_max) = type_bounds(data_type)?;
        let increment = self.increment.or(base.map(|b| b.increment)).unwrap_or(1);
        if increment == 0 {
            return Err(invalid("INCREMENT must not be zero".into()));
        }
        // A bound not given keeps the current one, unless the type or direction changed,
        // in which case it becomes the new default, as in PostgreSQL.
        let keeps =
            |b: &&SequenceOptions| b.data_type == data_type && (b.increment > 0) == (increment > 0);
        let kept = base.filter(keeps);
        let default_min = if increment > 0 { 1 } else { type_min };
        let default_max = if increment > 0 { type_max } else { -1 };
        let min_value = match self.min_value {
            Some(value) => value.unwrap_or(default_min),
            None => kept.map_or(default_min, |b| b.min_value),
        };
        let max_value = match self.max_value {
            Some(value) => value.unwrap_or(default_max),
            None => kept.map_or(default_max, |b| b.max_value),
        };
        let type_name = data_type.sql_name();
        for (label, value) in [("MINVALUE", min_value), ("MAXVALUE", max_value)] {
            if !(type_min..=type_max).contains(&value) {
                return Err(invalid(format!(
                    "{label} ({value}) is out of range for sequence data type {type_name}"
                )));
            }
        }
        if min_value >= max_value {
            return Err(invalid(format!(
                "MINVALUE ({min_value}) must be less than MAXVALUE ({max_value})"
            )));
        }
        let default_start = if increment > 0 { min_value } else { max_value };
        let start = self
            .start
            .or(base.map(|b| b.start))
            .unwrap_or(default_start);
        if start < min_value {
            return Err(invalid(format!(
                "START value ({start}) cannot be less than MINVALUE ({min_value})"
            )));
        }
        if start > max_value {
            return Err(invalid(format!(
                "START value ({start}) cannot be greater than MAXVALUE ({max_value})"
            )));
        }
        let cache = self.cache.or(base.map(|b| b.cache)).unwrap_or(1);
        if cache <= 0 {
            return Err(invalid(format!(
                "CACHE ({cache}) must be greater than zero"
            )));
        }
        let cycle = self.cycle.or(base.map(|b| b.cycle)).unwrap_or(false);
        Ok(SequenceOptions {
            data_type,
            increment,
            min_value,
            max_value,
            start,
            cache,
            cycle,
        })
    }
}

/// The column a sequence belongs to (SERIAL, identity, `OWNED BY`): dropping the table
/// drops the sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceOwner {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
}

/// A sequence as CREATE SEQUENCE (or a SERIAL column) declares it, before its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceSpec {
    /// Name, unique among relations.
    pub name: String,
    /// Options, checked.
    pub options: SequenceOptions,
    /// The owning column, if any.
    pub owner: Option<SequenceOwner>,
}

/// A sequence in the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// Id (of its position record).
    pub id: SequenceId,
    /// Name.
    pub name: String,
    /// Options.
    pub options: SequenceOptions,
    /// The owning column, if any.
    pub owner: Option<SequenceOwner>,
    /// The value its position starts from: START, or the value of the last RESTART.
    pub restart_at: i64,
}

/// Where a sequence stands: the last value handed out (reserved), or, before the first,
/// the value the next call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencePosition {
    /// The last value reserved, or the next to hand out when `is_called` is false.
    pub last_value: i64,
    /// Whether `last_value` has been handed out.
    pub is_called: bool,
}

/// Consecutive values of a sequence reserved for one node: `first`, `first + increment`,
/// ... `count` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The first value.
    pub first: i64,
    /// How many values (at least one).
    pub count: u64,
    /// The step between them.
    pub increment: i64,
}

impl Reservation {
    /// The last value reserved.
    pub fn last(&self) -> i64 {
        self.first + (self.count as i64 - 1) * self.increment
    }
}

/// Most values one reservation may cover, whatever CACHE says.
pub const MAX_RESERVATION: u64 = 1 << 20;

impl Sequence {
    /// Where a sequence stands before its first value (and after RESTART).
    pub fn initial_position(&self) -> SequencePosition {
        SequencePosition {
            last_value: self.restart_at,
            is_called: false,
        }
    }

    /// Reserves up to `count` values after `position`: fewer when the sequence's bound
    /// comes first (the next reservation then wraps, for a cycling sequence, or fails
    /// with 2200H as PostgreSQL's `nextval` does). Returns the values and the position
    /// after them.
    pub fn reserve(
        &self,
        position: SequencePosition,
        count: u64,
    ) -> Result<(Reservation, SequencePosition)> {
        let options = &self.options;
        let (min, max) = (options.min_value as i128, options.max_value as i128);
        let increment = options.increment as i128;
        let mut next = if position.is_called {
            position.last_value as i128 + increment
        } else {
            position.last_value as i128
        };
        if next > max || next < min {
            if !options.cycle {
                let (word, bound) = if next > max {
                    ("maximum", options.max_value)
                } else {
                    ("minimum", options.min_value)
                };
                return Err(Error::SequenceGeneratorLimitExceeded(format!(
                    "nextval: reached {word} value of sequence \"{}\" ({bound})",
                    self.name
                )));
            }
            next = if increment > 0 { min } else { max };
        }
        let room = if increment > 0 {
            (max - next) / increment + 1
        } else {
            (next - min) / -increment + 1
        };
        let wanted = count.clamp(1, MAX_RESERVATION) as i128;
        let taken = wanted.min(room);
        let last = next + (taken - 1) * increment;
        let reservation = Reservation {
            first: next as i64,
            count: taken as u64,
            increment: options.increment,
        };
        let after = SequencePosition {
            last_value: last as i64,
            is_called: true,
        };
        Ok((reservation, after))
    }

    /// Checks a RESTART value against the bounds, as PostgreSQL words it.
    pub fn check_restart(options: &SequenceOptions, value: i64) -> Result<()> {
        if value < options.min_value {
            return Err(invalid(format!(
                "RESTART value ({value}) cannot be less than MINVALUE ({})",
                options.min_value
            )));
        }
        if value > options.max_value {
            return Err(invalid(format!(
                "RESTART value ({value}) cannot be greater than MAXVALUE ({})",
                options.max_value
            )));
        }
        Ok(())
    }

    /// Checks a `setval` value against the bounds.
    pub fn check_set(&self, value: i64) -> Result<()> {
        let options = &self.options;
        if (options.min_value..=options.max_value).contains(&value) {
            return Ok(());
        }
        Err(Error::NumericOutOfRange(format!(
            "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
            self.name, options.min_value, options.max_value
        )))
    }

    /// How many values a node reserves at once: the sequence's CACHE, and never fewer
    /// than [`NODE_RESERVATION`] (PostgreSQL itself logs 32 values ahead).
    pub fn reservation_size(&self) -> u64 {
        (self.options.cache as u64).clamp(NODE_RESERVATION, MAX_RESERVATION)
    }
}

/// The fewest values a node reserves at a time, so that `nextval` rarely needs a round.
pub const NODE_RESERVATION: u64 = 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(declared: DeclaredOptions) -> Sequence {
        let options = declared.resolve(None).unwrap();
        Sequence {
            id: 1,
            name: "s".into(),
            restart_at: options.start,
            options,
            owner: None,
        }
    }

    /// Defaults follow PostgreSQL: ascending from 1 to the type's maximum; descending
    /// from -1 down to its minimum; bad options get 22023 with PostgreSQL's words.
    #[test]
    fn options_default_and_check_as_postgres() {
        let ascending = DeclaredOptions::default().resolve(None).unwrap();
        assert_eq!((ascending.min_value, ascending.max_value), (1, i64::MAX));
        assert_eq!(ascending.start, 1);
        let descending = DeclaredOptions {
            increment: Some(-2),
            data_type: Some(DataType::Integer),
            ..Default::default()
        }
        .resolve(None)
        .unwrap();
        assert_eq!(descending.min_value, i32::MIN as i64);
        assert_eq!((descending.max_value, descending.start), (-1, -1));
        let zero = DeclaredOptions {
            increment: Some(0),
            ..Default::default()
        };
        assert_eq!(zero.resolve(None).unwrap_err().sqlstate(), "22023");
        let too_big = DeclaredOptions {
            data_type: Some(DataType::SmallInt),
            max_value: Some(Some(40_000)),
            ..Default::default()
        };
        let error = too_big.resolve(None).unwrap_err();
        assert!(error
            .to_string()
            .contains("out of range for sequence data type smallint"));
        let start = DeclaredOptions {
            start: Some(0),
            ..Default::default()
        };
        assert!(start
            .resolve(None)
            .unwrap_err()
            .to_string()
            .contains("START value (0)"));
    }

    /// Reservations cover consecutive values, stop at the bound, then fail (2200H) or
    /// wrap when the sequence cycles.
    #[test]
    fn reservations_stop_at_the_bound() {
        let small = sequence(DeclaredOptions {
            max_value: Some(Some(5)),
            ..Default::default()
        });
        let (first, after) = small.reserve(small.initial_position(), 3).unwrap();
        assert_eq!((first.first, first.count), (1, 3));
        let (second, after) = small.reserve(after, 32).unwrap();
        assert_eq!((second.first, second.count), (4, 2), "cut at MAXVALUE 5");
        let error = small.reserve(after, 1).unwrap_err();
        assert_eq!(error.sqlstate(), "2200H");
        assert!(error
            .to_string()
            .contains("reached maximum value of sequence \"s\" (5)"));
        let cycling = sequence(DeclaredOptions {
            max_value: Some(Some(5)),
            cycle: Some(true),
            increment: Some(2),
            ..Default::default()
        });
        let (first, after) = cycling.reserve(cycling.initial_position(), 32).unwrap();
        assert_eq!((first.first, first.count), (1, 3), "1, 3, 5");
        let (wrapped, _) = cycling.reserve(after, 1).unwrap();
        assert_eq!(wrapped.first, 1);
    }

    /// A sequence near the top of bigint does not overflow while reserving.
    #[test]
    fn reservations_do_not_overflow() {
        let near_top = sequence(DeclaredOptions {
            start: Some(i64::MAX - 1),
            ..Default::default()
        });
        let (reserved, after) = near_top.reserve(near_top.initial_position(), 32).unwrap();
        assert_eq!((reserved.first, reserved.count), (i64::MAX - 1, 2));
        assert_eq!(near_top.reserve(after, 1).unwrap_err().sqlstate(), "2200H");
    }
}
