//! Property: a namespaced stack behaves exactly like hand-prefixed raw
//! keys, and never touches a key outside its prefix.
//!
//! Each case takes two fresh, disjoint prefixes on one real etcd: `P` for
//! the namespaced stack (`NamespaceLayer(P)` over the transport, or two
//! nested layers that together make `P`) and `Q` for a mirror that sends
//! the same operations through the plain transport on the raw keys `Q + k`,
//! with range ends computed by hand (by this file, not by the crate). Every
//! operation runs on the namespaced stack and then on the mirror, so each
//! revision the namespace writes at is followed by the mirror's: the
//! mirror's revisions are the namespace's plus one. The case checks that
//!
//! * (a) every answer is equal once the mirror's keys lose `Q` and its
//!   revisions lose one (headers aside), errors included;
//! * (b) no key outside `P` and `Q` was created, changed or deleted (a raw
//!   snapshot of all other keys, including "other tenant" keys seeded
//!   right at the edges of both prefixes, is the same before and after),
//!   and the raw contents of `P` and `Q` end up equal;
//! * (c) a Watch stream opened through the namespace on a random selection
//!   receives the same events as the mirror's raw watch, stripped.
//!
//! One cluster per etcd version serves all cases (each case uses new
//! prefixes, so earlier cases' keys join the snapshot of (b)).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use etcd_tower_core::proto::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseOp, TxnRequest, TxnResponse, WatchCreateRequest,
};
use etcd_tower_core::proto::mvccpb::{Event, KeyValue};
use etcd_tower_core::{
    Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody, Transport,
};
use etcd_tower_namespace::NamespaceLayer;
use etcd_tower_testkit::{binaries, Cluster};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

type Stack = BoxCloneService<EtcdRequest, EtcdResponse, EtcdError>;

/// Cases per etcd version; `PROPTEST_CASES` overrides it.
const CASES: u32 = 32;
const MAX_OPS: usize = 20;
const CASE_LIMIT: Duration = Duration::from_secs(30);

// ----- The operations -----

/// A set of user keys, as a caller would name it.
#[derive(Clone, Debug)]
enum Sel {
    Key(Vec<u8>),
    /// The keys starting with this (range end computed by the caller).
    Prefix(Vec<u8>),
    /// Range end `\0`.
    FromKey(Vec<u8>),
    /// `[a, b)` with `a < b`.
    Range(Vec<u8>, Vec<u8>),
    /// Key `\0`, range end `\0`.
    All,
}

#[derive(Clone, Debug)]
struct GetOpts {
    limit: i64,
    keys_only: bool,
    count_only: bool,
    sort: (range_request::SortOrder, range_request::SortTarget),
}

#[derive(Clone, Debug)]
enum Cmp {
    ValueEq(Sel, u8),
    ValueLess(Sel, u8),
    Exists(Sel),
    Absent(Sel),
}

#[derive(Clone, Debug)]
enum TxnOp {
    Put(Vec<u8>, u8),
    Get(Sel),
    Delete(Sel),
    Txn(TxnSpec),
}

#[derive(Clone, Debug)]
struct TxnSpec {
    compare: Vec<Cmp>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: Vec<u8>,
        value: u8,
        prev_kv: bool,
    },
    Get(Sel, GetOpts),
    Delete(Sel, bool),
    Txn(TxnSpec),
}

#[derive(Clone, Debug)]
struct Case {
    /// The end of both prefixes: plain, `/`, or 0xff bytes.
    tail: Vec<u8>,
    /// Two nested layers instead of one.
    nested: bool,
    watch: Sel,
    ops: Vec<Op>,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b', 0x00, 0xff]), 1..=2)
}

fn sel() -> impl Strategy<Value = Sel> {
    prop_oneof![
        3 => key().prop_map(Sel::Key),
        1 => key().prop_map(Sel::Prefix),
        1 => key().prop_map(Sel::FromKey),
        1 => (key(), key()).prop_map(|(a, b)| {
            let (a, mut b) = if a <= b { (a, b) } else { (b, a) };
            if a == b {
                b.push(0);
            }
            Sel::Range(a, b)
        }),
        1 => Just(Sel::All),
    ]
}

fn cmp() -> impl Strategy<Value = Cmp> {
    prop_oneof![
        (sel(), 0..3u8).prop_map(|(s, v)| Cmp::ValueEq(s, v)),
        (sel(), 0..3u8).prop_map(|(s, v)| Cmp::ValueLess(s, v)),
        sel().prop_map(Cmp::Exists),
        sel().prop_map(Cmp::Absent),
    ]
}

