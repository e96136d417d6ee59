//! Exports etcd client metrics with `metrics-exporter-prometheus`.
//!
//! Installs the Prometheus recorder, runs a few calls and a watch against a
//! real etcd through `Transport` + `MetricsLayer`, and prints the text a
//! Prometheus server would scrape. Swapping the backend (StatsD,
//! OpenTelemetry, a test recorder) changes only the `install` lines.
//!
//! ```text
//! ETCD_ENDPOINTS=127.0.0.1:2379 cargo run -p etcd-tower-metrics --example prometheus
//! ```

use std::error::Error;
use std::time::Duration;

use etcd_tower_core::metric_names;
use etcd_tower_core::proto::etcdserverpb::{
    watch_request::RequestUnion, PutRequest, RangeRequest, RangeResponse, WatchCreateRequest,
    WatchRequest,
};
use etcd_tower_core::{EtcdRequest, RequestBody, ResponseBody, Transport};
use etcd_tower_metrics::{MetricsLayer, DURATION_BUCKETS};
use futures_util::StreamExt;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // 1. The backend: install it before the first call.
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(metric_names::CLIENT_REQUEST_DURATION_SECONDS.into()),
            DURATION_BUCKETS,
        )?
        .install_recorder()?;

    // 2. The client: the transport under the metrics layer.
    let endpoints = std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2379".into());
    let transport = Transport::connect_lazy(endpoints.split(','))?;
    let client = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .service(transport);

    // 3. Some traffic: a watch, puts, reads, and a call refused before sending.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: "metrics-example/".into(),
            range_end: "metrics-example0".into(),
            ..Default::default()
        })),
    })?;
    let response = client
        .clone()
        .oneshot(EtcdRequest::new(RequestBody::Watch(Box::pin(outbound))))
        .await?;
    let ResponseBody::Watch(mut watch) = response.body else {
        return Err("the watch call did not answer with a stream".into());
    };
    // The created message: the watch is in place before the puts.
    watch.next().await.ok_or("the watch stream ended")??;

    for i in 0..3 {
        let put = PutRequest {
            key: format!("metrics-example/{i}").into(),
            value: "hello".into(),
            ..Default::default()
        };
        client.clone().oneshot(EtcdRequest::new(put)).await?;
    }
    let range = RangeRequest {
        key: "metrics-example/".into(),
        range_end: "metrics-example0".into(),
        ..Default::default()
    };
    let found = RangeResponse::try_from(client.clone().oneshot(EtcdRequest::new(range)).await?)?;
    println!("# read {} keys", found.kvs.len());
    let empty = client
        .clone()
        .oneshot(EtcdRequest::new(RangeRequest::default()))
        .await;
    println!(
        "# an empty key is refused: {:?}",
        empty.err().map(|e| e.to_string())
    );

    let mut events = 0;
    while events < 3 {
        let message = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await?
            .ok_or("the watch stream ended")??;
        events += message.events.len();
    }
    drop(watch);
    drop(tx);

    // 4. What Prometheus would scrape.
    println!("{}", prometheus.render());
    Ok(())
}
