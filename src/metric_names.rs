//! The names of every metric etcd-tower emits, in one place.
//!
//! Layers and the watch engine emit through the `metrics` facade (the
//! crates.io `metrics` crate) under these names, so that dashboards need one
//! list, and so that every layer spells its label values the same way
//! ([`code_label`], [`error_kind_label`], [`service_label`]) while
//! depending on this crate only.
//!
//! Every label value is a `&'static str` drawn from a closed set: no key,
//! endpoint, user name or server message ever becomes a label, so the number
//! of series stays bounded whatever the workload.
//!
//! | Name | Type | Labels | Emitted by |
//! |---|---|---|---|
//! | [`CLIENT_REQUESTS_STARTED_TOTAL`] | counter | `service`, `rpc` | metrics layer |
//! | [`CLIENT_REQUESTS_TOTAL`] | counter | `service`, `rpc`, `code`, `kind` | metrics layer |
//! | [`CLIENT_REQUEST_DURATION_SECONDS`] | histogram | `service`, `rpc` | metrics layer |
//! | [`CLIENT_REQUESTS_IN_FLIGHT`] | gauge | `service`, `rpc` | metrics layer |
//! | [`CLIENT_STREAM_MESSAGES_SENT_TOTAL`] | counter | `service`, `rpc` | metrics layer |
//! | [`CLIENT_STREAM_MESSAGES_RECEIVED_TOTAL`] | counter | `service`, `rpc` | metrics layer |
//! | [`CLIENT_STREAMS_OPEN`] | gauge | `service`, `rpc` | metrics layer |
//! | [`CLIENT_STREAMS_CLOSED_TOTAL`] | counter | `service`, `rpc`, `code`, `kind` | metrics layer |
//! | [`CLIENT_WATCH_EVENTS_RECEIVED_TOTAL`] | counter | none | metrics layer |
//! | [`WATCH_EVENTS_DELIVERED_TOTAL`] | counter | none | watch engine |
//! | [`WATCH_RESUMES_TOTAL`] | counter | `reason` | watch engine |
//! | [`AUTH_TOKEN_REFRESHES_TOTAL`] | counter | `outcome`, `reason` | auth layer |
//! | [`RETRIES_TOTAL`] | counter | `service`, `rpc`, `kind` | retry layer |
//!
//! Label values:
//!
//! * `service`: the gRPC service, as etcd's proto names it
//!   (`etcdserverpb.KV`, `v3lockpb.Lock`, ...): [`service_label`].
//! * `rpc`: the method, [`Rpc::name`] (`Range`, `Put`, `Watch`, ...).
//! * `code`: the gRPC code as gRPC names it everywhere (`OK`, `Canceled`,
//!   `Unavailable`, ...; the spelling of Go's `codes.Code.String()`, so that
//!   dashboards built for go-grpc-prometheus read ours): [`code_label`].
//! * `kind`: the etcd error kind, the name of the [`ErrorKind`] variant
//!   (`EmptyKey`, `NoLeader`, `InvalidAuthToken`, ...), or [`KIND_NONE`]
//!   for a success: [`error_kind_label`].
//! * `reason` (watch resumes): [`RESUME_DISCONNECTED`] or [`RESUME_AUTH`].
//! * `reason` (token refreshes): [`REFRESH_NO_TOKEN`], [`REFRESH_REJECTED`]
//!   or [`REFRESH_EXPIRING`].
//! * `outcome` (token refreshes): [`OUTCOME_OK`] or [`OUTCOME_ERROR`].

use crate::error::{Code, ErrorKind};
use crate::rpc::{Rpc, RpcService};

// ----- Label keys -----

