//! The future of a [`Retry`](crate::Retry) call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse};
use tower_service::Service;

use crate::EtcdRetryPolicy;

type Inner<S> = tower::retry::future::ResponseFuture<EtcdRetryPolicy, S, EtcdRequest>;

/// The future of a [`Retry`](crate::Retry) call: tower's retry future,
/// which sends each new attempt on a clone of the inner service only after
/// polling that clone ready.
#[pin_project::pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    #[pin]
    inner: Inner<S>,
}

impl<S> ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    pub(crate) fn new(inner: Inner<S>) -> Self {
        ResponseFuture { inner }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<S> std::fmt::Debug for ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
