//! Helpers for the auth layer's tests against real etcd.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_tower_auth::{Auth, AuthLayer};
use etcd_tower_core::proto::etcdserverpb::{PutRequest, RangeRequest, RangeResponse};
use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, EtcdResponse, Rpc, Transport};
use etcd_tower_testkit::Cluster;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// Fails the test if `test` takes longer than `secs` seconds.
pub async fn bounded<T>(secs: u64, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"))
}

/// The root user's password in every cluster these tests start.
pub const ROOT_PASSWORD: &str = "s3cret";

/// A simple-token cluster with auth on, tokens living `ttl` seconds idle.
pub async fn simple_cluster(bin: &etcd_tower_testkit::EtcdBinary, ttl: u64) -> Cluster {
    let mut cluster = Cluster::builder(bin)
        .auth_token_ttl(ttl)
        .start()
        .await
        .unwrap();
    cluster.enable_auth(ROOT_PASSWORD).await.unwrap();
    cluster
}

/// A JWT cluster with auth on, tokens valid for `ttl`.
pub async fn jwt_cluster(bin: &etcd_tower_testkit::EtcdBinary, ttl: Duration) -> Cluster {
    let mut cluster = Cluster::builder(bin)
        .jwt_token_ttl(ttl)
        .start()
        .await
        .unwrap();
    cluster.enable_auth(ROOT_PASSWORD).await.unwrap();
    cluster
}

/// What the counting layer saw.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    logins: Arc<AtomicUsize>,
    token_rejections: Arc<AtomicUsize>,
}

impl Counts {
    /// `Authenticate` calls sent.
    pub fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }

    /// Calls the server rejected for their token.
    pub fn token_rejections(&self) -> usize {
        self.token_rejections.load(Ordering::SeqCst)
    }
}

/// Counts what goes through it; put UNDER the auth layer.
#[derive(Clone, Debug)]
pub struct CountingLayer(pub Counts);

impl<S> Layer<S> for CountingLayer {
    type Service = Counting<S>;
    fn layer(&self, inner: S) -> Counting<S> {
        Counting {
            inner,
            counts: self.0.clone(),
        }
    }
}

/// See [`CountingLayer`].
#[derive(Clone, Debug)]
pub struct Counting<S> {
    inner: S,
    counts: Counts,
}

impl<S> Service<EtcdRequest> for Counting<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
    S::Future: Send + 'static,
{
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = futures::future::BoxFuture<'static, Result<EtcdResponse, EtcdError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: EtcdRequest) -> Self::Future {
        if request.rpc() == Rpc::Authenticate {
            self.counts.logins.fetch_add(1, Ordering::SeqCst);
        }
        let future = self.inner.call(request);
        let rejections = Arc::clone(&self.counts.token_rejections);
        Box::pin(async move {
            let result = future.await;
            if let Err(error) = &result {
                if matches!(
                    error.kind(),
                    ErrorKind::InvalidAuthToken | ErrorKind::AuthOldRevision | ErrorKind::UserEmpty
                ) {
                    rejections.fetch_add(1, Ordering::SeqCst);
                }
            }
            result
        })
    }
}

/// The stack under test: auth over the counting layer over the transport.
pub type Client = Auth<Counting<Transport>>;

/// A client logging in as `user`, and its counts.
pub fn client(cluster: &Cluster, user: &str, password: &str) -> (Client, Counts) {
    let counts = Counts::default();
    let transport = Transport::builder(cluster.endpoints())
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(AuthLayer::new(user, password))
        .layer(CountingLayer(counts.clone()))
        .service(transport);
    (client, counts)
}

/// One call through `service`.
pub async fn call<S>(service: &mut S, request: EtcdRequest) -> Result<EtcdResponse, EtcdError>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    service.ready().await?.call(request).await
}

/// Puts `key` = `value`.
pub async fn put<S>(service: &mut S, key: &str, value: &str) -> Result<(), EtcdError>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    let put = PutRequest {
        key: key.to_owned().into_bytes().into(),
        value: value.to_owned().into_bytes().into(),
        ..Default::default()
    };
    call(service, EtcdRequest::new(put)).await.map(drop)
}

/// The value of `key`, if any.
pub async fn get<S>(service: &mut S, key: &str) -> Result<Option<String>, EtcdError>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    let range = RangeRequest {
        key: key.to_owned().into_bytes().into(),
        ..Default::default()
    };
    let response = RangeResponse::try_from(call(service, EtcdRequest::new(range)).await?)?;
    Ok(response
        .kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
}

/// Whether an error is the connection breaking or not being made (the
/// first call after a member restart may meet the old, dead connection).
pub fn is_transport_error(error: &EtcdError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionLost | ErrorKind::Connect | ErrorKind::Closed
    ) || error.code() == etcd_tower_core::Code::Unknown
}

/// Adds `user` with `password`, with read-write access to keys under `prefix`.
pub async fn add_user(cluster: &Cluster, user: &str, password: &str, prefix: &str) {
    cluster.add_user(user, password, prefix).await.unwrap();
}
