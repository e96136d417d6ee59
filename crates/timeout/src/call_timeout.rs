//! The per-call overrides of the layers' deadlines: one for the whole
//! call, one for each attempt.

use std::time::Duration;

use etcd_tower_core::EtcdRequest;

/// A deadline for one call, put in the request's extensions
/// (`request.meta.extensions`). It overrides the [`TimeoutLayer`]'s
/// default for that call; [`CallTimeout::NONE`] turns the deadline off.
///
/// A [`TimeoutLayer`] that bounds each attempt (built with
/// [`per_attempt`](crate::TimeoutLayer::per_attempt)) reads
/// [`AttemptTimeout`] instead, so that one request can carry both.
///
/// ```
/// use std::time::Duration;
/// use etcd_tower_core::{proto::etcdserverpb::RangeRequest, EtcdRequest};
/// use etcd_tower_timeout::CallTimeout;
///
/// let mut request = EtcdRequest::new(RangeRequest { key: "k".into(), ..Default::default() });
/// request.meta.extensions.insert(CallTimeout(Duration::from_millis(250)));
/// assert_eq!(CallTimeout::of(&request), Some(CallTimeout(Duration::from_millis(250))));
///
/// // A long-lived stream opened with no deadline at all:
/// request.meta.extensions.insert(CallTimeout::NONE);
/// assert!(CallTimeout::of(&request).is_some_and(CallTimeout::is_none));
/// ```
///
/// [`TimeoutLayer`]: crate::TimeoutLayer
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallTimeout(pub Duration);

impl CallTimeout {
    /// No deadline for this call, whatever the layer's default.
    pub const NONE: CallTimeout = CallTimeout(Duration::MAX);

    /// Whether this is [`CallTimeout::NONE`].
    pub const fn is_none(self) -> bool {
        self.0.as_secs() == Duration::MAX.as_secs()
            && self.0.subsec_nanos() == Duration::MAX.subsec_nanos()
    }

    /// The value a request carries, if any.
    pub fn of(request: &EtcdRequest) -> Option<CallTimeout> {
        request.meta.extensions.get::<CallTimeout>().copied()
    }

    /// The deadline as a duration, `None` for [`CallTimeout::NONE`].
    pub const fn duration(self) -> Option<Duration> {
        if self.is_none() {
            None
        } else {
            Some(self.0)
        }
    }
}

impl From<Duration> for CallTimeout {
    fn from(duration: Duration) -> Self {
        CallTimeout(duration)
    }
}

/// A deadline for each attempt of one call, put in the request's
/// extensions. It overrides the default of a [`TimeoutLayer`] built with
/// [`per_attempt`](crate::TimeoutLayer::per_attempt) (the one under the
/// retry layer); [`AttemptTimeout::NONE`] turns it off for that call.
///
/// The retry layer copies the request, extensions included, for every
/// attempt, so each attempt gets the same value.
///
/// ```
/// use std::time::Duration;
/// use etcd_tower_core::{proto::etcdserverpb::RangeRequest, EtcdRequest};
/// use etcd_tower_timeout::{AttemptTimeout, CallTimeout};
///
/// let mut request = EtcdRequest::new(RangeRequest { key: "k".into(), ..Default::default() });
/// request.meta.extensions.insert(CallTimeout(Duration::from_secs(3))); // in all
/// request.meta.extensions.insert(AttemptTimeout(Duration::from_secs(1))); // each attempt
/// assert_eq!(AttemptTimeout::of(&request).and_then(AttemptTimeout::duration), Some(Duration::from_secs(1)));
/// ```
///
/// [`TimeoutLayer`]: crate::TimeoutLayer
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttemptTimeout(pub Duration);

impl AttemptTimeout {
    /// No deadline for the attempts of this call, whatever the layer's
    /// default.
    pub const NONE: AttemptTimeout = AttemptTimeout(Duration::MAX);

    /// Whether this is [`AttemptTimeout::NONE`].
    pub const fn is_none(self) -> bool {
        CallTimeout(self.0).is_none()
    }

    /// The value a request carries, if any.
    pub fn of(request: &EtcdRequest) -> Option<AttemptTimeout> {
        request.meta.extensions.get::<AttemptTimeout>().copied()
    }

    /// The deadline as a duration, `None` for [`AttemptTimeout::NONE`].
    pub const fn duration(self) -> Option<Duration> {
        CallTimeout(self.0).duration()
    }
}

impl From<Duration> for AttemptTimeout {
    fn from(duration: Duration) -> Self {
        AttemptTimeout(duration)
    }
}
