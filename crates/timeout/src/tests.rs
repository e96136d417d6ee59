//! Unit tests with tower-test mocks and paused time.

use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{
    LeaseKeepAliveResponse, PutRequest, RangeRequest, RangeResponse, SnapshotRequest,
    SnapshotResponse, WatchRequest, WatchResponse,
};
use etcd_tower_core::proto::v3electionpb::LeaderResponse;
use etcd_tower_core::{
    Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody,
    ResponseStream, Rpc, Sent,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_test::mock;

use super::*;

type Mock = mock::Mock<EtcdRequest, EtcdResponse>;
type Handle = mock::Handle<EtcdRequest, EtcdResponse>;

/// The mock's errors are boxed; the stack's are `EtcdError`.
fn to_etcd(error: BoxError) -> EtcdError {
    match error.downcast::<EtcdError>() {
        Ok(error) => *error,
        Err(other) => EtcdError::client(ErrorKind::Closed, other.to_string()),
    }
}

type Inner = tower::util::MapErr<Mock, fn(BoxError) -> EtcdError>;

fn timeout(layer: TimeoutLayer) -> (Timeout<Inner>, Handle) {
    let (mock, handle) = mock::pair::<EtcdRequest, EtcdResponse>();
    let inner = mock.map_err(to_etcd as fn(BoxError) -> EtcdError);
    (layer.layer(inner), handle)
}

fn range() -> EtcdRequest {
    EtcdRequest::new(RangeRequest {
        key: "k".into(),
        ..Default::default()
    })
}

fn put() -> EtcdRequest {
    EtcdRequest::new(PutRequest {
        key: "k".into(),
        value: "v".into(),
        ..Default::default()
    })
}

fn with_timeout(mut request: EtcdRequest, timeout: CallTimeout) -> EtcdRequest {
    request.meta.extensions.insert(timeout);
    request
}

/// A response stream fed by the test.
fn channel_stream<T: Send + 'static>() -> (
    mpsc::UnboundedSender<Result<T, EtcdError>>,
    ResponseStream<T>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (tx, Box::pin(stream))
}

fn ready(svc: &mut Timeout<Inner>) {
    let mut ready = task::spawn(svc.ready());
    assert_ready_ok!(ready.poll());
}

#[tokio::test(start_paused = true)]
async fn a_unary_call_times_out_at_its_deadline() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(1)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(put()));
    let (request, _answer_never_sent) = handle.next_request().await.unwrap();
    assert_eq!(request.rpc(), Rpc::Put);

    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    let error = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Timeout);
    assert_eq!(error.code(), Code::DeadlineExceeded);
    assert_eq!(error.sent(), Sent::MayHaveBeenApplied);
    assert!(error.message().contains("deadline passed"), "{error}");
    assert!(error.message().contains("Put"), "{error}");
    assert!(
        error.to_string().contains("may have been applied"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_that_times_out_is_reported_the_same_way() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_millis(10)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(range()));
    let _pending = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_millis(10)).await;
    let error = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Timeout);
    assert_eq!(error.sent(), Sent::MayHaveBeenApplied);
}

#[tokio::test(start_paused = true)]
async fn an_answer_before_the_deadline_passes_through() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(1)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(range()));
    let (_, answer) = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_millis(500)).await;
    answer.send_response(EtcdResponse::new(ResponseBody::Range(RangeResponse {
        count: 7,
        ..Default::default()
    })));
    let response = assert_ready_ok!(call.poll());
    assert_eq!(RangeResponse::try_from(response).unwrap().count, 7);
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unchanged() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(1)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(put()));
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_error(server_error(Code::Unavailable, "etcdserver: no leader"));
    let error = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::NoLeader);
    assert_eq!(error.sent(), Sent::Rejected);
}

/// A server error as the transport would classify it.
fn server_error(code: Code, message: &str) -> EtcdError {
    let kind = match message {
        "etcdserver: no leader" => ErrorKind::NoLeader,
        _ => ErrorKind::Other,
    };
    EtcdError::new(kind, code, message, Sent::Rejected)
}

