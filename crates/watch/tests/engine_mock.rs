//! The engine's state machine against a scripted server (no etcd needed):
//! id assignment, create ordering, fragments, resume revisions, progress,
//! compaction, lagging watchers, and the auth probe episode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::watch_request::RequestUnion;
use etcd_tower_core::proto::etcdserverpb::WatchResponse;
use etcd_tower_core::{Code, ErrorKind, EtcdError, Sent};
use etcd_tower_watch::{WatchBatch, WatchConfig, WatchEngine, WatchOptions, Watcher};
use futures::StreamExt;
use support::mock::{self, header, put, STEP};

fn revs(batch: &WatchBatch) -> Vec<i64> {
    batch
        .events()
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect()
}

async fn next_batch(watcher: &mut Watcher) -> WatchBatch {
    tokio::time::timeout(STEP, watcher.next())
        .await
        .expect("no batch in time")
        .expect("the watcher ended")
        .expect("the watcher failed")
}

async fn next_error(watcher: &mut Watcher) -> EtcdError {
    match tokio::time::timeout(STEP, watcher.next()).await {
        Ok(Some(Err(error))) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Awaits a spawned task, bounded.
async fn join<T>(handle: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(STEP, handle)
        .await
        .expect("the task did not finish in time")
        .expect("the task panicked")
}

async fn expect_nothing(watcher: &mut Watcher) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(150), watcher.next()).await {
        panic!("expected nothing, got {item:?}");
    }
}

fn unavailable() -> EtcdError {
    EtcdError::new(
        ErrorKind::ConnectionLost,
        Code::Unavailable,
        "connection reset",
        Sent::MayHaveBeenApplied,
    )
}

#[tokio::test]
async fn watchers_share_one_stream_with_ids_from_one_and_creates_answered_in_order() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let first = tokio::spawn({
        let engine = engine.clone();
        async move { engine.watch("a", WatchOptions::new()).await }
    });
    let mut stream = mock::next_stream(&mut calls).await;
    assert!(!stream.require_leader);
    let create = stream.next_create().await;
    assert_eq!(create.watch_id, 1, "ids start at 1, never 0");
    assert_eq!(create.key.as_ref(), b"a");
    assert_eq!(create.start_revision, 0);
    stream.accept(None);

    let second = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .watch("p/", WatchOptions::new().prefix().start_revision(3))
                .await
        }
    });
    let create = stream.next_create().await;
    assert_eq!(create.watch_id, 2);
    assert_eq!(create.range_end.as_ref(), b"p0");
    assert_eq!(create.start_revision, 3);

    stream.created(1, 10);
    stream.created(2, 10);
    let mut first = join(first).await.unwrap();
    let mut second = join(second).await.unwrap();
    assert_ne!(first.id(), second.id());

    stream.events(1, 11, &[11]);
    stream.events(2, 11, &[3, 4]);
    assert_eq!(revs(&next_batch(&mut first).await), [11]);
    assert_eq!(revs(&next_batch(&mut second).await), [3, 4]);

    // Dropping a watcher cancels it; dropping the last closes the stream.
    drop(first);
    assert_eq!(stream.next_cancel().await, 1);
    drop(second);
    assert_eq!(stream.next_cancel().await, 2);
    assert!(
        stream.next_request().await.is_none(),
        "the outbound side ends"
    );
    tokio::time::timeout(STEP, async {
        while !stream.is_closed_by_client() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stream was not closed");
}

#[tokio::test]
async fn require_leader_watchers_get_their_own_stream() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let plain = tokio::spawn({
        let engine = engine.clone();
        async move { engine.watch("a", WatchOptions::new()).await }
    });
    let mut plain_stream = mock::next_stream(&mut calls).await;
    plain_stream.next_create().await;
    plain_stream.accept(None);
    plain_stream.created(1, 5);
    let _plain = join(plain).await.unwrap();

    let leader = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .watch("b", WatchOptions::new().require_leader())
                .await
        }
    });
    let mut leader_stream = mock::next_stream(&mut calls).await;
    assert!(leader_stream.require_leader);
    let create = leader_stream.next_create().await;
    assert_eq!(create.key.as_ref(), b"b");
    leader_stream.accept(None);
    leader_stream.created(create.watch_id, 5);
    let _leader = join(leader).await.unwrap();
    plain_stream.expect_silence().await;
}

