//! KV and txn through the facade, against etcd 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use etcd_tower::{
    Client, Compare, CompareOp, DeleteOptions, ErrorKind, GetOptions, PutOptions, Sent, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse,
};
use support::{each_version, single};

#[tokio::test]
async fn get_put_delete_with_every_option() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let first = client.put("a/1", "one").await.unwrap().revision();
        client.put("a/2", "two").await.unwrap();
        client.put("a/3", "three").await.unwrap();
        client.put("b", "bee").await.unwrap();

        let one = client.get("a/1").await.unwrap();
        assert_eq!(one.kvs()[0].key_str().unwrap(), "a/1");
        assert_eq!(one.kvs()[0].value_str().unwrap(), "one");
        assert_eq!(one.kvs()[0].version(), 1);

        let prefix = client
            .get_with("a/", GetOptions::new().prefix())
            .await
            .unwrap();
        assert_eq!(prefix.count(), 3);
        let from = client
            .get_with("a/2", GetOptions::new().from_key())
            .await
            .unwrap();
        let keys: Vec<_> = from.kvs().iter().map(|kv| kv.key_str().unwrap()).collect();
        assert_eq!(keys, ["a/2", "a/3", "b"]);
        let range = client
            .get_with("a/1", GetOptions::new().range_end("a/3"))
            .await
            .unwrap();
        assert_eq!(range.kvs().len(), 2);

        let limited = client
            .get_with(
                "a/",
                GetOptions::new()
                    .prefix()
                    .limit(2)
                    .sort(SortTarget::Key, SortOrder::Descend),
            )
            .await
            .unwrap();
        assert!(limited.more());
        assert_eq!(limited.kvs()[0].key(), b"a/3");
        let by_value = client
            .get_with(
                "a/",
                GetOptions::new()
                    .prefix()
                    .sort(SortTarget::Value, SortOrder::Ascend),
            )
            .await
            .unwrap();
        assert_eq!(by_value.kvs()[0].value(), b"one");

        let old = client
            .get_with("a/", GetOptions::new().prefix().revision(first))
            .await
            .unwrap();
        assert_eq!(old.kvs().len(), 1);
        let keys_only = client
            .get_with("a/1", GetOptions::new().keys_only().serializable())
            .await
            .unwrap();
        assert!(keys_only.kvs()[0].value().is_empty());
        let count = client
            .get_with("a/", GetOptions::new().prefix().count_only())
            .await
            .unwrap();
        assert_eq!((count.count(), count.kvs().len()), (3, 0));
        let newer = client
            .get_with("a/", GetOptions::new().prefix().min_mod_revision(first + 1))
            .await
            .unwrap();
        assert_eq!(newer.kvs().len(), 2);
        let older = client
            .get_with("a/", GetOptions::new().prefix().max_create_revision(first))
            .await
            .unwrap();
        assert_eq!(older.kvs().len(), 1);
        let mod_max = client
            .get_with("a/", GetOptions::new().prefix().max_mod_revision(first))
            .await
            .unwrap();
        assert_eq!(mod_max.kvs().len(), 1);
        let create_min = client
            .get_with(
                "a/",
                GetOptions::new().prefix().min_create_revision(first + 1),
            )
            .await
            .unwrap();
        assert_eq!(create_min.kvs().len(), 2);

        // Put options.
        let prev = client
            .put_with("a/1", "uno", PutOptions::new().prev_kv())
            .await
            .unwrap();
        assert_eq!(prev.prev_kv().unwrap().value(), b"one");
        let lease = client.lease_grant(60).await.unwrap();
        client
            .put_with("a/1", "", PutOptions::new().lease(lease.id).ignore_value())
            .await
            .unwrap();
        let kv = client.get("a/1").await.unwrap().into_kvs().remove(0);
        assert_eq!((kv.value(), kv.lease()), (&b"uno"[..], lease.id));
        client
            .put_with("a/1", "eins", PutOptions::new().ignore_lease())
            .await
            .unwrap();
        let kv = client.get("a/1").await.unwrap().into_kvs().remove(0);
        assert_eq!((kv.value(), kv.lease()), (&b"eins"[..], lease.id));
        let err = client
            .put_with("missing", "", PutOptions::new().ignore_value())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::KeyNotFound, "{err}");

        // Delete options.
        let gone = client
            .delete_with("a/", DeleteOptions::new().prefix().prev_kv())
            .await
            .unwrap();
        assert_eq!(gone.deleted(), 3);
        assert_eq!(gone.prev_kvs().len(), 3);
        assert_eq!(client.delete("b").await.unwrap().deleted(), 1);
        assert_eq!(client.delete("b").await.unwrap().deleted(), 0);

        // Compaction.
        let rev = client.put("c", "1").await.unwrap().revision();
        client.put("c", "2").await.unwrap();
        client
            .compact_with(rev, etcd_tower::CompactOptions::new().physical())
            .await
            .unwrap();
        let err = client
            .get_with("c", GetOptions::new().revision(rev - 1))
            .await
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Compacted { .. }), "{err}");
    })
    .await;
}

