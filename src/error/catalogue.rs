//! etcd's error catalogue, one row per entry, and what each says about
//! delivery.
//!
//! A server status maps to its entry by gRPC code first, and by message
//! only among the entries that share that code: etcd's messages are the
//! stable way every official client names these errors, but the same text
//! under another code is not that entry.
//!
//! ## Flattened codes
//!
//! One exception, by structure rather than by reading text: a status whose
//! code is `Unknown` and whose message is, whole and exactly, one entry of
//! the catalogue with etcd's `etcdserver: ` prefix is that entry. This is
//! the shape of an etcd error that passed through a Go intermediary, above
//! all etcd's own gRPC proxy (`etcd grpc-proxy`): its Go client turns the
//! server's status into an `rpctypes` error value, found by that same exact
//! message (Go's `rpctypes.Error`), and its gRPC server sends that value
//! back as `Unknown` with the message intact. Mapping it back is undoing
//! one known, lossless step, with the catalogue as the key; the message is
//! compared as an identifier, never searched for words, and nothing but a
//! whole catalogue entry under `Unknown` is read this way. Any other
//! `Unknown` stays [`ErrorKind::Other`], reported as "may have been
//! applied". The alternative, keeping every flattened error as `Other`,
//! would report a read the proxy refused for permissions as "may have been
//! applied", and hide an expired token from the auth layer, which could
//! then never refresh it behind a proxy.

use super::{Code, ErrorKind, Sent};

/// Maps a server status to its catalogue entry: by code first, by message
/// among the entries that share that code. A message the catalogue does
/// not know maps by its code alone where the code says enough, else to
/// [`ErrorKind::Other`].
pub(super) fn catalogue_kind(code: Code, message: &str) -> ErrorKind {
    let text = message.strip_prefix("etcdserver: ").unwrap_or(message);
    for (entry_code, entry_text, kind) in CATALOGUE {
        if *entry_code == code && *entry_text == text {
            return kind.clone();
        }
    }
    if let Some(kind) = flattened(code, message) {
        return kind;
    }
    match code {
        Code::Unauthenticated => ErrorKind::InvalidAuthToken,
        Code::PermissionDenied => ErrorKind::PermissionDenied,
        Code::DeadlineExceeded => ErrorKind::DeadlineExceeded,
        Code::Cancelled => ErrorKind::Canceled,
        _ => ErrorKind::Other,
    }
}

/// The entry a status with a flattened code stands for: `Unknown`, and the
/// whole message one entry with etcd's prefix (see the
/// [module docs](self#flattened-codes)).
fn flattened(code: Code, message: &str) -> Option<ErrorKind> {
    if code != Code::Unknown {
        return None;
    }
    let text = message.strip_prefix("etcdserver: ")?;
    CATALOGUE
        .iter()
        .find(|(_, entry_text, _)| *entry_text == text)
        .map(|(_, _, kind)| kind.clone())
}

