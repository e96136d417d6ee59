//! Watching keys: `client.watch(key, WatchOptions)`.
//!
//! The client's watches go through the watch engine (`etcd-tower-watch`):
//! every watcher of every clone of the client shares one gRPC stream per
//! require-leader setting, which the engine reopens and resumes from the
//! next revision when it breaks (member restart, expired auth token), so a
//! [`Watcher`] sees every event exactly once, or a typed error (such as
//! [`ErrorKind::Compacted`] with the compact revision).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::watch::WatchOptions;
//! use etcd_tower::Client;
//! use futures_util::StreamExt;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let mut watcher = client.watch("config/", WatchOptions::new().prefix().prev_kv()).await?;
//! while let Some(batch) = watcher.next().await {
//!     for event in batch?.events() {
//!         println!("{:?} {:?}", event.r#type(), event.kv.as_ref().map(|kv| &kv.key));
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The crate-private `KeyWatch` is the facade's own single-watcher stream,
//! used by the concurrency recipes to wait for one key's deletion: one
//! short-lived gRPC stream per wait, opened through the client's stack (so
//! with its current token) and resumed from the next revision when it
//! breaks.

use std::time::Duration;

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::proto::etcdserverpb::watch_request::RequestUnion;
use etcd_tower_core::proto::mvccpb;
use etcd_tower_core::{
    ErrorKind, EtcdError, EtcdRequest, RequestBody, ResponseBody, ResponseStream,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::kv::Span;
use crate::lease::channel_stream;

pub use etcd_tower_watch::{WatchBatch, WatchConfig, Watcher};

/// What a watch covers beyond its key, from which revision, and what it
/// receives.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    span: Span,
    start_revision: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    fragment: bool,
    require_leader: bool,
    buffer: Option<usize>,
}

impl WatchOptions {
    /// Only the key, from now on.
    pub fn new() -> Self {
        WatchOptions::default()
    }

    /// Every key that starts with the key.
    pub fn prefix(mut self) -> Self {
        self.span = Span::Prefix;
        self
    }

    /// Every key from the key on.
    pub fn from_key(mut self) -> Self {
        self.span = Span::FromKey;
        self
    }

    /// Keys in `[key, end)`.
    pub fn range_end(mut self, end: impl IntoBytes) -> Self {
        self.span = Span::End(end.into_bytes());
        self
    }

    /// Starts at a past revision (0: now). The first events are then the
    /// history since that revision.
    pub fn start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    /// Delivers each event's previous key-value.
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Leaves puts out.
    pub fn no_put(mut self) -> Self {
        self.no_put = true;
        self
    }

    /// Leaves deletes out.
    pub fn no_delete(mut self) -> Self {
        self.no_delete = true;
        self
    }

    /// Asks for periodic empty batches carrying the current revision.
    pub fn progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }

    /// Lets the server split huge batches (joined again before delivery).
    pub fn fragment(mut self) -> Self {
        self.fragment = true;
        self
    }

    /// Cancels the watch while the serving member has no leader.
    pub fn require_leader(mut self) -> Self {
        self.require_leader = true;
        self
    }

    /// How many events may wait for the reader before the watcher lags.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = Some(events);
        self
    }

    /// The watch engine's options for `key`.
    pub fn into_engine_options(self, key: impl IntoBytes) -> etcd_tower_watch::WatchOptions {
        let (key, range_end) = self.span.resolve(key.into_bytes());
        let mut options = etcd_tower_watch::WatchOptions::key(key)
            .start_revision(self.start_revision)
            .prev_kv(self.prev_kv)
            .no_put(self.no_put)
            .no_delete(self.no_delete)
            .progress_notify(self.progress_notify)
            .fragment(self.fragment)
            .require_leader(self.require_leader);
        if !range_end.is_empty() {
            options = options.range_end(range_end);
        }
        if let Some(events) = self.buffer {
            options = options.buffer(events);
        }
        options
    }
}

/// # Watch
impl Client {
    /// Watches a key or a range; resolves once the server confirmed the
    /// watch. See the [module docs](crate::watch).
    pub async fn watch(
        &self,
        key: impl IntoBytes,
        options: WatchOptions,
    ) -> Result<Watcher, EtcdError> {
        self.watch_engine()
            .watch(options.into_engine_options(key))
            .await
    }

    /// Asks the server for a progress notification on every watch stream.
    pub async fn request_watch_progress(&self) -> Result<(), EtcdError> {
        self.watch_engine().request_progress().await
    }
}

/// How many times in a row a broken watch stream is reopened before the
/// error is returned.
const REOPEN_ATTEMPTS: u32 = 5;

