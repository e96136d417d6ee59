//! Go's `client/v3/experimental/recipes` in Rust, against real etcd
//! (every version of the test kit): RwMutex, Queue, PriorityQueue,
//! Barrier, DoubleBarrier and `wait_events`. Each test checks the
//! semantics, that a dropped wait leaves no key of its own behind (read
//! from the server), and the key layout against Go's source: etcd
//! v3.5.30's `client/v3/experimental/recipes/{rwmutex,queue,
//! priority_queue,barrier,double_barrier,key}.go` (the same layouts as
//! v3.4.23's `contrib/recipes`, from Debian's `golang-etcd-server-dev`,
//! except the double barrier's `Enter`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_tower::concurrency::{
    wait_events, wait_prefix_events, Barrier, DoubleBarrier, EventKind, PriorityQueue, Queue,
    RwMutex, Session,
};
use etcd_tower::{Client, ErrorKind, GetOptions, KeyValue};
use support::{each_version, single};
use tokio::time::timeout;

/// Every key under `prefix`, in key order.
async fn keys(client: &Client, prefix: &str) -> Vec<KeyValue> {
    client
        .get_with(prefix, GetOptions::new().prefix())
        .await
        .unwrap()
        .into_kvs()
}

/// Waits (bounded) until `prefix` holds exactly `n` keys: removals of
/// abandoned keys run in the background, right after the drop.
async fn until_keys(client: &Client, prefix: &str, n: usize, what: &str) -> Vec<KeyValue> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = keys(client, prefix).await;
        if found.len() == n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} keys under {prefix}, expected {n}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `text` is `<prefix><decimal digits>` (Go's `%s/%v` of
/// `time.Now().UnixNano()`, key.go's `newUniqueKV`).
fn is_unique_key(key: &[u8], prefix: &str) -> bool {
    let key = std::str::from_utf8(key).unwrap();
    key.strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

const BOUND: Duration = Duration::from_secs(5);

/// Readers hold the lock together; a writer waits for them, and a reader
/// that asks after a waiting writer waits behind it; a fenced counter
/// under the write lock counts exactly. Keys are Go's
/// (rwmutex.go v3.5.30: `<prefix>/read/<ns>`, `<prefix>/write/<ns>`, empty,
/// on the session's lease). A write lock given up mid-wait leaves no key.
#[tokio::test]
async fn rwmutex_readers_share_writers_exclude_and_a_waiting_writer_blocks_readers() {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        let sessions: Vec<Session> = {
            let mut sessions = Vec::new();
            for _ in 0..4 {
                sessions.push(Session::with_ttl(&client, 30).await.unwrap());
            }
            sessions
        };
        let mut reader_a = RwMutex::new(&sessions[0], "rw/doc");
        let mut reader_b = RwMutex::new(&sessions[1], "rw/doc");
        // Readers share.
        timeout(BOUND, reader_a.read_lock()).await.unwrap().unwrap();
        timeout(BOUND, reader_b.read_lock()).await.unwrap().unwrap();
        let held = keys(&client, "rw/doc/").await;
        assert_eq!(held.len(), 2, "{label}");
        for kv in &held {
            assert!(is_unique_key(kv.key(), "rw/doc/read/"), "{label}: {kv:?}");
            assert!(kv.value().is_empty(), "{label}");
        }
        let leases: BTreeSet<i64> = held.iter().map(KeyValue::lease).collect();
        let expected: BTreeSet<i64> = [sessions[0].lease_id(), sessions[1].lease_id()].into();
        assert_eq!(leases, expected, "{label}: keys on the sessions' leases");

        // A given-up writer leaves no key.
        let mut quitter = RwMutex::new(&sessions[3], "rw/doc");
        assert!(timeout(Duration::from_millis(200), quitter.lock())
            .await
            .is_err());
        until_keys(&client, "rw/doc/", 2, &format!("{label}: given-up writer")).await;

        // A writer waits for the readers.
        let writer_session = sessions[2].clone();
        let writer = tokio::spawn(async move {
            let mut writer = RwMutex::new(&writer_session, "rw/doc");
            writer.lock().await.unwrap();
            writer
        });
        let with_writer = until_keys(&client, "rw/doc/", 3, &label).await;
        let write_key = with_writer
            .iter()
            .find(|kv| is_unique_key(kv.key(), "rw/doc/write/"))
            .expect("the writer's key is <prefix>/write/<ns>");
        assert_eq!(write_key.lease(), sessions[2].lease_id(), "{label}");
        // A reader asking now queues behind the waiting writer.
        let late_session = sessions[3].clone();
        let late_reader = tokio::spawn(async move {
            let mut reader = RwMutex::new(&late_session, "rw/doc");
            reader.read_lock().await.unwrap();
            reader
        });
        until_keys(&client, "rw/doc/", 4, &label).await;
        assert!(
            !writer.is_finished(),
            "{label}: writer got in beside readers"
        );
        reader_a.unlock().await.unwrap();
        reader_b.unlock().await.unwrap();
        let mut writer = timeout(BOUND, writer).await.unwrap().unwrap();
        assert!(
            !late_reader.is_finished(),
            "{label}: a reader that asked after a waiting writer got in with it"
        );
        writer.unlock().await.unwrap();
        let mut late_reader = timeout(BOUND, late_reader).await.unwrap().unwrap();
        late_reader.unlock().await.unwrap();
        until_keys(&client, "rw/doc/", 0, &label).await;

        // Writers exclude each other and the readers: a fenced counter.
        client.put("rw/counter", "0").await.unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = sessions
            .iter()
            .enumerate()
            .map(|(i, session)| {
                let (client, session, inside) = (client.clone(), session.clone(), inside.clone());
                tokio::spawn(async move {
                    let mut lock = RwMutex::new(&session, "rw/doc");
                    for round in 0..4 {
                        if (i + round) % 3 == 0 {
                            lock.read_lock().await.unwrap();
                            lock.unlock().await.unwrap();
                            continue;
                        }
                        lock.lock().await.unwrap();
                        assert_eq!(
                            inside.fetch_add(1, Ordering::SeqCst),
                            0,
                            "two writers inside"
                        );
                        let now = client.get("rw/counter").await.unwrap();
                        let n: u64 = now.kvs()[0].value_str().unwrap().parse().unwrap();
                        client.put("rw/counter", (n + 1).to_string()).await.unwrap();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        lock.unlock().await.unwrap();
                    }
                })
            })
            .collect();
        let mut writes = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            timeout(BOUND, task).await.unwrap().unwrap();
            writes += (0..4).filter(|round| (i + round) % 3 != 0).count();
        }
        let counter = client.get("rw/counter").await.unwrap();
        assert_eq!(
            counter.kvs()[0].value_str().unwrap(),
            writes.to_string(),
            "{label}"
        );
        until_keys(&client, "rw/doc/", 0, &label).await;
        eprintln!("{label}: rwmutex in {:?}", started.elapsed());
    })
    .await;
}

