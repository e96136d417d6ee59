//! Every client-side limit at its edge and one past it, on every etcd
//! version: at the limit the call goes through; one past it fails with a
//! typed error, before anything is sent where the client can know
//! (`Sent::NotSent`), or as the server's own refusal (`Sent::Rejected`)
//! where only the server knows; and nothing is lost: the next call works
//! and the revision moved only for the calls that succeeded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use etcd_tower::{Client, ErrorKind, EtcdError, Sent, Txn, TxnOp};
use etcd_tower_core::transport::DEFAULT_MAX_SEND_SIZE;
use etcd_tower_core::validate::MAX_LEASE_TTL;
use etcd_tower_testkit::Cluster;
use futures::future::{join_all, try_join_all};
use futures::StreamExt;
use support::each_version;

/// The server's limits in these tests (small, so that the values are).
const SERVER_TXN_OPS: usize = 16;
const SERVER_REQUEST_BYTES: usize = 64 * 1024;
/// The client's send limit, under the server's.
const CLIENT_SEND: usize = 60_000;

fn refused(error: &EtcdError, kind: ErrorKind, sent: Sent, what: &str) {
    assert_eq!(
        (error.kind(), error.sent()),
        (&kind, sent),
        "{what}: {error}"
    );
}

/// The bytes of a protobuf length-delimited field of `len` bytes: its tag,
/// its length as a varint, and the bytes.
fn field_len(len: usize) -> usize {
    let mut varint = 1;
    while len >> (7 * varint) != 0 {
        varint += 1;
    }
    1 + varint + len
}

/// A value that makes `PutRequest { key, value }` exactly `size` bytes on
/// the wire (the encoding prost gives it).
fn value_for(key: &str, size: usize) -> Vec<u8> {
    let rest = size - field_len(key.len());
    let len = (rest.saturating_sub(4)..=rest)
        .rev()
        .find(|len| field_len(*len) == rest)
        .expect("a value length that fits exactly");
    vec![b'v'; len]
}

fn puts(count: usize, prefix: &str) -> Txn {
    Txn::new().and_then((0..count).map(|i| TxnOp::put(format!("{prefix}{i}"), "v")))
}

