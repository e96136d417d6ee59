//! [`ErrorKind`]: which error it was, and what happened in words.
//!
//! The enum names every entry of etcd's error catalogue plus the client's
//! own failures, for code to match on; its `Display` says in a few words
//! what happened, for people to read. Both live here so that a new kind
//! cannot be added without its sentence (the `match` is exhaustive).

use std::fmt;

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
    /// A call's metadata (an extra gRPC header) has a name the client
    /// refuses (reserved, malformed, binary) or a value that is not visible
    /// ASCII; the message names it.
    InvalidMetadata,

    // ----- The connection -----
    /// No connection could be made to any endpoint; nothing was sent.
    Connect,
    /// The connection broke while the request was in flight.
    ConnectionLost,
    /// A client-side deadline passed.
    Timeout,
    /// An answer the client cannot use: not a well-formed gRPC message of
    /// the expected type (garbage, a truncated message, two where one was
    /// due, a message of another type), or a response of the wrong kind
    /// from a layer (a bug). The request was sent.
    UnexpectedResponse,
    /// An answer longer than the client's receive limit (the transport's
    /// `max_recv_size`), refused from its length prefix before it was
    /// buffered. The request was sent.
    ResponseTooLarge,
    /// A serializable read was answered from a revision older than one the
    /// client had already seen (a lagging member; see the
    /// `etcd-tower-ordering` layer). Nothing was applied.
    StaleRead,
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
    /// A software transaction (STM) still conflicted with other writers at
    /// its last allowed attempt; none of its attempts was applied.
    TxnConflict,
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

    /// A status the catalogue does not name; [`EtcdError::code`](super::EtcdError::code) tells its
    /// gRPC code and [`EtcdError::message`](super::EtcdError::message) what the server said.
    Other,
}

impl fmt::Display for ErrorKind {
    /// What happened, as the start of a sentence (lower case, no full
    /// stop): `the member has no leader`. A compaction names the oldest
    /// revision left when it is known. [`EtcdError`](super::EtcdError)'s
    /// `Display` adds the key and revision, whether the request was sent,
    /// and the gRPC code and message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind as K;
        let text = match self {
            K::Compacted {
                compact_revision: Some(revision),
            } => return write!(f, "history before revision {revision} has been compacted"),
            K::Compacted {
                compact_revision: None,
            } => "the requested revision has been compacted",
            // Found by the client before sending.
            K::EmptyKey => "the request has an empty key",
            K::RequestTooLarge => "the request is too large",
            K::TooManyOps => "the transaction has too many operations",
            K::DuplicateKey => "the transaction writes the same key twice",
            K::InvalidTtl => "the lease TTL is out of range",
            K::InvalidEndpoint => "an endpoint could not be parsed",
            K::InvalidMetadata => "a call's metadata is not allowed",
            K::NoEndpoints => "no endpoint was given",
            K::InvalidRequest => "the client refused to send an invalid request",
            K::InvalidTls => "the TLS configuration could not be used",
            // The connection.
            K::Connect => "no connection could be made to any endpoint",
            K::ConnectionLost => "the connection broke while the request was in flight",
            K::Timeout => "the client's deadline passed",
            K::UnexpectedResponse => "a malformed response or one of the wrong kind came back",
            K::ResponseTooLarge => "the response is longer than the client's receive limit",
            K::StaleRead => {
                "a serializable read was answered from an older revision than one already seen"
            }
            K::Closed => "the client's service is closed",
            // KV and MVCC.
            K::FutureRevision => "the requested revision is in the future",
            K::NoSpace => "the database is over its space quota",
            K::KeyNotFound => "the key was not found",
            K::TxnConflict => "the transaction kept conflicting with other writers",
            K::ValueProvided => "a value was given where none may be (ignore_value)",
            K::LeaseProvided => "a lease was given where none may be (ignore_lease)",
            K::InvalidSortOption => "the sort option is not valid",
            // Leases.
            K::LeaseNotFound => "the lease does not exist (expired or revoked)",
            K::LeaseExists => "a lease with that ID already exists",
            K::LeaseTtlTooLarge => "the lease TTL is above the server's maximum",
            // Auth.
            K::InvalidAuthToken => "the auth token is invalid or has expired",
            K::AuthOldRevision => "the auth token predates a change to users or roles",
            K::UserEmpty => "the request carried no user name (no auth token)",
            K::AuthFailed => "wrong user name or password",
            K::PermissionDenied => "permission denied",
            K::AuthNotEnabled => "authentication is not enabled",
            K::InvalidAuthMgmt => "the auth change is not allowed",
            K::RootUserNotExist => "the root user does not exist",
            K::RootRoleNotExist => "the root user does not have the root role",
            K::UserExists => "the user already exists",
            K::UserNotFound => "the user does not exist",
            K::RoleExists => "the role already exists",
            K::RoleNotFound => "the role does not exist",
            K::RoleEmpty => "the role name is empty",
            K::RoleNotGranted => "the role is not granted to the user",
            K::PermissionNotGranted => "the permission is not granted to the role",
            K::PermissionNotGiven => "no permission was given",
            // Leadership and availability.
            K::NoLeader => "the member has no leader",
            K::NotLeader => "the member is not the leader",
            K::LeaderChanged => "the leader changed while the request waited",
            K::NotCapable => "the cluster's version cannot serve this request",
            K::Stopped => "the server is stopping",
            K::ServerTimeout => "the server timed out waiting for consensus",
            K::TimeoutDueToLeaderFail => {
                "the server timed out, possibly because the previous leader failed"
            }
            K::TimeoutDueToConnectionLost => {
                "the server timed out, possibly because members lost their connection"
            }
            K::TimeoutWaitAppliedIndex => "the server timed out waiting for its applied index",
            K::Unhealthy => "the cluster is unhealthy",
            K::Corrupt => "the cluster is corrupt",
            K::TooManyRequests => "the server is overloaded (too many requests)",
            K::Canceled => "the request was cancelled",
            K::DeadlineExceeded => "the server-side deadline passed",
            // Cluster.
            K::MemberExists => "the member ID already exists",
            K::PeerUrlExists => "the peer URLs are already in use",
            K::MemberNotEnoughStarted => "not enough members are started for the change",
            K::MemberBadUrls => "the member URLs are not valid",
            K::MemberNotFound => "the member does not exist",
            K::MemberNotLearner => "only a learner member can be promoted",
            K::LearnerNotReady => "the learner is not in sync with the leader yet",
            K::TooManyLearners => "the cluster has too many learners",
            K::ClusterIdMismatch => "the cluster ID does not match",
            K::NotSupportedForLearner => "a learner member cannot serve this request",
            K::BadLeaderTransferee => "the leader transferee is not valid",
            K::InvalidDowngradeTargetVersion => "the downgrade target version is not valid",
            K::DowngradeInProgress => "a downgrade is already in progress",
            K::NoInflightDowngrade => "no downgrade is in progress",
            K::ClusterVersionUnavailable => "the cluster version is not known yet",
            // Watch, election.
            K::WatchCanceled => "the server cancelled the watch",
            K::ElectionNotLeader => "the caller is not the election's leader",
            K::ElectionNoLeader => "the election has no leader",
            K::Other => "an error outside etcd's catalogue",
        };
        f.write_str(text)
    }
}
