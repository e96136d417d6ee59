//! The layer that builds [`Timeout`] services.

use std::time::Duration;

use tower_layer::Layer;

use crate::Timeout;

/// Applies a deadline to every call of the services it wraps; see the
/// [crate docs](crate).
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    default: Option<Duration>,
}

impl TimeoutLayer {
    /// A layer whose calls get `timeout` unless they carry their own
    /// [`CallTimeout`](crate::CallTimeout).
    pub const fn new(timeout: Duration) -> Self {
        TimeoutLayer {
            default: Some(timeout),
        }
    }

    /// A layer with no default deadline: only calls that carry a
    /// [`CallTimeout`](crate::CallTimeout) get one.
    pub const fn per_call_only() -> Self {
        TimeoutLayer { default: None }
    }

    /// The default deadline, `None` when there is none.
    pub const fn default_timeout(&self) -> Option<Duration> {
        self.default
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::with_default(inner, self.default)
    }
}
