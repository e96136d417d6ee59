//! The client side of the run: writers, watchers, lease holders, mutex
//! contenders and a sleeper that lets its auth token expire, all through
//! the full stack with the `chaos/` namespace. Every operation is recorded
//! with its real-time interval and outcome; every loop is bounded by the
//! run's stop flag and every call by a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_tower::concurrency::{Mutex, Session};
use etcd_tower::watch::{WatchOptions, Watcher};
use etcd_tower::{
    prefix_end, Client, Compare, CompareOp, ErrorKind, EtcdError, LeaseKeeper, PutOptions, Txn,
    TxnOp, TxnOpResponse,
};
use futures::StreamExt;

use crate::model::{
    lock, raw, Cmp, Detail, Ev, Found, Hold, KeyRange, Op, OpKind, Outcome, Recorder, SegEnd,
    Segment, NS,
};
use crate::rng::Rng;

/// The deadline the harness puts on every single operation (the client's
/// own total timeout is shorter; this only catches a call that hangs).
pub const OP_DEADLINE: Duration = Duration::from_secs(15);

/// How many keys the writers share.
pub const KEYS: u64 = 12;

pub fn key_name(k: u64) -> String {
    format!("k{k:02}")
}

/// The workload's view: the namespaced client and the recorder.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub app: Client,
    pub rec: Arc<Recorder>,
}

fn found(resp: &etcd_tower::GetResponse) -> Found {
    resp.kvs()
        .first()
        .map(|kv| (kv.value_bytes().clone(), kv.mod_revision()))
}

impl Ctx {
    /// Runs `call` under the harness deadline and records it.
    async fn record<F, T>(
        &self,
        who: &str,
        kind: OpKind,
        call: F,
        detail: impl FnOnce(&T) -> (i64, Detail),
    ) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, EtcdError>>,
    {
        let start = Instant::now();
        let result = tokio::time::timeout(OP_DEADLINE, call).await;
        let end = Instant::now();
        let (outcome, value) = match result {
            Ok(Ok(value)) => {
                let (rev, detail) = detail(&value);
                (Outcome::Ok { rev, detail }, Some(value))
            }
            Ok(Err(error)) => (Outcome::of_error(&error), None),
            Err(_) => (
                Outcome::Unknown(format!("no answer within {OP_DEADLINE:?}")),
                None,
            ),
        };
        self.rec
            .count(&format!("op {} {}", kind.name(), outcome.name()));
        self.rec.op(Op {
            who: who.to_owned(),
            kind,
            start,
            end,
            outcome,
        });
        value
    }

    pub async fn put(
        &self,
        client: &Client,
        who: &str,
        key: &str,
        value: String,
        lease: i64,
    ) -> bool {
        let kind = OpKind::Put {
            key: raw(key),
            value: Bytes::from(value.clone()),
            lease,
        };
        let options = if lease != 0 {
            PutOptions::new().lease(lease)
        } else {
            PutOptions::new()
        };
        self.record(who, kind, client.put_with(key, value, options), |r| {
            (r.revision(), Detail::Put)
        })
        .await
        .is_some()
    }

    pub async fn get(&self, who: &str, key: &str) -> Option<Found> {
        let kind = OpKind::Get { key: raw(key) };
        self.record(who, kind, self.app.get(key), |r| {
            (r.revision(), Detail::Got(found(r)))
        })
        .await
        .map(|r| found(&r))
    }

    pub async fn delete(&self, who: &str, key: &str) {
        let kind = OpKind::Delete { key: raw(key) };
        self.record(who, kind, self.app.delete(key), |r| {
            (r.revision(), Detail::Deleted(r.deleted()))
        })
        .await;
    }

