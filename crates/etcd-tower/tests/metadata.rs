//! Metadata (extra gRPC headers) set on the builder and on a handle's
//! call options reaches the server on every call, after what the request
//! carries, and etcd accepts it on calls and watch streams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower::proto::etcdserverpb as pb;
use etcd_tower::watch::WatchOptions;
use etcd_tower::{CallOptions, Client, ErrorKind, Metadata, StreamExt};
use etcd_tower_testkit::{Answer, MisbehavingServer};
use prost::Message;
use support::each_version;

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    let mut metadata = Metadata::new();
    for (name, value) in pairs {
        metadata.insert(name, value).unwrap();
    }
    metadata
}

#[tokio::test]
async fn the_builders_and_the_handles_metadata_reach_the_server() {
    let server = MisbehavingServer::start().await.unwrap();
    let range = pb::RangeResponse::default().encode_to_vec();
    server.answer(
        "/etcdserverpb.KV/Range",
        Answer::Messages(vec![range.into()]),
    );
    let client = Client::builder([server.endpoint()])
        .metadata(metadata(&[("x-tenant", "blue")]))
        .require_leader(true)
        .no_retry()
        .build()
        .unwrap();
    let traced = client.with_options(CallOptions::new().metadata(metadata(&[
        ("traceparent", "00-ab-cd-01"),
        ("x-tenant", "green"),
    ])));
    client.get("k").await.unwrap();
    traced.get("k").await.unwrap();

    let received = server.received();
    assert_eq!(received.len(), 2);
    let plain = &received[0].headers;
    assert_eq!(
        plain.get_all("x-tenant").iter().collect::<Vec<_>>(),
        ["blue"]
    );
    assert!(plain.get("traceparent").is_none());
    assert_eq!(plain["hasleader"], "true", "require-leader is kept");
    let handle = &received[1].headers;
    assert_eq!(
        handle.get_all("x-tenant").iter().collect::<Vec<_>>(),
        ["green", "blue"],
        "the handle's before the builder's"
    );
    assert_eq!(handle["traceparent"], "00-ab-cd-01");
}

#[tokio::test]
async fn a_reserved_name_is_refused_before_anything_is_built() {
    let mut metadata = Metadata::new();
    let e = metadata.insert("authorization", "Bearer x").unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InvalidMetadata, "{e}");
    assert!(e.to_string().contains("authorization"), "{e}");
    assert!(metadata.is_empty());
}

#[tokio::test]
async fn etcd_accepts_metadata_on_calls_and_watch_streams() {
    each_version(30, |bin| async move {
        let cluster = etcd_tower_testkit::Cluster::start(&bin).await.unwrap();
        let client = Client::builder(cluster.endpoints())
            .metadata(metadata(&[("x-tenant", "blue")]))
            .connect()
            .await
            .unwrap();
        let mut watcher = client
            .watch("m/", WatchOptions::new().prefix())
            .await
            .unwrap();
        client
            .with_options(CallOptions::new().metadata(metadata(&[("x-call", "1")])))
            .put("m/1", "v")
            .await
            .unwrap();
        let batch = tokio::time::timeout(Duration::from_secs(10), watcher.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(batch.events()[0].key(), b"m/1");
    })
    .await;
}
