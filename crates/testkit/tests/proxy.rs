//! The fault-injecting TCP proxy, in front of real etcd servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use etcd_tower_testkit::{binaries, Cluster, Proxy};
use support::{bounded, health_once, read_response, send_health_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Waits until `proxy.connections()` is `n`.
async fn wait_connections(proxy: &Proxy, n: usize) {
    for _ in 0..200 {
        if proxy.connections() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "proxy has {} connections, expected {n}",
        proxy.connections()
    );
}

#[tokio::test]
async fn forwards_etcdctl_traffic() {
    bounded(60, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::start(&bin).await.unwrap();
            let proxy = Proxy::start(cluster.member(0).client_addr()).await.unwrap();
            assert_eq!(proxy.endpoint(), format!("http://{}", proxy.addr()));
            let via_proxy = format!("--endpoints={}", proxy.endpoint());
            cluster
                .etcdctl(&[&via_proxy, "put", "k", "through-the-proxy"])
                .await
                .unwrap();
            let out = cluster
                .etcdctl(&[&via_proxy, "get", "k", "--print-value-only"])
                .await
                .unwrap();
            assert_eq!(out.trim(), "through-the-proxy", "{label}");
            wait_connections(&proxy, 0).await;
        }
    })
    .await;
}

#[tokio::test]
async fn cut_resets_live_connections_and_keeps_accepting() {
    bounded(60, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::start(&bin).await.unwrap();
            let proxy = Proxy::start(cluster.member(0).client_addr()).await.unwrap();

            let mut live = TcpStream::connect(proxy.addr()).await.unwrap();
            send_health_request(&mut live).await.unwrap();
            let body = read_response(&mut live).await.unwrap().unwrap();
            assert!(body.contains(r#""health":"true""#), "{label}: {body}");
            wait_connections(&proxy, 1).await;

            proxy.cut();
            let mut buf = [0u8; 64];
            let after_cut = tokio::time::timeout(Duration::from_secs(5), live.read(&mut buf))
                .await
                .expect("the cut connection stayed open");
            match after_cut {
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{label}"),
                Ok(n) => panic!("{label}: read {n} bytes instead of a reset"),
            }
            wait_connections(&proxy, 0).await;

            // New connections still go through.
            let body = health_once(proxy.addr()).await.unwrap().unwrap();
            assert!(body.contains(r#""health":"true""#), "{label}: {body}");
        }
    })
    .await;
}

#[tokio::test]
async fn blackhole_stalls_without_closing_and_heals() {
    bounded(60, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::start(&bin).await.unwrap();
            let proxy = Proxy::start(cluster.member(0).client_addr()).await.unwrap();

            let mut live = TcpStream::connect(proxy.addr()).await.unwrap();
            send_health_request(&mut live).await.unwrap();
            read_response(&mut live).await.unwrap().unwrap();

            proxy.blackhole(true);
            // An open connection: the request goes nowhere, nothing comes back, nothing closes.
            send_health_request(&mut live).await.unwrap();
            let stalled =
                tokio::time::timeout(Duration::from_millis(700), read_response(&mut live)).await;
            assert!(
                stalled.is_err(),
                "{label}: got {stalled:?} through a blackhole"
            );
            // etcdctl through the proxy times out too.
            let via_proxy = format!("--endpoints={}", proxy.endpoint());
            let get = cluster
                .etcdctl(&[&via_proxy, "--command-timeout=1s", "get", "k"])
                .await;
            assert!(get.is_err(), "{label}: {get:?}");
            assert!(proxy.connections() >= 1, "{label}");

            proxy.blackhole(false);
            // The held-back request is answered on the same connection.
            let body = tokio::time::timeout(Duration::from_secs(5), read_response(&mut live))
                .await
                .expect("no answer after the blackhole was lifted")
                .unwrap()
                .unwrap();
            assert!(body.contains(r#""health":"true""#), "{label}: {body}");
            cluster
                .etcdctl(&[&via_proxy, "put", "k", "healed"])
                .await
                .unwrap();
        }
    })
    .await;
}

/// A tiny target that answers every connection with `name` and closes.
async fn named_server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(name.as_bytes()).await.unwrap();
        }
    });
    addr
}

async fn read_all(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn reject_new_and_retarget() {
    bounded(30, async {
        let a = named_server("a").await;
        let b = named_server("b").await;
        let proxy = Proxy::start(a).await.unwrap();
        assert_eq!(read_all(proxy.addr()).await.unwrap(), "a");

        proxy.reject_new(true);
        let rejected = read_all(proxy.addr()).await;
        assert!(
            matches!(&rejected, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{rejected:?}"
        );
        proxy.reject_new(false);

        proxy.retarget(b);
        assert_eq!(proxy.target(), b);
        assert_eq!(read_all(proxy.addr()).await.unwrap(), "b");
    })
    .await;
}

#[tokio::test]
async fn dropping_the_proxy_closes_it() {
    bounded(30, async {
        let proxy = Proxy::start(named_server("a").await).await.unwrap();
        let addr = proxy.addr();
        drop(proxy);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    })
    .await;
}