fn leaf_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        2 => (key(), 0..3u8).prop_map(|(k, v)| TxnOp::Put(k, v)),
        1 => sel().prop_map(TxnOp::Get),
        1 => sel().prop_map(TxnOp::Delete),
    ]
}

fn txn_spec(ops: BoxedStrategy<TxnOp>) -> impl Strategy<Value = TxnSpec> {
    (
        prop::collection::vec(cmp(), 0..=2),
        prop::collection::vec(ops.clone(), 0..=3),
        prop::collection::vec(ops, 0..=3),
    )
        .prop_map(|(compare, success, failure)| TxnSpec {
            compare,
            success,
            failure,
        })
}

fn txn() -> impl Strategy<Value = TxnSpec> {
    let nested = prop_oneof![
        3 => leaf_op(),
        1 => txn_spec(leaf_op().boxed()).prop_map(TxnOp::Txn),
    ];
    txn_spec(nested.boxed())
}

fn get_opts() -> impl Strategy<Value = GetOpts> {
    use range_request::{SortOrder as O, SortTarget as T};
    (
        prop_oneof![3 => Just(0i64), 1 => 1..3i64],
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
        prop_oneof![
            3 => Just((O::None, T::Key)),
            1 => Just((O::Descend, T::Key)),
            1 => Just((O::Ascend, T::Value)),
            1 => Just((O::Descend, T::Mod)),
        ],
    )
        .prop_map(|(limit, keys_only, count_only, sort)| GetOpts {
            limit,
            keys_only,
            count_only,
            sort,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), 0..3u8, any::<bool>())
            .prop_map(|(key, value, prev_kv)| Op::Put { key, value, prev_kv }),
        3 => (sel(), get_opts()).prop_map(|(s, o)| Op::Get(s, o)),
        2 => (sel(), any::<bool>()).prop_map(|(s, p)| Op::Delete(s, p)),
        2 => txn().prop_map(Op::Txn),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![
            b"/".to_vec(),
            b"\xff".to_vec(),
            b"\xff\xff".to_vec(),
            vec![],
        ]),
        any::<bool>(),
        sel(),
        prop::collection::vec(op(), 1..=MAX_OPS),
    )
        .prop_map(|(tail, nested, watch, ops)| Case {
            tail,
            nested,
            watch,
            ops,
        })
}

// ----- Building requests for either side -----

