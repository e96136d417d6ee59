//! Fifty watchers on one client through etcd's own gRPC proxy, on real etcd
//! 3.5.30, 3.5.1 and 3.4.23, plain and with `--namespace`.
//!
//! The proxy numbers each stream's watches itself (0, 1, ...) and ignores
//! the ids the client asks for; it coalesces watchers of the same range into
//! one watch on the cluster and answers a create joining a running watch at
//! once, before creates still waiting for the cluster. Every watcher must
//! still receive exactly the server's history for its range (read
//! afterwards straight from the cluster by a fresh client): every event once,
//! in order, with its revision, previous value and type, also for watchers
//! of the same range with different options and for watchers that start
//! from a past revision while the others are live. Through a namespaced
//! proxy, watchers see keys without the prefix, and the server has them
//! under it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use bytes::Bytes;
use etcd_tower_core::Transport;
use etcd_tower_testkit::{binaries, Cluster, GrpcProxy};
use etcd_tower_watch::{WatchEngine, WatchOptions, Watcher};
use futures::{stream, StreamExt};
use support::etcd::*;

const WATCHERS: usize = 50;
const WRITES: usize = 1_000;
/// Writes before the watchers from a past revision are created.
const WRITES_BEFORE_LATE_WATCHERS: usize = 200;
/// Keys `k/00` .. `k/19`.
const KEYS: usize = 20;
const NAMESPACE: &str = "tenant/";

/// One watcher and the range it should receive.
struct Watched {
    index: usize,
    watcher: Watcher,
    key: Bytes,
    /// Empty for one key.
    end: Bytes,
    prev_kv: bool,
}

fn key(n: usize) -> String {
    format!("k/{:02}", n % KEYS)
}

/// Watcher `i`'s options: five shapes of overlapping ranges, half of them
/// with previous values, so that watchers of one range differ in options.
/// Shape 4 starts from `from` (set for the late watchers only).
fn options(i: usize, from: i64) -> (String, WatchOptions) {
    let (key, options) = match i % 5 {
        0 => ("k/".to_string(), WatchOptions::new().prefix()),
        1 => ("k/1".to_string(), WatchOptions::new().prefix()),
        2 => (key(i), WatchOptions::new()),
        3 => ("k/05".to_string(), WatchOptions::new().range_end("k/15")),
        _ => (
            "k/0".to_string(),
            WatchOptions::new().prefix().start_revision(from),
        ),
    };
    if i.is_multiple_of(2) {
        (key, options.prev_kv())
    } else {
        (key, options)
    }
}

fn is_late(i: usize) -> bool {
    i % 5 == 4
}

async fn start(engine: &WatchEngine<Transport>, indexes: Vec<usize>, from: i64) -> Vec<Watched> {
    bounded(
        20,
        "creating the watchers through the gRPC proxy",
        stream::iter(indexes)
            .map(|index| {
                let engine = engine.clone();
                async move {
                    let (key, options) = options(index, from);
                    let (sent, end) = options.key_range(key.clone());
                    let watcher = engine.watch(key, options).await.expect("a watch");
                    let key = sent;
                    Watched {
                        index,
                        watcher,
                        key,
                        end,
                        prev_kv: index.is_multiple_of(2),
                    }
                }
            })
            // All at once: the engine decides how many creates are in flight.
            .buffer_unordered(WATCHERS)
            .collect::<Vec<_>>(),
    )
    .await
}

/// Write `j` of the workload: puts of the twenty keys, every tenth a delete.
async fn write(client: &Transport, j: usize) {
    if j % 10 == 9 {
        delete(client, &key(j * 3)).await.expect("a delete");
    } else {
        put(client, &key(j * 7), &format!("v{j}"))
            .await
            .expect("a put");
    }
}

async fn write_range(client: &Transport, writes: std::ops::Range<usize>) {
    stream::iter(writes)
        .for_each_concurrent(8, |j| write(client, j))
        .await;
}

/// The whole scenario through `proxy`, checked against `cluster`.
async fn fifty_watchers_through(label: &str, cluster: &Cluster, proxy: &GrpcProxy) {
    let started = Instant::now();
    let namespace = proxy.namespace().unwrap_or("");
    let client = transport([proxy.endpoint()]);
    let engine = WatchEngine::new(transport([proxy.endpoint()]));

    // A write outside every watched range marks where the test begins.
    let before = current_revision(&client).await;
    let from = before + 1;
    let now: Vec<usize> = (0..WATCHERS).filter(|&i| !is_late(i)).collect();
    let late: Vec<usize> = (0..WATCHERS).filter(|&i| is_late(i)).collect();
    let mut watched = start(&engine, now, 0).await;
    let created = started.elapsed();
    write_range(&client, 0..WRITES_BEFORE_LATE_WATCHERS).await;
    // These replay the history from `from` while the others are live.
    watched.extend(start(&engine, late, from).await);
    write_range(&client, WRITES_BEFORE_LATE_WATCHERS..WRITES).await;
    // Every key in one revision: every watcher's range has one.
    let end = put_all(
        &client,
        (0..KEYS).map(|n| (key(n), "end".to_owned())).collect(),
    )
    .await
    .expect("the end marker");
    let written = started.elapsed();

    // The history as the server has it, read straight from the cluster.
    let mut history = history(&cluster.endpoints(), from, end).await;
    // Every put and the end marker; a delete of a missing key is no event.
    assert!(
        history.len() >= WRITES * 9 / 10 + KEYS,
        "{label}: the server's history from {from} through {end} has {} events",
        history.len()
    );
    for seen in &mut history {
        assert!(
            seen.1.starts_with(namespace.as_bytes()),
            "{label}: key {:?} is not under the proxy's namespace {namespace:?}",
            seen.1
        );
        seen.1 = seen.1.slice(namespace.len()..);
    }

    for w in &mut watched {
        let what = format!("{label}: watcher {} ({:?}..{:?})", w.index, w.key, w.end);
        let mut got = collect_until(&mut w.watcher, end, 10).await;
        got.retain(|s| s.0 <= end);
        let want = expected(&history, &w.key, &w.end, w.prev_kv, true);
        assert!(
            want.len() > 10,
            "{what}: expects only {} events",
            want.len()
        );
        assert_same(&what, &got, &want);
    }
    println!(
        "{label}: {WATCHERS} watchers created in {created:?}, {WRITES} writes and the end marker \
         in {written:?}, all verified after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_watchers_on_one_client_through_the_grpc_proxy() {
    for bin in binaries() {
        let label = bin.label();
        let started = Instant::now();
        let cluster = Cluster::start(&bin).await.unwrap();

        let plain = GrpcProxy::start(&cluster).await.unwrap();
        bounded(
            30,
            &format!("{label}: the plain proxy scenario"),
            fifty_watchers_through(&format!("{label}, plain proxy"), &cluster, &plain),
        )
        .await;
        drop(plain);

        let namespaced = GrpcProxy::builder(&cluster)
            .namespace(NAMESPACE)
            .start()
            .await
            .unwrap();
        bounded(
            30,
            &format!("{label}: the namespaced proxy scenario"),
            fifty_watchers_through(
                &format!("{label}, proxy with --namespace={NAMESPACE}"),
                &cluster,
                &namespaced,
            ),
        )
        .await;
        println!("{label}: both scenarios in {:?}", started.elapsed());
    }
}
