//! A call's metadata (extra gRPC headers) reaches the server as sent, is
//! accepted by every etcd version, and each call leaves a `tracing` span
//! naming its RPC, endpoint and attempt, never its token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::{AuthToken, EtcdRequest, Metadata, Transport};
use etcd_tower_retry::RetryLayer;
use etcd_tower_testkit::{binaries, Answer, Cluster, MisbehavingServer};
use prost::Message;
use tower::{Layer, ServiceExt};

const RANGE: &str = "/etcdserverpb.KV/Range";

fn range_with(metadata: &Metadata) -> EtcdRequest {
    let mut request = EtcdRequest::new(pb::RangeRequest {
        key: "k".into(),
        ..Default::default()
    });
    request.meta.metadata = metadata.clone();
    request
}

fn good_range() -> Bytes {
    pb::RangeResponse::default().encode_to_vec().into()
}

fn tenant() -> Metadata {
    let mut metadata = Metadata::new();
    metadata.insert("x-tenant", "blue").unwrap();
    metadata
        .insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .unwrap();
    metadata.insert("x-tenant", "green").unwrap();
    metadata
}

#[tokio::test]
async fn metadata_reaches_the_server_after_the_clients_own_headers() {
    let server = MisbehavingServer::start().await.unwrap();
    server.answer(RANGE, Answer::Messages(vec![good_range()]));
    let transport = Transport::builder([server.endpoint()]).build().unwrap();
    let mut request = range_with(&tenant());
    request.meta.token = Some(AuthToken::new("the-token").unwrap());
    transport.oneshot(request).await.unwrap();

    let received = server.received();
    let headers = &received[0].headers;
    let tenants: Vec<_> = headers.get_all("x-tenant").iter().collect();
    assert_eq!(tenants, ["blue", "green"]);
    assert_eq!(
        headers["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers.get_all("token").iter().count(), 1);
}

#[tokio::test]
async fn every_etcd_version_accepts_calls_with_metadata() {
    for bin in binaries() {
        let cluster = Cluster::start(&bin).await.unwrap();
        let transport = Transport::connect_lazy(cluster.endpoints()).unwrap();
        let mut put = EtcdRequest::new(pb::PutRequest {
            key: "k".into(),
            value: "v".into(),
            ..Default::default()
        });
        put.meta.metadata = tenant();
        tokio::time::timeout(Duration::from_secs(10), transport.clone().oneshot(put))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.label()));
        let answer = transport.oneshot(range_with(&tenant())).await.unwrap();
        let answer = pb::RangeResponse::try_from(answer).unwrap();
        assert_eq!(answer.kvs[0].value, "v", "{}", bin.label());
    }
}

/// A `Write` the log lines go to.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_call_has_a_span_with_its_rpc_endpoint_and_attempt_and_no_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = MisbehavingServer::start().await.unwrap();
            // The first attempt is refused as unavailable, the second
            // answered.
            server.answer_once(
                RANGE,
                Answer::Status {
                    code: 14,
                    message: "etcdserver: leader changed".into(),
                },
            );
            server.answer(RANGE, Answer::Messages(vec![good_range()]));
            let transport = Transport::builder([server.endpoint()]).build().unwrap();
            let stack = RetryLayer::new().layer(transport);
            let mut request = range_with(&Metadata::new());
            request.meta.token = Some(AuthToken::new("secret-token-value").unwrap());
            stack.oneshot(request).await.unwrap();
        });
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("etcd_call{rpc=Range endpoint=http://127.0.0.1:"),
        "{logs}"
    );
    assert!(logs.contains("etcd_retry{attempt=2}"), "{logs}");
    assert!(!logs.contains("secret-token-value"), "{logs}");
}
