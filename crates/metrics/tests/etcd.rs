//! The metrics layer over the real transport and real etcd (3.5 and 3.4):
//! the same client code under `metrics-util`'s `DebuggingRecorder` and
//! under the Prometheus recorder, with the exact counts of a known workload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use etcd_tower_testkit::{binaries, Cluster};
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use support::{bounded, workload, Seen};

/// `name{labels}` (labels sorted, `k=v` comma-separated) to value.
fn debug_snapshot(recorder: &DebuggingRecorder) -> BTreeMap<String, DebugValue> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

/// The counts the workload must produce, as `name{sorted labels}` and
/// counter value.
fn expected_counters(seen: &Seen) -> Vec<(String, u64)> {
    let kv = |rpc: &str| format!("rpc={rpc},service=etcdserverpb.KV");
    let watch = "rpc=Watch,service=etcdserverpb.Watch";
    let lease = "rpc=LeaseRevoke,service=etcdserverpb.Lease";
    vec![
        (
            format!("etcd_client_requests_started_total{{{}}}", kv("Put")),
            5,
        ),
        (
            format!("etcd_client_requests_started_total{{{}}}", kv("Range")),
            4,
        ),
        (format!("etcd_client_requests_started_total{{{watch}}}"), 1),
        (format!("etcd_client_requests_started_total{{{lease}}}"), 1),
        (
            format!(
                "etcd_client_requests_total{{code=OK,kind=None,{}}}",
                kv("Put")
            ),
            5,
        ),
        (
            format!(
                "etcd_client_requests_total{{code=OK,kind=None,{}}}",
                kv("Range")
            ),
            3,
        ),
        (
            format!(
                "etcd_client_requests_total{{code=InvalidArgument,kind=EmptyKey,{}}}",
                kv("Range")
            ),
            1,
        ),
        (
            format!("etcd_client_requests_total{{code=NotFound,kind=LeaseNotFound,{lease}}}"),
            1,
        ),
        (
            format!("etcd_client_requests_total{{code=OK,kind=None,{watch}}}"),
            1,
        ),
        (
            format!("etcd_client_stream_messages_sent_total{{{watch}}}"),
            1,
        ),
        (
            format!("etcd_client_stream_messages_received_total{{{watch}}}"),
            seen.watch_messages,
        ),
        ("etcd_client_watch_events_received_total{}".to_owned(), 4),
        (
            format!("etcd_client_streams_closed_total{{code=Canceled,kind=Canceled,{watch}}}"),
            1,
        ),
    ]
}

#[tokio::test]
async fn a_known_workload_is_counted_exactly_under_any_recorder() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::start(&bin).await.unwrap();
            let endpoints = cluster.endpoints();

            // 1. metrics-util's DebuggingRecorder, for this thread only.
            let recorder = DebuggingRecorder::new();
            let seen = {
                let _guard = metrics::set_default_local_recorder(&recorder);
                workload(&endpoints, "debug/").await
            };
            assert!(seen.watch_messages >= 2, "{label}: {seen:?}");
            eprintln!("{label}: workload done, {seen:?}");
            let all = debug_snapshot(&recorder);
            let counters: BTreeMap<&String, u64> = all
                .iter()
                .filter_map(|(k, v)| match v {
                    DebugValue::Counter(n) if *n > 0 => Some((k, *n)),
                    _ => None,
                })
                .collect();
            let expected = expected_counters(&seen);
            assert_eq!(
                counters,
                expected.iter().map(|(k, v)| (k, *v)).collect(),
                "{label}"
            );
            // One latency sample per call, of a plausible size.
            for (rpc, calls) in [("Put", 5), ("Range", 4)] {
                let key = format!(
                    "etcd_client_request_duration_seconds{{rpc={rpc},service=etcdserverpb.KV}}"
                );
                let DebugValue::Histogram(samples) = &all[&key] else {
                    panic!("{label}: {key} is not a histogram")
                };
                assert_eq!(samples.len(), calls, "{label}: {key}");
                assert!(samples.iter().all(|s| s.0 > 0.0 && s.0 < 10.0), "{label}: {samples:?}");
            }
            // Every gauge is back to zero: nothing in flight, no stream open.
            for (key, value) in &all {
                if let DebugValue::Gauge(g) = value {
                    assert_eq!(g.0, 0.0, "{label}: {key}");
                }
            }

            // 2. The Prometheus recorder, same client code.
            let prometheus = PrometheusBuilder::new().build_recorder();
            let handle = prometheus.handle();
            let seen = {
                let _guard = metrics::set_default_local_recorder(&prometheus);
                workload(&endpoints, "prom/").await
            };
            let text = handle.render();
            for line in [
                r#"etcd_client_requests_total{service="etcdserverpb.KV",rpc="Put",code="OK",kind="None"} 5"#,
                r#"etcd_client_requests_total{service="etcdserverpb.KV",rpc="Range",code="OK",kind="None"} 3"#,
                r#"etcd_client_requests_total{service="etcdserverpb.KV",rpc="Range",code="InvalidArgument",kind="EmptyKey"} 1"#,
                r#"etcd_client_requests_total{service="etcdserverpb.Lease",rpc="LeaseRevoke",code="NotFound",kind="LeaseNotFound"} 1"#,
                r#"etcd_client_watch_events_received_total 4"#,
                r#"etcd_client_stream_messages_sent_total{service="etcdserverpb.Watch",rpc="Watch"} 1"#,
                r#"etcd_client_request_duration_seconds_count{service="etcdserverpb.KV",rpc="Put"} 5"#,
                "# TYPE etcd_client_requests_total counter",
            ] {
                assert!(text.lines().any(|l| l == line), "{label}: missing `{line}` in\n{text}");
            }
            let received = format!(
                r#"etcd_client_stream_messages_received_total{{service="etcdserverpb.Watch",rpc="Watch"}} {}"#,
                seen.watch_messages
            );
            assert!(text.lines().any(|l| l == received), "{label}: missing `{received}` in\n{text}");
        }
    })
    .await;
}
