//! Endpoints at run time on every etcd version of the kit: a client moved
//! to other members keeps its calls and its watches (no event lost or
//! repeated), and a sync follows a real member replacement (a member added
//! on new ports, an old one removed), on demand and on a timer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower::watch::WatchOptions;
use etcd_tower::{Client, StreamExt};
use etcd_tower_testkit::{Cluster, Proxy};
use support::each_version;

/// The next `n` event keys of a watcher, each within 10 s.
async fn next_keys(watcher: &mut etcd_tower::watch::Watcher, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    while keys.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(10), watcher.next())
            .await
            .expect("an event within 10 s")
            .expect("the watcher is open")
            .expect("no watch error");
        for event in batch.events() {
            let kv = event.kv.as_ref().expect("a key-value");
            keys.push(String::from_utf8_lossy(&kv.key).into_owned());
        }
    }
    keys
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("w/{i:03}")).collect()
}

#[tokio::test]
async fn moved_endpoints_keep_calls_and_watches() {
    each_version(90, |bin| async move {
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        // Start on a follower, which is killed later without an election.
        let leader = cluster.leader_index().await.unwrap();
        let mut endpoints = cluster.endpoints();
        let away = (leader + 1) % 3;
        endpoints.swap(0, away);
        let writer = Client::connect(&endpoints).await.unwrap();
        // Through a TCP proxy, which counts the client's connections there.
        let proxy = Proxy::start(cluster.member(away).client_addr())
            .await
            .unwrap();
        let client = Client::connect([proxy.endpoint()]).await.unwrap();
        let mut watcher = client
            .watch("w/", WatchOptions::new().prefix())
            .await
            .unwrap();
        for i in 0..20 {
            writer.put(format!("w/{i:03}"), "v").await.unwrap();
        }
        assert_eq!(next_keys(&mut watcher, 20).await, expected(0..20));

        // Off that member, for every clone of the client.
        client.set_endpoints(&endpoints[1..]).unwrap();
        let now: Vec<String> = client.endpoints().unwrap();
        assert_eq!(now.len(), 2);
        // The old connection closes (no call waits on it; the watch's
        // stream moves to the endpoints that remain).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while proxy.connections() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: the removed endpoint's connection stayed open",
                bin.label()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for i in 20..40 {
            writer.put(format!("w/{i:03}"), "v").await.unwrap();
        }
        // That member goes away: nothing of the client may depend on it.
        cluster.member(away).kill().unwrap();
        for i in 40..60 {
            client.clone().put(format!("w/{i:03}"), "v").await.unwrap();
        }
        assert_eq!(next_keys(&mut watcher, 40).await, expected(20..60));

        // An empty or unparsable list changes nothing.
        assert!(client.set_endpoints(Vec::<String>::new()).is_err());
        assert!(client.set_endpoints(["not a url"]).is_err());
        assert_eq!(client.endpoints().unwrap(), now);
    })
    .await;
}

#[tokio::test]
async fn a_sync_follows_a_member_replacement() {
    each_version(120, |bin| async move {
        let mut cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let client = Client::connect(cluster.endpoints()).await.unwrap();
        let auto = Client::builder(cluster.endpoints())
            .auto_sync(Duration::from_millis(200))
            .connect()
            .await
            .unwrap();
        let mut watcher = auto
            .watch("w/", WatchOptions::new().prefix())
            .await
            .unwrap();

        // Replace a follower by a new member on new ports.
        cluster.add_member().await.unwrap();
        let leader = cluster.leader_index().await.unwrap();
        cluster.remove_member((leader + 1) % 3).await.unwrap();
        cluster.wait_healthy().await.unwrap();
        let mut members = cluster.endpoints();
        members.sort();

        let mut synced = client.sync_endpoints().await.unwrap();
        synced.sort();
        assert_eq!(synced, members, "{}", bin.label());
        client.put("w/000", "v").await.unwrap();

        // The timer does the same.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut now = auto.endpoints().unwrap();
            now.sort();
            let now: Vec<String> = now
                .into_iter()
                .map(|e| e.trim_end_matches('/').to_owned())
                .collect();
            if now == members {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: auto-sync did not follow: {now:?} vs {members:?}",
                bin.label()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for i in 1..10 {
            auto.put(format!("w/{i:03}"), "v").await.unwrap();
        }
        assert_eq!(next_keys(&mut watcher, 10).await, expected(0..10));
    })
    .await;
}
