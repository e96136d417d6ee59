//! One error type for the whole stack.
//!
//! Every layer and the transport fail with [`EtcdError`], which answers the
//! three questions a caller (or a retry policy) asks of a failure:
//!
//! * **Which etcd error was it?** [`ErrorKind`] names every entry of etcd's
//!   error catalogue, plus the client's own (validation, connection).
//! * **What did the server say?** The gRPC [`Code`] and the server's message.
//! * **Was the request sent?** [`Sent`]: never sent (safe to send again),
//!   sent and rejected by the server (not applied), or sent with no answer
//!   (it may have been applied; repeating a write could apply it twice).
//!
//! The gRPC code is the primary signal. The message only tells apart
//! catalogue entries that share a code (etcd's messages are the stable way
//! every official client names these errors); a message the catalogue does
//! not know maps to [`ErrorKind::Other`], keeping its code. A transport
//! failure is classified from the error's *source* (connection refused,
//! reset, HTTP/2 error), never from its code alone: after a server restart
//! etcd's broken streams fail with `Unknown`, not `Unavailable`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

pub use tonic::Code;

/// Whether a failed request reached the server, and what that means for
/// sending it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sent {
    /// The request never left the client (it failed validation, or no
    /// connection could be made). Sending it again is always safe.
    NotSent,
    /// The server received the request and rejected it before applying
    /// anything.
    Rejected,
    /// The request was sent but its outcome is unknown (the connection
    /// broke, a deadline passed, or the server timed out waiting for
    /// consensus). A write may have been applied.
    MayHaveBeenApplied,
}

