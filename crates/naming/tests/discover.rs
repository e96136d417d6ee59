//! The Discover stream, alone and under tower's p2c balancer, against
//! every etcd version the test kit offers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::time::Duration;

use etcd_tower::PutOptions;
use etcd_tower_naming::{Change, Endpoint, EndpointDiscover, EndpointManager, RegisterOptions};
use futures::StreamExt;
use support::{each_version, single};
use tokio::time::timeout;
use tower::balance::p2c::Balance;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::service_fn;
use tower::util::ServiceFn;
use tower::{Service, ServiceExt};

/// A service that answers every request with its instance's address.
type Echo = ServiceFn<Box<dyn FnMut(()) -> Ready<Result<String, Infallible>> + Send>>;

fn echo(endpoint: &Endpoint) -> Echo {
    let addr = endpoint.addr.clone();
    service_fn(Box::new(move |()| ready(Ok(addr.clone()))))
}

/// The next change, within 5 s, as (key, Some(address)) for an insert
/// (calling its service) or (key, None) for a remove.
async fn next_change(discover: &mut EndpointDiscover<Echo>) -> (String, Option<String>) {
    match timeout(Duration::from_secs(5), discover.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        Change::Insert(key, service) => (key, Some(service.oneshot(()).await.unwrap())),
        Change::Remove(key) => (key, None),
    }
}

/// Inserts for what is listed, then an insert per new or changed
/// endpoint and a remove per delete or ended lease; nothing for an
/// unreadable value, an unchanged one, or a delete of an unknown key.
#[tokio::test]
async fn changes_follow_the_registrations() {
    each_version(30, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let label = bin.label();
        let manager = EndpointManager::new(&client, "echo").unwrap();
        let a = manager
            .register(Endpoint::new("a:1"), RegisterOptions::new())
            .await
            .unwrap();
        let b = manager
            .register(Endpoint::new("b:1"), RegisterOptions::new())
            .await
            .unwrap();
        let mut discover = manager.discover(echo).await.unwrap();
        assert_eq!(
            next_change(&mut discover).await,
            ("echo/a:1".into(), Some("a:1".into())),
            "{label}"
        );
        assert_eq!(
            next_change(&mut discover).await,
            ("echo/b:1".into(), Some("b:1".into()))
        );

        client.put("echo/junk", "not json").await.unwrap();
        client.delete("echo/never").await.unwrap();
        // The same value again (as a re-registration writes it): nothing.
        let same_lease = PutOptions::new().lease(a.lease_id());
        client
            .put_with("echo/a:1", Endpoint::new("a:1").to_json(), same_lease)
            .await
            .unwrap();
        a.close().await.unwrap();
        assert_eq!(
            next_change(&mut discover).await,
            ("echo/a:1".into(), None),
            "{label}"
        );
        // A changed value replaces the service.
        let b_lease = PutOptions::new().lease(b.lease_id());
        client
            .put_with("echo/b:1", Endpoint::new("b:2").to_json(), b_lease)
            .await
            .unwrap();
        assert_eq!(
            next_change(&mut discover).await,
            ("echo/b:1".into(), Some("b:2".into()))
        );
        // The lease ended by someone else: the key goes with it.
        client.lease_revoke(b.lease_id()).await.unwrap();
        assert_eq!(next_change(&mut discover).await, ("echo/b:1".into(), None));
        let c = manager
            .register(Endpoint::new("c:1"), RegisterOptions::new())
            .await
            .unwrap();
        assert_eq!(
            next_change(&mut discover).await,
            ("echo/c:1".into(), Some("c:1".into()))
        );
        assert_eq!(
            discover.endpoints().keys().collect::<Vec<_>>(),
            ["echo/c:1"]
        );
        c.close().await.unwrap();
        assert_eq!(next_change(&mut discover).await, ("echo/c:1".into(), None));
        drop(b);
    })
    .await;
}

