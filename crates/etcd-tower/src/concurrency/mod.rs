//! Client-side recipes on top of leases, txns and watches, like Go's
//! `clientv3/concurrency`: [`Session`], [`Mutex`], [`Election`] and
//! software transactions ([`Client::stm`](crate::Client::stm), in [`stm`]).
//!
//! A [`Session`] is a lease kept alive in the background; what a session
//! holds (a lock, leadership) ends when the session ends, whether it is
//! closed, dropped, or its process dies and the lease expires.
//!
//! The recipes use etcd's revision order: every contender writes a key
//! under a common prefix, and the key with the lowest create revision wins.
//! The others each watch only their predecessor's key, from the revision
//! they read at, so a release wakes exactly one waiter and nobody polls.
//! The keys and the protocol are those of Go's `concurrency` package
//! (etcd 3.5's `client/v3/concurrency`): waiter keys `<name>/<lease id in
//! hex>`, put in a txn that also reads the oldest key, so a Go process
//! (`etcdctl lock`, `etcdctl elect`) and a Rust one exclude each other.
//!
//! # Go's experimental recipes
//!
//! Mixed deployments share more than locks, so Go's
//! `client/v3/experimental/recipes` are here too, with the keys, values
//! and steps of etcd v3.5.30's source (each type's docs give its layout
//! and file): [`RwMutex`] (readers share, a writer excludes, and a waiting
//! writer holds back the readers that come after it), [`Barrier`],
//! [`DoubleBarrier`], [`Queue`], [`PriorityQueue`], and the waits they are
//! built on, [`wait_events`] and [`wait_prefix_events`]. Those that hold a
//! key for a process (`RwMutex`, `DoubleBarrier`) take a [`Session`], as
//! in Go; the queues and the barrier outlive their producers and take a
//! [`Client`]. Their waits are cancel-safe as described
//! below; a dropped [`Queue::dequeue`] puts back an item it had already
//! taken (see [`queue`]).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::concurrency::{Queue, RwMutex, Session};
//! use etcd_tower::Client;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! // A Go `recipe.NewQueue(cli, "jobs")` consumer takes these too.
//! Queue::new(&client, "jobs").enqueue("rebuild index").await?;
//! let session = Session::new(&client).await?;
//! let mut catalog = RwMutex::new(&session, "locks/catalog");
//! catalog.read_lock().await?;
//! catalog.unlock().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Waiting
//!
//! Every wait goes through the client's watch engine (`etcd-tower-watch`),
//! like any other watch of the client, so a waiter keeps waiting across an
//! expired auth token, a cut connection, a member restart or a leader
//! change, resumed from the revision it had reached: no release is missed.
//! A waiter whose watched history is compacted away reads the line again
//! instead of failing.
//!
//! # Giving up on a wait
//!
//! [`Mutex::lock`], [`Mutex::try_lock`] and [`Election::campaign`] are
//! **cancel-safe**: drop the future (`tokio::time::timeout`, `select!`, an
//! aborted task) and the key it queued with is removed, so no later waiter
//! is blocked behind it and an abandoned campaign never becomes leader.
//! The removal runs in the background (in a Tokio task) right away; it
//! waits for a write already in flight, retries until it succeeds or the
//! session's lease is gone, and the next `lock` or `campaign` of the same
//! `Mutex` or `Election` waits for it first. When a wait fails instead,
//! the key is removed before the error is returned. Only a Tokio runtime
//! shutting down, or a process that dies, skips the removal; the session's
//! lease then removes the key within its TTL.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use std::time::Duration;
//! use etcd_tower::concurrency::{Mutex, Session};
//! use etcd_tower::Client;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let session = Session::new(&client).await?;
//! let mut mutex = Mutex::new(&session, "locks/report");
//! match tokio::time::timeout(Duration::from_secs(2), mutex.lock()).await {
//!     Ok(locked) => {
//!         locked?;
//!         // ... the critical section ...
//!         mutex.unlock().await?;
//!     }
//!     // Gave up: this session's place in the line is already being removed.
//!     Err(_elapsed) => println!("busy, try later"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::concurrency::{Mutex, Session};
//! use etcd_tower::Client;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let session = Session::with_ttl(&client, 10).await?;
//! let mut mutex = Mutex::new(&session, "locks/report");
//! mutex.lock().await?;
//! // ... only one holder at a time here ...
//! mutex.unlock().await?;
//! session.close().await?;
//! # Ok(())
//! # }
//! ```

mod barrier;
mod double_barrier;
mod election;
mod line;
mod mutex;
mod priority_queue;
pub mod queue;
mod recipe_keys;
mod rwmutex;
mod session;
pub mod stm;
mod wait_events;

