//! The namespace layer against real etcd 3.5 and 3.4: range ends, 0xff
//! prefixes, nested txns, lease keys, locks, elections, watches and nested
//! layers, each checked on the server's raw keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use etcd_tower_core::proto::etcdserverpb::{
    compare, request_op, response_op, Compare, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    PutRequest, PutResponse, RangeResponse, RequestOp, TxnRequest, TxnResponse, WatchCreateRequest,
};
use etcd_tower_core::proto::mvccpb::event::EventType;
use etcd_tower_core::proto::v3electionpb as election;
use etcd_tower_core::proto::v3lockpb as lock;
use etcd_tower_core::{EtcdRequest, RequestBody, ResponseBody, Transport};
use etcd_tower_namespace::{Namespace, NamespaceLayer};
use etcd_tower_testkit::{binaries, Cluster};
use futures::StreamExt;
use tower::{ServiceBuilder, ServiceExt};

fn keys(kvs: &[etcd_tower_core::proto::mvccpb::KeyValue]) -> Vec<Bytes> {
    kvs.iter().map(|kv| kv.key.clone()).collect()
}

fn bs(list: &[&[u8]]) -> Vec<Bytes> {
    list.iter().map(b).collect()
}

/// Runs `test` against a fresh single-member cluster of each etcd version.
macro_rules! on_every_version {
    (|$raw:ident| $body:block) => {
        for bin in binaries() {
            tokio::time::timeout(LIMIT, async {
                let cluster = Cluster::start(&bin).await.unwrap();
                let $raw = Transport::connect_lazy(cluster.endpoints()).unwrap();
                $body
            })
            .await
            .unwrap_or_else(|_| panic!("{}: timed out", bin.label()));
        }
    };
}

/// From-key, all-keys and delete-all through the namespace stay in it.
#[tokio::test]
async fn range_end_nul_stops_at_the_end_of_the_prefix() {
    on_every_version!(|raw| {
        let outside: [&[u8]; 6] = [b"t", b"t.", b"t0", b"t0\0", b"s/x", b"\xff"];
        for key in outside {
            put_raw(&raw, key, "other tenant").await;
        }
        let ns = Namespace::new(raw.clone(), "t/");
        for key in ["a", "b", "c"] {
            let _: PutResponse = call(&ns, put(key, "mine")).await.unwrap();
        }
        let from: RangeResponse = call(&ns, range("b", "\0")).await.unwrap();
        assert_eq!(keys(&from.kvs), bs(&[b"b", b"c"]));
        let all: RangeResponse = call(&ns, range("\0", "\0")).await.unwrap();
        assert_eq!(keys(&all.kvs), bs(&[b"a", b"b", b"c"]));
        assert_eq!(all.count, 3);
        let some: RangeResponse = call(&ns, range("a", "c")).await.unwrap();
        assert_eq!(keys(&some.kvs), bs(&[b"a", b"b"]));
        let one: RangeResponse = call(&ns, range("c", "")).await.unwrap();
        assert_eq!(keys(&one.kvs), bs(&[b"c"]));

        let deleted: DeleteRangeResponse = call(
            &ns,
            DeleteRangeRequest {
                key: b("\0"),
                range_end: b("\0"),
                prev_kv: true,
            },
        )
        .await
        .unwrap();
        assert_eq!(deleted.deleted, 3);
        assert_eq!(keys(&deleted.prev_kvs), bs(&[b"a", b"b", b"c"]));
        let left: Vec<Bytes> = raw_pairs(&raw).await.into_iter().map(|(k, _)| k).collect();
        let mut expected = bs(&outside);
        expected.sort();
        assert_eq!(left, expected, "only the namespace was deleted");
    });
}