#[tokio::test]
async fn fragments_are_joined_into_one_batch() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let watch = tokio::spawn(async move {
        let w = engine.watch("a", WatchOptions::new().fragment()).await;
        (engine, w)
    });
    let mut stream = mock::next_stream(&mut calls).await;
    let create = stream.next_create().await;
    assert!(create.fragment);
    stream.accept(None);
    stream.created(1, 10);
    let (_engine, watcher) = join(watch).await;
    let mut watcher = watcher.unwrap();
    for (revs, fragment) in [(&[11, 12][..], true), (&[13][..], true), (&[14][..], false)] {
        stream.send(WatchResponse {
            header: Some(header(14)),
            watch_id: 1,
            fragment,
            events: revs.iter().map(|&r| put(r)).collect(),
            ..Default::default()
        });
    }
    let batch = next_batch(&mut watcher).await;
    assert_eq!(revs(&batch), [11, 12, 13, 14]);
    assert_eq!(batch.revision(), 14);
}

#[tokio::test]
async fn a_broken_stream_resumes_every_watcher_from_its_next_revision() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let e = engine.clone();
    let now = tokio::spawn(async move { e.watch("now", WatchOptions::new()).await });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(None);
    let e = engine.clone();
    let historical =
        tokio::spawn(async move { e.watch("old", WatchOptions::new().start_revision(5)).await });
    stream.next_create().await;
    let e = engine.clone();
    // It asks for progress notifications: the engine's own ones (every
    // create asks the server for them) are hidden from a watcher that did not.
    let quiet = tokio::spawn(async move {
        e.watch("quiet", WatchOptions::new().progress_notify())
            .await
    });
    stream.next_create().await;
    stream.created(1, 10);
    stream.created(2, 10);
    stream.created(3, 10);
    let mut now = join(now).await.unwrap();
    let mut historical = join(historical).await.unwrap();
    let mut quiet = join(quiet).await.unwrap();

    stream.events(1, 12, &[11, 12]);
    assert_eq!(revs(&next_batch(&mut now).await), [11, 12]);
    // The historical watcher has seen nothing yet: its created header (10)
    // does not mean 5..=10 were delivered.
    // A broadcast progress (-1) does not move anyone forward either.
    stream.progress(-1, 30);
    assert!(next_batch(&mut now).await.is_progress_notify());
    assert!(next_batch(&mut quiet).await.is_progress_notify());
    assert!(next_batch(&mut historical).await.is_progress_notify());

    stream.fail(unavailable());
    let mut stream = mock::next_stream(&mut calls).await;
    let mut creates = Vec::new();
    for _ in 0..3 {
        creates.push(stream.next_create().await);
    }
    let mut by_key: Vec<(&[u8], i64)> = creates
        .iter()
        .map(|c| (c.key.as_ref(), c.start_revision))
        .collect();
    by_key.sort();
    assert_eq!(
        by_key,
        [(&b"now"[..], 13), (&b"old"[..], 5), (&b"quiet"[..], 11)]
    );
    assert!(
        creates.iter().all(|c| c.watch_id > 3),
        "fresh ids for the new incarnations: {creates:?}"
    );
    stream.accept(None);
    let id_of = |key: &[u8]| {
        creates
            .iter()
            .find(|c| c.key.as_ref() == key)
            .unwrap()
            .watch_id
    };
    for create in &creates {
        stream.created(create.watch_id, 40);
    }
    // A server repeating an already delivered event is filtered.
    stream.events(id_of(b"now"), 40, &[12, 13]);
    assert_eq!(revs(&next_batch(&mut now).await), [13]);
    stream.events(id_of(b"old"), 40, &[5, 6]);
    assert_eq!(revs(&next_batch(&mut historical).await), [5, 6]);
    // A per-watcher progress moves the quiet watcher forward.
    stream.progress(id_of(b"quiet"), 40);
    assert!(next_batch(&mut quiet).await.is_progress_notify());

    stream.fail(unavailable());
    let mut stream = mock::next_stream(&mut calls).await;
    let mut creates = Vec::new();
    for _ in 0..3 {
        creates.push(stream.next_create().await);
    }
    creates.sort_by_key(|c| c.key.clone());
    let by_key: Vec<(&[u8], i64)> = creates
        .iter()
        .map(|c| (c.key.as_ref(), c.start_revision))
        .collect();
    assert_eq!(
        by_key,
        [(&b"now"[..], 14), (&b"old"[..], 7), (&b"quiet"[..], 41)]
    );
    drop(engine);
}

