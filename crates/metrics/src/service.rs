//! [`Metrics`]: the service that records.

use std::sync::Arc;
use std::task::{Context, Poll};

use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse, RequestBody, RpcShape};
use tower_service::Service;

use crate::future::{CallGuard, ResponseFuture};
use crate::handles::Table;
use crate::stream::count_sent;

/// Records requests, outcomes, latency, calls in flight and stream traffic
/// of the calls it passes to `S`; see the [crate docs](crate).
///
/// Errors pass through unchanged: the layer adds no failure.
#[derive(Clone, Debug)]
pub struct Metrics<S> {
    inner: S,
    table: Arc<Table>,
}

impl<S> Metrics<S> {
    /// Wraps `inner` with a table of handles of its own.
    pub fn new(inner: S) -> Self {
        Metrics::with_table(inner, Arc::new(Table::new()))
    }

    pub(crate) fn with_table(inner: S, table: Arc<Table>) -> Self {
        Metrics { inner, table }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<EtcdRequest> for Metrics<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: EtcdRequest) -> Self::Future {
        let handles = self.table.get(request.rpc());
        if handles.rpc.shape() == RpcShape::Bidirectional {
            request.body = match request.body {
                RequestBody::Watch(s) => RequestBody::Watch(count_sent(s, handles.clone())),
                RequestBody::LeaseKeepAlive(s) => {
                    RequestBody::LeaseKeepAlive(count_sent(s, handles.clone()))
                }
                other => other,
            };
        }
        // Start the clock (and the in-flight gauge) before the inner call:
        // a service may do real work in `call`.
        let call = CallGuard::start(handles);
        ResponseFuture::new(self.inner.call(request), call)
    }
}
