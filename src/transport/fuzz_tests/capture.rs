//! Captures seed corpus files from a real etcd: the exact bytes of its
//! answers, as they crossed the wire.
//!
//! Runs only when asked, with the etcd binary to use:
//!
//! ```text
//! ETCD_TOWER_CAPTURE_CORPUS=.etcd/v3.5.30/etcd \
//!     cargo test -p etcd-tower-core --lib fuzz_tests::capture
//! ```
//!
//! It starts a one-member etcd, puts a TCP relay between it and a
//! [`Transport`], and records everything the server sends. The
//! HTTP/2 DATA frames of each stream, joined, are that stream's gRPC
//! messages; streams are numbered in the order the calls opened them.
//! Each message is checked against what the client decoded, then written
//! as one frame to `tests/corpus/grpc/<Rpc>.etcd-<version>.<what>.<n>.bin`.
//!
//! Fragmented watch answers are not captured: etcd fragments only answers
//! over `--max-request-bytes` plus 512 KiB, too large to commit; the
//! written corpus has a small fragment instead (`Watch.fragment.bin`).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::super::codec;
use super::corpus_dir;
use crate::proto::etcdserverpb as pb;
use crate::{EtcdRequest, RequestBody, ResponseBody, Rpc, Transport};

/// Kills the etcd it holds when dropped.
struct Etcd(Child, std::path::PathBuf);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A relay from a listener to `target` that records what `target` sends.
async fn relay(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let record = recorded.clone();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        });
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = server_read.read(&mut buf).await {
            record.lock().unwrap().extend_from_slice(&buf[..n]);
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    (addr, recorded)
}

/// The DATA payloads of each stream, joined, from the bytes a server sent
/// on an HTTP/2 connection (no preface on the server side).
fn data_by_stream(mut wire: &[u8]) -> BTreeMap<u32, BytesMut> {
    let mut streams: BTreeMap<u32, BytesMut> = BTreeMap::new();
    while wire.len() >= 9 {
        let len = usize::from(wire[0]) << 16 | usize::from(wire[1]) << 8 | usize::from(wire[2]);
        let (kind, flags) = (wire[3], wire[4]);
        let id = u32::from_be_bytes([wire[5], wire[6], wire[7], wire[8]]) & 0x7fff_ffff;
        let Some(payload) = wire.get(9..9 + len) else {
            break;
        };
        if kind == 0 {
            let mut payload = payload;
            if flags & 0x8 != 0 {
                let pad = usize::from(payload[0]);
                payload = &payload[1..payload.len() - pad];
            }
            streams.entry(id).or_default().extend_from_slice(payload);
        }
        wire = &wire[9 + len..];
    }
    streams
}

/// One call made through the relay: its RPC, a name, and the messages the
/// client decoded (re-encoded), in order.
struct Call {
    rpc: Rpc,
    what: &'static str,
    decoded: Vec<Vec<u8>>,
}

async fn unary(t: &Transport, calls: &mut Vec<Call>, what: &'static str, body: RequestBody) {
    let rpc = body.rpc();
    let response = t.clone().oneshot(EtcdRequest::new(body)).await.unwrap();
    let decoded = match response.body {
        ResponseBody::Range(m) => m.encode_to_vec(),
        ResponseBody::Put(m) => m.encode_to_vec(),
        ResponseBody::DeleteRange(m) => m.encode_to_vec(),
        ResponseBody::Txn(m) => m.encode_to_vec(),
        ResponseBody::Compact(m) => m.encode_to_vec(),
        ResponseBody::LeaseGrant(m) => m.encode_to_vec(),
        ResponseBody::LeaseTimeToLive(m) => m.encode_to_vec(),
        ResponseBody::LeaseLeases(m) => m.encode_to_vec(),
        ResponseBody::Status(m) => m.encode_to_vec(),
        ResponseBody::MemberList(m) => m.encode_to_vec(),
        ResponseBody::HashKv(m) => m.encode_to_vec(),
        ResponseBody::Alarm(m) => m.encode_to_vec(),
        ResponseBody::AuthStatus(m) => m.encode_to_vec(),
        other => panic!("add {:?} here", other.rpc()),
    };
    calls.push(Call {
        rpc,
        what,
        decoded: vec![decoded],
    });
}