#[tokio::test]
async fn transactions() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let created = client.put("k", "v1").await.unwrap().revision();
        client.put("lk", "x").await.unwrap();

        let txn = Txn::new()
            .when([
                Compare::value("k", CompareOp::Equal, "v1"),
                Compare::version("k", CompareOp::Equal, 1),
                Compare::create_revision("k", CompareOp::Equal, created),
                Compare::mod_revision("k", CompareOp::Less, created + 10),
                Compare::lease("k", CompareOp::Equal, 0),
                Compare::version("l", CompareOp::Greater, 0).with_prefix(),
                Compare::version("a", CompareOp::Greater, 0).with_range("z"),
            ])
            .and_then([
                TxnOp::put("k", "v2"),
                TxnOp::get("k"),
                TxnOp::delete("lk"),
                TxnOp::txn(
                    // Compares of nested txns are evaluated before any op runs.
                    Txn::new()
                        .when([Compare::value("k", CompareOp::NotEqual, "v1")])
                        .and_then([TxnOp::put("never", "1")])
                        .or_else([TxnOp::get_with("k", GetOptions::new().prefix())]),
                ),
            ])
            .or_else([TxnOp::get("k")]);
        let resp = client.txn(txn).await.unwrap();
        assert!(resp.succeeded());
        let ops = resp.op_responses();
        assert!(matches!(ops[0], TxnOpResponse::Put(_)));
        match &ops[1] {
            TxnOpResponse::Get(g) => assert_eq!(g.kvs()[0].value(), b"v2"),
            other => panic!("{other:?}"),
        }
        match &ops[2] {
            TxnOpResponse::Delete(d) => assert_eq!(d.deleted(), 1),
            other => panic!("{other:?}"),
        }
        match &ops[3] {
            TxnOpResponse::Txn(nested) => {
                assert!(!nested.succeeded());
                assert!(matches!(nested.op_responses()[0], TxnOpResponse::Get(_)));
            }
            other => panic!("{other:?}"),
        }

        let failed = client
            .txn(
                Txn::new()
                    .when([Compare::value("k", CompareOp::Equal, "v1")])
                    .and_then([TxnOp::put("k", "v3")])
                    .or_else([TxnOp::get("k")]),
            )
            .await
            .unwrap();
        assert!(!failed.succeeded());
        assert!(client.get("never").await.unwrap().kvs().is_empty());
    })
    .await;
}

/// Bad input fails before anything is sent.
#[tokio::test]
async fn bad_input_is_refused_before_sending() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let before = client.get("x").await.unwrap().revision();
        let not_sent = |e: &etcd_tower::EtcdError| assert_eq!(e.sent(), Sent::NotSent, "{e}");

        let e = client.get("").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::EmptyKey);
        not_sent(&e);
        let e = client.put("", "v").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::EmptyKey);
        let e = client.lease_grant(0).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidTtl);
        not_sent(&e);
        let e = client.lease_grant(9_000_000_001).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidTtl);
        let e = etcd_tower::LeaseKeeper::new(&client, 1, -1).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidTtl);

        let big = vec![b'x'; 3 * 1024 * 1024];
        let e = client.put("big", big).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::RequestTooLarge);
        not_sent(&e);

        let many = Txn::new().and_then((0..129).map(|i| TxnOp::put(format!("k{i}"), "v")));
        let e = client.txn(many).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::TooManyOps);
        let dup = Txn::new().and_then([TxnOp::put("d", "1"), TxnOp::put("d", "2")]);
        let e = client.txn(dup).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::DuplicateKey);
        let overlap = Txn::new().and_then([
            TxnOp::delete_with("d", DeleteOptions::new().prefix()),
            TxnOp::put("d/1", "2"),
        ]);
        let e = client.txn(overlap).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::DuplicateKey);
        not_sent(&e);

        // Exactly 128 ops is fine.
        let full = Txn::new().and_then((0..128).map(|i| TxnOp::put(format!("k{i}"), "v")));
        client.txn(full).await.unwrap();

        // Nothing above reached the server.
        let after = client.get("x").await.unwrap().revision();
        assert_eq!(after, before + 1, "only the 128-op txn was applied");
    })
    .await;
}

#[tokio::test]
async fn connect_fails_fast_without_a_server() {
    let port = etcd_tower_testkit::free_port().unwrap();
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        Client::connect([format!("127.0.0.1:{port}")]),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Connect, "{err}");
    // A lazily built client does no I/O.
    Client::builder([format!("127.0.0.1:{port}")])
        .build()
        .unwrap();
}
