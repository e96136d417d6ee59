//! A member frozen (SIGSTOP) under a read load: reads keep succeeding
//! through the other members, within their deadline, thanks to a
//! per-attempt timeout under the retry layer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_tower_core::{Rpc, Transport};
use etcd_tower_retry::RetryLayer;
use etcd_tower_testkit::{binaries, Cluster};
use etcd_tower_timeout::TimeoutLayer;
use support::{bounded, get, put, Counting};
use tokio::time::Instant;
use tower::ServiceBuilder;

/// Each attempt's deadline.
const PER_ATTEMPT: Duration = Duration::from_millis(500);
/// What a read may take in all, retries included.
const DEADLINE: Duration = Duration::from_secs(3);
const READERS: usize = 3;
/// How long the member stays frozen.
const FROZEN_FOR: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_around_a_frozen_member() {
    for bin in binaries() {
        bounded(60, async {
            let label = bin.label();
            let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();

            // The transport's defaults: HTTP/2 keepalive notices the frozen
            // member only after 15 s, so for the whole freeze a third of
            // the attempts go to it. The per-attempt timeout alone keeps
            // every read within its deadline, at a cost in throughput.
            let transport = Transport::builder(cluster.endpoints()).build().unwrap();
            let slow = freeze_under_load(&cluster, transport).await;
            eprintln!("{label}, default keepalive: {slow}");
            assert!(slow.reads_frozen >= 10, "{label}: {slow}");

            // With a short keepalive the transport finds the frozen member
            // dead within a second and skips it: throughput holds.
            cluster.wait_healthy().await.unwrap();
            let transport = Transport::builder(cluster.endpoints())
                .keepalive(Duration::from_millis(300), Duration::from_millis(300))
                .build()
                .unwrap();
            let fast = freeze_under_load(&cluster, transport).await;
            eprintln!("{label}, 300 ms keepalive: {fast}");
            assert!(fast.reads_frozen >= 100, "{label}: {fast}");
        })
        .await;
    }
}

#[derive(Debug)]
struct Stats {
    reads_frozen: usize,
    retried: usize,
    slowest: Duration,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} reads while frozen, {} attempts retried, slowest read {:?}",
            self.reads_frozen, self.retried, self.slowest
        )
    }
}

/// Runs readers through retry + per-attempt timeout over `transport`,
/// freezes a follower for [`FROZEN_FOR`], thaws it, and checks that every
/// read succeeded within [`DEADLINE`].
async fn freeze_under_load(cluster: &Cluster, transport: Transport) -> Stats {
    let leader = cluster.leader_index().await.unwrap();
    // A follower: the cluster keeps its quorum and leader, so every
    // failure the client sees comes from the frozen member.
    let frozen = (leader + 1) % 3;
    let (counting, attempts) = Counting::new(transport);
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(TimeoutLayer::new(PER_ATTEMPT).per_attempt())
        .service(counting);
    put(&client, "frozen/key", "value").await.unwrap();

    let reads = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let (client, reads, stop) = (client.clone(), reads.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match tokio::time::timeout(DEADLINE * 2, get(&client, "frozen/key")).await {
                    Ok(Ok(range)) => assert_eq!(range.kvs[0].value, "value"),
                    Ok(Err(error)) => failures.push(error.to_string()),
                    Err(_) => failures.push("no answer at all".into()),
                }
                slowest = slowest.max(started.elapsed());
                reads.fetch_add(1, Ordering::Relaxed);
            }
            (slowest, failures)
        }));
    }

    // Under load, freeze the member for a while, then thaw it.
    wait_for(&reads, 50).await;
    let attempts_before = attempts.of(Rpc::Range);
    let reads_before = reads.load(Ordering::Relaxed);
    cluster.member(frozen).stop().unwrap();
    tokio::time::sleep(FROZEN_FOR).await;
    let reads_frozen = reads.load(Ordering::Relaxed) - reads_before;
    let retried = (attempts.of(Rpc::Range) - attempts_before).saturating_sub(reads_frozen);
    cluster.member(frozen).cont().unwrap();
    stop.store(true, Ordering::Relaxed);

    let mut slowest = Duration::ZERO;
    let mut failures = Vec::new();
    for reader in readers {
        let (s, f) = reader.await.unwrap();
        slowest = slowest.max(s);
        failures.extend(f);
    }
    let stats = Stats {
        reads_frozen,
        retried,
        slowest,
    };
    assert!(failures.is_empty(), "failed reads: {failures:?} ({stats})");
    assert!(slowest <= DEADLINE, "a read took too long ({stats})");
    // Reads did meet the frozen member, and were retried elsewhere.
    assert!(retried >= 1, "no read was retried ({stats})");
    stats
}

/// Waits until `counter` reaches `n`.
async fn wait_for(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