/// Label key: the gRPC service ([`service_label`]).
pub const LABEL_SERVICE: &str = "service";
/// Label key: the RPC's method name ([`Rpc::name`]).
pub const LABEL_RPC: &str = "rpc";
/// Label key: the gRPC code ([`code_label`]).
pub const LABEL_CODE: &str = "code";
/// Label key: the etcd error kind ([`error_kind_label`]).
pub const LABEL_KIND: &str = "kind";
/// Label key: why a watch stream was resumed ([`RESUME_DISCONNECTED`],
/// [`RESUME_AUTH`]), or why a token was refreshed ([`REFRESH_NO_TOKEN`],
/// [`REFRESH_REJECTED`], [`REFRESH_EXPIRING`]).
pub const LABEL_REASON: &str = "reason";
/// Label key: how a token refresh ended ([`OUTCOME_OK`], [`OUTCOME_ERROR`]).
pub const LABEL_OUTCOME: &str = "outcome";

// ----- Metrics layer -----

/// Counter: calls started (streams: opens started), by `service`, `rpc`.
/// Go's `grpc_client_started_total`.
pub const CLIENT_REQUESTS_STARTED_TOTAL: &str = "etcd_client_requests_started_total";

/// Counter: calls finished, by `service`, `rpc`, `code` and `kind`
/// (`code="OK"`, `kind="None"` for a success). A streaming RPC counts
/// once, when opening the stream succeeds or fails. A call whose future
/// was dropped before it finished counts as `code="Canceled"`,
/// `kind="Canceled"`, as gRPC reports a cancelled call. Go's
/// `grpc_client_handled_total`, with the etcd error kind added.
pub const CLIENT_REQUESTS_TOTAL: &str = "etcd_client_requests_total";

/// Histogram, in seconds: how long calls took, by `service`, `rpc`,
/// whatever their outcome. For a streaming RPC, the time to open the
/// stream. Go's `grpc_client_handling_seconds`.
pub const CLIENT_REQUEST_DURATION_SECONDS: &str = "etcd_client_request_duration_seconds";

/// Gauge: calls under way (streams: opens under way), by `service`, `rpc`.
pub const CLIENT_REQUESTS_IN_FLIGHT: &str = "etcd_client_requests_in_flight";

/// Counter: messages sent on streams, by `service`, `rpc` (Watch,
/// LeaseKeepAlive: each outbound message the transport takes; Snapshot,
/// Observe: their one request, once the stream is open). Go's
/// `grpc_client_msg_sent_total`, for streams.
pub const CLIENT_STREAM_MESSAGES_SENT_TOTAL: &str = "etcd_client_stream_messages_sent_total";

/// Counter: messages received on streams, by `service`, `rpc`. Go's
/// `grpc_client_msg_received_total`, for streams.
pub const CLIENT_STREAM_MESSAGES_RECEIVED_TOTAL: &str =
    "etcd_client_stream_messages_received_total";

/// Gauge: streams open (opened, not yet ended nor dropped), by `service`,
/// `rpc`.
pub const CLIENT_STREAMS_OPEN: &str = "etcd_client_streams_open";

/// Counter: streams ended, by `service`, `rpc`, `code`, `kind`: `OK` when
/// the server ended the stream, the error's code and kind when it failed
/// (a member restart, a lost connection), `Canceled` when the client
/// dropped it.
pub const CLIENT_STREAMS_CLOSED_TOTAL: &str = "etcd_client_streams_closed_total";

/// Counter: watch events received on watch streams (the sum of
/// `WatchResponse.events.len()`), as the server sent them, below any watch
/// engine. Compare [`WATCH_EVENTS_DELIVERED_TOTAL`].
pub const CLIENT_WATCH_EVENTS_RECEIVED_TOTAL: &str = "etcd_client_watch_events_received_total";

// ----- Watch engine -----

/// Counter, no labels: watch events the watch engine handed to its
/// watchers (after joining fragments and dropping what a resume
/// re-delivered).
pub const WATCH_EVENTS_DELIVERED_TOTAL: &str = "etcd_watch_events_delivered_total";

/// Counter, by `reason`: watch streams the engine re-opened, counted once
/// per re-open (not per watcher re-created on it).
pub const WATCH_RESUMES_TOTAL: &str = "etcd_watch_resumes_total";