/// Which error it was: an entry of etcd's catalogue, or one of the client's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    // ----- Found by the client before sending -----
    /// A request had an empty key (`etcdserver: key is not provided`).
    EmptyKey,
    /// A request was larger than the send limit (client) or than
    /// `--max-request-bytes` (server).
    RequestTooLarge,
    /// A transaction had more operations than allowed.
    TooManyOps,
    /// A transaction wrote the same key twice.
    DuplicateKey,
    /// A lease TTL was zero, negative, or above the server's maximum.
    InvalidTtl,
    /// An endpoint could not be parsed.
    InvalidEndpoint,
    /// The endpoint list was empty.
    NoEndpoints,
    /// Any other request the client refuses to send (the message says why).
    InvalidRequest,
    /// The client's TLS configuration could not be used.
    InvalidTls,

    // ----- The connection -----
    /// No connection could be made to any endpoint; nothing was sent.
    Connect,
    /// The connection broke while the request was in flight.
    ConnectionLost,
    /// A client-side deadline passed.
    Timeout,
    /// A response of the wrong kind came back (a bug in a layer).
    UnexpectedResponse,
    /// The service was closed (for example the client was dropped).
    Closed,

    // ----- KV and MVCC -----
    /// The requested revision has been compacted. Watches carry the
    /// compaction revision; unary reads do not learn it.
    Compacted {
        /// The revision the history was compacted at, when the server said.
        compact_revision: Option<i64>,
    },
    /// The requested revision is in the future.
    FutureRevision,
    /// The database is over its space quota.
    NoSpace,
    /// Key not found (`etcdserver: key not found`).
    KeyNotFound,
    /// A value was given where none may be (`ignore_value`).
    ValueProvided,
    /// A lease was given where none may be (`ignore_lease`).
    LeaseProvided,
    /// The sort option was not valid.
    InvalidSortOption,

    // ----- Leases -----
    /// The lease does not exist (expired or revoked).
    LeaseNotFound,
    /// A lease with that ID already exists.
    LeaseExists,
    /// The TTL is above the server's maximum.
    LeaseTtlTooLarge,

    // ----- Auth -----
    /// The token is invalid or expired.
    InvalidAuthToken,
    /// The auth store changed since the token was issued.
    AuthOldRevision,
    /// The request carried no user name.
    UserEmpty,
    /// Wrong user name or password.
    AuthFailed,
    /// The user lacks permission.
    PermissionDenied,
    /// Authentication is not enabled.
    AuthNotEnabled,
    /// Invalid auth management (for example revoking root's root role).
    InvalidAuthMgmt,
    /// The root user does not exist.
    RootUserNotExist,
    /// The root user lacks the root role.
    RootRoleNotExist,
    /// The user already exists.
    UserExists,
    /// The user does not exist.
    UserNotFound,
    /// The role already exists.
    RoleExists,
    /// The role does not exist.
    RoleNotFound,
    /// The role name was empty.
    RoleEmpty,
    /// The role is not granted to the user.
    RoleNotGranted,
    /// The permission is not granted to the role.
    PermissionNotGranted,
    /// No permission was given.
    PermissionNotGiven,

    // ----- Leadership and availability -----
    /// The member has no leader.
    NoLeader,
    /// The member is not the leader.
    NotLeader,
    /// The leader changed while the request waited.
    LeaderChanged,
    /// The cluster is not capable of the request (version).
    NotCapable,
    /// The server is stopping.
    Stopped,
    /// The server timed out waiting for consensus; a write may be applied.
    ServerTimeout,
    /// Timed out, possibly because the previous leader failed.
    TimeoutDueToLeaderFail,
    /// Timed out, possibly because the connection between members was lost.
    TimeoutDueToConnectionLost,
    /// Timed out waiting for the applied index.
    TimeoutWaitAppliedIndex,
    /// The cluster is unhealthy.
    Unhealthy,
    /// The cluster is corrupt.
    Corrupt,
    /// Too many requests: the server is overloaded.
    TooManyRequests,
    /// The request was cancelled.
    Canceled,
    /// The server-side deadline passed.
    DeadlineExceeded,

    // ----- Cluster -----
    /// The member ID already exists.
    MemberExists,
    /// The peer URLs are already in use.
    PeerUrlExists,
    /// Not enough members are started for the change.
    MemberNotEnoughStarted,
    /// The member URLs are invalid.
    MemberBadUrls,
    /// The member does not exist.
    MemberNotFound,
    /// Only learners can be promoted.
    MemberNotLearner,
    /// The learner is not in sync with the leader yet.
    LearnerNotReady,
    /// The cluster has too many learners.
    TooManyLearners,
    /// The cluster ID does not match.
    ClusterIdMismatch,
    /// The request is not supported by a learner member.
    NotSupportedForLearner,
    /// The leader transferee is not valid.
    BadLeaderTransferee,
    /// The downgrade target version is not valid.
    InvalidDowngradeTargetVersion,
    /// A downgrade is already in progress.
    DowngradeInProgress,
    /// No downgrade is in progress.
    NoInflightDowngrade,
    /// The cluster version is not known yet.
    ClusterVersionUnavailable,

    // ----- Watch, election -----
    /// The watch was cancelled by the server (the reason is the message).
    WatchCanceled,
    /// Election: the caller is not the leader.
    ElectionNotLeader,
    /// Election: there is no leader.
    ElectionNoLeader,

    /// A status the catalogue does not name; [`EtcdError::code`] tells its
    /// gRPC code and [`EtcdError::message`] what the server said.
    Other,
}

/// The error of every etcd-tower service.
///
/// It is one pointer wide, so `Result<EtcdResponse, EtcdError>` stays small
/// on the hot path, and cheap to clone.
#[derive(Clone)]
pub struct EtcdError {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    code: Code,
    message: String,
    sent: Sent,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl EtcdError {
    /// A new error with every field given.
    pub fn new(kind: ErrorKind, code: Code, message: impl Into<String>, sent: Sent) -> Self {
        EtcdError {
            inner: Box::new(Inner {
                kind,
                code,
                message: message.into(),
                sent,
                source: None,
            }),
        }
    }

    /// An error the client found before sending anything: a validation
    /// failure or a bad configuration. Its gRPC code is the one etcd uses
    /// for the same mistake (`InvalidArgument` for most).
    pub fn client(kind: ErrorKind, message: impl Into<String>) -> Self {
        let code = match kind {
            ErrorKind::Connect | ErrorKind::Closed => Code::Unavailable,
            ErrorKind::Timeout => Code::DeadlineExceeded,
            ErrorKind::UnexpectedResponse => Code::Internal,
            _ => Code::InvalidArgument,
        };
        EtcdError::new(kind, code, message, Sent::NotSent)
    }

    /// Classifies a gRPC status: a local transport failure by its source,
    /// a server answer by its code and catalogue message.
    pub fn from_status(status: tonic::Status) -> Self {
        let classified = classify_status(&status);
        let message = status.message().to_owned();
        let source: Option<Arc<dyn StdError + Send + Sync>> = Some(Arc::new(status));
        EtcdError {
            inner: Box::new(Inner {
                kind: classified.kind,
                code: classified.code,
                message,
                sent: classified.sent,
                source,
            }),
        }
    }

    /// Attaches the error that caused this one.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Arc::new(source));
        self
    }

