//! Building clients: the builder's layers and `from_service`, against etcd
//! 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower::{Client, ErrorKind, GetOptions, Sent, Transport};
use etcd_tower_namespace::NamespaceLayer;
use support::each_version;
use tower::ServiceBuilder;

fn assert_shareable<T: Clone + Send + Sync + 'static>() {}

#[test]
fn the_client_is_cheap_to_share() {
    assert_shareable::<Client>();
}

#[tokio::test]
async fn builder_layers_apply() {
    each_version(60, |bin| async move {
        let cluster = etcd_tower_testkit::Cluster::start(&bin).await.unwrap();
        let raw = Client::connect(cluster.endpoints()).await.unwrap();
        let tenant = Client::builder(cluster.endpoints())
            .namespace("tenant/")
            .timeout(Duration::from_secs(5))
            .metrics(true)
            .require_leader(true)
            .max_send_size(64 * 1024)
            .connect_timeout(Duration::from_secs(1))
            .keepalive(Duration::from_secs(5), Duration::from_secs(2))
            .connect()
            .await
            .unwrap();

        tenant.put("k", "v").await.unwrap();
        assert_eq!(raw.get("tenant/k").await.unwrap().kvs()[0].value(), b"v");
        let mine = tenant
            .get_with("k", GetOptions::new().prefix())
            .await
            .unwrap();
        assert_eq!(mine.kvs()[0].key(), b"k", "the prefix is stripped");
        raw.put("outside", "x").await.unwrap();
        let everything = tenant
            .get_with("\0", GetOptions::new().from_key())
            .await
            .unwrap();
        assert_eq!(everything.kvs().len(), 1, "the tenant sees only its keys");

        let e = tenant.put("big", vec![0u8; 100 * 1024]).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::RequestTooLarge);
        assert_eq!(e.sent(), Sent::NotSent);

        // The same namespace, stacked by hand.
        let transport = Transport::builder(cluster.endpoints()).build().unwrap();
        let custom = Client::from_service(
            ServiceBuilder::new()
                .layer(NamespaceLayer::new("tenant/"))
                .service(transport),
        );
        assert_eq!(custom.get("k").await.unwrap().kvs()[0].value(), b"v");
        let cloned = custom.clone();
        tokio::spawn(async move { cloned.put("k", "w").await.unwrap() })
            .await
            .unwrap();
        assert_eq!(tenant.get("k").await.unwrap().kvs()[0].value(), b"w");
    })
    .await;
}
