//! The [`tower::retry::Policy`] that decides, for each failed attempt,
//! whether and when to send it again.

use std::sync::Arc;
use std::time::Duration;

use etcd_tower_core::metric_names::{
    error_kind_label, service_label, LABEL_KIND, LABEL_RPC, LABEL_SERVICE, RETRIES_TOTAL,
};
use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, EtcdResponse};
use tokio::time::{Instant, Sleep};
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::Policy;

use crate::backoff::FreshRng;
use crate::classify::classify;

/// How many attempts a call gets by default, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How long after its first attempt a call may still start another, by
/// default.
pub const DEFAULT_MAX_ELAPSED: Duration = Duration::from_secs(10);

/// The first backoff, as in etcd's Go client (25 ms between rounds).
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);

/// The longest backoff: doubling stops here.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// The jitter: up to this fraction of the backoff is added at random, as
/// the Go client's 10 %.
pub const DEFAULT_JITTER: f64 = 0.1;

/// The retry policy: which failures to retry ([`classify`]), how many
/// times, how long to wait between attempts, and the retry budget.
///
/// [`RetryLayer`](crate::RetryLayer) configures and uses it; it also works
/// with `tower::retry::Retry` directly. It is cloned for each call (tower's
/// *request session*); the clones share the configuration and the budget,
/// and each keeps its own attempt count, start time and backoff.
///
/// * **Backoff**: tower's [`ExponentialBackoff`], 25 ms doubling up to
///   500 ms, plus up to 10 % jitter (reseeded per call, so concurrent
///   retries do not move in step).
/// * **Bounds**: at most [`DEFAULT_MAX_ATTEMPTS`] attempts, and no attempt
///   starts later than [`DEFAULT_MAX_ELAPSED`] after the first. A single
///   attempt is bounded by a timeout layer below (per attempt), not here.
/// * **Budget**: tower's [`TpsBudget`], shared by every call through the
///   layer: each call deposits, each retry withdraws; when it is empty,
///   failures are surfaced instead of retried, so that a sick cluster is
///   not hit with a multiple of its normal load.
/// * **Metrics**: each retry increments `etcd_retries_total` (see
///   [`RETRIES_TOTAL`]) with labels `service`, `rpc` and `kind` (the error
///   kind that caused it).
#[derive(Clone, Debug)]
pub struct EtcdRetryPolicy {
    config: Arc<Config>,
    session: Session,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_attempts: u32,
    pub(crate) max_elapsed: Duration,
    /// Always `Some` unless tower rejected the defaults, which it cannot;
    /// the fallback is a fixed `base` delay.
    pub(crate) backoff: Option<ExponentialBackoffMaker<FreshRng>>,
    pub(crate) base: Duration,
    pub(crate) budget: Option<Arc<TpsBudget>>,
}

/// The state of one call and its retries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Session {
    /// Attempts finished so far.
    attempts: u32,
    /// When the first attempt was made.
    started: Option<Instant>,
    backoff: Option<ExponentialBackoff<FreshRng>>,
}

impl Session {
    /// Attempts finished so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// A call whose first attempt was made at `started`.
    pub(crate) fn started_at(started: Instant) -> Self {
        Session {
            attempts: 0,
            started: Some(started),
            backoff: None,
        }
    }
}

impl Default for EtcdRetryPolicy {
    fn default() -> Self {
        EtcdRetryPolicy::new()
    }
}

impl EtcdRetryPolicy {
    /// The policy with the default settings (see the constants of this
    /// crate) and tower's default budget (10 retries a second, plus 20 % of
    /// calls, over 10 s).
    pub fn new() -> Self {
        EtcdRetryPolicy {
            config: Arc::new(Config {
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                max_elapsed: DEFAULT_MAX_ELAPSED,
                backoff: ExponentialBackoffMaker::new(
                    DEFAULT_BACKOFF_BASE,
                    DEFAULT_BACKOFF_MAX,
                    DEFAULT_JITTER,
                    FreshRng::new(),
                )
                .ok(),
                base: DEFAULT_BACKOFF_BASE,
                budget: Some(Arc::new(TpsBudget::default())),
            }),
            session: Session::default(),
        }
    }

