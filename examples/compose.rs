//! Compose your own client with `ServiceBuilder`: the core transport with
//! the namespace and metrics layers, called as a plain tower service, no
//! facade.
//!
//! ```text
//! ETCD_ENDPOINTS=127.0.0.1:2379 cargo run --example compose
//! ```

use etcd_tower_core::proto::etcdserverpb::{PutRequest, RangeRequest, RangeResponse};
use etcd_tower_core::{EtcdError, EtcdRequest, Transport};
use etcd_tower_metrics::MetricsLayer;
use etcd_tower_namespace::NamespaceLayer;
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::{Service, ServiceBuilder, ServiceExt};

mod common;
use common::endpoints;

#[tokio::main]
async fn main() -> Result<(), EtcdError> {
    // Metrics go to whatever recorder is installed; here, Prometheus text.
    let prometheus = PrometheusBuilder::new().install_recorder().ok();

    let transport = Transport::builder(endpoints()).build()?;
    // Outermost first: keys are prefixed before the metrics see the call.
    let mut tenant_a = ServiceBuilder::new()
        .layer(NamespaceLayer::new("tenant-a/"))
        .layer(MetricsLayer::new())
        .service(transport.clone());
    let mut raw = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .service(transport);

    let put = PutRequest {
        key: "config".into(),
        value: "on".into(),
        ..Default::default()
    };
    tenant_a.ready().await?.call(EtcdRequest::new(put)).await?;

    // The tenant sees its key without the prefix...
    let get = RangeRequest {
        key: "config".into(),
        ..Default::default()
    };
    let seen = RangeResponse::try_from(tenant_a.ready().await?.call(EtcdRequest::new(get)).await?)?;
    for kv in &seen.kvs {
        println!("tenant-a sees {:?}", String::from_utf8_lossy(&kv.key));
    }
    // ...while the raw stack sees where it really is.
    let get = RangeRequest {
        key: "tenant-a/config".into(),
        ..Default::default()
    };
    let stored = RangeResponse::try_from(raw.ready().await?.call(EtcdRequest::new(get)).await?)?;
    for kv in &stored.kvs {
        println!("stored as {:?}", String::from_utf8_lossy(&kv.key));
    }

    // The same stack makes a typed client too.
    let client = etcd_tower::Client::from_service(tenant_a);
    client.delete("config").await?;

    if let Some(handle) = prometheus {
        println!("--- metrics ---\n{}", handle.render());
    }
    Ok(())
}
