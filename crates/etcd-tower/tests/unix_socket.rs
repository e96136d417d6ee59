//! Unix socket endpoints on every etcd version of the kit: a member that
//! also listens on `unix://localhost:<port>` (a socket file of that name in
//! the working directory, the one form etcd 3.4 and 3.5.1 take) serves KV,
//! a watch and a lease keep-alive through it, reached by its relative and
//! its absolute path; `unixs://` is TLS over the socket (client
//! certificates required, `localhost` the server name unless the TLS
//! settings name another); malformed socket URLs are typed errors before
//! any I/O.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower::watch::WatchOptions;
use etcd_tower::{Client, ErrorKind, PutOptions, Sent, StreamExt, TlsOptions};
use etcd_tower_testkit::{Cluster, TlsFiles};
use support::each_version;

/// Moves the test process to a directory of its own, where etcd creates
/// its `localhost:<port>` socket files and the client finds them (the same
/// for every test of this binary).
fn enter_socket_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("unix-sockets");
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_current_dir(&dir).unwrap();
    dir
}

fn tls_options(tls: &TlsFiles) -> TlsOptions {
    TlsOptions::new()
        .ca_certificate(std::fs::read(tls.ca()).unwrap())
        .identity(
            std::fs::read(tls.client_cert()).unwrap(),
            std::fs::read(tls.client_key()).unwrap(),
        )
}

#[tokio::test]
async fn kv_a_watch_and_a_lease_go_through_a_unix_socket() {
    each_version(60, |bin| async move {
        let label = bin.label();
        let dir = enter_socket_dir();
        let cluster = Cluster::builder(&bin).unix_sockets().start().await.unwrap();
        let sockets = cluster.unix_endpoints();
        assert!(sockets[0].starts_with("unix://localhost:"), "{sockets:?}");
        let client = Client::builder(&sockets).connect().await.unwrap();
        assert_eq!(client.endpoints().unwrap(), sockets, "{label}");

        client.put("u/a", "1").await.unwrap();
        let got = client.get("u/a").await.unwrap();
        assert_eq!(got.kvs()[0].value(), b"1", "{label}");

        let mut watcher = client
            .watch("u/", WatchOptions::new().prefix())
            .await
            .unwrap();
        client.put("u/b", "2").await.unwrap();
        let batch = tokio::time::timeout(Duration::from_secs(10), watcher.next())
            .await
            .expect("an event within 10 s")
            .expect("the watcher is open")
            .expect("no watch error");
        let kv = batch.events()[0].kv.as_ref().unwrap();
        assert_eq!(&kv.key[..], b"u/b", "{label}");

        let lease = client.lease_grant(30).await.unwrap();
        client
            .put_with("u/leased", "3", PutOptions::new().lease(lease.id))
            .await
            .unwrap();
        let (mut renew, mut answers) = client.lease_keep_alive(lease.id).await.unwrap();
        let answer = answers.message().await.unwrap().unwrap();
        assert_eq!((answer.id, answer.ttl), (lease.id, 30), "{label}");
        renew.keep_alive().await.unwrap();
        let again = tokio::time::timeout(Duration::from_secs(10), answers.message())
            .await
            .expect("a renewal within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(again.id, lease.id, "{label}");
        client.lease_revoke(lease.id).await.unwrap();
        assert!(
            client.get("u/leased").await.unwrap().kvs().is_empty(),
            "{label}"
        );

        // The same socket by its absolute path, and the same member over
        // TCP, see what went through the socket.
        let file = sockets[0].trim_start_matches("unix://");
        let absolute = format!("unix://{}", dir.join(file).display());
        assert!(absolute.starts_with("unix:///"), "{absolute}");
        let by_path = Client::connect([absolute.as_str()]).await.unwrap();
        assert_eq!(by_path.get("u/b").await.unwrap().kvs()[0].value(), b"2");
        let tcp = Client::connect(cluster.endpoints()).await.unwrap();
        assert_eq!(tcp.get("u/b").await.unwrap().kvs()[0].value(), b"2");
    })
    .await;
}

#[tokio::test]
async fn unixs_is_tls_over_the_socket() {
    each_version(60, |bin| async move {
        let label = bin.label();
        enter_socket_dir();
        let cluster = Cluster::builder(&bin)
            .tls()
            .unix_sockets()
            .start()
            .await
            .unwrap();
        let tls = cluster.tls().unwrap();
        let sockets = cluster.unix_endpoints();
        assert!(sockets[0].starts_with("unixs://localhost:"), "{sockets:?}");

        // The name checked is the socket file's without its port:
        // `localhost`, which the certificate names.
        let client = Client::builder(&sockets)
            .tls(tls_options(tls))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        client.put("s/a", "1").await.unwrap();
        assert_eq!(client.get("s/a").await.unwrap().kvs()[0].value(), b"1");

        // Another name in the TLS settings is checked instead: refused, as
        // a connection failure that sent nothing.
        let error = Client::builder(&sockets)
            .tls(tls_options(tls).domain_name("elsewhere.test"))
            .no_retry()
            .connect()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Connect, "{label}: {error}");
        assert_eq!(error.sent(), Sent::NotSent, "{label}");

        // A plaintext socket beside TLS settings: refused before any I/O.
        let plain = sockets[0].replacen("unixs://", "unix://", 1);
        let error = Client::builder([plain.as_str()])
            .tls(tls_options(tls))
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::InvalidEndpoint, "{error}");
        assert!(error.to_string().contains("unixs://"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn malformed_unix_urls_are_typed_errors() {
    let long = format!("unix:///tmp/{}", "s".repeat(200));
    for (bad, why) in [
        ("unix://", "the socket path is empty"),
        ("unixs:", "the socket path is empty"),
        ("unix:///tmp/dir/", "names a directory"),
        (long.as_str(), "bytes long"),
    ] {
        let error = Client::builder([bad]).build().unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::InvalidEndpoint, "{bad}: {error}");
        assert_eq!(error.sent(), Sent::NotSent);
        let message = error.message();
        assert!(
            message.starts_with(&format!("endpoint {bad:?}: ")),
            "{error}"
        );
        assert!(message.contains(why), "{error}");
    }

    // A socket nobody listens on: a connection error that sent nothing.
    let missing = format!(
        "unix://{}/etcd-tower-none-{}.sock",
        std::env::temp_dir().display(),
        std::process::id()
    );
    let error = Client::builder([missing.as_str()])
        .no_retry()
        .connect()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Connect, "{error}");
    assert_eq!(error.sent(), Sent::NotSent);
    assert!(error.to_string().contains("etcd-tower-none-"), "{error}");
}
