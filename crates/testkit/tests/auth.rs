//! Authentication set-ups: simple tokens with a TTL, JWT, on every etcd version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower_testkit::{binaries, Cluster, TestkitError};
use support::bounded;

/// Anonymous reads fail, root's succeed, a wrong password fails.
async fn check_auth_is_enforced(cluster: &Cluster, label: &str) {
    cluster.etcdctl(&["put", "k", "v"]).await.unwrap();
    let anonymous = cluster.etcdctl_as(None, &["get", "k"]).await;
    match anonymous {
        Err(TestkitError::Command { stderr, .. }) => {
            assert!(
                stderr.contains("user name is empty") || stderr.contains("permission denied"),
                "{label}: {stderr}"
            )
        }
        other => panic!("{label}: anonymous get succeeded: {other:?}"),
    }
    let wrong = cluster
        .etcdctl_as(Some(("root", "wrong")), &["get", "k"])
        .await;
    assert!(wrong.is_err(), "{label}: {wrong:?}");
    let root = cluster
        .etcdctl_as(
            Some(("root", "s3cret")),
            &["get", "k", "--print-value-only"],
        )
        .await
        .unwrap();
    assert_eq!(root.trim(), "v", "{label}");
}

#[tokio::test]
async fn enable_auth_requires_credentials() {
    bounded(60, async {
        for bin in binaries() {
            let label = bin.label();
            let mut cluster = Cluster::start(&bin).await.unwrap();
            cluster.enable_auth("s3cret").await.unwrap();
            assert!(cluster.auth_enabled());
            check_auth_is_enforced(&cluster, &label).await;
            // Health (and so restarts) still work with auth on.
            cluster.member(0).restart().await.unwrap();
            check_auth_is_enforced(&cluster, &label).await;
        }
    })
    .await;
}

#[tokio::test]
async fn short_auth_token_ttl() {
    bounded(60, async {
        for bin in binaries() {
            let label = bin.label();
            let mut cluster = Cluster::builder(&bin)
                .auth_token_ttl(1)
                .start()
                .await
                .unwrap();
            let log = std::fs::read_to_string(cluster.member(0).log_path()).unwrap();
            assert!(log.contains("--auth-token-ttl=1"), "{label}");
            cluster.enable_auth("s3cret").await.unwrap();
            check_auth_is_enforced(&cluster, &label).await;
        }
    })
    .await;
}

#[tokio::test]
async fn jwt_cluster_starts_and_authenticates() {
    bounded(60, async {
        for bin in binaries() {
            let label = bin.label();
            let mut cluster = Cluster::builder(&bin)
                .jwt_token_ttl(Duration::from_secs(5))
                .start()
                .await
                .unwrap();
            let jwt = cluster.jwt().unwrap();
            assert!(jwt.private_key().is_file() && jwt.public_key().is_file());
            assert_eq!(jwt.ttl(), Duration::from_secs(5));
            cluster.enable_auth("s3cret").await.unwrap();
            check_auth_is_enforced(&cluster, &label).await;
        }
    })
    .await;
}
