//! End to end: watches that survive token expiry and a server restart, on
//! one client, with the auth layer under the watch engine; etcd 3.5.1 and
//! 3.4.23, simple and JWT tokens.
//!
//! This is the failure etcd's Go client still has: a client reused for
//! watches, its watch stream's token expires, and new or resumed watches on
//! it are refused. Here the refusal is told from a real denial by the auth
//! layer's token generations and a probe (see `etcd-tower-auth`'s docs),
//! never by the server's message text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The counting layer and helpers of the auth crate's own tests.
#[path = "../crates/auth/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{RangeRequest, RangeResponse};
use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest};
use etcd_tower_testkit::{binaries, Cluster, EtcdBinary};
use etcd_tower_watch::{WatchConfig, WatchEngine, WatchOptions, Watcher};
use futures::StreamExt;
use support::{bounded, call, client, is_transport_error, put, Client};

const ROOT_PASSWORD: &str = "s3cret";

/// Which kind of token the cluster issues.
#[derive(Clone, Copy, Debug)]
enum Tokens {
    /// Simple tokens, forgotten after 2 s idle.
    Simple,
    /// JWTs valid for 3 s.
    Jwt,
}

impl Tokens {
    /// How long to stay idle for the token to be dead.
    fn past_expiry(self) -> Duration {
        match self {
            // TTL 2 s, expired by a ticker that runs every second.
            Tokens::Simple => Duration::from_secs(4),
            // `exp` is whole seconds (login + 3 s, truncated) and etcd
            // accepts a JWT until the second after `exp`: up to 4 s.
            Tokens::Jwt => Duration::from_millis(4500),
        }
    }
}

async fn start(bin: &EtcdBinary, tokens: Tokens) -> Cluster {
    let builder = Cluster::builder(bin);
    let builder = match tokens {
        Tokens::Simple => builder.auth_token_ttl(2),
        Tokens::Jwt => builder.jwt_token_ttl(Duration::from_secs(3)),
    };
    let mut cluster = builder.start().await.unwrap();
    cluster.enable_auth(ROOT_PASSWORD).await.unwrap();
    cluster
}

fn engine(client: &Client) -> WatchEngine<Client> {
    WatchEngine::with_config(
        client.clone(),
        WatchConfig::default().backoff(Duration::from_millis(20), Duration::from_millis(500)),
    )
}

/// `(mod_revision, value)` of each event.
type History = Vec<(i64, String)>;

