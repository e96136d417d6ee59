//! The leader killed under a read/write load: reads keep succeeding,
//! writes succeed or fail with a typed error, and no put is applied twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_tower_core::{ErrorKind, EtcdError, Rpc, Sent, Transport};
use etcd_tower_retry::RetryLayer;
use etcd_tower_testkit::{binaries, Cluster};
use etcd_tower_timeout::TimeoutLayer;
use support::{bounded, get, put, range_at, Counting};
use tower::ServiceBuilder;

const WRITERS: usize = 3;
const READERS: usize = 2;
/// Puts per writer at most; the load stops earlier once enough happened
/// after the kill.
const PUTS_PER_WRITER: usize = 400;
const PER_ATTEMPT: Duration = Duration::from_secs(2);

/// What one writer saw.
#[derive(Debug, Default)]
struct Writes {
    /// Values whose put succeeded, with the revision it was applied at.
    applied: Vec<(String, i64)>,
    /// Values whose put failed, with the error.
    failed: Vec<(String, EtcdError)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_put_is_applied_twice_when_the_leader_dies() {
    for bin in binaries() {
        bounded(60, async {
            let label = bin.label();
            let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
            let leader = cluster.leader_index().await.unwrap();

            let transport = Transport::builder(cluster.endpoints())
                .keepalive(Duration::from_secs(1), Duration::from_secs(1))
                .build()
                .unwrap();
            let (counting, attempts) = Counting::new(transport);
            let client = ServiceBuilder::new()
                .layer(RetryLayer::new().max_elapsed(Duration::from_secs(15)))
                .layer(TimeoutLayer::new(PER_ATTEMPT).per_attempt())
                .service(counting);
            put(&client, "load/read", "stable").await.unwrap();

            let puts = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let mut writers = Vec::new();
            for w in 0..WRITERS {
                let (client, puts, stop) = (client.clone(), puts.clone(), stop.clone());
                writers.push(tokio::spawn(async move {
                    let mut writes = Writes::default();
                    for i in 0..PUTS_PER_WRITER {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        // Every put writes a value no other put writes.
                        let value = format!("w{w}-{i}");
                        match put(&client, &format!("load/w{w}"), &value).await {
                            Ok(response) => {
                                let revision = response.header.unwrap().revision;
                                writes.applied.push((value, revision));
                            }
                            Err(error) => writes.failed.push((value, error)),
                        }
                        puts.fetch_add(1, Ordering::Relaxed);
                    }
                    writes
                }));
            }
            let mut readers = Vec::new();
            for _ in 0..READERS {
                let (client, stop) = (client.clone(), stop.clone());
                readers.push(tokio::spawn(async move {
                    let mut ok = 0usize;
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match get(&client, "load/read").await {
                            Ok(range) => {
                                assert_eq!(range.kvs[0].value, "stable");
                                ok += 1;
                            }
                            Err(error) => failures.push(error),
                        }
                    }
                    (ok, failures)
                }));
            }

            // Kill the leader under load; keep loading until the cluster
            // has taken a fair number of puts again.
            wait_for(&puts, 30).await;
            cluster.member(leader).kill().unwrap();
            let killed_at = puts.load(Ordering::Relaxed);
            wait_for(&puts, killed_at + 60).await;
            stop.store(true, Ordering::Relaxed);

            let mut applied: Vec<(String, i64)> = Vec::new();
            let mut failed: Vec<(String, EtcdError)> = Vec::new();
            for writer in writers {
                let writes = writer.await.unwrap();
                applied.extend(writes.applied);
                failed.extend(writes.failed);
            }
            let (mut reads, mut read_failures) = (0, Vec::new());
            for reader in readers {
                let (ok, failures) = reader.await.unwrap();
                reads += ok;
                read_failures.extend(failures);
            }
            let calls = reads + read_failures.len() + applied.len() + failed.len() + 1; // + the seeding put
            let retries = (attempts.of(Rpc::Range) + attempts.of(Rpc::Put)).saturating_sub(calls);
            eprintln!(
                "{label}: {} puts applied, {} failed {:?}; {reads} reads, {} failed; {retries} retries",
                applied.len(),
                failed.len(),
                failed
                    .iter()
                    .map(|(_, e)| (e.kind().clone(), e.sent()))
                    .collect::<Vec<_>>(),
                read_failures.len(),
            );

            // Reads kept succeeding.
            assert!(read_failures.is_empty(), "{label}: {read_failures:?}");
            assert!(reads > 0, "{label}: no read finished");
            // Writes succeeded or failed with a typed error that says
            // whether they might have been applied.
            for (value, error) in &failed {
                let typed = matches!(
                    error.kind(),
                    ErrorKind::ConnectionLost
                        | ErrorKind::Timeout
                        | ErrorKind::Connect
                        | ErrorKind::LeaderChanged
                        | ErrorKind::NoLeader
                        | ErrorKind::Stopped
                        | ErrorKind::ServerTimeout
                        | ErrorKind::TimeoutDueToLeaderFail
                        | ErrorKind::TimeoutDueToConnectionLost
                );
                assert!(typed, "{label}: put {value}: {error}");
                // A write is surfaced only when retrying it was unsafe.
                assert_ne!(error.sent(), Sent::NotSent, "{label}: put {value}: {error}");
            }

            // No put was applied twice: read the history of every key,
            // revision by revision, and count each value's writes.
            let survivor = (leader + 1) % 3;
            let reader = Transport::builder([cluster.member(survivor).client_url()])
                .build()
                .unwrap();
            let head = get(&reader, "load/read").await.unwrap().header.unwrap().revision;
            let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
            for revision in 1..=head {
                for kv in range_at(&reader, "load/w", revision).await.unwrap().kvs {
                    if kv.mod_revision == revision {
                        let value = String::from_utf8(kv.value.to_vec()).unwrap();
                        seen.entry(value).or_default().push(revision);
                    }
                }
            }
            let twice: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
            assert!(twice.is_empty(), "{label}: applied more than once: {twice:?}");
            for (value, revision) in &applied {
                assert_eq!(
                    seen.get(value),
                    Some(&vec![*revision]),
                    "{label}: acknowledged put {value} is not in the history once"
                );
            }
            let unknown_applied = failed.iter().filter(|(v, _)| seen.contains_key(v)).count();
            eprintln!(
                "{label}: {unknown_applied} of {} failed puts were in fact applied (once)",
                failed.len()
            );
        })
        .await;
    }
}

/// Waits until `counter` reaches `n`.
async fn wait_for(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
