//! A `require_leader` watcher on a member that loses its leader: the
//! member cancels the stream ("no leader"), the engine keeps re-trying with
//! back-off, and resumes without loss once a leader is back. On real etcd
//! 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_tower_testkit::{binaries, Cluster, Proxy};
use etcd_tower_watch::{prefix_end, WatchEngine, WatchOptions};
use support::etcd::*;

/// Captures the engine's log lines, to see why a stream broke.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_a_leader_cancels_require_leader_streams() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("etcd_tower_watch=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    for bin in binaries() {
        let label = bin.label();
        logs.clear();
        let cluster = Cluster::builder(&bin)
            .members(3)
            .arg("--election-timeout=500")
            .arg("--heartbeat-interval=50")
            .start()
            .await
            .unwrap();
        let endpoints = cluster.endpoints();
        let mut proxies = Vec::new();
        for member in cluster.members() {
            proxies.push(Proxy::start(member.client_addr()).await.unwrap());
        }
        let client = transport(&endpoints);
        let engine = WatchEngine::new(transport(proxies.iter().map(Proxy::endpoint)));
        let from = current_revision(&client).await + 1;
        let mut watcher = engine
            .watch(
                "l/",
                WatchOptions::new()
                    .prefix()
                    .start_revision(from)
                    .require_leader(),
            )
            .await
            .unwrap();
        let mut last = 0;
        for i in 0..20 {
            last = put(&client, &format!("l/{}", i % 4), &format!("{i}"))
                .await
                .unwrap();
        }
        let mut got = collect_until(&mut watcher, last, 10).await;

        // Leave the stream's member alone, without a leader.
        let on = bounded(10, "finding the stream", async {
            loop {
                if let Some(i) = (0..3).find(|&i| proxies[i].connections() > 0) {
                    return i;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let others: Vec<usize> = (0..3).filter(|&i| i != on).collect();
        let lost = Instant::now();
        for &i in &others {
            cluster.member(i).kill().unwrap();
        }
        bounded(30, "the member to cancel the stream", async {
            while !(logs.text().contains("watch stream broke")
                && logs.text().contains("the member has no leader"))
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        println!(
            "{label}: stream cancelled for lack of a leader after {:?}",
            lost.elapsed()
        );

        // A leader again: the watcher resumes and misses nothing.
        cluster.member(others[0]).restart().await.unwrap();
        for i in 20..40 {
            let (key, value) = (format!("l/{}", i % 4), format!("{i}"));
            last = retrying("a write", || put(&client, &key, &value)).await;
        }
        got.extend(collect_until(&mut watcher, last, 30).await);
        let history = history(&[endpoints[on].clone()], from, last).await;
        let want = expected(&history, b"l/", &prefix_end(b"l/"), false, true);
        assert_eq!(want.len(), 40, "{label}");
        assert_same(&label, &got, &want);
    }
}
