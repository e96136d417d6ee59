//! Rewriting requests on the way down: every key, range end and name a
//! request carries goes into the namespace.
//!
//! What is rewritten, per RPC:
//!
//! * **Range, DeleteRange**: `key` and `range_end` through
//!   [`Prefix::interval`] (from-key and all-keys stop at the prefix's end).
//! * **Put**: `key`.
//! * **Txn**: every compare's `key` and `range_end`, and the ops of both
//!   branches, recursively through nested txns.
//! * **Watch**: each outbound create request's `key` and `range_end` (the
//!   outbound stream is wrapped once, at open). Cancel and progress
//!   requests carry no key.
//! * **Lock**: the lock `name`; **Unlock**: the lock `key`.
//! * **Election**: the election `name` (Campaign, Leader, Observe) and the
//!   `LeaderKey`'s `name` and `key` (Proclaim, Resign).
//!
//! Everything else passes through unchanged because it names no key:
//! Compact (cluster-wide: it drops history below a revision for every
//! key, not only the namespace's), leases (IDs are global; revoking a
//! lease deletes its keys wherever they are), Auth (role permissions name
//! raw keys), Cluster and Maintenance (Status, Hash, HashKV, Snapshot,
//! Defragment, MoveLeader, Alarm, Downgrade all act on the whole member).
//!
//! Empty keys are refused here with [`ErrorKind::EmptyKey`], as the
//! transport would refuse them without the layer: prefixed, an empty key
//! would silently name the prefix itself. An RPC this module does not know
//! is refused too (fail closed), so that a future addition to the RPC table
//! cannot slip out of the namespace unrewritten.

use etcd_tower_core::proto::etcdserverpb::{
    compare, request_op, watch_request, CompactionRequest, Compare, DeleteRangeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use etcd_tower_core::proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
};
use etcd_tower_core::proto::v3lockpb::{LockRequest, UnlockRequest};
use etcd_tower_core::{ErrorKind, EtcdError, RequestBody, RequestStream};
use futures_util::StreamExt;

use crate::keys::Prefix;

/// Rewrites a request body into the namespace. Fails, sending nothing,
/// for an empty key or an RPC the layer does not know.
pub fn prefix_request(body: RequestBody, prefix: &Prefix) -> Result<RequestBody, EtcdError> {
    use RequestBody as B;
    Ok(match body {
        B::Range(r) => B::Range(prefix_range(r, prefix)?),
        B::Put(p) => B::Put(prefix_put(p, prefix)?),
        B::DeleteRange(d) => B::DeleteRange(prefix_delete_range(d, prefix)?),
        B::Txn(t) => B::Txn(prefix_txn(t, prefix)?),
        B::Watch(outbound) => B::Watch(prefix_watch_stream(outbound, prefix.clone())),
        B::Lock(l) => B::Lock(prefix_lock(l, prefix)?),
        B::Unlock(u) => B::Unlock(prefix_unlock(u, prefix)),
        B::Campaign(c) => B::Campaign(prefix_campaign(c, prefix)?),
        B::Proclaim(p) => B::Proclaim(prefix_proclaim(p, prefix)),
        B::Leader(l) => B::Leader(prefix_leader(l, prefix)),
        B::Observe(l) => B::Observe(prefix_leader(l, prefix)),
        B::Resign(r) => B::Resign(prefix_resign(r, prefix)),
        // No key in the request. LeaseTimeToLive's answer lists keys: the
        // response side filters them.
        body @ (B::Compact(_)
        | B::LeaseGrant(_)
        | B::LeaseRevoke(_)
        | B::LeaseKeepAlive(_)
        | B::LeaseTimeToLive(_)
        | B::LeaseLeases(_)
        | B::AuthEnable(_)
        | B::AuthDisable(_)
        | B::AuthStatus(_)
        | B::Authenticate(_)
        | B::UserAdd(_)
        | B::UserGet(_)
        | B::UserList(_)
        | B::UserDelete(_)
        | B::UserChangePassword(_)
        | B::UserGrantRole(_)
        | B::UserRevokeRole(_)
        | B::RoleAdd(_)
        | B::RoleGet(_)
        | B::RoleList(_)
        | B::RoleDelete(_)
        | B::RoleGrantPermission(_)
        | B::RoleRevokePermission(_)
        | B::MemberAdd(_)
        | B::MemberRemove(_)
        | B::MemberUpdate(_)
        | B::MemberList(_)
        | B::MemberPromote(_)
        | B::Alarm(_)
        | B::Status(_)
        | B::Defragment(_)
        | B::Hash(_)
        | B::HashKv(_)
        | B::Snapshot(_)
        | B::MoveLeader(_)
        | B::Downgrade(_)) => body,
        other => {
            return Err(EtcdError::client(
                ErrorKind::InvalidRequest,
                format!(
                    "the namespace layer does not know how to confine {} to its prefix; \
                     refusing to send it",
                    other.rpc()
                ),
            ))
        }
    })
}

