//! How fast watchers resume with auth on, measured on real etcd 3.5.30,
//! 3.5.1 and 3.4.23, with simple and with JWT tokens (both 2 s):
//!
//! * **After a restart.** 20 watchers on one client (one stream); the only
//!   member is killed, left down for 1.2 s and started again. Measured from
//!   the moment the restarted server first answers `/health` (polled every
//!   2 ms, straight to the member) until every watcher has delivered the
//!   first event written after it (the write itself, by another client
//!   whose token the restart also forgot, is part of the figure). Target
//!   0.3 s, reported; 1 s asserted (see `RESUME_BOUND`). A restart forgets
//!   every simple token, and a 2 s JWT has expired by then, so the first
//!   re-open carries a dead token: that refusal must cost no back-off, and
//!   the back-off built up while the member was down must not delay the
//!   re-open once it answers.
//! * **A new watch after a refresh.** Once the stream's token has expired
//!   and a unary call has logged in again, a new watch must be created in
//!   one round trip: the engine learns of the new token from the auth layer
//!   (`CurrentTokenGeneration`) and re-opens the stream with it before
//!   sending the create, so no create is refused and nothing is probed
//!   (asserted: one stream open, no probe, within 0.3 s).
//!
//! The figures are printed with the tag `[resume-latency]`. The auth layer
//! is played by a stand-in (`support::token_stack::TokenStack`, with
//! `publishing_current_generation`; this crate does not depend on
//! the auth crate) that behaves as the real one does: it attaches a token,
//! logs in again when a unary call is refused with `InvalidAuthToken`, tags
//! every stream with the `TokenGeneration` it was opened with and the
//! layer's `CurrentTokenGeneration`, and reports the generation of unary
//! calls that ask for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::RangeRequest;
use etcd_tower_core::{EtcdError, EtcdRequest};
use etcd_tower_testkit::{binaries, Cluster, EtcdBinary};
use etcd_tower_watch::{WatchEngine, WatchOptions, Watcher};
use futures::StreamExt;
use support::etcd::*;
use support::token_stack::TokenStack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tower::ServiceExt;

const WATCHERS: usize = 20;
const TOKEN_TTL: Duration = Duration::from_secs(2);
/// How long the member stays down before it is started again.
const OUTAGE: Duration = Duration::from_millis(1200);
/// The target, reported: every figure above it is printed as a miss.
const RESUME_TARGET: Duration = Duration::from_millis(300);
/// What is asserted for the restart: the target measures well below it
/// (4-235 ms), but on a shared two-core machine the writer and the
/// servers' logins (an RSA signature and a Raft write each) are sometimes
/// slower, and the figure includes them.
const RESUME_BOUND: Duration = Duration::from_secs(1);

