//! The future of a [`Metrics`](crate::Metrics) call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use etcd_tower_core::{EtcdError, EtcdResponse, ResponseBody, RpcShape};

use crate::handles::RpcHandles;
use crate::stream::count_received;

/// The future of a [`Metrics`](crate::Metrics) call: the inner future, and
/// a guard that records the call's outcome when it finishes, or records it
/// as cancelled if the future is dropped first.
#[pin_project::pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    call: CallGuard,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, call: CallGuard) -> Self {
        ResponseFuture { inner, call }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<EtcdResponse, EtcdError>>,
{
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        Poll::Ready(this.call.finish(result))
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rpc", &self.call.handles.rpc)
            .finish_non_exhaustive()
    }
}

/// Records one call: in flight from `start` until `finish` or drop.
pub(crate) struct CallGuard {
    handles: Arc<RpcHandles>,
    started_at: Instant,
    finished: bool,
}

impl CallGuard {
    pub(crate) fn start(handles: Arc<RpcHandles>) -> Self {
        handles.started.increment(1);
        handles.in_flight.increment(1.0);
        CallGuard {
            handles,
            started_at: Instant::now(),
            finished: false,
        }
    }

    /// Leaves the in-flight gauge and records the latency, once.
    fn end(&mut self) -> bool {
        if std::mem::replace(&mut self.finished, true) {
            return false;
        }
        self.handles
            .duration
            .record(self.started_at.elapsed().as_secs_f64());
        self.handles.in_flight.decrement(1.0);
        true
    }

    fn finish(
        &mut self,
        result: Result<EtcdResponse, EtcdError>,
    ) -> Result<EtcdResponse, EtcdError> {
        if !self.end() {
            return result;
        }
        match result {
            Ok(mut response) => {
                self.handles.succeeded.increment(1);
                if self.handles.rpc.shape() != RpcShape::Unary {
                    if self.handles.rpc.shape() == RpcShape::ServerStreaming {
                        // The stream's one request message went out.
                        if let Some(stream) = &self.handles.stream {
                            stream.sent.increment(1);
                        }
                    }
                    response.body = wrap_inbound(response.body, &self.handles);
                }
                Ok(response)
            }
            Err(error) => {
                self.handles.failed(&error);
                Err(error)
            }
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.end() {
            self.handles.dropped();
        }
    }
}

/// Wraps the inbound stream of a streaming response with counters.
fn wrap_inbound(body: ResponseBody, handles: &Arc<RpcHandles>) -> ResponseBody {
    match body {
        ResponseBody::Watch(s) => ResponseBody::Watch(count_received(s, handles.clone())),
        ResponseBody::LeaseKeepAlive(s) => {
            ResponseBody::LeaseKeepAlive(count_received(s, handles.clone()))
        }
        ResponseBody::Snapshot(s) => ResponseBody::Snapshot(count_received(s, handles.clone())),
        ResponseBody::Observe(s) => ResponseBody::Observe(count_received(s, handles.clone())),
        other => other,
    }
}
