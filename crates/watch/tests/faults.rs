//! Watchers survive server and network faults on real etcd 3.5 and 3.4:
//! each one receives exactly the server's history for its range, in order,
//! without gaps or repeats, checked against the history read afterwards by
//! a fresh client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_tower_core::Transport;
use etcd_tower_testkit::{binaries, Cluster, Proxy};
use etcd_tower_watch::{prefix_end, WatchEngine, WatchOptions, Watcher};
use support::etcd::*;
use tokio::sync::watch;

/// One watcher under test and what it should receive.
struct Watched {
    label: &'static str,
    watcher: Watcher,
    key: Bytes,
    end: Bytes,
    prev_kv: bool,
    deletes: bool,
}

/// A mix of watchers on one engine: prefixes, all keys, one key, from a
/// revision and from "now", with prev_kv and with a filter.
async fn start_watchers(engine: &WatchEngine<Transport>, from: i64) -> Vec<Watched> {
    let specs: [(&'static str, (&'static str, WatchOptions), bool, bool); 5] = [
        (
            "a/ from a revision",
            ("a/", WatchOptions::new().prefix().start_revision(from)),
            false,
            true,
        ),
        (
            "b/ from now",
            ("b/", WatchOptions::new().prefix()),
            false,
            true,
        ),
        (
            "all keys with prev_kv",
            (
                "",
                WatchOptions::new().prefix().start_revision(from).prev_kv(),
            ),
            true,
            true,
        ),
        (
            "a/ puts only",
            (
                "a/",
                WatchOptions::new()
                    .prefix()
                    .start_revision(from)
                    .no_delete(),
            ),
            false,
            false,
        ),
        (
            "one key",
            ("b/t1", WatchOptions::new().start_revision(from)),
            false,
            true,
        ),
    ];
    let mut watched = Vec::new();
    for (label, (key, options), prev_kv, deletes) in specs {
        let watch = engine.watch(key, options.clone());
        let (key, end) = options.key_range(key);
        let watcher = bounded(20, label, watch).await.expect("watch");
        watched.push(Watched {
            label,
            watcher,
            key,
            end,
            prev_kv,
            deletes,
        });
    }
    watched
}

/// Every watcher must have received exactly the history of its range.
async fn verify(label: &str, watched: &mut [Watched], endpoints: &[String], from: i64, end: i64) {
    let history = history(endpoints, from, end).await;
    assert!(history.len() > 100, "{label}: history too short");
    for w in watched.iter_mut() {
        let mut got = collect_until(&mut w.watcher, end, 60).await;
        got.retain(|s| s.0 <= end);
        // "b/t1" is one key: its range end is empty.
        let want = expected(&history, &w.key, &w.end, w.prev_kv, w.deletes);
        assert!(!want.is_empty(), "{label}: {}: nothing expected", w.label);
        assert_same(&format!("{label}: {}", w.label), &got, &want);
    }
}

/// Runs the writers' workload in the background, reporting progress.
fn spawn_writer(
    client: Transport,
    steps: usize,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<usize>) {
    let (progress, rx) = watch::channel(0);
    let task = tokio::spawn(async move {
        for i in 0..steps {
            write_step(&client, i).await;
            progress.send_replace(i + 1);
        }
    });
    (task, rx)
}

async fn reached(progress: &mut watch::Receiver<usize>, step: usize) {
    bounded(60, "the writer", progress.wait_for(|n| *n >= step))
        .await
        .expect("the writer stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_member_killed_and_restarted_twice() {
    for bin in binaries() {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).start().await.unwrap();
        let endpoints = cluster.endpoints();
        let client = transport(&endpoints);
        let engine = WatchEngine::new(transport(&endpoints));
        let from = current_revision(&client).await + 1;
        let mut watched = start_watchers(&engine, from).await;

        let (writer, mut progress) = spawn_writer(client.clone(), 240);
        for round in [60, 150] {
            reached(&mut progress, round).await;
            cluster.member(0).kill().unwrap();
            // Writers keep trying while the member is down.
            tokio::time::sleep(Duration::from_millis(500)).await;
            cluster.member(0).restart().await.unwrap();
        }
        bounded(120, "the writer", writer).await.unwrap();
        let end = write_end(&client).await;
        verify(&label, &mut watched, &endpoints, from, end).await;
    }
}