/// [`prefix_request`] in place: the layer's own path, which rewrites the
/// common single-key requests without moving the body (and the rest
/// through [`prefix_request`]). On an error the body is left unspecified:
/// the request is refused, not sent.
pub(crate) fn prefix_request_mut(body: &mut RequestBody, prefix: &Prefix) -> Result<(), EtcdError> {
    use RequestBody as B;
    match body {
        B::Range(r) => prefix_range_mut(r, prefix),
        B::Put(p) => prefix_put_mut(p, prefix),
        B::DeleteRange(d) => prefix_delete_range_mut(d, prefix),
        B::Txn(t) => prefix_txn_mut(t, prefix),
        other => {
            let owned = std::mem::replace(other, B::Compact(CompactionRequest::default()));
            *other = prefix_request(owned, prefix)?;
            Ok(())
        }
    }
}

/// Refuses an empty key, as etcd does (`key is not provided`): under a
/// prefix it would otherwise name the prefix itself.
fn require_key(key: &[u8], what: &str) -> Result<(), EtcdError> {
    if key.is_empty() {
        Err(EtcdError::client(
            ErrorKind::EmptyKey,
            format!("{what}: the key is empty"),
        ))
    } else {
        Ok(())
    }
}

/// Range: key and range end into the prefix's range.
pub fn prefix_range(mut r: RangeRequest, prefix: &Prefix) -> Result<RangeRequest, EtcdError> {
    prefix_range_mut(&mut r, prefix)?;
    Ok(r)
}

fn prefix_range_mut(r: &mut RangeRequest, prefix: &Prefix) -> Result<(), EtcdError> {
    require_key(&r.key, "range")?;
    (r.key, r.range_end) = prefix.interval(&r.key, &r.range_end);
    Ok(())
}

/// Put: the key.
pub fn prefix_put(mut p: PutRequest, prefix: &Prefix) -> Result<PutRequest, EtcdError> {
    prefix_put_mut(&mut p, prefix)?;
    Ok(p)
}

fn prefix_put_mut(p: &mut PutRequest, prefix: &Prefix) -> Result<(), EtcdError> {
    require_key(&p.key, "put")?;
    p.key = prefix.key(&p.key);
    Ok(())
}

/// DeleteRange: key and range end into the prefix's range, so that
/// "delete all" deletes the namespace only.
pub fn prefix_delete_range(
    mut d: DeleteRangeRequest,
    prefix: &Prefix,
) -> Result<DeleteRangeRequest, EtcdError> {
    prefix_delete_range_mut(&mut d, prefix)?;
    Ok(d)
}

fn prefix_delete_range_mut(d: &mut DeleteRangeRequest, prefix: &Prefix) -> Result<(), EtcdError> {
    require_key(&d.key, "delete")?;
    (d.key, d.range_end) = prefix.interval(&d.key, &d.range_end);
    Ok(())
}

/// Txn: compares, then both branches, recursively.
pub fn prefix_txn(mut t: TxnRequest, prefix: &Prefix) -> Result<TxnRequest, EtcdError> {
    prefix_txn_mut(&mut t, prefix)?;
    Ok(t)
}

