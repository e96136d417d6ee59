//! Unit tests with tower-test mocks and paused time.

use std::sync::Arc;
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{
    DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RangeResponse,
    SnapshotRequest, TxnRequest, WatchRequest,
};
use etcd_tower_core::{
    Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody, Rpc, Sent,
};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
use tower::retry::budget::TpsBudget;
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_test::mock;

use super::*;

type Mock = mock::Mock<EtcdRequest, EtcdResponse>;
type Handle = mock::Handle<EtcdRequest, EtcdResponse>;
type Inner = tower::util::MapErr<Mock, fn(BoxError) -> EtcdError>;

/// The mock's errors are boxed; the stack's are `EtcdError`.
fn to_etcd(error: BoxError) -> EtcdError {
    match error.downcast::<EtcdError>() {
        Ok(error) => *error,
        Err(other) => EtcdError::client(ErrorKind::Closed, other.to_string()),
    }
}

fn retry(layer: RetryLayer) -> (Retry<Inner>, Handle) {
    let (mock, handle) = mock::pair::<EtcdRequest, EtcdResponse>();
    (
        layer.layer(mock.map_err(to_etcd as fn(BoxError) -> EtcdError)),
        handle,
    )
}

fn ok() -> EtcdResponse {
    EtcdResponse::new(ResponseBody::Range(RangeResponse::default()))
}

fn error(kind: ErrorKind, code: Code, sent: Sent) -> EtcdError {
    EtcdError::new(kind, code, "etcdserver: test failure", sent)
}

// ----- The RPC groups -----

fn range() -> EtcdRequest {
    EtcdRequest::new(RangeRequest {
        key: "k".into(),
        ..Default::default()
    })
}

fn lease_grant() -> EtcdRequest {
    EtcdRequest::new(LeaseGrantRequest { ttl: 5, id: 0 })
}

fn put() -> EtcdRequest {
    EtcdRequest::new(PutRequest {
        key: "k".into(),
        value: "v".into(),
        ..Default::default()
    })
}

fn delete() -> EtcdRequest {
    EtcdRequest::new(DeleteRangeRequest {
        key: "k".into(),
        ..Default::default()
    })
}

fn txn() -> EtcdRequest {
    EtcdRequest::new(TxnRequest::default())
}

fn snapshot() -> EtcdRequest {
    EtcdRequest::new(RequestBody::Snapshot(SnapshotRequest {}))
}

fn watch() -> EtcdRequest {
    let outbound: etcd_tower_core::RequestStream<WatchRequest> =
        Box::pin(futures_util::stream::pending());
    EtcdRequest::new(RequestBody::Watch(outbound))
}

/// One request of each retry group: read-only unary, idempotent unary,
/// writes, a server stream, a bidirectional stream.
type MakeRequest = fn() -> EtcdRequest;

const GROUPS: &[(&str, MakeRequest)] = &[
    ("read", range),
    ("idempotent", lease_grant),
    ("put", put),
    ("delete", delete),
    ("txn", txn),
    ("server stream", snapshot),
    ("bidi stream", watch),
];

