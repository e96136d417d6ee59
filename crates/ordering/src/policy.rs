//! What the layer does with a stale answer.

/// How many more times a stale read is sent by default under
/// [`OnViolation::Retry`]: enough to try every other member of a
/// five-member cluster once.
pub const DEFAULT_ATTEMPTS: u32 = 4;

/// What to do when a serializable read is answered below the highest
/// revision the client has already seen (an *order violation*: the member
/// that answered is behind).
///
/// ```
/// use etcd_tower_ordering::{OnViolation, OrderingLayer};
///
/// let retrying = OrderingLayer::new(); // OnViolation::Retry { attempts: 4 }
/// assert_eq!(retrying.policy(), OnViolation::Retry { attempts: 4 });
/// // The same client's view of the cluster, failing instead:
/// let strict = retrying.clone().on_violation(OnViolation::Error);
/// assert_eq!(strict.policy(), OnViolation::Error);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnViolation {
    /// Send the read again, to a member the call has not tried yet, at
    /// most `attempts` more times; if every answer is stale, fail with a
    /// [`StaleRead`](crate::StaleRead) error. `attempts: 0` fails at once,
    /// like [`OnViolation::Error`].
    ///
    /// The call's [`TriedEndpoints`](etcd_tower_core::TriedEndpoints)
    /// steer the resend (the transport skips members the call went to);
    /// a call aimed at one endpoint (`request.meta.endpoint`) is never
    /// resent, since it would go to the same member.
    Retry {
        /// How many more times the read may be sent after a stale answer.
        attempts: u32,
    },
    /// Fail with a [`StaleRead`](crate::StaleRead) error: the caller
    /// decides (wait, read linearizably, or accept the older view).
    Error,
}

impl Default for OnViolation {
    /// [`OnViolation::Retry`] with [`DEFAULT_ATTEMPTS`].
    fn default() -> Self {
        OnViolation::Retry {
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

impl OnViolation {
    /// How many resends the policy allows.
    pub(crate) const fn attempts(self) -> u32 {
        match self {
            OnViolation::Retry { attempts } => attempts,
            OnViolation::Error => 0,
        }
    }
}
