//! A watcher whose next revision was compacted away ends with a typed
//! error carrying the compaction revision; the other watchers carry on.
//! On real etcd 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower_core::{ErrorKind, EtcdError};
use etcd_tower_testkit::{binaries, Cluster, Proxy};
use etcd_tower_watch::{WatchEngine, WatchOptions, Watcher};
use futures::StreamExt;
use support::etcd::*;

async fn next_error(watcher: &mut Watcher, secs: u64) -> (usize, EtcdError) {
    bounded(secs, "the watcher's error", async {
        let mut events = 0;
        loop {
            match watcher.next().await {
                Some(Ok(batch)) => events += batch.events().len(),
                Some(Err(error)) => return (events, error),
                None => panic!("the watcher ended without an error"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_at_a_compacted_revision() {
    for bin in binaries() {
        let cluster = Cluster::builder(&bin).start().await.unwrap();
        let client = transport(cluster.endpoints());
        let from = current_revision(&client).await;
        for i in 0..5 {
            put(&client, "c/k", &format!("{i}")).await.unwrap();
        }
        let compact_at = current_revision(&client).await;
        compact(&client, compact_at).await;
        let engine = WatchEngine::new(transport(cluster.endpoints()));
        let mut old = engine
            .watch("c/k", WatchOptions::new().start_revision(from))
            .await
            .expect("the create itself is answered normally");
        let mut fine = engine
            .watch("c/k", WatchOptions::new().start_revision(compact_at))
            .await
            .unwrap();
        let (events, error) = next_error(&mut old, 10).await;
        assert_eq!(events, 0, "{}", bin.label());
        assert_eq!(
            error.kind(),
            &ErrorKind::Compacted {
                compact_revision: Some(compact_at)
            },
            "{}: {error}",
            bin.label()
        );
        assert!(old.next().await.is_none());
        let rev = put(&client, "c/k", "after").await.unwrap();
        let got = collect_until(&mut fine, rev, 10).await;
        assert_eq!(got.last().map(|s| s.0), Some(rev));
    }
}

/// The watcher's consumer does not read; its buffer fills, the engine
/// cancels it on the server; the history is compacted; when the consumer
/// catches up, the re-create finds its revision compacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_watcher_whose_history_was_compacted() {
    for bin in binaries() {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).start().await.unwrap();
        let client = transport(cluster.endpoints());
        let engine = WatchEngine::new(transport(cluster.endpoints()));
        let from = current_revision(&client).await + 1;
        let mut slow = engine
            .watch(
                "c/",
                WatchOptions::new().prefix().start_revision(from).buffer(4),
            )
            .await
            .unwrap();
        let mut fast = engine
            .watch("c/", WatchOptions::new().prefix().start_revision(from))
            .await
            .unwrap();
        let mut last = 0;
        for i in 0..40 {
            last = put(&client, &format!("c/{}", i % 3), &format!("{i}"))
                .await
                .unwrap();
        }
        let got = collect_until(&mut fast, last, 10).await;
        assert_eq!(got.len(), 40, "{label}");
        bounded(10, "the slow watcher to lag", async {
            while !slow.is_lagging() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        compact(&client, last).await;
        let after = put(&client, "c/after", "x").await.unwrap();
        let got = collect_until(&mut fast, after, 10).await;
        assert_eq!(got.len(), 1, "{label}: the fast watcher is unaffected");
        let (events, error) = next_error(&mut slow, 10).await;
        assert!(
            events <= 4,
            "{label}: only the buffered events, got {events}"
        );
        assert_eq!(error.compact_revision(), Some(last), "{label}: {error}");
    }
}

/// The stream breaks and cannot come back until the history has been
/// compacted past one watcher's next revision, not the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_at_a_compacted_revision() {
    for bin in binaries() {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).start().await.unwrap();
        let proxy = Proxy::start(cluster.member(0).client_addr()).await.unwrap();
        let client = transport(cluster.endpoints());
        let engine = WatchEngine::new(transport([proxy.endpoint()]));
        let from = current_revision(&client).await + 1;
        let mut behind = engine
            .watch("d/", WatchOptions::new().prefix().start_revision(from))
            .await
            .unwrap();
        // Starts in the future: nothing it needs will be compacted.
        let mut ahead = engine
            .watch(
                "e/",
                WatchOptions::new().prefix().start_revision(from + 100),
            )
            .await
            .unwrap();
        let first = put(&client, "d/0", "0").await.unwrap();
        assert_eq!(collect_until(&mut behind, first, 10).await.len(), 1);

        proxy.reject_new(true);
        proxy.cut();
        for i in 1..30 {
            put(&client, &format!("d/{i}"), "x").await.unwrap();
        }
        let compact_at = current_revision(&client).await;
        compact(&client, compact_at).await;
        let mut last_e = 0;
        while last_e < from + 110 {
            last_e = put(&client, "e/k", "y").await.unwrap();
        }
        proxy.reject_new(false);

        let (events, error) = next_error(&mut behind, 20).await;
        assert_eq!(events, 0, "{label}");
        assert_eq!(
            error.compact_revision(),
            Some(compact_at),
            "{label}: {error}"
        );
        let got = collect_until(&mut ahead, last_e, 20).await;
        let revs: Vec<i64> = got.iter().map(|s| s.0).collect();
        assert_eq!(revs, (from + 100..=last_e).collect::<Vec<_>>(), "{label}");
    }
}