/// The watch id the facade asks for: never 0 (see etcd 3.5.1's watcher-0 bug).
const WATCH_ID: i64 = 1;

/// One watcher on one stream of its own; see the [module docs](self).
pub(crate) struct KeyWatch {
    client: Client,
    key: Bytes,
    range_end: Bytes,
    next_revision: i64,
    open: Option<(
        mpsc::Sender<pb::WatchRequest>,
        ResponseStream<pb::WatchResponse>,
    )>,
}

impl KeyWatch {
    /// Watches `[key, range_end)` from `start_revision` (0: from now).
    pub(crate) fn new(client: &Client, key: Bytes, range_end: Bytes, start_revision: i64) -> Self {
        KeyWatch {
            client: client.clone(),
            key,
            range_end,
            next_revision: start_revision,
            open: None,
        }
    }

    fn open(
        &self,
    ) -> impl std::future::Future<
        Output = Result<
            (
                mpsc::Sender<pb::WatchRequest>,
                ResponseStream<pb::WatchResponse>,
            ),
            EtcdError,
        >,
    > + Send
           + 'static {
        let client = self.client.clone();
        let (tx, outbound) = channel_stream(1);
        let create = pb::WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
                key: self.key.clone(),
                range_end: self.range_end.clone(),
                start_revision: self.next_revision,
                watch_id: WATCH_ID,
                ..Default::default()
            })),
        };
        async move {
            tx.send(create).await.map_err(|_| {
                EtcdError::client(ErrorKind::Closed, "watch request channel closed")
            })?;
            let response = client
                .call(EtcdRequest::new(RequestBody::Watch(outbound)))
                .await?;
            match response.body {
                ResponseBody::Watch(stream) => Ok((tx, stream)),
                other => Err(EtcdError::client(
                    ErrorKind::UnexpectedResponse,
                    format!("expected a Watch stream, got {}", other.rpc()),
                )),
            }
        }
    }

    /// The next non-empty batch of events. Fails with
    /// [`ErrorKind::Compacted`] when the start revision was compacted.
    pub(crate) async fn next(&mut self) -> Result<Vec<mvccpb::Event>, EtcdError> {
        let mut failures = 0;
        loop {
            let (_, stream) = match &mut self.open {
                Some(open) => open,
                None => match self.open().await {
                    Ok(open) => self.open.insert(open),
                    Err(error) => {
                        failures += 1;
                        if failures >= REOPEN_ATTEMPTS
                            || error.code() == etcd_tower_core::Code::PermissionDenied
                        {
                            return Err(error);
                        }
                        tokio::time::sleep(Duration::from_millis(50 << failures)).await;
                        continue;
                    }
                },
            };
            let message = match stream.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::debug!(%error, "watch stream broke; resuming");
                    self.open = None;
                    failures += 1;
                    if failures >= REOPEN_ATTEMPTS {
                        return Err(error);
                    }
                    continue;
                }
                None => {
                    self.open = None;
                    failures += 1;
                    if failures >= REOPEN_ATTEMPTS {
                        return Err(EtcdError::client(
                            ErrorKind::ConnectionLost,
                            "the server kept closing the watch stream",
                        ));
                    }
                    continue;
                }
            };
            if message.canceled {
                self.open = None;
                return Err(if message.compact_revision > 0 {
                    EtcdError::client(
                        ErrorKind::Compacted {
                            compact_revision: Some(message.compact_revision),
                        },
                        format!(
                            "watch from revision {} was compacted at {}",
                            self.next_revision, message.compact_revision
                        ),
                    )
                } else {
                    EtcdError::client(ErrorKind::WatchCanceled, message.cancel_reason)
                });
            }
            failures = 0;
            if let Some(last) = message.events.last().and_then(|e| e.kv.as_ref()) {
                self.next_revision = last.mod_revision + 1;
                return Ok(message.events);
            }
            if let Some(header) = message.header {
                self.next_revision = self.next_revision.max(header.revision + 1);
            }
        }
    }
}

/// Waits until `key` is deleted, watching from `revision`.
pub(crate) async fn wait_delete(
    client: &Client,
    key: Bytes,
    revision: i64,
) -> Result<(), EtcdError> {
    let mut watch = KeyWatch::new(client, key, Bytes::new(), revision);
    loop {
        match watch.next().await {
            Ok(events) => {
                if events
                    .iter()
                    .any(|e| e.r#type == mvccpb::event::EventType::Delete as i32)
                {
                    return Ok(());
                }
            }
            // The history is gone: let the caller look at the current state.
            Err(e) if matches!(e.kind(), ErrorKind::Compacted { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
