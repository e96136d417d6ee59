//! Servers that pick their own watch ids, as etcd's gRPC proxy does, and
//! servers whose answers fit no create, against a scripted server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::WatchResponse;
use etcd_tower_core::{Code, ErrorKind, EtcdError, Sent};
use etcd_tower_watch::{WatchBatch, WatchConfig, WatchEngine, WatchOptions, Watcher};
use futures::StreamExt;
use support::mock::{self, header, MockService, MockStream, STEP};

/// The engine's protocol faults in a row before it gives up (`ids::FAULT_LIMIT`).
const FAULT_LIMIT: usize = 3;

fn engine(service: MockService) -> WatchEngine<MockService> {
    WatchEngine::with_config(
        service,
        WatchConfig::default().backoff(Duration::from_millis(5), Duration::from_millis(20)),
    )
}

fn keys(batch: &WatchBatch) -> Vec<Vec<u8>> {
    batch
        .events()
        .iter()
        .map(|e| e.kv.as_ref().unwrap().key.to_vec())
        .collect()
}

fn unavailable() -> EtcdError {
    EtcdError::new(
        ErrorKind::ConnectionLost,
        Code::Unavailable,
        "connection reset",
        Sent::MayHaveBeenApplied,
    )
}

async fn next_batch(watcher: &mut Watcher) -> WatchBatch {
    tokio::time::timeout(STEP, watcher.next())
        .await
        .expect("no batch in time")
        .expect("the watcher ended")
        .expect("the watcher failed")
}

async fn join<T>(handle: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(STEP, handle)
        .await
        .expect("the task did not finish in time")
        .expect("the task panicked")
}

fn watch(
    engine: &WatchEngine<MockService>,
    key: &'static str,
) -> tokio::task::JoinHandle<Result<Watcher, EtcdError>> {
    let engine = engine.clone();
    tokio::spawn(async move { engine.watch(key, WatchOptions::new()).await })
}

/// An event for `key` at `revision` under watch id `id`.
fn event(stream: &MockStream, id: i64, key: &str, revision: i64) {
    let mut put = mock::put(revision);
    if let Some(kv) = put.kv.as_mut() {
        kv.key = key.to_owned().into();
    }
    stream.send(WatchResponse {
        header: Some(header(revision)),
        watch_id: id,
        events: vec![put],
        ..Default::default()
    });
}

/// Asserts that the engine opens no further stream for a while.
async fn expect_no_call(calls: &mut tokio::sync::mpsc::UnboundedReceiver<mock::Call>) {
    if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), calls.recv()).await {
        panic!("the engine made another call");
    }
}

#[tokio::test]
async fn ids_picked_by_the_server_are_adopted_for_events_and_cancels() {
    let (service, mut calls) = mock::pair();
    let engine = engine(service);

    // The first create asks for id 1; the server (a gRPC proxy) says 0.
    let a = watch(&engine, "a");
    let mut stream = mock::next_stream(&mut calls).await;
    let create = stream.next_create().await;
    assert_eq!(create.watch_id, 1);
    stream.accept(None);
    stream.created(0, 10);
    let mut a = join(a).await.unwrap();

    // From now on one create at a time: the next only once the previous
    // is answered, whatever the engine has queued.
    let b = watch(&engine, "b");
    let first = stream.next_create().await;
    let c = watch(&engine, "c");
    stream.expect_silence().await;
    stream.created(1, 10);
    let second = stream.next_create().await;
    stream.created(2, 10);
    let (b_id, c_id) = if first.key == "b" { (1, 2) } else { (2, 1) };
    assert_ne!(first.key, second.key);
    let mut b = join(b).await.unwrap();
    let mut c = join(c).await.unwrap();

    // Events go by the ids the server gave.
    event(&stream, 0, "a", 11);
    event(&stream, b_id, "b", 12);
    event(&stream, c_id, "c", 13);
    assert_eq!(keys(&next_batch(&mut a).await), [b"a".to_vec()]);
    assert_eq!(keys(&next_batch(&mut b).await), [b"b".to_vec()]);
    assert_eq!(keys(&next_batch(&mut c).await), [b"c".to_vec()]);

    // A cancel names the server's id, not the one the create asked for.
    drop(b);
    assert_eq!(stream.next_cancel().await, b_id);
    // The server confirms the cancel; nothing else changes.
    stream.send(WatchResponse {
        watch_id: b_id,
        canceled: true,
        ..Default::default()
    });
    event(&stream, c_id, "c", 14);
    assert_eq!(keys(&next_batch(&mut c).await), [b"c".to_vec()]);

    // After a fault every watcher is resumed from its next revision, one
    // create at a time, under the new stream's ids (which start at 0 again).
    stream.fail(unavailable());
    let mut stream = mock::next_stream(&mut calls).await;
    let first = stream.next_create().await;
    stream.accept(None);
    stream.expect_silence().await;
    stream.created(0, 20);
    let second = stream.next_create().await;
    let mut resumed = [
        (first.key.clone(), first.start_revision),
        (second.key.clone(), second.start_revision),
    ];
    resumed.sort();
    assert_eq!(resumed, [("a".into(), 12), ("c".into(), 15)]);
    // The watcher whose create is under way is dropped: it is cancelled
    // once the answer names its id.
    let (mut kept, dropped) = if first.key == "a" { (a, c) } else { (c, a) };
    drop(dropped);
    stream.expect_silence().await;
    stream.created(1, 20);
    assert_eq!(stream.next_cancel().await, 1);
    let kept_key = String::from_utf8(first.key.to_vec()).unwrap();
    event(&stream, 0, &kept_key, 21);
    assert_eq!(keys(&next_batch(&mut kept).await), [first.key.to_vec()]);
}
#[tokio::test]
async fn creates_in_flight_when_the_server_turns_out_to_pick_ids_are_made_again_one_at_a_time() {
    let (service, mut calls) = mock::pair();
    let engine = engine(service);
    let a = watch(&engine, "a");
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(None);
    let b = watch(&engine, "b");
    stream.next_create().await;
    // Two creates in flight, and the answer names an id neither asked for:
    // which create it answers cannot be known (a proxy may answer them in
    // any order), so the engine trusts nothing of this stream.
    stream.created(0, 10);
    stream.created(1, 10);

    let mut stream = mock::next_stream(&mut calls).await;
    let first = stream.next_create().await;
    assert_eq!(first.start_revision, 0, "never confirmed: still 'now'");
    stream.accept(None);
    stream.expect_silence().await;
    stream.created(0, 11);
    let second = stream.next_create().await;
    stream.created(1, 11);
    let mut a = join(a).await.unwrap();
    let mut b = join(b).await.unwrap();
    let (a_id, b_id) = if first.key == "a" { (0, 1) } else { (1, 0) };
    assert_ne!(first.key, second.key);
    event(&stream, a_id, "a", 12);
    event(&stream, b_id, "b", 13);
    assert_eq!(keys(&next_batch(&mut a).await), [b"a".to_vec()]);
    assert_eq!(keys(&next_batch(&mut b).await), [b"b".to_vec()]);
    // The mode sticks: no further re-open.
    expect_no_call(&mut calls).await;
}