    /// `if compares then puts else get(else_get)`; compares and puts use
    /// namespaced keys. Returns whether it succeeded, when known.
    pub async fn txn(
        &self,
        who: &str,
        compares: Vec<(Cmp, Compare)>,
        puts: Vec<(String, String)>,
        else_get: &str,
    ) -> Option<bool> {
        let kind = OpKind::Txn {
            compares: compares.iter().map(|(c, _)| c.clone()).collect(),
            puts: puts
                .iter()
                .map(|(k, v)| (raw(k), Bytes::from(v.clone())))
                .collect(),
            else_get: raw(else_get),
        };
        let txn = Txn::new()
            .when(compares.into_iter().map(|(_, c)| c))
            .and_then(puts.into_iter().map(|(k, v)| TxnOp::put(k, v)))
            .or_else([TxnOp::get(else_get)]);
        self.record(who, kind, self.app.txn(txn), |r| {
            let got = match r.op_responses().first() {
                Some(TxnOpResponse::Get(get)) if !r.succeeded() => found(get),
                _ => None,
            };
            (
                r.revision(),
                Detail::Txn {
                    succeeded: r.succeeded(),
                    got,
                },
            )
        })
        .await
        .map(|r| r.succeeded())
    }
}

/// A writer: puts, deletes, guarded txns and linearizable reads on the
/// shared keys, every value unique.
pub async fn writer(ctx: Ctx, id: usize, mut rng: Rng) {
    let who = format!("writer{id}");
    let mut seq = 0u64;
    // The last mod revision this writer read of each key (txn guards).
    let mut seen = vec![0i64; KEYS as usize];
    while !ctx.rec.stopped() {
        seq += 1;
        let k = rng.below(KEYS);
        let key = key_name(k);
        match rng.below(100) {
            0..=34 => {
                ctx.put(&ctx.app, &who, &key, format!("w{id}.{seq}"), 0)
                    .await;
            }
            35..=44 => ctx.delete(&who, &key).await,
            45..=64 => {
                let other = key_name((k + 1 + rng.below(KEYS - 1)) % KEYS);
                let guard = seen[k as usize];
                let mut puts = vec![(key.clone(), format!("t{id}.{seq}.a"))];
                if rng.percent(50) {
                    puts.push((other, format!("t{id}.{seq}.b")));
                }
                let compares = vec![(
                    Cmp::ModRev(raw(&key), guard),
                    Compare::mod_revision(key.as_str(), CompareOp::Equal, guard),
                )];
                ctx.txn(&who, compares, puts, &key).await;
            }
            _ => {
                if let Some(found) = ctx.get(&who, &key).await {
                    seen[k as usize] = found.map_or(0, |(_, m)| m);
                }
            }
        }
        tokio::time::sleep(rng.ms(2, 12)).await;
    }
}

