//! Stopping a running statement: a client's cancel request or `statement_timeout`.
//!
//! The session owns an [`Interrupt`]; the server's cancel handler sets it from another
//! thread, and the statement's deadline is armed when the statement starts. Scans check
//! it every [`CHECK_EVERY_ROWS`] rows (an atomic load and, with a deadline, a clock read),
//! so a statement stops within a batch of rows and never leaves a partial write: the
//! failing statement is undone like any other failure.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many rows an executor produces between two checks.
pub const CHECK_EVERY_ROWS: u32 = 256;

/// A flag and a deadline that running statements obey.
#[derive(Debug, Default)]
pub struct Interrupt {
    cancelled: AtomicBool,
    deadline: Mutex<Option<Instant>>,
}

impl Interrupt {
    /// Asks the running statement (if any) to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// Called as a statement starts: forgets stale cancels (a cancel that arrives while
    /// no statement runs does nothing, as in PostgreSQL) and arms the timeout.
    pub fn start_statement(&self, timeout: Option<Duration>) {
        self.cancelled.store(false, Ordering::Release);
        *self
            .deadline
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = timeout.map(|t| Instant::now() + t);
    }

    /// Fails with 57014 when the statement must stop.
    pub fn check(&self) -> Result<()> {
        if self.cancelled.load(Ordering::Acquire) {
            return Err(Error::QueryCanceled(
                "canceling statement due to user request".into(),
            ));
        }
        let deadline = *self
            .deadline
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(Error::QueryCanceled(
                "canceling statement due to statement timeout".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cancel stops the statement running now, not the next one; a deadline expires.
    #[test]
    fn cancel_and_deadline() {
        let interrupt = Interrupt::default();
        interrupt.start_statement(None);
        assert!(interrupt.check().is_ok());
        interrupt.cancel();
        assert_eq!(interrupt.check().unwrap_err().sqlstate(), "57014");
        interrupt.start_statement(None);
        assert!(
            interrupt.check().is_ok(),
            "a stale cancel must not stop the next statement"
        );
        interrupt.start_statement(Some(Duration::ZERO));
        assert!(interrupt
            .check()
            .unwrap_err()
            .to_string()
            .contains("statement timeout"));
    }
}