#[tokio::test(start_paused = true)]
async fn a_call_timeout_overrides_the_default() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(5)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(with_timeout(
        range(),
        CallTimeout(Duration::from_millis(100)),
    )));
    let _pending = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    let error = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Timeout);
    assert!(error.message().contains("100ms"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn call_timeout_none_disables_the_deadline() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_millis(10)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(with_timeout(range(), CallTimeout::NONE)));
    let (_, answer) = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_pending!(call.poll());
    answer.send_response(EtcdResponse::new(ResponseBody::Range(
        RangeResponse::default(),
    )));
    assert_ready_ok!(call.poll());
}

#[tokio::test(start_paused = true)]
async fn a_layer_without_default_only_times_calls_that_ask() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::per_call_only());
    assert_eq!(svc.default_timeout(), None);
    ready(&mut svc);
    let mut free = task::spawn(svc.call(range()));
    let _free_request = handle.next_request().await.unwrap();
    ready(&mut svc);
    let mut bounded =
        task::spawn(svc.call(with_timeout(range(), CallTimeout(Duration::from_secs(1)))));
    let _bounded_request = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_pending!(free.poll());
    assert!(assert_ready!(bounded.poll()).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_zero_deadline_fails_without_calling() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(1)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(with_timeout(put(), CallTimeout(Duration::ZERO))));
    let error = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Timeout);
    assert_eq!(error.sent(), Sent::NotSent);
    assert!(error.message().contains("nothing was sent"), "{error}");
    assert!(
        handle.poll_request().is_pending(),
        "the inner service was called"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_is_not_timed() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_millis(10)));
    handle.allow(0);
    let mut ready = task::spawn(svc.ready());
    assert_pending!(ready.poll());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_pending!(ready.poll());
    handle.allow(1);
    assert!(ready.is_woken());
    assert_ready_ok!(ready.poll());
}

#[tokio::test(start_paused = true)]
async fn a_stream_must_open_before_the_deadline() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(1)));
    ready(&mut svc);
    let request = EtcdRequest::new(RequestBody::Snapshot(SnapshotRequest {}));
    let mut call = task::spawn(svc.call(request));
    let _never_opened = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let error = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Timeout);
    assert!(
        error.message().contains("Snapshot stream opened"),
        "{error}"
    );
}

fn watch_request() -> EtcdRequest {
    let outbound: etcd_tower_core::RequestStream<WatchRequest> =
        Box::pin(futures_util::stream::pending());
    EtcdRequest::new(RequestBody::Watch(outbound))
}

