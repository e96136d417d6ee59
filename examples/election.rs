//! Leader election: three candidates, an observer, and a leader that dies.
//!
//! ```text
//! ETCD_ENDPOINTS=127.0.0.1:2379 cargo run --example election
//! ```

use std::time::Duration;

use etcd_tower::concurrency::{Election, Session};
use etcd_tower::StreamExt;
use etcd_tower::{Client, EtcdError};

mod common;
use common::endpoints;

#[tokio::main]
async fn main() -> Result<(), EtcdError> {
    let client = Client::connect(endpoints()).await?;

    // An observer prints every leader.
    let watcher_session = Session::with_ttl(&client, 10).await?;
    let observer = Election::new(&watcher_session, "examples/election");
    let mut leaders = observer.observe();
    let printer = tokio::spawn(async move {
        while let Some(Ok(leader)) = leaders.next().await {
            println!("leader: {}", leader.value_str().unwrap_or("?"));
        }
    });

    let mut sessions = Vec::new();
    let mut candidates = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let session = Session::with_ttl(&client, 3).await?;
        let mut election = Election::new(&session, "examples/election");
        sessions.push(session);
        candidates.push(tokio::spawn(async move {
            election.campaign(name).await?;
            println!("{name} won");
            Ok::<_, EtcdError>(election)
        }));
    }

    // Leaders step down one by one: the first resigns, the second "crashes"
    // (stops renewing its lease, released when the TTL runs out), the third
    // closes its session.
    for (index, candidate) in candidates.into_iter().enumerate() {
        let mut election = match candidate.await {
            Ok(result) => result?,
            Err(panic) => {
                eprintln!("a candidate failed: {panic}");
                continue;
            }
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        match index {
            0 => election.resign().await?,
            1 => sessions[1].orphan(),
            _ => sessions[2].close().await?,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    printer.abort();
    watcher_session.close().await
}
