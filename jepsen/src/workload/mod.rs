//! Workloads: what the clients do, and how each operation reads and writes Tessera.

pub mod register;