/// Which side a request is for: the namespaced stack (user keys) or the
/// mirror (raw keys under `Q`, with range ends computed here).
#[derive(Clone, Copy)]
enum Side<'a> {
    Namespaced,
    Mirror(&'a [u8]),
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

impl Side<'_> {
    fn key(self, k: &[u8]) -> Bytes {
        match self {
            Side::Namespaced => b(k),
            Side::Mirror(q) => b(cat(q, k)),
        }
    }

    fn pair(self, sel: &Sel) -> (Bytes, Bytes) {
        let (key, end) = match (self, sel) {
            (Side::Namespaced, Sel::Key(k)) => (k.clone(), vec![]),
            (Side::Namespaced, Sel::Prefix(k)) => (k.clone(), prefix_end(k)),
            (Side::Namespaced, Sel::FromKey(k)) => (k.clone(), vec![0]),
            (Side::Namespaced, Sel::Range(a, z)) => (a.clone(), z.clone()),
            (Side::Namespaced, Sel::All) => (vec![0], vec![0]),
            (Side::Mirror(q), Sel::Key(k)) => (cat(q, k), vec![]),
            (Side::Mirror(q), Sel::Prefix(k)) => (cat(q, k), prefix_end(&cat(q, k))),
            (Side::Mirror(q), Sel::FromKey(k)) => (cat(q, k), prefix_end(q)),
            (Side::Mirror(q), Sel::Range(a, z)) => (cat(q, a), cat(q, z)),
            (Side::Mirror(q), Sel::All) => (q.to_vec(), prefix_end(q)),
        };
        (b(key), b(end))
    }

    fn put(self, key: &[u8], value: u8, prev_kv: bool) -> PutRequest {
        PutRequest {
            key: self.key(key),
            value: b(format!("v{value}")),
            prev_kv,
            ..Default::default()
        }
    }

    fn range(self, sel: &Sel) -> RangeRequest {
        let (key, range_end) = self.pair(sel);
        RangeRequest {
            key,
            range_end,
            ..Default::default()
        }
    }

    fn delete(self, sel: &Sel, prev_kv: bool) -> DeleteRangeRequest {
        let (key, range_end) = self.pair(sel);
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv,
        }
    }

    fn compare(self, c: &Cmp) -> Compare {
        use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
        let (sel, result, target, union) = match c {
            Cmp::ValueEq(s, v) => (s, R::Equal, T::Value, U::Value(b(format!("v{v}")))),
            Cmp::ValueLess(s, v) => (s, R::Less, T::Value, U::Value(b(format!("v{v}")))),
            Cmp::Exists(s) => (s, R::Greater, T::Version, U::Version(0)),
            Cmp::Absent(s) => (s, R::Equal, T::Version, U::Version(0)),
        };
        let (key, range_end) = self.pair(sel);
        Compare {
            result: result as i32,
            target: target as i32,
            key,
            range_end,
            target_union: Some(union),
        }
    }

    fn txn(self, spec: &TxnSpec) -> TxnRequest {
        let ops = |ops: &[TxnOp]| -> Vec<RequestOp> {
            ops.iter()
                .map(|op| RequestOp {
                    request: Some(match op {
                        TxnOp::Put(k, v) => request_op::Request::RequestPut(self.put(k, *v, true)),
                        TxnOp::Get(s) => request_op::Request::RequestRange(self.range(s)),
                        TxnOp::Delete(s) => {
                            request_op::Request::RequestDeleteRange(self.delete(s, true))
                        }
                        TxnOp::Txn(t) => request_op::Request::RequestTxn(self.txn(t)),
                    }),
                })
                .collect()
        };
        TxnRequest {
            compare: spec.compare.iter().map(|c| self.compare(c)).collect(),
            success: ops(&spec.success),
            failure: ops(&spec.failure),
        }
    }

    fn request(self, op: &Op) -> RequestBody {
        match op {
            Op::Put {
                key,
                value,
                prev_kv,
            } => self.put(key, *value, *prev_kv).into(),
            Op::Get(sel, o) => RangeRequest {
                limit: o.limit,
                keys_only: o.keys_only,
                count_only: o.count_only,
                sort_order: o.sort.0 as i32,
                sort_target: o.sort.1 as i32,
                ..self.range(sel)
            }
            .into(),
            Op::Delete(sel, prev_kv) => self.delete(sel, *prev_kv).into(),
            Op::Txn(spec) => self.txn(spec).into(),
        }
    }

    // ----- Normalizing answers -----

    /// The mirror's key-value as the namespace would show it: key without
    /// `Q`, revisions one lower.
    fn kv(self, kv: &mut KeyValue) -> Result<(), TestCaseError> {
        if let Side::Mirror(q) = self {
            prop_assert!(
                kv.key.starts_with(q),
                "mirror key {:?} outside {:?}",
                kv.key,
                q
            );
            kv.key = kv.key.slice(q.len()..);
            for rev in [&mut kv.create_revision, &mut kv.mod_revision] {
                if *rev != 0 {
                    *rev -= 1;
                }
            }
        }
        Ok(())
    }

    fn kvs(self, kvs: &mut [KeyValue]) -> Result<(), TestCaseError> {
        kvs.iter_mut().try_for_each(|kv| self.kv(kv))
    }

    fn txn_response(self, t: &mut TxnResponse) -> Result<(), TestCaseError> {
        t.header = None;
        for ResponseOp { response } in &mut t.responses {
            match response {
                Some(response_op::Response::ResponseRange(r)) => {
                    r.header = None;
                    self.kvs(&mut r.kvs)?;
                }
                Some(response_op::Response::ResponsePut(p)) => {
                    p.header = None;
                    if let Some(kv) = &mut p.prev_kv {
                        self.kv(kv)?;
                    }
                }
                Some(response_op::Response::ResponseDeleteRange(d)) => {
                    d.header = None;
                    self.kvs(&mut d.prev_kvs)?;
                }
                Some(response_op::Response::ResponseTxn(t)) => self.txn_response(t)?,
                None => {}
            }
        }
        Ok(())
    }

    fn outcome(self, result: Result<EtcdResponse, EtcdError>) -> Result<Outcome, TestCaseError> {
        let response = match result {
            Ok(response) => response,
            Err(e) => return Ok(Outcome::Failed(e.kind().clone(), e.code())),
        };
        Ok(match response.body {
            ResponseBody::Range(mut r) => {
                r.header = None;
                self.kvs(&mut r.kvs)?;
                Outcome::Range(r)
            }
            ResponseBody::Put(mut p) => {
                p.header = None;
                if let Some(kv) = &mut p.prev_kv {
                    self.kv(kv)?;
                }
                Outcome::Put(p)
            }
            ResponseBody::DeleteRange(mut d) => {
                d.header = None;
                self.kvs(&mut d.prev_kvs)?;
                Outcome::Delete(d)
            }
            ResponseBody::Txn(mut t) => {
                self.txn_response(&mut t)?;
                Outcome::Txn(t)
            }
            other => return Err(TestCaseError::fail(format!("unexpected answer {other:?}"))),
        })
    }

    fn event(self, mut event: Event) -> Result<Event, TestCaseError> {
        if let Some(kv) = &mut event.kv {
            self.kv(kv)?;
        }
        if let Some(kv) = &mut event.prev_kv {
            self.kv(kv)?;
        }
        Ok(event)
    }
}