/// The error every watcher of a misbehaving server ends with.
fn assert_protocol_error(error: &EtcdError, what: &str) {
    assert_eq!(
        error.kind(),
        &ErrorKind::UnexpectedResponse,
        "{what}: {error}"
    );
    println!("{what}: {error}");
}

#[tokio::test]
async fn an_id_another_watcher_holds_ends_the_watchers_with_a_typed_error_not_a_loop() {
    let (service, mut calls) = mock::pair();
    let engine = engine(service);
    let a = watch(&engine, "a");
    let mut stream = mock::next_stream(&mut calls).await;
    stream.next_create().await;
    stream.accept(None);
    stream.created(0, 10);
    let mut a = join(a).await.unwrap();

    // This server confirms every create with id 0, the one `a` holds.
    let b = watch(&engine, "b");
    stream.next_create().await;
    stream.created(0, 10);
    for _ in 1..FAULT_LIMIT {
        // Each fault re-opens the stream (with back-off).
        let mut stream = mock::next_stream(&mut calls).await;
        stream.next_create().await;
        stream.accept(None);
        stream.created(0, 10);
        stream.next_create().await;
        stream.created(0, 10);
    }
    // On a re-opened stream `b` may have been created first, and `a`'s
    // create answered with the id `b` holds: either way both end.
    match join(b).await {
        Err(error) => assert_protocol_error(&error, "the watch() still waiting"),
        Ok(mut b) => assert_ends_with_protocol_error(&mut b, "b").await,
    }
    assert_ends_with_protocol_error(&mut a, "a").await;
    expect_no_call(&mut calls).await;
}

async fn assert_ends_with_protocol_error(watcher: &mut Watcher, what: &str) {
    let error = match tokio::time::timeout(STEP, watcher.next()).await {
        Ok(Some(Err(error))) => error,
        other => panic!("{what}: expected an error, got {other:?}"),
    };
    assert_protocol_error(&error, what);
    assert!(
        watcher.next().await.is_none(),
        "{what}: the watcher ends after its error"
    );
}

#[tokio::test]
async fn an_answer_for_a_create_never_sent_ends_the_watchers_with_a_typed_error_not_a_loop() {
    let (service, mut calls) = mock::pair();
    let engine = engine(service);
    let a = watch(&engine, "a");
    let mut stream = mock::next_stream(&mut calls).await;
    let create = stream.next_create().await;
    stream.accept(None);
    // Echoed, as a member does.
    stream.created(create.watch_id, 10);
    let mut a = join(a).await.unwrap();
    event(&stream, create.watch_id, "a", 11);
    assert_eq!(keys(&next_batch(&mut a).await), [b"a".to_vec()]);
    // Then one create answer too many, on this stream and on each re-opened one.
    stream.created(create.watch_id + 100, 11);
    for _ in 1..FAULT_LIMIT {
        let mut stream = mock::next_stream(&mut calls).await;
        let create = stream.next_create().await;
        assert_eq!(create.start_revision, 12, "resumed after what it got");
        stream.accept(None);
        stream.created(create.watch_id, 11);
        stream.created(create.watch_id + 100, 11);
    }
    assert_ends_with_protocol_error(&mut a, "a").await;
    expect_no_call(&mut calls).await;
    drop(engine);
}
