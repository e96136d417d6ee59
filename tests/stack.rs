//! The whole stack at once, through the facade's builder: namespace, auth
//! with short-lived tokens, retry, timeout and metrics over the transport,
//! and watches through the watch engine, across token expiry and a server
//! restart; on etcd 3.5 and 3.4.
//!
//! Each watcher must see exactly the server's history for its range, with
//! the namespace's prefix stripped: nothing lost, nothing repeated, nothing
//! from outside the namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use etcd_tower::watch::WatchOptions;
use etcd_tower::{Client, GetOptions};
use etcd_tower_core::proto::mvccpb::event::EventType;
use etcd_tower_testkit::{binaries, Cluster};
use futures::StreamExt;

const ROOT_PASSWORD: &str = "pw";
const PREFIX: &str = "tenant-a/";

/// One observed change: (revision, key, value, is_delete).
type Change = (i64, String, String, bool);

/// Reads changes from a watcher until `count` arrived (bounded in time).
async fn collect(watcher: &mut etcd_tower::watch::Watcher, count: usize) -> Vec<Change> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let batch = tokio::time::timeout(Duration::from_secs(30), watcher.next())
            .await
            .unwrap_or_else(|_| panic!("no event within 30 s; got {seen:?}"))
            .expect("watcher ended")
            .expect("watch error");
        for event in batch.events() {
            let kv = event.kv.clone().unwrap_or_default();
            seen.push((
                kv.mod_revision,
                String::from_utf8(kv.key.to_vec()).unwrap(),
                String::from_utf8(kv.value.to_vec()).unwrap(),
                event.r#type() == EventType::Delete,
            ));
        }
    }
    seen
}

/// The server's own history of the keys under `raw_prefix`, read back with
/// a plain (non-namespaced) client through a watch from revision 1.
async fn history(raw: &Client, raw_prefix: &str, count: usize) -> Vec<Change> {
    let mut watcher = raw
        .watch(raw_prefix, WatchOptions::new().prefix().start_revision(1))
        .await
        .unwrap();
    collect(&mut watcher, count).await
}

#[tokio::test]
async fn namespaced_watches_survive_token_expiry_and_restart() {
    for bin in binaries() {
        tokio::time::timeout(Duration::from_secs(120), async {
            let mut cluster = Cluster::builder(&bin)
                .auth_token_ttl(2)
                .start()
                .await
                .unwrap();
            cluster.enable_auth(ROOT_PASSWORD).await.unwrap();
            let client = Client::builder(cluster.endpoints())
                .user("root", ROOT_PASSWORD)
                .namespace(PREFIX)
                .timeout(Duration::from_secs(10))
                .metrics(true)
                .keepalive(Duration::from_secs(1), Duration::from_secs(1))
                .build()
                .unwrap();
            let raw = Client::builder(cluster.endpoints())
                .user("root", ROOT_PASSWORD)
                .build()
                .unwrap();
            // Another tenant's key, which the namespaced watchers must never see.
            raw.put("tenant-b/x", "other").await.unwrap();

            let mut all = client
                .watch("\0", WatchOptions::new().from_key())
                .await
                .unwrap();
            let mut jobs = client
                .watch("jobs/", WatchOptions::new().prefix())
                .await
                .unwrap();

            client.put("jobs/1", "a").await.unwrap();
            client.put("config", "c1").await.unwrap();

            // Let the token expire while the client is idle; then a new
            // watch on the same client must be accepted and deliver.
            tokio::time::sleep(Duration::from_secs(4)).await;
            let mut config = client.watch("config", WatchOptions::new()).await.unwrap();
            client.put("config", "c2").await.unwrap();
            client.put("jobs/2", "b").await.unwrap();

            // Restart the server: it forgets its simple tokens, and every
            // stream breaks. etcd commits its backend every 100 ms; give the
            // last writes time to be durable before the kill.
            tokio::time::sleep(Duration::from_millis(500)).await;
            cluster.member(0).kill().unwrap();
            cluster.member(0).restart().await.unwrap();
            client.put("jobs/3", "c").await.unwrap();
            client.delete("jobs/1").await.unwrap();
            client.put("config", "c3").await.unwrap();
            raw.put("tenant-b/y", "other").await.unwrap();

            let all_seen = collect(&mut all, 7).await;
            let jobs_seen = collect(&mut jobs, 4).await;
            let config_seen = collect(&mut config, 2).await;

            // The server's history of the namespace, prefix stripped.
            let server: Vec<Change> = history(&raw, PREFIX, 7)
                .await
                .into_iter()
                .map(|(rev, key, value, del)| (rev, key[PREFIX.len()..].to_owned(), value, del))
                .collect();
            assert_eq!(all_seen, server, "{}: the from-key watcher", bin.label());
            let jobs_server: Vec<_> = server
                .iter()
                .filter(|c| c.1.starts_with("jobs/"))
                .cloned()
                .collect();
            assert_eq!(jobs_seen, jobs_server, "{}: the jobs/ watcher", bin.label());
            let config_server: Vec<_> = server
                .iter()
                .filter(|c| c.1 == "config" && c.0 > all_seen[1].0)
                .cloned()
                .collect();
            assert_eq!(
                config_seen,
                config_server,
                "{}: the config watcher",
                bin.label()
            );

            // Reads through the namespace see only the namespace.
            let everything = client
                .get_with("\0", GetOptions::new().from_key())
                .await
                .unwrap();
            let keys: Vec<_> = everything
                .kvs()
                .iter()
                .map(|kv| kv.key_str().unwrap().to_owned())
                .collect();
            assert_eq!(keys, ["config", "jobs/2", "jobs/3"], "{}", bin.label());
        })
        .await
        .unwrap_or_else(|_| panic!("{}: timed out", bin.label()));
    }
}
