//! Unit tests: exact series, labels and values recorded for unary calls,
//! failures, dropped calls and streams, with `metrics-util`'s
//! `DebuggingRecorder` installed for the test's thread only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, SnapshotRequest, SnapshotResponse, WatchRequest, WatchResponse,
};
use etcd_tower_core::proto::mvccpb;
use etcd_tower_core::proto::v3electionpb::{LeaderRequest, LeaderResponse};
use etcd_tower_core::{
    Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody,
    ResponseStream,
};
use futures_util::{stream, StreamExt};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{service_fn, Layer, Service, ServiceExt};

use crate::MetricsLayer;

/// One series: name and labels in `k=v,k=v` form (sorted), as text.
type Series = (String, String);

/// Takes a snapshot (which drains the recorder) as a sorted map.
fn snapshot(snapshotter: &Snapshotter) -> BTreeMap<Series, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            ((key.name().to_owned(), labels.join(",")), value)
        })
        .collect()
}

fn series(name: &str, labels: &str) -> Series {
    (name.to_owned(), labels.to_owned())
}

/// The non-zero counters and non-zero gauges, and the sample counts of
/// histograms (their values are timings).
fn observed(map: &BTreeMap<Series, DebugValue>) -> BTreeMap<Series, String> {
    map.iter()
        .filter_map(|(k, v)| {
            let shown = match v {
                DebugValue::Counter(0) => return None,
                DebugValue::Counter(n) => format!("counter {n}"),
                DebugValue::Gauge(g) if g.0 == 0.0 => return None,
                DebugValue::Gauge(g) => format!("gauge {}", g.0),
                DebugValue::Histogram(samples) => format!("histogram {} samples", samples.len()),
            };
            Some((k.clone(), shown))
        })
        .collect()
}

fn expect(entries: &[(&str, &str, &str)]) -> BTreeMap<Series, String> {
    entries
        .iter()
        .map(|(name, labels, value)| (series(name, labels), (*value).to_owned()))
        .collect()
}

const KV_PUT: &str = "rpc=Put,service=etcdserverpb.KV";
const KV_RANGE: &str = "rpc=Range,service=etcdserverpb.KV";

fn put(key: &'static str) -> EtcdRequest {
    EtcdRequest::new(PutRequest {
        key: Bytes::from_static(key.as_bytes()),
        value: Bytes::from_static(b"v"),
        ..Default::default()
    })
}

fn range(key: &'static str) -> EtcdRequest {
    EtcdRequest::new(RangeRequest {
        key: Bytes::from_static(key.as_bytes()),
        ..Default::default()
    })
}

/// Answers unary calls: `fail/<case>` keys fail as etcd would, any other
/// key succeeds.
async fn unary(request: EtcdRequest) -> Result<EtcdResponse, EtcdError> {
    let key = match &request.body {
        RequestBody::Put(p) => p.key.clone(),
        RequestBody::Range(r) => r.key.clone(),
        _ => Bytes::new(),
    };
    let status =
        |code, message: &str| Err(EtcdError::from_status(tonic::Status::new(code, message)));
    match &key[..] {
        b"fail/no-leader" => status(Code::Unavailable, "etcdserver: no leader"),
        b"fail/token" => status(Code::Unauthenticated, "etcdserver: invalid auth token"),
        b"fail/compacted" => status(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        b"fail/unknown" => status(Code::Unknown, "something odd"),
        b"" => Err(EtcdError::client(
            ErrorKind::EmptyKey,
            "range: the key is empty",
        )),
        _ => Ok(EtcdResponse::new(match request.body {
            RequestBody::Put(_) => ResponseBody::Put(PutResponse::default()),
            _ => ResponseBody::Range(RangeResponse::default()),
        })),
    }
}

#[tokio::test]
async fn successful_calls_count_by_rpc_with_latency() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let client = MetricsLayer::new().layer(service_fn(unary));
    for key in ["a", "b", "c"] {
        client.clone().oneshot(put(key)).await.unwrap();
    }
    client.clone().oneshot(range("a")).await.unwrap();

    let all = snapshot(&snapshotter);
    assert_eq!(
        observed(&all),
        expect(&[
            ("etcd_client_requests_started_total", KV_PUT, "counter 3"),
            ("etcd_client_requests_started_total", KV_RANGE, "counter 1"),
            (
                "etcd_client_requests_total",
                "code=OK,kind=None,rpc=Put,service=etcdserverpb.KV",
                "counter 3"
            ),
            (
                "etcd_client_requests_total",
                "code=OK,kind=None,rpc=Range,service=etcdserverpb.KV",
                "counter 1"
            ),
            (
                "etcd_client_request_duration_seconds",
                KV_PUT,
                "histogram 3 samples"
            ),
            (
                "etcd_client_request_duration_seconds",
                KV_RANGE,
                "histogram 1 samples"
            ),
        ])
    );
    // In flight: up and down again (a gauge at zero).
    assert_eq!(
        all[&series("etcd_client_requests_in_flight", KV_PUT)],
        DebugValue::Gauge(0.0.into())
    );
    // Latencies are non-negative seconds, far below a second here.
    let DebugValue::Histogram(samples) =
        &all[&series("etcd_client_request_duration_seconds", KV_PUT)]
    else {
        panic!("not a histogram")
    };
    assert!(
        samples.iter().all(|s| s.0 >= 0.0 && s.0 < 1.0),
        "{samples:?}"
    );
    // Unary RPCs register no stream series.
    assert!(
        all.keys().all(|(name, _)| !name.contains("stream")),
        "{all:?}"
    );
}

