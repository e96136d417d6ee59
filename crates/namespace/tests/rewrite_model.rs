//! Property ("fuzzing" with proptest, no etcd needed): a namespaced KV
//! request, rewritten by [`prefix_request`], run on a model of etcd's
//! keyspace and stripped by [`strip_response`], answers exactly as the
//! user's request run on the namespace's own view of that keyspace; and
//! nothing outside the prefix is read or changed.
//!
//! `equivalence.rs` checks the same against a real etcd, with few cases
//! and a small alphabet because each costs round trips. This file checks
//! the rewriting itself with every byte value, every prefix shape (empty,
//! all-`0xff`, ending in `0xff`), the special range ends (`""`, `"\0"`,
//! `"\0\0"`, and `("\0", "\0")` for all keys), empty keys, and nested
//! transactions, in a model that reads a `(key, range_end)` pair the way
//! etcd does; once through the public rewrite functions and once through
//! the [`Namespace`] service itself (its in-place path) over a model
//! server. 256 cases in a normal `cargo test` (well under a second);
//! `PROPTEST_CASES=100000 cargo test -p etcd-tower-namespace --test
//! rewrite_model` for a longer run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb::{
    compare, request_op, response_op, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use etcd_tower_core::proto::mvccpb::KeyValue;
use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody};
use etcd_tower_namespace::request::prefix_request;
use etcd_tower_namespace::response::strip_response;
use etcd_tower_namespace::{Namespace, Prefix};
use proptest::prelude::*;
use tower::ServiceExt;

const CASES: u32 = 256;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(CASES);
    if let Some(cases) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.cases = cases;
    }
    config
}

// ----- A model of etcd's keyspace -----

/// Keys to `(value, version)`.
type Store = BTreeMap<Vec<u8>, (Vec<u8>, i64)>;

/// etcd's reading of a `(key, range_end)` pair.
fn selects(key: &[u8], range_end: &[u8], candidate: &[u8]) -> bool {
    match range_end {
        [] => candidate == key,
        [0] if key == [0] => true,
        [0] => candidate >= key,
        _ => key <= candidate && candidate < range_end,
    }
}

/// etcd refuses an empty key.
#[derive(Debug, PartialEq)]
struct EmptyKey;

fn check_key(key: &[u8]) -> Result<(), EmptyKey> {
    if key.is_empty() {
        Err(EmptyKey)
    } else {
        Ok(())
    }
}

fn selected(store: &Store, key: &[u8], range_end: &[u8]) -> Vec<KeyValue> {
    store
        .iter()
        .filter(|(k, _)| selects(key, range_end, k))
        .map(|(k, (v, version))| KeyValue {
            key: Bytes::copy_from_slice(k),
            value: Bytes::copy_from_slice(v),
            version: *version,
            ..Default::default()
        })
        .collect()
}

/// Every key a request selected or wrote, in server terms.
type Touched = Vec<Vec<u8>>;

fn range(
    store: &Store,
    r: &RangeRequest,
    touched: &mut Touched,
) -> Result<RangeResponse, EmptyKey> {
    check_key(&r.key)?;
    let kvs = selected(store, &r.key, &r.range_end);
    touched.extend(kvs.iter().map(|kv| kv.key.to_vec()));
    Ok(RangeResponse {
        count: kvs.len() as i64,
        kvs,
        ..Default::default()
    })
}

fn put(store: &mut Store, p: &PutRequest, touched: &mut Touched) -> Result<PutResponse, EmptyKey> {
    check_key(&p.key)?;
    touched.push(p.key.to_vec());
    let prev = selected(store, &p.key, b"").pop();
    let version = prev.as_ref().map_or(0, |kv| kv.version) + 1;
    store.insert(p.key.to_vec(), (p.value.to_vec(), version));
    Ok(PutResponse {
        prev_kv: prev.filter(|_| p.prev_kv),
        ..Default::default()
    })
}

fn delete(
    store: &mut Store,
    d: &DeleteRangeRequest,
    touched: &mut Touched,
) -> Result<DeleteRangeResponse, EmptyKey> {
    check_key(&d.key)?;
    let kvs = selected(store, &d.key, &d.range_end);
    for kv in &kvs {
        touched.push(kv.key.to_vec());
        store.remove(&kv.key[..]);
    }
    Ok(DeleteRangeResponse {
        deleted: kvs.len() as i64,
        prev_kvs: if d.prev_kv { kvs } else { vec![] },
        ..Default::default()
    })
}

