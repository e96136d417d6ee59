//! A distributed lock: several workers take turns on a shared counter.
//!
//! ```text
//! ETCD_ENDPOINTS=127.0.0.1:2379 cargo run --example lock
//! ```

use etcd_tower::concurrency::{Mutex, Session};
use etcd_tower::{Client, EtcdError, Txn, TxnOp};

mod common;
use common::endpoints;

async fn worker(client: Client, id: usize) -> Result<(), EtcdError> {
    // Everything the session holds is released if this process dies: at
    // most 10 s later, when its lease expires.
    let session = Session::with_ttl(&client, 10).await?;
    let mut mutex = Mutex::new(&session, "examples/lock");
    for _ in 0..5 {
        mutex.lock().await?;
        let current = client.get("examples/counter").await?;
        let n: u64 = current
            .kvs()
            .first()
            .and_then(|kv| kv.value_str().ok()?.parse().ok())
            .unwrap_or(0);
        // Fenced write: only applied while this session still holds the lock.
        let written = client
            .txn(
                Txn::new()
                    .when([mutex.is_owner()])
                    .and_then([TxnOp::put("examples/counter", (n + 1).to_string())]),
            )
            .await?;
        println!("worker {id}: {n} -> {} ({})", n + 1, written.succeeded());
        mutex.unlock().await?;
    }
    session.close().await
}

#[tokio::main]
async fn main() -> Result<(), EtcdError> {
    let client = Client::connect(endpoints()).await?;
    client.put("examples/counter", "0").await?;
    let workers: Vec<_> = (0..4)
        .map(|id| tokio::spawn(worker(client.clone(), id)))
        .collect();
    for worker in workers {
        match worker.await {
            Ok(result) => result?,
            Err(panic) => eprintln!("a worker failed: {panic}"),
        }
    }
    let total = client.get("examples/counter").await?;
    println!(
        "counter = {}",
        total
            .kvs()
            .first()
            .and_then(|kv| kv.value_str().ok())
            .unwrap_or("?")
    );
    client.delete("examples/counter").await?;
    Ok(())
}