/// Which proxy carries the engine's stream, once exactly one does.
async fn stream_proxy(proxies: &[Proxy], not: Option<usize>) -> usize {
    bounded(30, "finding the stream's member", async {
        loop {
            let open: Vec<usize> = (0..proxies.len())
                .filter(|&i| proxies[i].connections() > 0 && Some(i) != not)
                .collect();
            if let [one] = open[..] {
                return one;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_under_the_stream_is_killed_in_a_three_member_cluster() {
    for bin in binaries() {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let endpoints = cluster.endpoints();
        let mut proxies = Vec::new();
        for member in cluster.members() {
            proxies.push(Proxy::start(member.client_addr()).await.unwrap());
        }
        let client = transport(&endpoints);
        let engine = WatchEngine::new(transport(proxies.iter().map(Proxy::endpoint)));
        let from = current_revision(&client).await + 1;
        let mut watched = start_watchers(&engine, from).await;

        let (writer, mut progress) = spawn_writer(client.clone(), 240);
        let mut killed = None;
        for round in [60, 150] {
            reached(&mut progress, round).await;
            let victim = stream_proxy(&proxies, killed).await;
            cluster.member(victim).kill().unwrap();
            // The watchers move to another member.
            let moved = stream_proxy(&proxies, Some(victim)).await;
            assert_ne!(moved, victim);
            cluster.member(victim).restart().await.unwrap();
            killed = Some(victim);
        }
        bounded(120, "the writer", writer).await.unwrap();
        let end = write_end(&client).await;
        verify(&label, &mut watched, &endpoints, from, end).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_by_the_network() {
    for bin in binaries() {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).start().await.unwrap();
        let endpoints = cluster.endpoints();
        let proxy = Proxy::start(cluster.member(0).client_addr()).await.unwrap();
        let client = transport(&endpoints);
        let engine = WatchEngine::new(transport([proxy.endpoint()]));
        let from = current_revision(&client).await + 1;
        let mut watched = start_watchers(&engine, from).await;

        let (writer, mut progress) = spawn_writer(client.clone(), 200);
        for round in [40, 80, 120, 160] {
            reached(&mut progress, round).await;
            proxy.cut();
        }
        bounded(120, "the writer", writer).await.unwrap();
        let end = write_end(&client).await;
        verify(&label, &mut watched, &endpoints, from, end).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_connection_is_detected_by_keepalive() {
    for bin in binaries() {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).start().await.unwrap();
        let endpoints = cluster.endpoints();
        let proxy = Proxy::start(cluster.member(0).client_addr()).await.unwrap();
        let client = transport(&endpoints);
        // The proxy first, the member itself second.
        let engine = WatchEngine::new(transport([proxy.endpoint(), endpoints[0].clone()]));
        let from = current_revision(&client).await + 1;
        let mut watched = start_watchers(&engine, from).await;
        assert_eq!(
            proxy.connections(),
            1,
            "the stream should start on the proxy"
        );

        let (writer, mut progress) = spawn_writer(client.clone(), 200);
        reached(&mut progress, 60).await;
        proxy.blackhole(true);
        let blackholed = Instant::now();
        // A write after the black hole must reach the watchers through the
        // other endpoint, within keepalive detection plus back-off.
        let marker = retrying("a marker", || put(&client, "b/marker", "m")).await;
        let b = watched
            .iter_mut()
            .find(|w| w.label == "b/ from now")
            .unwrap();
        let before = collect_until(&mut b.watcher, marker, 20).await;
        let detected = blackholed.elapsed();
        assert!(before.iter().any(|s| s.0 == marker));
        println!("{label}: black hole detected and stream moved in {detected:?}");
        assert!(detected < Duration::from_secs(10), "{detected:?}");
        proxy.blackhole(false);

        bounded(120, "the writer", writer).await.unwrap();
        let end = write_end(&client).await;
        // The b/ watcher's events were partly read above: check it whole.
        let history = history(&endpoints, from, end).await;
        let b = watched
            .iter_mut()
            .find(|w| w.label == "b/ from now")
            .unwrap();
        let mut got = before;
        got.extend(collect_until(&mut b.watcher, end, 60).await);
        got.retain(|s| s.0 <= end);
        let want_b = expected(&history, b"b/", &prefix_end(b"b/"), false, true);
        assert_same(&format!("{label}: b/ from now"), &got, &want_b);
        watched.retain(|w| w.label != "b/ from now");
        verify(&label, &mut watched, &endpoints, from, end).await;
    }
}
