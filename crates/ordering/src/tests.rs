//! Unit tests of the policy logic with tower-test mocks.

use etcd_tower_core::proto::etcdserverpb::{
    request_op, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader,
    TxnRequest, TxnResponse, WatchRequest, WatchResponse,
};
use etcd_tower_core::{
    Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody, Rpc, Sent,
    TargetEndpoint,
};
use futures_util::StreamExt;
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
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

fn ordering(layer: &OrderingLayer) -> (Ordering<Inner>, Handle) {
    let (mock, handle) = mock::pair::<EtcdRequest, EtcdResponse>();
    let inner = mock.map_err(to_etcd as fn(BoxError) -> EtcdError);
    (layer.layer(inner), handle)
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

fn range(serializable: bool) -> EtcdRequest {
    EtcdRequest::new(RangeRequest {
        key: "k".into(),
        serializable,
        ..Default::default()
    })
}

fn range_at(revision: i64) -> EtcdResponse {
    EtcdResponse::new(ResponseBody::Range(RangeResponse {
        header: header(revision),
        ..Default::default()
    }))
}

fn put_at(revision: i64) -> EtcdResponse {
    EtcdResponse::new(ResponseBody::Put(PutResponse {
        header: header(revision),
        ..Default::default()
    }))
}

fn txn(ops: Vec<request_op::Request>) -> EtcdRequest {
    EtcdRequest::new(TxnRequest {
        success: ops
            .into_iter()
            .map(|request| RequestOp {
                request: Some(request),
            })
            .collect(),
        ..Default::default()
    })
}

fn txn_at(revision: i64) -> EtcdResponse {
    EtcdResponse::new(ResponseBody::Txn(TxnResponse {
        header: header(revision),
        ..Default::default()
    }))
}

fn revision_of(response: EtcdResponse) -> i64 {
    match response.body {
        ResponseBody::Range(r) => r.header.unwrap().revision,
        ResponseBody::Txn(r) => r.header.unwrap().revision,
        other => panic!("unexpected {other:?}"),
    }
}

/// Sends a put answered at `revision`, so that the layer has seen it.
async fn seen(svc: &mut Ordering<Inner>, handle: &mut Handle, revision: i64) {
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(EtcdRequest::new(PutRequest::default())));
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_response(put_at(revision));
    assert_ready_ok!(call.poll());
    assert!(svc.highest_revision() >= revision);
}

#[tokio::test]
async fn every_answer_raises_the_highest_revision() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    assert_eq!(layer.highest_revision(), 0);
    seen(&mut svc, &mut handle, 7).await;
    assert_eq!(layer.highest_revision(), 7);
    // A lower one does not lower it.
    seen(&mut svc, &mut handle, 3).await;
    assert_eq!(layer.highest_revision(), 7);
}

#[tokio::test]
async fn a_stale_serializable_read_is_sent_again_to_an_untried_member() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    seen(&mut svc, &mut handle, 10).await;

    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(range(true)));
    let (first, answer) = handle.next_request().await.unwrap();
    let tried = first
        .meta
        .tried
        .clone()
        .expect("the read records its endpoints");
    answer.send_response(range_at(4));
    assert_pending!(call.poll());

    let (second, answer) = handle.next_request().await.unwrap();
    assert_eq!(second.rpc(), Rpc::Range);
    // The same record travels with the resend: the transport skips what
    // the first attempt tried.
    let again = second.meta.tried.clone().unwrap();
    assert_eq!(format!("{tried:?}"), format!("{again:?}"));
    answer.send_response(range_at(12));
    let response = assert_ready_ok!(call.poll());
    assert_eq!(revision_of(response), 12);
    assert_eq!(layer.highest_revision(), 12);
}

#[tokio::test]
async fn an_answer_at_the_highest_revision_is_not_stale() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    seen(&mut svc, &mut handle, 10).await;
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(range(true)));
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_response(range_at(10));
    assert_eq!(revision_of(assert_ready_ok!(call.poll())), 10);
    assert!(handle.poll_request().is_pending(), "sent again");
}

#[tokio::test]
async fn the_floor_is_what_was_seen_when_the_read_was_sent() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    seen(&mut svc, &mut handle, 10).await;
    svc.ready().await.unwrap();
    let mut read = task::spawn(svc.call(range(true)));
    let (_, read_answer) = handle.next_request().await.unwrap();
    // A write answered meanwhile raises the highest revision to 20...
    seen(&mut svc, &mut handle, 20).await;
    // ...but the read, sent when 10 was the highest, may answer at 15.
    read_answer.send_response(range_at(15));
    assert_eq!(revision_of(assert_ready_ok!(read.poll())), 15);
    assert_eq!(layer.highest_revision(), 20);
}