/// A prefix ending in 0xff ends at the next byte: "t\xff" holds
/// "t\xff\xff" but not "u"; an all-0xff prefix runs to the keyspace's end.
#[tokio::test]
async fn prefixes_ending_in_0xff() {
    on_every_version!(|raw| {
        let outside: [&[u8]; 6] = [b"t", b"t\xfe", b"t\xfe\xff", b"u", b"u\0", b"\xfe\xff"];
        for key in outside {
            put_raw(&raw, key, "other tenant").await;
        }
        // Inside "t\xff" as the user key "\xff".
        put_raw(&raw, b"t\xff\xff", "inside").await;
        let ns = Namespace::new(raw.clone(), &b"t\xff"[..]);
        let mut watch = open_watch(
            &ns,
            WatchCreateRequest {
                key: b("\0"),
                range_end: b("\0"),
                ..Default::default()
            },
        )
        .await;
        let _: PutResponse = call(&ns, put("a", "mine")).await.unwrap();
        put_raw(&raw, "u", "not for the tenant").await;
        put_raw(&raw, b"t\xff\xffz", "for the tenant").await; // user key "\xffz"

        let all: RangeResponse = call(&ns, range("\0", "\0")).await.unwrap();
        assert_eq!(keys(&all.kvs), bs(&[b"a", b"\xff", b"\xffz"]));
        let from: RangeResponse = call(&ns, range("b", "\0")).await.unwrap();
        assert_eq!(keys(&from.kvs), bs(&[b"\xff", b"\xffz"]));
        // The user's own prefix "\xff" has range end "\0" (from key).
        let prefixed: RangeResponse = call(&ns, range(b"\xff", "\0")).await.unwrap();
        assert_eq!(keys(&prefixed.kvs), bs(&[b"\xff", b"\xffz"]));

        let mut seen = Vec::new();
        while seen.len() < 2 {
            let message = watch.inbound.next().await.unwrap().unwrap();
            seen.extend(message.events.into_iter().map(|e| e.kv.unwrap().key));
        }
        assert_eq!(
            seen,
            bs(&[b"a", b"\xffz"]),
            "the write to \"u\" was not seen"
        );

        let deleted: DeleteRangeResponse = call(
            &ns,
            DeleteRangeRequest {
                key: b("\0"),
                range_end: b("\0"),
                prev_kv: false,
            },
        )
        .await
        .unwrap();
        assert_eq!(deleted.deleted, 3);
        let left: Vec<Bytes> = raw_pairs(&raw).await.into_iter().map(|(k, _)| k).collect();
        let mut expected = bs(&outside);
        expected.sort();
        assert_eq!(left, expected);

        // All 0xff: "\xff\xff" holds "\xff\xff..." and nothing below it.
        put_raw(&raw, b"\xff", "other tenant").await;
        put_raw(&raw, b"\xff\xfe\xff", "other tenant").await;
        let top = Namespace::new(raw.clone(), &b"\xff\xff"[..]);
        let _: PutResponse = call(&top, put("k", "top")).await.unwrap();
        let _: PutResponse = call(&top, put(b"\xff", "top")).await.unwrap();
        let all: RangeResponse = call(&top, range("\0", "\0")).await.unwrap();
        assert_eq!(keys(&all.kvs), bs(&[b"k", b"\xff"]));
        let from: RangeResponse = call(&top, range("l", "\0")).await.unwrap();
        assert_eq!(keys(&from.kvs), bs(&[b"\xff"]));
        let deleted: DeleteRangeResponse = call(
            &top,
            DeleteRangeRequest {
                key: b("k"),
                range_end: b("\0"),
                prev_kv: false,
            },
        )
        .await
        .unwrap();
        assert_eq!(deleted.deleted, 2);
        let left: Vec<Bytes> = raw_pairs(&raw).await.into_iter().map(|(k, _)| k).collect();
        let mut expected = bs(&outside);
        expected.extend(bs(&[b"\xff", b"\xff\xfe\xff"]));
        expected.sort();
        assert_eq!(left, expected);
    });
}

