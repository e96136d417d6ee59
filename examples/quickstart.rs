//! Quickstart: connect, write, read, a transaction, a watch, a lease.
//!
//! ```text
//! ETCD_ENDPOINTS=127.0.0.1:2379 cargo run --example quickstart
//! ```

use std::time::Duration;

use etcd_tower::watch::WatchOptions;
use etcd_tower::StreamExt;
use etcd_tower::{
    Client, Compare, CompareOp, DeleteOptions, EtcdError, GetOptions, PutOptions, Txn, TxnOp,
};

mod common;
use common::endpoints;

#[tokio::main]
async fn main() -> Result<(), EtcdError> {
    // One line: default layers (retries), checks that the cluster answers.
    let client = Client::connect(endpoints()).await?;

    // Watch the prefix before writing, to see our own writes.
    let mut watcher = client
        .watch("quickstart/", WatchOptions::new().prefix())
        .await?;

    client.put("quickstart/greeting", "hello").await?;
    client.put("quickstart/subject", "world").await?;
    let all = client
        .get_with("quickstart/", GetOptions::new().prefix())
        .await?;
    for kv in all.kvs() {
        println!(
            "{} = {}",
            kv.key_str().unwrap_or("<binary>"),
            kv.value_str().unwrap_or("<binary>")
        );
    }

    // Compare-and-swap.
    let swapped = client
        .txn(
            Txn::new()
                .when([Compare::value(
                    "quickstart/subject",
                    CompareOp::Equal,
                    "world",
                )])
                .and_then([TxnOp::put("quickstart/subject", "etcd")])
                .or_else([TxnOp::get("quickstart/subject")]),
        )
        .await?;
    println!("swapped: {}", swapped.succeeded());

    // A key that lives as long as its lease.
    let lease = client.lease_grant(10).await?;
    client
        .put_with(
            "quickstart/ephemeral",
            "bye soon",
            PutOptions::new().lease(lease.id),
        )
        .await?;
    client.lease_revoke(lease.id).await?;

    // The watcher saw every change.
    let mut seen = 0;
    while seen < 5 {
        match tokio::time::timeout(Duration::from_secs(5), watcher.next()).await {
            Ok(Some(batch)) => {
                for event in batch?.events() {
                    seen += 1;
                    println!(
                        "watch: {:?} {}",
                        event.kind(),
                        String::from_utf8_lossy(event.key())
                    );
                }
            }
            _ => break,
        }
    }

    client
        .delete_with("quickstart/", DeleteOptions::new().prefix())
        .await?;
    Ok(())
}
