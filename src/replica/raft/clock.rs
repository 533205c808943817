//! The node's clock: how it measures the spans that safety rests on.
//!
//! A lease is safe only while the leader's clock runs no slower than its followers' by
//! more than the lease's margin (it lasts ¾ of the shortest election timeout), and a
//! `max_staleness` bound holds only as well as the follower measures time. Every such
//! span is measured here, so a fault test can make one node's clock run fast or slow
//! (`ALTER CLUSTER SET CLOCK RATE`, accepted only by a node started with `test_faults`)
//! and see what breaks. Timeouts that only bound how long something waits use the
//! system clock directly: a wrong rate there costs time, never correctness.
//!
//! Only rates are modelled, not jumps: these spans come from a monotonic clock, which
//! NTP slews (changes the rate of) but never steps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Measures spans of the system's monotonic clock as this node's clock would.
pub trait Clock: Send + Sync {
    /// This node's measure of `real`, a span of the system's monotonic clock.
    fn measure(&self, real: Duration) -> Duration;

    /// How long ago `then` was, by this node's clock.
    fn since(&self, then: Instant) -> Duration {
        self.measure(then.elapsed())
    }
}

/// The slowest and fastest rates a test may set: a clock a hundred times off is far
/// beyond any real fault, and a zero or negative rate would stop or reverse time.
pub const RATE_LIMITS: (f64, f64) = (0.01, 100.0);

/// The system clock, at a rate a test may change (1.0 until then).
#[derive(Debug)]
pub struct NodeClock {
    /// The rate in millionths: 1,000,000 is the system clock's.
    rate_ppm: AtomicU64,
}

impl Default for NodeClock {
    fn default() -> NodeClock {
        NodeClock {
            rate_ppm: AtomicU64::new(1_000_000),
        }
    }
}

impl NodeClock {
    /// Makes this node's clock run `rate` times as fast as the system's, from now on
    /// for every span measured (a span that began before is measured at the new rate
    /// whole). Refuses a rate outside [`RATE_LIMITS`].
    pub fn set_rate(&self, rate: f64) -> Result<(), String> {
        let (slowest, fastest) = RATE_LIMITS;
        if !(slowest..=fastest).contains(&rate) {
            return Err(format!(
                "a clock rate must lie between {slowest} and {fastest}, not {rate}"
            ));
        }
        self.rate_ppm
            .store((rate * 1_000_000.0).round() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The current rate.
    pub fn rate(&self) -> f64 {
        self.rate_ppm.load(Ordering::Relaxed) as f64 / 1_000_000.0
    }
}

impl Clock for NodeClock {
    fn measure(&self, real: Duration) -> Duration {
        let rate_ppm = self.rate_ppm.load(Ordering::Relaxed);
        if rate_ppm == 1_000_000 {
            return real;
        }
        let scaled = real.as_nanos() * u128::from(rate_ppm) / 1_000_000;
        Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default clock measures spans as the system does; a set rate scales them.
    #[test]
    fn a_rate_scales_every_span_measured() {
        let clock = NodeClock::default();
        let second = Duration::from_secs(1);
        assert_eq!(clock.measure(second), second);
        clock.set_rate(0.5).expect("slow");
        assert_eq!(clock.measure(second), Duration::from_millis(500));
        clock.set_rate(3.0).expect("fast");
        assert_eq!(clock.measure(second), Duration::from_secs(3));
        assert_eq!(clock.rate(), 3.0);
    }

    /// Rates that would stop, reverse or absurdly stretch time are refused, and the
    /// clock keeps its rate.
    #[test]
    fn rates_out_of_bounds_are_refused() {
        let clock = NodeClock::default();
        for rate in [0.0, -1.0, 0.001, 1000.0, f64::NAN, f64::INFINITY] {
            assert!(clock.set_rate(rate).is_err(), "{rate} accepted");
        }
        assert_eq!(clock.rate(), 1.0);
    }
}