/// Four sessions take read and write locks, half of the attempts given up
/// after 0..20 ms (before the put, while queued, just as granted): no
/// writer is ever inside with anyone else, and once all are done no key is
/// left although every session is still alive.
#[tokio::test]
async fn rwmutex_attempts_given_up_at_any_point_leave_no_key() {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        let readers = Arc::new(AtomicUsize::new(0));
        let writers = Arc::new(AtomicUsize::new(0));
        let gave_up = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4u64)
            .map(|task| {
                let client = client.clone();
                let (readers, writers, gave_up) =
                    (readers.clone(), writers.clone(), gave_up.clone());
                tokio::spawn(async move {
                    let session = Session::with_ttl(&client, 30).await.unwrap();
                    let mut lock = RwMutex::new(&session, "rw/stress");
                    for round in 0..10u64 {
                        let write = (task + round) % 3 == 0;
                        let patience = Duration::from_millis((task * 7 + round * 3) % 20);
                        let attempt = async {
                            if write {
                                lock.lock().await
                            } else {
                                lock.read_lock().await
                            }
                        };
                        let locked = if round % 2 == 0 {
                            timeout(BOUND, attempt).await.unwrap()
                        } else {
                            match timeout(patience, attempt).await {
                                Ok(locked) => locked,
                                Err(_) => {
                                    gave_up.fetch_add(1, Ordering::SeqCst);
                                    continue;
                                }
                            }
                        };
                        locked.unwrap();
                        if write {
                            assert_eq!(writers.fetch_add(1, Ordering::SeqCst), 0, "two writers");
                            assert_eq!(readers.load(Ordering::SeqCst), 0, "a writer among readers");
                        } else {
                            readers.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(
                                writers.load(Ordering::SeqCst),
                                0,
                                "a reader beside a writer"
                            );
                        }
                        tokio::task::yield_now().await;
                        if write {
                            writers.fetch_sub(1, Ordering::SeqCst);
                        } else {
                            readers.fetch_sub(1, Ordering::SeqCst);
                        }
                        lock.unlock().await.unwrap();
                    }
                    session
                })
            })
            .collect();
        let mut sessions = Vec::new();
        for task in tasks {
            sessions.push(
                timeout(Duration::from_secs(20), task)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert!(sessions.iter().all(Session::is_alive), "{label}");
        until_keys(&client, "rw/stress/", 0, &label).await;
        eprintln!(
            "{label}: {} rwmutex attempts given up, no key left, in {:?}",
            gave_up.load(Ordering::SeqCst),
            started.elapsed()
        );
    })
    .await;
}

