//! How a status becomes an [`EtcdError`], and how the error reads.

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
fn a_catalogue_entry_with_its_code_flattened_to_unknown_is_that_entry() {
    // As etcd's gRPC proxy passes them on.
    let e = server(Code::Unknown, "etcdserver: permission denied");
    assert_eq!(e.kind(), &ErrorKind::PermissionDenied, "{e}");
    assert_eq!(e.sent(), Sent::Rejected);
    assert_eq!(e.code(), Code::Unknown, "the code is what arrived");
    let e = server(Code::Unknown, "etcdserver: invalid auth token");
    assert_eq!(e.kind(), &ErrorKind::InvalidAuthToken, "{e}");
    let e = server(Code::Unknown, "etcdserver: request timed out");
    assert_eq!(e.sent(), Sent::MayHaveBeenApplied, "{e}");

    // Only a whole entry, with the prefix, under Unknown.
    for (code, message) in [
        (Code::Unknown, "permission denied"),
        (Code::Unknown, "etcdserver: permission denied for key a"),
        (Code::Unknown, "rpc error: etcdserver: permission denied"),
        (Code::Internal, "etcdserver: permission denied"),
    ] {
        let e = server(code, message);
        assert_eq!(e.kind(), &ErrorKind::Other, "{code:?} {message:?}");
        assert_eq!(e.sent(), Sent::MayHaveBeenApplied, "{code:?} {message:?}");
    }
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
fn client_errors_are_not_sent() {
    let e = EtcdError::client(ErrorKind::EmptyKey, "key is empty");
    assert_eq!(e.sent(), Sent::NotSent);
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[test]
fn the_error_is_one_pointer_wide() {
    assert_eq!(
        std::mem::size_of::<EtcdError>(),
        std::mem::size_of::<usize>()
    );
}

// ----- Display: a sentence a person understands -----

#[test]
fn a_compaction_says_which_history_is_gone() {
    let unary = server(
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_eq!(
        unary.to_string(),
        "the requested revision has been compacted; refused by the server, not applied \
         (gRPC OutOfRange: etcdserver: mvcc: required revision has been compacted)"
    );

    let watch = EtcdError::new(
        ErrorKind::Compacted {
            compact_revision: Some(7),
        },
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
        Sent::Rejected,
    )
    .with_key("jobs/")
    .with_requested_revision(3);
    assert_eq!(
        watch.to_string(),
        "key \"jobs/\", revision 3: history before revision 7 has been compacted; \
         refused by the server, not applied \
         (gRPC OutOfRange: etcdserver: mvcc: required revision has been compacted)"
    );
    assert_eq!(watch.key().map(|k| &k[..]), Some(&b"jobs/"[..]));
    assert_eq!(watch.requested_revision(), Some(3));
    assert_eq!(watch.compact_revision(), Some(7));
}

#[test]
fn a_denial_names_its_key() {
    let denied = server(Code::PermissionDenied, "etcdserver: permission denied").with_key("bob/k");
    assert_eq!(
        denied.to_string(),
        "key \"bob/k\": permission denied; refused by the server, not applied \
         (gRPC PermissionDenied: etcdserver: permission denied)"
    );
    // Code still matches on the kind, untouched by the key.
    assert_eq!(denied.kind(), &ErrorKind::PermissionDenied);
}

#[test]
fn a_timeout_says_it_may_have_been_applied() {
    let timeout = EtcdError::new(
        ErrorKind::Timeout,
        Code::DeadlineExceeded,
        "deadline passed after 2s waiting for the answer to Put",
        Sent::MayHaveBeenApplied,
    );
    assert_eq!(
        timeout.to_string(),
        "the client's deadline passed; sent, may have been applied \
         (gRPC DeadlineExceeded: deadline passed after 2s waiting for the answer to Put)"
    );
}

#[test]
fn a_validation_error_says_it_was_not_sent() {
    let empty = EtcdError::client(ErrorKind::EmptyKey, "the key is empty");
    assert_eq!(
        empty.to_string(),
        "the request has an empty key; not sent (gRPC InvalidArgument: the key is empty)"
    );
}

#[test]
fn a_lost_connection_says_it_may_have_been_applied() {
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    let lost = EtcdError::from_status(tonic::Status::from_error(Box::new(reset)));
    let text = lost.to_string();
    assert!(
        text.starts_with(
            "the connection broke while the request was in flight; sent, may have been applied \
             (gRPC Unavailable: "
        ),
        "{text}"
    );
}

#[test]
fn keys_are_escaped_and_cut() {
    let binary = server(Code::PermissionDenied, "").with_key(&b"a\"\xff"[..]);
    assert_eq!(
        binary.to_string(),
        "key \"a\\\"\\xff\": permission denied; refused by the server, not applied \
         (gRPC PermissionDenied)"
    );
    let long = server(Code::PermissionDenied, "").with_key(vec![b'k'; 1000]);
    let text = long.to_string();
    assert!(
        text.starts_with(&format!("key \"{}\"... (1000 bytes): ", "k".repeat(128))),
        "{text}"
    );
}

#[test]
fn every_kind_reads_as_words_not_as_its_variant_name() {
    // A sample of every group; the `match` in kind.rs is exhaustive, so no
    // kind can lack its words.
    for kind in [
        ErrorKind::EmptyKey,
        ErrorKind::ConnectionLost,
        ErrorKind::Compacted {
            compact_revision: Some(7),
        },
        ErrorKind::LeaseNotFound,
        ErrorKind::InvalidAuthToken,
        ErrorKind::NoLeader,
        ErrorKind::MemberNotFound,
        ErrorKind::WatchCanceled,
        ErrorKind::Other,
    ] {
        let words = kind.to_string();
        let name = crate::metric_names::error_kind_label(&kind);
        assert!(
            !words.contains(name),
            "{words:?} is the variant name {name}"
        );
        assert!(words.contains(' '), "{words:?}");
        assert!(
            words.starts_with(|c: char| c.is_ascii_lowercase()),
            "{words:?} starts a sentence in lower case"
        );
    }
}

#[test]
fn debug_keeps_the_fields_for_programmers() {
    let e = EtcdError::client(ErrorKind::EmptyKey, "the key is empty");
    assert_eq!(
        format!("{e:?}"),
        "EtcdError { kind: EmptyKey, code: InvalidArgument, message: \"the key is empty\", sent: NotSent }"
    );
}