fn op(request: request_op::Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

/// Compares, both branches and a nested txn all act inside the prefix.
#[tokio::test]
async fn nested_txns() {
    on_every_version!(|raw| {
        put_raw(&raw, "x", "outside").await;
        put_raw(&raw, "t0", "outside").await;
        let ns = Namespace::new(raw.clone(), "t/");
        let _: PutResponse = call(&ns, put("x", "inside")).await.unwrap();
        let _: PutResponse = call(&ns, put("y", "old")).await.unwrap();

        let inner = TxnRequest {
            // True only inside the namespace: the raw "x" says "outside".
            compare: vec![Compare {
                key: b("x"),
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Value as i32,
                target_union: Some(compare::TargetUnion::Value(b("inside"))),
                ..Default::default()
            }],
            success: vec![
                op(request_op::Request::RequestPut(PutRequest {
                    prev_kv: true,
                    ..put("y", "new")
                })),
                op(request_op::Request::RequestRange(range("\0", "\0"))),
            ],
            failure: vec![op(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: b("zz"),
                    range_end: b("\0"),
                    prev_kv: true,
                },
            ))],
        };
        let outer = TxnRequest {
            // Every key of the namespace has version > 0 (a range compare).
            compare: vec![Compare {
                key: b("\0"),
                range_end: b("\0"),
                result: compare::CompareResult::Greater as i32,
                target: compare::CompareTarget::Version as i32,
                target_union: Some(compare::TargetUnion::Version(0)),
            }],
            success: vec![
                op(request_op::Request::RequestPut(put("z", "z"))),
                op(request_op::Request::RequestTxn(inner)),
            ],
            failure: vec![],
        };
        let t: TxnResponse = call(&ns, outer).await.unwrap();
        assert!(t.succeeded);
        let Some(response_op::Response::ResponseTxn(inner)) = &t.responses[1].response else {
            panic!("{t:?}")
        };
        assert!(inner.succeeded, "the nested compare read the namespaced x");
        let Some(response_op::Response::ResponsePut(p)) = &inner.responses[0].response else {
            panic!()
        };
        assert_eq!(&p.prev_kv.as_ref().unwrap().key[..], b"y");
        let Some(response_op::Response::ResponseRange(r)) = &inner.responses[1].response else {
            panic!()
        };
        // etcd applies a txn's ops in order: z and the new y are visible.
        assert_eq!(keys(&r.kvs), bs(&[b"x", b"y", b"z"]));

        let mut pairs = raw_pairs(&raw).await;
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                (b("t/x"), b("inside")),
                (b("t/y"), b("new")),
                (b("t/z"), b("z")),
                (b("t0"), b("outside")),
                (b("x"), b("outside")),
            ]
        );
    });
}