#[tokio::test]
async fn failures_count_by_grpc_code_and_etcd_kind() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let client = MetricsLayer::new().layer(service_fn(unary));
    for key in [
        "fail/no-leader",
        "fail/no-leader",
        "fail/token",
        "fail/compacted",
        "fail/unknown",
        "",
        "ok",
    ] {
        let result = client.clone().oneshot(range(key)).await;
        assert_eq!(result.is_ok(), key == "ok", "{key}");
    }

    let total = |labels: &str| {
        (
            "etcd_client_requests_total",
            labels.to_owned() + ",rpc=Range,service=etcdserverpb.KV",
        )
    };
    let all = observed(&snapshot(&snapshotter));
    let outcomes: BTreeMap<_, _> = all
        .iter()
        .filter(|((name, _), _)| name == "etcd_client_requests_total")
        .collect();
    let want = [
        (total("code=Unavailable,kind=NoLeader"), "counter 2"),
        (
            total("code=Unauthenticated,kind=InvalidAuthToken"),
            "counter 1",
        ),
        (total("code=OutOfRange,kind=Compacted"), "counter 1"),
        (total("code=Unknown,kind=Other"), "counter 1"),
        (total("code=InvalidArgument,kind=EmptyKey"), "counter 1"),
        (total("code=OK,kind=None"), "counter 1"),
    ];
    let want: BTreeMap<_, _> = want
        .iter()
        .map(|((n, l), v)| (series(n, l), (*v).to_owned()))
        .collect();
    assert_eq!(outcomes, want.iter().collect());
    assert_eq!(
        all[&series("etcd_client_requests_started_total", KV_RANGE)],
        "counter 7"
    );
    // Every call has a latency, failed or not.
    assert_eq!(
        all[&series("etcd_client_request_duration_seconds", KV_RANGE)],
        "histogram 7 samples"
    );
}

#[tokio::test]
async fn a_dropped_call_leaves_in_flight_and_counts_as_canceled() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let (mock, mut handle) = tower_test::mock::pair::<EtcdRequest, EtcdResponse>();
    let mock = mock.map_err(|e| EtcdError::client(ErrorKind::Closed, e.to_string()));
    let mut client = MetricsLayer::new().layer(mock);
    handle.allow(1);
    let call = client.ready().await.unwrap().call(put("slow"));
    let _request = handle.next_request().await.unwrap();

    // While the call waits: one in flight, started, not finished.
    let during = snapshot(&snapshotter);
    assert_eq!(
        during[&series("etcd_client_requests_in_flight", KV_PUT)],
        DebugValue::Gauge(1.0.into())
    );
    assert_eq!(
        during[&series("etcd_client_requests_started_total", KV_PUT)],
        DebugValue::Counter(1)
    );
    assert!(!observed(&during).contains_key(&series(
        "etcd_client_requests_total",
        "code=Canceled,kind=Canceled,rpc=Put,service=etcdserverpb.KV"
    )));

    // A timeout above the layer gives up on it.
    assert!(tokio::time::timeout(Duration::from_millis(1), call)
        .await
        .is_err());

    let after = snapshot(&snapshotter);
    // The snapshot drained the gauge at 1; leaving subtracts that 1.
    assert_eq!(
        after[&series("etcd_client_requests_in_flight", KV_PUT)],
        DebugValue::Gauge((-1.0).into())
    );
    assert_eq!(
        observed(&after)
            .into_iter()
            .filter(|((name, _), _)| name != "etcd_client_requests_in_flight")
            .collect::<BTreeMap<_, _>>(),
        expect(&[
            (
                "etcd_client_requests_total",
                "code=Canceled,kind=Canceled,rpc=Put,service=etcdserverpb.KV",
                "counter 1"
            ),
            (
                "etcd_client_request_duration_seconds",
                KV_PUT,
                "histogram 1 samples"
            ),
        ])
    );
}

