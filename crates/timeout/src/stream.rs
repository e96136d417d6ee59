//! The deadline of a streaming RPC: it covers opening the stream and its
//! first message, then the stream runs freely.
//!
//! A watch or keep-alive stream lives for hours; a deadline on its whole
//! life would kill it. What a caller wants bounded is "did the server take
//! my stream and answer": opening plus the first message. After that,
//! liveness is HTTP/2 keepalive's job (in the transport).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_tower_core::{EtcdError, ResponseBody, ResponseStream, Rpc};
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use crate::error::{elapsed, Stage};
use crate::Scope;

/// Wraps the stream of a streaming response so that `deadline` applies
/// until its first item. Unary bodies pass through unchanged.
pub(crate) fn until_first_message(
    body: ResponseBody,
    deadline: Instant,
    timeout: Duration,
    scope: Scope,
) -> ResponseBody {
    let limit = Limit {
        deadline,
        timeout,
        scope,
    };
    match body {
        ResponseBody::Watch(s) => ResponseBody::Watch(wrap(s, Rpc::Watch, limit)),
        ResponseBody::LeaseKeepAlive(s) => {
            ResponseBody::LeaseKeepAlive(wrap(s, Rpc::LeaseKeepAlive, limit))
        }
        ResponseBody::Snapshot(s) => ResponseBody::Snapshot(wrap(s, Rpc::Snapshot, limit)),
        ResponseBody::Observe(s) => ResponseBody::Observe(wrap(s, Rpc::Observe, limit)),
        unary => unary,
    }
}

/// The deadline a stream's first message must meet.
#[derive(Clone, Copy)]
struct Limit {
    deadline: Instant,
    timeout: Duration,
    scope: Scope,
}

fn wrap<T: Send + 'static>(inner: ResponseStream<T>, rpc: Rpc, limit: Limit) -> ResponseStream<T> {
    Box::pin(FirstMessage {
        inner: Some(inner),
        sleep: Some(tokio::time::sleep_until(limit.deadline)),
        rpc,
        timeout: limit.timeout,
        scope: limit.scope,
    })
}

/// A response stream whose first item must come before a deadline.
#[pin_project::pin_project]
struct FirstMessage<T> {
    /// `None` once the deadline passed: the RPC is dropped (cancelled).
    inner: Option<ResponseStream<T>>,
    /// `None` once the first item came.
    #[pin]
    sleep: Option<Sleep>,
    rpc: Rpc,
    timeout: Duration,
    scope: Scope,
}

impl<T> Stream for FirstMessage<T> {
    type Item = Result<T, EtcdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = inner.as_mut().poll_next(cx) {
            this.sleep.set(None);
            return Poll::Ready(item);
        }
        if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
            if sleep.poll(cx).is_ready() {
                this.sleep.set(None);
                *this.inner = None;
                return Poll::Ready(Some(Err(elapsed(
                    *this.rpc,
                    *this.timeout,
                    *this.scope,
                    Stage::FirstMessage,
                ))));
            }
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Some(inner) => (0, inner.size_hint().1.map(|n| n.max(1))),
            None => (0, Some(0)),
        }
    }
}
