//! Waiting for a sequence of changes of a key or a prefix: Go's
//! `recipe.WaitEvents` and `recipe.WaitPrefixEvents`
//! (`client/v3/experimental/recipes/watch.go`, etcd v3.5.30), on the
//! client's watch engine.
//!
//! A recipe that waits for another process to release something (delete
//! its key, put a `ready` key) reads the state, then watches *from the
//! revision of that read*: a change made between the read and the watch is
//! still seen, and nothing polls. Because the watch goes through the
//! client's engine, it survives an expired token, a cut connection or a
//! member restart, resumed from where it was. Dropping the future stops the
//! watch; nothing is left on the server.

use bytes::Bytes;
use etcd_tower_core::{ErrorKind, EtcdError};
use etcd_tower_watch::{EventKind, WatchEvent, WatchOptions};
use futures_util::StreamExt;

use super::watch_ended;
use crate::bytes::IntoBytes;
use crate::client::Client;

/// Waits until `key` has gone through `events` in order, watching it from
/// `revision` on, and returns the event that matched last (Go's
/// `WaitEvents`): `&[EventKind::Delete]` waits for a deletion,
/// `&[EventKind::Put, EventKind::Delete]` for a put and then a deletion.
/// Events of other types in between are skipped. The watch goes through
/// the client's watch engine, so it survives an expired token, a cut
/// connection or a member restart; dropping the future stops it and leaves
/// nothing on the server.
///
/// Fails with [`ErrorKind::Compacted`] if `revision` is compacted away
/// (read the key again and wait from the revision of that read), and with
/// [`ErrorKind::InvalidRequest`] if `events` is empty.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use etcd_tower::concurrency::{wait_events, EventKind};
/// use etcd_tower::Client;
///
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// let job = client.get("jobs/42/owner").await?;
/// if !job.kvs().is_empty() {
///     // Waits until the owner key is deleted, from the revision just read.
///     wait_events(&client, "jobs/42/owner", job.revision(), &[EventKind::Delete]).await?;
/// }
/// # Ok(())
/// # }
/// ```
pub async fn wait_events(
    client: &Client,
    key: impl IntoBytes,
    revision: i64,
    events: &[EventKind],
) -> Result<WatchEvent, EtcdError> {
    let options = WatchOptions::new().start_revision(revision);
    wait_sequence(client, key.into_bytes(), options, events).await
}

/// [`wait_events`] for every key under `prefix` (Go's
/// `WaitPrefixEvents`): the events may be of different keys.
pub async fn wait_prefix_events(
    client: &Client,
    prefix: impl IntoBytes,
    revision: i64,
    events: &[EventKind],
) -> Result<WatchEvent, EtcdError> {
    let options = WatchOptions::new().prefix().start_revision(revision);
    wait_sequence(client, prefix.into_bytes(), options, events).await
}

/// Watches `key` with `options` until `events` were seen in order (Go's
/// `waitEvents`); the last one.
pub(crate) async fn wait_sequence(
    client: &Client,
    key: Bytes,
    options: WatchOptions,
    events: &[EventKind],
) -> Result<WatchEvent, EtcdError> {
    if events.is_empty() {
        return Err(EtcdError::client(
            ErrorKind::InvalidRequest,
            "waiting for no events at all: name at least one event type",
        ));
    }
    let mut watcher = client.watch_engine().watch(key, options).await?;
    let mut seen = 0;
    loop {
        let batch = match watcher.next().await {
            Some(batch) => batch?,
            None => return Err(watch_ended()),
        };
        for event in batch.into_events() {
            if events.get(seen) == Some(&event.kind()) {
                seen += 1;
                if seen == events.len() {
                    return Ok(event);
                }
            }
        }
    }
}
