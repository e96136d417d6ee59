//! Deadlines against a real, frozen (SIGSTOP) etcd member: unary calls
//! and the first message of a watch stream time out; a stream that got its
//! first message in time then runs past the deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{
    watch_request, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest,
};
use etcd_tower_core::{ErrorKind, EtcdRequest, RequestBody, ResponseBody, Sent, Transport};
use etcd_tower_testkit::{binaries, Cluster};
use etcd_tower_timeout::{CallTimeout, TimeoutLayer};
use futures_util::StreamExt;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

const DEADLINE: Duration = Duration::from_millis(300);

fn range() -> EtcdRequest {
    EtcdRequest::new(RangeRequest {
        key: "k".into(),
        ..Default::default()
    })
}

/// A watch on `key` whose create request is sent as soon as it opens; the
/// sender is returned so that the outbound stream stays open.
fn watch(
    key: &str,
) -> (
    EtcdRequest,
    tokio::sync::mpsc::UnboundedSender<WatchRequest>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: key.to_owned().into(),
                watch_id: 1,
                ..Default::default()
            },
        )),
    })
    .unwrap();
    let outbound = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (EtcdRequest::new(RequestBody::Watch(Box::pin(outbound))), tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_against_a_frozen_member() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(Duration::from_secs(60), async {
            let cluster = Cluster::builder(&bin).start().await.unwrap();
            let transport = Transport::builder(cluster.endpoints()).build().unwrap();
            let client = ServiceBuilder::new()
                .layer(TimeoutLayer::new(DEADLINE))
                .service(transport);
            client.clone().oneshot(range()).await.unwrap();

            // A stream that answers in time runs on past the deadline.
            let (request, _keep_open) = watch("watched");
            let response = client.clone().oneshot(request).await.unwrap();
            let ResponseBody::Watch(mut events) = response.body else {
                panic!("{label}: not a watch response");
            };
            assert!(events.next().await.unwrap().unwrap().created, "{label}");
            tokio::time::sleep(DEADLINE * 2).await;
            let put = PutRequest {
                key: "watched".into(),
                value: "late".into(),
                ..Default::default()
            };
            client.clone().oneshot(EtcdRequest::new(put)).await.unwrap();
            let late = events.next().await.unwrap().unwrap();
            assert_eq!(late.events[0].kv.as_ref().unwrap().value, "late", "{label}");

            // Frozen: a unary call times out at its deadline.
            cluster.member(0).stop().unwrap();
            let started = Instant::now();
            let error = client.clone().oneshot(range()).await.unwrap_err();
            let took = started.elapsed();
            assert_eq!(error.kind(), &ErrorKind::Timeout, "{label}: {error}");
            assert_eq!(error.sent(), Sent::MayHaveBeenApplied, "{label}: {error}");
            assert!(took >= DEADLINE && took < DEADLINE * 3, "{label}: {took:?}");

            // ... so does a per-call deadline.
            let mut short = range();
            short
                .meta
                .extensions
                .insert(CallTimeout(Duration::from_millis(50)));
            let started = Instant::now();
            let error = client.clone().oneshot(short).await.unwrap_err();
            assert_eq!(error.kind(), &ErrorKind::Timeout, "{label}: {error}");
            assert!(started.elapsed() < DEADLINE, "{label}");

            // A new watch: the deadline covers opening and the first
            // message. Whichever stage it reaches, it ends in a timeout.
            let (request, _keep_open) = watch("watched");
            let started = Instant::now();
            let error = match client.clone().oneshot(request).await {
                Err(error) => error,
                Ok(response) => match response.body {
                    ResponseBody::Watch(mut events) => {
                        let error = events.next().await.unwrap().unwrap_err();
                        assert!(events.next().await.is_none(), "{label}");
                        error
                    }
                    other => panic!("{label}: {other:?}"),
                },
            };
            assert_eq!(error.kind(), &ErrorKind::Timeout, "{label}: {error}");
            assert!(error.message().contains("Watch"), "{label}: {error}");
            assert!(started.elapsed() < DEADLINE * 3, "{label}");

            // The stream opened before the freeze is still there once the
            // member thaws.
            cluster.member(0).cont().unwrap();
            let put = PutRequest {
                key: "watched".into(),
                value: "thawed".into(),
                ..Default::default()
            };
            let mut put = EtcdRequest::new(put);
            put.meta
                .extensions
                .insert(CallTimeout(Duration::from_secs(10)));
            client.clone().oneshot(put).await.unwrap();
            let thawed = events.next().await.unwrap().unwrap();
            assert_eq!(
                thawed.events[0].kv.as_ref().unwrap().value,
                "thawed",
                "{label}"
            );
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: the test took over 60 s"));
    }
}
