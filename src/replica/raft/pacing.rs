//! When a group takes a snapshot.
//!
//! A snapshot writes the group's whole contents to a file so that the log under it can
//! be purged. openraft's own policy takes one every fixed number of entries, so its cost
//! grows with the data while the log it frees does not: in the 3-node insert benchmark
//! at 240,000 records every node wrote an 11 MB snapshot every 4 seconds, and turning
//! snapshots off raised throughput by a sixth. Here a snapshot is due once the log since
//! the last one holds at least the configured number of entries *and* at least half as
//! many bytes as that snapshot. The bytes spent writing snapshots then stay within twice
//! the bytes written to the log, however large the group grows; the price is a log that
//! may reach about half the group's size before it is purged (disk, not memory: entries
//! are read back only for followers that fall behind).
//!
//! The byte count is approximate on purpose: it starts from zero when a node restarts,
//! and entries appended while a snapshot is being built are forgotten when it finishes.
//! Both only delay the next snapshot; the entry count still has to be reached.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot is due once the log since the last one holds at least this fraction of
/// the snapshot's size in bytes (1/2, written as numerator and denominator).
const LOG_TO_SNAPSHOT_RATIO: (u64, u64) = (1, 2);

/// The counts one group's snapshot decision rests on, shared by its log store (which
/// adds what it appends) and its state machine (which records each new snapshot).
#[derive(Debug, Default)]
pub struct SnapshotPacing {
    /// Bytes of entries appended to the log since the current snapshot was made.
    log_bytes: AtomicU64,
    /// Size of the current snapshot file (0 when there is none).
    snapshot_bytes: AtomicU64,
}

impl SnapshotPacing {
    /// Pacing for a group whose current snapshot file is `snapshot_bytes` long.
    pub fn new(snapshot_bytes: u64) -> SnapshotPacing {
        SnapshotPacing {
            log_bytes: AtomicU64::new(0),
            snapshot_bytes: AtomicU64::new(snapshot_bytes),
        }
    }

    /// Counts `bytes` of entries appended to the log.
    pub fn appended(&self, bytes: u64) {
        self.log_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records a new current snapshot (built here or installed from the leader) of
    /// `bytes`; the log is counted afresh from it.
    pub fn snapshot_made(&self, bytes: u64) {
        self.snapshot_bytes.store(bytes, Ordering::Relaxed);
        self.log_bytes.store(0, Ordering::Relaxed);
    }

    /// Whether a snapshot is due, given `entries` applied since the current one and the
    /// `threshold` of entries between snapshots.
    pub fn due(&self, entries: u64, threshold: u64) -> bool {
        let (numerator, denominator) = LOG_TO_SNAPSHOT_RATIO;
        let log_bytes = self.log_bytes.load(Ordering::Relaxed);
        let snapshot_bytes = self.snapshot_bytes.load(Ordering::Relaxed);
        entries >= threshold
            && log_bytes.saturating_mul(denominator) >= snapshot_bytes.saturating_mul(numerator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With no snapshot yet, the entry count alone decides.
    #[test]
    fn the_first_snapshot_needs_only_the_entries() {
        let pacing = SnapshotPacing::new(0);
        assert!(!pacing.due(99, 100));
        assert!(pacing.due(100, 100));
    }

    /// A large snapshot waits for a log half its size, however many entries pass.
    #[test]
    fn a_large_snapshot_waits_for_half_its_size_in_log() {
        let pacing = SnapshotPacing::new(1_000_000);
        pacing.appended(499_999);
        assert!(!pacing.due(1_000_000, 100), "the log is under half");
        pacing.appended(1);
        assert!(pacing.due(100, 100));
        assert!(
            !pacing.due(99, 100),
            "the entry count still has to be reached"
        );
    }

    /// A new snapshot resets the log count and sets the size to beat.
    #[test]
    fn a_new_snapshot_starts_the_count_again() {
        let pacing = SnapshotPacing::new(10);
        pacing.appended(1_000);
        assert!(pacing.due(100, 100));
        pacing.snapshot_made(4_000);
        assert!(!pacing.due(100, 100));
        pacing.appended(2_000);
        assert!(pacing.due(100, 100));
    }
}
