//! The per-call override of the layer's deadline.

use std::time::Duration;

use etcd_tower_core::EtcdRequest;

/// A deadline for one call, put in the request's extensions
/// (`request.meta.extensions`). It overrides the [`TimeoutLayer`]'s
/// default for that call; [`CallTimeout::NONE`] turns the deadline off.
///
/// Behind a retry layer the request is cloned for every attempt, extensions
/// included, so a per-attempt timeout layer applies the same value to each
/// attempt.
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
