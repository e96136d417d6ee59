//! Counting wrappers around the streams of streaming RPCs.
//!
//! A stream is wrapped once, when it is opened (one allocation per open);
//! every message then costs one counter bump per direction.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use etcd_tower_core::proto::etcdserverpb::{
    LeaseKeepAliveResponse, SnapshotResponse, WatchResponse,
};
use etcd_tower_core::proto::v3electionpb::LeaderResponse;
use etcd_tower_core::{EtcdError, RequestStream, ResponseStream};
use futures_core::Stream;

use crate::handles::RpcHandles;

/// What the metrics layer counts in an inbound message besides the message
/// itself.
pub(crate) trait Inbound {
    /// Watch events carried by the message.
    fn events(&self) -> usize {
        0
    }
}

impl Inbound for WatchResponse {
    fn events(&self) -> usize {
        self.events.len()
    }
}
impl Inbound for LeaseKeepAliveResponse {}
impl Inbound for SnapshotResponse {}
impl Inbound for LeaderResponse {}

/// Wraps the outbound messages of a bidirectional RPC, counting each one
/// the transport takes.
pub(crate) fn count_sent<T: Send + 'static>(
    stream: RequestStream<T>,
    handles: Arc<RpcHandles>,
) -> RequestStream<T> {
    Box::pin(CountSent {
        inner: stream,
        handles,
    })
}

/// Wraps the inbound messages of a streaming RPC that just opened: counts
/// each message (and each watch event), keeps the open-streams gauge, and
/// counts how the stream ends.
pub(crate) fn count_received<T: Inbound + Send + 'static>(
    stream: ResponseStream<T>,
    handles: Arc<RpcHandles>,
) -> ResponseStream<T> {
    if let Some(stream) = &handles.stream {
        stream.open.increment(1.0);
    }
    Box::pin(CountReceived {
        inner: stream,
        handles,
        open: true,
    })
}

struct CountSent<T> {
    inner: RequestStream<T>,
    handles: Arc<RpcHandles>,
}

impl<T> Stream for CountSent<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let item = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(_)) = &item {
            if let Some(stream) = &self.handles.stream {
                stream.sent.increment(1);
            }
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

struct CountReceived<T> {
    inner: ResponseStream<T>,
    handles: Arc<RpcHandles>,
    /// Whether the stream has neither ended nor failed yet.
    open: bool,
}

impl<T> CountReceived<T> {
    fn close(&mut self, error: Option<&EtcdError>) {
        if std::mem::replace(&mut self.open, false) {
            if let Some(stream) = &self.handles.stream {
                stream.open.decrement(1.0);
            }
            self.handles.stream_closed(error);
        }
    }
}

impl<T: Inbound> Stream for CountReceived<T> {
    type Item = Result<T, EtcdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(message))) => {
                if let Some(stream) = &self.handles.stream {
                    stream.received.increment(1);
                    let events = message.events();
                    if events > 0 {
                        stream
                            .events
                            .increment(u64::try_from(events).unwrap_or(u64::MAX));
                    }
                }
            }
            Poll::Ready(Some(Err(error))) => self.close(Some(error)),
            Poll::Ready(None) => self.close(None),
            Poll::Pending => {}
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> Drop for CountReceived<T> {
    fn drop(&mut self) {
        if std::mem::replace(&mut self.open, false) {
            if let Some(stream) = &self.handles.stream {
                stream.open.decrement(1.0);
            }
            self.handles.stream_dropped();
        }
    }
}
