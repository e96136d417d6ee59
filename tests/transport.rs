//! The transport against real etcd 3.5 and 3.4: every unary RPC group,
//! the streaming RPCs, failover when a member dies, and validation that
//! sends nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::proto::{v3electionpb as election, v3lockpb as lock};
use etcd_tower_core::{
    ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody, Sent, Transport,
};
use etcd_tower_testkit::{binaries, Cluster};
use futures::StreamExt;
use tower::{Service, ServiceExt};

/// Calls one unary RPC and converts the answer to its message type.
async fn call<Resp>(transport: &Transport, body: impl Into<RequestBody>) -> Result<Resp, EtcdError>
where
    Resp: TryFrom<EtcdResponse, Error = EtcdError>,
{
    let response = transport.clone().oneshot(EtcdRequest::new(body)).await?;
    Resp::try_from(response)
}

fn put(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.to_owned().into(),
        value: value.to_owned().into(),
        ..Default::default()
    }
}

fn get(key: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.to_owned().into(),
        ..Default::default()
    }
}

async fn revision(transport: &Transport) -> i64 {
    let status: pb::RangeResponse = call(transport, get("any")).await.unwrap();
    status.header.unwrap().revision
}

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn kv_rpcs() {
    for bin in binaries() {
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::start(&bin).await.unwrap();
            let t = Transport::connect_lazy(cluster.endpoints()).unwrap();

            let p: pb::PutResponse = call(&t, put("a", "1")).await.unwrap();
            let first = p.header.unwrap().revision;
            let p: pb::PutResponse = call(
                &t,
                pb::PutRequest {
                    prev_kv: true,
                    ..put("a", "2")
                },
            )
            .await
            .unwrap();
            assert_eq!(&p.prev_kv.unwrap().value[..], b"1", "{}", bin.label());

            let r: pb::RangeResponse = call(&t, get("a")).await.unwrap();
            assert_eq!(&r.kvs[0].value[..], b"2");
            let r: pb::RangeResponse = call(
                &t,
                pb::RangeRequest {
                    revision: first,
                    ..get("a")
                },
            )
            .await
            .unwrap();
            assert_eq!(&r.kvs[0].value[..], b"1", "read at an old revision");

            let cmp = pb::Compare {
                key: "a".into(),
                result: pb::compare::CompareResult::Equal as i32,
                target: pb::compare::CompareTarget::Value as i32,
                target_union: Some(pb::compare::TargetUnion::Value("2".into())),
                ..Default::default()
            };
            let op = |req| pb::RequestOp { request: Some(req) };
            let txn = pb::TxnRequest {
                compare: vec![cmp],
                success: vec![op(pb::request_op::Request::RequestPut(put(
                    "b", "from-txn",
                )))],
                failure: vec![],
            };
            let tr: pb::TxnResponse = call(&t, txn).await.unwrap();
            assert!(tr.succeeded);

            let d: pb::DeleteRangeResponse = call(
                &t,
                pb::DeleteRangeRequest {
                    key: "a".into(),
                    range_end: "c".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert_eq!(d.deleted, 2);

            let now = revision(&t).await;
            let _: pb::CompactionResponse = call(
                &t,
                pb::CompactionRequest {
                    revision: now,
                    physical: true,
                },
            )
            .await
            .unwrap();
            let err = call::<pb::RangeResponse>(
                &t,
                pb::RangeRequest {
                    revision: first,
                    ..get("a")
                },
            )
            .await
            .unwrap_err();
            assert_eq!(
                err.kind(),
                &ErrorKind::Compacted {
                    compact_revision: None
                },
                "{err}"
            );
            assert_eq!(err.sent(), Sent::Rejected);
        })
        .await
        .unwrap_or_else(|_| panic!("{}: timed out", bin.label()));
    }
}

