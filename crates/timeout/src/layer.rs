//! The layer that builds [`Timeout`] services.

use std::time::Duration;

use tower_layer::Layer;

use crate::{Scope, Timeout};

/// Applies a deadline to every call of the services it wraps; see the
/// [crate docs](crate).
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    default: Option<Duration>,
    scope: Scope,
}

impl TimeoutLayer {
    /// A layer whose calls get `timeout` unless they carry their own
    /// [`CallTimeout`](crate::CallTimeout).
    pub const fn new(timeout: Duration) -> Self {
        TimeoutLayer {
            default: Some(timeout),
            scope: Scope::Call,
        }
    }

    /// A layer with no default deadline: only calls that carry a
    /// [`CallTimeout`](crate::CallTimeout) get one.
    pub const fn per_call_only() -> Self {
        TimeoutLayer {
            default: None,
            scope: Scope::Call,
        }
    }

    /// The same layer, bounding each attempt rather than the whole call:
    /// its calls get the default unless they carry an
    /// [`AttemptTimeout`](crate::AttemptTimeout) (a [`CallTimeout`](crate::CallTimeout)
    /// is for the whole-call layer above the retries, and is ignored
    /// here). Put it under the retry layer.
    pub const fn per_attempt(self) -> Self {
        TimeoutLayer {
            default: self.default,
            scope: Scope::Attempt,
        }
    }

    /// The default deadline, `None` when there is none.
    pub const fn default_timeout(&self) -> Option<Duration> {
        self.default
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            default: self.default,
            scope: self.scope,
        }
    }
}