#[tokio::test]
async fn every_limit_at_its_edge_and_one_past_it() {
    each_version(60, |bin| async move {
        let cluster = Cluster::builder(&bin)
            .arg(format!("--max-txn-ops={SERVER_TXN_OPS}"))
            .arg(format!("--max-request-bytes={SERVER_REQUEST_BYTES}"))
            .start()
            .await
            .unwrap();
        // One client told the server's limits, one left at the defaults
        // (128 ops, 2 MiB), which only the server can refuse.
        let told = Client::builder(cluster.endpoints())
            .max_txn_ops(SERVER_TXN_OPS)
            .max_send_size(CLIENT_SEND)
            .connect()
            .await
            .unwrap();
        let untold = Client::connect(cluster.endpoints()).await.unwrap();
        let start = told.put("start", "1").await.unwrap().revision();
        let mut writes = 0;

        // Txn operations: the limit goes through, one more does not.
        told.txn(puts(SERVER_TXN_OPS, "t/")).await.unwrap();
        writes += 1;
        let e = told.txn(puts(SERVER_TXN_OPS + 1, "t/")).await.unwrap_err();
        refused(&e, ErrorKind::TooManyOps, Sent::NotSent, "17 ops, told");
        let e = untold
            .txn(puts(SERVER_TXN_OPS + 1, "t/"))
            .await
            .unwrap_err();
        refused(&e, ErrorKind::TooManyOps, Sent::Rejected, "17 ops, untold");
        // The client's own default: 128 goes to the server, 129 does not.
        let e = untold.txn(puts(129, "t/")).await.unwrap_err();
        refused(&e, ErrorKind::TooManyOps, Sent::NotSent, "129 ops");

        // Request size: exactly the client's send limit goes through, a
        // byte more is refused before sending.
        let at = value_for("size", CLIENT_SEND);
        told.put("size", at.clone()).await.unwrap();
        writes += 1;
        let mut over = at.clone();
        over.push(b'v');
        let e = told.put("size", over).await.unwrap_err();
        refused(
            &e,
            ErrorKind::RequestTooLarge,
            Sent::NotSent,
            "send limit + 1",
        );
        // Past the server's --max-request-bytes but under the client's
        // default: the server's refusal, nothing applied.
        let e = untold
            .put("size", vec![b'v'; SERVER_REQUEST_BYTES + 1])
            .await
            .unwrap_err();
        refused(
            &e,
            ErrorKind::RequestTooLarge,
            Sent::Rejected,
            "server limit + 1",
        );
        // Past the default send limit: refused before sending.
        let e = untold
            .put("size", vec![b'v'; DEFAULT_MAX_SEND_SIZE + 1])
            .await
            .unwrap_err();
        refused(&e, ErrorKind::RequestTooLarge, Sent::NotSent, "2 MiB + 1");

        // Lease TTLs: 1 and etcd's maximum are granted (1 as the server's
        // minimum, which is longer); 0, -1 and the maximum + 1 are refused
        // before sending.
        for ttl in [1, MAX_LEASE_TTL] {
            let lease = told.lease_grant(ttl).await.unwrap();
            assert!(lease.ttl >= ttl, "asked {ttl}, granted {}", lease.ttl);
            told.lease_revoke(lease.id).await.unwrap();
        }
        for ttl in [0, -1, MAX_LEASE_TTL + 1] {
            let e = told.lease_grant(ttl).await.unwrap_err();
            refused(
                &e,
                ErrorKind::InvalidTtl,
                Sent::NotSent,
                &format!("TTL {ttl}"),
            );
        }

        // Empty keys, everywhere a key goes.
        for e in [
            told.get("").await.unwrap_err(),
            told.put("", "v").await.unwrap_err(),
            told.delete("").await.unwrap_err(),
            told.txn(Txn::new().and_then([TxnOp::put("", "v")]))
                .await
                .unwrap_err(),
        ] {
            refused(&e, ErrorKind::EmptyKey, Sent::NotSent, "an empty key");
        }

        // Nothing lost: the next call works, and the store moved only for
        // the writes that succeeded.
        let end = told.put("end", "1").await.unwrap().revision();
        assert_eq!(end, start + writes + 1, "{}", bin.label());
        let size = told.get("size").await.unwrap();
        assert_eq!(size.kvs()[0].value(), &at[..]);
    })
    .await;
}

#[tokio::test]
async fn a_thousand_watchers_and_a_thousand_leases_on_one_client() {
    each_version(90, |bin| async move {
        let cluster = Cluster::start(&bin).await.unwrap();
        let client = Client::connect(cluster.endpoints()).await.unwrap();
        const COUNT: usize = 1_000;

        let watchers =
            try_join_all((0..COUNT).map(|i| {
                client.watch(format!("w/{i:04}"), etcd_tower::watch::WatchOptions::new())
            }))
            .await
            .unwrap();
        for chunk in (0..COUNT).collect::<Vec<_>>().chunks(100) {
            let ops = chunk.iter().map(|i| TxnOp::put(format!("w/{i:04}"), "v"));
            client.txn(Txn::new().and_then(ops)).await.unwrap();
        }
        let delivered = join_all(watchers.into_iter().enumerate().map(
            |(i, mut watcher)| async move {
                let batch =
                    tokio::time::timeout(std::time::Duration::from_secs(20), watcher.next())
                        .await
                        .unwrap_or_else(|_| panic!("watcher {i} got nothing"))
                        .unwrap()
                        .unwrap();
                assert_eq!(batch.events().len(), 1, "watcher {i}");
                let key = batch.events()[0].kv.as_ref().unwrap().key.clone();
                assert_eq!(key, format!("w/{i:04}"));
            },
        ))
        .await;
        assert_eq!(delivered.len(), COUNT);

        let leases = try_join_all((0..COUNT).map(|_| client.lease_grant(60)))
            .await
            .unwrap();
        let listed = client.lease_leases().await.unwrap();
        assert_eq!(listed.leases.len(), COUNT, "{}", bin.label());
        try_join_all(leases.iter().map(|lease| client.lease_revoke(lease.id)))
            .await
            .unwrap();
        assert!(client.lease_leases().await.unwrap().leases.is_empty());
    })
    .await;
}