/// An answer with everything that legitimately differs removed.
#[derive(Debug, PartialEq)]
enum Outcome {
    Range(RangeResponse),
    Put(PutResponse),
    Delete(DeleteRangeResponse),
    Txn(TxnResponse),
    Failed(ErrorKind, Code),
}

// ----- One case -----

struct Env {
    raw: Transport,
    cases: AtomicUsize,
    ops: AtomicUsize,
}

/// Keys right at the edges of `x`'s range (just below, at and just past
/// its end), kept only if they are outside both prefixes.
fn edge_keys(x: &[u8], p: &[u8], q: &[u8]) -> Vec<Vec<u8>> {
    let (head, last) = x.split_at(x.len() - 1);
    let end = prefix_end(x);
    let mut keys = vec![
        head.to_vec(),
        cat(head, &[last[0].wrapping_sub(1), 0xff, 0xff]),
        end.clone(),
        cat(&end, b"\0"),
        cat(&end, b"a"),
    ];
    keys.retain(|k| !k.is_empty() && !k.starts_with(p) && !k.starts_with(q));
    keys
}

/// Every key outside `P` and `Q`, with what would show a change.
async fn outside(raw: &Transport, p: &[u8], q: &[u8]) -> Vec<(Bytes, Bytes, i64, i64)> {
    all_keys(raw)
        .await
        .into_iter()
        .filter(|kv| !kv.key.starts_with(p) && !kv.key.starts_with(q))
        .map(|kv| (kv.key, kv.value, kv.mod_revision, kv.version))
        .collect()
}

/// The raw contents of a prefix, as `side` would show them.
async fn contents(
    raw: &Transport,
    x: &[u8],
    side: Side<'_>,
) -> Result<Vec<KeyValue>, TestCaseError> {
    let r: RangeResponse = call(raw, range(x, prefix_end(x))).await.unwrap();
    let mut kvs = r.kvs;
    if let Side::Namespaced = side {
        for kv in &mut kvs {
            kv.key = kv.key.slice(x.len()..);
        }
    }
    side.kvs(&mut kvs)?;
    Ok(kvs)
}

/// Reads events until the sentinel (the case's last write) arrives.
async fn events_until_sentinel(
    watch: &mut WatchStream,
    side: Side<'_>,
    sentinel: &[u8],
) -> Result<Vec<Event>, TestCaseError> {
    let mut events = Vec::new();
    loop {
        let message = watch.inbound.next().await.unwrap().unwrap();
        prop_assert!(!message.canceled, "watch canceled: {:?}", message);
        for event in message.events {
            let event = side.event(event)?;
            let done = event
                .kv
                .as_ref()
                .is_some_and(|kv| kv.key == sentinel && kv.value == "sentinel");
            events.push(event);
            if done {
                return Ok(events);
            }
        }
    }
}