/// Every error kind of the core, with the code it is seen with. `Other`
/// appears twice: only an `Unavailable` one is transient.
fn all_kinds() -> Vec<(ErrorKind, Code)> {
    use ErrorKind as K;
    let mut kinds: Vec<(ErrorKind, Code)> = [
        K::EmptyKey,
        K::RequestTooLarge,
        K::TooManyOps,
        K::DuplicateKey,
        K::InvalidTtl,
        K::InvalidEndpoint,
        K::NoEndpoints,
        K::InvalidRequest,
        K::InvalidTls,
        K::InvalidMetadata,
        K::UnexpectedResponse,
        K::Closed,
        K::Compacted {
            compact_revision: Some(3),
        },
        K::FutureRevision,
        K::NoSpace,
        K::KeyNotFound,
        K::ValueProvided,
        K::LeaseProvided,
        K::InvalidSortOption,
        K::LeaseNotFound,
        K::LeaseExists,
        K::LeaseTtlTooLarge,
        K::InvalidAuthToken,
        K::AuthOldRevision,
        K::UserEmpty,
        K::AuthFailed,
        K::PermissionDenied,
        K::AuthNotEnabled,
        K::InvalidAuthMgmt,
        K::RootUserNotExist,
        K::RootRoleNotExist,
        K::UserExists,
        K::UserNotFound,
        K::RoleExists,
        K::RoleNotFound,
        K::RoleEmpty,
        K::RoleNotGranted,
        K::PermissionNotGranted,
        K::PermissionNotGiven,
        K::NotLeader,
        K::NotCapable,
        K::Corrupt,
        K::Canceled,
        K::DeadlineExceeded,
        K::MemberExists,
        K::PeerUrlExists,
        K::MemberNotEnoughStarted,
        K::MemberBadUrls,
        K::MemberNotFound,
        K::MemberNotLearner,
        K::LearnerNotReady,
        K::TooManyLearners,
        K::ClusterIdMismatch,
        K::NotSupportedForLearner,
        K::BadLeaderTransferee,
        K::InvalidDowngradeTargetVersion,
        K::DowngradeInProgress,
        K::NoInflightDowngrade,
        K::ClusterVersionUnavailable,
        K::WatchCanceled,
        K::ElectionNotLeader,
        K::ElectionNoLeader,
    ]
    .into_iter()
    .map(|k| (k, Code::FailedPrecondition))
    .collect();
    kinds.extend(TRANSIENT.iter().map(|k| (k.clone(), Code::Unavailable)));
    kinds.push((K::StaleRead, Code::Aborted));
    kinds.push((K::UnexpectedResponse, Code::Internal));
    kinds.push((K::ResponseTooLarge, Code::ResourceExhausted));
    kinds.push((K::Other, Code::Unavailable));
    kinds.push((K::Other, Code::Unknown));
    kinds.push((K::Other, Code::Internal));
    kinds
}

/// The kinds a retry may cure.
const TRANSIENT: &[ErrorKind] = &[
    ErrorKind::Connect,
    ErrorKind::ConnectionLost,
    ErrorKind::Timeout,
    ErrorKind::NoLeader,
    ErrorKind::LeaderChanged,
    ErrorKind::Stopped,
    ErrorKind::ServerTimeout,
    ErrorKind::TimeoutDueToLeaderFail,
    ErrorKind::TimeoutDueToConnectionLost,
    ErrorKind::TimeoutWaitAppliedIndex,
    ErrorKind::Unhealthy,
    ErrorKind::TooManyRequests,
];

/// The client's own validation errors: never retried, though not sent.
const VALIDATION: &[ErrorKind] = &[
    ErrorKind::EmptyKey,
    ErrorKind::RequestTooLarge,
    ErrorKind::InvalidTtl,
    ErrorKind::TooManyOps,
    ErrorKind::DuplicateKey,
    ErrorKind::InvalidRequest,
    ErrorKind::InvalidEndpoint,
    ErrorKind::NoEndpoints,
];

const SENTS: [Sent; 3] = [Sent::NotSent, Sent::Rejected, Sent::MayHaveBeenApplied];

/// Sends `request`, fails its first attempt with `failure`, and answers a
/// second attempt (if one comes) with success. Returns how many attempts
/// were made; checks that a surfaced error is the failure, unchanged.
///
/// Runs outside tokio's cooperative budget: the sweep polls thousands of
/// channels from one task, and a spent budget would make a ready future
/// look pending.
async fn attempts_after(request: EtcdRequest, failure: EtcdError) -> usize {
    tokio::task::unconstrained(attempts_after_inner(request, failure)).await
}

