//! Bounded exponential back-off between stream re-opens.
//!
//! A stream that keeps failing (a member down, a partition) is re-opened
//! after 20 ms, 40 ms, ... up to 2 s (by default), with ±10% jitter so that
//! many clients do not reconnect in step. The sequence starts again once a
//! stream is healthy: when the server confirms a create on it ([`reset`]),
//! or when it worked for a while before breaking. One fault after a healthy
//! period is retried at once; a flapping stream is not retried in a tight
//! loop.
//!
//! Failures that reached no server at all ([`Failure::Unreachable`]: every
//! endpoint refused the connection, or never answered HTTP/2) cost the
//! server nothing, and waiting long between them is what makes watchers
//! resume late once a restarted member answers again. Their delay stops
//! growing at the (much shorter) reconnect cap, 100 ms by default, and they
//! do not push the sequence past it: the first failure of a server that
//! answers continues from there.
//!
//! Re-opens that are not failures at all (a stream whose token was replaced
//! by a newer one) do not go through the back-off; see
//! [`stream_task`](crate::stream_task).
//!
//! [`reset`]: Backoff::reset

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// What kind of failure a delay follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No server was reached: nothing was sent.
    Unreachable,
    /// A server was reached and the stream failed (or never opened).
    Reached,
}

/// The back-off state of one stream task.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    reconnect_max: Duration,
    reset_after: Duration,
    failures: u32,
    /// Delays handed out so far: what the jitter hashes, so that equal
    /// delays in a row still differ.
    calls: u64,
    jitter: RandomState,
}

impl Backoff {
    pub(crate) fn new(
        initial: Duration,
        max: Duration,
        reconnect_max: Duration,
        reset_after: Duration,
    ) -> Self {
        Backoff {
            initial,
            max,
            reconnect_max: reconnect_max.min(max),
            reset_after,
            failures: 0,
            calls: 0,
            jitter: RandomState::new(),
        }
    }

    /// The stream is healthy again: the next failure starts the sequence
    /// from its initial delay.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay before the next re-open. `healthy_for` is how long the
    /// stream that just failed had worked (`None` if it never opened).
    pub(crate) fn next_delay(
        &mut self,
        healthy_for: Option<Duration>,
        failure: Failure,
    ) -> Duration {
        if healthy_for.is_some_and(|healthy| healthy >= self.reset_after) {
            self.failures = 0;
        }
        let factor = 1u32.checked_shl(self.failures.min(16)).unwrap_or(u32::MAX);
        let mut base = self.initial.saturating_mul(factor).min(self.max);
        let cap = match failure {
            Failure::Unreachable => self.reconnect_max,
            Failure::Reached => self.max,
        };
        if base < cap {
            self.failures = self.failures.saturating_add(1);
        } else {
            base = cap;
            if failure == Failure::Reached {
                self.failures = self.failures.saturating_add(1);
            }
        }
        // ±10% jitter from a per-call random hash.
        self.calls = self.calls.wrapping_add(1);
        let noise = self.jitter.hash_one(self.calls) % 201; // 0..=200
        let permille = 900 + noise; // 900..=1100
        base.mul_f64(permille as f64 / 1000.0).min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn backoff() -> Backoff {
        Backoff::new(ms(20), ms(2000), ms(100), Duration::from_secs(5))
    }

    fn within(delay: Duration, base: u64) -> bool {
        delay >= ms(base * 9 / 10) && delay <= ms(base * 11 / 10)
    }

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_a_healthy_period() {
        let mut backoff = backoff();
        let delays: Vec<Duration> = (0..10)
            .map(|_| backoff.next_delay(None, Failure::Reached))
            .collect();
        let bases = [20u64, 40, 80, 160, 320, 640, 1280, 2000, 2000, 2000];
        for (delay, base) in delays.iter().zip(bases) {
            assert!(
                within(*delay, base) && *delay <= ms(2000),
                "{delay:?} vs {base}"
            );
        }
        // A short healthy period does not reset.
        assert!(backoff.next_delay(Some(ms(100)), Failure::Reached) >= ms(1800));
        // A long one does.
        assert!(backoff.next_delay(Some(Duration::from_secs(6)), Failure::Reached) <= ms(22));
    }

    #[test]
    fn a_confirmed_create_resets_the_sequence() {
        let mut backoff = backoff();
        for _ in 0..8 {
            backoff.next_delay(None, Failure::Reached);
        }
        backoff.reset();
        assert!(within(
            backoff.next_delay(Some(ms(1)), Failure::Reached),
            20
        ));
    }

    #[test]
    fn unreachable_servers_are_retried_at_the_reconnect_cap_and_do_not_raise_the_sequence() {
        let mut backoff = backoff();
        let delays: Vec<Duration> = (0..30)
            .map(|_| backoff.next_delay(None, Failure::Unreachable))
            .collect();
        for (i, base) in [20u64, 40, 80].into_iter().enumerate() {
            assert!(within(delays[i], base), "{i}: {:?}", delays[i]);
        }
        assert!(
            delays[3..].iter().all(|d| *d >= ms(90) && *d <= ms(100)),
            "{delays:?}"
        );
        // A server that answers and fails continues from the reconnect cap,
        // not from where thirty doublings would have led.
        let next = backoff.next_delay(None, Failure::Reached);
        assert!(within(next, 160), "{next:?}");
    }
}