/// Two consumers share one queue: every item is dequeued exactly once, and
/// each consumer sees them in the order enqueued. A dequeue waits on an
/// empty queue until an item comes. Keys are Go's (queue.go and key.go
/// v3.5.30: `<prefix>/<ns>`, the item as value, no lease).
#[tokio::test]
async fn queue_is_fifo_and_exactly_once_with_two_consumers() {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        let queue = Queue::new(&client, "jobs");
        // A dequeue waits for the first item.
        let first = tokio::spawn({
            let queue = queue.clone();
            async move { queue.dequeue().await.unwrap() }
        });
        queue.enqueue("first").await.unwrap();
        assert_eq!(
            timeout(BOUND, first).await.unwrap().unwrap(),
            "first",
            "{label}"
        );

        const ITEMS: usize = 40;
        for i in 0..ITEMS {
            queue.enqueue(format!("{i:03}")).await.unwrap();
        }
        let stored = keys(&client, "jobs/").await;
        assert_eq!(stored.len(), ITEMS, "{label}");
        for kv in &stored {
            assert!(is_unique_key(kv.key(), "jobs/"), "{label}: {kv:?}");
            assert_eq!(kv.lease(), 0, "{label}: queue items have no lease");
        }
        assert_eq!(stored[0].value_str().unwrap(), "000", "{label}");
        queue.enqueue("stop").await.unwrap();
        queue.enqueue("stop").await.unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let queue = Queue::new(&client, "jobs");
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let item = queue.dequeue().await.unwrap();
                        if item == "stop" {
                            return got;
                        }
                        got.push(String::from_utf8(item.to_vec()).unwrap());
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for consumer in consumers {
            let got = timeout(BOUND, consumer).await.unwrap().unwrap();
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(got, sorted, "{label}: a consumer saw items out of order");
            all.extend(got);
        }
        all.sort();
        let expected: Vec<String> = (0..ITEMS).map(|i| format!("{i:03}")).collect();
        assert_eq!(all, expected, "{label}: every item exactly once");
        assert!(keys(&client, "jobs/").await.is_empty(), "{label}");
        eprintln!("{label}: queue in {:?}", started.elapsed());
    })
    .await;
}

