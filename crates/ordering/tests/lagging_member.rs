//! An endpoint that answers serializable reads from behind the cluster:
//! without the layer the client sees time go backwards; with it, the stale
//! answer is sent again elsewhere (`OnViolation::Retry`) or is a typed
//! error (`OnViolation::Error`).
//!
//! # How the endpoint lags, deterministically
//!
//! A member that is behind catches up within milliseconds once it can
//! talk to the leader, and one that cannot (frozen with SIGSTOP) cannot
//! answer either; the kit cannot cut one member's peer traffic alone. So
//! the lagging endpoint is etcd's own gRPC proxy (`etcd grpc-proxy`, the
//! kit's `GrpcProxy`), which answers a serializable Range it has answered
//! before from its cache, and drops a cached answer only when a write
//! *through the proxy* touches the key. The test reads the key through
//! the proxy once (the answer is cached at revision R), then writes the
//! key through the members directly: from then on the proxy answers that
//! read at revision R, with the old value, for as long as the test runs.
//! That is a real deployment's stale read (clients behind a gRPC proxy
//! that others write around), and it is exactly what the layer exists for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{PutRequest, RangeRequest, RangeResponse};
use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse, ResponseBody, Transport};
use etcd_tower_ordering::{OnViolation, OrderingLayer, StaleRead};
use etcd_tower_testkit::{binaries, Cluster, EtcdBinary, GrpcProxy};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

const KEY: &str = "lagging/key";
/// Writes after the proxy cached its answer.
const WRITES: usize = 5;
/// Reads through the retrying stack.
const READS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_reads_never_go_back_in_revision() {
    for bin in binaries() {
        let started = Instant::now();
        bounded(40, lagging_endpoint(&bin)).await;
        eprintln!("{}: {:?}", bin.label(), started.elapsed());
    }
}

async fn lagging_endpoint(bin: &EtcdBinary) {
    let label = bin.label();
    let cluster = Cluster::builder(bin).members(3).start().await.unwrap();
    let proxy = GrpcProxy::start(&cluster).await.unwrap();
    let members = Transport::builder(cluster.endpoints()).build().unwrap();
    let lagging = Transport::builder([proxy.endpoint()]).build().unwrap();

    // The proxy caches its answer to the serializable read.
    put(members.clone(), "v0").await.unwrap();
    let cached = revision(&get(lagging.clone()).await.unwrap());

    // The client writes through the members: the layer learns how far the
    // cluster has come from the answers' headers.
    let layer = OrderingLayer::new();
    let writer = layer.layer(members.clone());
    for i in 1..=WRITES {
        put(writer.clone(), &format!("v{i}")).await.unwrap();
    }
    let highest = layer.highest_revision();
    assert!(
        highest >= cached + WRITES as i64,
        "{label}: highest {highest}, cached at {cached}"
    );

    // Control, without the layer: the proxy's answer is stale, an older
    // revision and the old value.
    let control = get(lagging.clone()).await.unwrap();
    assert_eq!(
        revision(&control),
        cached,
        "{label}: the read was not stale"
    );
    assert_eq!(value(&control), "v0", "{label}");

    // OnViolation::Error: the stale answer is a typed error.
    let strict = layer
        .clone()
        .on_violation(OnViolation::Error)
        .layer(lagging.clone());
    let error = get(strict).await.unwrap_err();
    let stale = StaleRead::of(&error).unwrap_or_else(|| panic!("{label}: {error}"));
    assert_eq!(
        (stale.revision(), stale.highest_seen(), stale.answers()),
        (cached, highest, 1),
        "{label}: {error}"
    );
    assert!(error.is_not_applied(), "{label}: {error}");

    // OnViolation::Retry (the default), over the proxy and the members:
    // round-robin sends some reads to the proxy first; its stale answers
    // are counted under the layer, refused, and sent again to a member the
    // read has not tried.
    let mut endpoints = vec![proxy.endpoint()];
    endpoints.extend(cluster.endpoints());
    let mixed = Transport::builder(&endpoints).build().unwrap();
    let stale_answers = Arc::new(AtomicUsize::new(0));
    let counted = ServiceBuilder::new()
        .map_response({
            let stale_answers = Arc::clone(&stale_answers);
            move |response: EtcdResponse| {
                if matches!(&response.body, ResponseBody::Range(r) if r.header.as_ref().is_some_and(|h| h.revision < highest))
                {
                    stale_answers.fetch_add(1, AtomicOrdering::Relaxed);
                }
                response
            }
        })
        .service(mixed);
    let retrying = layer.layer(counted);
    for read in 0..READS {
        let range = get(retrying.clone()).await.unwrap();
        assert!(
            revision(&range) >= highest,
            "{label}: read {read} at {} < {highest}",
            revision(&range)
        );
        assert_eq!(value(&range), format!("v{WRITES}"), "{label}: read {read}");
    }
    // One read in `endpoints.len()` at least started at the proxy.
    let met = stale_answers.load(AtomicOrdering::Relaxed);
    assert!(
        met >= READS / endpoints.len(),
        "{label}: only {met} stale answers were met"
    );
    eprintln!("{label}: {met} stale answers refused and sent again, of {READS} reads");
}

fn get_request() -> EtcdRequest {
    EtcdRequest::new(RangeRequest {
        key: KEY.into(),
        serializable: true,
        ..Default::default()
    })
}

async fn get<S>(client: S) -> Result<RangeResponse, EtcdError>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    RangeResponse::try_from(client.oneshot(get_request()).await?)
}

async fn put<S>(client: S, value: &str) -> Result<(), EtcdError>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    let put = PutRequest {
        key: KEY.into(),
        value: value.to_owned().into(),
        ..Default::default()
    };
    client.oneshot(EtcdRequest::new(put)).await.map(drop)
}

fn revision(range: &RangeResponse) -> i64 {
    range.header.as_ref().map_or(0, |h| h.revision)
}

fn value(range: &RangeResponse) -> String {
    range
        .kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .unwrap_or_default()
}

/// Fails the test if `test` takes longer than `secs` seconds.
async fn bounded<T>(secs: u64, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"))
}
