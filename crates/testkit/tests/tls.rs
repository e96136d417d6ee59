//! TLS clusters with client-certificate auth, on every etcd version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use etcd_tower_testkit::{binaries, Cluster, DEFAULT_CLIENT_CN};
use support::bounded;

#[tokio::test]
async fn tls_cluster_serves_etcdctl_with_client_certs() {
    bounded(90, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::builder(&bin).tls().start().await.unwrap();
            assert!(
                cluster.endpoints()[0].starts_with("https://127.0.0.1:"),
                "{label}"
            );
            let tls = cluster.tls().unwrap();
            for file in [tls.ca(), tls.client_cert(), tls.client_key()] {
                assert!(file.is_file(), "{label}: {}", file.display());
            }

            cluster.etcdctl(&["put", "k", "over-tls"]).await.unwrap();
            let out = cluster
                .etcdctl(&["get", "k", "--print-value-only"])
                .await
                .unwrap();
            assert_eq!(out.trim(), "over-tls", "{label}");

            // Without a client certificate the server refuses.
            let endpoints = format!("--endpoints={}", cluster.endpoints()[0]);
            let cacert = format!("--cacert={}", tls.ca().display());
            let no_cert = std::process::Command::new(bin.etcdctl())
                .env("ETCDCTL_API", "3")
                .args([&endpoints, &cacert, "--command-timeout=2s", "get", "k"])
                .output()
                .unwrap();
            assert!(
                !no_cert.status.success(),
                "{label}: etcdctl without a client cert succeeded"
            );

            // A restart waits for health over the plain metrics listener.
            cluster.member(0).restart().await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn client_cert_common_name_is_the_user() {
    bounded(90, async {
        for bin in binaries() {
            let label = bin.label();
            let mut cluster = Cluster::builder(&bin).tls().start().await.unwrap();
            cluster.etcdctl(&["put", "k", "v"]).await.unwrap();
            cluster.enable_auth("s3cret").await.unwrap();

            // The default client cert's CN names no user: refused.
            let refused = cluster.etcdctl_as(None, &["get", "k"]).await;
            assert!(
                refused.is_err(),
                "{label}: CN {DEFAULT_CLIENT_CN} was let in: {refused:?}"
            );

            // A cert whose CN is `root` authenticates as root, without a password.
            let root = cluster
                .tls()
                .unwrap()
                .issue_client_cert("root")
                .await
                .unwrap();
            let cert = format!("--cert={}", root.cert().display());
            let key = format!("--key={}", root.key().display());
            let cacert = format!("--cacert={}", cluster.tls().unwrap().ca().display());
            let out = cluster
                .etcdctl_as(
                    None,
                    &[&cert, &key, &cacert, "get", "k", "--print-value-only"],
                )
                .await
                .unwrap();
            assert_eq!(out.trim(), "v", "{label}");
        }
    })
    .await;
}