/// Four producers and four consumers move 1,000 items through a Queue and a
/// PriorityQueue at once: each item is consumed exactly once, every
/// consumer sees each producer's items in the order they were enqueued,
/// and in the priority queue every consumer sees non-decreasing priorities
/// once all items are in.
#[tokio::test]
async fn four_producers_and_four_consumers_share_each_queue() {
    each_version(90, |bin| async move {
        let started = Instant::now();
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        const PER_PRODUCER: usize = 250;
        // FIFO: producers and consumers run at the same time.
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let queue = Queue::new(&client, "mpmc");
                tokio::spawn(async move {
                    for i in 0..PER_PRODUCER {
                        queue.enqueue(format!("{p}-{i:03}")).await.unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let queue = Queue::new(&client, "mpmc");
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let item = String::from_utf8(queue.dequeue().await.unwrap().to_vec()).unwrap();
                        if item == "stop" {
                            return got;
                        }
                        got.push(item);
                    }
                })
            })
            .collect();
        for producer in producers {
            timeout(Duration::from_secs(60), producer).await.unwrap().unwrap();
        }
        let queue = Queue::new(&client, "mpmc");
        for _ in 0..4 {
            queue.enqueue("stop").await.unwrap();
        }
        let mut all = Vec::new();
        for consumer in consumers {
            let got = timeout(Duration::from_secs(60), consumer).await.unwrap().unwrap();
            for p in 0..4 {
                let mine: Vec<&String> = got.iter().filter(|item| item.starts_with(&format!("{p}-"))).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "{label}: producer {p} out of order");
            }
            all.extend(got);
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4 * PER_PRODUCER, "{label}: every item exactly once");
        let fifo = started.elapsed();

        // By priority: all items in first, then four consumers.
        let producers: Vec<_> = (0..4u16)
            .map(|p| {
                let queue = PriorityQueue::new(&client, "mpmc-pq");
                tokio::spawn(async move {
                    for i in 0..PER_PRODUCER as u16 {
                        let priority = (i * 7 + p) % 5;
                        queue.enqueue(format!("{priority}-{p}-{i:03}"), priority).await.unwrap();
                    }
                    queue.enqueue("stop", u16::MAX).await.unwrap();
                })
            })
            .collect();
        for producer in producers {
            timeout(Duration::from_secs(60), producer).await.unwrap().unwrap();
        }
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let queue = PriorityQueue::new(&client, "mpmc-pq");
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let item = String::from_utf8(queue.dequeue().await.unwrap().to_vec()).unwrap();
                        if item == "stop" {
                            return got;
                        }
                        got.push(item);
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for consumer in consumers {
            let got = timeout(Duration::from_secs(60), consumer).await.unwrap().unwrap();
            let priorities: Vec<&str> = got.iter().map(|item| &item[..1]).collect();
            assert!(priorities.windows(2).all(|w| w[0] <= w[1]), "{label}: priorities out of order");
            all.extend(got);
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4 * PER_PRODUCER, "{label}: every item exactly once");
        assert!(keys(&client, "mpmc").await.is_empty(), "{label}");
        eprintln!(
            "{label}: {} items through each queue by 4 producers and 4 consumers: FIFO {fifo:?}, all {:?}",
            4 * PER_PRODUCER,
            started.elapsed()
        );
    })
    .await;
}

/// Dequeues given up at every point (waiting on an empty queue, before the
/// claim, with the claim in flight, just after it) lose no item: an item
/// taken that nobody read is put back, and draining the queue afterwards
/// yields every item exactly once.
#[tokio::test]
async fn a_dropped_dequeue_loses_no_item() {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        let queue = Queue::new(&client, "drops");
        // Given up on an empty queue: the next item is not taken by it.
        assert!(timeout(Duration::from_millis(50), queue.dequeue())
            .await
            .is_err());
        queue.enqueue("after").await.unwrap();
        assert_eq!(
            timeout(BOUND, queue.dequeue()).await.unwrap().unwrap(),
            "after",
            "{label}"
        );

        const ITEMS: usize = 30;
        for i in 0..ITEMS {
            queue.enqueue(format!("{i:03}")).await.unwrap();
        }
        let mut got = Vec::new();
        let mut dropped = 0;
        for attempt in 0..60u64 {
            // 0..3 ms, in 100 µs steps: lands before, during and after the claim.
            let patience = Duration::from_micros((attempt * 370) % 3000);
            match timeout(patience, queue.dequeue()).await {
                Ok(item) => got.push(String::from_utf8(item.unwrap().to_vec()).unwrap()),
                Err(_) => dropped += 1,
            }
            if got.len() == ITEMS {
                break;
            }
        }
        // Put-backs run in the background: wait until every item is
        // either read or back in the queue.
        let deadline = Instant::now() + BOUND;
        loop {
            let left = keys(&client, "drops/").await.len();
            if left + got.len() == ITEMS {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{label}: {} read + {left} in the queue of {ITEMS} items: some were lost",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while got.len() < ITEMS {
            let item = timeout(BOUND, queue.dequeue()).await.unwrap().unwrap();
            got.push(String::from_utf8(item.to_vec()).unwrap());
        }
        got.sort();
        let expected: Vec<String> = (0..ITEMS).map(|i| format!("{i:03}")).collect();
        assert_eq!(got, expected, "{label}: every item exactly once");
        assert!(keys(&client, "drops/").await.is_empty(), "{label}");
        eprintln!(
            "{label}: {dropped} dequeues dropped, nothing lost, in {:?}",
            started.elapsed()
        );
    })
    .await;
}

