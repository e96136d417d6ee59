//! A put whose connection is cut after it was sent is not retried, and is
//! reported as "may have been applied".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower_core::{ErrorKind, Rpc, Sent, Transport};
use etcd_tower_retry::RetryLayer;
use etcd_tower_testkit::{binaries, Cluster, Proxy};
use support::{bounded, get, put, Counting};
use tower::ServiceBuilder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_cut_after_sending_is_surfaced_not_retried() {
    for bin in binaries() {
        bounded(60, async {
            let label = bin.label();
            let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
            let leader = cluster.leader_index().await.unwrap();
            // Behind the proxy: a follower, so the cluster stays healthy.
            let member = cluster.member((leader + 1) % 3);
            let proxy = Proxy::start(member.client_addr()).await.unwrap();

            // Only the proxy as endpoint, no keepalive: the cut is the only
            // thing that can end the call.
            let transport = Transport::builder([proxy.endpoint()])
                .no_keepalive()
                .build()
                .unwrap();
            let (counting, attempts) = Counting::new(transport);
            let client = ServiceBuilder::new()
                .layer(RetryLayer::new())
                .service(counting);
            // Connect first, so that the put goes out on an open connection.
            get(&client, "cut/key").await.unwrap();
            assert_eq!(proxy.connections(), 1, "{label}");

            // Freeze the member so that the put is sent (the proxy forwards
            // it into the member's socket) but never answered.
            member.stop().unwrap();
            let sending = tokio::spawn({
                let client = client.clone();
                async move { put(&client, "cut/key", "sent-once").await }
            });
            // Give the request time to cross the proxy (loopback: well
            // under a millisecond), then cut the connection.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!sending.is_finished(), "{label}: the put was answered");
            proxy.cut();
            let error = tokio::time::timeout(Duration::from_secs(10), sending)
                .await
                .expect("the cut did not end the put")
                .unwrap()
                .unwrap_err();
            member.cont().unwrap();

            eprintln!("{label}: {error}");
            assert_eq!(error.sent(), Sent::MayHaveBeenApplied, "{label}: {error}");
            assert!(!error.is_not_applied(), "{label}: {error}");
            assert_eq!(error.kind(), &ErrorKind::ConnectionLost, "{label}: {error}");
            assert!(
                error.to_string().contains("may have been applied"),
                "{label}: {error}"
            );
            assert_eq!(attempts.of(Rpc::Put), 1, "{label}: the put was retried");

            // Whatever the member does with the bytes it had, the put is
            // never sent again: nothing more reaches the transport, and the
            // key has at most this one version.
            member.wait_healthy(Duration::from_secs(10)).await.unwrap();
            let range = get(&client, "cut/key").await.unwrap();
            assert!(
                range.kvs.iter().all(|kv| kv.version == 1),
                "{label}: {range:?}"
            );
            assert_eq!(attempts.of(Rpc::Put), 1, "{label}: the put was retried");
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_could_not_be_sent_is_retried_and_applied_once() {
    for bin in binaries() {
        bounded(60, async {
            let label = bin.label();
            let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
            let target = cluster.member(0).client_addr();

            // The only endpoint refuses connections (nothing listens on
            // it) until the second attempt of the put, which opens it as a
            // forwarder to a member.
            let port = etcd_tower_testkit::free_port().unwrap();
            let transport = Transport::builder([format!("127.0.0.1:{port}")])
                .build()
                .unwrap();
            let (counting, attempts) = Counting::new(transport);
            let counting = counting.with_hook(move |rpc, attempt| {
                if rpc == Rpc::Put && attempt == 2 {
                    forward(port, target);
                }
            });
            let client = ServiceBuilder::new()
                .layer(RetryLayer::new())
                .service(counting);

            let response = put(&client, "unsent/key", "once").await.unwrap();
            assert!(response.header.is_some(), "{label}");
            assert_eq!(attempts.of(Rpc::Put), 2, "{label}");
            let range = get(&client, "unsent/key").await.unwrap();
            assert_eq!(range.kvs.len(), 1, "{label}");
            assert_eq!(range.kvs[0].value, "once", "{label}");
            assert_eq!(range.kvs[0].version, 1, "{label}: applied more than once");
        })
        .await;
    }
}

/// Listens on `port` (now, before returning) and forwards every connection
/// to `target`, for the rest of the test.
fn forward(port: u16, target: std::net::SocketAddr) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                    // Ends when either side closes; errors just end it.
                    drop(tokio::io::copy_bidirectional(&mut client, &mut server).await);
                }
            });
        }
    });
}
