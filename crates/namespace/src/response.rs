//! Stripping responses on the way up: the caller sees its own keys, never
//! the prefix, and never a key of another namespace.
//!
//! What is rewritten, per RPC:
//!
//! * **Range**: `kvs`. **Put**: `prev_kv`. **DeleteRange**: `prev_kvs`.
//! * **Txn**: every op's response, recursively through nested txns.
//! * **Watch**: each inbound message's events (`kv` and `prev_kv`); the
//!   inbound stream is wrapped once, at open.
//! * **LeaseTimeToLive**: the attached `keys`. A lease is cluster-wide and
//!   may hold keys of other namespaces: those are dropped, the rest
//!   stripped.
//! * **Lock**: the lock `key`. **Campaign**: the leader key's `name` and
//!   `key`. **Leader** and **Observe** (a stream): the leader's `kv`.
//!
//! A key outside the prefix can only appear in a KV or watch answer if the
//! server returned more than it was asked for; such a key is dropped rather
//! than shown (counts such as `RangeResponse::count` and
//! `DeleteRangeResponse::deleted` are the server's and are left alone).
//! Lock and election keys are made by the server from a prefixed name, so
//! they always start with the prefix.
//! Headers, revisions, values and every other field pass unchanged.

use etcd_tower_core::proto::etcdserverpb::{
    response_op, DeleteRangeResponse, LeaseTimeToLiveResponse, PutResponse, RangeResponse,
    ResponseOp, TxnResponse, WatchResponse,
};
use etcd_tower_core::proto::mvccpb::{Event, KeyValue};
use etcd_tower_core::proto::v3electionpb::{CampaignResponse, LeaderKey, LeaderResponse};
use etcd_tower_core::proto::v3lockpb::LockResponse;
use etcd_tower_core::{ResponseBody, ResponseStream};
use futures_util::StreamExt;

use crate::keys::Prefix;

/// Strips the prefix from every key of a response body. Bodies of RPCs
/// that carry no key are returned as they are.
pub fn strip_response(body: ResponseBody, prefix: &Prefix) -> ResponseBody {
    use ResponseBody as B;
    match body {
        B::Range(r) => B::Range(strip_range(r, prefix)),
        B::Put(p) => B::Put(strip_put(p, prefix)),
        B::DeleteRange(d) => B::DeleteRange(strip_delete_range(d, prefix)),
        B::Txn(t) => B::Txn(strip_txn(t, prefix)),
        B::Watch(inbound) => B::Watch(strip_watch_stream(inbound, prefix.clone())),
        B::LeaseTimeToLive(t) => B::LeaseTimeToLive(strip_lease_keys(t, prefix)),
        B::Lock(l) => B::Lock(strip_lock(l, prefix)),
        B::Campaign(c) => B::Campaign(strip_campaign(c, prefix)),
        B::Leader(l) => B::Leader(strip_leader(l, prefix)),
        B::Observe(inbound) => B::Observe(strip_observe_stream(inbound, prefix.clone())),
        other => other,
    }
}

/// [`strip_response`] in place: the layer's own path, which strips the
/// answers of the common single-key requests without moving the body (and
/// the rest through [`strip_response`]).
pub(crate) fn strip_response_mut(body: &mut ResponseBody, prefix: &Prefix) {
    use ResponseBody as B;
    match body {
        B::Range(r) => strip_range_mut(r, prefix),
        B::Put(p) => strip_put_mut(p, prefix),
        B::DeleteRange(d) => strip_delete_range_mut(d, prefix),
        B::Txn(t) => strip_txn_mut(t, prefix),
        other => {
            let owned = std::mem::replace(other, B::Put(PutResponse::default()));
            *other = strip_response(owned, prefix);
        }
    }
}

/// One key-value: its key stripped, or `None` when it is outside the
/// namespace.
pub fn strip_kv(mut kv: KeyValue, prefix: &Prefix) -> Option<KeyValue> {
    kv.key = prefix.strip(&kv.key)?;
    Some(kv)
}

fn strip_kvs(kvs: Vec<KeyValue>, prefix: &Prefix) -> Vec<KeyValue> {
    kvs.into_iter()
        .filter_map(|kv| strip_kv(kv, prefix))
        .collect()
}