/// Items come out by priority (lowest number first), FIFO within one
/// priority, to two consumers, each exactly once. Keys are Go's
/// (priority_queue.go and key.go v3.5.30: `<prefix>/<%05d>/<%016d>`, the
/// item as value, no lease, bookkeeping key `__<prefix>/<%05d>`).
#[tokio::test]
async fn priority_queue_serves_by_priority() {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        let queue = PriorityQueue::new(&client, "pq");
        let items: [(u16, &str); 7] = [
            (5, "e1"),
            (1, "b1"),
            (3, "d1"),
            (1, "b2"),
            (0, "a1"),
            (5, "e2"),
            (2, "c1"),
        ];
        for (priority, item) in items {
            queue.enqueue(item, priority).await.unwrap();
        }
        let stored: Vec<String> = keys(&client, "pq/")
            .await
            .iter()
            .map(|kv| kv.key_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            stored,
            [
                "pq/00000/0000000000000000",
                "pq/00001/0000000000000000",
                "pq/00001/0000000000000001",
                "pq/00002/0000000000000000",
                "pq/00003/0000000000000000",
                "pq/00005/0000000000000000",
                "pq/00005/0000000000000001",
            ],
            "{label}"
        );
        let bookkeeping = keys(&client, "__pq/").await;
        assert_eq!(
            bookkeeping.len(),
            5,
            "{label}: one __<prefix> key per priority"
        );
        assert!(keys(&client, "pq/").await.iter().all(|kv| kv.lease() == 0));
        let mut order = Vec::new();
        for _ in 0..items.len() {
            let item = timeout(BOUND, queue.dequeue()).await.unwrap().unwrap();
            order.push(String::from_utf8(item.to_vec()).unwrap());
        }
        assert_eq!(order, ["a1", "b1", "b2", "c1", "d1", "e1", "e2"], "{label}");

        // Two consumers, a dequeue waiting for an urgent item.
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.dequeue().await.unwrap() }
        });
        queue.enqueue("urgent", 0).await.unwrap();
        assert_eq!(
            timeout(BOUND, waiting).await.unwrap().unwrap(),
            "urgent",
            "{label}"
        );
        for i in 0..20u16 {
            queue
                .enqueue(format!("{:02}-{i:02}", i % 4), i % 4)
                .await
                .unwrap();
        }
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..10 {
                        got.push(
                            String::from_utf8(queue.dequeue().await.unwrap().to_vec()).unwrap(),
                        );
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for consumer in consumers {
            let got = timeout(BOUND, consumer).await.unwrap().unwrap();
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(
                got, sorted,
                "{label}: a consumer saw priorities out of order"
            );
            all.extend(got);
        }
        assert_eq!(
            all.iter().collect::<BTreeSet<_>>().len(),
            20,
            "{label}: exactly once"
        );
        assert!(keys(&client, "pq/").await.is_empty(), "{label}");
        eprintln!("{label}: priority queue in {:?}", started.elapsed());
    })
    .await;
}

