//! Helpers for the tests against real etcd servers: a transport, unary
//! writes, a writer that keeps writing through faults, and the server's
//! history to compare what watchers received with.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb::{
    request_op, CompactionRequest, DeleteRangeRequest, PutRequest, PutResponse, RequestOp,
    TxnRequest, TxnResponse,
};
use etcd_tower_core::{EtcdError, EtcdRequest, Transport};
use etcd_tower_watch::{WatchEngine, WatchEvent, WatchOptions, Watcher};
use futures::StreamExt;
use tower::ServiceExt;

/// Fails the test if `test` takes longer than `secs` seconds.
pub async fn bounded<T>(secs: u64, what: &str, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

/// A transport with a 1 s / 1 s HTTP/2 keepalive and quick fail-over.
pub fn transport<S: AsRef<str>>(endpoints: impl IntoIterator<Item = S>) -> Transport {
    Transport::builder(endpoints)
        .keepalive(Duration::from_secs(1), Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(1))
        .failed_endpoint_backoff(Duration::from_millis(500))
        .build()
        .expect("a transport")
}

/// What the tests compare: `(mod_revision, key, value, type, prev value)`.
pub type Seen = (i64, Bytes, Bytes, i32, Option<Bytes>);

pub fn seen(event: &WatchEvent) -> Seen {
    (
        event.mod_revision(),
        event.key_bytes().clone(),
        event.value_bytes().clone(),
        event.r#type,
        event.prev_kv().map(|p| p.value.clone()),
    )
}

pub async fn put(client: &Transport, key: &str, value: &str) -> Result<i64, EtcdError> {
    let request = PutRequest {
        key: key.to_owned().into(),
        value: value.to_owned().into(),
        ..Default::default()
    };
    let response = client.clone().oneshot(EtcdRequest::new(request)).await?;
    Ok(PutResponse::try_from(response)?
        .header
        .map_or(0, |h| h.revision))
}

/// Puts several keys in one transaction (one revision).
pub async fn put_all(client: &Transport, pairs: Vec<(String, String)>) -> Result<i64, EtcdError> {
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
    let response = client.clone().oneshot(EtcdRequest::new(request)).await?;
    Ok(TxnResponse::try_from(response)?
        .header
        .map_or(0, |h| h.revision))
}

pub async fn delete(client: &Transport, key: &str) -> Result<(), EtcdError> {
    let request = DeleteRangeRequest {
        key: key.to_owned().into(),
        ..Default::default()
    };
    client.clone().oneshot(EtcdRequest::new(request)).await?;
    Ok(())
}

pub async fn compact(client: &Transport, revision: i64) {
    let request = CompactionRequest {
        revision,
        physical: true,
    };
    client
        .clone()
        .oneshot(EtcdRequest::new(request))
        .await
        .expect("compaction");
}

/// Retries `op` until it succeeds (the member may be down), bounded.
pub async fn retrying<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EtcdError>>,
{
    bounded(60, what, async {
        loop {
            match op().await {
                Ok(value) => return value,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
}

/// One step of the writers' workload over the prefixes `a/` and `b/`: puts,
/// deletes and two-key transactions.
pub async fn write_step(client: &Transport, i: usize) {
    let step = || async {
        match i % 9 {
            4 => delete(client, &format!("a/{}", i % 5)).await.map(|_| 0),
            7 => {
                put_all(
                    client,
                    vec![
                        (format!("a/t{}", i % 3), format!("txn-{i}")),
                        (format!("b/t{}", i % 3), format!("txn-{i}")),
                    ],
                )
                .await
            }
            n if n % 2 == 0 => put(client, &format!("a/{}", i % 5), &format!("v{i}")).await,
            _ => put(client, &format!("b/{}", i % 4), &format!("v{i}")).await,
        }
    };
    retrying("a write", step).await;
}

/// Writes the end marker into both prefixes (and the key `b/t1`) in one
/// revision; returns it.
pub async fn write_end(client: &Transport) -> i64 {
    retrying("the end marker", || {
        put_all(
            client,
            vec![
                ("a/~end".to_owned(), "end".to_owned()),
                ("b/~end".to_owned(), "end".to_owned()),
                ("b/t1".to_owned(), "end".to_owned()),
            ],
        )
    })
    .await
}

/// The revision of the store now (by writing an unwatched key).
pub async fn current_revision(client: &Transport) -> i64 {
    retrying("a revision", || put(client, "zz/now", "x")).await
}

/// Reads `watcher` until an event at `end` or later; returns every event
/// received, in order. Panics on an error item or if nothing comes for
/// `secs`.
pub async fn collect_until(watcher: &mut Watcher, end: i64, secs: u64) -> Vec<Seen> {
    let mut all = Vec::new();
    bounded(secs, "collecting events", async {
        loop {
            let batch = match watcher.next().await {
                Some(Ok(batch)) => batch,
                Some(Err(error)) => panic!("watcher failed: {error}"),
                None => panic!("watcher ended"),
            };
            let mut done = false;
            for event in batch.events() {
                let s = seen(event);
                done |= s.0 >= end;
                all.push(s);
            }
            if done {
                return;
            }
        }
    })
    .await;
    all
}

/// The server's history of every key from `from` through `end`, read by a
/// fresh client (its own transport and engine), with previous values.
pub async fn history(endpoints: &[String], from: i64, end: i64) -> Vec<Seen> {
    let engine = WatchEngine::new(transport(endpoints));
    let mut watcher = bounded(
        20,
        "the history watch",
        engine.watch(
            "",
            WatchOptions::new().prefix().start_revision(from).prev_kv(),
        ),
    )
    .await
    .expect("the history watch");
    let mut all = collect_until(&mut watcher, end, 30).await;
    all.retain(|s| s.0 <= end);
    all
}

/// The part of `history` a watcher of `[key, end)` (end empty: the key
/// alone) should have seen, with or without previous values and deletes.
pub fn expected(
    history: &[Seen],
    key: &[u8],
    end: &[u8],
    prev_kv: bool,
    deletes: bool,
) -> Vec<Seen> {
    history
        .iter()
        .filter(|s| {
            let k = s.1.as_ref();
            if end.is_empty() {
                k == key
            } else {
                k >= key && (end == b"\0" || k < end)
            }
        })
        .filter(|s| deletes || s.3 == 0)
        .map(|s| {
            let mut s = s.clone();
            if !prev_kv {
                s.4 = None;
            }
            s
        })
        .collect()
}

/// Compares what a watcher received through `end` with what it should
/// have, with a readable report of the first difference.
pub fn assert_same(label: &str, got: &[Seen], want: &[Seen]) {
    let got: Vec<&Seen> = got.iter().collect();
    let want: Vec<&Seen> = want.iter().collect();
    if got != want {
        let first = got
            .iter()
            .zip(want.iter())
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{label}: received {} events, history has {}; first difference at #{first}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            got.get(first),
            want.get(first)
        );
    }
}
