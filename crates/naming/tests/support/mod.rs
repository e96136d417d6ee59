//! Helpers shared by the naming tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use etcd_tower::Client;
use etcd_tower_testkit::{binaries, Cluster, EtcdBinary};
use tokio::time::{sleep, Instant};

/// Runs `test` once per supported etcd version, each bounded in time.
pub async fn each_version<F, Fut>(secs: u64, mut test: F)
where
    F: FnMut(EtcdBinary) -> Fut,
    Fut: Future<Output = ()>,
{
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(Duration::from_secs(secs), test(bin))
            .await
            .unwrap_or_else(|_| panic!("{label}: test did not finish within {secs} s"));
    }
}

/// A one-member cluster and a client on it.
pub async fn single(bin: &EtcdBinary) -> (Cluster, Client) {
    let cluster = Cluster::start(bin).await.unwrap();
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    (cluster, client)
}

/// Waits, checking every 20 ms for at most 5 s, until the server holds
/// no key under `prefix` and no lease at all; panics with `what` if not.
pub async fn until_nothing_left(client: &Client, prefix: &str, what: &str) {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let keys = client
            .get_with(prefix, etcd_tower::GetOptions::new().prefix().keys_only())
            .await
            .unwrap();
        let leases = client.lease_leases().await.unwrap().leases;
        if keys.kvs().is_empty() && leases.is_empty() {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "{what}: left on the server after 5 s: {} keys, leases {:?}",
            keys.kvs().len(),
            leases.iter().map(|l| l.id).collect::<Vec<_>>()
        );
        sleep(Duration::from_millis(20)).await;
    }
}