#[tokio::test]
async fn a_finished_call_is_counted_once_not_also_as_dropped() {
    // Polling a finished future again must not count twice: the guard
    // records once.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let client = MetricsLayer::new().layer(service_fn(unary));
    let future = client.oneshot(range("fail/no-leader"));
    assert!(future.await.is_err());
    let all = observed(&snapshot(&snapshotter));
    assert_eq!(
        all[&series(
            "etcd_client_requests_total",
            "code=Unavailable,kind=NoLeader,rpc=Range,service=etcdserverpb.KV"
        )],
        "counter 1"
    );
    assert!(!all.contains_key(&series(
        "etcd_client_requests_total",
        "code=Canceled,kind=Canceled,rpc=Range,service=etcdserverpb.KV"
    )));
}

fn watch_response(events: usize) -> WatchResponse {
    WatchResponse {
        events: (0..events)
            .map(|i| mvccpb::Event {
                kv: Some(mvccpb::KeyValue {
                    key: format!("w/{i}").into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A fake server for streaming RPCs: drains the outbound stream (so every
/// message is "sent"), then answers with canned messages.
async fn streams(request: EtcdRequest) -> Result<EtcdResponse, EtcdError> {
    fn boxed<T: Send + 'static>(items: Vec<Result<T, EtcdError>>) -> ResponseStream<T> {
        Box::pin(stream::iter(items))
    }
    let body = match request.body {
        RequestBody::Watch(outbound) => {
            let sent = outbound.count().await;
            assert_eq!(sent, 3);
            // created, then 3 + 1 events, then the server ends the stream.
            ResponseBody::Watch(boxed(vec![
                Ok(WatchResponse {
                    created: true,
                    ..Default::default()
                }),
                Ok(watch_response(3)),
                Ok(watch_response(1)),
            ]))
        }
        RequestBody::LeaseKeepAlive(outbound) => {
            let sent = outbound.count().await;
            // One answer per keep-alive, then the connection breaks.
            let mut items: Vec<_> = (0..sent)
                .map(|_| Ok(LeaseKeepAliveResponse::default()))
                .collect();
            items.push(Err(EtcdError::from_status(tonic::Status::new(
                Code::Unavailable,
                "etcdserver: server stopped",
            ))));
            ResponseBody::LeaseKeepAlive(boxed(items))
        }
        RequestBody::Snapshot(_) => ResponseBody::Snapshot(boxed(
            (0..5).map(|_| Ok(SnapshotResponse::default())).collect(),
        )),
        RequestBody::Observe(_) => ResponseBody::Observe(Box::pin(
            stream::iter([Ok(LeaderResponse::default())]).chain(stream::pending()),
        )),
        _ => return Err(EtcdError::client(ErrorKind::InvalidRequest, "not a stream")),
    };
    Ok(EtcdResponse::new(body))
}

const WATCH: &str = "rpc=Watch,service=etcdserverpb.Watch";
const KEEPALIVE: &str = "rpc=LeaseKeepAlive,service=etcdserverpb.Lease";
const SNAPSHOT: &str = "rpc=Snapshot,service=etcdserverpb.Maintenance";
const OBSERVE: &str = "rpc=Observe,service=v3electionpb.Election";

#[tokio::test]
async fn stream_messages_are_counted_both_ways_with_watch_events() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let client = MetricsLayer::new().layer(service_fn(streams));

    // Watch: 3 requests out; created + 2 event messages in; server ends it.
    let outbound = stream::iter((0..3).map(|_| WatchRequest::default()));
    let response = client
        .clone()
        .oneshot(EtcdRequest::new(RequestBody::Watch(Box::pin(outbound))))
        .await
        .unwrap();
    let ResponseBody::Watch(inbound) = response.body else {
        panic!("not a watch")
    };
    assert_eq!(inbound.collect::<Vec<_>>().await.len(), 3);

    // LeaseKeepAlive: 2 out, 2 in, then an error ends it.
    let outbound = stream::iter([
        LeaseKeepAliveRequest { id: 7 },
        LeaseKeepAliveRequest { id: 7 },
    ]);
    let response = client
        .clone()
        .oneshot(EtcdRequest::new(RequestBody::LeaseKeepAlive(Box::pin(
            outbound,
        ))))
        .await
        .unwrap();
    let ResponseBody::LeaseKeepAlive(inbound) = response.body else {
        panic!("not a keep-alive")
    };
    let items = inbound.collect::<Vec<_>>().await;
    assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 2);

    // Snapshot: one request; the client reads 2 of 5 messages and drops it.
    let response = client
        .clone()
        .oneshot(EtcdRequest::new(RequestBody::Snapshot(SnapshotRequest {})))
        .await
        .unwrap();
    let ResponseBody::Snapshot(inbound) = response.body else {
        panic!("not a snapshot")
    };
    assert_eq!(inbound.take(2).count().await, 2);

    // Observe: one request, one message, still open.
    let response = client
        .clone()
        .oneshot(EtcdRequest::new(RequestBody::Observe(LeaderRequest {
            name: "e".into(),
        })))
        .await
        .unwrap();
    let ResponseBody::Observe(mut observe) = response.body else {
        panic!("not an observe")
    };
    assert!(observe.next().await.unwrap().is_ok());

    let closed = |outcome: &str, rpc: &str| {
        (
            "etcd_client_streams_closed_total",
            format!("{outcome},{rpc}"),
        )
    };
    let ok = |rpc: &str| {
        (
            "etcd_client_requests_total",
            format!("code=OK,kind=None,{rpc}"),
        )
    };
    let mut want: BTreeMap<Series, String> = BTreeMap::new();
    let mut entry = |(name, labels): (&str, String), value: &str| {
        want.insert(series(name, &labels), value.to_owned());
    };
    for rpc in [WATCH, KEEPALIVE, SNAPSHOT, OBSERVE] {
        entry(
            ("etcd_client_requests_started_total", rpc.into()),
            "counter 1",
        );
        entry(ok(rpc), "counter 1");
        entry(
            ("etcd_client_request_duration_seconds", rpc.into()),
            "histogram 1 samples",
        );
    }
    entry(
        ("etcd_client_stream_messages_sent_total", WATCH.into()),
        "counter 3",
    );
    entry(
        ("etcd_client_stream_messages_received_total", WATCH.into()),
        "counter 3",
    );
    entry(
        ("etcd_client_watch_events_received_total", String::new()),
        "counter 4",
    );
    entry(closed("code=OK,kind=None", WATCH), "counter 1");
    entry(
        ("etcd_client_stream_messages_sent_total", KEEPALIVE.into()),
        "counter 2",
    );
    entry(
        (
            "etcd_client_stream_messages_received_total",
            KEEPALIVE.into(),
        ),
        "counter 2",
    );
    entry(
        closed("code=Unavailable,kind=Stopped", KEEPALIVE),
        "counter 1",
    );
    entry(
        ("etcd_client_stream_messages_sent_total", SNAPSHOT.into()),
        "counter 1",
    );
    entry(
        (
            "etcd_client_stream_messages_received_total",
            SNAPSHOT.into(),
        ),
        "counter 2",
    );
    entry(closed("code=Canceled,kind=Canceled", SNAPSHOT), "counter 1");
    entry(
        ("etcd_client_stream_messages_sent_total", OBSERVE.into()),
        "counter 1",
    );
    entry(
        ("etcd_client_stream_messages_received_total", OBSERVE.into()),
        "counter 1",
    );
    // Only Observe is still open.
    entry(("etcd_client_streams_open", OBSERVE.into()), "gauge 1");

    let all = snapshot(&snapshotter);
    assert_eq!(observed(&all), want);
    // The others went up and down again; nothing is left in flight.
    for rpc in [WATCH, KEEPALIVE, SNAPSHOT] {
        assert_eq!(
            all[&series("etcd_client_streams_open", rpc)],
            DebugValue::Gauge(0.0.into()),
            "{rpc}"
        );
    }
    for rpc in [WATCH, KEEPALIVE, SNAPSHOT, OBSERVE] {
        assert_eq!(
            all[&series("etcd_client_requests_in_flight", rpc)],
            DebugValue::Gauge(0.0.into()),
            "{rpc}"
        );
    }

    // Dropping the open Observe stream closes it as Canceled.
    drop(observe);
    let after = observed(&snapshot(&snapshotter));
    assert_eq!(
        after.get(&series(
            "etcd_client_streams_closed_total",
            &format!("code=Canceled,kind=Canceled,{OBSERVE}")
        )),
        Some(&"counter 1".to_owned())
    );
    assert_eq!(
        after.get(&series("etcd_client_streams_open", OBSERVE)),
        Some(&"gauge -1".to_owned()),
        "the snapshot drained the gauge at 1; closing subtracts it"
    );
}

#[tokio::test]
async fn a_failed_stream_open_counts_as_a_failed_call() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let refuse = service_fn(|_: EtcdRequest| async {
        Err::<EtcdResponse, _>(EtcdError::from_status(tonic::Status::new(
            Code::PermissionDenied,
            "etcdserver: permission denied",
        )))
    });
    let client = MetricsLayer::new().layer(refuse);
    let outbound = stream::iter([WatchRequest::default()]);
    let result = client
        .oneshot(EtcdRequest::new(RequestBody::Watch(Box::pin(outbound))))
        .await;
    assert_eq!(result.unwrap_err().kind(), &ErrorKind::PermissionDenied);

    let all = snapshot(&snapshotter);
    assert_eq!(
        observed(&all),
        expect(&[
            ("etcd_client_requests_started_total", WATCH, "counter 1"),
            (
                "etcd_client_requests_total",
                "code=PermissionDenied,kind=PermissionDenied,rpc=Watch,service=etcdserverpb.Watch",
                "counter 1"
            ),
            (
                "etcd_client_request_duration_seconds",
                WATCH,
                "histogram 1 samples"
            ),
        ])
    );
}

#[tokio::test]
async fn layers_resolve_handles_once_and_share_them_across_clones() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let layer = MetricsLayer::new();
    let a = layer.layer(service_fn(unary));
    let b = layer.layer(service_fn(unary));
    a.clone().oneshot(put("x")).await.unwrap();
    b.oneshot(put("y")).await.unwrap();
    a.oneshot(put("z")).await.unwrap();
    let all = observed(&snapshot(&snapshotter));
    assert_eq!(
        all[&series("etcd_client_requests_started_total", KV_PUT)],
        "counter 3"
    );
}

#[test]
fn without_a_recorder_nothing_is_recorded_and_calls_work() {
    // No recorder on this thread (tests never install a global one): the
    // handles are no-ops.
    let client = MetricsLayer::new().layer(service_fn(unary));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        client.clone().oneshot(put("a")).await.unwrap();
        assert!(client.oneshot(range("")).await.is_err());
    });
}

#[test]
fn descriptions_reach_the_recorder_with_units() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        crate::describe();
        metrics::histogram!("etcd_client_request_duration_seconds").record(0.5);
        metrics::counter!("etcd_client_requests_total").increment(1);
    });
    let described: BTreeMap<String, (Option<metrics::Unit>, Option<String>)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, description, _)| {
            (
                key.key().name().to_owned(),
                (unit, description.map(|d| d.to_string())),
            )
        })
        .collect();
    let (unit, help) = &described["etcd_client_request_duration_seconds"];
    assert_eq!(unit, &Some(metrics::Unit::Seconds));
    assert!(help.as_deref().unwrap_or_default().contains("latency"));
    assert!(described["etcd_client_requests_total"].1.is_some());
}

#[test]
fn futures_and_services_over_the_transport_are_send_and_sync() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<crate::ResponseFuture<etcd_tower_core::transport::ResponseFuture>>();
    send_sync::<crate::Metrics<etcd_tower_core::Transport>>();
    send_sync::<MetricsLayer>();
}