#[tokio::test]
async fn an_unconfirmed_watch_is_created_again_and_still_answered() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let watch = tokio::spawn(async move {
        let w = engine.watch("a", WatchOptions::new()).await;
        (engine, w)
    });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(None);
    stream.fail(unavailable());
    let mut stream = mock::next_stream(&mut calls).await;
    let create = stream.next_create().await;
    assert_eq!(
        create.start_revision, 0,
        "still 'now': it was never confirmed"
    );
    stream.accept(None);
    stream.created(create.watch_id, 7);
    let (_engine, watcher) = join(watch).await;
    watcher.unwrap();
}

#[tokio::test]
async fn compaction_ends_only_that_watcher_with_its_revision() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let e = engine.clone();
    let a = tokio::spawn(async move { e.watch("a", WatchOptions::new().start_revision(2)).await });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(None);
    let e = engine.clone();
    let b = tokio::spawn(async move { e.watch("b", WatchOptions::new()).await });
    stream.next_create().await;
    stream.created(1, 50);
    stream.compacted(1, 20);
    stream.created(2, 50);
    let mut a = join(a).await.unwrap();
    let mut b = join(b).await.unwrap();
    let error = next_error(&mut a).await;
    assert_eq!(
        error.kind(),
        &ErrorKind::Compacted {
            compact_revision: Some(20)
        }
    );
    assert_eq!(error.compact_revision(), Some(20));
    assert!(a.next().await.is_none(), "the stream ends after the error");
    stream.events(2, 51, &[51]);
    assert_eq!(revs(&next_batch(&mut b).await), [51]);
}

#[tokio::test]
async fn a_lagging_watcher_is_cancelled_then_recreated_from_its_next_revision() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let e = engine.clone();
    let slow = tokio::spawn(async move {
        e.watch("s", WatchOptions::new().start_revision(1).buffer(2))
            .await
    });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(None);
    let e = engine.clone();
    let fast =
        tokio::spawn(async move { e.watch("f", WatchOptions::new().start_revision(1)).await });
    stream.next_create().await;
    stream.created(1, 1);
    stream.created(2, 1);
    let mut slow = join(slow).await.unwrap();
    let mut fast = join(fast).await.unwrap();

    stream.events(1, 3, &[2]);
    stream.events(1, 3, &[3]);
    stream.events(1, 4, &[4]); // does not fit: the watcher lags
    assert_eq!(stream.next_cancel().await, 1);
    stream.events(1, 5, &[5]); // in flight before the cancel: ignored
    for rev in 2..=5 {
        stream.events(2, rev, &[rev]);
        assert_eq!(revs(&next_batch(&mut fast).await), [rev]);
    }
    assert!(slow.is_lagging());
    stream.expect_silence().await;
    assert_eq!(revs(&next_batch(&mut slow).await), [2]);
    assert_eq!(revs(&next_batch(&mut slow).await), [3]);
    // Drained: re-created from revision 4 with a fresh id.
    let create = stream.next_create().await;
    assert_eq!(create.key.as_ref(), b"s");
    assert_eq!(create.start_revision, 4);
    assert_eq!(create.watch_id, 3);
    stream.created(3, 5);
    stream.events(3, 5, &[4, 5]);
    assert_eq!(revs(&next_batch(&mut slow).await), [4, 5]);
}

