//! A session's sequences: `nextval` from the node's cached ranges, and the session's
//! own `currval` and `lastval`.
//!
//! The values come from the replica (see `Replica::next_sequence_value`), which keeps
//! one reserved range per sequence for the whole node, so sessions on a node share it
//! and a round to the catalog's holder is needed only once per range. What this
//! session was last given, per sequence and overall, is its own, as in PostgreSQL.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::sql::planner::sequence::SequenceSource;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most sequences whose `currval` one session remembers, so a session that touches
/// sequences without end cannot grow without bound (PostgreSQL keeps them all).
const MAX_REMEMBERED: usize = 10_000;

/// The session's handle on sequences.
pub struct SessionSequences {
    replica: Arc<Replica>,
    given: Mutex<Given>,
}

#[derive(Default)]
struct Given {
    /// The last value `nextval` gave this session, by sequence name.
    current: HashMap<String, i64>,
    /// The last value of any sequence.
    last: Option<i64>,
}

impl SessionSequences {
    /// Sequences of the session on `replica`.
    pub fn new(replica: Arc<Replica>) -> SessionSequences {
        SessionSequences {
            replica,
            given: Mutex::default(),
        }
    }

    fn given(&self) -> std::sync::MutexGuard<'_, Given> {
        self.given
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.replica.catalog()
    }

    /// Records `value` as this session's `currval` of `name` (and, from `nextval`, as
    /// its `lastval`).
    fn remember(&self, name: &str, value: i64, as_last: bool) {
        let mut given = self.given();
        if given.current.len() >= MAX_REMEMBERED && !given.current.contains_key(name) {
            given.current.clear();
        }
        given.current.insert(name.to_string(), value);
        if as_last {
            given.last = Some(value);
        }
    }
}

impl SequenceSource for SessionSequences {
    fn next_value(&self, name: &str) -> Result<i64> {
        let catalog = self.catalog();
        let sequence = catalog.require_sequence(name)?;
        let value = self.replica.next_sequence_value(sequence)?;
        self.remember(name, value, true);
        Ok(value)
    }

    fn current_value(&self, name: &str) -> Result<i64> {
        self.catalog().require_sequence(name)?;
        self.given().current.get(name).copied().ok_or_else(|| {
            Error::ObjectNotInPrerequisiteState(format!(
                "currval of sequence \"{name}\" is not yet defined in this session"
            ))
        })
    }

    fn set_value(&self, name: &str, value: i64, is_called: bool) -> Result<i64> {
        let catalog = self.catalog();
        let sequence = catalog.require_sequence(name)?;
        sequence.check_set(value)?;
        self.replica
            .set_sequence_value(sequence, value, is_called)?;
        if is_called {
            self.remember(name, value, false);
        }
        Ok(value)
    }

    fn last_value(&self) -> Result<i64> {
        self.given().last.ok_or_else(|| {
            Error::ObjectNotInPrerequisiteState("lastval is not yet defined in this session".into())
        })
    }
}
