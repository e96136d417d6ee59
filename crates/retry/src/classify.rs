//! Which failures are safe to retry: the one table the policy follows.

use etcd_tower_core::{Code, ErrorKind, EtcdError, Rpc, Sent};

/// Why the policy sends an attempt again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryReason {
    /// The request provably never left the client, and the failure was
    /// transient (no connection could be made, or a deadline had passed
    /// before the call): any RPC, writes included, can be sent again.
    NotSent,
    /// A transient failure (an unavailable member, a leader change, a
    /// timeout, a lost connection) on an RPC that may be repeated
    /// ([`Rpc::is_idempotent`]).
    Transient,
}

/// Decides whether a failed attempt of `rpc` may be sent again; `None`
/// means the error is surfaced as it is.
///
/// | the error says | RPC may be repeated (`is_idempotent`) | any other RPC (writes) |
/// |---|---|---|
/// | transient, [`Sent::NotSent`] | retry | retry |
/// | transient, [`Sent::Rejected`] | retry | surface |
/// | transient, [`Sent::MayHaveBeenApplied`] | retry | **surface** ("may have been applied") |
/// | anything else (validation, auth, compaction, permission, ...) | surface | surface |
///
/// *Transient* is a closed list: no connection could be made
/// ([`ErrorKind::Connect`]), the connection broke ([`ErrorKind::ConnectionLost`]),
/// a client deadline passed ([`ErrorKind::Timeout`]), or the member said it
/// cannot serve right now (`Unavailable`: no leader, leader changed,
/// stopped, request timed out in its three forms, waiting for the applied
/// index, unhealthy cluster, and an `Unavailable` the catalogue does not
/// name; `ResourceExhausted: too many requests`).
///
/// These are the rules of etcd's Go client, made explicit with the error's
/// [`Sent`]: a request that provably never left the client is sent again
/// whatever it is, because it cannot be applied twice. A client-side
/// validation error (empty key, request too large, invalid TTL, too many
/// ops, duplicate key, invalid request or endpoint, no endpoints) is also
/// "not sent", but it is not transient: sending it again would fail the
/// same way, so it is surfaced at once.
///
/// ```
/// use etcd_tower_core::{Code, ErrorKind, EtcdError, Rpc, Sent};
/// use etcd_tower_retry::{classify, RetryReason};
///
/// let lost = EtcdError::new(ErrorKind::ConnectionLost, Code::Unavailable, "reset", Sent::MayHaveBeenApplied);
/// assert_eq!(classify(Rpc::Range, &lost), Some(RetryReason::Transient));
/// assert_eq!(classify(Rpc::Put, &lost), None); // it may have been applied
///
/// let refused = EtcdError::new(ErrorKind::Connect, Code::Unavailable, "refused", Sent::NotSent);
/// assert_eq!(classify(Rpc::Put, &refused), Some(RetryReason::NotSent));
///
/// let empty = EtcdError::client(ErrorKind::EmptyKey, "the key is empty");
/// assert_eq!(classify(Rpc::Range, &empty), None); // would fail again
/// ```
pub fn classify(rpc: Rpc, error: &EtcdError) -> Option<RetryReason> {
    if !is_transient(error) {
        return None;
    }
    match error.sent() {
        Sent::NotSent => Some(RetryReason::NotSent),
        Sent::Rejected | Sent::MayHaveBeenApplied if rpc.is_idempotent() => {
            Some(RetryReason::Transient)
        }
        Sent::Rejected | Sent::MayHaveBeenApplied => None,
    }
}

/// Whether the failure may go away by itself: a connection, deadline or
/// availability problem rather than something wrong with the request.
pub fn is_transient(error: &EtcdError) -> bool {
    match error.kind() {
        ErrorKind::Connect
        | ErrorKind::ConnectionLost
        | ErrorKind::Timeout
        | ErrorKind::NoLeader
        | ErrorKind::LeaderChanged
        | ErrorKind::Stopped
        | ErrorKind::ServerTimeout
        | ErrorKind::TimeoutDueToLeaderFail
        | ErrorKind::TimeoutDueToConnectionLost
        | ErrorKind::TimeoutWaitAppliedIndex
        | ErrorKind::Unhealthy
        | ErrorKind::TooManyRequests => true,
        ErrorKind::Other => error.code() == Code::Unavailable,
        _ => false,
    }
}
