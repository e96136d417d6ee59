//! Quiet watchers (no event in their range for a while) survive a restart
//! that follows a compaction at the head revision, as busy ones do (issue
//! 17, item 2).
//!
//! A watcher resumes after a fault from its next revision. Without news
//! from the server, a quiet watcher's next revision stays where it was
//! created (or at its last event), and the resume after a compaction ends
//! it with `Compacted` although it missed nothing. The engine keeps next
//! revisions recent in two ways, and this test needs both:
//!
//! * every create asks for per-watcher progress notifications; on etcd
//!   3.5.1 and 3.4.23 (which answer progress requests out of order) the
//!   server is started with `--experimental-watch-progress-notify-interval=100ms`
//!   and those notifications are what keeps quiet watchers fresh;
//! * on etcd 3.5.30 (whose progress answers wait for every watcher to be
//!   synced) the server keeps its default interval (10 minutes), and the
//!   engine's own progress requests, on a short `progress_interval`, are
//!   what does it.
//!
//! The user is not root, with auth on and 2 s simple tokens: on 3.5.30 the
//! engine's `Status` check is refused (`PermissionDenied`), on the others it
//! reads the version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb::{
    watch_request::RequestUnion, ResponseHeader, StatusRequest, WatchResponse,
};
use etcd_tower_core::{Code, ErrorKind, EtcdError, RequestBody, Sent};
use etcd_tower_testkit::{binaries, Cluster, EtcdBinary};
use etcd_tower_watch::{WatchConfig, WatchEngine, WatchOptions, Watcher};
use futures::{FutureExt, StreamExt};
use support::etcd::{assert_same, bounded, expected, retrying, seen, transport, Seen};
use support::mock::{self, MockStream};
use support::token_stack::TokenStack;

/// The servers that answer progress requests in order (etcd PR 15237).
fn answers_in_order(bin: &EtcdBinary) -> bool {
    let version: Vec<u32> = bin
        .version()
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    match version[..] {
        [3, 4, patch, ..] => patch >= 24,
        [3, 5, patch, ..] => patch >= 8,
        [3, minor, ..] => minor > 5,
        _ => false,
    }
}

/// One watcher under test and what it should receive.
struct Watched {
    label: String,
    watcher: Watcher,
    key: Bytes,
    end: Bytes,
    prev_kv: bool,
    deletes: bool,
    quiet: bool,
    got: Vec<Seen>,
}