#[tokio::test]
async fn lease_rpcs_and_keepalive_stream() {
    for bin in binaries() {
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::start(&bin).await.unwrap();
            let t = Transport::connect_lazy(cluster.endpoints()).unwrap();
            let g: pb::LeaseGrantResponse = call(&t, pb::LeaseGrantRequest { ttl: 30, id: 0 })
                .await
                .unwrap();
            let _: pb::PutResponse = call(
                &t,
                pb::PutRequest {
                    lease: g.id,
                    ..put("leased", "v")
                },
            )
            .await
            .unwrap();
            let ttl: pb::LeaseTimeToLiveResponse = call(
                &t,
                pb::LeaseTimeToLiveRequest {
                    id: g.id,
                    keys: true,
                },
            )
            .await
            .unwrap();
            assert_eq!(
                ttl.keys,
                vec![bytes::Bytes::from("leased")],
                "{}",
                bin.label()
            );
            let leases: pb::LeaseLeasesResponse =
                call(&t, pb::LeaseLeasesRequest {}).await.unwrap();
            assert!(leases.leases.iter().any(|l| l.id == g.id));

            // The keep-alive stream goes through the same service.
            let (tx, rx) = futures::channel::mpsc::unbounded();
            tx.unbounded_send(pb::LeaseKeepAliveRequest { id: g.id })
                .unwrap();
            let response = t
                .clone()
                .oneshot(EtcdRequest::new(RequestBody::LeaseKeepAlive(Box::pin(rx))))
                .await
                .unwrap();
            // The stream says where it went, for calls aimed at its member.
            let served_by = response.extensions.get::<etcd_tower_core::TargetEndpoint>();
            let expected = etcd_tower_core::TargetEndpoint::new(&cluster.endpoints()[0]).unwrap();
            assert_eq!(served_by, Some(&expected), "{}", bin.label());
            let ResponseBody::LeaseKeepAlive(mut inbound) = response.body else {
                panic!("not a keep-alive stream")
            };
            let first = inbound.next().await.unwrap().unwrap();
            assert_eq!((first.id, first.ttl), (g.id, 30));
            drop(tx);

            let _: pb::LeaseRevokeResponse =
                call(&t, pb::LeaseRevokeRequest { id: g.id }).await.unwrap();
            let err = call::<pb::LeaseRevokeResponse>(&t, pb::LeaseRevokeRequest { id: g.id })
                .await
                .unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::LeaseNotFound, "{err}");
            let r: pb::RangeResponse = call(&t, get("leased")).await.unwrap();
            assert!(r.kvs.is_empty(), "revoking the lease deleted its key");
        })
        .await
        .unwrap_or_else(|_| panic!("{}: timed out", bin.label()));
    }
}

