//! The user's end of one watch: [`Watcher`] and the [`WatchBatch`]es it
//! yields.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use etcd_tower_core::proto::etcdserverpb::ResponseHeader;
use etcd_tower_core::proto::mvccpb::Event;
use etcd_tower_core::{ErrorKind, EtcdError};
use futures_core::Stream;
use tokio::sync::mpsc;

use crate::event::{self, WatchEvent};
use crate::queue::Queue;

/// The events of one watch response (one or more revisions, in order), or
/// a progress notification (no events).
#[derive(Clone, Debug, PartialEq)]
pub struct WatchBatch {
    header: ResponseHeader,
    events: Vec<WatchEvent>,
    progress_notify: bool,
}

impl WatchBatch {
    pub(crate) fn new(header: ResponseHeader, events: Vec<Event>, progress_notify: bool) -> Self {
        WatchBatch {
            header,
            events: event::wrap(events),
            progress_notify,
        }
    }

    /// The events, in revision order.
    pub fn events(&self) -> &[WatchEvent] {
        &self.events
    }

    /// Takes the events.
    pub fn into_events(self) -> Vec<WatchEvent> {
        self.events
    }

    /// The revision of the store when the server sent this batch (the
    /// response header's revision).
    pub fn revision(&self) -> i64 {
        self.header.revision
    }

    /// The response header (cluster, member, revision, raft term).
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// Whether this is a progress notification: no events, only the news
    /// that the store reached [`revision`](Self::revision). A notification
    /// the server sent for this watcher alone (only shown with
    /// [`WatchOptions::progress_notify`](crate::WatchOptions::progress_notify))
    /// means every event up to that revision was delivered; one answering a
    /// progress request ([`Watcher::request_progress`]) is broadcast to
    /// every watcher of the stream and, on etcd before 3.4.24 / 3.5.8, may
    /// arrive before events of watchers that are still catching up (etcd
    /// issue 15220). The engine's own progress requests are never shown.
    pub fn is_progress_notify(&self) -> bool {
        self.progress_notify
    }
}

/// Messages from watchers to their stream task. Sent on an unbounded
/// channel because they are sent from `Drop` and `poll_next`, which cannot
/// wait; it stays bounded by the number of watchers: each sends at most one
/// `Dropped`, one `Drained` per lag episode, and one `Progress` at a time.
#[derive(Debug)]
pub(crate) enum Note {
    /// The watcher was dropped: cancel it on the server.
    Dropped(u64),
    /// The lagging watcher's consumer emptied its buffer: re-create it.
    Drained(u64),
    /// The watcher asked for a progress notification.
    Progress(u64),
}

/// One watch: a [`Stream`] of [`WatchBatch`]es, in revision order, without
/// gaps or repeats across faults.
///
/// The stream ends after an error item: the watch is over (compacted,
/// permission denied, cancelled by the server, or the engine stopped).
/// Dropping the watcher cancels the watch on the server; the stream is
/// closed when its last watcher goes.
#[derive(Debug)]
pub struct Watcher {
    id: u64,
    queue: Arc<Queue>,
    notes: mpsc::UnboundedSender<Note>,
}

impl Watcher {
    pub(crate) fn new(id: u64, queue: Arc<Queue>, notes: mpsc::UnboundedSender<Note>) -> Self {
        Watcher { id, queue, notes }
    }

    /// The engine's id for this watcher, unique within the engine and
    /// stable for its whole life. It is not the server's `watch_id`, which
    /// changes each time the engine re-creates the watcher.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Asks the server for a progress notification. etcd answers on the
    /// whole stream: every watcher sharing it receives one (see
    /// [`WatchBatch::is_progress_notify`]). Requests made while one is
    /// still waiting to be sent are merged into it.
    pub fn request_progress(&self) -> Result<(), EtcdError> {
        if !self.queue.ask_progress() {
            return Ok(()); // one is already on its way
        }
        self.notes
            .send(Note::Progress(self.id))
            .map_err(|_| EtcdError::client(ErrorKind::Closed, "the watch engine has stopped"))
    }

    /// Whether the watcher's buffer filled up and the engine is waiting for
    /// the consumer to catch up (see the crate docs).
    pub fn is_lagging(&self) -> bool {
        self.queue.is_lagging()
    }
}

impl Stream for Watcher {
    type Item = Result<WatchBatch, EtcdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let popped = self.queue.poll_pop(cx);
        if popped.drained_after_lag && self.notes.send(Note::Drained(self.id)).is_err() {
            // The engine is gone: the queue will say so once empty.
            tracing::debug!(watcher = self.id, "watch engine gone while lagging");
        }
        popped.item
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.queue.close_consumer();
        // An error means the engine is already gone: nothing to cancel.
        if self.notes.send(Note::Dropped(self.id)).is_err() {
            tracing::trace!(watcher = self.id, "watcher dropped after its engine");
        }
    }
}
