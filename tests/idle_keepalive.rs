//! Idle connections stay known-good: with `keepalive_while_idle`, an idle
//! connection that a NAT silently forgot (the kit's proxy drops its bytes
//! both ways, with no FIN or RST) is found and closed by keepalive with no
//! call in flight, and the next write goes on a fresh connection and
//! succeeds. Without it, that write goes into the dead connection and can
//! only fail as "may have been applied".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::{EtcdRequest, Sent, Transport};
use etcd_tower_testkit::{binaries, Cluster, Proxy};
use tower::ServiceExt;

const INTERVAL: Duration = Duration::from_millis(400);
const TIMEOUT: Duration = Duration::from_millis(400);

fn put(value: &str) -> EtcdRequest {
    EtcdRequest::new(pb::PutRequest {
        key: "idle".into(),
        value: value.to_owned().into(),
        ..Default::default()
    })
}

/// Waits until `done` holds, checking every 20 ms, for at most `within`.
async fn until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

fn transport(proxy: &Proxy, while_idle: bool) -> Transport {
    Transport::builder([proxy.endpoint()])
        .keepalive(INTERVAL, TIMEOUT)
        .keepalive_while_idle(while_idle)
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_idle_connection_a_nat_forgot_is_found_before_the_next_write() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(Duration::from_secs(30), async {
            let cluster = Cluster::start(&bin).await.unwrap();
            let proxy = Proxy::start(cluster.member(0).client_addr()).await.unwrap();

            // With idle keepalive: found and closed with nothing in flight.
            let watched = transport(&proxy, true);
            watched.clone().oneshot(put("1")).await.unwrap();
            assert_eq!(proxy.accepted(), 1);
            proxy.forget_open();
            let found = until(INTERVAL + TIMEOUT + Duration::from_secs(2), || {
                proxy.connections() == 0
            })
            .await;
            assert!(
                found,
                "{label}: the forgotten idle connection was not found"
            );
            let started = Instant::now();
            watched.clone().oneshot(put("2")).await.unwrap();
            assert!(started.elapsed() < Duration::from_secs(1), "{label}");
            assert_eq!(
                proxy.accepted(),
                2,
                "{label}: the write went on a new connection"
            );

            // Without it: the write goes into the dead connection.
            let unwatched = transport(&proxy, false);
            unwatched.clone().oneshot(put("3")).await.unwrap();
            proxy.forget_open();
            tokio::time::sleep(INTERVAL + TIMEOUT + Duration::from_millis(200)).await;
            assert!(
                proxy.connections() >= 1,
                "{label}: nothing PINGed the idle connection"
            );
            let error = unwatched.clone().oneshot(put("4")).await.unwrap_err();
            assert_eq!(error.sent(), Sent::MayHaveBeenApplied, "{label}: {error}");
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}

/// etcd's server (gRPC-Go, `PermitWithoutStream` off) takes a third PING
/// on an idle connection within two hours as abuse and closes the
/// connection with a GOAWAY (`too_many_pings`): idle keepalive against
/// etcd closes idle connections after about three intervals, and the next
/// call connects again, without an error.
#[tokio::test]
async fn etcd_closes_a_connection_pinged_while_idle_and_the_next_call_connects_again() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(Duration::from_secs(30), async {
            let cluster = Cluster::start(&bin).await.unwrap();
            let proxy = Proxy::start(cluster.member(0).client_addr()).await.unwrap();
            let transport = transport(&proxy, true);
            transport.clone().oneshot(put("1")).await.unwrap();
            let closed = until(INTERVAL * 10, || proxy.connections() == 0).await;
            assert!(closed, "{label}: etcd kept a connection PINGed while idle");
            transport.clone().oneshot(put("2")).await.unwrap();
            assert_eq!(proxy.accepted(), 2, "{label}");
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}
