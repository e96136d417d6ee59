//! TLS settings never lead to plaintext, a connection that never finished
//! its handshake is reported as sending nothing, and a server certificate
//! the client must not trust (another CA, another name, expired) is refused
//! with an error that says which, on every etcd version of the kit (a TLS
//! cluster that requires client certificates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::transport::rustls;
use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, Sent, TlsOptions, Transport};
use etcd_tower_testkit::{binaries, Cluster, TlsFiles};
use tower::ServiceExt;

const LIMIT: Duration = Duration::from_secs(60);

fn options(tls: &TlsFiles) -> TlsOptions {
    TlsOptions::new()
        .ca_certificate(std::fs::read(tls.ca()).unwrap())
        .identity(
            std::fs::read(tls.client_cert()).unwrap(),
            std::fs::read(tls.client_key()).unwrap(),
        )
}

async fn put(transport: &Transport, key: &str) -> Result<pb::PutResponse, EtcdError> {
    let put = pb::PutRequest {
        key: key.to_owned().into(),
        value: "v".into(),
        ..Default::default()
    };
    pb::PutResponse::try_from(transport.clone().oneshot(EtcdRequest::new(put)).await?)
}

/// `https://127.0.0.1:1234` → `127.0.0.1:1234`.
fn without_scheme(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_owned()
}

#[tokio::test]
async fn tls_settings_never_fall_back_to_plaintext() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::builder(&bin).tls().start().await.unwrap();
            let tls = cluster.tls().unwrap();

            // Written without a scheme beside TLS settings: TLS.
            let bare: Vec<String> = cluster
                .endpoints()
                .iter()
                .map(|url| without_scheme(url))
                .collect();
            let transport = Transport::builder(&bare).tls(options(tls)).build().unwrap();
            put(&transport, "bare").await.unwrap_or_else(|e| {
                panic!("{label}: a scheme-less endpoint with TLS settings: {e}")
            });

            // `http://` beside TLS settings: refused before any I/O.
            let plain = format!("http://{}", bare[0]);
            let error = Transport::builder([plain.as_str()])
                .tls(options(tls))
                .build()
                .unwrap_err();
            assert_eq!(
                error.kind(),
                &ErrorKind::InvalidEndpoint,
                "{label}: {error}"
            );
            assert_eq!(error.sent(), Sent::NotSent, "{label}");
            assert!(error.to_string().contains("plaintext"), "{label}: {error}");
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}

#[tokio::test]
async fn a_handshake_that_never_finished_sent_nothing() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::builder(&bin).tls().start().await.unwrap();
            let tls = cluster.tls().unwrap();
            let bare = without_scheme(&cluster.endpoints()[0]);

            // Plaintext HTTP/2 to a TLS listener, and TLS without the
            // client certificate the server demands: five times each, so
            // that a classification that depends on timing shows.
            let plaintext = Transport::builder([format!("http://{bare}")])
                .connect_timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let no_identity = Transport::builder([bare.as_str()])
                .connect_timeout(Duration::from_secs(2))
                .tls(TlsOptions::new().ca_certificate(std::fs::read(tls.ca()).unwrap()))
                .build()
                .unwrap();
            for (what, transport) in [("plaintext", &plaintext), ("no certificate", &no_identity)] {
                for round in 0..5 {
                    let error = put(transport, "k").await.unwrap_err();
                    assert_eq!(
                        (error.kind(), error.sent()),
                        (&ErrorKind::Connect, Sent::NotSent),
                        "{label}, {what}, round {round}: {error}"
                    );
                }
            }
            // Nothing was written.
            let found = cluster.etcdctl(&["get", "k", "--keys-only"]).await.unwrap();
            assert_eq!(found.trim(), "", "{label}");
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}