fn put(key: &str, value: impl Into<Bytes>, prev_kv: bool) -> pb::PutRequest {
    pb::PutRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: value.into(),
        prev_kv,
        ..Default::default()
    }
}

fn range(key: &str, end: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        range_end: Bytes::copy_from_slice(end.as_bytes()),
        ..Default::default()
    }
}

fn op(request: pb::request_op::Request) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request),
    }
}

#[tokio::test]
async fn capture_the_corpus_from_a_real_etcd() {
    let Some(etcd) = std::env::var_os("ETCD_TOWER_CAPTURE_CORPUS") else {
        return;
    };
    let version = Command::new(&etcd).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("etcd Version: ").map(str::to_owned))
        .unwrap();
    let (client_port, peer_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("etcd-tower-capture-{}", std::process::id()));
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let child = Command::new(&etcd)
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _etcd = Etcd(child, dir);
    let etcd_addr: SocketAddr = format!("127.0.0.1:{client_port}").parse().unwrap();

    // Ready when a read answers (on a connection of its own).
    let direct = Transport::builder([etcd_addr.to_string()]).build().unwrap();
    let mut ready = false;
    for _ in 0..100 {
        let read = EtcdRequest::new(range("ready", ""));
        if direct.clone().oneshot(read).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "etcd did not start");

    let (relay_addr, recorded) = relay(etcd_addr).await;
    let t = Transport::builder([relay_addr.to_string()])
        .build()
        .unwrap();
    let mut calls = Vec::new();
    let c = &mut calls;

    // A watch opened first, so that its events are the writes below.
    let (watch_tx, watch_rx) = futures::channel::mpsc::unbounded();
    watch_tx
        .unbounded_send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: "app/".into(),
                    range_end: "app0".into(),
                    prev_kv: true,
                    fragment: true,
                    ..Default::default()
                },
            )),
        })
        .unwrap();
    let response = t
        .clone()
        .oneshot(EtcdRequest::new(RequestBody::Watch(Box::pin(watch_rx))))
        .await
        .unwrap();
    let ResponseBody::Watch(mut watch) = response.body else {
        panic!("not a watch")
    };
    let mut watch_messages = vec![watch.next().await.unwrap().unwrap()];
    let watch_call = c.len();
    c.push(Call {
        rpc: Rpc::Watch,
        what: "prefix",
        decoded: vec![],
    });

    unary(&t, c, "put", put("app/a", "1", false).into()).await;
    unary(&t, c, "prev-kv", put("app/a", "2", true).into()).await;
    unary(&t, c, "put", put("app/b", "22", false).into()).await;
    unary(&t, c, "put", put("app/\u{7f}", "", false).into()).await;
    unary(&t, c, "prefix", range("app/", "app0").into()).await;
    unary(
        &t,
        c,
        "more",
        pb::RangeRequest {
            limit: 1,
            ..range("app/", "app0")
        }
        .into(),
    )
    .await;
    unary(
        &t,
        c,
        "count-only",
        pb::RangeRequest {
            count_only: true,
            ..range("\0", "\0")
        }
        .into(),
    )
    .await;
    unary(&t, c, "empty", range("missing", "").into()).await;
    use pb::request_op::Request as Q;
    let compare = |value: &'static str| pb::Compare {
        result: pb::compare::CompareResult::Equal as i32,
        target: pb::compare::CompareTarget::Value as i32,
        key: "app/a".into(),
        target_union: Some(pb::compare::TargetUnion::Value(value.into())),
        ..Default::default()
    };
    let txn = |value| pb::TxnRequest {
        compare: vec![compare(value)],
        success: vec![
            op(Q::RequestRange(range("app/", "app0"))),
            op(Q::RequestPut(put("app/c", "3", true))),
            op(Q::RequestDeleteRange(pb::DeleteRangeRequest {
                key: "app/b".into(),
                prev_kv: true,
                ..Default::default()
            })),
            op(Q::RequestTxn(pb::TxnRequest {
                success: vec![op(Q::RequestRange(range("app/c", "")))],
                ..Default::default()
            })),
        ],
        failure: vec![op(Q::RequestRange(range("app/a", "")))],
    };
    unary(&t, c, "succeeded", txn("2").into()).await;
    unary(&t, c, "failed", txn("nope").into()).await;
    unary(
        &t,
        c,
        "prev-kvs",
        pb::DeleteRangeRequest {
            key: "app/".into(),
            range_end: "app0".into(),
            prev_kv: true,
        }
        .into(),
    )
    .await;
    unary(
        &t,
        c,
        "ttl",
        pb::LeaseGrantRequest { ttl: 60, id: 0 }.into(),
    )
    .await;
    let lease = {
        let grant = calls.last().unwrap();
        pb::LeaseGrantResponse::decode(&grant.decoded[0][..])
            .unwrap()
            .id
    };
    let c = &mut calls;
    unary(
        &t,
        c,
        "put",
        pb::PutRequest {
            lease,
            ..put("leased", "v", false)
        }
        .into(),
    )
    .await;
    unary(
        &t,
        c,
        "keys",
        pb::LeaseTimeToLiveRequest {
            id: lease,
            keys: true,
        }
        .into(),
    )
    .await;
    unary(&t, c, "list", pb::LeaseLeasesRequest {}.into()).await;
    let (keep_tx, keep_rx) = futures::channel::mpsc::unbounded();
    keep_tx
        .unbounded_send(pb::LeaseKeepAliveRequest { id: lease })
        .unwrap();
    let response = t
        .clone()
        .oneshot(EtcdRequest::new(RequestBody::LeaseKeepAlive(Box::pin(
            keep_rx,
        ))))
        .await
        .unwrap();
    let ResponseBody::LeaseKeepAlive(mut keep_alive) = response.body else {
        panic!("not a keep-alive")
    };
    let answer = keep_alive.next().await.unwrap().unwrap();
    c.push(Call {
        rpc: Rpc::LeaseKeepAlive,
        what: "ttl",
        decoded: vec![answer.encode_to_vec()],
    });
    drop(keep_tx);
    unary(&t, c, "status", pb::StatusRequest {}.into()).await;
    unary(
        &t,
        c,
        "members",
        pb::MemberListRequest { linearizable: true }.into(),
    )
    .await;
    unary(&t, c, "hash", pb::HashKvRequest { revision: 0 }.into()).await;
    unary(&t, c, "none", pb::AlarmRequest::default().into()).await;
    // AuthStatus came in etcd 3.5.
    if !version.starts_with("3.4.") {
        unary(&t, c, "disabled", pb::AuthStatusRequest {}.into()).await;
    }

    // The watch saw every write under app/: read up to the last deletion.
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let last = message
            .events
            .iter()
            .any(|e| e.r#type == 1 && &e.kv.as_ref().unwrap().key[..] == b"app/c");
        watch_messages.push(message);
        if last {
            break;
        }
    }
    drop(watch_tx);
    calls[watch_call].decoded = watch_messages.iter().map(Message::encode_to_vec).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The streams, in the order the calls opened them (ids 1, 3, 5, ...).
    let wire = recorded.lock().unwrap().clone();
    let streams = data_by_stream(&wire);
    assert_eq!(streams.len(), calls.len(), "one stream per call");
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut written = std::collections::HashSet::new();
    for (call, (_, mut data)) in calls.iter().zip(streams) {
        let mut n = 0;
        while let Some(message) = codec::split_message(&mut data, usize::MAX).unwrap() {
            assert_eq!(
                super::reencoded(call.rpc, message.clone()),
                call.decoded[n],
                "{} {}: the wire and the client disagree",
                call.rpc,
                call.what
            );
            // The same answer shape once (puts repeat).
            let name = format!("{}.etcd-{version}.{}.{n}.bin", call.rpc.name(), call.what);
            if written.insert(name.clone()) {
                let mut frame = BytesMut::from(&[0u8][..]);
                frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
                frame.extend_from_slice(&message);
                std::fs::write(dir.join(name), frame).unwrap();
            }
            n += 1;
        }
        assert_eq!(n, call.decoded.len(), "{} {}", call.rpc, call.what);
        assert!(
            data.is_empty(),
            "{} {}: a partial message",
            call.rpc,
            call.what
        );
    }
}