/// When the member at `addr` first answers `GET /health` as healthy,
/// polled every 2 ms.
async fn first_healthy(addr: SocketAddr) -> Instant {
    async fn healthy(addr: SocketAddr) -> std::io::Result<bool> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let text = String::from_utf8_lossy(&response).replace(' ', "");
        Ok(text.contains("\"health\":\"true\""))
    }
    bounded(30, "the member's health", async {
        loop {
            let probe = tokio::time::timeout(Duration::from_millis(500), healthy(addr)).await;
            if let Ok(Ok(true)) = probe {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
}

/// Reads `watcher` until the event whose value is `value`; returns the
/// watcher and when that event arrived. Each step writes one event per
/// key, so that event must be the only one read: a resume that repeated an
/// earlier event (or lost this one) fails here.
async fn until_value(mut watcher: Watcher, value: &'static str) -> (Watcher, Instant) {
    let arrived = bounded(20, "a watcher's next event", async {
        let mut values = Vec::new();
        loop {
            match watcher.next().await {
                Some(Ok(batch)) => {
                    values.extend(
                        batch
                            .events()
                            .iter()
                            .filter_map(|e| e.kv.as_ref().map(|kv| kv.value.clone())),
                    );
                    if values.iter().any(|v| v == value) {
                        assert_eq!(values, [value], "a watcher's events");
                        return Instant::now();
                    }
                }
                Some(Err(error)) => panic!("a watcher failed: {error}"),
                None => panic!("a watcher ended"),
            }
        }
    })
    .await;
    (watcher, arrived)
}

fn all_keys(value: &str) -> Vec<(String, String)> {
    (0..WATCHERS)
        .map(|i| (format!("r/{i}"), value.to_owned()))
        .collect()
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

#[derive(Clone, Copy, Debug)]
enum Tokens {
    Simple,
    Jwt,
}

async fn measure(bin: &EtcdBinary, tokens: Tokens) -> Figures {
    let label = format!("{} {tokens:?} tokens", bin.label());
    let builder = Cluster::builder(bin);
    let builder = match tokens {
        Tokens::Simple => builder.auth_token_ttl(TOKEN_TTL.as_secs()),
        Tokens::Jwt => builder.jwt_token_ttl(TOKEN_TTL),
    };
    let mut cluster = builder.start().await.unwrap();
    cluster.enable_auth("rootpw").await.unwrap();
    let endpoints = cluster.endpoints();
    let writer =
        TokenStack::new(transport(&endpoints), ("root", "rootpw")).publishing_current_generation();
    let put_all = |pairs: Vec<(String, String)>| {
        let writer = writer.clone();
        async move {
            use etcd_tower_core::proto::etcdserverpb::{request_op, PutRequest, RequestOp};
            use etcd_tower_core::proto::etcdserverpb::{TxnRequest, TxnResponse};
            let success = pairs
                .into_iter()
                .map(|(k, v)| RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: k.into(),
                        value: v.into(),
                        ..Default::default()
                    })),
                })
                .collect();
            let request = TxnRequest {
                success,
                ..Default::default()
            };
            let response = writer.oneshot(EtcdRequest::new(request)).await?;
            Ok::<i64, EtcdError>(TxnResponse::try_from(response)?.header.unwrap().revision)
        }
    };
    let stack =
        TokenStack::new(transport(&endpoints), ("root", "rootpw")).publishing_current_generation();
    let engine = WatchEngine::new(stack.clone());

    let from = put_all(all_keys("before")).await.unwrap();
    let mut watchers = Vec::new();
    for i in 0..WATCHERS {
        let options = WatchOptions::new().start_revision(from);
        let watch = engine.watch(format!("r/{i}"), options);
        watchers.push(bounded(10, "a watch", watch).await.unwrap());
    }
    let mut waiting = Vec::new();
    for watcher in watchers {
        waiting.push(tokio::spawn(until_value(watcher, "before")));
    }
    let mut watchers = Vec::new();
    for task in waiting {
        watchers.push(task.await.unwrap().0);
    }

    // The restart: every watcher waits for the first write after it.
    let waiting: Vec<_> = watchers
        .into_iter()
        .map(|watcher| tokio::spawn(until_value(watcher, "after")))
        .collect();
    let member = cluster.member(0);
    member.kill().unwrap();
    let killed = Instant::now();
    // The outage itself: the engine's re-opens fail meanwhile, and their
    // back-off grows.
    tokio::time::sleep(OUTAGE).await;
    let (answered, restarted) = tokio::join!(
        first_healthy(member.client_addr()),
        bounded(30, "the restart", member.restart())
    );
    restarted.unwrap();
    retrying("the write after the restart", || put_all(all_keys("after"))).await;
    let written = answered.elapsed();
    let mut last = answered;
    let mut watchers = Vec::new();
    for task in waiting {
        let (watcher, arrived) = task.await.unwrap();
        last = last.max(arrived);
        watchers.push(watcher);
    }
    let resumed = last.saturating_duration_since(answered);
    eprintln!(
        "[resume-latency] {label}: restart after {} down: server answered -> write acked {}, -> all {WATCHERS} watchers delivered {} (the last {} after the write was acked)",
        ms(answered - killed),
        ms(written),
        ms(resumed),
        ms(resumed.saturating_sub(written))
    );

    // A new watch after a unary call replaced the expired token.
    // Simple tokens are expired by a keeper that runs once a second.
    tokio::time::sleep(TOKEN_TTL + Duration::from_millis(1300)).await;
    let before = stack.generation();
    let read = RangeRequest {
        key: "r/0".into(),
        ..Default::default()
    };
    stack.clone().oneshot(EtcdRequest::new(read)).await.unwrap();
    assert!(
        stack.generation() > before,
        "{label}: the unary call did not log in again"
    );
    let (opens, probes) = (stack.opens(), stack.probes());
    let started = Instant::now();
    let fresh = bounded(
        10,
        "a watch after the refresh",
        engine.watch("r/new", WatchOptions::new()),
    )
    .await
    .unwrap_or_else(|e| panic!("{label}: {e}"));
    let created = started.elapsed();
    let opens = stack.opens() - opens;
    let probes = stack.probes() - probes;
    eprintln!(
        "[resume-latency] {label}: new watch after a token refresh created in {} ({opens} stream open(s), {probes} probe(s))",
        ms(created)
    );

    // Everyone still delivers, on the new stream.
    let mut pairs = all_keys("end");
    pairs.push(("r/new".into(), "end".into()));
    put_all(pairs).await.unwrap();
    let mut waiting: Vec<_> = watchers
        .into_iter()
        .map(|watcher| tokio::spawn(until_value(watcher, "end")))
        .collect();
    waiting.push(tokio::spawn(until_value(fresh, "end")));
    for task in waiting {
        task.await.unwrap();
    }
    Figures {
        resumed,
        created,
        opens,
        probes,
    }
}

/// What one case measured.
struct Figures {
    /// From the restarted server's first answer until every watcher had
    /// delivered the first event after it.
    resumed: Duration,
    /// How long the new watch after a refresh took.
    created: Duration,
    /// Watch streams opened, and probes sent, for that watch.
    opens: usize,
    probes: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_resume_within_the_target_after_a_restart_and_a_refresh() {
    let mut failures = Vec::new();
    let mut misses = Vec::new();
    for bin in binaries() {
        for tokens in [Tokens::Simple, Tokens::Jwt] {
            let figures = measure(&bin, tokens).await;
            let label = format!("{} {tokens:?} tokens", bin.label());
            if figures.resumed > RESUME_TARGET {
                misses.push(format!("{label}: resumed in {}", ms(figures.resumed)));
            }
            if figures.resumed > RESUME_BOUND {
                failures.push(format!("{label}: resumed in {}", ms(figures.resumed)));
            }
            // One round trip on a local server: well within the target.
            if figures.created > RESUME_TARGET {
                failures.push(format!("{label}: new watch in {}", ms(figures.created)));
            }
            if (figures.opens, figures.probes) != (1, 0) {
                failures.push(format!(
                    "{label}: the new watch took {} stream open(s) and {} probe(s), not one open",
                    figures.opens, figures.probes
                ));
            }
        }
    }
    eprintln!(
        "[resume-latency] target {}: {}",
        ms(RESUME_TARGET),
        if misses.is_empty() {
            "met by every case".to_owned()
        } else {
            format!("missed by {misses:?}")
        }
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
