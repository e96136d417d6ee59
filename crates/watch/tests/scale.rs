//! Ten thousand watchers on one stream, on real etcd 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use etcd_tower_testkit::{binaries, Cluster};
use etcd_tower_watch::{WatchEngine, WatchOptions};
use futures::{stream, StreamExt};
use support::etcd::*;

const WATCHERS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watchers_on_one_stream() {
    for bin in binaries() {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).start().await.unwrap();
        let client = transport(cluster.endpoints());
        let engine = WatchEngine::new(transport(cluster.endpoints()));

        let started = Instant::now();
        let mut watchers: Vec<_> = bounded(
            120,
            "creating the watchers",
            stream::iter(0..WATCHERS)
                .map(|i| {
                    let engine = engine.clone();
                    async move { engine.watch(format!("w/{i:05}"), WatchOptions::new()).await }
                })
                .buffered(1024)
                .collect::<Vec<_>>(),
        )
        .await
        .into_iter()
        .map(|w| w.unwrap())
        .collect();
        let created = started.elapsed();
        println!("{label}: created {WATCHERS} watchers on one stream in {created:?}");

        // One event per watcher, written 100 keys per transaction.
        let started = Instant::now();
        let mut revisions = Vec::new();
        for chunk in (0..WATCHERS).collect::<Vec<_>>().chunks(100) {
            let pairs = chunk
                .iter()
                .map(|i| (format!("w/{i:05}"), format!("v{i}")))
                .collect();
            revisions.push(put_all(&client, pairs).await.unwrap());
        }
        bounded(120, "delivering to every watcher", async {
            for (i, watcher) in watchers.iter_mut().enumerate() {
                let got = collect_until(watcher, revisions[i / 100], 60).await;
                assert_eq!(got.len(), 1, "{label}: watcher {i}");
                assert_eq!(got[0].1, format!("w/{i:05}").as_bytes(), "{label}");
            }
        })
        .await;
        println!(
            "{label}: wrote and delivered {WATCHERS} events in {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        drop(watchers);
        drop(engine);
        println!("{label}: dropped them in {:?}", started.elapsed());
    }
}