/// `reason` of a resume: the stream failed or ended (a member restart, a
/// lost connection, a leader loss with `require_leader`).
pub const RESUME_DISCONNECTED: &str = "disconnected";

/// `reason` of a resume: creates were rejected because the stream's token
/// had expired; the stream was re-opened with a fresh token.
pub const RESUME_AUTH: &str = "auth";

// ----- Auth layer -----

/// Counter, by `outcome` and `reason`: tokens the auth layer asked for
/// (`Authenticate` calls it sent), the first login included. A refresh
/// that finds a newer token already obtained by another call, or a refused
/// login still remembered (`AuthLayer::failure_backoff`), sends nothing and
/// is not counted: N calls failing with one expired token count once.
pub const AUTH_TOKEN_REFRESHES_TOTAL: &str = "etcd_auth_token_refreshes_total";

/// `outcome` of a token refresh: `Authenticate` succeeded (a token was
/// obtained, or the server said authentication is not enabled and calls
/// go without one).
pub const OUTCOME_OK: &str = "ok";

/// `outcome` of a token refresh: `Authenticate` failed (a wrong password,
/// a lost connection, ...).
pub const OUTCOME_ERROR: &str = "error";

/// `reason` of a token refresh: the layer held no token it could send:
/// the first login, or a login after a stream ended with a token error or
/// the watch engine asked for a new token (`RenewToken`).
pub const REFRESH_NO_TOKEN: &str = "no_token";

/// `reason` of a token refresh: the server rejected the token a call was
/// sent with (expired, forgotten by a restart, or outdated by an auth
/// change).
pub const REFRESH_REJECTED: &str = "rejected";

/// `reason` of a token refresh: a JWT neared its `exp` and was replaced
/// ahead of time.
pub const REFRESH_EXPIRING: &str = "expiring";

// ----- Retry layer -----

/// Counter, by `service`, `rpc`, `kind`: attempts the retry layer sent
/// again, labelled with the [`error_kind_label`] of the failure that made
/// it retry.
pub const RETRIES_TOTAL: &str = "etcd_retries_total";

// ----- Label values -----

/// `kind` of a call that succeeded.
pub const KIND_NONE: &str = "None";

/// The `service` label of an RPC: its gRPC service as etcd's proto names
/// it.
///
/// ```
/// use etcd_tower_core::{metric_names::service_label, Rpc};
/// assert_eq!(service_label(Rpc::Range), "etcdserverpb.KV");
/// assert_eq!(service_label(Rpc::Campaign), "v3electionpb.Election");
/// ```
pub const fn service_label(rpc: Rpc) -> &'static str {
    match rpc.service() {
        RpcService::Kv => "etcdserverpb.KV",
        RpcService::Watch => "etcdserverpb.Watch",
        RpcService::Lease => "etcdserverpb.Lease",
        RpcService::Auth => "etcdserverpb.Auth",
        RpcService::Cluster => "etcdserverpb.Cluster",
        RpcService::Maintenance => "etcdserverpb.Maintenance",
        RpcService::Lock => "v3lockpb.Lock",
        RpcService::Election => "v3electionpb.Election",
    }
}