pub use barrier::Barrier;
pub use double_barrier::DoubleBarrier;
pub use election::{Election, ObserveLeader};
/// The kinds of watch events [`wait_events`] waits for.
pub use etcd_tower_watch::EventKind;
pub use mutex::Mutex;
pub use priority_queue::PriorityQueue;
pub use queue::Queue;
pub use rwmutex::RwMutex;
pub use session::{Session, DEFAULT_TTL as DEFAULT_SESSION_TTL};
pub use stm::{Isolation, Stm, StmCommit, StmOptions};
pub use wait_events::{wait_events, wait_prefix_events};

use bytes::{BufMut, Bytes, BytesMut};
use etcd_tower_core::{ErrorKind, EtcdError};
use etcd_tower_watch::{WatchOptions, Watcher};
use futures_util::StreamExt;

use crate::bytes::IntoBytes;
use crate::client::Client;
pub(crate) use crate::detached::abandoned;
use crate::kv::{GetOptions, SortOrder, SortTarget};

/// `prefix` with a trailing `/`.
pub(crate) fn dir(prefix: impl IntoBytes) -> Bytes {
    let prefix = prefix.into_bytes();
    let mut dir = BytesMut::with_capacity(prefix.len() + 1);
    dir.put_slice(&prefix);
    dir.put_u8(b'/');
    dir.freeze()
}

/// The oldest key under a prefix.
pub(crate) fn first_created() -> GetOptions {
    GetOptions::new()
        .prefix()
        .sort(SortTarget::Create, SortOrder::Ascend)
        .limit(1)
}

/// The error of a recipe whose session's lease is gone.
pub(crate) fn session_expired() -> EtcdError {
    EtcdError::client(
        ErrorKind::LeaseNotFound,
        "the session expired: its lease is gone",
    )
}

/// Waits until no key under `dir` created at or before `max_create_revision`
/// is left: each round watches the newest such key until it is deleted.
pub(crate) async fn wait_deletes(
    client: &Client,
    dir: &Bytes,
    max_create_revision: i64,
) -> Result<(), EtcdError> {
    let newest_before = GetOptions::new()
        .prefix()
        .sort(SortTarget::Create, SortOrder::Descend)
        .limit(1)
        .max_create_revision(max_create_revision);
    wait_none_left(client, dir, newest_before).await
}

/// Waits until reading `key` with `blocker` (a read of at most one key: the
/// one to wait for) finds nothing: each round waits until the key it found
/// is deleted, then reads again.
pub(crate) async fn wait_none_left(
    client: &Client,
    key: &Bytes,
    blocker: GetOptions,
) -> Result<(), EtcdError> {
    loop {
        let resp = client.get_with(key.clone(), blocker.clone()).await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(());
        };
        wait_delete(client, kv.key_bytes().clone(), resp.revision()).await?;
    }
}

/// Waits until `key` is deleted, watching it through the client's watch
/// engine from `revision` (at which it existed). Returns as well when that
/// history was compacted away: the caller reads the current state again.
pub(crate) async fn wait_delete(
    client: &Client,
    key: Bytes,
    revision: i64,
) -> Result<(), EtcdError> {
    let options = WatchOptions::new().start_revision(revision).no_put();
    let Some(mut watcher) = watch_unless_compacted(client, key, options).await? else {
        return Ok(());
    };
    loop {
        match watcher.next().await {
            Some(Ok(batch)) => {
                if batch
                    .events()
                    .iter()
                    .any(|event| event.kind() == EventKind::Delete)
                {
                    return Ok(());
                }
            }
            Some(Err(error)) if is_compacted(&error) => return Ok(()),
            Some(Err(error)) => return Err(error),
            None => return Err(watch_ended()),
        }
    }
}

/// A watch of `key` through the client's engine; `None` when its start
/// revision was compacted.
pub(crate) async fn watch_unless_compacted(
    client: &Client,
    key: Bytes,
    options: WatchOptions,
) -> Result<Option<Watcher>, EtcdError> {
    match client.watch_engine().watch(key, options).await {
        Ok(watcher) => Ok(Some(watcher)),
        Err(error) if is_compacted(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// A recipe's watch that ended without an error (the engine ends a
/// watcher's stream only after one, so this is a defect somewhere).
pub(crate) fn watch_ended() -> EtcdError {
    EtcdError::client(
        ErrorKind::WatchCanceled,
        "the watch engine ended a recipe's watch without an error",
    )
}

/// Whether a watch failed because the history it asked for was compacted.
pub(crate) fn is_compacted(error: &EtcdError) -> bool {
    matches!(error.kind(), ErrorKind::Compacted { .. })
}
