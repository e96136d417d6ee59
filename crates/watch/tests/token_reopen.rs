//! Re-opens that must cost no back-off, and the back-off itself, against a
//! scripted server on a paused clock (each gap below is exactly the delay
//! the engine waited):
//!
//! * a new watch after the auth layer obtained a newer token (a unary call
//!   logged in again) re-opens the stream at once with it, and no create
//!   is sent on the old stream, so nothing is refused or probed;
//! * a create refused for a stale token, after a long outage, re-opens as
//!   soon as the probe has the new token, whatever back-off the outage
//!   built up;
//! * while no server can be reached, re-opens come at least every 100 ms;
//!   a server that answers and fails backs off from there; a confirmed
//!   create starts the sequence again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower_core::signal::{CurrentTokenGeneration, TokenGeneration};
use etcd_tower_core::{Code, ErrorKind, EtcdError, Sent};
use etcd_tower_watch::{WatchBatch, WatchEngine, WatchOptions, Watcher};
use futures::StreamExt;
use support::mock::{self, MockService, MockStream, STEP};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

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

fn connection_lost() -> EtcdError {
    EtcdError::new(
        ErrorKind::ConnectionLost,
        Code::Unavailable,
        "connection reset",
        Sent::MayHaveBeenApplied,
    )
}

fn unreachable() -> EtcdError {
    EtcdError::new(
        ErrorKind::Connect,
        Code::Unavailable,
        "cannot connect: connection refused",
        Sent::NotSent,
    )
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A watcher on `key` from revision 5, created on the first stream (token
/// generation 1), having received the event at revision 7.
async fn watching(
    engine: &WatchEngine<MockService>,
    calls: &mut UnboundedReceiver<mock::Call>,
    current: &CurrentTokenGeneration,
    key: &'static str,
) -> (Watcher, MockStream) {
    let e = engine.clone();
    let watch =
        tokio::spawn(async move { e.watch(key, WatchOptions::new().start_revision(5)).await });
    let mut stream = mock::next_stream(calls).await;
    let create = stream.next_create().await;
    stream.accept_with(1, current);
    stream.created(create.watch_id, 10);
    let mut watcher = tokio::time::timeout(STEP, watch)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    stream.events(create.watch_id, 10, &[7]);
    assert_eq!(revs(&next_batch(&mut watcher).await), [7]);
    (watcher, stream)
}

#[tokio::test(start_paused = true)]
async fn a_new_watch_after_a_login_elsewhere_reopens_at_once_and_is_never_refused() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let current = CurrentTokenGeneration::new(TokenGeneration(1));
    let (mut first, mut old) = watching(&engine, &mut calls, &current, "a").await;

    // The stream's token expired and a unary call logged in again.
    current.advance(TokenGeneration(2));
    let asked = Instant::now();
    let e = engine.clone();
    let second = tokio::spawn(async move { e.watch("b", WatchOptions::new()).await });
    let mut stream = mock::next_stream(&mut calls).await;
    assert_eq!(asked.elapsed(), Duration::ZERO, "re-opened without a delay");
    assert!(
        old.next_request().await.is_none(),
        "nothing more is sent on the stream with the old token"
    );
    let sent = [stream.next_create().await, stream.next_create().await];
    let mut creates = sent.clone();
    creates.sort_by_key(|c| c.key.clone());
    assert_eq!(creates[0].key.as_ref(), b"a");
    assert_eq!(creates[0].start_revision, 8, "resumed after its last event");
    assert_eq!(creates[1].key.as_ref(), b"b");
    stream.accept_with(2, &current);
    for create in &sent {
        stream.created(create.watch_id, 11);
    }
    tokio::time::timeout(STEP, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(asked.elapsed(), Duration::ZERO, "created in one round trip");
    stream.events(creates[0].watch_id, 12, &[12]);
    assert_eq!(revs(&next_batch(&mut first).await), [12]);
    assert!(calls.try_recv().is_err(), "no probe, no other stream");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_for_a_stale_token_after_an_outage_costs_no_backoff() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let current = CurrentTokenGeneration::new(TokenGeneration(1));
    let (mut watcher, stream) = watching(&engine, &mut calls, &current, "a").await;

    // The member restarts: the stream breaks, and re-opens fail for a
    // while, then a stream opens that is answered but fails.
    stream.fail(connection_lost());
    for _ in 0..8 {
        mock::next_stream(&mut calls).await.reject(unreachable());
    }
    for _ in 0..3 {
        let mut stream = mock::next_stream(&mut calls).await;
        stream.accept_with(1, &current);
        stream.fail(connection_lost());
    }
    // The member answers again, having forgotten the token.
    let mut stream = mock::next_stream(&mut calls).await;
    let create = stream.next_create().await;
    assert_eq!(create.start_revision, 8);
    stream.accept_with(1, &current);
    stream.refused(create.watch_id, 12);
    let probe = mock::next_unary(&mut calls).await;
    // The probe's call was refused too; the auth layer logged in again.
    current.advance(TokenGeneration(2));
    probe.ok(Some(2));
    let probed = Instant::now();
    let mut stream = mock::next_stream(&mut calls).await;
    assert_eq!(
        probed.elapsed(),
        Duration::ZERO,
        "re-opened without back-off"
    );
    let create = stream.next_create().await;
    assert_eq!(create.start_revision, 8);
    stream.accept_with(2, &current);
    stream.created(create.watch_id, 12);
    stream.events(create.watch_id, 13, &[13]);
    assert_eq!(revs(&next_batch(&mut watcher).await), [13]);
}

#[tokio::test(start_paused = true)]
async fn unreachable_servers_are_retried_often_and_a_confirmed_create_resets_the_backoff() {
    let (service, mut calls) = mock::pair();
    let engine = WatchEngine::new(service);
    let current = CurrentTokenGeneration::new(TokenGeneration(1));
    let (_watcher, stream) = watching(&engine, &mut calls, &current, "a").await;
    stream.fail(connection_lost());

    let mut last = Instant::now();
    let mut gap = || {
        let gap = last.elapsed();
        last = Instant::now();
        gap
    };
    // Nothing reachable: the delays stop growing at the reconnect cap.
    let mut gaps = Vec::new();
    for _ in 0..12 {
        let mut stream = mock::next_stream(&mut calls).await;
        gaps.push(gap());
        stream.reject(unreachable());
    }
    assert!(gaps[0] <= ms(22), "{gaps:?}");
    assert!(
        gaps[4..].iter().all(|g| *g >= ms(90) && *g <= ms(100)),
        "{gaps:?}"
    );
    // A server that answers and fails: the back-off grows from there.
    let mut gaps = Vec::new();
    for _ in 0..3 {
        let mut stream = mock::next_stream(&mut calls).await;
        gaps.push(gap());
        stream.accept_with(1, &current);
        stream.fail(connection_lost());
    }
    assert!(gaps[0] <= ms(100), "{gaps:?}");
    assert!(gaps[1] >= ms(144) && gaps[1] <= ms(176), "{gaps:?}");
    assert!(gaps[2] >= ms(288) && gaps[2] <= ms(352), "{gaps:?}");
    // A stream on which the create is confirmed is healthy: when it breaks,
    // the sequence starts again.
    let mut stream = mock::next_stream(&mut calls).await;
    gap();
    let create = stream.next_create().await;
    stream.accept_with(1, &current);
    stream.created(create.watch_id, 12);
    tokio::task::yield_now().await;
    stream.fail(connection_lost());
    let _stream = mock::next_stream(&mut calls).await;
    let after = gap();
    assert!(after <= ms(22), "{after:?}");
}
