//! Certificate (CN) authentication over TLS, with no token and no
//! `AuthLayer`, on etcd 3.5.1 and 3.4.23.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower_auth::AuthLayer;
use etcd_tower_core::{ErrorKind, TlsOptions, Transport};
use etcd_tower_testkit::{binaries, Cluster};
use support::{bounded, get, put, CountingLayer, Counts};
use tower::ServiceBuilder;

#[tokio::test]
async fn a_client_certificate_is_the_user() {
    bounded(180, async {
        for bin in binaries() {
            let label = bin.label();
            let mut cluster = Cluster::builder(&bin).tls().start().await.unwrap();
            cluster.enable_auth("s3cret").await.unwrap();
            support::add_user(&cluster, "alice", "unused-pw", "alice/").await;
            cluster.etcdctl(&["put", "bob/k", "b"]).await.unwrap();

            let tls = cluster.tls().unwrap();
            let alice = tls.issue_client_cert("alice").await.unwrap();
            let options = TlsOptions::new()
                .ca_certificate(std::fs::read(tls.ca()).unwrap())
                .identity(
                    std::fs::read(alice.cert()).unwrap(),
                    std::fs::read(alice.key()).unwrap(),
                );
            let transport = Transport::builder(cluster.endpoints())
                .connect_timeout(Duration::from_secs(2))
                .tls(options)
                .build()
                .unwrap();
            // The same stack as with passwords, minus the auth layer.
            let counts = Counts::default();
            let mut client = ServiceBuilder::new()
                .option_layer(None::<AuthLayer>)
                .layer(CountingLayer(counts.clone()))
                .service(transport);

            put(&mut client, "alice/k", "a").await.unwrap();
            assert_eq!(
                get(&mut client, "alice/k").await.unwrap().as_deref(),
                Some("a"),
                "{label}"
            );
            let error = get(&mut client, "bob/k").await.unwrap_err();
            assert_eq!(
                error.kind(),
                &ErrorKind::PermissionDenied,
                "{label}: {error}"
            );
            let error = put(&mut client, "bob/k", "x").await.unwrap_err();
            assert_eq!(
                error.kind(),
                &ErrorKind::PermissionDenied,
                "{label}: {error}"
            );
            assert_eq!(counts.logins(), 0, "{label}");

            // The write landed as alice: root sees it.
            let out = cluster
                .etcdctl(&["get", "alice/k", "--print-value-only"])
                .await
                .unwrap();
            assert_eq!(out.trim(), "a", "{label}");
        }
    })
    .await;
}