/// The `code` label of a gRPC code, spelled as gRPC's Go implementation
/// spells it (`OK`, `Canceled`, `InvalidArgument`, ...).
///
/// ```
/// use etcd_tower_core::{metric_names::code_label, Code};
/// assert_eq!(code_label(Code::Ok), "OK");
/// assert_eq!(code_label(Code::Cancelled), "Canceled");
/// ```
pub const fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The `kind` label of an etcd error: the name of its [`ErrorKind`]
/// variant, without its fields (`Compacted`, not the revision), so the set
/// of values is closed.
///
/// ```
/// use etcd_tower_core::{metric_names::error_kind_label, ErrorKind};
/// assert_eq!(error_kind_label(&ErrorKind::EmptyKey), "EmptyKey");
/// assert_eq!(
///     error_kind_label(&ErrorKind::Compacted { compact_revision: Some(7) }),
///     "Compacted"
/// );
/// ```
pub const fn error_kind_label(kind: &ErrorKind) -> &'static str {
    // Exhaustive on purpose: a new kind cannot be added without a label.
    match kind {
        ErrorKind::EmptyKey => "EmptyKey",
        ErrorKind::RequestTooLarge => "RequestTooLarge",
        ErrorKind::TooManyOps => "TooManyOps",
        ErrorKind::DuplicateKey => "DuplicateKey",
        ErrorKind::InvalidTtl => "InvalidTtl",
        ErrorKind::InvalidEndpoint => "InvalidEndpoint",
        ErrorKind::NoEndpoints => "NoEndpoints",
        ErrorKind::InvalidRequest => "InvalidRequest",
        ErrorKind::InvalidTls => "InvalidTls",
        ErrorKind::InvalidMetadata => "InvalidMetadata",
        ErrorKind::Connect => "Connect",
        ErrorKind::ConnectionLost => "ConnectionLost",
        ErrorKind::Timeout => "Timeout",
        ErrorKind::UnexpectedResponse => "UnexpectedResponse",
        ErrorKind::ResponseTooLarge => "ResponseTooLarge",
        ErrorKind::StaleRead => "StaleRead",
        ErrorKind::Closed => "Closed",
        ErrorKind::Compacted { .. } => "Compacted",
        ErrorKind::FutureRevision => "FutureRevision",
        ErrorKind::NoSpace => "NoSpace",
        ErrorKind::KeyNotFound => "KeyNotFound",
        ErrorKind::TxnConflict => "TxnConflict",
        ErrorKind::ValueProvided => "ValueProvided",
        ErrorKind::LeaseProvided => "LeaseProvided",
        ErrorKind::InvalidSortOption => "InvalidSortOption",
        ErrorKind::LeaseNotFound => "LeaseNotFound",
        ErrorKind::LeaseExists => "LeaseExists",
        ErrorKind::LeaseTtlTooLarge => "LeaseTtlTooLarge",
        ErrorKind::InvalidAuthToken => "InvalidAuthToken",
        ErrorKind::AuthOldRevision => "AuthOldRevision",
        ErrorKind::UserEmpty => "UserEmpty",
        ErrorKind::AuthFailed => "AuthFailed",
        ErrorKind::PermissionDenied => "PermissionDenied",
        ErrorKind::AuthNotEnabled => "AuthNotEnabled",
        ErrorKind::InvalidAuthMgmt => "InvalidAuthMgmt",
        ErrorKind::RootUserNotExist => "RootUserNotExist",
        ErrorKind::RootRoleNotExist => "RootRoleNotExist",
        ErrorKind::UserExists => "UserExists",
        ErrorKind::UserNotFound => "UserNotFound",
        ErrorKind::RoleExists => "RoleExists",
        ErrorKind::RoleNotFound => "RoleNotFound",
        ErrorKind::RoleEmpty => "RoleEmpty",
        ErrorKind::RoleNotGranted => "RoleNotGranted",
        ErrorKind::PermissionNotGranted => "PermissionNotGranted",
        ErrorKind::PermissionNotGiven => "PermissionNotGiven",
        ErrorKind::NoLeader => "NoLeader",
        ErrorKind::NotLeader => "NotLeader",
        ErrorKind::LeaderChanged => "LeaderChanged",
        ErrorKind::NotCapable => "NotCapable",
        ErrorKind::Stopped => "Stopped",
        ErrorKind::ServerTimeout => "ServerTimeout",
        ErrorKind::TimeoutDueToLeaderFail => "TimeoutDueToLeaderFail",
        ErrorKind::TimeoutDueToConnectionLost => "TimeoutDueToConnectionLost",
        ErrorKind::TimeoutWaitAppliedIndex => "TimeoutWaitAppliedIndex",
        ErrorKind::Unhealthy => "Unhealthy",
        ErrorKind::Corrupt => "Corrupt",
        ErrorKind::TooManyRequests => "TooManyRequests",
        ErrorKind::Canceled => "Canceled",
        ErrorKind::DeadlineExceeded => "DeadlineExceeded",
        ErrorKind::MemberExists => "MemberExists",
        ErrorKind::PeerUrlExists => "PeerUrlExists",
        ErrorKind::MemberNotEnoughStarted => "MemberNotEnoughStarted",
        ErrorKind::MemberBadUrls => "MemberBadUrls",
        ErrorKind::MemberNotFound => "MemberNotFound",
        ErrorKind::MemberNotLearner => "MemberNotLearner",
        ErrorKind::LearnerNotReady => "LearnerNotReady",
        ErrorKind::TooManyLearners => "TooManyLearners",
        ErrorKind::ClusterIdMismatch => "ClusterIdMismatch",
        ErrorKind::NotSupportedForLearner => "NotSupportedForLearner",
        ErrorKind::BadLeaderTransferee => "BadLeaderTransferee",
        ErrorKind::InvalidDowngradeTargetVersion => "InvalidDowngradeTargetVersion",
        ErrorKind::DowngradeInProgress => "DowngradeInProgress",
        ErrorKind::NoInflightDowngrade => "NoInflightDowngrade",
        ErrorKind::ClusterVersionUnavailable => "ClusterVersionUnavailable",
        ErrorKind::WatchCanceled => "WatchCanceled",
        ErrorKind::ElectionNotLeader => "ElectionNotLeader",
        ErrorKind::ElectionNoLeader => "ElectionNoLeader",
        ErrorKind::Other => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_labels_are_the_variant_names() {
        // The label is the Debug name without fields, for every kind whose
        // Debug output is easy to build here.
        for kind in [
            ErrorKind::EmptyKey,
            ErrorKind::NoLeader,
            ErrorKind::InvalidAuthToken,
            ErrorKind::TimeoutDueToConnectionLost,
            ErrorKind::Other,
        ] {
            assert_eq!(error_kind_label(&kind), format!("{kind:?}"));
        }
        let compacted = ErrorKind::Compacted {
            compact_revision: None,
        };
        assert_eq!(error_kind_label(&compacted), "Compacted");
    }

    #[test]
    fn code_labels_match_grpc_names() {
        assert_eq!(code_label(Code::Ok), "OK");
        assert_eq!(code_label(Code::Unavailable), "Unavailable");
        assert_eq!(code_label(Code::Cancelled), "Canceled");
    }

    #[test]
    fn service_labels_are_the_path_prefix() {
        for rpc in Rpc::ALL {
            let expected = format!("/{}/", service_label(*rpc));
            assert!(rpc.path().starts_with(&expected), "{rpc}: {expected}");
        }
    }

    #[test]
    fn label_values_of_the_closed_sets_are_snake_case() {
        for value in [
            RESUME_DISCONNECTED,
            RESUME_AUTH,
            OUTCOME_OK,
            OUTCOME_ERROR,
            REFRESH_NO_TOKEN,
            REFRESH_REJECTED,
            REFRESH_EXPIRING,
        ] {
            assert!(
                !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{value}"
            );
        }
    }

    #[test]
    fn metric_names_are_prometheus_style() {
        for name in [
            CLIENT_REQUESTS_STARTED_TOTAL,
            CLIENT_REQUESTS_TOTAL,
            CLIENT_REQUEST_DURATION_SECONDS,
            CLIENT_REQUESTS_IN_FLIGHT,
            CLIENT_STREAM_MESSAGES_SENT_TOTAL,
            CLIENT_STREAM_MESSAGES_RECEIVED_TOTAL,
            CLIENT_STREAMS_OPEN,
            CLIENT_STREAMS_CLOSED_TOTAL,
            CLIENT_WATCH_EVENTS_RECEIVED_TOTAL,
            WATCH_EVENTS_DELIVERED_TOTAL,
            WATCH_RESUMES_TOTAL,
            AUTH_TOKEN_REFRESHES_TOTAL,
            RETRIES_TOTAL,
        ] {
            assert!(name.starts_with("etcd_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }
}