/// A compare holds for every selected key; a value compare fails on none
/// (as etcd's does), a version compare reads a missing key as version 0.
fn holds(store: &Store, c: &Compare, touched: &mut Touched) -> Result<bool, EmptyKey> {
    check_key(&c.key)?;
    let kvs = selected(store, &c.key, &c.range_end);
    touched.extend(kvs.iter().map(|kv| kv.key.to_vec()));
    Ok(match &c.target_union {
        Some(compare::TargetUnion::Value(v)) => {
            !kvs.is_empty() && kvs.iter().all(|kv| kv.value == v)
        }
        Some(compare::TargetUnion::Version(v)) => {
            let versions: Vec<i64> = if kvs.is_empty() {
                vec![0]
            } else {
                kvs.iter().map(|kv| kv.version).collect()
            };
            versions.iter().all(|version| match c.result() {
                compare::CompareResult::Greater => version > v,
                compare::CompareResult::Less => version < v,
                _ => version == v,
            })
        }
        _ => true,
    })
}

fn txn(store: &mut Store, t: &TxnRequest, touched: &mut Touched) -> Result<TxnResponse, EmptyKey> {
    // etcd checks every key of a txn before running any of it.
    check_txn_keys(t)?;
    let mut succeeded = true;
    for c in &t.compare {
        succeeded &= holds(store, c, touched)?;
    }
    let ops = if succeeded { &t.success } else { &t.failure };
    let mut responses = Vec::new();
    for op in ops {
        use request_op::Request as Q;
        use response_op::Response as R;
        let response = match op.request.as_ref().unwrap() {
            Q::RequestRange(r) => R::ResponseRange(range(store, r, touched)?),
            Q::RequestPut(p) => R::ResponsePut(put(store, p, touched)?),
            Q::RequestDeleteRange(d) => R::ResponseDeleteRange(delete(store, d, touched)?),
            Q::RequestTxn(t) => R::ResponseTxn(txn(store, t, touched)?),
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        succeeded,
        responses,
        ..Default::default()
    })
}

fn check_txn_keys(t: &TxnRequest) -> Result<(), EmptyKey> {
    for c in &t.compare {
        check_key(&c.key)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        use request_op::Request as Q;
        match op.request.as_ref().unwrap() {
            Q::RequestRange(r) => check_key(&r.key)?,
            Q::RequestPut(p) => check_key(&p.key)?,
            Q::RequestDeleteRange(d) => check_key(&d.key)?,
            Q::RequestTxn(t) => check_txn_keys(t)?,
        }
    }
    Ok(())
}

/// Runs one request on the model: its answer, and the keys it touched.
fn apply(store: &mut Store, body: &RequestBody) -> (Result<ResponseBody, EmptyKey>, Touched) {
    let mut touched = Vec::new();
    let answer = match body {
        RequestBody::Range(r) => range(store, r, &mut touched).map(ResponseBody::Range),
        RequestBody::Put(p) => put(store, p, &mut touched).map(ResponseBody::Put),
        RequestBody::DeleteRange(d) => {
            delete(store, d, &mut touched).map(ResponseBody::DeleteRange)
        }
        RequestBody::Txn(t) => txn(store, t, &mut touched).map(ResponseBody::Txn),
        _ => unreachable!("only KV requests are generated"),
    };
    (answer, touched)
}

/// The namespace's view of the raw keyspace.
fn view(raw: &Store, prefix: &[u8]) -> Store {
    raw.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k[prefix.len()..].to_vec(), v.clone()))
        .collect()
}

fn outside(raw: &Store, prefix: &[u8]) -> Store {
    raw.iter()
        .filter(|(k, _)| !k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

// ----- Random requests -----

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => proptest::sample::select(vec![0x00, 0x01, b'a', b'b', 0xfe, 0xff]),
        1 => any::<u8>(),
    ]
}

fn any_prefix() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![]),
        (1..3usize).prop_map(|n| vec![0xff; n]),
        (proptest::collection::vec(byte(), 1..3), 1..3usize).prop_map(|(mut p, n)| {
            p.extend(std::iter::repeat_n(0xff, n));
            p
        }),
        proptest::collection::vec(byte(), 1..4),
    ]
}

/// A user key: mostly non-empty, sometimes empty (to be refused).
fn user_key() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        20 => proptest::collection::vec(byte(), 1..4).prop_map(Bytes::from),
        1 => Just(Bytes::new()),
    ]
}

/// A `(key, range_end)` selection, the special ends often.
fn selection() -> impl Strategy<Value = (Bytes, Bytes)> {
    prop_oneof![
        3 => user_key().prop_map(|k| (k, Bytes::new())),
        1 => user_key().prop_map(|k| (k, Bytes::from_static(b"\0"))),
        1 => user_key().prop_map(|k| (k, Bytes::from_static(b"\0\0"))),
        1 => Just((Bytes::from_static(b"\0"), Bytes::from_static(b"\0"))),
        3 => (user_key(), proptest::collection::vec(byte(), 1..4))
            .prop_map(|(k, e)| (k, Bytes::from(e))),
    ]
}