    /// Replaces what is known about delivery (used by layers that know
    /// better, e.g. a timeout that fired before the request was sent).
    pub fn with_sent(mut self, sent: Sent) -> Self {
        self.inner.sent = sent;
        self
    }

    /// Which error it was.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.inner.code
    }

    /// The server's message as it was sent (etcd prefixes its own with
    /// `etcdserver: `), or the client's description.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Whether the request reached the server.
    pub fn sent(&self) -> Sent {
        self.inner.sent
    }

    /// The compaction revision, for a [`ErrorKind::Compacted`] error that
    /// carries one.
    pub fn compact_revision(&self) -> Option<i64> {
        match self.inner.kind {
            ErrorKind::Compacted { compact_revision } => compact_revision,
            _ => None,
        }
    }

    /// Whether the request certainly was not applied, so that sending it
    /// again cannot apply it twice.
    pub fn is_not_applied(&self) -> bool {
        self.inner.sent != Sent::MayHaveBeenApplied
    }
}

impl fmt::Debug for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdError")
            .field("kind", &self.inner.kind)
            .field("code", &self.inner.code)
            .field("message", &self.inner.message)
            .field("sent", &self.inner.sent)
            .finish()
    }
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} ({:?}): {}",
            self.inner.kind, self.inner.code, self.inner.message
        )?;
        match self.inner.sent {
            Sent::NotSent => f.write_str(" [not sent]"),
            Sent::Rejected => Ok(()),
            Sent::MayHaveBeenApplied => f.write_str(" [may have been applied]"),
        }
    }
}

impl StdError for EtcdError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<tonic::Status> for EtcdError {
    fn from(status: tonic::Status) -> Self {
        EtcdError::from_status(status)
    }
}

struct Classified {
    kind: ErrorKind,
    code: Code,
    sent: Sent,
}

fn classify_status(status: &tonic::Status) -> Classified {
    match transport_failure(status) {
        Some(TransportFailure::NotConnected) => Classified {
            kind: ErrorKind::Connect,
            code: Code::Unavailable,
            sent: Sent::NotSent,
        },
        Some(TransportFailure::Broken) => Classified {
            kind: ErrorKind::ConnectionLost,
            code: Code::Unavailable,
            sent: Sent::MayHaveBeenApplied,
        },
        None => {
            let kind = catalogue_kind(status.code(), status.message());
            let sent = server_sent(&kind, status.code());
            Classified {
                kind,
                code: status.code(),
                sent,
            }
        }
    }
}

/// What a local transport failure says about delivery.
#[derive(Debug, PartialEq, Eq)]
enum TransportFailure {
    /// No connection existed: the request was not sent.
    NotConnected,
    /// The connection failed while the request could have been in flight.
    Broken,
}

