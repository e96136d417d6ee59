//! Registrations, lists and watches in Go's naming/endpoints format,
//! against every etcd version the test kit offers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower::{ErrorKind, LeaseState, PutOptions};
use etcd_tower_naming::{Endpoint, EndpointManager, Operation, RegisterOptions, Update};
use futures::StreamExt;
use serde_json::json;
use support::{each_version, single, until_nothing_left};
use tokio::time::{timeout, Instant};

/// The values Go's `endpoints.Manager.AddEndpoint` stores: `json.Marshal`
/// of `internal.Update{Op: Add, Addr: addr, Metadata: md}` (etcd v3.5.30
/// `client/v3/naming/endpoints/endpoints_impl.go`: `v, err =
/// json.Marshal(internalUpdate)` then `clientv3.OpPut(update.Key,
/// string(v), update.Opts...)`).
const GO_PLAIN: &str = r#"{"Op":0,"Addr":"127.0.0.1:8001","Metadata":null}"#;
const GO_WITH_METADATA: &str =
    r#"{"Op":0,"Addr":"10.0.0.2:9000","Metadata":{"version":"v2","weight":3}}"#;

/// Keys and values written as Go writes them are listed and watched;
/// values Go skips and keys outside `<target>/` are left out.
#[tokio::test]
async fn go_written_endpoints_are_listed_and_watched() {
    each_version(30, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let label = bin.label();
        client.put("svc/127.0.0.1:8001", GO_PLAIN).await.unwrap();
        client.put("svc/b", GO_WITH_METADATA).await.unwrap();
        client.put("svc/garbage", "not json").await.unwrap();
        client
            .put("svc/bad-op", r#"{"Op":"add","Addr":"x"}"#)
            .await
            .unwrap();
        client.put("svc", GO_PLAIN).await.unwrap();
        client.put("svc2/x", GO_PLAIN).await.unwrap();
        let manager = EndpointManager::new(&client, "svc").unwrap();

        let listed = manager.list().await.unwrap();
        let expected = [
            (
                "svc/127.0.0.1:8001".to_owned(),
                Endpoint::new("127.0.0.1:8001"),
            ),
            (
                "svc/b".to_owned(),
                Endpoint::new("10.0.0.2:9000").with_metadata(json!({"version": "v2", "weight": 3})),
            ),
        ];
        assert_eq!(
            listed.endpoints.into_iter().collect::<Vec<_>>(),
            expected,
            "{label}"
        );
        assert!(listed.revision > 0);

        let mut updates = manager.watch().await.unwrap();
        let first = timeout(Duration::from_secs(5), updates.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let adds: Vec<Update> = expected
            .iter()
            .map(|(key, endpoint)| Update {
                op: Operation::Add,
                key: key.clone(),
                endpoint: endpoint.clone(),
            })
            .collect();
        assert_eq!(first, adds, "{label}: the first batch adds what was listed");

        // Later changes: an unreadable put is skipped, a put is an Add
        // whatever its Op says, a delete a Delete with an empty endpoint.
        client.put("svc/garbage", "still not json").await.unwrap();
        client
            .put("svc/c", r#"{"Op":1,"Addr":"10.0.0.3:1"}"#)
            .await
            .unwrap();
        client.delete("svc/b").await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let batch = timeout(Duration::from_secs(5), updates.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            seen.extend(batch);
        }
        assert_eq!(
            seen,
            [
                Update {
                    op: Operation::Add,
                    key: "svc/c".into(),
                    endpoint: Endpoint::new("10.0.0.3:1")
                },
                Update {
                    op: Operation::Delete,
                    key: "svc/b".into(),
                    endpoint: Endpoint::new("")
                },
            ],
            "{label}"
        );
    })
    .await;
}

/// A registration stores exactly the bytes Go stores, under
/// `<target>/<addr>` and its own lease, which is kept past its TTL;
/// `close` deletes the key and revokes the lease.
#[tokio::test]
async fn registration_is_stored_as_go_stores_it_and_close_removes_it() {
    each_version(30, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let label = bin.label();
        let manager = EndpointManager::new(&client, "svc").unwrap();
        let plain = manager
            .register(
                Endpoint::new("127.0.0.1:8001"),
                RegisterOptions::new().ttl(2),
            )
            .await
            .unwrap();
        let with = manager
            .register(
                Endpoint::new("10.0.0.2:9000").with_metadata(json!({"weight": 3, "version": "v2"})),
                RegisterOptions::new().key("svc/b"),
            )
            .await
            .unwrap();
        assert_eq!(plain.key(), "svc/127.0.0.1:8001");
        let stored = client.get("svc/127.0.0.1:8001").await.unwrap();
        assert_eq!(stored.kvs()[0].value_str().unwrap(), GO_PLAIN, "{label}");
        assert_eq!(stored.kvs()[0].lease(), plain.lease_id());
        let stored = client.get("svc/b").await.unwrap();
        assert_eq!(
            stored.kvs()[0].value_str().unwrap(),
            GO_WITH_METADATA,
            "{label}"
        );
        assert_eq!(stored.kvs()[0].lease(), with.lease_id());
        assert_ne!(plain.lease_id(), with.lease_id());

        // Kept alive past its TTL.
        let ttl = plain.ttl();
        tokio::time::sleep(ttl * 2).await;
        assert!(matches!(plain.state(), LeaseState::Alive { .. }), "{label}");
        assert_eq!(
            client.get("svc/127.0.0.1:8001").await.unwrap().kvs().len(),
            1
        );

        plain.close().await.unwrap();
        with.close().await.unwrap();
        until_nothing_left(&client, "svc/", &label).await;

        // Keys outside the target are refused before anything is sent.
        let error = manager
            .register(Endpoint::new("x"), RegisterOptions::new().key("other/x"))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::InvalidRequest, "{error}");
        let error = manager
            .add_endpoint("svc/", &Endpoint::new("x"), PutOptions::new())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::InvalidRequest, "{error}");
        assert!(EndpointManager::new(&client, "").is_err());
        until_nothing_left(&client, "svc", &label).await;
    })
    .await;
}