fn range_request() -> impl Strategy<Value = RangeRequest> {
    selection().prop_map(|(key, range_end)| RangeRequest {
        key,
        range_end,
        ..Default::default()
    })
}

fn put_request() -> impl Strategy<Value = PutRequest> {
    (user_key(), byte(), any::<bool>()).prop_map(|(key, value, prev_kv)| PutRequest {
        key,
        value: Bytes::from(vec![value]),
        prev_kv,
        ..Default::default()
    })
}

fn delete_request() -> impl Strategy<Value = DeleteRangeRequest> {
    (selection(), any::<bool>()).prop_map(|((key, range_end), prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn compare_() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        byte().prop_map(|v| compare::TargetUnion::Value(Bytes::from(vec![v]))),
        (0..3i64).prop_map(compare::TargetUnion::Version),
    ];
    let result = proptest::sample::select(vec![
        compare::CompareResult::Equal,
        compare::CompareResult::Greater,
        compare::CompareResult::Less,
    ]);
    (selection(), target, result).prop_map(|((key, range_end), target, result)| {
        let target_kind = match target {
            compare::TargetUnion::Value(_) => compare::CompareTarget::Value,
            _ => compare::CompareTarget::Version,
        };
        Compare {
            result: result as i32,
            target: target_kind as i32,
            key,
            range_end,
            target_union: Some(target),
        }
    })
}

fn txn_request() -> impl Strategy<Value = TxnRequest> {
    use request_op::Request as Q;
    let leaf = prop_oneof![
        range_request().prop_map(Q::RequestRange),
        put_request().prop_map(Q::RequestPut),
        delete_request().prop_map(Q::RequestDeleteRange),
    ];
    let op = leaf.prop_recursive(2, 16, 3, |inner| {
        let ops =
            proptest::collection::vec(inner.prop_map(|r| RequestOp { request: Some(r) }), 0..3);
        (
            proptest::collection::vec(compare_(), 0..3),
            ops.clone(),
            ops,
        )
            .prop_map(|(compare, success, failure)| {
                Q::RequestTxn(TxnRequest {
                    compare,
                    success,
                    failure,
                })
            })
    });
    let ops = proptest::collection::vec(op.prop_map(|r| RequestOp { request: Some(r) }), 0..4);
    (
        proptest::collection::vec(compare_(), 0..3),
        ops.clone(),
        ops,
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

fn request() -> impl Strategy<Value = RequestBody> {
    prop_oneof![
        range_request().prop_map(RequestBody::Range),
        put_request().prop_map(RequestBody::Put),
        delete_request().prop_map(RequestBody::DeleteRange),
        txn_request().prop_map(RequestBody::Txn),
    ]
}

/// A raw keyspace with keys inside the prefix and right at its edges
/// (other tenants' keys).
fn raw_store(prefix: Vec<u8>) -> impl Strategy<Value = (Vec<u8>, Store)> {
    let mut stems = vec![prefix.clone(), vec![]];
    for cut in 0..prefix.len() {
        stems.push(prefix[..cut].to_vec());
        let mut bumped = prefix[..=cut].to_vec();
        bumped[cut] = bumped[cut].wrapping_add(1);
        stems.push(bumped);
        let mut lowered = prefix[..=cut].to_vec();
        lowered[cut] = lowered[cut].wrapping_sub(1);
        stems.push(lowered);
    }
    let key = (
        proptest::sample::select(stems),
        proptest::collection::vec(byte(), 0..4),
    )
        .prop_map(|(mut stem, tail)| {
            stem.extend(tail);
            stem
        })
        .prop_filter("etcd has no empty key", |k| !k.is_empty());
    let entries = proptest::collection::btree_map(key, (byte(), 1..3i64), 0..12);
    (
        Just(prefix),
        entries.prop_map(|m| {
            m.into_iter()
                .map(|(k, (v, version))| (k, (vec![v], version)))
                .collect()
        }),
    )
}

fn body_clone(body: &RequestBody) -> RequestBody {
    body.try_clone().expect("unary")
}

/// Every key of a raw answer, before stripping.
fn answer_keys(body: &ResponseBody) -> Vec<Bytes> {
    fn of_kvs(kvs: &[KeyValue]) -> Vec<Bytes> {
        kvs.iter().map(|kv| kv.key.clone()).collect()
    }
    fn of_txn(t: &TxnResponse) -> Vec<Bytes> {
        t.responses
            .iter()
            .flat_map(|op| match op.response.as_ref().unwrap() {
                response_op::Response::ResponseRange(r) => of_kvs(&r.kvs),
                response_op::Response::ResponsePut(p) => of_kvs(p.prev_kv.as_slice()),
                response_op::Response::ResponseDeleteRange(d) => of_kvs(&d.prev_kvs),
                response_op::Response::ResponseTxn(t) => of_txn(t),
            })
            .collect()
    }
    match body {
        ResponseBody::Range(r) => of_kvs(&r.kvs),
        ResponseBody::Put(p) => of_kvs(p.prev_kv.as_slice()),
        ResponseBody::DeleteRange(d) => of_kvs(&d.prev_kvs),
        ResponseBody::Txn(t) => of_txn(t),
        _ => vec![],
    }
}

fn debug(body: &Result<ResponseBody, EmptyKey>) -> String {
    format!("{body:?}")
}

proptest! {
    #![proptest_config(config())]

    /// Namespaced on the raw keyspace, then stripped, equals the user's
    /// request on the namespace's view; nothing outside the prefix is
    /// touched; every key of the raw answer lies inside the prefix.
    #[test]
    fn a_namespaced_request_is_the_users_request_on_the_namespaces_keys(
        (prefix, raw) in any_prefix().prop_flat_map(raw_store),
        requests in proptest::collection::vec(request(), 1..4),
    ) {
        let p = Prefix::new(prefix.clone());
        let mut raw = raw;
        let others = outside(&raw, &prefix);
        for request in requests {
            let mut mine = view(&raw, &prefix);
            let (expected, _) = apply(&mut mine, &body_clone(&request));
            let got = match prefix_request(request, &p) {
                Ok(server_request) => {
                    let (answer, touched) = apply(&mut raw, &server_request);
                    for key in &touched {
                        prop_assert!(key.starts_with(&prefix), "touched {:?} outside", key);
                    }
                    if let Ok(answer) = &answer {
                        for key in answer_keys(answer) {
                            prop_assert!(key.starts_with(&prefix), "answered {:?}", key);
                        }
                    }
                    answer.map(|a| strip_response(a, &p))
                }
                Err(e) => {
                    prop_assert_eq!(e.kind(), &ErrorKind::EmptyKey);
                    Err(EmptyKey)
                }
            };
            prop_assert_eq!(debug(&got), debug(&expected));
            prop_assert_eq!(&view(&raw, &prefix), &mine);
            prop_assert_eq!(&outside(&raw, &prefix), &others);
        }
    }
}

/// What the model server saw: every key it touched and every key it
/// answered with, before the layer stripped them.
#[derive(Default)]
struct Seen {
    touched: Vec<Vec<u8>>,
    answered: Vec<Bytes>,
}

proptest! {
    #![proptest_config(config())]

    /// The same through the layer: `Namespace` over a model server.
    #[test]
    fn the_layer_over_a_model_server_is_the_users_request_on_the_namespaces_keys(
        (prefix, raw) in any_prefix().prop_flat_map(raw_store),
        requests in proptest::collection::vec(request(), 1..4),
    ) {
        use std::sync::{Arc, Mutex};
        let others = outside(&raw, &prefix);
        let store = Arc::new(Mutex::new(raw));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let server = {
            let (store, seen) = (store.clone(), seen.clone());
            tower::service_fn(move |request: EtcdRequest| {
                let (store, seen) = (store.clone(), seen.clone());
                async move {
                    let (answer, touched) = apply(&mut store.lock().unwrap(), &request.body);
                    let mut seen = seen.lock().unwrap();
                    seen.touched.extend(touched);
                    if let Ok(answer) = &answer {
                        seen.answered.extend(answer_keys(answer));
                    }
                    answer
                        .map(EtcdResponse::new)
                        .map_err(|EmptyKey| EtcdError::client(ErrorKind::EmptyKey, "model: empty key"))
                }
            })
        };
        let layer = Namespace::new(server, prefix.clone());
        for request in requests {
            let mut mine = view(&store.lock().unwrap(), &prefix);
            let (expected, _) = apply(&mut mine, &body_clone(&request));
            let got = futures::executor::block_on(layer.clone().oneshot(EtcdRequest::new(request)))
                .map(|response| response.body)
                .map_err(|e| {
                    assert_eq!(e.kind(), &ErrorKind::EmptyKey);
                    EmptyKey
                });
            prop_assert_eq!(debug(&got), debug(&expected));
            let raw = store.lock().unwrap();
            prop_assert_eq!(&view(&raw, &prefix), &mine);
            prop_assert_eq!(&outside(&raw, &prefix), &others);
        }
        let seen = seen.lock().unwrap();
        for key in &seen.touched {
            prop_assert!(key.starts_with(&prefix), "touched {:?} outside", key);
        }
        for key in &seen.answered {
            prop_assert!(key.starts_with(&prefix), "answered {:?}", key);
        }
    }
}
