//! Runs `examples/balance.rs` (three hyper servers behind a p2c balancer
//! fed by etcd, one leaving and coming back under load) on every etcd
//! version the test kit offers, and checks its counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "../examples/balance.rs"]
mod balance;

use support::{each_version, single};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_example_counts_requests_per_instance() {
    each_version(30, |bin| async move {
        let (cluster, _client) = single(&bin).await;
        let report = balance::run(&cluster.endpoints()).await.unwrap();
        println!("{}:\n{report}", bin.label());
        report
            .check()
            .unwrap_or_else(|e| panic!("{}: {e}\n{report}", bin.label()));
    })
    .await;
}