/// Five waiters block on a held barrier (through an unrelated write, which
/// makes Go's `Wait` miss the release) and all go on at its release; a
/// wait on a barrier not held returns at once; a dropped wait leaves
/// nothing. The barrier is Go's (barrier.go v3.5.30: the key itself,
/// empty, no lease).
#[tokio::test]
async fn barrier_releases_every_waiter_together() {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        let barrier = Barrier::new(&client, "gates/deploy");
        timeout(BOUND, barrier.wait()).await.unwrap().unwrap();
        assert!(barrier.hold().await.unwrap(), "{label}");
        assert!(!barrier.hold().await.unwrap(), "{label}: held twice");
        // Any write after the hold makes Go's `Wait` (a put, then a delete,
        // from the revision it reads) miss the release.
        client.put("gates/unrelated", "write").await.unwrap();
        let gate = keys(&client, "gates/deploy").await;
        assert_eq!(gate.len(), 1, "{label}");
        assert_eq!(
            (gate[0].key(), gate[0].value(), gate[0].lease()),
            (&b"gates/deploy"[..], &b""[..], 0)
        );
        assert!(timeout(Duration::from_millis(50), barrier.wait())
            .await
            .is_err());

        let released = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(tokio::sync::Barrier::new(6));
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let (barrier, released, ready) = (
                    Barrier::new(&client, "gates/deploy"),
                    released.clone(),
                    ready.clone(),
                );
                tokio::spawn(async move {
                    ready.wait().await;
                    barrier.wait().await.unwrap();
                    assert!(
                        released.load(Ordering::SeqCst),
                        "went on before the release"
                    );
                })
            })
            .collect();
        ready.wait().await;
        tokio::task::yield_now().await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "{label}");
        released.store(true, Ordering::SeqCst);
        barrier.release().await.unwrap();
        for waiter in waiters {
            timeout(BOUND, waiter).await.unwrap().unwrap();
        }
        assert!(keys(&client, "gates/deploy").await.is_empty(), "{label}");
        eprintln!("{label}: barrier in {:?}", started.elapsed());
    })
    .await;
}

/// Five processes enter a double barrier of five only once all five have
/// entered, and leave only once all five have left; a sixth is refused
/// with its key removed; an enter given up mid-wait leaves no key. Keys
/// are Go's (double_barrier.go v3.5.30: `<key>/waiters/<ns>` empty on the
/// session's lease, `<key>/ready` empty without a lease).
#[tokio::test]
async fn double_barrier_enters_and_leaves_together() {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        let mut sessions = Vec::new();
        for _ in 0..6 {
            sessions.push(Session::with_ttl(&client, 30).await.unwrap());
        }
        // Given up while waiting for the group: no key left.
        let mut early = DoubleBarrier::new(&sessions[5], "rounds/1", 5);
        assert!(timeout(Duration::from_millis(100), early.enter())
            .await
            .is_err());
        until_keys(&client, "rounds/1/", 0, &format!("{label}: given-up enter")).await;

        let entering = Arc::new(AtomicUsize::new(0));
        // Keeps the five inside until the sixth was refused.
        let inside = Arc::new(tokio::sync::Barrier::new(6));
        let leaving = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = sessions[..5]
            .iter()
            .map(|session| {
                let (client, session) = (client.clone(), session.clone());
                let (entering, leaving, inside) =
                    (entering.clone(), leaving.clone(), inside.clone());
                tokio::spawn(async move {
                    let mut barrier = DoubleBarrier::new(&session, "rounds/1", 5);
                    entering.fetch_add(1, Ordering::SeqCst);
                    barrier.enter().await.unwrap();
                    assert_eq!(
                        entering.load(Ordering::SeqCst),
                        5,
                        "entered before all came"
                    );
                    let key = barrier.key().unwrap().to_vec();
                    let mine = client.get(key).await.unwrap();
                    let mine = mine.kvs().first().cloned();
                    inside.wait().await;
                    leaving.fetch_add(1, Ordering::SeqCst);
                    barrier.leave().await.unwrap();
                    assert_eq!(leaving.load(Ordering::SeqCst), 5, "left before all left");
                    (session, mine)
                })
            })
            .collect();
        // All five in: a sixth is refused, and its key removed.
        let waiter_keys = until_keys(&client, "rounds/1/waiters/", 5, &label).await;
        let mut late = DoubleBarrier::new(&sessions[5], "rounds/1", 5);
        let refused = timeout(BOUND, late.enter()).await.unwrap().unwrap_err();
        assert_eq!(
            refused.kind(),
            &ErrorKind::InvalidRequest,
            "{label}: {refused}"
        );
        assert!(late.key().is_none());
        until_keys(&client, "rounds/1/waiters/", 5, &label).await;
        inside.wait().await;
        for kv in &waiter_keys {
            assert!(
                is_unique_key(kv.key(), "rounds/1/waiters/"),
                "{label}: {kv:?}"
            );
            assert!(kv.value().is_empty() && kv.lease() != 0, "{label}");
        }
        for task in tasks {
            let (session, mine) = timeout(BOUND, task).await.unwrap().unwrap();
            let mine = mine.expect("its key existed while entered");
            assert_eq!(mine.lease(), session.lease_id(), "{label}");
        }
        assert!(
            keys(&client, "rounds/1").await.is_empty(),
            "{label}: waiters or ready left"
        );
        eprintln!("{label}: double barrier in {:?}", started.elapsed());
    })
    .await;
}