/// Reads events from `watcher` until it has delivered `n` in all.
async fn collect(watcher: &mut Watcher, seen: &mut History, n: usize, what: &str) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while seen.len() < n {
            let batch = watcher
                .next()
                .await
                .unwrap_or_else(|| panic!("{what}: the watcher ended"))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            for event in batch.events() {
                let kv = event.kv.as_ref().unwrap();
                seen.push((
                    kv.mod_revision,
                    String::from_utf8_lossy(&kv.value).into_owned(),
                ));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: {} of {n} events after 30 s: {seen:?}", seen.len()));
}

/// Puts, retrying a put that met a connection broken by a restart (the
/// history is read back from the server, so a duplicate would show).
async fn put_through(client: &mut Client, key: &str, value: &str) {
    for attempt in 0.. {
        match put(client, key, value).await {
            Ok(()) => return,
            Err(e) if is_transport_error(&e) && attempt < 5 => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("put {key}={value}: {e}"),
        }
    }
}

/// The server's history of `key`: every `(mod_revision, value)` it had,
/// oldest first, read back revision by revision (nothing is compacted).
async fn server_history(client: &mut Client, key: &str) -> Result<History, EtcdError> {
    let mut history = Vec::new();
    let mut revision = 0; // 0: the newest
    loop {
        let range = RangeRequest {
            key: key.to_owned().into_bytes().into(),
            revision,
            ..Default::default()
        };
        let response = RangeResponse::try_from(call(client, EtcdRequest::new(range)).await?)?;
        let Some(kv) = response.kvs.first() else {
            break;
        };
        history.push((
            kv.mod_revision,
            String::from_utf8_lossy(&kv.value).into_owned(),
        ));
        revision = kv.mod_revision - 1;
        if revision == 0 {
            break;
        }
    }
    history.reverse();
    Ok(history)
}

async fn watches_survive_expiry_and_restart(bin: &EtcdBinary, tokens: Tokens) {
    let label = format!("{} {tokens:?}", bin.label());
    let cluster = start(bin, tokens).await;
    let (mut client, counts) = client(&cluster, "root", ROOT_PASSWORD);
    let engine = engine(&client);
    let mut seen: BTreeMap<&str, History> = BTreeMap::new();

    // W1, and a few writes it sees.
    let mut w1 = engine.watch("a", WatchOptions::new()).await.unwrap();
    for i in 1..=3 {
        put_through(&mut client, "a", &format!("a{i}")).await;
    }
    collect(&mut w1, seen.entry("a").or_default(), 3, &label).await;
    assert_eq!(counts.logins(), 1, "{label}");

    // Idle until the stream's token is dead, then a new watch on the same
    // client: created (on a fresh stream), and it receives events.
    tokio::time::sleep(tokens.past_expiry()).await;
    let mut w2 = engine
        .watch("b", WatchOptions::new())
        .await
        .unwrap_or_else(|e| panic!("{label}: W2 after token expiry: {e}"));
    assert_eq!(
        counts.logins(),
        2,
        "{label}: exactly one Authenticate for the expiry"
    );
    for i in 1..=3 {
        put_through(&mut client, "b", &format!("b{i}")).await;
        put_through(&mut client, "a", &format!("a{}", i + 3)).await;
    }
    collect(&mut w2, seen.entry("b").or_default(), 3, &label).await;
    // W1 never stopped.
    collect(&mut w1, seen.entry("a").or_default(), 6, &label).await;
    eprintln!(
        "{label}: after expiry: {} Authenticate, {} token rejections",
        counts.logins(),
        counts.token_rejections()
    );

    // The server is killed and restarted (simple tokens are forgotten:
    // let the backend commit first, or etcd replays the login from its WAL).
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.member(0).restart().await.unwrap();
    for i in 1..=3 {
        put_through(&mut client, "a", &format!("a{}", i + 6)).await;
        put_through(&mut client, "b", &format!("b{}", i + 3)).await;
    }
    collect(&mut w1, seen.entry("a").or_default(), 9, &label).await;
    collect(&mut w2, seen.entry("b").or_default(), 6, &label).await;
    eprintln!(
        "{label}: after restart: {} Authenticate, {} token rejections",
        counts.logins(),
        counts.token_rejections()
    );

    // Each watcher saw exactly the server's history of its key: nothing
    // lost, nothing repeated, in order.
    for key in ["a", "b"] {
        let history = server_history(&mut client, key).await.unwrap();
        assert_eq!(seen[key], history, "{label}: key {key}");
    }
    // Nothing more arrives (no repeat after the last write).
    for (watcher, key) in [(&mut w1, "a"), (&mut w2, "b")] {
        let extra = tokio::time::timeout(Duration::from_millis(300), watcher.next()).await;
        assert!(extra.is_err(), "{label}: {key}: unexpected {extra:?}");
    }
}

#[tokio::test]
async fn watches_survive_simple_token_expiry_and_a_restart() {
    bounded(240, async {
        for bin in binaries() {
            watches_survive_expiry_and_restart(&bin, Tokens::Simple).await;
        }
    })
    .await;
}

#[tokio::test]
async fn watches_survive_jwt_expiry_and_a_restart() {
    bounded(240, async {
        for bin in binaries() {
            watches_survive_expiry_and_restart(&bin, Tokens::Jwt).await;
        }
    })
    .await;
}

/// The control: the server behaviour the design exists for, on a raw watch
/// stream through the same auth stack. After the stream's token expired, a
/// new create on it is refused exactly like a real denial (`created` and
/// `canceled`, no compaction revision), although unary calls work.
async fn without_generations_an_expired_stream_refuses_new_watches(bin: &EtcdBinary) {
    use etcd_tower_core::proto::etcdserverpb::{
        watch_request::RequestUnion, WatchCreateRequest, WatchRequest,
    };
    use etcd_tower_core::{RequestBody, ResponseBody};

    let label = bin.label();
    let cluster = start(bin, Tokens::Simple).await;
    let (mut client, _counts) = client(&cluster, "root", ROOT_PASSWORD);
    let create = |key: &str, watch_id: i64| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.to_owned().into(),
            watch_id,
            ..Default::default()
        })),
    };
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tx.unbounded_send(create("a", 1)).unwrap();
    let opened = tower::ServiceExt::oneshot(
        client.clone(),
        EtcdRequest::new(RequestBody::Watch(Box::pin(rx))),
    )
    .await
    .unwrap();
    let ResponseBody::Watch(mut inbound) = opened.body else {
        panic!("not a watch stream")
    };
    let first = inbound.next().await.unwrap().unwrap();
    assert!(first.created && !first.canceled, "{label}: {first:?}");

    tokio::time::sleep(Tokens::Simple.past_expiry()).await;
    put_through(&mut client, "b", "unary calls still work").await;
    tx.unbounded_send(create("b", 2)).unwrap();
    let refused = inbound.next().await.unwrap().unwrap();
    assert!(
        refused.created && refused.canceled && refused.compact_revision == 0,
        "{label}: {refused:?}"
    );
}

