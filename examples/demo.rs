//! The main demo: puts, gets, a transaction, a watch and a lease, printing
//! what happens.
//!
//! ```text
//! bash scripts/demo.sh                      # a throwaway local etcd
//! ETCD_ENDPOINTS=127.0.0.1:2379 bash scripts/demo.sh
//! ```
//!
//! With `ETCD_ENDPOINTS` unset, the demo starts a single-member etcd 3.5 on
//! free loopback ports in a temp dir (with the test kit) and removes it at
//! the end.

use std::time::Duration;

use etcd_tower::watch::{EventKind, WatchOptions};
use etcd_tower::StreamExt;
use etcd_tower::{
    Client, Compare, CompareOp, EtcdError, GetOptions, LeaseKeeper, PutOptions, Txn, TxnOp,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the throwaway server alive until the end of main.
    let (endpoints, _server) = match std::env::var("ETCD_ENDPOINTS") {
        Ok(list) => (
            list.split(',')
                .map(|e| e.trim().to_owned())
                .collect::<Vec<_>>(),
            None,
        ),
        Err(_) => {
            let binary = etcd_tower_testkit::binaries()
                .into_iter()
                .next()
                .ok_or("no etcd binary: run scripts/install-etcd.sh")?;
            let cluster = etcd_tower_testkit::Cluster::start(&binary).await?;
            println!(
                "started a throwaway {} at {}",
                binary.label(),
                cluster.endpoints().join(",")
            );
            (cluster.endpoints(), Some(cluster))
        }
    };
    run(endpoints).await?;
    Ok(())
}

async fn run(endpoints: Vec<String>) -> Result<(), EtcdError> {
    let client = Client::connect(endpoints).await?;

    // A watch on the demo's prefix, printing every event as it arrives.
    let mut watcher = client
        .watch("demo/", WatchOptions::new().prefix().prev_kv())
        .await?;
    let printer = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(batch) = watcher.next().await {
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    println!("  [watch] ended: {error}");
                    break;
                }
            };
            for event in batch.events() {
                let kind = match event.kind() {
                    EventKind::Put if event.is_create() => "CREATE",
                    EventKind::Put => "PUT",
                    EventKind::Delete => "DELETE",
                    EventKind::Unknown(_) => "UNKNOWN",
                };
                println!(
                    "  [watch] {kind} {} = {:?} at revision {}",
                    String::from_utf8_lossy(event.key()),
                    String::from_utf8_lossy(event.value()),
                    event.mod_revision()
                );
                seen += 1;
            }
            if seen >= 6 {
                break;
            }
        }
    });

    println!("put demo/greeting = hello");
    let put = client.put("demo/greeting", "hello").await?;
    println!("  written at revision {}", put.revision());
    client.put("demo/subject", "world").await?;

    let found = client.get_with("demo/", GetOptions::new().prefix()).await?;
    println!("get demo/ (prefix): {} keys", found.kvs().len());
    for kv in found.kvs() {
        println!(
            "  {} = {}",
            kv.key_str().unwrap_or("?"),
            kv.value_str().unwrap_or("?")
        );
    }

    println!("txn: if demo/subject == \"world\" then set it to \"etcd\"");
    let swap = Txn::new()
        .when([Compare::value("demo/subject", CompareOp::Equal, "world")])
        .and_then([TxnOp::put("demo/subject", "etcd")])
        .or_else([TxnOp::get("demo/subject")]);
    let swapped = client.txn(swap).await?;
    println!("  succeeded: {}", swapped.succeeded());

    println!("lease: grant 5 s, kept alive; attach demo/session to it");
    let keeper = LeaseKeeper::grant(&client, 5).await?;
    client
        .put_with(
            "demo/session",
            "alive",
            PutOptions::new().lease(keeper.id()),
        )
        .await?;
    let ttl = client.lease_time_to_live_with_keys(keeper.id()).await?;
    let keys: Vec<_> = ttl
        .keys
        .iter()
        .map(|k| String::from_utf8_lossy(k))
        .collect();
    println!(
        "  lease {:x}: {} s left, keys {keys:?}",
        keeper.id(),
        ttl.ttl
    );
    println!("  revoking the lease deletes its key");
    client.lease_revoke(keeper.id()).await?;

    println!("delete demo/greeting");
    client.delete("demo/greeting").await?;

    if tokio::time::timeout(Duration::from_secs(10), printer)
        .await
        .is_err()
    {
        println!("  [watch] did not see every event within 10 s");
    }
    client
        .delete_with("demo/", etcd_tower::DeleteOptions::new().prefix())
        .await?;
    println!("done");
    Ok(())
}