/// Range: the key-values read.
pub fn strip_range(mut r: RangeResponse, prefix: &Prefix) -> RangeResponse {
    strip_range_mut(&mut r, prefix);
    r
}

fn strip_range_mut(r: &mut RangeResponse, prefix: &Prefix) {
    r.kvs = strip_kvs(std::mem::take(&mut r.kvs), prefix);
}

/// Put: the previous key-value.
pub fn strip_put(mut p: PutResponse, prefix: &Prefix) -> PutResponse {
    strip_put_mut(&mut p, prefix);
    p
}

fn strip_put_mut(p: &mut PutResponse, prefix: &Prefix) {
    p.prev_kv = p.prev_kv.take().and_then(|kv| strip_kv(kv, prefix));
}

/// DeleteRange: the previous key-values.
pub fn strip_delete_range(mut d: DeleteRangeResponse, prefix: &Prefix) -> DeleteRangeResponse {
    strip_delete_range_mut(&mut d, prefix);
    d
}

fn strip_delete_range_mut(d: &mut DeleteRangeResponse, prefix: &Prefix) {
    d.prev_kvs = strip_kvs(std::mem::take(&mut d.prev_kvs), prefix);
}

/// Txn: each op's response, recursively.
pub fn strip_txn(mut t: TxnResponse, prefix: &Prefix) -> TxnResponse {
    strip_txn_mut(&mut t, prefix);
    t
}

fn strip_txn_mut(t: &mut TxnResponse, prefix: &Prefix) {
    t.responses = std::mem::take(&mut t.responses)
        .into_iter()
        .map(|op| strip_response_op(op, prefix))
        .collect();
}

fn strip_response_op(op: ResponseOp, prefix: &Prefix) -> ResponseOp {
    use response_op::Response as R;
    let response = op.response.map(|response| match response {
        R::ResponseRange(r) => R::ResponseRange(strip_range(r, prefix)),
        R::ResponsePut(p) => R::ResponsePut(strip_put(p, prefix)),
        R::ResponseDeleteRange(d) => R::ResponseDeleteRange(strip_delete_range(d, prefix)),
        R::ResponseTxn(t) => R::ResponseTxn(strip_txn(t, prefix)),
    });
    ResponseOp { response }
}

/// Watch: wraps the inbound stream so that every message is stripped as it
/// arrives. Errors pass through unchanged.
pub fn strip_watch_stream(
    inbound: ResponseStream<WatchResponse>,
    prefix: Prefix,
) -> ResponseStream<WatchResponse> {
    Box::pin(inbound.map(move |message| message.map(|w| strip_watch_response(w, &prefix))))
}

/// One watch message: each event's `kv` and `prev_kv`. An event whose key
/// is outside the namespace is dropped.
pub fn strip_watch_response(mut w: WatchResponse, prefix: &Prefix) -> WatchResponse {
    if !w.events.is_empty() {
        w.events = w
            .events
            .into_iter()
            .filter_map(|event| strip_event(event, prefix))
            .collect();
    }
    w
}

fn strip_event(mut event: Event, prefix: &Prefix) -> Option<Event> {
    event.kv = Some(strip_kv(event.kv?, prefix)?);
    event.prev_kv = event.prev_kv.and_then(|kv| strip_kv(kv, prefix));
    Some(event)
}

/// LeaseTimeToLive: keys of other namespaces dropped, the rest stripped.
pub fn strip_lease_keys(
    mut t: LeaseTimeToLiveResponse,
    prefix: &Prefix,
) -> LeaseTimeToLiveResponse {
    t.keys = t.keys.iter().filter_map(|key| prefix.strip(key)).collect();
    t
}

/// Lock: the lock key, which the caller passes back to Unlock.
pub fn strip_lock(mut l: LockResponse, prefix: &Prefix) -> LockResponse {
    if let Some(key) = prefix.strip(&l.key) {
        l.key = key;
    }
    l
}

/// Campaign: the leader key, which the caller passes back to Proclaim and
/// Resign.
pub fn strip_campaign(mut c: CampaignResponse, prefix: &Prefix) -> CampaignResponse {
    if let Some(leader) = c.leader.as_mut() {
        strip_leader_key(leader, prefix);
    }
    c
}

