//! Streams raise the highest revision too: every message of a Watch,
//! LeaseKeepAlive or Observe stream carries a header.
//!
//! A stream is never *checked*: a watch reports history from the revision
//! it asked for, whichever member serves it, and the watch engine resumes a
//! broken watch from where it left off. Its messages only tell the client
//! how far the cluster has come, as unary answers do. Snapshot chunks are
//! left alone (the stream is a backup of one member's backend).

use std::pin::Pin;
use std::task::{Context, Poll};

use etcd_tower_core::proto::etcdserverpb::{LeaseKeepAliveResponse, WatchResponse};
use etcd_tower_core::proto::v3electionpb::LeaderResponse;
use etcd_tower_core::{EtcdError, ResponseBody, ResponseStream};
use futures_core::Stream;

use crate::header::revision;
use crate::highest::HighestRevision;

/// Wraps a Watch, LeaseKeepAlive or Observe stream so that its messages
/// raise `highest`; any other body passes through unchanged.
pub(crate) fn observe_stream(body: ResponseBody, highest: &HighestRevision) -> ResponseBody {
    match body {
        ResponseBody::Watch(s) => {
            ResponseBody::Watch(wrap(s, highest, |m: &WatchResponse| revision(&m.header)))
        }
        ResponseBody::LeaseKeepAlive(s) => {
            ResponseBody::LeaseKeepAlive(wrap(s, highest, |m: &LeaseKeepAliveResponse| {
                revision(&m.header)
            }))
        }
        ResponseBody::Observe(s) => {
            ResponseBody::Observe(wrap(s, highest, |m: &LeaderResponse| revision(&m.header)))
        }
        other => other,
    }
}

fn wrap<T: Send + 'static>(
    inner: ResponseStream<T>,
    highest: &HighestRevision,
    revision_of: fn(&T) -> Option<i64>,
) -> ResponseStream<T> {
    Box::pin(Observed {
        inner,
        highest: highest.clone(),
        revision_of,
    })
}

/// A response stream whose messages raise the highest revision seen.
struct Observed<T> {
    inner: ResponseStream<T>,
    highest: HighestRevision,
    revision_of: fn(&T) -> Option<i64>,
}

impl<T> Stream for Observed<T> {
    type Item = Result<T, EtcdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(message))) = &item {
            if let Some(revision) = (self.revision_of)(message) {
                self.highest.observe(revision);
            }
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
