//! Helpers shared by the retry layer's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{PutRequest, PutResponse, RangeRequest, RangeResponse};
use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse, Rpc};
use tower::{Service, ServiceExt};

/// Fails the test if `test` takes longer than `secs` seconds.
pub async fn bounded<T>(secs: u64, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"))
}

/// Counts the calls that reach it, by RPC: placed under the retry layer,
/// it counts attempts.
#[derive(Clone)]
pub struct Counting<S> {
    inner: S,
    counts: Arc<Mutex<HashMap<Rpc, usize>>>,
    hook: Option<Hook>,
}

/// Called with the RPC and its attempt number (1 for the first) before
/// the attempt goes down.
pub type Hook = Arc<dyn Fn(Rpc, usize) + Send + Sync>;

impl<S> Counting<S> {
    pub fn new(inner: S) -> (Self, Attempts) {
        let counts = Arc::new(Mutex::new(HashMap::new()));
        (
            Counting {
                inner,
                counts: counts.clone(),
                hook: None,
            },
            Attempts(counts),
        )
    }

    /// Runs `hook` before each attempt goes down.
    pub fn with_hook(mut self, hook: impl Fn(Rpc, usize) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Counting<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("inner", &self.inner)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// The counts of a [`Counting`] service.
#[derive(Clone, Debug)]
pub struct Attempts(Arc<Mutex<HashMap<Rpc, usize>>>);

impl Attempts {
    pub fn of(&self, rpc: Rpc) -> usize {
        self.0.lock().unwrap().get(&rpc).copied().unwrap_or(0)
    }
}

impl<S> Service<EtcdRequest> for Counting<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: EtcdRequest) -> S::Future {
        let rpc = request.rpc();
        let n = {
            let mut counts = self.counts.lock().unwrap();
            let n = counts.entry(rpc).or_default();
            *n += 1;
            *n
        };
        if let Some(hook) = &self.hook {
            hook(rpc, n);
        }
        self.inner.call(request)
    }
}

/// Any service of the stack.
pub trait Client:
    Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S> Client for S where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError, Future: Send>
        + Clone
        + Send
        + 'static
{
}

pub async fn put<S: Client>(client: &S, key: &str, value: &str) -> Result<PutResponse, EtcdError> {
    let request = PutRequest {
        key: key.to_owned().into(),
        value: value.to_owned().into(),
        ..Default::default()
    };
    let response = client.clone().oneshot(EtcdRequest::new(request)).await?;
    PutResponse::try_from(response)
}

pub async fn get<S: Client>(client: &S, key: &str) -> Result<RangeResponse, EtcdError> {
    let request = RangeRequest {
        key: key.to_owned().into(),
        ..Default::default()
    };
    let response = client.clone().oneshot(EtcdRequest::new(request)).await?;
    RangeResponse::try_from(response)
}

/// The keys under `prefix` as they were at `revision`.
pub async fn range_at<S: Client>(
    client: &S,
    prefix: &str,
    revision: i64,
) -> Result<RangeResponse, EtcdError> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let request = RangeRequest {
        key: prefix.to_owned().into(),
        range_end: end.into(),
        revision,
        ..Default::default()
    };
    let response = client.clone().oneshot(EtcdRequest::new(request)).await?;
    RangeResponse::try_from(response)
}
