//! Streams opened through the layer: tagged with their token generation,
//! and watched for a token error that ends them.
//!
//! The server reads a stream's token once, when the stream opens. If a
//! stream later ends with a token error (`Unauthenticated`, or the
//! `InvalidArgument` entries `AuthOldRevision` / `UserEmpty`), the token it
//! was opened with is marked stale, so that the next call or open logs in
//! again instead of reopening with the same dead token. A Watch stream's
//! rejected *creates* are not errors of the stream (they are `WatchResponse`
//! messages); the watch engine handles those with a probe, see the crate
//! docs.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use etcd_tower_core::{EtcdError, EtcdResponse, ResponseBody, ResponseStream};
use futures_core::Stream;

use crate::token::{is_token_error, Shared};

/// Wraps the streams of a streaming response, if it is one.
pub(crate) fn watch_streams(response: &mut EtcdResponse, shared: &Arc<Shared>, generation: u64) {
    let body = std::mem::replace(&mut response.body, placeholder());
    response.body = match body {
        ResponseBody::Watch(s) => ResponseBody::Watch(wrap(s, shared, generation)),
        ResponseBody::LeaseKeepAlive(s) => {
            ResponseBody::LeaseKeepAlive(wrap(s, shared, generation))
        }
        ResponseBody::Snapshot(s) => ResponseBody::Snapshot(wrap(s, shared, generation)),
        ResponseBody::Observe(s) => ResponseBody::Observe(wrap(s, shared, generation)),
        unary => unary,
    };
}

/// A cheap body to stand in while the real one is moved out.
fn placeholder() -> ResponseBody {
    ResponseBody::AuthStatus(Default::default())
}

fn wrap<T: Send + 'static>(
    inner: ResponseStream<T>,
    shared: &Arc<Shared>,
    generation: u64,
) -> ResponseStream<T> {
    Box::pin(StaleOnTokenError {
        inner,
        shared: Arc::clone(shared),
        generation,
    })
}

/// Passes items through; on a token error, marks the stream's token stale.
struct StaleOnTokenError<T> {
    inner: ResponseStream<T>,
    shared: Arc<Shared>,
    generation: u64,
}

impl<T> Stream for StaleOnTokenError<T> {
    type Item = Result<T, EtcdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(self.inner.as_mut().poll_next(cx));
        if let Some(Err(error)) = &item {
            if is_token_error(error) {
                self.shared.mark_stale(self.generation);
            }
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