fn prefix_txn_mut(t: &mut TxnRequest, prefix: &Prefix) -> Result<(), EtcdError> {
    for c in &mut t.compare {
        // etcd refuses a compare on an empty key; prefixed, it would
        // silently compare the bare prefix key instead.
        require_key(&c.key, "txn compare")?;
        prefix_compare(c, prefix);
    }
    t.success = prefix_ops(std::mem::take(&mut t.success), prefix)?;
    t.failure = prefix_ops(std::mem::take(&mut t.failure), prefix)?;
    Ok(())
}

/// A compare: its key and range end, with the same range rules as a Range
/// (etcd evaluates a compare's range exactly like a read).
pub fn prefix_compare(c: &mut Compare, prefix: &Prefix) {
    (c.key, c.range_end) = prefix.interval(&c.key, &c.range_end);
    // The target value names no key; keep the match exhaustive so that a
    // new key-bearing target cannot be missed.
    match &c.target_union {
        Some(
            compare::TargetUnion::Version(_)
            | compare::TargetUnion::CreateRevision(_)
            | compare::TargetUnion::ModRevision(_)
            | compare::TargetUnion::Value(_)
            | compare::TargetUnion::Lease(_),
        )
        | None => {}
    }
}

fn prefix_ops(ops: Vec<RequestOp>, prefix: &Prefix) -> Result<Vec<RequestOp>, EtcdError> {
    ops.into_iter()
        .map(|op| {
            let request = match op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    Some(request_op::Request::RequestRange(prefix_range(r, prefix)?))
                }
                Some(request_op::Request::RequestPut(p)) => {
                    Some(request_op::Request::RequestPut(prefix_put(p, prefix)?))
                }
                Some(request_op::Request::RequestDeleteRange(d)) => Some(
                    request_op::Request::RequestDeleteRange(prefix_delete_range(d, prefix)?),
                ),
                Some(request_op::Request::RequestTxn(t)) => {
                    Some(request_op::Request::RequestTxn(prefix_txn(t, prefix)?))
                }
                None => None,
            };
            Ok(RequestOp { request })
        })
        .collect()
}

/// Watch: wraps the outbound stream so that every create request is
/// rewritten as it is sent, including the creates a watch engine sends
/// later to resume its watchers.
pub fn prefix_watch_stream(
    outbound: RequestStream<WatchRequest>,
    prefix: Prefix,
) -> RequestStream<WatchRequest> {
    Box::pin(outbound.map(move |request| prefix_watch_request(request, &prefix)))
}

/// One outbound watch message: a create's key and range end into the
/// prefix's range (an empty key watches the prefix key itself, as an empty
/// key would on the server); cancel and progress requests unchanged.
pub fn prefix_watch_request(mut request: WatchRequest, prefix: &Prefix) -> WatchRequest {
    match &mut request.request_union {
        Some(watch_request::RequestUnion::CreateRequest(create)) => {
            prefix_watch_create(create, prefix);
        }
        Some(
            watch_request::RequestUnion::CancelRequest(_)
            | watch_request::RequestUnion::ProgressRequest(_),
        )
        | None => {}
    }
    request
}

fn prefix_watch_create(create: &mut WatchCreateRequest, prefix: &Prefix) {
    (create.key, create.range_end) = prefix.interval(&create.key, &create.range_end);
}

/// Lock: the lock name (the server makes the lock key `name/<lease>`).
pub fn prefix_lock(mut l: LockRequest, prefix: &Prefix) -> Result<LockRequest, EtcdError> {
    require_key(&l.name, "lock name")?;
    l.name = prefix.key(&l.name);
    Ok(l)
}

/// Unlock: the lock key the Lock call returned (stripped on the way up).
pub fn prefix_unlock(mut u: UnlockRequest, prefix: &Prefix) -> UnlockRequest {
    u.key = prefix.key(&u.key);
    u
}

/// Campaign: the election name.
pub fn prefix_campaign(
    mut c: CampaignRequest,
    prefix: &Prefix,
) -> Result<CampaignRequest, EtcdError> {
    require_key(&c.name, "election name")?;
    c.name = prefix.key(&c.name);
    Ok(c)
}

