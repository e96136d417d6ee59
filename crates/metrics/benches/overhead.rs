//! What the metrics layer adds to a call, without criterion.
//!
//! Calls a trivial in-process service (a `tower::service_fn` answering a
//! Put at once) N times directly and through `MetricsLayer`: with no
//! recorder installed, with a no-op recorder, and with a real Prometheus
//! recorder; then the failure path (the inner service answers with an
//! error). Prints ns per call and the layer's added cost as a share of a
//! 20 µs etcd round trip.
//!
//! `cargo bench -p etcd-tower-metrics --bench overhead [-- N]`
//! (N in millions of calls, default 5). Under `cargo test` it runs 10,000
//! calls per configuration, as a smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb::{PutRequest, PutResponse};
use etcd_tower_core::{Code, EtcdError, EtcdRequest, EtcdResponse, ResponseBody};
use etcd_tower_metrics::MetricsLayer;
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::{service_fn, Layer, Service};

/// A real etcd call on loopback takes about this long.
const RPC_NS: f64 = 20_000.0;
/// Runs per configuration; the fastest counts (the machine is shared).
const ROUNDS: usize = 5;

fn request() -> EtcdRequest {
    EtcdRequest::new(PutRequest {
        key: Bytes::from_static(b"bench/key"),
        value: Bytes::from_static(b"value"),
        ..Default::default()
    })
}

fn ok_service(
) -> impl Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError, Future: Unpin> + Clone {
    service_fn(|_: EtcdRequest| {
        std::future::ready(Ok::<_, EtcdError>(EtcdResponse::new(ResponseBody::Put(
            PutResponse::default(),
        ))))
    })
}

fn failing_service(
) -> impl Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError, Future: Unpin> + Clone {
    service_fn(|_: EtcdRequest| {
        std::future::ready(Err::<EtcdResponse, _>(EtcdError::from_status(
            tonic::Status::new(Code::Unavailable, "etcdserver: no leader"),
        )))
    })
}

/// Drives `n` calls through `service`, each ready at once; returns ns/call.
fn drive<S>(service: &mut S, n: u64) -> f64
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let start = Instant::now();
    for _ in 0..n {
        assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let future = pin!(service.call(request()));
        match future.poll(&mut cx) {
            Poll::Ready(result) => {
                black_box(result.is_ok());
                drop(black_box(result));
            }
            Poll::Pending => panic!("the bench service is always ready"),
        }
    }
    elapsed_ns(start.elapsed(), n)
}

fn elapsed_ns(elapsed: Duration, n: u64) -> f64 {
    elapsed.as_nanos() as f64 / n as f64
}

/// The fastest of `ROUNDS` runs of `n` calls through a fresh service.
fn best<S>(n: u64, mut make: impl FnMut() -> S) -> f64
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    (0..ROUNDS)
        .map(|_| drive(&mut make(), n))
        .fold(f64::INFINITY, f64::min)
}

fn report(label: &str, ns: f64, baseline: f64) {
    let added = ns - baseline;
    println!(
        "{label:<44} {ns:>8.1} ns/op   added {added:>6.1} ns = {:.3}% of a 20 µs RPC",
        added / RPC_NS * 100.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, as a quick smoke test.
    let n = if args.iter().any(|a| a == "--bench") {
        let millions: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5);
        millions * 1_000_000
    } else {
        10_000
    };
    if n == 10_000 {
        println!("smoke run (cargo test, debug build): the numbers mean nothing");
    }
    let failures = n / 10;
    println!("{n} calls per run, best of {ROUNDS} runs\n");

    let bare = best(n, ok_service);
    println!("{:<44} {bare:>8.1} ns/op", "inner service alone");

    // No recorder installed at all.
    let layered = best(n, || MetricsLayer::new().layer(ok_service()));
    report("MetricsLayer, no recorder", layered, bare);
    let bare_err = best(failures, failing_service);
    let layered_err = best(failures, || MetricsLayer::new().layer(failing_service()));
    report(
        "MetricsLayer, no recorder, failing calls",
        layered_err,
        bare_err,
    );

    // A real recorder, installed for this thread only.
    let prometheus = PrometheusBuilder::new().build_recorder();
    {
        let _guard = metrics::set_default_local_recorder(&prometheus);
        let real = best(n, || MetricsLayer::new().layer(ok_service()));
        report("MetricsLayer, Prometheus recorder", real, bare);
        let real_err = best(failures, || MetricsLayer::new().layer(failing_service()));
        report(
            "MetricsLayer, Prometheus recorder, failing",
            real_err,
            bare_err,
        );
    }

    // A no-op recorder installed globally (last: it cannot be removed).
    metrics::set_global_recorder(metrics::NoopRecorder).expect("no global recorder yet");
    let noop = best(n, || MetricsLayer::new().layer(ok_service()));
    report("MetricsLayer, global no-op recorder", noop, bare);
}