#[tokio::test]
async fn a_user_named_by_its_certificate_connects_and_works() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(LIMIT, async {
            let mut cluster = Cluster::builder(&bin).tls().start().await.unwrap();
            cluster.add_user("alice", "unused", "alice/").await.unwrap();
            cluster.enable_auth("s3cret").await.unwrap();
            let tls = cluster.tls().unwrap();
            let alice = tls.issue_client_cert("alice").await.unwrap();
            let bare: Vec<String> = cluster
                .endpoints()
                .iter()
                .map(|url| without_scheme(url))
                .collect();
            // Not root, no password: connect() must still succeed (its
            // check needs no permission), and the user's keys work.
            let client = etcd_tower::Client::builder(&bare)
                .tls(
                    TlsOptions::new()
                        .ca_certificate(std::fs::read(tls.ca()).unwrap())
                        .identity(
                            std::fs::read(alice.cert()).unwrap(),
                            std::fs::read(alice.key()).unwrap(),
                        ),
                )
                .connect()
                .await
                .unwrap_or_else(|e| panic!("{label}: connect as alice: {e}"));
            client.put("alice/k", "a").await.unwrap();
            assert_eq!(client.get("alice/k").await.unwrap().kvs()[0].value(), b"a");
            let error = client.get("bob/k").await.unwrap_err();
            assert_eq!(
                error.kind(),
                &ErrorKind::PermissionDenied,
                "{label}: {error}"
            );
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}

#[tokio::test]
async fn a_wrong_ca_a_wrong_name_and_an_expired_certificate_are_each_refused() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::builder(&bin).tls().start().await.unwrap();
            let tls = cluster.tls().unwrap();
            let endpoints = cluster.endpoints();
            let refused = |what: &'static str, options: TlsOptions, says: &'static str| {
                let transport = Transport::builder(&endpoints)
                    .connect_timeout(Duration::from_secs(5))
                    .tls(options)
                    .build()
                    .unwrap();
                let label = label.clone();
                async move {
                    let error = put(&transport, what).await.unwrap_err();
                    assert_eq!(
                        (error.kind(), error.sent()),
                        (&ErrorKind::Connect, Sent::NotSent),
                        "{label}, {what}: {error}"
                    );
                    let text = error.to_string();
                    assert!(
                        text.contains("TLS handshake failed") && text.contains(says),
                        "{label}, {what}: {text}"
                    );
                }
            };

            let unrelated = TlsFiles::generate(&cluster.dir().join("unrelated"))
                .await
                .unwrap();
            let other_ca = options(tls).ca_certificate(std::fs::read(unrelated.ca()).unwrap());
            // Both kit CAs have the same name: rustls finds the issuer by
            // name and then its signature does not verify (BadSignature).
            refused("another CA", other_ca, "invalid peer certificate").await;
            let other_name = options(tls).domain_name("not-this-server.example");
            refused("another name", other_name, "not valid for name").await;
            // Nothing was written, and the right settings still work.
            let found = cluster
                .etcdctl(&["get", "another", "--prefix", "--keys-only"])
                .await
                .unwrap();
            assert_eq!(found.trim(), "", "{label}");
            let good = Transport::builder(&endpoints)
                .tls(options(tls))
                .build()
                .unwrap();
            put(&good, "good").await.unwrap();

            tls.expire_server_cert().await.unwrap();
            refused("expired", options(tls), "expired").await;
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}

/// A verifier that trusts exactly one server certificate (a pin), checking
/// the handshake's signatures with the ring provider.
#[derive(Debug)]
struct Pinned {
    cert: rustls::pki_types::CertificateDer<'static>,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls configuration that trusts only `pinned` and presents the kit's
/// client certificate.
fn pinned_config(pinned: &std::path::Path, tls: &TlsFiles) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Pinned {
        cert: CertificateDer::from_pem_file(pinned).unwrap(),
        provider: provider.clone(),
    };
    let chain = CertificateDer::pem_file_iter(tls.client_cert())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(tls.client_key()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .unwrap();
    std::sync::Arc::new(config)
}

#[tokio::test]
async fn a_users_rustls_config_pins_the_servers_certificate() {
    for bin in binaries() {
        let label = bin.label();
        tokio::time::timeout(LIMIT, async {
            let cluster = Cluster::builder(&bin).tls().start().await.unwrap();
            let tls = cluster.tls().unwrap();
            let pinned = TlsOptions::new().rustls_config(pinned_config(tls.server().cert(), tls));
            let transport = Transport::builder(cluster.endpoints())
                .tls(pinned)
                .build()
                .unwrap();
            put(&transport, "pinned")
                .await
                .unwrap_or_else(|e| panic!("{label}: the pinned certificate: {e}"));

            // Pinned to another server's certificate: refused, nothing sent.
            let other = TlsFiles::generate(&cluster.dir().join("other-server"))
                .await
                .unwrap();
            let wrong = TlsOptions::new().rustls_config(pinned_config(other.server().cert(), tls));
            let transport = Transport::builder(cluster.endpoints())
                .tls(wrong)
                .build()
                .unwrap();
            let error = put(&transport, "wrong-pin").await.unwrap_err();
            assert_eq!(
                (error.kind(), error.sent()),
                (&ErrorKind::Connect, Sent::NotSent),
                "{label}: {error}"
            );
            assert!(error.to_string().contains("pinned"), "{label}: {error}");
        })
        .await
        .unwrap_or_else(|_| panic!("{label}: timed out"));
    }
}

#[tokio::test]
async fn tls_files_are_read_and_their_errors_name_the_file() {
    let bin = binaries().into_iter().next().unwrap();
    let cluster = Cluster::builder(&bin).tls().start().await.unwrap();
    let tls = cluster.tls().unwrap();
    let options = TlsOptions::new()
        .ca_file(tls.ca())
        .unwrap()
        .identity_files(tls.client_cert(), tls.client_key())
        .unwrap();
    let transport = Transport::builder(cluster.endpoints())
        .tls(options)
        .build()
        .unwrap();
    put(&transport, "from-files").await.unwrap();

    let missing = cluster.dir().join("no-such-ca.pem");
    let not_pem = cluster.dir().join("not-pem.txt");
    std::fs::write(&not_pem, "this is not a certificate").unwrap();
    for error in [
        TlsOptions::new().ca_file(&missing).unwrap_err(),
        TlsOptions::new().ca_file(&not_pem).unwrap_err(),
        TlsOptions::new()
            .identity_files(&not_pem, tls.client_key())
            .unwrap_err(),
        TlsOptions::new()
            .identity_files(tls.client_cert(), &not_pem)
            .unwrap_err(),
    ] {
        assert_eq!(error.kind(), &ErrorKind::InvalidTls, "{error}");
        assert_eq!(error.sent(), Sent::NotSent);
        let named = [&missing, &not_pem]
            .iter()
            .any(|path| error.to_string().contains(&path.display().to_string()));
        assert!(named, "the error names the file: {error}");
    }
}