/// The 20 watchers: `(options, prev_kv, deletes, quiet)`. Busy ones over
/// `q/a/` and `q/b/` (prefixes, single keys, a range across both), quiet
/// ones over keys and prefixes that are never written until the end
/// marker, some inside the busy prefixes.
fn specs(from: i64) -> Vec<((&'static str, WatchOptions), bool, bool, bool)> {
    vec![
        (
            (
                "q/",
                WatchOptions::new().prefix().start_revision(from).prev_kv(),
            ),
            true,
            true,
            false,
        ),
        (("q/a/", WatchOptions::new().prefix()), false, true, false),
        (
            ("q/b/", WatchOptions::new().prefix().start_revision(from)),
            false,
            true,
            false,
        ),
        (("q/a/1", WatchOptions::new()), false, true, false),
        (
            ("q/b/2", WatchOptions::new().start_revision(from)),
            false,
            true,
            false,
        ),
        (
            ("q/a/", WatchOptions::new().prefix().no_delete()),
            false,
            false,
            false,
        ),
        (
            (
                "q/a/",
                WatchOptions::new().range_end("q/b/3").start_revision(from),
            ),
            false,
            true,
            false,
        ),
        (("q/b/t", WatchOptions::new()), false, true, false),
        (
            ("q/", WatchOptions::new().prefix().progress_notify()),
            false,
            true,
            false,
        ),
        (
            ("q/b/", WatchOptions::new().prefix().prev_kv()),
            true,
            true,
            false,
        ),
        (("q/a/never", WatchOptions::new()), false, true, true),
        (
            (
                "q/a/none/",
                WatchOptions::new().prefix().start_revision(from),
            ),
            false,
            true,
            true,
        ),
        (
            ("q/quiet/", WatchOptions::new().prefix()),
            false,
            true,
            true,
        ),
        (
            ("q/quiet/k", WatchOptions::new().start_revision(from)),
            false,
            true,
            true,
        ),
        (
            ("q/z/", WatchOptions::new().prefix().start_revision(from)),
            false,
            true,
            true,
        ),
        (("q/b/never", WatchOptions::new()), false, true, true),
        (
            ("q/c/", WatchOptions::new().prefix().progress_notify()),
            false,
            true,
            true,
        ),
        (
            (
                "q/quiet/",
                WatchOptions::new()
                    .prefix()
                    .no_delete()
                    .start_revision(from),
            ),
            false,
            false,
            true,
        ),
        (("q/zz", WatchOptions::new()), false, true, true),
        (
            (
                "q/b/none/",
                WatchOptions::new().prefix().start_revision(from),
            ),
            false,
            true,
            true,
        ),
    ]
}

/// One step of writes to the busy ranges: puts, deletes, transactions.
async fn write_step(root: &TokenStack, cycle: usize, i: usize) {
    let value = format!("c{cycle}-{i}");
    retrying("a write", || async {
        match i % 6 {
            0 => root.put(&format!("q/a/{}", i % 4), &value).await,
            1 => root.put(&format!("q/b/{}", i % 5), &value).await,
            2 => root
                .delete(&format!("q/a/{}", (i + 1) % 4))
                .await
                .map(|()| 0),
            3 => {
                root.put_all(&[
                    (format!("q/a/t{}", i % 2), value.clone()),
                    ("q/b/t".to_owned(), value.clone()),
                ])
                .await
            }
            4 => root.put("q/b/2", &value).await,
            _ => root.put("q/a/1", &value).await,
        }
    })
    .await;
}

/// The server's history of `q/` from `from` through `end`, read by a fresh
/// engine as root (before the compaction that follows).
async fn history(root: &TokenStack, from: i64, end: i64) -> Vec<Seen> {
    let engine = WatchEngine::new(root.clone());
    let mut watcher = bounded(
        20,
        "the history watch",
        engine.watch(
            "q/",
            WatchOptions::new().prefix().start_revision(from).prev_kv(),
        ),
    )
    .await
    .expect("the history watch");
    let mut all = Vec::new();
    bounded(20, "reading the history", async {
        while all.last().is_none_or(|s: &Seen| s.0 < end) {
            let batch = watcher
                .next()
                .await
                .unwrap()
                .expect("the history watch failed");
            all.extend(batch.events().iter().map(seen));
        }
    })
    .await;
    all.retain(|s| s.0 <= end);
    all
}

/// Takes what the watcher has received so far, without waiting; panics on
/// an error item (a `Compacted` one above all).
fn drain(w: &mut Watched) {
    while let Some(item) = w.watcher.next().now_or_never() {
        match item {
            Some(Ok(batch)) => w.got.extend(batch.events().iter().map(seen)),
            Some(Err(error)) => panic!("{}: the watcher failed: {error}", w.label),
            None => panic!("{}: the watcher ended", w.label),
        }
    }
}

/// Reads the watcher until an event at `end` or later.
async fn collect_until(w: &mut Watched, end: i64) {
    let label = w.label.clone();
    bounded(20, &format!("{label}: the end marker"), async {
        while w.got.last().is_none_or(|s| s.0 < end) {
            match w.watcher.next().await {
                Some(Ok(batch)) => w.got.extend(batch.events().iter().map(seen)),
                Some(Err(error)) => panic!("{label}: the watcher failed: {error}"),
                None => panic!("{label}: the watcher ended"),
            }
        }
    })
    .await;
}

const CYCLES: usize = 3;
const STEPS: usize = 18;
/// The simple tokens' TTL, in seconds.
const TOKEN_TTL: u64 = 2;

async fn one_version(bin: &EtcdBinary) {
    let label = bin.label();
    let started = Instant::now();
    let in_order = answers_in_order(bin);
    let mut builder = Cluster::builder(bin).auth_token_ttl(TOKEN_TTL);
    if !in_order {
        builder = builder.arg("--experimental-watch-progress-notify-interval=100ms");
    }
    let mut cluster = builder.start().await.unwrap();
    cluster.enable_auth("rootpw").await.unwrap();
    cluster.add_user("alice", "alicepw", "q/").await.unwrap();
    let endpoints = cluster.endpoints();
    let root = TokenStack::new(transport(&endpoints), ("root", "rootpw"));
    let alice = TokenStack::new(transport(&endpoints), ("alice", "alicepw"));
    let config = WatchConfig::default().progress_interval(Duration::from_millis(100));
    let engine = WatchEngine::with_config(alice.clone(), config);

    let from = root.head().await.unwrap() + 1;
    let mut watched = Vec::new();
    for (i, ((key, options), prev_kv, deletes, quiet)) in specs(from).into_iter().enumerate() {
        let watch = engine.watch(key, options.clone());
        let (key, end) = options.key_range(key);
        let name = format!(
            "{label}: #{i} {}..{}{}",
            String::from_utf8_lossy(&key),
            String::from_utf8_lossy(&end),
            if quiet { " (quiet)" } else { "" }
        );
        let watcher = bounded(20, &name, watch)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        watched.push(Watched {
            label: name,
            watcher,
            key,
            end,
            prev_kv,
            deletes,
            quiet,
            got: Vec::new(),
        });
    }

    let mut history_all = Vec::new();
    let mut cycle_start = from;
    for cycle in 0..CYCLES {
        for i in 0..STEPS {
            write_step(&root, cycle, i).await;
        }
        // The stream's token expires (watchers already created keep
        // delivering); meanwhile the server's notifications or the
        // engine's progress requests tell every watcher how far the store
        // has gone.
        tokio::time::sleep(Duration::from_millis(TOKEN_TTL * 1000 + 100)).await;
        let head = retrying("the head revision", || root.head()).await;
        history_all.extend(history(&root, cycle_start, head).await);
        retrying("the compaction", || root.compact(head)).await;
        for w in &mut watched {
            drain(w);
        }
        // The member restarts (forgetting every token); the watchers
        // resume from their next revisions, none of which may be below
        // the compaction.
        cluster.member(0).kill().unwrap();
        cluster.member(0).restart().await.unwrap();
        cycle_start = head + 1;
    }

    // The end marker, in every watcher's range, in one revision.
    let mut marker: Vec<(String, String)> = watched
        .iter()
        .map(|w| {
            let key = String::from_utf8_lossy(&w.key).into_owned();
            if w.end.is_empty() {
                key
            } else {
                format!("{key}~end")
            }
        })
        .map(|k| (k, "end".to_owned()))
        .collect();
    marker.sort();
    marker.dedup();
    let end = retrying("the end marker", || root.put_all(&marker)).await;
    history_all.extend(history(&root, cycle_start, end).await);

    for w in &mut watched {
        collect_until(w, end).await;
        w.got.retain(|s| s.0 <= end);
        let want = expected(&history_all, &w.key, &w.end, w.prev_kv, w.deletes);
        if w.quiet {
            assert!(
                !want.is_empty() && want.iter().all(|s| s.0 == end),
                "{}: only the end marker",
                w.label
            );
        } else {
            assert!(want.len() > CYCLES, "{}: too little history", w.label);
        }
        assert_same(&w.label, &w.got, &want);
    }
    println!(
        "{label}: {} watchers, {CYCLES} cycles, {} events in the history, in {:?}",
        watched.len(),
        history_all.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_watchers_survive_restarts_after_compactions() {
    for bin in binaries() {
        bounded(60, &bin.label(), one_version(&bin)).await;
    }
}

// The engine's side against a scripted server: which watchers a broadcast
// progress answer (`watch_id = -1`) moves.

fn on_member(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        member_id: 7,
        ..Default::default()
    }
}

/// The next message that is not a progress request (the engine's timer
/// sends those at any time).
async fn next_other(stream: &mut MockStream) -> RequestUnion {
    loop {
        match stream.next_request().await {
            Some(RequestUnion::ProgressRequest(_)) => {}
            Some(other) => return other,
            None => panic!("the engine closed the stream"),
        }
    }
}

async fn create(
    stream: &mut MockStream,
) -> etcd_tower_core::proto::etcdserverpb::WatchCreateRequest {
    match next_other(stream).await {
        RequestUnion::CreateRequest(create) => create,
        other => panic!("expected a create, got {other:?}"),
    }
}

fn created(stream: &MockStream, watch_id: i64, revision: i64) {
    stream.send(WatchResponse {
        header: Some(on_member(revision)),
        watch_id,
        created: true,
        ..Default::default()
    });
}

async fn nothing_for(watcher: &mut Watcher) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), watcher.next()).await {
        panic!("expected nothing, got {item:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_broadcast_progress_moves_only_watchers_confirmed_before_the_request() {
    let (service, mut calls) = mock::pair();
    let config = WatchConfig::default().progress_interval(Duration::from_millis(100));
    let engine = WatchEngine::with_config(service, config);

    // `active` is created and confirmed: the member shows itself (id 7)
    // and the engine checks its version once; a non-root user's `Status`
    // is refused on etcd 3.5.28+, which are all fixed.
    let e = engine.clone();
    let active =
        tokio::spawn(async move { e.watch("a", WatchOptions::new().start_revision(5)).await });
    let mut stream = mock::next_stream(&mut calls).await;
    let a = create(&mut stream).await;
    assert!(
        a.progress_notify,
        "every create asks for progress notifications"
    );
    stream.accept(None);
    created(&stream, a.watch_id, 10);
    let status = mock::next_unary(&mut calls).await;
    assert!(matches!(
        status.request.body,
        RequestBody::Status(StatusRequest {})
    ));
    status.fail(EtcdError::new(
        ErrorKind::PermissionDenied,
        Code::PermissionDenied,
        "etcdserver: permission denied",
        Sent::Rejected,
    ));
    let mut active = active.await.unwrap().unwrap();

    // `lagging` has a buffer of one batch: the second response does not
    // fit, and the engine cancels it.
    let e = engine.clone();
    let lagging = tokio::spawn(async move {
        e.watch("l", WatchOptions::new().start_revision(5).buffer(1))
            .await
    });
    let l = create(&mut stream).await;
    created(&stream, l.watch_id, 10);
    let mut lagging = lagging.await.unwrap().unwrap();
    stream.events(l.watch_id, 10, &[6]);
    stream.events(l.watch_id, 10, &[8]);
    assert!(
        matches!(next_other(&mut stream).await, RequestUnion::CancelRequest(c) if c.watch_id == l.watch_id)
    );

    // The engine's timer asks for progress (nobody else did).
    loop {
        if let Some(RequestUnion::ProgressRequest(_)) = stream.next_request().await {
            break;
        }
    }
    // `late` is created and confirmed after that request; `creating` has
    // sent its create, its answer is not there yet.
    let e = engine.clone();
    let late =
        tokio::spawn(async move { e.watch("t", WatchOptions::new().start_revision(5)).await });
    let t = create(&mut stream).await;
    created(&stream, t.watch_id, 10);
    let mut late = late.await.unwrap().unwrap();
    let e = engine.clone();
    let creating =
        tokio::spawn(async move { e.watch("c", WatchOptions::new().start_revision(5)).await });
    let c = create(&mut stream).await;

    // The answer moves `active` only, and no user sees it.
    stream.send(WatchResponse {
        header: Some(on_member(60)),
        watch_id: -1,
        ..Default::default()
    });
    created(&stream, c.watch_id, 60);
    let mut creating = creating.await.unwrap().unwrap();
    nothing_for(&mut active).await;
    nothing_for(&mut late).await;
    nothing_for(&mut creating).await;

    // The stream breaks: `active` resumes after 60, the others from where
    // they were asked to start (`lagging`, once drained, after its last
    // event).
    stream.fail(EtcdError::new(
        ErrorKind::ConnectionLost,
        Code::Unavailable,
        "connection reset",
        Sent::MayHaveBeenApplied,
    ));
    let mut stream = mock::next_stream(&mut calls).await;
    let mut starts = vec![];
    for _ in 0..3 {
        let create = create(&mut stream).await;
        starts.push((create.key, create.start_revision));
    }
    stream.accept(None);
    let batch = tokio::time::timeout(mock::STEP, lagging.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(batch.events().len(), 1);
    let create_l = create(&mut stream).await;
    starts.push((create_l.key, create_l.start_revision));
    starts.sort();
    assert_eq!(
        starts,
        [
            (Bytes::from_static(b"a"), 61),
            (Bytes::from_static(b"c"), 5),
            (Bytes::from_static(b"l"), 7),
            (Bytes::from_static(b"t"), 5),
        ]
    );
    drop(engine);
}
