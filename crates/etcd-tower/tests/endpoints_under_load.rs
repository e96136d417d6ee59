//! The cluster changes under a busy client, on every etcd version: a
//! member replaced (a new one on new ports added, an old one removed)
//! while writers, readers and 100 watchers run with auto-sync on, and the
//! client moved by `set_endpoints` from one half of a cluster to the other.
//! No call that could be retried fails (a write may fail only as "may have
//! been applied"), every watcher sees every write exactly once in order,
//! and the client ends on the current members only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_tower::kv::GetOptions;
use etcd_tower::watch::WatchOptions;
use etcd_tower::{Client, Sent, StreamExt};
use etcd_tower_testkit::{Cluster, Proxy};
use support::each_version;
use tokio::task::JoinHandle;

const WATCHERS: usize = 100;
const END: &str = "r/end";

/// What the load saw: successful writes as (key, revision), writes that
/// failed as may-have-been-applied, reads made.
#[derive(Default)]
struct Load {
    written: Vec<(String, i64)>,
    unsure: usize,
    reads: usize,
}

/// Four writers and two readers until `stop`; bounded at 5,000 calls each.
fn start_load(client: &Client, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<Load>> {
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let (client, stop) = (client.clone(), Arc::clone(stop));
        tasks.push(tokio::spawn(async move {
            let mut load = Load::default();
            for i in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("r/{writer}/{i:05}");
                match client.put(key.clone(), "v").await {
                    Ok(put) => load.written.push((key, put.revision())),
                    Err(e) if e.sent() == Sent::MayHaveBeenApplied => load.unsure += 1,
                    Err(e) => panic!("a write failed that could have been retried: {e}"),
                }
            }
            load
        }));
    }
    for _ in 0..2 {
        let (client, stop) = (client.clone(), Arc::clone(stop));
        tasks.push(tokio::spawn(async move {
            let mut load = Load::default();
            for _ in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let read = client.get_with("r/", GetOptions::new().prefix().count_only());
                read.await.unwrap_or_else(|e| panic!("a read failed: {e}"));
                load.reads += 1;
            }
            load
        }));
    }
    tasks
}

/// `WATCHERS` watchers on `r/`, each collecting (key, revision) until the
/// end key.
async fn start_watchers(client: &Client) -> Vec<JoinHandle<Vec<(String, i64)>>> {
    let mut tasks = Vec::new();
    for _ in 0..WATCHERS {
        let mut watcher = client
            .watch("r/", WatchOptions::new().prefix())
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let batch = tokio::time::timeout(Duration::from_secs(30), watcher.next())
                    .await
                    .expect("an event within 30 s")
                    .expect("the watcher is open")
                    .expect("no watch error");
                for event in batch.events() {
                    let key = event.key_str().unwrap().to_owned();
                    if key == END {
                        return seen;
                    }
                    seen.push((key, event.mod_revision()));
                }
            }
        }));
    }
    tasks
}

/// Stops the load, writes the end key, and checks everything: every
/// watcher saw exactly the keys the cluster holds, each once, in revision
/// order; every successful write among them.
async fn finish(
    label: &str,
    client: &Client,
    stop: &AtomicBool,
    load: Vec<JoinHandle<Load>>,
    watchers: Vec<JoinHandle<Vec<(String, i64)>>>,
) {
    stop.store(true, Ordering::Relaxed);
    let mut total = Load::default();
    for task in load {
        let part = task.await.unwrap();
        total.written.extend(part.written);
        total.unsure += part.unsure;
        total.reads += part.reads;
    }
    client.put(END, "").await.unwrap();
    let stored = client
        .get_with("r/", GetOptions::new().prefix())
        .await
        .unwrap();
    let mut history: Vec<(String, i64)> = stored
        .kvs()
        .iter()
        .filter(|kv| kv.key() != END.as_bytes())
        .map(|kv| (kv.key_str().unwrap().to_owned(), kv.mod_revision()))
        .collect();
    history.sort_by_key(|(_, revision)| *revision);
    let history_set: BTreeSet<_> = history.iter().cloned().collect();
    for write in &total.written {
        assert!(
            history_set.contains(write),
            "{label}: {write:?} is not stored"
        );
    }
    assert!(
        total.written.len() >= 100,
        "{label}: only {} writes",
        total.written.len()
    );
    assert!(total.reads > 0, "{label}: no reads");
    for (n, watcher) in watchers.into_iter().enumerate() {
        let seen = watcher.await.unwrap();
        assert_eq!(
            seen.len(),
            history.len(),
            "{label}: watcher {n} saw {} events for {} writes",
            seen.len(),
            history.len()
        );
        assert_eq!(seen, history, "{label}: watcher {n}'s events differ");
    }
    eprintln!(
        "{label}: {} writes ({} may have been applied), {} reads, {WATCHERS} watchers with {} events each",
        total.written.len(),
        total.unsure,
        total.reads,
        history.len()
    );
}

/// Waits until the load has made some progress.
async fn let_it_run(client: &Client, writes: usize) {
    for _ in 0..1_000 {
        let count = client
            .get_with("r/", GetOptions::new().prefix().count_only())
            .await
            .unwrap();
        if count.count() >= writes as i64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the load made no progress");
}

#[tokio::test]
async fn a_member_replaced_under_writers_readers_and_100_watchers() {
    each_version(150, |bin| async move {
        let label = bin.label();
        let mut cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let client = Client::builder(cluster.endpoints())
            .auto_sync(Duration::from_millis(200))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap();
        let watchers = start_watchers(&client).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = start_load(&client, &stop);
        let_it_run(&client, 50).await;

        cluster.add_member().await.unwrap();
        let_it_run(&client, 150).await;
        let leader = cluster.leader_index().await.unwrap();
        cluster.remove_member((leader + 1) % 3).await.unwrap();
        cluster.wait_healthy().await.unwrap();
        let mut members: Vec<String> = cluster.endpoints();
        members.sort();
        // Auto-sync takes up the new member list while the load goes on.
        let mut synced = false;
        for _ in 0..500 {
            let mut now: Vec<String> = client
                .endpoints()
                .unwrap()
                .into_iter()
                .map(|e| e.trim_end_matches('/').to_owned())
                .collect();
            now.sort();
            if now == members {
                synced = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(synced, "{label}: auto-sync did not follow the replacement");
        let_it_run(&client, 300).await;
        finish(&label, &client, &stop, load, watchers).await;
    })
    .await;
}

#[tokio::test]
async fn set_endpoints_moves_a_busy_client_to_the_other_half() {
    each_version(150, |bin| async move {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).members(4).start().await.unwrap();
        let endpoints = cluster.endpoints();
        // The first half through proxies, which count the client's
        // connections and are cut once it has moved.
        let first_half = [
            Proxy::start(cluster.member(0).client_addr()).await.unwrap(),
            Proxy::start(cluster.member(1).client_addr()).await.unwrap(),
        ];
        let client = Client::builder(first_half.iter().map(Proxy::endpoint))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap();
        let watchers = start_watchers(&client).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = start_load(&client, &stop);
        let_it_run(&client, 100).await;

        client.set_endpoints(&endpoints[2..]).unwrap();
        // The old half's connections close once their calls are done
        // (watch streams move to the new half).
        let mut closed = false;
        for _ in 0..500 {
            if first_half.iter().all(|proxy| proxy.connections() == 0) {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(closed, "{label}: the old half's connections stayed open");
        for proxy in &first_half {
            proxy.reject_new(true);
            proxy.cut();
        }
        let_it_run(&client, 300).await;
        finish(&label, &client, &stop, load, watchers).await;
    })
    .await;
}