/// Dropping a registration deregisters it in the background; closing or
/// dropping an old registration of an address registered again leaves
/// the new one's key.
#[tokio::test]
async fn dropped_registration_is_removed_and_spares_a_newer_one() {
    each_version(30, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let label = bin.label();
        let manager = EndpointManager::new(&client, "svc").unwrap();
        let registration = manager
            .register(Endpoint::new("a:1"), RegisterOptions::new())
            .await
            .unwrap();
        drop(registration);
        until_nothing_left(&client, "svc/", &label).await;

        let old = manager
            .register(Endpoint::new("a:1"), RegisterOptions::new())
            .await
            .unwrap();
        let new = manager
            .register(Endpoint::new("a:1"), RegisterOptions::new())
            .await
            .unwrap();
        old.close().await.unwrap();
        let stored = client.get("svc/a:1").await.unwrap();
        assert_eq!(
            stored.kvs().len(),
            1,
            "{label}: the newer registration's key stays"
        );
        assert_eq!(stored.kvs()[0].lease(), new.lease_id());
        drop(new);
        until_nothing_left(&client, "svc/", &label).await;
    })
    .await;
}

/// A registration dropped at any point of its way (before, during and
/// after the grant, during the put) leaves neither key nor lease.
#[tokio::test]
async fn registration_dropped_midway_leaves_nothing() {
    each_version(40, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let label = bin.label();
        let manager = EndpointManager::new(&client, "svc").unwrap();
        // How long a registration (grant, then put) takes here: the
        // median of five.
        let mut took = Vec::new();
        for i in 0..5 {
            let started = Instant::now();
            let warm = manager
                .register(Endpoint::new(format!("warm:{i}")), RegisterOptions::new())
                .await
                .unwrap();
            took.push(started.elapsed());
            warm.close().await.unwrap();
        }
        took.sort();
        // Cut after 0, then a twentieth of that more each time, until five
        // in a row finish: about ten cuts land in the put.
        let step = took[2] / 20;
        let (mut after, mut dropped, mut finished, mut in_a_row) = (Duration::ZERO, 0, 0, 0);
        for i in 0..200 {
            let endpoint = Endpoint::new(format!("i:{i}"));
            match timeout(after, manager.register(endpoint, RegisterOptions::new())).await {
                Ok(registration) => {
                    (finished, in_a_row) = (finished + 1, in_a_row + 1);
                    registration.unwrap().close().await.unwrap();
                }
                Err(_) => (dropped, in_a_row) = (dropped + 1, 0),
            }
            if in_a_row == 5 {
                break;
            }
            after += step;
        }
        println!(
            "{label}: {dropped} registrations cut (median {:?}), {finished} done",
            took[2]
        );
        assert!(
            dropped >= 10 && in_a_row == 5,
            "{label}: {dropped} registrations cut, {in_a_row} in a row done"
        );
        until_nothing_left(
            &client,
            "svc/",
            &format!("{label}, {dropped} dropped, {finished} done"),
        )
        .await;
    })
    .await;
}
