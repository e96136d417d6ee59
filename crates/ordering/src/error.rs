//! The error a stale answer becomes.

use std::error::Error as StdError;
use std::fmt;

use etcd_tower_core::{Code, ErrorKind, EtcdError, Rpc, Sent};

/// A serializable read was answered below the highest revision the client
/// had seen when it sent the read, and the layer gave up on it: under
/// [`OnViolation::Error`](crate::OnViolation::Error) at once, under
/// [`OnViolation::Retry`](crate::OnViolation::Retry) once every attempt
/// was stale.
///
/// The stack has one error type, so callers receive an
/// [`EtcdError`](etcd_tower_core::EtcdError) that carries this one as its
/// [`source`](std::error::Error::source); [`StaleRead::of`] finds it:
///
/// * kind [`ErrorKind::StaleRead`]: etcd's catalogue has no entry for it
///   (the server did nothing wrong, a serializable read may be stale);
/// * gRPC code `Aborted`, gRPC's code for a failed sequencer check, which
///   is what an order check is (and which the retry layer does not
///   retry, so that [`OnViolation::Error`](crate::OnViolation::Error)
///   means what it says);
/// * [`Sent::Rejected`]: the read was sent and answered, and the answer
///   was refused; nothing was applied, so sending it again is safe.
///
/// ```
/// use etcd_tower_core::{Code, EtcdError};
/// use etcd_tower_ordering::StaleRead;
///
/// fn explain(error: &EtcdError) -> String {
///     match StaleRead::of(error) {
///         Some(stale) => format!("behind by {} revisions", stale.highest_seen() - stale.revision()),
///         None => error.to_string(),
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleRead {
    rpc: Rpc,
    revision: i64,
    highest_seen: i64,
    answers: u32,
    reason: Reason,
}

/// Why the layer stopped at a stale answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The policy is [`OnViolation::Error`](crate::OnViolation::Error),
    /// or allows no more attempts.
    Policy,
    /// The call is aimed at one endpoint: a resend would go there again.
    Targeted,
    /// The request could not be copied for a resend.
    NotCloneable,
}

impl StaleRead {
    pub(crate) fn new(
        rpc: Rpc,
        revision: i64,
        highest_seen: i64,
        answers: u32,
        reason: Reason,
    ) -> Self {
        StaleRead {
            rpc,
            revision,
            highest_seen,
            answers,
            reason,
        }
    }

    /// The stale error in an [`EtcdError`], if `error` is one.
    pub fn of(error: &EtcdError) -> Option<&StaleRead> {
        error.source()?.downcast_ref::<StaleRead>()
    }

    /// The RPC (Range or Txn).
    pub fn rpc(&self) -> Rpc {
        self.rpc
    }

    /// The header revision of the last stale answer.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The highest revision the client had seen when it sent the read:
    /// the answer had to be at least this.
    pub fn highest_seen(&self) -> i64 {
        self.highest_seen
    }

    /// How many stale answers the read got (1 without resends).
    pub fn answers(&self) -> u32 {
        self.answers
    }

    /// The error the stack returns.
    pub(crate) fn into_etcd_error(self) -> EtcdError {
        EtcdError::new(
            ErrorKind::StaleRead,
            Code::Aborted,
            self.to_string(),
            Sent::Rejected,
        )
        .with_source(self)
    }
}

impl fmt::Display for StaleRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the serializable {} was answered at revision {}, behind revision {} which this client had already seen",
            self.rpc, self.revision, self.highest_seen
        )?;
        match (self.reason, self.answers) {
            (Reason::Policy, 1) => f.write_str("; the stale answer was refused"),
            (Reason::Policy, n) => write!(f, "; all {n} answers were stale and were refused"),
            (Reason::Targeted, _) => f.write_str(
                "; the stale answer was refused, and not asked again: the call is aimed at that one endpoint",
            ),
            (Reason::NotCloneable, _) => f.write_str(
                "; the stale answer was refused, and not asked again: the request cannot be copied",
            ),
        }
    }
}

impl StdError for StaleRead {}