#[tokio::test]
async fn a_stale_stream_token_reopens_the_stream_and_resumes_everyone() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let e = engine.clone();
    let old =
        tokio::spawn(async move { e.watch("old", WatchOptions::new().start_revision(2)).await });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(Some(1));
    stream.created(1, 10);
    let mut old = join(old).await.unwrap();
    stream.events(1, 10, &[2, 3]);
    assert_eq!(revs(&next_batch(&mut old).await), [2, 3]);

    // The token expires; a new create is refused (3.4.23 style: id -1).
    let e = engine.clone();
    let new = tokio::spawn(async move { e.watch("new/", WatchOptions::new().prefix()).await });
    let create = stream.next_create().await;
    assert_eq!(create.watch_id, 2);
    stream.refused(-1, 10);
    let probe = mock::next_unary(&mut calls).await;
    assert!(probe.asks_for_generation());
    assert_eq!(probe.range().key.as_ref(), b"new/");
    assert_eq!(probe.range().range_end.as_ref(), b"new0");
    assert!(probe.range().count_only);
    // While the probe is under way, the other watchers keep delivering.
    stream.events(1, 11, &[11]);
    assert_eq!(revs(&next_batch(&mut old).await), [11]);
    // The probe went through with a newer token: the stream's is stale.
    probe.ok(Some(2));

    let mut stream = mock::next_stream(&mut calls).await;
    let sent = vec![stream.next_create().await, stream.next_create().await];
    let mut creates = sent.clone();
    creates.sort_by_key(|c| c.key.clone());
    assert_eq!(creates[0].key.as_ref(), b"new/");
    assert_eq!(creates[0].start_revision, 0);
    assert_eq!(creates[1].key.as_ref(), b"old");
    assert_eq!(creates[1].start_revision, 12);
    stream.accept(Some(2));
    // Answered in the order they were sent, as etcd does.
    for create in &sent {
        stream.created(create.watch_id, 12);
    }
    join(new).await.unwrap();
    stream.events(creates[1].watch_id, 12, &[12]);
    assert_eq!(revs(&next_batch(&mut old).await), [12]);
}

#[tokio::test]
async fn a_real_denial_ends_only_that_watcher() {
    // The probe itself is denied, whichever id the refusal carries (3.5.1:
    // the requested one; 3.4.23: -1). A probe that reads with the stream's
    // own token is the next test's case.
    for refused_id in [Some(()), None] {
        let (service, mut calls) = mock::pair();
        let engine = WatchEngine::new(service);
        let e = engine.clone();
        let ok = tokio::spawn(async move { e.watch("ok", WatchOptions::new()).await });
        let mut stream = mock::next_stream(&mut calls).await;
        stream.next_create().await;
        stream.accept(Some(7));
        stream.created(1, 10);
        let mut ok = join(ok).await.unwrap();

        let e = engine.clone();
        let denied = tokio::spawn(async move { e.watch("secret", WatchOptions::new()).await });
        let create = stream.next_create().await;
        stream.refused(refused_id.map_or(-1, |()| create.watch_id), 10);
        let probe = mock::next_unary(&mut calls).await;
        probe.fail(EtcdError::new(
            ErrorKind::PermissionDenied,
            Code::PermissionDenied,
            "etcdserver: permission denied",
            Sent::Rejected,
        ));
        let error = join(denied).await.unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::PermissionDenied, "{refused_id:?}");
        stream.events(1, 11, &[11]);
        assert_eq!(revs(&next_batch(&mut ok).await), [11]);
        stream.expect_silence().await;
    }
}

/// The engine's re-checks after a renewal (`probe::RECHECKS`).
const RECHECKS: u8 = 2;