/// Calls the balancer `n` times; the answers per instance.
async fn send<B>(balance: &mut B, n: usize) -> BTreeMap<String, usize>
where
    B: Service<(), Response = String>,
    B::Error: std::fmt::Debug,
{
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let answer = balance.ready().await.unwrap().call(()).await.unwrap();
        *counts.entry(answer).or_default() += 1;
        // The services answer at once: let the watch engine's tasks run.
        tokio::task::yield_now().await;
    }
    counts
}

/// `tower::balance::p2c::Balance` over the Discover spreads requests over
/// every instance, stops sending to one that deregistered, and sends to
/// it again once it registered again.
#[tokio::test]
async fn p2c_balance_follows_instances() {
    each_version(30, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let label = bin.label();
        let manager = EndpointManager::new(&client, "echo").unwrap();
        let mut registrations = Vec::new();
        for i in 0..3 {
            let endpoint = Endpoint::new(format!("instance-{i}"));
            registrations.push(
                manager
                    .register(endpoint, RegisterOptions::new())
                    .await
                    .unwrap(),
            );
        }
        let discover = manager.discover(echo).await.unwrap();
        let mut balance = Balance::new(PendingRequestsDiscover::new(
            discover,
            CompleteOnResponse::default(),
        ));
        let counts = send(&mut balance, 300).await;
        assert_eq!(counts.len(), 3, "{label}: {counts:?}");
        assert!(counts.values().all(|&n| n >= 30), "{label}: {counts:?}");

        registrations.remove(0).close().await.unwrap();
        // The removal reaches the balancer with the watch event: within a
        // bounded number of calls, none goes to instance-0 any more.
        let mut calls = 0;
        let mut without = 0;
        while without < 50 {
            let counts = send(&mut balance, 1).await;
            without = if counts.contains_key("instance-0") {
                0
            } else {
                without + 1
            };
            calls += 1;
            assert!(
                calls < 100_000,
                "{label}: instance-0 still called after {calls} calls"
            );
        }
        let counts = send(&mut balance, 300).await;
        assert_eq!(
            counts.keys().collect::<Vec<_>>(),
            ["instance-1", "instance-2"],
            "{label}"
        );

        let back = manager
            .register(Endpoint::new("instance-0"), RegisterOptions::new())
            .await
            .unwrap();
        let mut calls = 0;
        while !send(&mut balance, 1).await.contains_key("instance-0") {
            calls += 1;
            assert!(
                calls < 100_000,
                "{label}: instance-0 not called again after {calls} calls"
            );
        }
        let counts = send(&mut balance, 300).await;
        assert_eq!(counts.len(), 3, "{label}: {counts:?}");
        drop(back);
    })
    .await;
}

/// The stream goes on across a restart of the member (the watch engine
/// resumes it from the next revision): what changed after the restart
/// arrives, the instance registered before it stays, nothing repeats.
#[tokio::test]
async fn changes_go_on_across_a_member_restart() {
    each_version(40, |bin| async move {
        let (cluster, client) = single(&bin).await;
        let label = bin.label();
        let manager = EndpointManager::new(&client, "echo").unwrap();
        let a = manager
            .register(Endpoint::new("a:1"), RegisterOptions::new())
            .await
            .unwrap();
        let mut discover = manager.discover(echo).await.unwrap();
        assert_eq!(
            next_change(&mut discover).await,
            ("echo/a:1".into(), Some("a:1".into()))
        );

        cluster.member(0).kill().unwrap();
        cluster.member(0).restart().await.unwrap();
        let b = manager
            .register(Endpoint::new("b:1"), RegisterOptions::new())
            .await
            .unwrap();
        assert_eq!(
            next_change(&mut discover).await,
            ("echo/b:1".into(), Some("b:1".into())),
            "{label}"
        );
        a.close().await.unwrap();
        assert_eq!(
            next_change(&mut discover).await,
            ("echo/a:1".into(), None),
            "{label}"
        );
        assert_eq!(
            discover.endpoints().keys().collect::<Vec<_>>(),
            ["echo/b:1"]
        );
        b.close().await.unwrap();
        assert_eq!(
            next_change(&mut discover).await,
            ("echo/b:1".into(), None),
            "{label}"
        );
    })
    .await;
}