/// The oldest member of a double barrier gives up on `leave` while the
/// other is still inside: its key is removed, and the other then leaves
/// alone, clearing every key of the barrier.
#[tokio::test]
async fn a_dropped_leave_leaves_no_key() {
    each_version(30, |bin| async move {
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        let first = Session::with_ttl(&client, 30).await.unwrap();
        let second = Session::with_ttl(&client, 30).await.unwrap();
        let entering = tokio::spawn(async move {
            let mut barrier = DoubleBarrier::new(&first, "rounds/2", 2);
            barrier.enter().await.unwrap();
            barrier
        });
        // The first to enter has the oldest key.
        until_keys(&client, "rounds/2/waiters/", 1, &label).await;
        let mut other = DoubleBarrier::new(&second, "rounds/2", 2);
        timeout(BOUND, other.enter()).await.unwrap().unwrap();
        let mut oldest = timeout(BOUND, entering).await.unwrap().unwrap();
        // It waits for the other to leave first; it gives up instead.
        assert!(timeout(Duration::from_millis(100), oldest.leave())
            .await
            .is_err());
        let left = until_keys(&client, "rounds/2/waiters/", 1, &label).await;
        assert_eq!(
            Some(left[0].key()),
            other.key(),
            "{label}: the given-up key stayed"
        );
        timeout(BOUND, other.leave()).await.unwrap().unwrap();
        assert!(keys(&client, "rounds/2").await.is_empty(), "{label}");
    })
    .await;
}

/// `wait_events` waits for a sequence of events of one key from a
/// revision (Go's `WaitEvents`), `wait_prefix_events` of a prefix; a
/// change between the read and the watch is not missed.
#[tokio::test]
async fn wait_events_sees_the_sequence_from_the_read_revision() {
    each_version(30, |bin| async move {
        let label = bin.label();
        let (_cluster, client) = single(&bin).await;
        client.put("w/owner", "a").await.unwrap();
        let read = client.get("w/owner").await.unwrap();
        // Deleted after the read, before the wait starts: still seen.
        client.delete("w/owner").await.unwrap();
        let deleted = timeout(
            BOUND,
            wait_events(&client, "w/owner", read.revision(), &[EventKind::Delete]),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(deleted.kind(), EventKind::Delete, "{label}");
        let from = client.get("w/").await.unwrap().revision() + 1;
        let sequence = tokio::spawn({
            let client = client.clone();
            async move {
                wait_prefix_events(&client, "w/", from, &[EventKind::Put, EventKind::Delete]).await
            }
        });
        client.put("w/x", "1").await.unwrap();
        client.put("w/x", "2").await.unwrap();
        client.delete("w/x").await.unwrap();
        let last = timeout(BOUND, sequence).await.unwrap().unwrap().unwrap();
        assert_eq!(last.kind(), EventKind::Delete, "{label}");
        assert_eq!(last.key_str(), Ok("w/x"), "{label}");
        let none = wait_events(&client, "w/owner", 1, &[]).await.unwrap_err();
        assert_eq!(none.kind(), &ErrorKind::InvalidRequest, "{label}");
    })
    .await;
}