/// Leader and Observe: the election name.
pub fn prefix_leader(mut l: LeaderRequest, prefix: &Prefix) -> LeaderRequest {
    l.name = prefix.key(&l.name);
    l
}

/// Proclaim: the leader key's name and key.
pub fn prefix_proclaim(mut p: ProclaimRequest, prefix: &Prefix) -> ProclaimRequest {
    prefix_leader_key(p.leader.as_mut(), prefix);
    p
}

/// Resign: the leader key's name and key.
pub fn prefix_resign(mut r: ResignRequest, prefix: &Prefix) -> ResignRequest {
    prefix_leader_key(r.leader.as_mut(), prefix);
    r
}

fn prefix_leader_key(leader: Option<&mut LeaderKey>, prefix: &Prefix) {
    if let Some(leader) = leader {
        leader.name = prefix.key(&leader.name);
        leader.key = prefix.key(&leader.key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use etcd_tower_core::proto::etcdserverpb::{
        compare::{CompareResult, CompareTarget, TargetUnion},
        WatchCancelRequest,
    };
    use etcd_tower_core::Rpc;
    use futures::executor::block_on_stream;

    /// Whether a server `(key, range_end)` pair lies in the namespace.
    fn is_confined(key: &Bytes, range_end: &Bytes, prefix: &Prefix) -> bool {
        if !prefix.contains(key) {
            return false;
        }
        if range_end.is_empty() {
            return true;
        }
        let end = prefix.range_end();
        if &range_end[..] == b"\0" {
            // Only exact for a prefix whose own range has no upper bound.
            return &end[..] == b"\0";
        }
        &end[..] == b"\0" || range_end <= end
    }

    fn p() -> Prefix {
        Prefix::new("t/")
    }

    fn range(key: &str, end: &str) -> RangeRequest {
        RangeRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            range_end: Bytes::copy_from_slice(end.as_bytes()),
            ..Default::default()
        }
    }

    fn rewrite(body: impl Into<RequestBody>) -> RequestBody {
        prefix_request(body.into(), &p()).unwrap()
    }

    #[test]
    fn range_keys_and_ends() {
        let RequestBody::Range(r) = rewrite(range("k", "")) else {
            panic!()
        };
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"t/k"[..], &b""[..]));
        let RequestBody::Range(r) = rewrite(range("a", "c")) else {
            panic!()
        };
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"t/a"[..], &b"t/c"[..]));
        let RequestBody::Range(r) = rewrite(range("k", "\0")) else {
            panic!()
        };
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"t/k"[..], &b"t0"[..]));
        let RequestBody::Range(r) = rewrite(range("\0", "\0")) else {
            panic!()
        };
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"t/"[..], &b"t0"[..]));
        assert!(is_confined(&r.key, &r.range_end, &p()));
    }

    #[test]
    fn other_fields_are_kept() {
        let r = RangeRequest {
            limit: 7,
            revision: 3,
            keys_only: true,
            ..range("k", "")
        };
        let RequestBody::Range(r) = rewrite(r) else {
            panic!()
        };
        assert_eq!((r.limit, r.revision, r.keys_only), (7, 3, true));
    }

    #[test]
    fn empty_keys_are_refused() {
        for body in [
            RequestBody::from(range("", "")),
            RequestBody::from(range("", "\0")),
            RequestBody::from(PutRequest::default()),
            RequestBody::from(DeleteRangeRequest::default()),
            RequestBody::from(LockRequest::default()),
            RequestBody::from(CampaignRequest::default()),
            RequestBody::from(TxnRequest {
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestTxn(TxnRequest {
                        failure: vec![RequestOp {
                            request: Some(request_op::Request::RequestPut(PutRequest::default())),
                        }],
                        ..Default::default()
                    })),
                }],
                ..Default::default()
            }),
            // Found by tests/rewrite_model.rs: a compare on an empty key
            // was prefixed into a compare on the bare prefix key.
            RequestBody::from(TxnRequest {
                compare: vec![Compare::default()],
                ..Default::default()
            }),
            RequestBody::from(TxnRequest {
                failure: vec![RequestOp {
                    request: Some(request_op::Request::RequestTxn(TxnRequest {
                        compare: vec![Compare {
                            range_end: "\0".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })),
                }],
                ..Default::default()
            }),
        ] {
            let rpc = body.rpc();
            let err = prefix_request(body, &p()).expect_err("refused");
            assert_eq!(err.kind(), &ErrorKind::EmptyKey, "{rpc}");
            assert_eq!(err.sent(), etcd_tower_core::Sent::NotSent);
        }
    }

    #[test]
    fn delete_all_deletes_the_namespace_only() {
        let d = DeleteRangeRequest {
            key: "\0".into(),
            range_end: "\0".into(),
            prev_kv: true,
        };
        let RequestBody::DeleteRange(d) = rewrite(d) else {
            panic!()
        };
        assert_eq!(
            (&d.key[..], &d.range_end[..], d.prev_kv),
            (&b"t/"[..], &b"t0"[..], true)
        );
    }

    #[test]
    fn nested_txns_are_rewritten_everywhere() {
        let put = |k: &str| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: Bytes::copy_from_slice(k.as_bytes()),
                ..Default::default()
            })),
        };
        let inner = TxnRequest {
            compare: vec![Compare {
                key: "ic".into(),
                range_end: "\0".into(),
                ..Default::default()
            }],
            success: vec![put("is")],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(
                    DeleteRangeRequest {
                        key: "\0".into(),
                        range_end: "\0".into(),
                        prev_kv: false,
                    },
                )),
            }],
        };
        let outer = TxnRequest {
            compare: vec![Compare {
                key: "c".into(),
                range_end: "d".into(),
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                target_union: Some(TargetUnion::Value("v".into())),
            }],
            success: vec![
                put("s"),
                RequestOp {
                    request: Some(request_op::Request::RequestTxn(inner)),
                },
            ],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestRange(range("f", "\0"))),
            }],
        };
        let RequestBody::Txn(t) = rewrite(outer) else {
            panic!()
        };
        assert_eq!(
            (&t.compare[0].key[..], &t.compare[0].range_end[..]),
            (&b"t/c"[..], &b"t/d"[..])
        );
        assert_eq!(
            t.compare[0].target_union,
            Some(TargetUnion::Value("v".into()))
        );
        let Some(request_op::Request::RequestPut(s)) = &t.success[0].request else {
            panic!()
        };
        assert_eq!(&s.key[..], b"t/s");
        let Some(request_op::Request::RequestTxn(inner)) = &t.success[1].request else {
            panic!()
        };
        assert_eq!(
            (&inner.compare[0].key[..], &inner.compare[0].range_end[..]),
            (&b"t/ic"[..], &b"t0"[..])
        );
        let Some(request_op::Request::RequestPut(is)) = &inner.success[0].request else {
            panic!()
        };
        assert_eq!(&is.key[..], b"t/is");
        let Some(request_op::Request::RequestDeleteRange(d)) = &inner.failure[0].request else {
            panic!()
        };
        assert_eq!((&d.key[..], &d.range_end[..]), (&b"t/"[..], &b"t0"[..]));
        let Some(request_op::Request::RequestRange(f)) = &t.failure[0].request else {
            panic!()
        };
        assert_eq!((&f.key[..], &f.range_end[..]), (&b"t/f"[..], &b"t0"[..]));
    }

    #[test]
    fn watch_creates_are_rewritten_as_they_are_sent() {
        let create = |key: &str, end: &str| WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: Bytes::copy_from_slice(key.as_bytes()),
                    range_end: Bytes::copy_from_slice(end.as_bytes()),
                    watch_id: 9,
                    prev_kv: true,
                    ..Default::default()
                },
            )),
        };
        let cancel = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CancelRequest(
                WatchCancelRequest { watch_id: 9 },
            )),
        };
        let outbound: RequestStream<WatchRequest> = Box::pin(futures::stream::iter([
            create("\0", "\0"),
            cancel.clone(),
            create("k", ""),
        ]));
        let RequestBody::Watch(rewritten) = rewrite(RequestBody::Watch(outbound)) else {
            panic!()
        };
        let sent: Vec<_> = block_on_stream(rewritten).collect();
        let Some(watch_request::RequestUnion::CreateRequest(c)) = &sent[0].request_union else {
            panic!()
        };
        assert_eq!(
            (&c.key[..], &c.range_end[..], c.watch_id, c.prev_kv),
            (&b"t/"[..], &b"t0"[..], 9, true)
        );
        assert_eq!(sent[1], cancel);
        let Some(watch_request::RequestUnion::CreateRequest(c)) = &sent[2].request_union else {
            panic!()
        };
        assert_eq!((&c.key[..], &c.range_end[..]), (&b"t/k"[..], &b""[..]));
    }

    #[test]
    fn locks_and_elections_are_named_inside_the_prefix() {
        let RequestBody::Lock(l) = rewrite(LockRequest {
            name: "l".into(),
            lease: 5,
        }) else {
            panic!()
        };
        assert_eq!((&l.name[..], l.lease), (&b"t/l"[..], 5));
        let RequestBody::Unlock(u) = rewrite(UnlockRequest { key: "l/1".into() }) else {
            panic!()
        };
        assert_eq!(&u.key[..], b"t/l/1");
        let RequestBody::Campaign(c) = rewrite(CampaignRequest {
            name: "e".into(),
            lease: 1,
            value: "v".into(),
        }) else {
            panic!()
        };
        assert_eq!((&c.name[..], &c.value[..]), (&b"t/e"[..], &b"v"[..]));
        let RequestBody::Leader(l) = rewrite(LeaderRequest { name: "e".into() }) else {
            panic!()
        };
        assert_eq!(&l.name[..], b"t/e");
        let observe = RequestBody::Observe(LeaderRequest { name: "e".into() });
        let RequestBody::Observe(l) = prefix_request(observe, &p()).unwrap() else {
            panic!()
        };
        assert_eq!(&l.name[..], b"t/e");
        let leader = LeaderKey {
            name: "e".into(),
            key: "e/1".into(),
            rev: 4,
            lease: 1,
        };
        let RequestBody::Proclaim(pr) = rewrite(ProclaimRequest {
            leader: Some(leader.clone()),
            value: "v2".into(),
        }) else {
            panic!()
        };
        let got = pr.leader.unwrap();
        assert_eq!(
            (&got.name[..], &got.key[..], got.rev),
            (&b"t/e"[..], &b"t/e/1"[..], 4)
        );
        let RequestBody::Resign(r) = rewrite(ResignRequest {
            leader: Some(leader),
        }) else {
            panic!()
        };
        let got = r.leader.unwrap();
        assert_eq!((&got.name[..], &got.key[..]), (&b"t/e"[..], &b"t/e/1"[..]));
    }

    #[test]
    fn keyless_rpcs_pass_through() {
        use etcd_tower_core::proto::etcdserverpb::{
            CompactionRequest, LeaseTimeToLiveRequest, StatusRequest,
        };
        let body = rewrite(CompactionRequest {
            revision: 3,
            physical: true,
        });
        assert_eq!(body.rpc(), Rpc::Compact);
        let RequestBody::Compact(c) = body else {
            panic!()
        };
        assert_eq!((c.revision, c.physical), (3, true));
        assert_eq!(rewrite(StatusRequest {}).rpc(), Rpc::Status);
        assert_eq!(
            rewrite(LeaseTimeToLiveRequest { id: 1, keys: true }).rpc(),
            Rpc::LeaseTimeToLive
        );
    }

    #[test]
    fn confinement_check() {
        let p = p();
        assert!(is_confined(&"t/a".into(), &"t/b".into(), &p));
        assert!(is_confined(&"t/a".into(), &"t0".into(), &p));
        assert!(!is_confined(&"t/a".into(), &"t1".into(), &p));
        assert!(!is_confined(&"t/a".into(), &"\0".into(), &p));
        assert!(!is_confined(&"u/a".into(), &"".into(), &p));
        let ff = Prefix::new(&b"\xff"[..]);
        assert!(is_confined(
            &Bytes::from_static(b"\xffa"),
            &"\0".into(),
            &ff
        ));
    }
}
