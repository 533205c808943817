//! Workloads: what the clients do, how each operation reads and writes Tessera, and
//! which checker judges the history.

pub mod append;
pub mod bank;
pub mod register;
pub mod set;

use crate::checker::{self, Verdict};
use crate::client::Completion;
use crate::history::Operation;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

/// One operation to run: its name and invocation value.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// The operation (`read`, `write`, `transfer`, ...).
    pub f: &'static str,
    /// Its argument, as the history records it.
    pub value: Value,
}

/// The schema a workload needs.
pub struct Setup {
    /// The table (read to see that a node answers).
    pub table: &'static str,
    /// `CREATE TABLE IF NOT EXISTS ...`.
    pub create: &'static str,
    /// Inserts of the initial rows, each one statement (atomic: retried whole).
    pub rows: Vec<String>,
}

/// Which workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Independent registers: linearizability.
    Register,
    /// Transfers between accounts: totals conserved.
    Bank,
    /// Unique inserts and reads: nothing lost, nothing from nowhere.
    Set,
    /// Elle's list-append transactions: isolation anomalies.
    Append,
}

impl Kind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Bank => "bank",
            Kind::Set => "set",
            Kind::Append => "append",
        }
    }
}

/// A workload's state during a run.
pub struct Workload {
    kind: Kind,
    register: Mutex<register::Generator>,
    set: Mutex<set::Generator>,
    append: Mutex<append::Generator>,
}

impl Workload {
    /// A fresh workload of `kind`.
    pub fn new(kind: Kind) -> Workload {
        Workload {
            kind,
            register: Mutex::default(),
            set: Mutex::default(),
            append: Mutex::default(),
        }
    }

    /// Which workload this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The schema and initial rows.
    pub fn setup(&self) -> Setup {
        match self.kind {
            Kind::Register => register::setup(),
            Kind::Bank => bank::setup(),
            Kind::Set => set::setup(),
            Kind::Append => append::setup(),
        }
    }

    /// The next operation, or `None` when the workload has nothing more to do.
    pub fn next(&self, rng: &mut ChaCha8Rng) -> Option<Invocation> {
        match self.kind {
            Kind::Register => lock(&self.register).next(rng),
            Kind::Bank => Some(bank::next(rng)),
            Kind::Set => Some(lock(&self.set).next(rng)),
            Kind::Append => lock(&self.append).next(rng),
        }
    }

    /// Runs one operation; returns how it ended and whether the connection is still
    /// usable.
    pub async fn invoke(
        &self,
        client: &mut tokio_postgres::Client,
        op: &Invocation,
    ) -> (Completion, bool) {
        match self.kind {
            Kind::Register => register::invoke(client, op).await,
            Kind::Bank => bank::invoke(client, op).await,
            Kind::Set => set::invoke(client, op).await,
            Kind::Append => append::invoke(client, op).await,
        }
    }

    /// The reads that end a run, after healing.
    pub fn final_reads(&self) -> Vec<Invocation> {
        match self.kind {
            Kind::Register => lock(&self.register).final_reads(),
            Kind::Bank => vec![bank::read()],
            Kind::Set => vec![set::final_read()],
            Kind::Append => lock(&self.append).final_reads(),
        }
    }

    /// Judges the history; `linearizable_reads` says whether reads claim to see every
    /// write acknowledged before they began.
    pub fn check(
        &self,
        operations: &[Operation],
        linearizable_reads: bool,
        budget: Duration,
    ) -> Verdict {
        match self.kind {
            Kind::Register => checker::linear::check(operations, budget),
            Kind::Bank => checker::bank::check(operations, bank::ACCOUNTS, bank::TOTAL),
            Kind::Set => checker::set::check(operations, linearizable_reads),
            Kind::Append => checker::elle::check(operations, linearizable_reads),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