/// A probe that reads with the stream's own token proves little: simple
/// tokens are per member, so the probe may have reached a member that still
/// knows a token the stream's member dropped. The engine renews the token
/// once and re-opens; a refusal on streams with the renewed token, each
/// confirmed by a probe with that same token, is re-checked `RECHECKS`
/// times (a member may lag behind the login) and then is a real denial.
#[tokio::test]
async fn a_same_generation_probe_renews_once_before_denying() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let e = engine.clone();
    let ok = tokio::spawn(async move { e.watch("ok", WatchOptions::new()).await });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(Some(7));
    stream.created(1, 10);
    let mut ok = join(ok).await.unwrap();

    let e = engine.clone();
    let denied = tokio::spawn(async move { e.watch("secret", WatchOptions::new()).await });
    stream.next_create().await;
    stream.refused(-1, 10);

    // First probe: reads with generation 7, the stream's own.
    let probe = mock::next_unary(&mut calls).await;
    assert_eq!(probe.renews(), None);
    probe.ok(Some(7));
    // Second probe: asks for generation 7 to be replaced; the auth layer
    // logs in and reports generation 8.
    let renewal = mock::next_unary(&mut calls).await;
    assert_eq!(renewal.renews(), Some(7));
    assert!(renewal.asks_for_generation());
    renewal.ok(Some(8));

    // The stream is re-opened with the new token and both watchers are
    // re-created. The watcher is refused again, and a probe with that very
    // token reads: the member may lag behind the login, so the engine
    // re-checks on new streams (no new login) before it reports a denial.
    let mut ok_id = 0;
    let mut stream = mock::next_stream(&mut calls).await;
    for round in 0..=RECHECKS {
        if round > 0 {
            stream = mock::next_stream(&mut calls).await;
        }
        let first = stream.next_create().await;
        let second = stream.next_create().await;
        stream.accept(Some(8));
        // Creates are answered in the order they were sent, as etcd does.
        for create in [first, second] {
            if create.key == "ok" {
                ok_id = create.watch_id;
                stream.created(create.watch_id, 11);
            } else {
                stream.refused(create.watch_id, 11);
            }
        }
        let probe = mock::next_unary(&mut calls).await;
        assert_eq!(probe.renews(), None, "one renewal per episode");
        probe.ok(Some(8));
    }
    let error = join(denied).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::PermissionDenied);

    // The other watcher kept going.
    stream.events(ok_id, 12, &[12]);
    assert_eq!(revs(&next_batch(&mut ok).await), [12]);
    stream.expect_silence().await;
}

#[tokio::test]
async fn one_probe_per_episode() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let e = engine.clone();
    let first = tokio::spawn(async move { e.watch("a", WatchOptions::new()).await });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(Some(1));
    stream.created(1, 10);
    let _first = join(first).await.unwrap();
    let mut refused = Vec::new();
    for key in ["x", "y", "z"] {
        let e = engine.clone();
        refused.push(tokio::spawn(async move {
            e.watch(key, WatchOptions::new()).await
        }));
        stream.next_create().await;
    }
    for _ in 0..3 {
        stream.refused(-1, 10);
    }
    let probe = mock::next_unary(&mut calls).await;
    assert_eq!(probe.range().key.as_ref(), b"x");
    // No second probe while the first is under way.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), mock::next_call(&mut calls))
            .await
            .is_err(),
        "a second probe started"
    );
    probe.ok(Some(2));
    let mut stream = mock::next_stream(&mut calls).await;
    let mut creates = Vec::new();
    for _ in 0..4 {
        creates.push(stream.next_create().await);
    }
    stream.accept(Some(2));
    for create in &creates {
        stream.created(create.watch_id, 11);
    }
    for watch in refused {
        join(watch).await.unwrap();
    }
}

#[tokio::test]
async fn a_known_newer_token_reopens_before_creating() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    // Two groups; the require-leader stream learns of generation 2.
    let e = engine.clone();
    let plain = tokio::spawn(async move { e.watch("a", WatchOptions::new()).await });
    let mut plain_stream = mock::next_stream(&mut calls).await;
    plain_stream.next_create().await;
    plain_stream.accept(Some(1));
    plain_stream.created(1, 10);
    let _plain = join(plain).await.unwrap();

    let e = engine.clone();
    let leader =
        tokio::spawn(async move { e.watch("b", WatchOptions::new().require_leader()).await });
    let mut leader_stream = mock::next_stream(&mut calls).await;
    leader_stream.next_create().await;
    leader_stream.accept(Some(2));
    leader_stream.created(1, 10);
    let _leader = join(leader).await.unwrap();

    // A new create on the plain stream (generation 1) re-opens it first.
    let e = engine.clone();
    let next = tokio::spawn(async move { e.watch("c", WatchOptions::new()).await });
    let mut reopened = mock::next_stream(&mut calls).await;
    assert!(!reopened.require_leader);
    let sent = [reopened.next_create().await, reopened.next_create().await];
    let mut keys: Vec<_> = sent.iter().map(|c| c.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, [&b"a"[..], &b"c"[..]]);
    reopened.accept(Some(2));
    for create in &sent {
        reopened.created(create.watch_id, 11);
    }
    tokio::time::timeout(STEP, next)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_failed_probe_is_a_stream_fault() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::with_config(
        service,
        WatchConfig::default().backoff(Duration::from_millis(5), Duration::from_millis(50)),
    );
    let e = engine.clone();
    let watch = tokio::spawn(async move { e.watch("a", WatchOptions::new()).await });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(Some(1));
    stream.refused(1, 10);
    mock::next_unary(&mut calls).await.fail(unavailable());
    let mut stream = mock::next_stream(&mut calls).await;
    let create = stream.next_create().await;
    stream.accept(Some(1));
    stream.created(create.watch_id, 10);
    join(watch).await.unwrap();
}

