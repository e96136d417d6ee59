//! etcd's gRPC proxy in front of real clusters, on every etcd version:
//! plain, with `--namespace`, with auth, and in front of a TLS cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use etcd_tower_testkit::{binaries, Cluster, GrpcProxy, TestkitError};
use support::{bounded, health_once};

#[tokio::test]
async fn put_and_get_through_the_proxy() {
    bounded(90, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::start(&bin).await.unwrap();
            let proxy = GrpcProxy::start(&cluster).await.unwrap();
            assert_eq!(
                proxy.endpoint(),
                format!("http://{}", proxy.addr()),
                "{label}"
            );
            assert_ne!(proxy.endpoint(), cluster.endpoints()[0], "{label}");
            assert_eq!(proxy.namespace(), None);

            proxy
                .etcdctl(&["put", "k", "via-grpc-proxy"])
                .await
                .unwrap();
            let out = proxy
                .etcdctl(&["get", "k", "--print-value-only"])
                .await
                .unwrap();
            assert_eq!(out.trim(), "via-grpc-proxy", "{label}");
            // It really went to the cluster.
            let direct = cluster
                .etcdctl(&["get", "k", "--print-value-only"])
                .await
                .unwrap();
            assert_eq!(direct.trim(), "via-grpc-proxy", "{label}");
            // And the proxy answers for itself: a health check on its metrics listener.
            let metrics_addr = proxy
                .metrics_url()
                .trim_start_matches("http://")
                .parse()
                .unwrap();
            let health = health_once(metrics_addr).await.unwrap().unwrap();
            assert!(health.contains("\"health\":\"true\""), "{label}: {health}");

            // Killed, restarted on the same port, killed and cleaned up on drop.
            let pid = proxy.pid().unwrap();
            proxy.restart().await.unwrap();
            assert_ne!(proxy.pid(), Some(pid), "{label}");
            let out = proxy
                .etcdctl(&["get", "k", "--print-value-only"])
                .await
                .unwrap();
            assert_eq!(out.trim(), "via-grpc-proxy", "{label}");
            let dir = proxy.dir().to_owned();
            let pid = proxy.pid().unwrap();
            drop(proxy);
            assert!(!dir.exists(), "{label}: {} left behind", dir.display());
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "{label}: proxy pid {pid} still runs"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_namespaced_proxy_stores_keys_under_its_prefix() {
    bounded(90, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::start(&bin).await.unwrap();
            let proxy = GrpcProxy::builder(&cluster)
                .namespace("tenant/")
                .start()
                .await
                .unwrap();
            assert_eq!(proxy.namespace(), Some("tenant/"));
            proxy.etcdctl(&["put", "k", "namespaced"]).await.unwrap();
            let via_proxy = proxy.etcdctl(&["get", "", "--prefix"]).await.unwrap();
            assert_eq!(
                via_proxy.lines().collect::<Vec<_>>(),
                ["k", "namespaced"],
                "{label}"
            );
            let direct = cluster.etcdctl(&["get", "", "--prefix"]).await.unwrap();
            assert_eq!(
                direct.lines().collect::<Vec<_>>(),
                ["tenant/k", "namespaced"],
                "{label}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn auth_tokens_pass_through_the_proxy() {
    bounded(90, async {
        for bin in binaries() {
            let label = bin.label();
            let mut cluster = Cluster::start(&bin).await.unwrap();
            cluster.enable_auth("s3cret").await.unwrap();
            let proxy = GrpcProxy::start(&cluster).await.unwrap();
            proxy.etcdctl(&["put", "k", "as-root"]).await.unwrap();
            let out = proxy
                .etcdctl(&["get", "k", "--print-value-only"])
                .await
                .unwrap();
            assert_eq!(out.trim(), "as-root", "{label}");
            match proxy.etcdctl_as(None, &["get", "k"]).await {
                Err(TestkitError::Command { stderr, .. }) => assert!(
                    stderr.contains("user name is empty") || stderr.contains("permission denied"),
                    "{label}: {stderr}"
                ),
                other => panic!("{label}: an anonymous get through the proxy: {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn in_front_of_a_tls_cluster_the_proxy_serves_tls() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::builder(&bin).tls().start().await.unwrap();
            let proxy = GrpcProxy::start(&cluster).await.unwrap();
            assert!(
                proxy.endpoint().starts_with("https://127.0.0.1:"),
                "{label}"
            );
            proxy.etcdctl(&["put", "k", "over-tls"]).await.unwrap();
            let direct = cluster
                .etcdctl(&["get", "k", "--print-value-only"])
                .await
                .unwrap();
            assert_eq!(direct.trim(), "over-tls", "{label}");

            // Without a client certificate the proxy refuses, as the cluster does.
            let tls = cluster.tls().unwrap();
            let no_cert = std::process::Command::new(bin.etcdctl())
                .env("ETCDCTL_API", "3")
                .args([
                    format!("--endpoints={}", proxy.endpoint()),
                    format!("--cacert={}", tls.ca().display()),
                    "--dial-timeout=2s".to_owned(),
                    "--command-timeout=2s".to_owned(),
                    "get".to_owned(),
                    "k".to_owned(),
                ])
                .output()
                .unwrap();
            assert!(
                !no_cert.status.success(),
                "{label}: etcdctl without a client cert succeeded through the proxy"
            );
        }
    })
    .await;
}
