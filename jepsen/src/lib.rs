//! A Jepsen-style consistency suite for Tessera, in Rust.
//!
//! Jepsen itself (Clojure, Knossos, Elle) cannot be installed here, so this crate
//! follows its method with its own parts: [`cluster`] runs real `tessera` processes on
//! 127.0.0.x addresses; [`net`] and [`nemesis`] inject faults on a seeded schedule;
//! [`workload`] and [`client`] run concurrent clients through the PostgreSQL protocol;
//! [`history`] records what clients asked and were told, in Jepsen's format; [`checker`]
//! decides whether a history is one the claimed guarantees allow; [`runner`] ties a run
//! together and [`timeline`] draws it. Checkers stand on their own — `tessera-jepsen
//! check` runs them on a history any tool produced — and are tested with hand-made and
//! simulated histories, valid and broken, so that a pass means something.

pub mod checker;
pub mod client;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod runner;
pub mod timeline;
pub mod workload;
