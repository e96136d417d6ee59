//! The layer that builds [`Retry`] services, and its settings.

use std::sync::Arc;
use std::time::Duration;

use etcd_tower_core::{ErrorKind, EtcdError};
use tower::retry::backoff::ExponentialBackoffMaker;
use tower::retry::budget::TpsBudget;
use tower_layer::Layer;

use crate::backoff::FreshRng;
use crate::{EtcdRetryPolicy, Retry};

/// Retries what is safe to retry; see the [crate docs](crate).
///
/// Every service the layer builds, and every clone of those, shares one
/// retry budget.
///
/// ```
/// use std::time::Duration;
/// use etcd_tower_retry::RetryLayer;
///
/// let layer = RetryLayer::new()
///     .max_attempts(3)
///     .max_elapsed(Duration::from_secs(5))
///     .backoff(Duration::from_millis(25), Duration::from_secs(1), 0.1)?;
/// # let _ = layer;
/// # Ok::<(), etcd_tower_core::EtcdError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct RetryLayer {
    policy: EtcdRetryPolicy,
}

impl RetryLayer {
    /// The defaults: 5 attempts within 10 s, 25 ms backoff doubling up to
    /// 500 ms with 10 % jitter, tower's default budget.
    pub fn new() -> Self {
        RetryLayer::default()
    }

    /// The most attempts a call gets, the first included (1: never retry).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.policy.config_mut().max_attempts = attempts.max(1);
        self
    }

    /// No attempt starts later than this after the call's first attempt.
    /// A timeout layer below bounds each attempt; one above bounds the
    /// whole call.
    pub fn max_elapsed(mut self, max: Duration) -> Self {
        self.policy.config_mut().max_elapsed = max;
        self
    }

    /// Exponential backoff: `base` after the first failure, doubling up to
    /// `max`, plus a random share of up to `jitter` (a fraction: 0.1 is
    /// 10 %) of each delay. Fails when `base > max`, `max` is zero, or
    /// `jitter` is negative, above 100 or not a number.
    pub fn backoff(
        mut self,
        base: Duration,
        max: Duration,
        jitter: f64,
    ) -> Result<Self, EtcdError> {
        let maker = ExponentialBackoffMaker::new(base, max, jitter, FreshRng::new())
            .map_err(|e| EtcdError::client(ErrorKind::InvalidRequest, e.to_string()))?;
        let config = self.policy.config_mut();
        config.backoff = Some(maker);
        config.base = base;
        Ok(self)
    }

    /// Uses this retry budget instead of tower's default (10 retries a
    /// second plus 20 % of calls, over 10 s). Share one `Arc` between
    /// layers to give them one budget.
    pub fn budget(mut self, budget: Arc<TpsBudget>) -> Self {
        self.policy.config_mut().budget = Some(budget);
        self
    }

    /// No budget: only the attempt and time bounds limit retries.
    pub fn without_budget(mut self) -> Self {
        self.policy.config_mut().budget = None;
        self
    }

    /// The policy the layer's services use, for `tower::retry::Retry`.
    pub fn policy(&self) -> &EtcdRetryPolicy {
        &self.policy
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry::with_policy(inner, self.policy.clone())
    }
}
