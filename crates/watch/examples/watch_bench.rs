//! Measures the watch engine's cost: client memory per idle watcher and
//! CPU per delivered event.
//!
//! ```text
//! cargo run --release -p etcd-tower-watch --example watch_bench
//! ETCD_ENDPOINTS=127.0.0.1:2379 cargo run --release -p etcd-tower-watch --example watch_bench
//! ```
//!
//! Without `ETCD_ENDPOINTS` it starts its own single-member etcd (the
//! newest the test kit has). Memory is the growth of the resident set
//! (`/proc/self/statm`) over 10,000 idle watchers, all on one stream. CPU
//! is the process's user + system time (`/proc/self/stat`) while 100
//! watchers of one prefix receive 10,000 writes each (1,000,000 events,
//! written 100 per transaction, so 100 events per response), then 2,000
//! single puts each (one event per response; the puts' own client CPU,
//! measured first with nobody watching, is subtracted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use etcd_tower_core::proto::etcdserverpb::{
    request_op, PutRequest, RequestOp, TxnRequest, TxnResponse,
};
use etcd_tower_core::{EtcdRequest, Transport};
use etcd_tower_watch::{WatchEngine, WatchOptions};
use futures::{stream, StreamExt};
use tower::ServiceExt;

const IDLE_WATCHERS: usize = 10_000;
const HOT_WATCHERS: usize = 100;
const HOT_WRITES: usize = 10_000;
const SINGLE_WRITES: usize = 2_000;

/// Resident set size in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm resident");
    pages * 4096
}

/// User + system CPU time of the process (clock ticks of 10 ms).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

async fn put_many(client: &Transport, pairs: Vec<(String, String)>) -> i64 {
    let success = pairs
        .into_iter()
        .map(|(key, value)| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })),
        })
        .collect();
    let request = TxnRequest {
        success,
        ..Default::default()
    };
    let response = client
        .clone()
        .oneshot(EtcdRequest::new(request))
        .await
        .expect("txn");
    TxnResponse::try_from(response)
        .expect("txn response")
        .header
        .map_or(0, |h| h.revision)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (endpoints, _cluster) = match std::env::var("ETCD_ENDPOINTS") {
        Ok(list) => (list.split(',').map(str::to_owned).collect::<Vec<_>>(), None),
        Err(_) => {
            let bin = etcd_tower_testkit::binaries().remove(0);
            println!("starting {}", bin.label());
            let cluster = etcd_tower_testkit::Cluster::builder(&bin)
                .start()
                .await
                .expect("etcd");
            (cluster.endpoints(), Some(cluster))
        }
    };
    let client = Transport::connect_lazy(&endpoints).expect("transport");
    let engine = WatchEngine::new(Transport::connect_lazy(&endpoints).expect("transport"));

    // Warm up: the stream, its connection and the runtime are open.
    let warm = engine
        .watch("bench/warm", WatchOptions::new())
        .await
        .expect("watch");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let before = rss();
    let started = Instant::now();
    let idle: Vec<_> = stream::iter(0..IDLE_WATCHERS)
        .map(|i| {
            let engine = engine.clone();
            async move {
                engine
                    .watch(format!("bench/idle/{i:05}"), WatchOptions::new())
                    .await
            }
        })
        .buffered(1024)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|w| w.expect("watch"))
        .collect();
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss();
    let per = (after.saturating_sub(before)) as f64 / IDLE_WATCHERS as f64;
    println!(
        "idle watchers: {IDLE_WATCHERS} created in {took:?}; RSS {} KiB -> {} KiB: {per:.0} bytes per idle watcher",
        before / 1024,
        after / 1024
    );

    // CPU per delivered event.
    let mut hot = Vec::new();
    for _ in 0..HOT_WATCHERS {
        hot.push(
            engine
                .watch("bench/hot/", WatchOptions::new().prefix())
                .await
                .expect("watch"),
        );
    }
    let cpu_before = cpu();
    let started = Instant::now();
    let consumers: Vec<_> = hot
        .into_iter()
        .map(|mut watcher| {
            tokio::spawn(async move {
                let mut events = 0;
                while events < HOT_WRITES {
                    match watcher.next().await {
                        Some(Ok(batch)) => events += batch.events().len(),
                        other => panic!("watcher: {other:?}"),
                    }
                }
                events
            })
        })
        .collect();
    for chunk in 0..HOT_WRITES / 100 {
        let pairs = (0..100)
            .map(|i| (format!("bench/hot/{:04}", chunk * 100 + i), "x".repeat(64)))
            .collect();
        put_many(&client, pairs).await;
    }
    let mut delivered = 0;
    for consumer in consumers {
        delivered += consumer.await.expect("consumer");
    }
    let spent = cpu() - cpu_before;
    println!(
        "delivery: {delivered} events to {HOT_WATCHERS} watchers in {:?}; client CPU {spent:?}: {:.2} µs per event",
        started.elapsed(),
        spent.as_secs_f64() * 1e6 / delivered as f64
    );

    // One event per response: single puts, each delivered to 100 watchers.
    // The puts' own client cost is measured first (nobody watching) and
    // subtracted.
    let single = |prefix: &'static str| {
        let client = client.clone();
        async move {
            let started = cpu();
            for i in 0..SINGLE_WRITES {
                let request = PutRequest {
                    key: format!("{prefix}{i:04}").into(),
                    value: "x".repeat(64).into(),
                    ..Default::default()
                };
                client
                    .clone()
                    .oneshot(EtcdRequest::new(request))
                    .await
                    .expect("put");
            }
            cpu() - started
        }
    };
    let puts_alone = single("bench/cold/").await;
    let mut hot = Vec::new();
    for _ in 0..HOT_WATCHERS {
        hot.push(
            engine
                .watch("bench/one/", WatchOptions::new().prefix())
                .await
                .expect("watch"),
        );
    }
    let cpu_before = cpu();
    let consumers: Vec<_> = hot
        .into_iter()
        .map(|mut watcher| {
            tokio::spawn(async move {
                let mut events = 0;
                while events < SINGLE_WRITES {
                    match watcher.next().await {
                        Some(Ok(batch)) => events += batch.events().len(),
                        other => panic!("watcher: {other:?}"),
                    }
                }
                events
            })
        })
        .collect();
    single("bench/one/").await;
    let mut delivered = 0;
    for consumer in consumers {
        delivered += consumer.await.expect("consumer");
    }
    let spent = (cpu() - cpu_before).saturating_sub(puts_alone);
    println!(
        "delivery, one event per response: {delivered} events to {HOT_WATCHERS} watchers; client CPU {spent:?} beyond the puts' own {puts_alone:?}: {:.2} µs per event",
        spent.as_secs_f64() * 1e6 / delivered as f64
    );
    drop((warm, idle));
}