/// TimeToLive lists only the lease's keys inside the namespace, stripped.
#[tokio::test]
async fn lease_time_to_live_keys() {
    on_every_version!(|raw| {
        let lease: LeaseGrantResponse = call(&raw, LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .unwrap();
        for key in ["t/a", "other/b", "t0", "t/c", "t"] {
            let _: PutResponse = call(
                &raw,
                PutRequest {
                    lease: lease.id,
                    ..put(key, "v")
                },
            )
            .await
            .unwrap();
        }
        let request = LeaseTimeToLiveRequest {
            id: lease.id,
            keys: true,
        };
        let all: LeaseTimeToLiveResponse = call(&raw, request).await.unwrap();
        assert_eq!(all.keys.len(), 5);
        let ns = Namespace::new(raw.clone(), "t/");
        let mine: LeaseTimeToLiveResponse = call(&ns, request).await.unwrap();
        let mut got = mine.keys.clone();
        got.sort();
        assert_eq!(got, bs(&[b"a", b"c"]));
        assert_eq!(mine.id, lease.id);
        assert!(mine.ttl > 0);
    });
}

/// Lock and election names land inside the prefix; the keys the server
/// returns come back stripped and work when handed back.
#[tokio::test]
async fn lock_and_election_names() {
    on_every_version!(|raw| {
        let ns = Namespace::new(raw.clone(), "t/");
        let lease: LeaseGrantResponse = call(&raw, LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .unwrap();

        let locked: lock::LockResponse = call(
            &ns,
            lock::LockRequest {
                name: b("mutex"),
                lease: lease.id,
            },
        )
        .await
        .unwrap();
        assert!(locked.key.starts_with(b"mutex/"), "{:?}", locked.key);
        let on_server: RangeResponse = call(&raw, range("t/mutex/", "t/mutex0")).await.unwrap();
        assert_eq!(
            keys(&on_server.kvs),
            vec![[&b"t/"[..], &locked.key[..]].concat()]
        );
        let _: lock::UnlockResponse = call(
            &ns,
            lock::UnlockRequest {
                key: locked.key.clone(),
            },
        )
        .await
        .unwrap();
        let on_server: RangeResponse = call(&raw, range("t/mutex/", "t/mutex0")).await.unwrap();
        assert!(on_server.kvs.is_empty(), "unlocked through the namespace");

        let campaign: election::CampaignResponse = call(
            &ns,
            election::CampaignRequest {
                name: b("boss"),
                lease: lease.id,
                value: b("me"),
            },
        )
        .await
        .unwrap();
        let leader = campaign.leader.unwrap();
        assert_eq!(&leader.name[..], b"boss");
        assert!(leader.key.starts_with(b"boss/"), "{:?}", leader.key);
        let on_server: RangeResponse = call(&raw, range("t/boss/", "t/boss0")).await.unwrap();
        assert_eq!(
            keys(&on_server.kvs),
            vec![[&b"t/"[..], &leader.key[..]].concat()]
        );
        // The same election name outside the namespace has no leader.
        let elsewhere =
            call::<_, election::LeaderResponse>(&raw, election::LeaderRequest { name: b("boss") })
                .await;
        assert!(elsewhere.is_err(), "{elsewhere:?}");

        let current: election::LeaderResponse =
            call(&ns, election::LeaderRequest { name: b("boss") })
                .await
                .unwrap();
        let kv = current.kv.unwrap();
        assert_eq!((&kv.key, &kv.value[..]), (&leader.key, &b"me"[..]));

        let observe = ns
            .clone()
            .oneshot(EtcdRequest::new(RequestBody::Observe(
                election::LeaderRequest { name: b("boss") },
            )))
            .await
            .unwrap();
        let ResponseBody::Observe(mut observed) = observe.body else {
            panic!()
        };
        let first = observed.next().await.unwrap().unwrap().kv.unwrap();
        assert_eq!((&first.key, &first.value[..]), (&leader.key, &b"me"[..]));

        let _: election::ProclaimResponse = call(
            &ns,
            election::ProclaimRequest {
                leader: Some(leader.clone()),
                value: b("still me"),
            },
        )
        .await
        .unwrap();
        let next = observed.next().await.unwrap().unwrap().kv.unwrap();
        assert_eq!(
            (&next.key, &next.value[..]),
            (&leader.key, &b"still me"[..])
        );
        let on_server: RangeResponse = call(&raw, range("t/boss/", "t/boss0")).await.unwrap();
        assert_eq!(&on_server.kvs[0].value[..], b"still me");

        let _: election::ResignResponse = call(
            &ns,
            election::ResignRequest {
                leader: Some(leader),
            },
        )
        .await
        .unwrap();
        let on_server: RangeResponse = call(&raw, range("t/boss/", "t/boss0")).await.unwrap();
        assert!(on_server.kvs.is_empty(), "resigned through the namespace");
    });
}

/// `.layer(a/).layer(b/)`: the layer added last sits next to the
/// transport and its prefix comes first, so "k" is stored at "b/a/k".
#[tokio::test]
async fn nested_layers() {
    on_every_version!(|raw| {
        let stack = ServiceBuilder::new()
            .layer(NamespaceLayer::new("a/"))
            .layer(NamespaceLayer::new("b/"))
            .service(raw.clone());
        put_raw(&raw, "b/a0", "outside").await;
        put_raw(&raw, "b/a", "outside").await;
        let _: PutResponse = call(&stack, put("k", "v")).await.unwrap();
        let pairs = raw_pairs(&raw).await;
        assert!(pairs.contains(&(b("b/a/k"), b("v"))), "{pairs:?}");
        let all: RangeResponse = call(&stack, range("\0", "\0")).await.unwrap();
        assert_eq!(keys(&all.kvs), bs(&[b"k"]));
        let mut watch = open_watch(
            &stack,
            WatchCreateRequest {
                key: b("k"),
                range_end: b("\0"),
                prev_kv: true,
                ..Default::default()
            },
        )
        .await;
        let _: DeleteRangeResponse = call(
            &stack,
            DeleteRangeRequest {
                key: b("\0"),
                range_end: b("\0"),
                prev_kv: false,
            },
        )
        .await
        .unwrap();
        let event = watch
            .inbound
            .next()
            .await
            .unwrap()
            .unwrap()
            .events
            .remove(0);
        assert_eq!(event.r#type, EventType::Delete as i32);
        assert_eq!(&event.kv.unwrap().key[..], b"k");
        assert_eq!(&event.prev_kv.unwrap().value[..], b"v");
        let mut left: Vec<Bytes> = raw_pairs(&raw).await.into_iter().map(|(k, _)| k).collect();
        left.sort();
        assert_eq!(left, bs(&[b"b/a", b"b/a0"]));
    });
}
