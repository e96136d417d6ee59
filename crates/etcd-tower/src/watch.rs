//! Watching keys: `client.watch(key, WatchOptions)`.
//!
//! The client's watches go through the watch engine (`etcd-tower-watch`):
//! every watcher of every clone of the client shares one gRPC stream per
//! require-leader setting, which the engine reopens and resumes from the
//! next revision when it breaks (member restart, expired auth token), so a
//! [`Watcher`] sees every event exactly once, or a typed error (such as
//! [`ErrorKind::Compacted`](etcd_tower_core::ErrorKind::Compacted) with the compact revision).
//! [`WatchOptions`] is the engine's own type (one type, whether the watch
//! goes through the client or a bare [`WatchEngine`]), and each event of a
//! [`WatchBatch`] is a [`WatchEvent`]: a zero-cost typed view of etcd's
//! protobuf event ([`EventKind`], key and value accessors).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::watch::{EventKind, WatchOptions};
//! use etcd_tower::Client;
//! use futures_util::StreamExt;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let mut watcher = client.watch("config/", WatchOptions::new().prefix().prev_kv()).await?;
//! while let Some(batch) = watcher.next().await {
//!     for event in batch?.events() {
//!         match event.kind() {
//!             EventKind::Put if event.is_create() => println!("new {:?}", event.key_str()),
//!             EventKind::Put => println!("{:?} = {:?}", event.key_str(), event.value_str()),
//!             EventKind::Delete => println!("gone {:?}", event.key_str()),
//!             EventKind::Unknown(number) => println!("event type {number}?"),
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use etcd_tower_core::EtcdError;

use crate::bytes::IntoBytes;
use crate::client::Client;

pub use etcd_tower_watch::{
    EventKind, WatchBatch, WatchConfig, WatchEngine, WatchEvent, WatchOptions, Watcher,
};

/// The watch engine's crate, for its other items (a [`WatchEngine`] used
/// without the [`Client`] takes the same [`WatchOptions`]).
pub use etcd_tower_watch as engine;

/// # Watch
impl Client {
    /// Watches a key or a range; resolves once the server confirmed the
    /// watch. See the [module docs](crate::watch).
    pub async fn watch(
        &self,
        key: impl IntoBytes,
        options: WatchOptions,
    ) -> Result<Watcher, EtcdError> {
        self.watch_engine().watch(key.into_bytes(), options).await
    }

    /// Asks the server for a progress notification on every watch stream.
    pub async fn request_watch_progress(&self) -> Result<(), EtcdError> {
        self.watch_engine().request_progress().await
    }
}
