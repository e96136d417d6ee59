//! One watcher that is never read does not delay the others on its stream,
//! and once drained it has every event exactly once. On real etcd 3.5 and
//! 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use etcd_tower_testkit::{binaries, Cluster};
use etcd_tower_watch::{prefix_end, WatchEngine, WatchOptions};
use support::etcd::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_costs_the_others_nothing_and_loses_nothing() {
    for bin in binaries() {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).start().await.unwrap();
        let endpoints = cluster.endpoints();
        let client = transport(&endpoints);
        let engine = WatchEngine::new(transport(&endpoints));
        let from = current_revision(&client).await + 1;
        let mut slow = engine
            .watch(
                "s/",
                WatchOptions::new().prefix().start_revision(from).buffer(16),
            )
            .await
            .unwrap();
        let mut fast = engine
            .watch("s/", WatchOptions::new().prefix().start_revision(from))
            .await
            .unwrap();

        // The fast watcher receives each write promptly, one at a time,
        // while the slow one is never read.
        let mut worst = Duration::ZERO;
        let mut last = 0;
        for i in 0..300 {
            let started = Instant::now();
            last = put(&client, &format!("s/{}", i % 10), &format!("{i}"))
                .await
                .unwrap();
            let got = collect_until(&mut fast, last, 5).await;
            assert_eq!(got.last().map(|s| s.0), Some(last));
            worst = worst.max(started.elapsed());
        }
        assert!(slow.is_lagging(), "{label}: the slow watcher should lag");
        println!("{label}: worst write-to-delivery time with a stalled watcher: {worst:?}");
        assert!(worst < Duration::from_secs(1), "{label}: {worst:?}");

        // Now drain the slow one: every event, once, in order.
        let history = history(&endpoints, from, last).await;
        let want = expected(&history, b"s/", &prefix_end(b"s/"), false, true);
        assert_eq!(want.len(), 300);
        let mut got = collect_until(&mut slow, last, 30).await;
        got.retain(|s| s.0 <= last);
        assert_same(&label, &got, &want);
    }
}
