//! DNS SRV discovery (feature `dns-srv`) against a real DNS server, the
//! test kit's own (`DnsServer`, on a free 127.0.0.1 port), on every etcd
//! version of the kit: a 3-member cluster found through
//! `_etcd-client._tcp` records serves a client; `_etcd-client-ssl-<name>`
//! records lead to a TLS cluster; both kinds are kept, TLS first; a zone
//! without records and a name server that never answers are typed errors.
#![cfg(feature = "dns-srv")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etcd_tower::endpoints::{discover_srv, DiscoveryOptions};
use etcd_tower::{Client, ErrorKind, Sent, TlsOptions};
use etcd_tower_testkit::{Cluster, DnsServer};
use support::each_version;

const ZONE: &str = "etcd.test";

/// The port of a kit URL (`http://127.0.0.1:41234` → 41234).
fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_cluster_found_through_srv_records_serves_a_client() {
    each_version(90, |bin| async move {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let mut dns = DnsServer::builder(ZONE);
        for url in cluster.endpoints() {
            // `localhost.`: the transport resolves the targets with the
            // system's resolver, which does not know the test zone.
            dns = dns.srv("_etcd-client._tcp", "localhost.", port(&url));
        }
        let dns = dns.a("m0", Ipv4Addr::LOCALHOST).start().await.unwrap();

        let options = DiscoveryOptions::new().name_server(dns.address());
        let client = Client::builder_srv(ZONE, options)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"))
            .connect()
            .await
            .unwrap();
        let mut found = client.endpoints().unwrap();
        found.sort();
        let mut wanted: Vec<String> = cluster
            .endpoints()
            .iter()
            .map(|url| format!("http://localhost:{}/", port(url)))
            .collect();
        wanted.sort();
        assert_eq!(found, wanted, "{label}");

        for i in 0..6 {
            client.put(format!("d/{i}"), "v").await.unwrap();
        }
        let got = client
            .get_with("d/", etcd_tower::GetOptions::new().prefix())
            .await
            .unwrap();
        assert_eq!(got.count(), 6, "{label}");
    })
    .await;
}

#[tokio::test]
async fn ssl_records_with_a_service_name_lead_to_a_tls_cluster() {
    each_version(60, |bin| async move {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).tls().start().await.unwrap();
        let tls = cluster.tls().unwrap();
        let dns = DnsServer::builder(ZONE)
            .srv(
                "_etcd-client-ssl-prod._tcp",
                "localhost.",
                port(&cluster.endpoints()[0]),
            )
            // Another cluster's records under the same domain: not ours.
            .srv("_etcd-client-ssl._tcp", "localhost.", 1)
            .start()
            .await
            .unwrap();
        let options = DiscoveryOptions::new()
            .name_server(dns.address())
            .service_name("prod")
            .tls_only(true);
        let endpoints = discover_srv(ZONE, options.clone()).await.unwrap();
        assert_eq!(
            endpoints,
            [format!(
                "https://localhost:{}",
                port(&cluster.endpoints()[0])
            )],
            "{label}"
        );
        let tls = TlsOptions::new()
            .ca_certificate(std::fs::read(tls.ca()).unwrap())
            .identity(
                std::fs::read(tls.client_cert()).unwrap(),
                std::fs::read(tls.client_key()).unwrap(),
            );
        let client = Client::builder_srv(ZONE, options)
            .await
            .unwrap()
            .tls(tls)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        client.put("tls", "v").await.unwrap();
        assert_eq!(client.get("tls").await.unwrap().kvs()[0].value(), b"v");
    })
    .await;
}

#[tokio::test]
async fn both_kinds_of_records_are_kept_tls_first_by_priority() {
    let dns = DnsServer::builder(ZONE)
        .srv_weighted("_etcd-client._tcp", 0, 0, "plain.etcd.test.", 2379)
        .srv_weighted("_etcd-client-ssl._tcp", 10, 0, "infra2", 2379)
        .srv_weighted("_etcd-client-ssl._tcp", 0, 5, "infra1", 2379)
        .srv_weighted("_etcd-client-ssl._tcp", 0, 50, "infra0", 2379)
        .start()
        .await
        .unwrap();
    let options = DiscoveryOptions::new().name_server(dns.address());
    let endpoints = discover_srv(ZONE, options.clone()).await.unwrap();
    assert_eq!(
        endpoints,
        [
            "https://infra0.etcd.test:2379",
            "https://infra1.etcd.test:2379",
            "https://infra2.etcd.test:2379",
            "http://plain.etcd.test:2379",
        ]
    );
    let secure = discover_srv(ZONE, options.tls_only(true)).await.unwrap();
    assert_eq!(secure.len(), 3, "{secure:?}");
    assert!(
        secure.iter().all(|e| e.starts_with("https://")),
        "{secure:?}"
    );
}

#[tokio::test]
async fn a_zone_without_records_gives_no_endpoints() {
    let dns = DnsServer::builder(ZONE)
        .a("m0", Ipv4Addr::LOCALHOST)
        .start()
        .await
        .unwrap();
    let options = DiscoveryOptions::new().name_server(dns.address());
    let error = Client::builder_srv(ZONE, options.clone())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::NoEndpoints, "{error}");
    assert_eq!(error.sent(), Sent::NotSent);
    let text = error.to_string();
    assert!(
        text.contains("_etcd-client-ssl._tcp.etcd.test.")
            && text.contains("_etcd-client._tcp.etcd.test."),
        "{text}"
    );

    // Another domain, outside the zone the server has: refused, no records.
    let error = discover_srv("elsewhere.test", options.service_name("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::NoEndpoints | ErrorKind::Connect),
        "{error}"
    );
}

#[tokio::test]
async fn a_name_server_that_never_answers_is_a_connection_error() {
    // A bound UDP socket nobody reads from, and no TCP listener.
    let silent = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let options = DiscoveryOptions::new()
        .name_server(silent.local_addr().unwrap())
        .timeout(Duration::from_millis(300));
    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(30), discover_srv(ZONE, options))
        .await
        .expect("the lookups end within 30 s")
        .unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Connect, "{error}");
    assert_eq!(error.sent(), Sent::NotSent);
    assert!(error.to_string().contains("DNS lookup"), "{error}");
    eprintln!("silent name server: failed after {:?}", started.elapsed());
}
