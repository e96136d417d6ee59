//! The client code the integration tests run under different recorders:
//! it knows nothing of which recorder is installed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{
    watch_request::RequestUnion, LeaseRevokeRequest, PutRequest, RangeRequest, WatchCreateRequest,
    WatchRequest,
};
use etcd_tower_core::{ErrorKind, EtcdRequest, RequestBody, ResponseBody, Transport};
use etcd_tower_metrics::MetricsLayer;
use futures_util::StreamExt;
use tower::{ServiceBuilder, ServiceExt};

/// Fails the test if `test` takes longer than `secs` seconds.
pub async fn bounded<T>(secs: u64, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"))
}

/// What the workload saw on its watch stream.
#[derive(Debug)]
pub struct Seen {
    /// Messages received on the watch stream (the created one included).
    pub watch_messages: u64,
    /// Events received.
    pub watch_events: u64,
}

/// Through `Transport` + `MetricsLayer`: opens a watch on `w/`, then 5 puts
/// (4 under `w/`), 3 ranges, 1 range with an empty key (refused before
/// sending), 1 revoke of a lease that does not exist; reads the watch until
/// its 4 events arrived and drops it.
pub async fn workload(endpoints: &[String], prefix: &str) -> Seen {
    let transport = Transport::connect_lazy(endpoints).unwrap();
    let client = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .service(transport);
    let key = |k: &str| format!("{prefix}{k}");

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<WatchRequest>();
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key("w/").into(),
            range_end: key("w0").into(),
            ..Default::default()
        })),
    })
    .unwrap();
    let response = client
        .clone()
        .oneshot(EtcdRequest::new(RequestBody::Watch(Box::pin(outbound))))
        .await
        .unwrap();
    let ResponseBody::Watch(mut watch) = response.body else {
        panic!("not a watch stream")
    };
    let created = watch.next().await.unwrap().unwrap();
    assert!(created.created);
    let mut seen = Seen {
        watch_messages: 1,
        watch_events: 0,
    };

    for k in ["w/1", "w/2", "other", "w/3", "w/4"] {
        let put = PutRequest {
            key: key(k).into(),
            value: "v".into(),
            ..Default::default()
        };
        client.clone().oneshot(EtcdRequest::new(put)).await.unwrap();
    }
    for k in ["w/1", "other", "missing"] {
        let range = RangeRequest {
            key: key(k).into(),
            ..Default::default()
        };
        client
            .clone()
            .oneshot(EtcdRequest::new(range))
            .await
            .unwrap();
    }
    let empty = client
        .clone()
        .oneshot(EtcdRequest::new(RangeRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(empty.kind(), &ErrorKind::EmptyKey);
    let revoke = client
        .clone()
        .oneshot(EtcdRequest::new(LeaseRevokeRequest { id: 0x5eed }))
        .await
        .unwrap_err();
    assert_eq!(revoke.kind(), &ErrorKind::LeaseNotFound);

    while seen.watch_events < 4 {
        let message = watch.next().await.unwrap().unwrap();
        seen.watch_messages += 1;
        seen.watch_events += message.events.len() as u64;
    }
    assert_eq!(seen.watch_events, 4);
    drop(watch);
    drop(tx);
    seen
}