/// A status built by the client from a local error carries that error as
/// its source; one decoded from the server's trailers has none.
fn transport_failure(status: &tonic::Status) -> Option<TransportFailure> {
    let first = StdError::source(status)?;
    let mut next: Option<&(dyn StdError + 'static)> = Some(first);
    while let Some(err) = next {
        if is_connect_failure(err) {
            return Some(TransportFailure::NotConnected);
        }
        next = err.source();
    }
    Some(TransportFailure::Broken)
}

/// Whether an error in a source chain says that no connection was made.
fn is_connect_failure(err: &(dyn StdError + 'static)) -> bool {
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as Io;
        return matches!(
            io.kind(),
            Io::ConnectionRefused
                | Io::AddrNotAvailable
                | Io::HostUnreachable
                | Io::NetworkUnreachable
                // Only connecting has an I/O deadline; a stalled connection
                // is found by HTTP/2 keepalive, which is a hyper error.
                | Io::TimedOut
        );
    }
    // tonic wraps every failure of the connector (TCP, TLS) in ConnectError.
    err.downcast_ref::<tonic::ConnectError>().is_some()
}

/// Maps a server status to its catalogue entry: by code first, by message
/// among the entries that share that code.
fn catalogue_kind(code: Code, message: &str) -> ErrorKind {
    let text = message.strip_prefix("etcdserver: ").unwrap_or(message);
    for (entry_code, entry_text, kind) in CATALOGUE {
        if *entry_code == code && *entry_text == text {
            return kind.clone();
        }
    }
    match code {
        Code::OutOfRange if text == "mvcc: required revision has been compacted" => {
            ErrorKind::Compacted {
                compact_revision: None,
            }
        }
        Code::Unauthenticated => ErrorKind::InvalidAuthToken,
        Code::PermissionDenied => ErrorKind::PermissionDenied,
        Code::DeadlineExceeded => ErrorKind::DeadlineExceeded,
        Code::Cancelled => ErrorKind::Canceled,
        _ => ErrorKind::Other,
    }
}

/// What a server error says about whether a write was applied. The server
/// rejects most requests before proposing them; its timeouts and stops can
/// come after the proposal, so those are reported as "may have been
/// applied". An unknown `Unavailable` or `Unknown` is treated the same way.
fn server_sent(kind: &ErrorKind, code: Code) -> Sent {
    match kind {
        ErrorKind::ServerTimeout
        | ErrorKind::TimeoutDueToLeaderFail
        | ErrorKind::TimeoutDueToConnectionLost
        | ErrorKind::Stopped
        | ErrorKind::LeaderChanged
        | ErrorKind::Canceled
        | ErrorKind::DeadlineExceeded => Sent::MayHaveBeenApplied,
        ErrorKind::Other if matches!(code, Code::Unavailable | Code::Unknown | Code::Internal) => {
            Sent::MayHaveBeenApplied
        }
        _ => Sent::Rejected,
    }
}

/// etcd's error catalogue (`api/v3rpc/rpctypes`): code, message without the
/// `etcdserver: ` prefix, kind.
const CATALOGUE: &[(Code, &str, ErrorKind)] = &[
    (
        Code::InvalidArgument,
        "key is not provided",
        ErrorKind::EmptyKey,
    ),
    (
        Code::InvalidArgument,
        "key not found",
        ErrorKind::KeyNotFound,
    ),
    (
        Code::InvalidArgument,
        "value is provided",
        ErrorKind::ValueProvided,
    ),
    (
        Code::InvalidArgument,
        "lease is provided",
        ErrorKind::LeaseProvided,
    ),
    (
        Code::InvalidArgument,
        "too many operations in txn request",
        ErrorKind::TooManyOps,
    ),
    (
        Code::InvalidArgument,
        "duplicate key given in txn request",
        ErrorKind::DuplicateKey,
    ),
    (
        Code::InvalidArgument,
        "invalid sort option",
        ErrorKind::InvalidSortOption,
    ),
    (
        Code::InvalidArgument,
        "request is too large",
        ErrorKind::RequestTooLarge,
    ),
    (
        Code::InvalidArgument,
        "user name is empty",
        ErrorKind::UserEmpty,
    ),
    (
        Code::InvalidArgument,
        "role name is empty",
        ErrorKind::RoleEmpty,
    ),
    (
        Code::InvalidArgument,
        "authentication failed, invalid user ID or password",
        ErrorKind::AuthFailed,
    ),
    (
        Code::InvalidArgument,
        "permission not given",
        ErrorKind::PermissionNotGiven,
    ),
    (
        Code::InvalidArgument,
        "invalid auth management",
        ErrorKind::InvalidAuthMgmt,
    ),
    (
        Code::InvalidArgument,
        "revision of auth store is old",
        ErrorKind::AuthOldRevision,
    ),
    (
        Code::InvalidArgument,
        "given member URLs are invalid",
        ErrorKind::MemberBadUrls,
    ),
    (
        Code::InvalidArgument,
        "invalid downgrade target version",
        ErrorKind::InvalidDowngradeTargetVersion,
    ),
    (
        Code::OutOfRange,
        "mvcc: required revision has been compacted",
        ErrorKind::Compacted {
            compact_revision: None,
        },
    ),
    (
        Code::OutOfRange,
        "mvcc: required revision is a future revision",
        ErrorKind::FutureRevision,
    ),
    (
        Code::OutOfRange,
        "too large lease TTL",
        ErrorKind::LeaseTtlTooLarge,
    ),
    (
        Code::ResourceExhausted,
        "mvcc: database space exceeded",
        ErrorKind::NoSpace,
    ),
    (
        Code::ResourceExhausted,
        "too many requests",
        ErrorKind::TooManyRequests,
    ),
    (
        Code::NotFound,
        "requested lease not found",
        ErrorKind::LeaseNotFound,
    ),
    (
        Code::NotFound,
        "member not found",
        ErrorKind::MemberNotFound,
    ),
    (
        Code::FailedPrecondition,
        "lease already exists",
        ErrorKind::LeaseExists,
    ),
    (
        Code::FailedPrecondition,
        "member ID already exist",
        ErrorKind::MemberExists,
    ),
    (
        Code::FailedPrecondition,
        "Peer URLs already exists",
        ErrorKind::PeerUrlExists,
    ),
    (
        Code::FailedPrecondition,
        "re-configuration failed due to not enough started members",
        ErrorKind::MemberNotEnoughStarted,
    ),
    (
        Code::FailedPrecondition,
        "can only promote a learner member",
        ErrorKind::MemberNotLearner,
    ),
    (
        Code::FailedPrecondition,
        "can only promote a learner member which is in sync with leader",
        ErrorKind::LearnerNotReady,
    ),
    (
        Code::FailedPrecondition,
        "too many learner members in cluster",
        ErrorKind::TooManyLearners,
    ),
    (
        Code::FailedPrecondition,
        "cluster ID mismatch",
        ErrorKind::ClusterIdMismatch,
    ),
    (
        Code::FailedPrecondition,
        "root user does not exist",
        ErrorKind::RootUserNotExist,
    ),
    (
        Code::FailedPrecondition,
        "root user does not have root role",
        ErrorKind::RootRoleNotExist,
    ),
    (
        Code::FailedPrecondition,
        "user name already exists",
        ErrorKind::UserExists,
    ),
    (
        Code::FailedPrecondition,
        "user name not found",
        ErrorKind::UserNotFound,
    ),
    (
        Code::FailedPrecondition,
        "role name already exists",
        ErrorKind::RoleExists,
    ),
    (
        Code::FailedPrecondition,
        "role name not found",
        ErrorKind::RoleNotFound,
    ),
    (
        Code::FailedPrecondition,
        "role is not granted to the user",
        ErrorKind::RoleNotGranted,
    ),
    (
        Code::FailedPrecondition,
        "permission is not granted to the role",
        ErrorKind::PermissionNotGranted,
    ),
    (
        Code::FailedPrecondition,
        "authentication is not enabled",
        ErrorKind::AuthNotEnabled,
    ),
    (Code::FailedPrecondition, "not leader", ErrorKind::NotLeader),
    (
        Code::FailedPrecondition,
        "not capable",
        ErrorKind::NotCapable,
    ),
    (
        Code::FailedPrecondition,
        "is not supported for learner member",
        ErrorKind::NotSupportedForLearner,
    ),
    (
        Code::FailedPrecondition,
        "bad leader transferee",
        ErrorKind::BadLeaderTransferee,
    ),
    (
        Code::FailedPrecondition,
        "cluster version not found during downgrade",
        ErrorKind::ClusterVersionUnavailable,
    ),
    (
        Code::FailedPrecondition,
        "cluster has a downgrade job in progress",
        ErrorKind::DowngradeInProgress,
    ),
    (
        Code::FailedPrecondition,
        "no inflight downgrade job",
        ErrorKind::NoInflightDowngrade,
    ),
    (
        Code::PermissionDenied,
        "permission denied",
        ErrorKind::PermissionDenied,
    ),
    (
        Code::Unauthenticated,
        "invalid auth token",
        ErrorKind::InvalidAuthToken,
    ),
    (Code::Unavailable, "no leader", ErrorKind::NoLeader),
    (
        Code::Unavailable,
        "leader changed",
        ErrorKind::LeaderChanged,
    ),
    (Code::Unavailable, "server stopped", ErrorKind::Stopped),
    (
        Code::Unavailable,
        "request timed out",
        ErrorKind::ServerTimeout,
    ),
    (
        Code::Unavailable,
        "request timed out, possibly due to previous leader failure",
        ErrorKind::TimeoutDueToLeaderFail,
    ),
    (
        Code::Unavailable,
        "request timed out, possibly due to connection lost",
        ErrorKind::TimeoutDueToConnectionLost,
    ),
    (
        Code::Unavailable,
        "request timed out, waiting for the applied index took too long",
        ErrorKind::TimeoutWaitAppliedIndex,
    ),
    (Code::Unavailable, "unhealthy cluster", ErrorKind::Unhealthy),
    (Code::DataLoss, "corrupt cluster", ErrorKind::Corrupt),
    (
        Code::Cancelled,
        "watch is canceled",
        ErrorKind::WatchCanceled,
    ),
    (
        Code::Unknown,
        "election: not leader",
        ErrorKind::ElectionNotLeader,
    ),
    (
        Code::Unknown,
        "election: no leader",
        ErrorKind::ElectionNoLeader,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: Code, message: &str) -> EtcdError {
        EtcdError::from_status(tonic::Status::new(code, message))
    }

    #[test]
    fn catalogue_entries_map_by_code_and_message() {
        let e = server(Code::Unauthenticated, "etcdserver: invalid auth token");
        assert_eq!(e.kind(), &ErrorKind::InvalidAuthToken);
        assert_eq!(e.sent(), Sent::Rejected);
        assert_eq!(e.message(), "etcdserver: invalid auth token");

        let e = server(
            Code::InvalidArgument,
            "etcdserver: revision of auth store is old",
        );
        assert_eq!(e.kind(), &ErrorKind::AuthOldRevision);

        let e = server(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        assert_eq!(
            e.kind(),
            &ErrorKind::Compacted {
                compact_revision: None
            }
        );

        let e = server(Code::Unavailable, "etcdserver: no leader");
        assert_eq!(e.kind(), &ErrorKind::NoLeader);
        assert_eq!(e.sent(), Sent::Rejected);
    }

    #[test]
    fn the_same_message_under_another_code_is_not_that_entry() {
        // The code is the primary signal: "no leader" under InvalidArgument
        // is not ErrorKind::NoLeader.
        let e = server(Code::InvalidArgument, "etcdserver: no leader");
        assert_eq!(e.kind(), &ErrorKind::Other);
        assert_eq!(e.code(), Code::InvalidArgument);
    }

    #[test]
    fn unknown_messages_keep_their_code() {
        let e = server(Code::Unavailable, "etcdserver: something new");
        assert_eq!(e.kind(), &ErrorKind::Other);
        assert_eq!(e.code(), Code::Unavailable);
        assert_eq!(e.sent(), Sent::MayHaveBeenApplied);

        let e = server(Code::PermissionDenied, "a reworded denial");
        assert_eq!(e.kind(), &ErrorKind::PermissionDenied);
    }

    #[test]
    fn server_timeouts_may_have_been_applied() {
        for message in [
            "etcdserver: request timed out",
            "etcdserver: request timed out, possibly due to previous leader failure",
            "etcdserver: request timed out, possibly due to connection lost",
        ] {
            let e = server(Code::Unavailable, message);
            assert_eq!(e.sent(), Sent::MayHaveBeenApplied, "{message}");
            assert!(!e.is_not_applied());
        }
    }

    #[test]
    fn local_failures_are_classified_by_source() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = tonic::Status::from_error(Box::new(refused));
        let e = EtcdError::from_status(status);
        assert_eq!(e.kind(), &ErrorKind::Connect);
        assert_eq!(e.sent(), Sent::NotSent);

        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = EtcdError::from_status(tonic::Status::from_error(Box::new(reset)));
        assert_eq!(e.kind(), &ErrorKind::ConnectionLost);
        assert_eq!(e.sent(), Sent::MayHaveBeenApplied);
    }

    #[test]
    fn client_errors_are_not_sent() {
        let e = EtcdError::client(ErrorKind::EmptyKey, "key is empty");
        assert_eq!(e.sent(), Sent::NotSent);
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.to_string().contains("not sent"), "{e}");
    }

    #[test]
    fn the_error_is_one_pointer_wide() {
        assert_eq!(
            std::mem::size_of::<EtcdError>(),
            std::mem::size_of::<usize>()
        );
    }
}
