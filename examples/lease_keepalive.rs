//! A lease kept alive by a `LeaseKeeper`, and what happens when it is lost.
//!
//! ```text
//! ETCD_ENDPOINTS=127.0.0.1:2379 cargo run --example lease_keepalive
//! ```

use std::time::Duration;

use etcd_tower::{Client, EtcdError, LeaseKeeper, LeaseState, PutOptions};

mod common;
use common::endpoints;

#[tokio::main]
async fn main() -> Result<(), EtcdError> {
    let client = Client::connect(endpoints()).await?;

    // Register this process; the key disappears when the lease is lost.
    let keeper = LeaseKeeper::grant(&client, 5).await?;
    client
        .put_with(
            "examples/members/me",
            "10.0.0.1:8080",
            PutOptions::new().lease(keeper.id()),
        )
        .await?;
    println!("lease {:x} granted for {} s", keeper.id(), keeper.ttl());

    // Renewals happen every TTL/3 in the background; watch them.
    let mut states = keeper.subscribe();
    let watch_states = tokio::spawn(async move {
        while states.changed().await.is_ok() {
            let state = *states.borrow_and_update();
            match state {
                LeaseState::Alive { ttl, .. } => println!("renewed: {ttl} s"),
                LeaseState::Lost(reason) => {
                    println!("lost: {reason:?}");
                    break;
                }
            }
        }
    });

    // Work while the lease lives; stop at once if it is lost.
    tokio::select! {
        reason = keeper.lost() => println!("stopping work: lease lost ({reason:?})"),
        () = tokio::time::sleep(Duration::from_secs(6)) => println!("work done"),
    }

    // Revoking deletes the registration at once.
    keeper.revoke().await?;
    let left = client.get("examples/members/me").await?;
    println!("registration left: {}", left.kvs().len());
    if let Err(e) = watch_states.await {
        eprintln!("state printer failed: {e}");
    }
    Ok(())
}