#[tokio::test]
async fn linearizable_reads_and_writes_are_never_checked() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    seen(&mut svc, &mut handle, 10).await;
    // (A real member cannot answer them below 10; were one to, the answer
    // passes: only serializable reads are served from local state.)
    for (request, answer) in [
        (range(false), range_at(4)),
        (EtcdRequest::new(PutRequest::default()), put_at(4)),
    ] {
        svc.ready().await.unwrap();
        let mut call = task::spawn(svc.call(request));
        let (sent, reply) = handle.next_request().await.unwrap();
        assert!(
            sent.meta.tried.is_none(),
            "a record for a call never resent"
        );
        reply.send_response(answer);
        assert_ready_ok!(call.poll());
    }
    assert!(handle.poll_request().is_pending(), "sent again");
}

#[tokio::test]
async fn nothing_is_checked_before_a_revision_was_seen() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(range(true)));
    let (sent, answer) = handle.next_request().await.unwrap();
    assert!(sent.meta.tried.is_none());
    answer.send_response(range_at(3));
    assert_ready_ok!(call.poll());
    assert_eq!(layer.highest_revision(), 3);
}

#[tokio::test]
async fn the_retries_are_bounded() {
    let layer = OrderingLayer::new().on_violation(OnViolation::Retry { attempts: 2 });
    let (mut svc, mut handle) = ordering(&layer);
    seen(&mut svc, &mut handle, 10).await;
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(range(true)));
    for stale in [4, 5] {
        let (_, answer) = handle.next_request().await.unwrap();
        answer.send_response(range_at(stale));
        assert_pending!(call.poll());
    }
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_response(range_at(6));
    let error = assert_ready!(call.poll()).unwrap_err();
    assert!(handle.poll_request().is_pending(), "sent a fourth time");
    let stale = StaleRead::of(&error).expect("a StaleRead source");
    assert_eq!(
        (
            stale.rpc(),
            stale.revision(),
            stale.highest_seen(),
            stale.answers()
        ),
        (Rpc::Range, 6, 10, 3)
    );
    assert_eq!(error.kind(), &ErrorKind::StaleRead);
    assert_eq!(error.code(), Code::Aborted);
    assert_eq!(error.sent(), Sent::Rejected);
    assert_eq!(
        error.message(),
        "the serializable Range was answered at revision 6, behind revision 10 which this \
         client had already seen; all 3 answers were stale and were refused"
    );
}

#[tokio::test]
async fn under_the_error_policy_a_stale_answer_fails_at_once() {
    let layer = OrderingLayer::new().on_violation(OnViolation::Error);
    let (mut svc, mut handle) = ordering(&layer);
    seen(&mut svc, &mut handle, 10).await;
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(range(true)));
    let (sent, answer) = handle.next_request().await.unwrap();
    assert!(sent.meta.tried.is_none(), "no record without resends");
    answer.send_response(range_at(4));
    let error = assert_ready!(call.poll()).unwrap_err();
    assert!(handle.poll_request().is_pending(), "sent again");
    let stale = StaleRead::of(&error).unwrap();
    assert_eq!((stale.revision(), stale.answers()), (4, 1));
    assert!(
        error.to_string().starts_with(
            "a serializable read was answered from an older revision than one already seen; \
             refused by the server, not applied (gRPC Aborted: \
             the serializable Range was answered at revision 4, behind revision 10"
        ),
        "{error}"
    );
    // A stale answer does not lower the highest revision.
    assert_eq!(layer.highest_revision(), 10);
}

#[tokio::test]
async fn a_read_aimed_at_one_endpoint_is_not_sent_again() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    seen(&mut svc, &mut handle, 10).await;
    let mut request = range(true);
    request.meta.endpoint = Some(TargetEndpoint::new("127.0.0.1:2379").unwrap());
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(request));
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_response(range_at(4));
    let error = assert_ready!(call.poll()).unwrap_err();
    assert!(
        error.message().contains("aimed at that one endpoint"),
        "{error}"
    );
    assert!(handle.poll_request().is_pending(), "sent again");
}

