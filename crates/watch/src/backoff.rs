//! Bounded exponential back-off between stream re-opens.
//!
//! A stream that keeps failing (a member down, a partition) is re-opened
//! after 20 ms, 40 ms, ... up to 2 s (by default), with ±10% jitter so that
//! many clients do not reconnect in step. A stream that worked for a while
//! before breaking starts the sequence again: one fault after a long healthy
//! period is retried at once, a flapping one is not retried in a tight loop.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// The back-off state of one stream task.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    failures: u32,
    jitter: RandomState,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Backoff {
            initial,
            max,
            reset_after,
            failures: 0,
            jitter: RandomState::new(),
        }
    }

    /// The delay before the next re-open. `healthy_for` is how long the
    /// stream that just failed had worked (`None` if it never opened).
    pub(crate) fn next_delay(&mut self, healthy_for: Option<Duration>) -> Duration {
        if healthy_for.is_some_and(|healthy| healthy >= self.reset_after) {
            self.failures = 0;
        }
        let factor = 1u32.checked_shl(self.failures.min(16)).unwrap_or(u32::MAX);
        let base = self.initial.saturating_mul(factor).min(self.max);
        self.failures = self.failures.saturating_add(1);
        // ±10% jitter from a per-call random hash.
        let noise = self.jitter.hash_one(self.failures) % 201; // 0..=200
        let permille = 900 + noise; // 900..=1100
        base.mul_f64(permille as f64 / 1000.0).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_a_healthy_period() {
        let mut backoff = Backoff::new(ms(20), ms(2000), Duration::from_secs(5));
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next_delay(None)).collect();
        let bases = [20u64, 40, 80, 160, 320, 640, 1280, 2000, 2000, 2000];
        for (delay, base) in delays.iter().zip(bases) {
            assert!(
                *delay >= ms(base * 9 / 10) && *delay <= ms(base * 11 / 10).min(ms(2000)),
                "{delay:?} vs {base}"
            );
        }
        // A short healthy period does not reset.
        assert!(backoff.next_delay(Some(ms(100))) >= ms(1800));
        // A long one does.
        assert!(backoff.next_delay(Some(Duration::from_secs(6))) <= ms(22));
    }
}
