//! The engine side of auth cooperation, end to end on real etcd 3.5 and
//! 3.4 with short-lived simple tokens. The auth layer is played by a small
//! stand-in (`support::token_stack::TokenStack`) that behaves as the brief describes the real one:
//! it attaches a token, re-authenticates a unary call refused with
//! `InvalidAuthToken`, and reports the `TokenGeneration` of every stream and
//! of unary calls that ask for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest};
use etcd_tower_testkit::{binaries, Cluster};
use etcd_tower_watch::{WatchEngine, WatchOptions};
use support::etcd::*;
use support::token_stack::TokenStack;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_stream_token_is_renewed_and_a_real_denial_is_reported() {
    for bin in binaries() {
        let label = bin.label();
        let mut cluster = Cluster::builder(&bin)
            .auth_token_ttl(2)
            .start()
            .await
            .unwrap();
        cluster.enable_auth("rootpw").await.unwrap();
        for args in [
            &["user", "add", "alice:alicepw"][..],
            &["role", "add", "w"],
            &[
                "role",
                "grant-permission",
                "w",
                "readwrite",
                "w/",
                "--prefix=true",
            ],
            &["user", "grant-role", "alice", "w"],
        ] {
            cluster.etcdctl(args).await.unwrap();
        }
        let endpoints = cluster.endpoints();
        let writer = TokenStack::new(transport(&endpoints), ("root", "rootpw"));
        let alice = TokenStack::new(transport(&endpoints), ("alice", "alicepw"));
        let engine = WatchEngine::new(alice.clone());

        let put_as_root = |key: &'static str, value: String| {
            let writer = writer.clone();
            async move {
                use etcd_tower_core::proto::etcdserverpb::{PutRequest, PutResponse};
                let request = PutRequest {
                    key: key.into(),
                    value: value.into(),
                    ..Default::default()
                };
                let response = writer.oneshot(EtcdRequest::new(request)).await?;
                Ok::<i64, EtcdError>(PutResponse::try_from(response)?.header.unwrap().revision)
            }
        };
        let from = put_as_root("w/a", "0".into()).await.unwrap();
        let mut first = engine
            .watch("w/a", WatchOptions::new().start_revision(from))
            .await
            .unwrap();
        let rev = put_as_root("w/a", "1".into()).await.unwrap();
        let mut got_a = collect_until(&mut first, rev, 10).await;

        // The stream's token expires; the watcher already created keeps
        // delivering, a new create is refused by the server.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let rev = put_as_root("w/a", "2".into()).await.unwrap();
        got_a.extend(collect_until(&mut first, rev, 10).await);
        let mut second = bounded(
            30,
            "a watch after expiry",
            engine.watch("w/b", WatchOptions::new().prefix()),
        )
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
        // The refusal was probed: alice's token was renewed (generation 2)
        // and the stream re-opened with it.
        assert_eq!(
            alice.logins().await,
            2,
            "{label}: the token was not renewed"
        );
        // Both on the new stream, without loss.
        let rev_a = put_as_root("w/a", "3".into()).await.unwrap();
        let rev_b = put_as_root("w/b1", "b".into()).await.unwrap();
        got_a.extend(collect_until(&mut first, rev_a, 10).await);
        let got_b = collect_until(&mut second, rev_b, 10).await;
        let values: Vec<&[u8]> = got_a.iter().map(|s| s.2.as_ref()).collect();
        assert_eq!(values, [&b"0"[..], b"1", b"2", b"3"], "{label}");
        assert_eq!(got_b.len(), 1, "{label}");

        // A real denial ends that watch only.
        let denied = bounded(
            30,
            "a denied watch",
            engine.watch("secret/", WatchOptions::new().prefix()),
        )
        .await
        .expect_err("alice may not watch secret/");
        assert_eq!(
            denied.kind(),
            &ErrorKind::PermissionDenied,
            "{label}: {denied}"
        );
        let rev_a = put_as_root("w/a", "4".into()).await.unwrap();
        let more = collect_until(&mut first, rev_a, 10).await;
        assert_eq!(more.len(), 1, "{label}");
    }
}