fn strip_leader_key(leader: &mut LeaderKey, prefix: &Prefix) {
    if let Some(name) = prefix.strip(&leader.name) {
        leader.name = name;
    }
    if let Some(key) = prefix.strip(&leader.key) {
        leader.key = key;
    }
}

/// Leader: the current leader's key-value.
pub fn strip_leader(mut l: LeaderResponse, prefix: &Prefix) -> LeaderResponse {
    l.kv = l.kv.and_then(|kv| strip_kv(kv, prefix));
    l
}

/// Observe: wraps the stream of leader changes.
pub fn strip_observe_stream(
    inbound: ResponseStream<LeaderResponse>,
    prefix: Prefix,
) -> ResponseStream<LeaderResponse> {
    Box::pin(inbound.map(move |message| message.map(|l| strip_leader(l, &prefix))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use etcd_tower_core::proto::etcdserverpb::ResponseHeader;
    use etcd_tower_core::proto::mvccpb::event::EventType;
    use etcd_tower_core::{ErrorKind, EtcdError};
    use futures::executor::block_on_stream;

    fn p() -> Prefix {
        Prefix::new("t/")
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            mod_revision: 7,
            create_revision: 3,
            version: 2,
            lease: 0,
        }
    }

    fn keys(kvs: &[KeyValue]) -> Vec<&[u8]> {
        kvs.iter().map(|kv| &kv.key[..]).collect()
    }

    #[test]
    fn range_keys_are_stripped_and_foreign_keys_dropped() {
        let r = RangeResponse {
            header: Some(ResponseHeader {
                revision: 9,
                ..Default::default()
            }),
            kvs: vec![kv("t/a", "1"), kv("u/x", "secret"), kv("t/b", "2")],
            more: true,
            count: 3,
        };
        let ResponseBody::Range(r) = strip_response(ResponseBody::Range(r), &p()) else {
            panic!()
        };
        assert_eq!(keys(&r.kvs), [&b"a"[..], b"b"]);
        assert_eq!(
            (
                r.kvs[0].mod_revision,
                r.kvs[0].create_revision,
                r.kvs[0].version
            ),
            (7, 3, 2)
        );
        assert_eq!((r.more, r.count, r.header.unwrap().revision), (true, 3, 9));
    }

    #[test]
    fn prev_kvs_are_stripped() {
        let put = PutResponse {
            header: None,
            prev_kv: Some(kv("t/a", "old")),
        };
        assert_eq!(&strip_put(put, &p()).prev_kv.unwrap().key[..], b"a");
        let del = DeleteRangeResponse {
            header: None,
            deleted: 2,
            prev_kvs: vec![kv("t/a", ""), kv("t/b", "")],
        };
        let del = strip_delete_range(del, &p());
        assert_eq!(
            (keys(&del.prev_kvs), del.deleted),
            (vec![&b"a"[..], b"b"], 2)
        );
    }

    #[test]
    fn nested_txn_responses_are_stripped() {
        let inner = TxnResponse {
            header: None,
            succeeded: false,
            responses: vec![ResponseOp {
                response: Some(response_op::Response::ResponseDeleteRange(
                    DeleteRangeResponse {
                        header: None,
                        deleted: 1,
                        prev_kvs: vec![kv("t/d", "")],
                    },
                )),
            }],
        };
        let outer = TxnResponse {
            header: None,
            succeeded: true,
            responses: vec![
                ResponseOp {
                    response: Some(response_op::Response::ResponseRange(RangeResponse {
                        kvs: vec![kv("t/r", "")],
                        ..Default::default()
                    })),
                },
                ResponseOp {
                    response: Some(response_op::Response::ResponsePut(PutResponse {
                        header: None,
                        prev_kv: Some(kv("t/p", "")),
                    })),
                },
                ResponseOp {
                    response: Some(response_op::Response::ResponseTxn(inner)),
                },
            ],
        };
        let t = strip_txn(outer, &p());
        let Some(response_op::Response::ResponseRange(r)) = &t.responses[0].response else {
            panic!()
        };
        assert_eq!(keys(&r.kvs), [&b"r"[..]]);
        let Some(response_op::Response::ResponsePut(put)) = &t.responses[1].response else {
            panic!()
        };
        assert_eq!(&put.prev_kv.as_ref().unwrap().key[..], b"p");
        let Some(response_op::Response::ResponseTxn(inner)) = &t.responses[2].response else {
            panic!()
        };
        assert!(!inner.succeeded);
        let Some(response_op::Response::ResponseDeleteRange(d)) = &inner.responses[0].response
        else {
            panic!()
        };
        assert_eq!(keys(&d.prev_kvs), [&b"d"[..]]);
    }

    #[test]
    fn watch_events_are_stripped_as_they_arrive() {
        let event = |key: &str| Event {
            r#type: EventType::Put as i32,
            kv: Some(kv(key, "new")),
            prev_kv: Some(kv(key, "old")),
        };
        let messages = vec![
            Ok(WatchResponse {
                watch_id: 1,
                created: true,
                ..Default::default()
            }),
            Ok(WatchResponse {
                watch_id: 1,
                events: vec![event("t/a"), event("elsewhere"), event("t/b")],
                ..Default::default()
            }),
            Err(EtcdError::client(ErrorKind::Closed, "gone")),
        ];
        let inbound: ResponseStream<WatchResponse> = Box::pin(futures::stream::iter(messages));
        let ResponseBody::Watch(stripped) = strip_response(ResponseBody::Watch(inbound), &p())
        else {
            panic!()
        };
        let got: Vec<_> = block_on_stream(stripped).collect();
        assert!(got[0].as_ref().unwrap().created);
        let events = &got[1].as_ref().unwrap().events;
        let stripped: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    &e.kv.as_ref().unwrap().key[..],
                    &e.prev_kv.as_ref().unwrap().key[..],
                )
            })
            .collect();
        assert_eq!(stripped, [(&b"a"[..], &b"a"[..]), (b"b", b"b")]);
        assert_eq!(got[2].as_ref().unwrap_err().kind(), &ErrorKind::Closed);
    }

    #[test]
    fn lease_keys_of_other_namespaces_are_dropped() {
        let t = LeaseTimeToLiveResponse {
            id: 5,
            ttl: 10,
            keys: vec![
                "t/a".into(),
                "other/b".into(),
                "t".into(),
                "t/".into(),
                "t/c".into(),
            ],
            ..Default::default()
        };
        let t = strip_lease_keys(t, &p());
        assert_eq!(
            t.keys,
            [Bytes::from("a"), Bytes::from(""), Bytes::from("c")]
        );
        assert_eq!((t.id, t.ttl), (5, 10));
    }

    #[test]
    fn lock_and_election_keys_are_stripped() {
        let l = strip_lock(
            LockResponse {
                header: None,
                key: "t/l/694d".into(),
            },
            &p(),
        );
        assert_eq!(&l.key[..], b"l/694d");
        let c = CampaignResponse {
            header: None,
            leader: Some(LeaderKey {
                name: "t/e".into(),
                key: "t/e/694d".into(),
                rev: 4,
                lease: 9,
            }),
        };
        let leader = strip_campaign(c, &p()).leader.unwrap();
        assert_eq!(
            (&leader.name[..], &leader.key[..], leader.rev, leader.lease),
            (&b"e"[..], &b"e/694d"[..], 4, 9)
        );
        let l = strip_leader(
            LeaderResponse {
                header: None,
                kv: Some(kv("t/e/694d", "me")),
            },
            &p(),
        );
        assert_eq!(&l.kv.unwrap().key[..], b"e/694d");
        let inbound: ResponseStream<LeaderResponse> =
            Box::pin(futures::stream::iter([Ok(LeaderResponse {
                header: None,
                kv: Some(kv("t/e/1", "me")),
            })]));
        let ResponseBody::Observe(stripped) = strip_response(ResponseBody::Observe(inbound), &p())
        else {
            panic!()
        };
        let got: Vec<_> = block_on_stream(stripped).collect();
        assert_eq!(
            &got[0].as_ref().unwrap().kv.as_ref().unwrap().key[..],
            b"e/1"
        );
    }
}