async fn run_case(env: &Env, case: &Case) -> Result<(), TestCaseError> {
    let raw = &env.raw;
    let n = env.cases.fetch_add(1, Ordering::Relaxed);
    let head = format!("c{n}/");
    let p = cat(format!("{head}n").as_bytes(), &case.tail);
    let q = cat(format!("{head}m").as_bytes(), &case.tail);
    for key in edge_keys(&p, &p, &q)
        .into_iter()
        .chain(edge_keys(&q, &p, &q))
    {
        put_raw(raw, key, "other tenant").await;
    }

    let ns: Stack = if case.nested {
        // The layer added last is nearest the transport: its prefix first.
        let (inner, outer) = p.split_at(head.len());
        BoxCloneService::new(
            ServiceBuilder::new()
                .layer(NamespaceLayer::new(b(outer)))
                .layer(NamespaceLayer::new(b(inner)))
                .service(raw.clone()),
        )
    } else {
        BoxCloneService::new(
            ServiceBuilder::new()
                .layer(NamespaceLayer::new(b(&p)))
                .service(raw.clone()),
        )
    };
    let mirror = Side::Mirror(&q);
    let before = outside(raw, &p, &q).await;

    let watch = |side: Side<'_>| {
        let (key, range_end) = side.pair(&case.watch);
        WatchCreateRequest {
            key,
            range_end,
            prev_kv: true,
            ..Default::default()
        }
    };
    let mut ns_watch = open_watch(&ns, watch(Side::Namespaced)).await;
    let mut raw_watch = open_watch(raw, watch(mirror)).await;

    for (i, op) in case.ops.iter().enumerate() {
        let got = ns
            .clone()
            .oneshot(EtcdRequest::new(Side::Namespaced.request(op)))
            .await;
        let got = Side::Namespaced.outcome(got)?;
        let want = raw
            .clone()
            .oneshot(EtcdRequest::new(mirror.request(op)))
            .await;
        let want = mirror.outcome(want)?;
        prop_assert_eq!(got, want, "op {} {:?} (P = {:?})", i, op, b(&p));
    }
    env.ops.fetch_add(case.ops.len(), Ordering::Relaxed);

    // (c) The last write of the case falls in the watched selection.
    let sentinel = match &case.watch {
        Sel::Key(k) | Sel::Prefix(k) | Sel::FromKey(k) | Sel::Range(k, _) => k.clone(),
        Sel::All => b"sentinel".to_vec(),
    };
    let put_sentinel = |side: Side<'_>| PutRequest {
        key: side.key(&sentinel),
        value: b("sentinel"),
        ..Default::default()
    };
    let _: PutResponse = call(&ns, put_sentinel(Side::Namespaced)).await.unwrap();
    let _: PutResponse = call(raw, put_sentinel(mirror)).await.unwrap();
    let got = events_until_sentinel(&mut ns_watch, Side::Namespaced, &sentinel).await?;
    let want = events_until_sentinel(&mut raw_watch, mirror, &sentinel).await?;
    prop_assert_eq!(got, want, "watch {:?}", case.watch);

    // (a) The final contents agree, read raw and through the namespace.
    let in_p = contents(raw, &p, Side::Namespaced).await?;
    let in_q = contents(raw, &q, mirror).await?;
    prop_assert_eq!(&in_p, &in_q, "raw contents of P and Q");
    let seen: RangeResponse = call(&ns, range("\0", "\0")).await.unwrap();
    prop_assert_eq!(&seen.kvs, &in_p, "all keys through the namespace");

    // (b) Nothing else changed.
    let after = outside(raw, &p, &q).await;
    prop_assert_eq!(before, after, "keys outside the prefixes changed");
    Ok(())
}

#[test]
fn namespaced_stack_equals_hand_prefixed_raw_keys() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for bin in binaries() {
        let started = Instant::now();
        let cluster = rt
            .block_on(async { tokio::time::timeout(LIMIT, Cluster::start(&bin)).await })
            .expect("cluster start timed out")
            .unwrap();
        let env = Env {
            raw: rt.block_on(async { Transport::connect_lazy(cluster.endpoints()).unwrap() }),
            cases: AtomicUsize::new(0),
            ops: AtomicUsize::new(0),
        };
        rt.block_on(async {
            for key in [&b"other/a"[..], b"\0", b"a", b"\xff\xff\xff", b"zzz"] {
                put_raw(&env.raw, key, "other tenant").await;
            }
        });
        let mut runner = TestRunner::new(Config {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(CASES),
            max_shrink_iters: 64,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&case(), |case| {
            rt.block_on(async {
                match tokio::time::timeout(CASE_LIMIT, run_case(&env, &case)).await {
                    Ok(result) => result,
                    Err(_) => Err(TestCaseError::fail("case timed out")),
                }
            })
        });
        if let Err(e) = result {
            panic!("{}: {e}", bin.label());
        }
        eprintln!(
            "{}: {} cases, {} ops, {:.1?}",
            bin.label(),
            env.cases.load(Ordering::Relaxed),
            env.ops.load(Ordering::Relaxed),
            started.elapsed()
        );
        drop(cluster);
    }
}