#[tokio::test]
async fn auth_cluster_and_maintenance_rpcs() {
    for bin in binaries() {
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::start(&bin).await.unwrap();
            let t = Transport::connect_lazy(cluster.endpoints()).unwrap();

            // Auth administration (auth stays disabled: no token needed).
            let _: pb::AuthRoleAddResponse = call(
                &t,
                pb::AuthRoleAddRequest {
                    name: "reader".into(),
                },
            )
            .await
            .unwrap();
            let perm = etcd_tower_core::proto::authpb::Permission {
                perm_type: etcd_tower_core::proto::authpb::permission::Type::Read as i32,
                key: "app/".into(),
                range_end: "app0".into(),
            };
            let _: pb::AuthRoleGrantPermissionResponse = call(
                &t,
                pb::AuthRoleGrantPermissionRequest {
                    name: "reader".into(),
                    perm: Some(perm),
                },
            )
            .await
            .unwrap();
            let role: pb::AuthRoleGetResponse = call(
                &t,
                pb::AuthRoleGetRequest {
                    role: "reader".into(),
                },
            )
            .await
            .unwrap();
            assert_eq!(role.perm.len(), 1);
            let _: pb::AuthUserAddResponse = call(
                &t,
                pb::AuthUserAddRequest {
                    name: "alice".into(),
                    password: "pw".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            let _: pb::AuthUserGrantRoleResponse = call(
                &t,
                pb::AuthUserGrantRoleRequest {
                    user: "alice".into(),
                    role: "reader".into(),
                },
            )
            .await
            .unwrap();
            let users: pb::AuthUserListResponse =
                call(&t, pb::AuthUserListRequest {}).await.unwrap();
            assert_eq!(users.users, vec!["alice".to_owned()]);
            let err = call::<pb::AuthUserAddResponse>(
                &t,
                pb::AuthUserAddRequest {
                    name: "alice".into(),
                    password: "pw".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::UserExists, "{err}");
            let err = call::<pb::AuthenticateResponse>(
                &t,
                pb::AuthenticateRequest {
                    name: "alice".into(),
                    password: "wrong".into(),
                },
            )
            .await
            .unwrap_err();
            // With auth disabled, etcd refuses to authenticate at all.
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::AuthNotEnabled | ErrorKind::AuthFailed
                ),
                "{err}"
            );
            let _: pb::AuthUserDeleteResponse = call(
                &t,
                pb::AuthUserDeleteRequest {
                    name: "alice".into(),
                },
            )
            .await
            .unwrap();
            let _: pb::AuthRoleDeleteResponse = call(
                &t,
                pb::AuthRoleDeleteRequest {
                    role: "reader".into(),
                },
            )
            .await
            .unwrap();

            // Cluster membership. Changes are exercised on three members by
            // the facade's tests: on a single member, etcd 3.5.1 sometimes
            // holds a MemberUpdate or MemberRemove that follows the MemberAdd
            // of an unreachable learner for over a minute.
            let members: pb::MemberListResponse =
                call(&t, pb::MemberListRequest::default()).await.unwrap();
            assert_eq!(members.members.len(), 1);
            let err = call::<pb::MemberPromoteResponse>(
                &t,
                pb::MemberPromoteRequest {
                    id: members.members[0].id,
                },
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::MemberNotLearner, "{err}");
            // etcd 3.5.1 on one member now and then holds the first
            // MemberRemove of an unknown member without answering (seen in
            // about one run in four here: the request left, no response
            // HEADERS came for over a minute, while etcdctl and a second
            // call on the same connection were answered at once). So the
            // call gets a deadline, and is asked once more if it was held.
            let remove = || {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    call::<pb::MemberRemoveResponse>(&t, pb::MemberRemoveRequest { id: 42 }),
                )
            };
            let err = match remove().await {
                Ok(answer) => answer.unwrap_err(),
                Err(_) => {
                    eprintln!(
                        "{}: MemberRemove was held by the server; asking again",
                        bin.label()
                    );
                    remove()
                        .await
                        .expect("MemberRemove held twice")
                        .unwrap_err()
                }
            };
            assert_eq!(err.kind(), &ErrorKind::MemberNotFound, "{err}");

            // Maintenance.
            let status: pb::StatusResponse = call(&t, pb::StatusRequest {}).await.unwrap();
            assert!(!status.version.is_empty());
            let alarms: pb::AlarmResponse = call(
                &t,
                pb::AlarmRequest {
                    action: pb::alarm_request::AlarmAction::Get as i32,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert!(alarms.alarms.is_empty());
            let _: pb::DefragmentResponse = call(&t, pb::DefragmentRequest {}).await.unwrap();
            let _: pb::HashResponse = call(&t, pb::HashRequest {}).await.unwrap();
            let _: pb::HashKvResponse = call(&t, pb::HashKvRequest { revision: 0 }).await.unwrap();
            let response = t
                .clone()
                .oneshot(EtcdRequest::new(RequestBody::Snapshot(
                    pb::SnapshotRequest {},
                )))
                .await
                .unwrap();
            let ResponseBody::Snapshot(mut chunks) = response.body else {
                panic!("not a snapshot stream")
            };
            let mut size = 0;
            while let Some(chunk) = chunks.next().await {
                size += chunk.unwrap().blob.len();
            }
            assert!(size > 0, "{}: empty snapshot", bin.label());
        })
        .await
        .unwrap_or_else(|_| panic!("{}: timed out", bin.label()));
    }
}