/// A watcher: one range, watched in segments (each a new `Watcher`, from
/// the current revision or from a past one), each dropped after a while or
/// ended by a compaction. Returns the segment still open at the stop.
pub async fn watcher(
    ctx: Ctx,
    id: usize,
    options: WatchOptions,
    key: String,
    range: KeyRange,
    mut rng: Rng,
) -> Option<(Watcher, Segment)> {
    let who = format!("watcher{id}");
    while !ctx.rec.stopped() {
        let now = match tokio::time::timeout(OP_DEADLINE, ctx.app.get("k00")).await {
            Ok(Ok(resp)) => resp.revision(),
            _ => {
                ctx.rec.count("watcher: revision read failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let start_rev = if rng.percent(30) {
            (now - rng.below(150) as i64).max(1)
        } else {
            now + 1
        };
        let opened = tokio::time::timeout(
            Duration::from_secs(20),
            ctx.app
                .watch(key.as_str(), options.clone().start_revision(start_rev)),
        )
        .await;
        let mut w = match opened {
            Ok(Ok(w)) => w,
            Ok(Err(e)) if e.compact_revision().is_some() => {
                lock(&ctx.rec.segments).push(Segment {
                    who: who.clone(),
                    range: range.clone(),
                    start_rev,
                    events: Vec::new(),
                    end: SegEnd::Compacted(e.compact_revision().unwrap_or(0)),
                });
                continue;
            }
            Ok(Err(e)) => {
                ctx.rec.count("watcher: watch() failed");
                ctx.rec.violation(
                    "watch-create",
                    format!("{who}: watch() from {start_rev} failed: {e}"),
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                ctx.rec.count("watcher: watch() took over 20 s");
                continue;
            }
        };
        ctx.rec.count("watcher segments");
        let mut seg = Segment {
            who: who.clone(),
            range: range.clone(),
            start_rev,
            events: Vec::new(),
            end: SegEnd::Open,
        };
        let life = tokio::time::Instant::now() + rng.ms(3_000, 15_000);
        loop {
            if ctx.rec.stopped() {
                return Some((w, seg));
            }
            let next = tokio::time::timeout_at(
                life.min(tokio::time::Instant::now() + Duration::from_millis(250)),
                w.next(),
            )
            .await;
            match next {
                Err(_) if tokio::time::Instant::now() >= life => {
                    seg.end = SegEnd::Dropped;
                    break;
                }
                Err(_) => continue,
                Ok(item) => {
                    if let Some(end) = take(&mut seg, item) {
                        seg.end = end;
                        break;
                    }
                }
            }
        }
        drop(w);
        lock(&ctx.rec.segments).push(seg);
    }
    None
}

/// Adds one watcher item to a segment; returns how the segment ended, if
/// it did.
pub fn take(
    seg: &mut Segment,
    item: Option<Result<etcd_tower::watch::WatchBatch, EtcdError>>,
) -> Option<SegEnd> {
    match item {
        None => Some(SegEnd::Error("the watcher ended without an error".into())),
        Some(Err(e)) => Some(match e.kind() {
            ErrorKind::Compacted {
                compact_revision: Some(c),
            } => SegEnd::Compacted(*c),
            _ => SegEnd::Error(e.to_string()),
        }),
        Some(Ok(batch)) => {
            for event in batch.events() {
                let Some(kv) = event.kv.as_ref() else {
                    continue;
                };
                let mut key = NS.as_bytes().to_vec();
                key.extend_from_slice(&kv.key);
                seg.events.push(Ev {
                    rev: kv.mod_revision,
                    key: Bytes::from(key),
                    put: event.r#type == 0,
                    value: kv.value.clone(),
                });
            }
            None
        }
    }
}

/// The namespaced watch options of each watcher and the server range they
/// cover: overlapping ranges, one single key, one whole namespace.
pub fn watch_specs() -> Vec<(WatchOptions, String, KeyRange)> {
    let ns_end = prefix_end(NS.as_bytes());
    vec![
        (
            WatchOptions::new().prefix(),
            String::from("k0"),
            KeyRange {
                start: raw("k0"),
                end: prefix_end(&raw("k0")),
            },
        ),
        (
            WatchOptions::new().range_end("k09"),
            String::from("k05"),
            KeyRange {
                start: raw("k05"),
                end: raw("k09"),
            },
        ),
        (
            WatchOptions::new(),
            String::from("k03"),
            KeyRange {
                start: raw("k03"),
                end: Bytes::new(),
            },
        ),
        (
            WatchOptions::new().from_key(),
            String::from("k08"),
            KeyRange {
                start: raw("k08"),
                end: ns_end.clone(),
            },
        ),
        // The whole namespace. (`watch("", prefix())` would be the natural
        // spelling, but the facade refuses an empty key: see the report.)
        (
            WatchOptions::new().from_key(),
            String::from("\0"),
            KeyRange {
                start: Bytes::from(NS),
                end: ns_end,
            },
        ),
    ]
}

/// A lease holder: grants a lease kept alive by a `LeaseKeeper`, writes its
/// key on it now and then, revokes it after a while, and starts over when
/// the lease is lost. Returns the keeper still alive at the stop.
pub async fn lease_holder(ctx: Ctx, id: usize, mut rng: Rng) -> Option<(LeaseKeeper, String)> {
    let who = format!("lease{id}");
    let key = format!("lease/h{id}");
    let mut seq = 0u64;
    while !ctx.rec.stopped() {
        let keeper = match tokio::time::timeout(OP_DEADLINE, LeaseKeeper::grant(&ctx.app, 6)).await
        {
            Ok(Ok(k)) => k,
            _ => {
                ctx.rec.count("lease: grant failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        ctx.rec.count("lease: granted");
        let until = tokio::time::Instant::now() + rng.ms(4_000, 12_000);
        let mut written = false;
        while tokio::time::Instant::now() < until && keeper.is_alive() && !ctx.rec.stopped() {
            seq += 1;
            let ok = ctx
                .put(&ctx.app, &who, &key, format!("l{id}.{seq}"), keeper.id())
                .await;
            written |= ok;
            tokio::time::sleep(rng.ms(300, 900)).await;
        }
        if ctx.rec.stopped() && keeper.is_alive() && written {
            return Some((keeper, key));
        }
        if !keeper.is_alive() {
            ctx.rec
                .count(&format!("lease: lost ({:?})", keeper.state()));
            continue;
        }
        match tokio::time::timeout(OP_DEADLINE, keeper.revoke()).await {
            Ok(Ok(())) => ctx.rec.count("lease: revoked"),
            _ => ctx.rec.count("lease: revoke failed"),
        }
    }
    None
}

/// A mutex contender: locks, does a read-modify-write of the fencing
/// counter guarded by ownership, unlocks; a new session when the old one
/// is lost or a step fails.
pub async fn contender(ctx: Ctx, id: usize, mut rng: Rng) {
    let who = format!("mutex{id}");
    let mut seq = 0u64;
    while !ctx.rec.stopped() {
        let session = match tokio::time::timeout(OP_DEADLINE, Session::with_ttl(&ctx.app, 5)).await
        {
            Ok(Ok(s)) => s,
            _ => {
                ctx.rec.count("mutex: session failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut mutex = Mutex::new(&session, "lock");
        let lock_key = {
            let mut k = NS.as_bytes().to_vec();
            k.extend_from_slice(mutex.key());
            Bytes::from(k)
        };
        while !ctx.rec.stopped() && session.is_alive() {
            match tokio::time::timeout(Duration::from_secs(10), mutex.lock()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    ctx.rec.count("mutex: lock failed");
                    break;
                }
            }
            seq += 1;
            ctx.rec.count("mutex: acquired");
            let acquired_rev = mutex.header().map_or(0, |h| h.revision);
            lock(&ctx.rec.holds).push(Hold {
                who: who.clone(),
                lock_key: lock_key.clone(),
                create_rev: mutex.revision(),
                acquired_rev,
            });
            // Read-modify-write of the fence, the write guarded by
            // ownership: two holders at once would lose an increment.
            if let Some(fence) = ctx.get(&who, "fence").await {
                let n = fence
                    .as_ref()
                    .and_then(|(v, _)| fence_number(v))
                    .unwrap_or(0);
                tokio::time::sleep(rng.ms(0, 30)).await;
                let compares = vec![(
                    Cmp::CreateRev(lock_key.clone(), mutex.revision()),
                    mutex.is_owner(),
                )];
                let value = format!("f{}.{id}.{seq}", n + 1);
                ctx.txn(&who, compares, vec![("fence".into(), value)], "fence")
                    .await;
            }
            let unlocked = tokio::time::timeout(OP_DEADLINE, mutex.unlock()).await;
            if !matches!(unlocked, Ok(Ok(()))) {
                ctx.rec.count("mutex: unlock failed");
                break;
            }
            tokio::time::sleep(rng.ms(0, 50)).await;
        }
        if !session.is_alive() {
            ctx.rec.count("mutex: session lost");
        }
        if tokio::time::timeout(OP_DEADLINE, session.close())
            .await
            .is_err()
        {
            ctx.rec.count("mutex: session close timed out");
        }
    }
}

/// The counter in a fence value `f<n>.<holder>.<seq>`.
pub fn fence_number(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?;
    s.strip_prefix('f')?.split('.').next()?.parse().ok()
}

/// A client that sleeps past its token's TTL between calls, so that its
/// unary calls, its long-lived watcher's stream and a new watch on that
/// stream all meet an expired token. Returns its long-lived watcher.
pub async fn sleeper(
    ctx: Ctx,
    client: Client,
    ttl: Duration,
    mut rng: Rng,
) -> Option<(Watcher, Segment)> {
    let who = "sleeper";
    let range = KeyRange {
        start: raw("idle/"),
        end: prefix_end(&raw("idle/")),
    };
    let mut long: Option<(Watcher, Segment)> = None;
    let mut seq = 0u64;
    while !ctx.rec.stopped() {
        if long.is_none() {
            let now = match tokio::time::timeout(OP_DEADLINE, client.get("idle/")).await {
                Ok(Ok(r)) => r.revision(),
                _ => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            match tokio::time::timeout(
                Duration::from_secs(20),
                client.watch(
                    "idle/",
                    WatchOptions::new().prefix().start_revision(now + 1),
                ),
            )
            .await
            {
                Ok(Ok(w)) => {
                    let seg = Segment {
                        who: "sleeper-long".into(),
                        range: range.clone(),
                        start_rev: now + 1,
                        events: Vec::new(),
                        end: SegEnd::Open,
                    };
                    long = Some((w, seg));
                }
                _ => {
                    ctx.rec.count("sleeper: watch() failed");
                    continue;
                }
            }
        }
        // Idle past the token TTL (the server expires tokens on a 1 s tick),
        // reading the long watcher meanwhile.
        let wake = tokio::time::Instant::now() + ttl + rng.ms(1_200, 2_500);
        while tokio::time::Instant::now() < wake {
            let Some((w, seg)) = long.as_mut() else { break };
            match tokio::time::timeout_at(wake, w.next()).await {
                Err(_) => break,
                Ok(item) => {
                    if let Some(end) = take(seg, item) {
                        let (_, mut seg) = long.take().expect("just matched");
                        seg.end = end;
                        lock(&ctx.rec.segments).push(seg);
                    }
                }
            }
        }
        if ctx.rec.stopped() {
            break;
        }
        ctx.rec.fault("token expiry (idle client)");
        seq += 1;
        let key = format!("idle/{}", seq % 3);
        let rev_before = match tokio::time::timeout(OP_DEADLINE, client.get("idle/")).await {
            Ok(Ok(r)) => r.revision(),
            _ => continue,
        };
        // A new watch on the long watcher's stream, whose token is stale.
        let fresh = tokio::time::timeout(
            Duration::from_secs(20),
            client.watch(
                "idle/",
                WatchOptions::new().prefix().start_revision(rev_before + 1),
            ),
        )
        .await;
        let mut fresh = match fresh {
            Ok(Ok(w)) => Some((
                w,
                Segment {
                    who: "sleeper-fresh".into(),
                    range: range.clone(),
                    start_rev: rev_before + 1,
                    events: Vec::new(),
                    end: SegEnd::Dropped,
                },
            )),
            Ok(Err(e)) => {
                ctx.rec.violation(
                    "watch-create",
                    format!("sleeper: watch() after idling failed: {e}"),
                );
                None
            }
            Err(_) => {
                ctx.rec.count("sleeper: watch() took over 20 s");
                None
            }
        };
        let value = format!("s.{seq}");
        if !ctx.put(&client, who, &key, value.clone(), 0).await {
            if let Some((_, seg)) = fresh.take() {
                lock(&ctx.rec.segments).push(seg);
            }
            continue;
        }
        // The fresh watcher must see the put.
        if let Some((mut w, mut seg)) = fresh.take() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                if seg.events.iter().any(|e| e.value == value.as_bytes()) {
                    break;
                }
                match tokio::time::timeout_at(deadline, w.next()).await {
                    Err(_) => {
                        ctx.rec.violation(
                            "watch-stalled",
                            format!("sleeper: a watch opened after idling did not deliver {value} within 20 s"),
                        );
                        break;
                    }
                    Ok(item) => {
                        if let Some(end) = take(&mut seg, item) {
                            seg.end = end;
                            break;
                        }
                    }
                }
            }
            lock(&ctx.rec.segments).push(seg);
        }
    }
    long
}
