//! Helpers shared by the facade's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod events;

use std::future::Future;
use std::time::Duration;

use etcd_tower::Client;
use etcd_tower_testkit::{binaries, Cluster, EtcdBinary};

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

/// Whether the binary is etcd 3.4.
pub fn is_34(bin: &EtcdBinary) -> bool {
    bin.major_minor() == (3, 4)
}