#[tokio::test]
async fn a_resend_waits_for_the_inner_service_to_be_ready() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    seen(&mut svc, &mut handle, 10).await;
    handle.allow(1);
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(range(true)));
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_response(range_at(4));
    // The clone the resend goes to is not ready: nothing is sent.
    assert_pending!(call.poll());
    assert!(handle.poll_request().is_pending(), "sent before ready");
    handle.allow(1);
    assert!(call.is_woken());
    assert_pending!(call.poll());
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_response(range_at(11));
    assert_eq!(revision_of(assert_ready_ok!(call.poll())), 11);
}

#[tokio::test]
async fn a_txn_of_serializable_ranges_is_checked_and_any_other_is_not() {
    use request_op::Request as Op;
    let serializable = || {
        Op::RequestRange(RangeRequest {
            key: "k".into(),
            serializable: true,
            ..Default::default()
        })
    };
    let linearizable = || {
        Op::RequestRange(RangeRequest {
            key: "k".into(),
            ..Default::default()
        })
    };
    let put = || Op::RequestPut(PutRequest::default());
    let rows = [
        (vec![serializable(), serializable()], true),
        (vec![], true),
        (vec![serializable(), linearizable()], false),
        (vec![serializable(), put()], false),
        (vec![Op::RequestTxn(TxnRequest::default())], false),
    ];
    for (ops, checked) in rows {
        let layer = OrderingLayer::new().on_violation(OnViolation::Error);
        let (mut svc, mut handle) = ordering(&layer);
        seen(&mut svc, &mut handle, 10).await;
        svc.ready().await.unwrap();
        let mut call = task::spawn(svc.call(txn(ops.clone())));
        let (_, answer) = handle.next_request().await.unwrap();
        answer.send_response(txn_at(4));
        let result = assert_ready!(call.poll());
        assert_eq!(result.is_err(), checked, "{ops:?}");
    }
    // The failure branch counts too.
    let mut request = txn(vec![serializable()]);
    if let RequestBody::Txn(t) = &mut request.body {
        t.failure.push(RequestOp {
            request: Some(put()),
        });
    }
    assert!(!serializable::is_serializable_read(&request.body));
}

#[tokio::test]
async fn clones_and_services_of_one_layer_share_the_highest_revision() {
    let layer = OrderingLayer::new();
    let (mut first, mut first_handle) = ordering(&layer);
    let (second, _second_handle) = ordering(&layer);
    let clone = first.clone();
    seen(&mut first, &mut first_handle, 42).await;
    assert_eq!(second.highest_revision(), 42);
    assert_eq!(clone.highest_revision(), 42);
    assert_eq!(
        layer
            .clone()
            .on_violation(OnViolation::Error)
            .highest_revision(),
        42
    );
    // A service made on its own has its own.
    let (mock, _handle) = mock::pair::<EtcdRequest, EtcdResponse>();
    assert_eq!(Ordering::new(mock).highest_revision(), 0);
}

#[tokio::test]
async fn inner_errors_pass_through() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    seen(&mut svc, &mut handle, 10).await;
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(range(true)));
    let (_, answer) = handle.next_request().await.unwrap();
    answer.send_error(EtcdError::new(
        ErrorKind::NoLeader,
        Code::Unavailable,
        "etcdserver: no leader",
        Sent::Rejected,
    ));
    let error = assert_ready!(call.poll()).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::NoLeader);
    assert!(StaleRead::of(&error).is_none());
}

#[tokio::test]
async fn watch_messages_raise_the_highest_revision() {
    let layer = OrderingLayer::new();
    let (mut svc, mut handle) = ordering(&layer);
    svc.ready().await.unwrap();
    let outbound: etcd_tower_core::RequestStream<WatchRequest> =
        Box::pin(futures_util::stream::pending());
    let mut call = task::spawn(svc.call(EtcdRequest::new(RequestBody::Watch(outbound))));
    let (_, answer) = handle.next_request().await.unwrap();
    let messages = futures_util::stream::iter([Ok(WatchResponse {
        header: header(33),
        created: true,
        ..Default::default()
    })]);
    answer.send_response(EtcdResponse::new(ResponseBody::Watch(Box::pin(messages))));
    let response = assert_ready_ok!(call.poll());
    let ResponseBody::Watch(mut stream) = response.body else {
        panic!("not a watch");
    };
    assert_eq!(
        layer.highest_revision(),
        0,
        "raised before the message was read"
    );
    assert!(stream.next().await.unwrap().unwrap().created);
    assert_eq!(layer.highest_revision(), 33);
}
