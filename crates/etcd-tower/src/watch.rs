//! Watching keys: `client.watch(key, WatchOptions)`.
//!
//! The client's watches go through the watch engine (`etcd-tower-watch`):
//! every watcher of every clone of the client shares one gRPC stream per
//! require-leader setting, which the engine reopens and resumes from the
//! next revision when it breaks (member restart, expired auth token), so a
//! [`Watcher`] sees every event exactly once, or a typed error (such as
//! [`ErrorKind::Compacted`](etcd_tower_core::ErrorKind::Compacted) with the compact revision).
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

use etcd_tower_core::EtcdError;

use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::kv::Span;

pub use etcd_tower_watch::{WatchBatch, WatchConfig, WatchEngine, Watcher};

/// The watch engine's crate, for its own items (its
/// [`WatchOptions`](engine::WatchOptions) for a
/// [`WatchEngine`] used without the [`Client`]).
pub use etcd_tower_watch as engine;

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