#[tokio::test]
async fn control_without_generations_an_expired_stream_refuses_new_watches() {
    bounded(120, async {
        for bin in binaries() {
            without_generations_an_expired_stream_refuses_new_watches(&bin).await;
        }
    })
    .await;
}

async fn a_denied_watch_fails_alone(bin: &EtcdBinary, tokens: Tokens) {
    let label = format!("{} {tokens:?}", bin.label());
    let cluster = start(bin, tokens).await;
    support::add_user(&cluster, "alice", "alice-pw", "alice/").await;
    cluster.etcdctl(&["put", "bob/k", "b0"]).await.unwrap();
    let (mut client, counts) = client(&cluster, "alice", "alice-pw");
    let engine = engine(&client);

    let mut allowed = engine.watch("alice/k", WatchOptions::new()).await.unwrap();
    put_through(&mut client, "alice/k", "v1").await;
    let mut seen = History::new();
    collect(&mut allowed, &mut seen, 1, &label).await;
    let logins = counts.logins();

    // A watch the user may not read: PermissionDenied, for that watch only.
    let denied = match engine.watch("bob/k", WatchOptions::new()).await {
        Err(error) => error,
        Ok(mut watcher) => tokio::time::timeout(Duration::from_secs(10), watcher.next())
            .await
            .unwrap_or_else(|_| panic!("{label}: the denied watcher neither failed nor ended"))
            .unwrap_or_else(|| panic!("{label}: the denied watcher ended without an error"))
            .expect_err("events from a key the user may not read"),
    };
    assert_eq!(
        denied.kind(),
        &ErrorKind::PermissionDenied,
        "{label}: {denied}"
    );
    assert!(
        counts.logins() - logins <= 1,
        "{label}: at most one Authenticate for the rejection, got {}",
        counts.logins() - logins
    );

    // The same client's other watch keeps delivering, without a gap.
    put_through(&mut client, "alice/k", "v2").await;
    put_through(&mut client, "alice/k", "v3").await;
    collect(&mut allowed, &mut seen, 3, &label).await;
    assert_eq!(
        seen,
        server_history(&mut client, "alice/k").await.unwrap(),
        "{label}"
    );
    eprintln!(
        "{label}: denial cost {} Authenticate",
        counts.logins() - logins
    );
}

#[tokio::test]
async fn a_denied_watch_fails_alone_with_simple_tokens() {
    bounded(120, async {
        for bin in binaries() {
            a_denied_watch_fails_alone(&bin, Tokens::Simple).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_denied_watch_fails_alone_with_jwt_tokens() {
    bounded(120, async {
        for bin in binaries() {
            a_denied_watch_fails_alone(&bin, Tokens::Jwt).await;
        }
    })
    .await;
}
