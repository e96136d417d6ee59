//! Credentials changed at run time (`Auth::credentials().update`): the
//! next calls act as the new user, a new watch is created as the new user,
//! and a watch made before the change loses and repeats nothing, on every
//! etcd version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use etcd_tower_auth::AuthLayer;
use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, Transport};
use etcd_tower_testkit::{binaries, Cluster};
use etcd_tower_watch::{WatchEngine, WatchOptions, Watcher};
use futures::StreamExt;
use tower::{Layer, ServiceExt};

const ROOT_PASSWORD: &str = "s3cret";

async fn put<S>(service: &S, key: &str) -> Result<i64, EtcdError>
where
    S: tower::Service<EtcdRequest, Response = etcd_tower_core::EtcdResponse, Error = EtcdError>
        + Clone,
{
    let put = pb::PutRequest {
        key: key.to_owned().into(),
        value: "v".into(),
        ..Default::default()
    };
    let answer = service.clone().oneshot(EtcdRequest::new(put)).await?;
    Ok(pb::PutResponse::try_from(answer)?
        .header
        .map_or(0, |h| h.revision))
}

/// The revisions of the events `watcher` delivers until it reaches `last`.
async fn revisions_until(watcher: &mut Watcher, last: i64) -> Vec<i64> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|at| *at < last) {
        let batch = tokio::time::timeout(Duration::from_secs(15), watcher.next())
            .await
            .expect("an event in time")
            .expect("the watch goes on")
            .unwrap();
        seen.extend(
            batch
                .events()
                .iter()
                .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision)),
        );
    }
    seen
}

#[tokio::test]
async fn a_live_client_changes_user_and_its_watches_lose_nothing() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(Duration::from_secs(60), async {
            let mut cluster = Cluster::start(&bin).await.unwrap();
            cluster.add_user("alice", "a-pass", "a/").await.unwrap();
            cluster.add_user("bob", "b-pass", "b/").await.unwrap();
            // Bob may also read alice's keys, so her watch can go on as his.
            cluster
                .etcdctl(&[
                    "role",
                    "grant-permission",
                    "bob-role",
                    "--prefix=true",
                    "read",
                    "a/",
                ])
                .await
                .unwrap();
            cluster.enable_auth(ROOT_PASSWORD).await.unwrap();
            let root = AuthLayer::new("root", ROOT_PASSWORD)
                .layer(Transport::connect_lazy(cluster.endpoints()).unwrap());

            let client = AuthLayer::new("alice", "a-pass")
                .layer(Transport::connect_lazy(cluster.endpoints()).unwrap());
            let engine = WatchEngine::new(client.clone());
            put(&client, "a/1").await.unwrap();
            let denied = put(&client, "b/1").await.unwrap_err();
            assert_eq!(denied.kind(), &ErrorKind::PermissionDenied, "{label}");
            let start = put(&root, "a/0").await.unwrap();
            let mut a_watch = engine
                .watch("a/", WatchOptions::new().prefix().start_revision(start))
                .await
                .unwrap();

            client.credentials().update("bob", "b-pass").await;
            assert_eq!(client.credentials().user(), "bob");
            // Calls after the change are bob's.
            put(&client, "b/1").await.unwrap();
            let denied = put(&client, "a/2").await.unwrap_err();
            assert_eq!(denied.kind(), &ErrorKind::PermissionDenied, "{label}");
            // A new watch is bob's: alice could not watch b/.
            let mut b_watch = engine
                .watch("b/", WatchOptions::new().prefix())
                .await
                .unwrap();
            let b_at = put(&root, "b/2").await.unwrap();
            assert_eq!(revisions_until(&mut b_watch, b_at).await, [b_at], "{label}");
            // Alice's watch, made before the change, has every a/ event once.
            let mut written = vec![start];
            for i in 3..6 {
                written.push(put(&root, &format!("a/{i}")).await.unwrap());
            }
            let last = *written.last().unwrap();
            assert_eq!(
                revisions_until(&mut a_watch, last).await,
                written,
                "{label}"
            );

            // A wrong password is refused as such, and a right one after it
            // works at once (the refusal is forgotten on update).
            client.credentials().update("bob", "wrong").await;
            let refused = put(&client, "b/3").await.unwrap_err();
            assert_eq!(refused.kind(), &ErrorKind::AuthFailed, "{label}: {refused}");
            client.credentials().update("bob", "b-pass").await;
            put(&client, "b/3").await.unwrap();
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}