#[tokio::test]
async fn lock_and_election_rpcs() {
    for bin in binaries() {
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::start(&bin).await.unwrap();
            let t = Transport::connect_lazy(cluster.endpoints()).unwrap();
            let lease: pb::LeaseGrantResponse = call(&t, pb::LeaseGrantRequest { ttl: 30, id: 0 })
                .await
                .unwrap();

            let locked: lock::LockResponse = call(
                &t,
                lock::LockRequest {
                    name: "lk".into(),
                    lease: lease.id,
                },
            )
            .await
            .unwrap();
            assert!(locked.key.starts_with(b"lk/"), "{:?}", locked.key);
            let _: lock::UnlockResponse = call(&t, lock::UnlockRequest { key: locked.key })
                .await
                .unwrap();

            let campaign: election::CampaignResponse = call(
                &t,
                election::CampaignRequest {
                    name: "el".into(),
                    lease: lease.id,
                    value: "me".into(),
                },
            )
            .await
            .unwrap();
            let leader_key = campaign.leader.unwrap();
            let response = t
                .clone()
                .oneshot(EtcdRequest::new(RequestBody::Observe(
                    election::LeaderRequest { name: "el".into() },
                )))
                .await
                .unwrap();
            let ResponseBody::Observe(mut observed) = response.body else {
                panic!("not an observe stream")
            };
            assert_eq!(
                &observed.next().await.unwrap().unwrap().kv.unwrap().value[..],
                b"me"
            );
            let _: election::ProclaimResponse = call(
                &t,
                election::ProclaimRequest {
                    leader: Some(leader_key.clone()),
                    value: "again".into(),
                },
            )
            .await
            .unwrap();
            assert_eq!(
                &observed.next().await.unwrap().unwrap().kv.unwrap().value[..],
                b"again"
            );
            let leader: election::LeaderResponse =
                call(&t, election::LeaderRequest { name: "el".into() })
                    .await
                    .unwrap();
            assert_eq!(&leader.kv.unwrap().value[..], b"again");
            let _: election::ResignResponse = call(
                &t,
                election::ResignRequest {
                    leader: Some(leader_key),
                },
            )
            .await
            .unwrap();
            let err =
                call::<election::LeaderResponse>(&t, election::LeaderRequest { name: "el".into() })
                    .await
                    .unwrap_err();
            assert_eq!(
                err.kind(),
                &ErrorKind::ElectionNoLeader,
                "{}: {err}",
                bin.label()
            );
        })
        .await
        .unwrap_or_else(|_| panic!("{}: timed out", bin.label()));
    }
}

#[tokio::test]
async fn a_killed_member_does_not_stall_calls() {
    for bin in binaries() {
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
            let connect_timeout = Duration::from_secs(1);
            let t = Transport::builder(cluster.endpoints())
                .connect_timeout(connect_timeout)
                .build()
                .unwrap();
            // Warm every connection, then kill a member that is not the
            // leader so that the cluster keeps quorum and a leader.
            for _ in 0..6 {
                let _: pb::RangeResponse = call(&t, get("k")).await.unwrap();
            }
            let leader = cluster.leader_index().await.unwrap();
            let victim = (leader + 1) % 3;
            cluster.member(victim).kill().unwrap();

            // No call waits for more than the connect timeout. A call that
            // was already written to the dead member's connection fails at
            // once with a typed "connection lost" (the bare transport never
            // resends what may have been sent; the retry layer decides);
            // every other call fails over to a live member.
            let mut lost = 0;
            for i in 0..30 {
                let started = Instant::now();
                match call::<pb::PutResponse>(&t, put("k", &i.to_string())).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == &ErrorKind::ConnectionLost && lost == 0 => lost += 1,
                    Err(e) => panic!("{}: call {i} failed after the kill: {e}", bin.label()),
                }
                let _: pb::RangeResponse = call(&t, get("k")).await.unwrap();
                assert!(
                    started.elapsed() < connect_timeout,
                    "{}: call {i} took {:?}",
                    bin.label(),
                    started.elapsed()
                );
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{}: timed out", bin.label()));
    }
}