#[tokio::test]
async fn progress_requests_are_sent_and_merged() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let e = engine.clone();
    let watch = tokio::spawn(async move { e.watch("a", WatchOptions::new()).await });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(None);
    stream.created(1, 10);
    let mut watcher = join(watch).await.unwrap();
    watcher.request_progress().unwrap();
    assert!(matches!(
        stream.next_request().await,
        Some(RequestUnion::ProgressRequest(_))
    ));
    engine.request_progress().await.unwrap();
    assert!(matches!(
        stream.next_request().await,
        Some(RequestUnion::ProgressRequest(_))
    ));
    stream.progress(-1, 12);
    let batch = next_batch(&mut watcher).await;
    assert!(batch.is_progress_notify());
    assert_eq!(batch.revision(), 12);
    expect_nothing(&mut watcher).await;
}

#[tokio::test]
async fn the_tasks_end_when_the_engine_and_its_watchers_are_gone() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let e = engine.clone();
    let watch = tokio::spawn(async move { e.watch("a", WatchOptions::new()).await });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(None);
    stream.created(1, 10);
    let mut watcher = join(watch).await.unwrap();
    drop(engine);
    // The watcher keeps working without the engine handle.
    stream.events(1, 11, &[11]);
    assert_eq!(revs(&next_batch(&mut watcher).await), [11]);
    drop(watcher);
    // The task drops its service clones: the call channel closes.
    let end = tokio::time::timeout(STEP, calls.recv())
        .await
        .expect("the task did not end");
    assert!(end.is_none());
}

#[tokio::test]
async fn invalid_options_fail_before_anything_is_sent() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let error = engine.watch("", WatchOptions::new()).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::EmptyKey);
    let error = engine
        .watch("b", WatchOptions::new().range_end("a"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::InvalidRequest);
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn metrics_count_delivered_events_and_resumes() {
    use etcd_tower_core::metric_names::{WATCH_EVENTS_DELIVERED_TOTAL, WATCH_RESUMES_TOTAL};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A current-thread runtime: the engine's task runs on this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);
    // Counts since the last snapshot (a snapshot resets the counters):
    // (events delivered, resumes with reason "disconnected").
    let counts = || -> (u64, u64) {
        let mut counts = (0, 0);
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let DebugValue::Counter(n) = value else {
                continue;
            };
            let key = key.key();
            if key.name() == WATCH_EVENTS_DELIVERED_TOTAL {
                counts.0 += n;
            }
            if key.name() == WATCH_RESUMES_TOTAL
                && key
                    .labels()
                    .any(|l| l.key() == "reason" && l.value() == "disconnected")
            {
                counts.1 += n;
            }
        }
        counts
    };

    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let e = engine.clone();
    let watch = tokio::spawn(async move { e.watch("a", WatchOptions::new()).await });
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(None);
    stream.created(1, 10);
    let mut watcher = join(watch).await.unwrap();
    stream.events(1, 12, &[11, 12]);
    next_batch(&mut watcher).await;
    assert_eq!(counts(), (2, 0));

    stream.fail(unavailable());
    let mut stream = mock::next_stream(&mut calls).await;
    let create = stream.next_create().await;
    assert_eq!(create.start_revision, 13);
    stream.accept(None);
    stream.created(create.watch_id, 13);
    stream.events(create.watch_id, 13, &[12, 13]);
    next_batch(&mut watcher).await;
    assert_eq!(counts(), (1, 1), "12 was a repeat; one resume");
}