/// What a server error says about whether a write was applied. The server
/// rejects most requests before proposing them; its timeouts and stops can
/// come after the proposal, so those are reported as "may have been
/// applied". An unknown `Unavailable`, `Unknown` or `Internal` is treated
/// the same way.
pub(super) fn server_sent(kind: &ErrorKind, code: Code) -> Sent {
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

use Code as C;
use ErrorKind as K;

/// etcd's error catalogue (`api/v3rpc/rpctypes`): gRPC code, message
/// without the `etcdserver: ` prefix, kind. One row per entry, so the whole
/// catalogue reads at a glance (hence no rustfmt).
#[rustfmt::skip]
const CATALOGUE: &[(Code, &str, ErrorKind)] = &[
    (C::InvalidArgument, "key is not provided", K::EmptyKey),
    (C::InvalidArgument, "key not found", K::KeyNotFound),
    (C::InvalidArgument, "value is provided", K::ValueProvided),
    (C::InvalidArgument, "lease is provided", K::LeaseProvided),
    (C::InvalidArgument, "too many operations in txn request", K::TooManyOps),
    (C::InvalidArgument, "duplicate key given in txn request", K::DuplicateKey),
    (C::InvalidArgument, "invalid sort option", K::InvalidSortOption),
    (C::InvalidArgument, "request is too large", K::RequestTooLarge),
    (C::InvalidArgument, "user name is empty", K::UserEmpty),
    (C::InvalidArgument, "role name is empty", K::RoleEmpty),
    (C::InvalidArgument, "authentication failed, invalid user ID or password", K::AuthFailed),
    (C::InvalidArgument, "permission not given", K::PermissionNotGiven),
    (C::InvalidArgument, "invalid auth management", K::InvalidAuthMgmt),
    (C::InvalidArgument, "revision of auth store is old", K::AuthOldRevision),
    (C::InvalidArgument, "given member URLs are invalid", K::MemberBadUrls),
    (C::InvalidArgument, "invalid downgrade target version", K::InvalidDowngradeTargetVersion),
    (C::OutOfRange, "mvcc: required revision has been compacted", K::Compacted { compact_revision: None }),
    (C::OutOfRange, "mvcc: required revision is a future revision", K::FutureRevision),
    (C::OutOfRange, "too large lease TTL", K::LeaseTtlTooLarge),
    (C::ResourceExhausted, "mvcc: database space exceeded", K::NoSpace),
    (C::ResourceExhausted, "too many requests", K::TooManyRequests),
    (C::NotFound, "requested lease not found", K::LeaseNotFound),
    (C::NotFound, "member not found", K::MemberNotFound),
    (C::FailedPrecondition, "lease already exists", K::LeaseExists),
    (C::FailedPrecondition, "member ID already exist", K::MemberExists),
    (C::FailedPrecondition, "Peer URLs already exists", K::PeerUrlExists),
    (C::FailedPrecondition, "re-configuration failed due to not enough started members", K::MemberNotEnoughStarted),
    (C::FailedPrecondition, "can only promote a learner member", K::MemberNotLearner),
    (C::FailedPrecondition, "can only promote a learner member which is in sync with leader", K::LearnerNotReady),
    (C::FailedPrecondition, "too many learner members in cluster", K::TooManyLearners),
    (C::FailedPrecondition, "cluster ID mismatch", K::ClusterIdMismatch),
    (C::FailedPrecondition, "root user does not exist", K::RootUserNotExist),
    (C::FailedPrecondition, "root user does not have root role", K::RootRoleNotExist),
    (C::FailedPrecondition, "user name already exists", K::UserExists),
    (C::FailedPrecondition, "user name not found", K::UserNotFound),
    (C::FailedPrecondition, "role name already exists", K::RoleExists),
    (C::FailedPrecondition, "role name not found", K::RoleNotFound),
    (C::FailedPrecondition, "role is not granted to the user", K::RoleNotGranted),
    (C::FailedPrecondition, "permission is not granted to the role", K::PermissionNotGranted),
    (C::FailedPrecondition, "authentication is not enabled", K::AuthNotEnabled),
    (C::FailedPrecondition, "not leader", K::NotLeader),
    (C::FailedPrecondition, "not capable", K::NotCapable),
    (C::FailedPrecondition, "is not supported for learner member", K::NotSupportedForLearner),
    (C::FailedPrecondition, "bad leader transferee", K::BadLeaderTransferee),
    (C::FailedPrecondition, "cluster version not found during downgrade", K::ClusterVersionUnavailable),
    (C::FailedPrecondition, "cluster has a downgrade job in progress", K::DowngradeInProgress),
    (C::FailedPrecondition, "no inflight downgrade job", K::NoInflightDowngrade),
    (C::PermissionDenied, "permission denied", K::PermissionDenied),
    (C::Unauthenticated, "invalid auth token", K::InvalidAuthToken),
    (C::Unavailable, "no leader", K::NoLeader),
    (C::Unavailable, "leader changed", K::LeaderChanged),
    (C::Unavailable, "server stopped", K::Stopped),
    (C::Unavailable, "request timed out", K::ServerTimeout),
    (C::Unavailable, "request timed out, possibly due to previous leader failure", K::TimeoutDueToLeaderFail),
    (C::Unavailable, "request timed out, possibly due to connection lost", K::TimeoutDueToConnectionLost),
    (C::Unavailable, "request timed out, waiting for the applied index took too long", K::TimeoutWaitAppliedIndex),
    (C::Unavailable, "unhealthy cluster", K::Unhealthy),
    (C::DataLoss, "corrupt cluster", K::Corrupt),
    (C::Cancelled, "watch is canceled", K::WatchCanceled),
    (C::Unknown, "election: not leader", K::ElectionNotLeader),
    (C::Unknown, "election: no leader", K::ElectionNoLeader),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_maps_back_to_its_kind() {
        for (code, text, kind) in CATALOGUE {
            assert_eq!(
                &catalogue_kind(*code, &format!("etcdserver: {text}")),
                kind,
                "{text}"
            );
            assert_eq!(
                &catalogue_kind(*code, text),
                kind,
                "{text} without the prefix"
            );
        }
    }

    #[test]
    fn no_two_rows_share_a_code_and_message() {
        for (i, (code, text, _)) in CATALOGUE.iter().enumerate() {
            let twins = CATALOGUE[i + 1..]
                .iter()
                .filter(|(c, t, _)| c == code && t == text);
            assert_eq!(twins.count(), 0, "{text}");
        }
    }
}