fn watch_stream(response: EtcdResponse) -> ResponseStream<WatchResponse> {
    match response.body {
        ResponseBody::Watch(stream) => stream,
        other => panic!("not a watch: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_whose_first_message_is_late_ends_with_a_timeout() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(1)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(watch_request()));
    let (_, answer) = handle.next_request().await.unwrap();
    let (tx, inbound) = channel_stream::<WatchResponse>();
    tokio::time::advance(Duration::from_millis(300)).await;
    answer.send_response(EtcdResponse::new(ResponseBody::Watch(inbound)));
    let mut stream = task::spawn(watch_stream(assert_ready_ok!(call.poll())));

    assert_pending!(stream.poll_next());
    tokio::time::advance(Duration::from_millis(699)).await;
    assert_pending!(stream.poll_next());
    tokio::time::advance(Duration::from_millis(1)).await;
    let error = assert_ready!(stream.poll_next()).unwrap().unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Timeout);
    assert_eq!(error.sent(), Sent::MayHaveBeenApplied);
    assert!(
        error
            .message()
            .contains("first message of the Watch stream"),
        "{error}"
    );
    // The stream ends, and the RPC is dropped (cancelled).
    assert!(assert_ready!(stream.poll_next()).is_none());
    assert!(tx.is_closed(), "the inner stream was not dropped");
}

#[tokio::test(start_paused = true)]
async fn after_the_first_message_a_stream_runs_freely() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(1)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(watch_request()));
    let (_, answer) = handle.next_request().await.unwrap();
    let (tx, inbound) = channel_stream::<WatchResponse>();
    answer.send_response(EtcdResponse::new(ResponseBody::Watch(inbound)));
    let mut stream = watch_stream(assert_ready_ok!(call.poll()));

    tokio::time::advance(Duration::from_millis(900)).await;
    tx.send(Ok(WatchResponse {
        created: true,
        ..Default::default()
    }))
    .unwrap();
    assert!(stream.next().await.unwrap().unwrap().created);

    tokio::time::advance(Duration::from_secs(3600)).await;
    tx.send(Ok(WatchResponse {
        watch_id: 7,
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().watch_id, 7);
    drop(tx);
    assert!(stream.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_stream_with_no_deadline_is_not_wrapped_in_one() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_millis(5)));
    ready(&mut svc);
    let mut call = task::spawn(svc.call(with_timeout(watch_request(), CallTimeout::NONE)));
    let (_, answer) = handle.next_request().await.unwrap();
    let (tx, inbound) = channel_stream::<WatchResponse>();
    answer.send_response(EtcdResponse::new(ResponseBody::Watch(inbound)));
    let mut stream = task::spawn(watch_stream(assert_ready_ok!(call.poll())));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_pending!(stream.poll_next());
    tx.send(Ok(WatchResponse::default())).unwrap();
    assert!(assert_ready!(stream.poll_next()).unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn every_streaming_rpc_gets_a_first_message_deadline() {
    // If the core adds a streaming RPC, `until_first_message` must learn it.
    let streaming: Vec<Rpc> = Rpc::ALL
        .iter()
        .copied()
        .filter(|r| r.is_streaming())
        .collect();
    assert_eq!(
        streaming,
        [Rpc::Watch, Rpc::LeaseKeepAlive, Rpc::Snapshot, Rpc::Observe]
    );

    let deadline = tokio::time::Instant::now() + Duration::from_millis(10);
    let timeout = Duration::from_millis(10);
    let pending = || -> ResponseStream<_> { Box::pin(futures_util::stream::pending()) };
    let bodies = vec![
        ResponseBody::Watch(pending()),
        ResponseBody::LeaseKeepAlive(Box::pin(futures_util::stream::pending::<
            Result<LeaseKeepAliveResponse, EtcdError>,
        >())),
        ResponseBody::Snapshot(Box::pin(futures_util::stream::pending::<
            Result<SnapshotResponse, EtcdError>,
        >())),
        ResponseBody::Observe(Box::pin(futures_util::stream::pending::<
            Result<LeaderResponse, EtcdError>,
        >())),
    ];
    tokio::time::advance(Duration::from_millis(10)).await;
    for body in bodies {
        let rpc = body.rpc();
        let wrapped = stream::until_first_message(body, deadline, timeout, Scope::Call);
        let first = match wrapped {
            ResponseBody::Watch(mut s) => s.next().await.map(|r| r.map(drop)),
            ResponseBody::LeaseKeepAlive(mut s) => s.next().await.map(|r| r.map(drop)),
            ResponseBody::Snapshot(mut s) => s.next().await.map(|r| r.map(drop)),
            ResponseBody::Observe(mut s) => s.next().await.map(|r| r.map(drop)),
            other => panic!("{rpc}: unexpected body {other:?}"),
        };
        let error = first.unwrap().unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Timeout, "{rpc}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_per_attempt_layer_reads_only_the_attempt_timeout() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(5)).per_attempt());

    // A whole-call override is not this layer's: the default applies.
    ready(&mut svc);
    let mut call = task::spawn(svc.call(with_timeout(range(), CallTimeout::NONE)));
    let _pending = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    let error = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Timeout);
    assert!(
        error.message().contains("5s per-attempt deadline passed"),
        "{error}"
    );

    // Its own override does.
    ready(&mut svc);
    let mut request = range();
    request
        .meta
        .extensions
        .insert(AttemptTimeout(Duration::from_millis(100)));
    let mut call = task::spawn(svc.call(request));
    let _pending = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(assert_ready!(call.poll()).is_err());

    // And `NONE` turns it off.
    ready(&mut svc);
    let mut request = range();
    request.meta.extensions.insert(AttemptTimeout::NONE);
    let mut call = task::spawn(svc.call(request));
    let _pending = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_pending!(call.poll());
}

#[tokio::test(start_paused = true)]
async fn a_whole_call_layer_ignores_the_attempt_timeout() {
    let (mut svc, mut handle) = timeout(TimeoutLayer::new(Duration::from_secs(1)));
    ready(&mut svc);
    let mut request = range();
    request.meta.extensions.insert(AttemptTimeout::NONE);
    let mut call = task::spawn(svc.call(request));
    let _pending = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let error = assert_ready!(call.poll()).unwrap_err();
    assert!(!error.message().contains("per-attempt"), "{error}");
}