#[tokio::test]
async fn bad_input_is_refused_before_sending() {
    for bin in binaries() {
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::start(&bin).await.unwrap();
            let t = Transport::connect_lazy(cluster.endpoints()).unwrap();
            let before = revision(&t).await;

            let err = call::<pb::PutResponse>(&t, put("", "v")).await.unwrap_err();
            assert_eq!(
                (err.kind(), err.sent()),
                (&ErrorKind::EmptyKey, Sent::NotSent),
                "{err}"
            );

            let big = "x".repeat(etcd_tower_core::transport::DEFAULT_MAX_SEND_SIZE + 1);
            let err = call::<pb::PutResponse>(&t, put("big", &big))
                .await
                .unwrap_err();
            assert_eq!(
                (err.kind(), err.sent()),
                (&ErrorKind::RequestTooLarge, Sent::NotSent),
                "{err}"
            );

            let err = call::<pb::LeaseGrantResponse>(&t, pb::LeaseGrantRequest { ttl: 0, id: 0 })
                .await
                .unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidTtl, "{err}");

            // A request under the client's limit but over the server's
            // --max-request-bytes (1.5 MiB) is the server's typed error.
            let large = "x".repeat(1_700_000);
            let err = call::<pb::PutResponse>(&t, put("large", &large))
                .await
                .unwrap_err();
            assert_eq!(
                (err.kind(), err.sent()),
                (&ErrorKind::RequestTooLarge, Sent::Rejected),
                "{err}"
            );

            assert_eq!(
                revision(&t).await,
                before,
                "{}: the server's revision moved",
                bin.label()
            );
        })
        .await
        .unwrap_or_else(|_| panic!("{}: timed out", bin.label()));
    }
}

#[tokio::test]
async fn bad_endpoints_are_typed_errors() {
    for bad in [
        vec!["not a url:x"],
        vec!["ftp://127.0.0.1:2379"],
        vec!["127.0.0.1"],
    ] {
        let err = Transport::connect_lazy(bad.clone()).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidEndpoint, "{bad:?}: {err}");
        assert_eq!(err.sent(), Sent::NotSent);
    }
    let err = Transport::connect_lazy(Vec::<String>::new()).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::NoEndpoints);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_connect_error_not_sent() {
    let port = etcd_tower_testkit::free_port().unwrap();
    let t = Transport::builder([format!("127.0.0.1:{port}")])
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = call::<pb::PutResponse>(&t, put("k", "v"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.sent()),
        (&ErrorKind::Connect, Sent::NotSent),
        "{err}"
    );
}

#[tokio::test]
async fn poll_ready_reserves_and_clones_reset() {
    for bin in binaries().into_iter().take(1) {
        let cluster = Cluster::start(&bin).await.unwrap();
        let mut t = Transport::connect_lazy(cluster.endpoints()).unwrap();
        // Calling before readiness is a typed error, not a panic.
        let err = t.call(EtcdRequest::new(get("k"))).await.unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidRequest);
        t.ready().await.unwrap();
        let mut clone = t.clone();
        assert!(
            clone.call(EtcdRequest::new(get("k"))).await.is_err(),
            "a clone is not ready"
        );
        pb::RangeResponse::try_from(t.call(EtcdRequest::new(get("k"))).await.unwrap()).unwrap();
    }
}

/// Answers larger than the stream window (2 MiB) and, together, than the
/// connection window (5 MiB): the transport hands flow-control capacity
/// back while a message is incomplete, so none of them stalls.
#[tokio::test]
async fn answers_larger_than_the_flow_control_windows() {
    for bin in binaries() {
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::start(&bin).await.unwrap();
            let t = Transport::connect_lazy(cluster.endpoints()).unwrap();
            let value = "v".repeat(1024 * 1024);
            for i in 0..4 {
                let _: pb::PutResponse = call(&t, put(&format!("big/{i}"), &value)).await.unwrap();
            }
            let all = pb::RangeRequest {
                key: "big/".into(),
                range_end: "big0".into(),
                ..Default::default()
            };
            // Four concurrent 4 MiB answers on one connection, twice.
            for _ in 0..2 {
                let answers = futures::future::join_all(
                    (0..4).map(|_| call::<pb::RangeResponse>(&t, all.clone())),
                )
                .await;
                for answer in answers {
                    let answer = answer.unwrap();
                    assert_eq!(answer.kvs.len(), 4, "{}", bin.label());
                    assert!(answer.kvs.iter().all(|kv| kv.value.len() == value.len()));
                }
            }
        })
        .await
        .expect("large answers stalled");
    }
}