async fn attempts_after_inner(request: EtcdRequest, failure: EtcdError) -> usize {
    let (svc, mut handle) = retry(RetryLayer::new().max_attempts(2).without_budget());
    let mut call = task::spawn(svc.oneshot(request));
    assert_pending!(call.poll());
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_error(failure.clone());
    match call.poll() {
        std::task::Poll::Ready(result) => {
            let surfaced = result.unwrap_err();
            assert_eq!(surfaced.kind(), failure.kind());
            assert_eq!(surfaced.sent(), failure.sent());
            assert_eq!(surfaced.message(), failure.message());
            assert!(handle.poll_request().is_pending(), "surfaced and retried");
            return 1;
        }
        std::task::Poll::Pending => {}
    }
    // Backing off; then the second attempt is sent.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_pending!(call.poll());
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_response(ok());
    assert_ready_ok!(call.poll());
    2
}

#[tokio::test(start_paused = true)]
async fn the_classification_table() {
    // (group, kind, code, sent) -> retried?  Written out for the rows that
    // matter most; the sweep below covers every combination.
    use ErrorKind as K;
    use Sent::{MayHaveBeenApplied as Maybe, NotSent, Rejected};
    let rows: &[(MakeRequest, ErrorKind, Code, Sent, bool)] = &[
        // Provably not sent: anything goes again, writes included...
        (put, K::Connect, Code::Unavailable, NotSent, true),
        (txn, K::Connect, Code::Unavailable, NotSent, true),
        (range, K::Connect, Code::Unavailable, NotSent, true),
        (put, K::Timeout, Code::DeadlineExceeded, NotSent, true),
        // ...except what would fail again.
        (put, K::EmptyKey, Code::InvalidArgument, NotSent, false),
        (
            range,
            K::RequestTooLarge,
            Code::InvalidArgument,
            NotSent,
            false,
        ),
        (
            lease_grant,
            K::InvalidTtl,
            Code::InvalidArgument,
            NotSent,
            false,
        ),
        (txn, K::TooManyOps, Code::InvalidArgument, NotSent, false),
        (txn, K::DuplicateKey, Code::InvalidArgument, NotSent, false),
        (
            range,
            K::InvalidRequest,
            Code::InvalidArgument,
            NotSent,
            false,
        ),
        (range, K::NoEndpoints, Code::InvalidArgument, NotSent, false),
        (
            range,
            K::InvalidEndpoint,
            Code::InvalidArgument,
            NotSent,
            false,
        ),
        // Writes that may have been applied: never again.
        (put, K::ConnectionLost, Code::Unavailable, Maybe, false),
        (put, K::Timeout, Code::DeadlineExceeded, Maybe, false),
        (delete, K::ServerTimeout, Code::Unavailable, Maybe, false),
        (txn, K::LeaderChanged, Code::Unavailable, Maybe, false),
        (put, K::Other, Code::Unavailable, Maybe, false),
        // Writes the server rejected while unavailable: Go's rule, surfaced.
        (put, K::NoLeader, Code::Unavailable, Rejected, false),
        (
            put,
            K::TooManyRequests,
            Code::ResourceExhausted,
            Rejected,
            false,
        ),
        // Reads and idempotent RPCs: every transient failure.
        (range, K::ConnectionLost, Code::Unavailable, Maybe, true),
        (range, K::Timeout, Code::DeadlineExceeded, Maybe, true),
        (range, K::NoLeader, Code::Unavailable, Rejected, true),
        (range, K::LeaderChanged, Code::Unavailable, Maybe, true),
        (range, K::ServerTimeout, Code::Unavailable, Maybe, true),
        (
            range,
            K::TimeoutDueToLeaderFail,
            Code::Unavailable,
            Maybe,
            true,
        ),
        (
            range,
            K::TimeoutDueToConnectionLost,
            Code::Unavailable,
            Maybe,
            true,
        ),
        (range, K::Stopped, Code::Unavailable, Maybe, true),
        (range, K::Unhealthy, Code::Unavailable, Rejected, true),
        (
            range,
            K::TooManyRequests,
            Code::ResourceExhausted,
            Rejected,
            true,
        ),
        (range, K::Other, Code::Unavailable, Maybe, true),
        (lease_grant, K::NoLeader, Code::Unavailable, Rejected, true),
        (
            lease_grant,
            K::ConnectionLost,
            Code::Unavailable,
            Maybe,
            true,
        ),
        (snapshot, K::ConnectionLost, Code::Unavailable, Maybe, true),
        // ...but not what is wrong with the request or the caller.
        (range, K::Other, Code::Unknown, Maybe, false),
        (
            range,
            K::PermissionDenied,
            Code::PermissionDenied,
            Rejected,
            false,
        ),
        (
            range,
            K::InvalidAuthToken,
            Code::Unauthenticated,
            Rejected,
            false,
        ),
        (
            range,
            K::Compacted {
                compact_revision: None,
            },
            Code::OutOfRange,
            Rejected,
            false,
        ),
        (
            range,
            K::NotLeader,
            Code::FailedPrecondition,
            Rejected,
            false,
        ),
        (range, K::Closed, Code::Unavailable, NotSent, false),
        (range, K::Canceled, Code::Cancelled, Maybe, false),
        // A bidirectional stream cannot be cloned: never retried here.
        (watch, K::Connect, Code::Unavailable, NotSent, false),
        (watch, K::ConnectionLost, Code::Unavailable, Maybe, false),
    ];
    for (request, kind, code, sent, retried) in rows {
        let request = request();
        let rpc = request.rpc();
        let failure = error(kind.clone(), *code, *sent);
        let attempts = attempts_after(request, failure).await;
        let expected = if *retried { 2 } else { 1 };
        assert_eq!(attempts, expected, "{rpc} {kind:?} {code:?} {sent:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_group_every_kind_every_sent() {
    let mut checked = 0;
    for (group, request) in GROUPS {
        for (kind, code) in all_kinds() {
            for sent in SENTS {
                let request = request();
                let rpc = request.rpc();
                let transient = TRANSIENT.contains(&kind)
                    || (kind == ErrorKind::Other && code == Code::Unavailable);
                let expected = if rpc == Rpc::Watch || !transient {
                    1
                } else if sent == Sent::NotSent || rpc.is_idempotent() {
                    2
                } else {
                    1
                };
                if VALIDATION.contains(&kind) {
                    assert_eq!(expected, 1);
                }
                if sent == Sent::MayHaveBeenApplied && !rpc.is_idempotent() {
                    assert_eq!(expected, 1);
                }
                let attempts = attempts_after(request, error(kind.clone(), code, sent)).await;
                assert_eq!(
                    attempts, expected,
                    "{group}: {rpc} {kind:?} {code:?} {sent:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, GROUPS.len() * all_kinds().len() * SENTS.len());
}

#[test]
fn classify_never_repeats_a_write_that_may_have_been_applied() {
    for rpc in Rpc::ALL.iter().filter(|r| !r.is_idempotent()) {
        for (kind, code) in all_kinds() {
            let e = error(kind.clone(), code, Sent::MayHaveBeenApplied);
            assert_eq!(classify(*rpc, &e), None, "{rpc} {kind:?}");
        }
    }
    for rpc in Rpc::ALL {
        for kind in VALIDATION {
            let e = EtcdError::client(kind.clone(), "invalid");
            assert_eq!(classify(*rpc, &e), None, "{rpc} {kind:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_for_its_clone_to_be_ready() {
    let (mut svc, mut handle) = retry(RetryLayer::new().without_budget());
    handle.allow(1);
    assert_ready_ok!(task::spawn(svc.ready()).poll());
    let mut call = task::spawn(svc.call(range()));
    assert_pending!(call.poll());
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_error(error(
        ErrorKind::NoLeader,
        Code::Unavailable,
        Sent::Rejected,
    ));
    assert_pending!(call.poll()); // backing off
    tokio::time::advance(Duration::from_secs(1)).await;
    // The backoff is over, but the inner service has no capacity: the
    // retry waits in poll_ready and sends nothing.
    assert_pending!(call.poll());
    assert!(handle.poll_request().is_pending(), "sent before ready");
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_pending!(call.poll());
    assert!(handle.poll_request().is_pending(), "sent before ready");

    handle.allow(1);
    assert!(call.is_woken(), "readiness must wake the retry");
    assert_pending!(call.poll());
    let (request, answer) = handle.next_request().await.unwrap();
    assert_eq!(request.rpc(), Rpc::Range);
    answer.send_response(ok());
    assert_ready_ok!(call.poll());
}

#[tokio::test(start_paused = true)]
async fn a_write_that_may_have_been_applied_is_surfaced_as_it_is() {
    let (svc, mut handle) = retry(RetryLayer::new());
    let mut call = task::spawn(svc.oneshot(put()));
    assert_pending!(call.poll());
    let (_, answer) = handle.next_request().await.unwrap();
    let lost = EtcdError::new(
        ErrorKind::ConnectionLost,
        Code::Unavailable,
        "connection reset",
        Sent::MayHaveBeenApplied,
    );
    answer.send_error(lost);
    let surfaced = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(surfaced.kind(), &ErrorKind::ConnectionLost);
    assert_eq!(surfaced.sent(), Sent::MayHaveBeenApplied);
    assert!(!surfaced.is_not_applied());
    assert!(
        surfaced.to_string().contains("sent, may have been applied"),
        "{surfaced}"
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(handle.poll_request().is_pending(), "the write was repeated");
}

/// Fails every attempt of a read with `NoLeader`, returning the instants
/// of the attempts.
async fn fail_every_attempt(layer: RetryLayer, request: EtcdRequest) -> (Vec<Instant>, EtcdError) {
    let (svc, mut handle) = retry(layer);
    let call = tokio::spawn(svc.oneshot(request));
    let mut at = Vec::new();
    while let Some((_, answer)) = tokio::select! {
        next = handle.next_request() => next,
        _ = tokio::time::sleep(Duration::from_secs(3600)) => None,
    } {
        at.push(Instant::now());
        answer.send_error(error(
            ErrorKind::NoLeader,
            Code::Unavailable,
            Sent::Rejected,
        ));
    }
    let error = call.await.unwrap().unwrap_err();
    (at, error)
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded_and_back_off_exponentially_with_jitter() {
    let (at, error) = fail_every_attempt(RetryLayer::new(), range()).await;
    assert_eq!(at.len(), DEFAULT_MAX_ATTEMPTS as usize);
    assert_eq!(error.kind(), &ErrorKind::NoLeader);
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, gap) in gaps.iter().enumerate() {
        let base = DEFAULT_BACKOFF_BASE * 2u32.pow(i as u32);
        let base = base.min(DEFAULT_BACKOFF_MAX);
        let most = base.mul_f64(1.0 + DEFAULT_JITTER) + Duration::from_millis(1);
        assert!(
            *gap >= base && *gap <= most,
            "gap {i}: {gap:?}, base {base:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_differs_between_calls() {
    let layer = RetryLayer::new()
        .backoff(Duration::from_millis(100), Duration::from_secs(1), 1.0)
        .unwrap();
    let (a, _) = fail_every_attempt(layer.clone(), range()).await;
    let (b, _) = fail_every_attempt(layer, range()).await;
    let gaps = |at: &[Instant]| at.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>();
    assert_ne!(gaps(&a), gaps(&b), "two calls backed off in step");
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_after_the_time_bound() {
    let layer = RetryLayer::new()
        .max_attempts(100)
        .max_elapsed(Duration::from_secs(2))
        .backoff(Duration::from_millis(100), Duration::from_millis(100), 0.0)
        .unwrap();
    let start = Instant::now();
    let (at, _) = fail_every_attempt(layer, range()).await;
    let last = *at.last().unwrap() - start;
    assert!(last <= Duration::from_secs(2), "{last:?}");
    assert!(last >= Duration::from_millis(1900), "{last:?}");
    assert_eq!(at.len(), 21);
}

#[tokio::test(start_paused = true)]
async fn each_call_has_its_own_attempts_and_clock() {
    let (svc, mut handle) = retry(RetryLayer::new().max_elapsed(Duration::from_secs(5)));
    for round in 0..3 {
        // A call long after the previous one still gets every attempt.
        tokio::time::advance(Duration::from_secs(30)).await;
        let call = tokio::spawn(svc.clone().oneshot(range()));
        for _ in 0..DEFAULT_MAX_ATTEMPTS {
            let (_, answer) = handle.next_request().await.unwrap();
            answer.send_error(error(
                ErrorKind::LeaderChanged,
                Code::Unavailable,
                Sent::MayHaveBeenApplied,
            ));
        }
        let e = call.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::LeaderChanged, "round {round}");
        tokio::task::yield_now().await;
        assert!(handle.poll_request().is_pending(), "round {round}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_stops_retries() {
    // No reserve and no share of calls: nothing may be retried.
    let budget = Arc::new(TpsBudget::new(Duration::from_secs(1), 0, 0.0));
    let (at, _) = fail_every_attempt(RetryLayer::new().budget(budget), range()).await;
    assert_eq!(at.len(), 1);

    // A reserve of 2 retries a second: the third is refused.
    let budget = Arc::new(TpsBudget::new(Duration::from_secs(1), 2, 0.0));
    let (at, _) = fail_every_attempt(RetryLayer::new().budget(budget), range()).await;
    assert_eq!(at.len(), 3);
}

#[test]
fn invalid_backoff_settings_are_typed_errors() {
    let e = RetryLayer::new()
        .backoff(Duration::from_secs(2), Duration::from_secs(1), 0.1)
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InvalidRequest);
    assert!(RetryLayer::new()
        .backoff(Duration::ZERO, Duration::ZERO, 0.1)
        .is_err());
    assert!(RetryLayer::new()
        .backoff(Duration::ZERO, Duration::from_secs(1), f64::NAN)
        .is_err());
    assert_eq!(RetryLayer::new().max_attempts(0).policy().max_attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_are_counted_by_rpc_and_kind() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (svc, mut handle) = retry(RetryLayer::new().without_budget());
    let mut call = task::spawn(svc.oneshot(range()));
    assert_pending!(call.poll());
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_error(error(
        ErrorKind::Unhealthy,
        Code::Unavailable,
        Sent::Rejected,
    ));
    // The decision to retry is made while polling: record it.
    metrics::with_local_recorder(&recorder, || assert_pending!(call.poll()));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_pending!(call.poll());
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_response(ok());
    assert_ready_ok!(call.poll());

    let counters: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "etcd_retries_total")
        .collect();
    assert_eq!(counters.len(), 1, "{counters:?}");
    let (key, _, _, value) = &counters[0];
    let labels: Vec<(String, String)> = key
        .key()
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    assert!(
        labels.contains(&("service".into(), "etcdserverpb.KV".into())),
        "{labels:?}"
    );
    assert!(
        labels.contains(&("rpc".into(), "Range".into())),
        "{labels:?}"
    );
    assert!(
        labels.contains(&("kind".into(), "Unhealthy".into())),
        "{labels:?}"
    );
    assert_eq!(value, &DebugValue::Counter(1));
}

#[tokio::test(start_paused = true)]
async fn retry_exposes_its_inner_service() {
    let (svc, _handle) = retry(RetryLayer::new());
    let mut svc = svc;
    let _ = svc.get_ref();
    let _ = svc.get_mut();
    let _inner: Inner = svc.into_inner();
    assert_eq!(
        EtcdRetryPolicy::default().max_elapsed(),
        DEFAULT_MAX_ELAPSED
    );
}

/// A client that clones the stack for every call (as the facade does) must
/// not make a spare clone of the inner service for every call.
#[tokio::test(start_paused = true)]
async fn clones_share_one_spare_service() {
    let (svc, _handle) = retry(RetryLayer::new());
    let a = svc.clone();
    let b = a.clone();
    assert!(std::sync::Arc::ptr_eq(svc.shared(), a.shared()));
    assert!(std::sync::Arc::ptr_eq(a.shared(), b.shared()));
    let mut c = b.clone();
    let _ = c.get_mut();
    assert!(!std::sync::Arc::ptr_eq(b.shared(), c.shared()));
}
