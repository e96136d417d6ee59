//! The client through etcd's own gRPC proxy (`etcd grpc-proxy start`), on
//! every etcd version of the kit: a non-root user connects and works, the
//! errors whose codes the proxy flattens to `Unknown` keep their kind and
//! delivery (see `etcd_tower_core::error`, "Flattened codes"), and what the
//! proxy's `--namespace` leaves out (the Lock service) is what the
//! namespace layer's docs say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use etcd_tower::{Client, Code, ErrorKind, LeaseKeeper, LeaseLost, Sent};
use etcd_tower_testkit::{binaries, Cluster, EtcdBinary, GrpcProxy};

const LIMIT: Duration = Duration::from_secs(60);

/// A cluster with auth on, a user `alice` who may read and write `alice/`
/// only, a proxy in front of it, and alice's client through the proxy.
async fn alice_through_a_proxy(bin: &EtcdBinary) -> (Cluster, GrpcProxy, Client) {
    let mut cluster = Cluster::start(bin).await.unwrap();
    cluster
        .add_user("alice", "alicepw", "alice/")
        .await
        .unwrap();
    cluster.enable_auth("rootpw").await.unwrap();
    let proxy = GrpcProxy::builder(&cluster).start().await.unwrap();
    let label = bin.label();
    let alice = Client::builder([proxy.endpoint()])
        .user("alice", "alicepw")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{label}: connect as alice through the proxy: {e}"));
    (cluster, proxy, alice)
}

#[tokio::test]
async fn a_user_who_is_not_root_works_through_the_proxy_and_denials_stay_denials() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(LIMIT, async {
            let (cluster, _proxy, alice) = alice_through_a_proxy(&bin).await;
            alice.put("alice/k", "a").await.unwrap();
            assert_eq!(alice.get("alice/k").await.unwrap().kvs()[0].value(), b"a");

            // Refused by the server, passed on by the proxy as `Unknown`:
            // still a denial, and known not to have been applied.
            for (what, error) in [
                ("read", alice.get("bob/k").await.unwrap_err()),
                ("write", alice.put("bob/k", "x").await.unwrap_err()),
            ] {
                assert_eq!(
                    error.kind(),
                    &ErrorKind::PermissionDenied,
                    "{label}: {what}: {error}"
                );
                assert_eq!(error.sent(), Sent::Rejected, "{label}: {what}: {error}");
                // The proxy did flatten it: this test is about that path.
                assert_eq!(error.code(), Code::Unknown, "{label}: {what}: {error}");
            }
            let found = cluster
                .etcdctl(&["get", "bob/k", "--keys-only"])
                .await
                .unwrap();
            assert_eq!(found.trim(), "", "{label}");
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}

#[tokio::test]
async fn the_proxy_namespace_leaves_locks_and_elections_outside_the_tenant() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::start(&bin).await.unwrap();
            let proxy = GrpcProxy::builder(&cluster)
                .namespace("tenant/")
                .start()
                .await
                .unwrap();
            let client = Client::connect([proxy.endpoint()]).await.unwrap();
            client.put("k", "v").await.unwrap();
            let lease = client.lease_grant(30).await.unwrap().id;
            let lock = client.lock("L", lease).await.unwrap();
            let leader = client.campaign("E", "me", lease).await.unwrap();
            let direct = cluster
                .etcdctl(&["get", "", "--prefix", "--keys-only"])
                .await
                .unwrap();
            let keys: Vec<&str> = direct.lines().filter(|l| !l.is_empty()).collect();
            assert!(keys.contains(&"tenant/k"), "{label}: {keys:?}");
            assert!(
                keys.iter().any(|k| k.starts_with("L/")),
                "{label}: the lock's key should be outside the tenant: {keys:?}"
            );
            assert!(
                keys.iter().any(|k| k.starts_with("E/")),
                "{label}: the election's key should be outside the tenant: {keys:?}"
            );
            client.unlock(lock.key).await.unwrap();
            client.resign(&leader).await.unwrap();
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}

/// etcd 3.5.30's proxy answers a non-root user's renewals without renewing
/// (`etcdctl lease keep-alive` through it fails too): the keeper must say
/// so before the lease is gone, with its own reason. Older proxies renew.
#[tokio::test]
async fn a_keeper_through_the_proxy_renews_or_says_at_once_that_it_cannot() {
    const TTL: i64 = 4;
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(LIMIT, async {
            let (_cluster, _proxy, alice) = alice_through_a_proxy(&bin).await;
            let granted = std::time::Instant::now();
            let keeper = LeaseKeeper::grant(&alice, TTL).await.unwrap();
            let ttl = Duration::from_secs(TTL as u64);
            match tokio::time::timeout(ttl * 3 / 2, keeper.lost()).await {
                Err(_) => {
                    assert!(!label.contains("3.5.30"), "{label}: expected NotRenewed");
                    let left = alice.lease_time_to_live(keeper.id()).await.unwrap();
                    assert!(left.ttl > 0, "{label}: {left:?}");
                }
                Ok(reason) => {
                    assert_eq!(reason, LeaseLost::NotRenewed, "{label}");
                    assert!(
                        granted.elapsed() < ttl,
                        "{label}: reported after {:?}, not before the lease expired",
                        granted.elapsed()
                    );
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}