    /// The most attempts a call gets, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.config.max_attempts
    }

    /// How long after its first attempt a call may still start another.
    pub fn max_elapsed(&self) -> Duration {
        self.config.max_elapsed
    }

    pub(crate) fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The shared settings, for [`Retry`](crate::Retry)'s own futures.
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }
}

impl Config {
    fn next_backoff(&self, session: &mut Session) -> Sleep {
        let Some(maker) = &self.backoff else {
            return tokio::time::sleep(self.base);
        };
        // A clone of the maker reseeds its random source.
        let backoff = session
            .backoff
            .get_or_insert_with(|| maker.clone().make_backoff());
        backoff.next_backoff()
    }

    /// The decision of [`Policy::retry`] for the call whose state is
    /// `session`: the backoff to wait before the next attempt, or `None` to
    /// surface `result` as it is. Shared by the policy and by
    /// [`Retry`](crate::Retry)'s futures, which keep a session without a
    /// clone of the whole policy.
    pub(crate) fn decide(
        &self,
        session: &mut Session,
        request: &EtcdRequest,
        result: &Result<EtcdResponse, EtcdError>,
    ) -> Option<Sleep> {
        session.attempts = session.attempts.saturating_add(1);
        if session.attempts == 1 {
            if let Some(budget) = &self.budget {
                budget.deposit();
            }
        }
        let error = result.as_ref().err()?;
        let rpc = request.rpc();
        let reason = classify(rpc, error)?;
        let attempts = session.attempts;
        if attempts >= self.max_attempts {
            tracing::debug!(%rpc, attempts, %error, "etcd call failed; no attempts left");
            return None;
        }
        let started = *session.started.get_or_insert_with(Instant::now);
        let sleep = self.next_backoff(session);
        if sleep.deadline().saturating_duration_since(started) > self.max_elapsed {
            tracing::debug!(%rpc, attempts, %error, "etcd call failed; out of retry time");
            return None;
        }
        if let Some(budget) = &self.budget {
            if !budget.withdraw() {
                tracing::debug!(%rpc, attempts, %error, "etcd call failed; retry budget exhausted");
                return None;
            }
        }
        count_retry(rpc, error.kind());
        tracing::debug!(
            %rpc,
            attempt = attempts + 1,
            ?reason,
            %error,
            delay = ?sleep.deadline().saturating_duration_since(Instant::now()),
            "retrying etcd call"
        );
        Some(sleep)
    }
}

impl Policy<EtcdRequest, EtcdResponse, EtcdError> for EtcdRetryPolicy {
    type Future = Sleep;

    fn retry(
        &mut self,
        request: &mut EtcdRequest,
        result: &mut Result<EtcdResponse, EtcdError>,
    ) -> Option<Sleep> {
        self.config.decide(&mut self.session, request, result)
    }

    fn clone_request(&mut self, request: &EtcdRequest) -> Option<EtcdRequest> {
        // tower's `Retry::call` calls this on the service's own policy and
        // then clones that policy for the call's session; later calls come
        // from the session after its first attempt. So "no attempt yet"
        // means "a new call starts now".
        if self.session.attempts == 0 {
            self.session.started = Some(Instant::now());
        }
        // `None` for a bidirectional stream (Watch, LeaseKeepAlive): tower
        // then never retries it.
        request.try_clone()
    }
}

fn count_retry(rpc: etcd_tower_core::Rpc, kind: &ErrorKind) {
    metrics::counter!(
        RETRIES_TOTAL,
        LABEL_SERVICE => service_label(rpc),
        LABEL_RPC => rpc.name(),
        LABEL_KIND => error_kind_label(kind),
    )
    .increment(1);
}
