//! A service's instances as they change: [`EndpointUpdates`], the stream
//! Go's `Manager.NewWatchChannel` gives, and the one place this crate
//! lists and watches etcd.
//!
//! The list and the watch are one consistent view: the watch starts at
//! the revision after the list's, so an instance registered or gone in
//! between is an update, never missed, and the client's watch engine
//! resumes the watch across member restarts and broken connections
//! without losing or repeating an event.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use etcd_tower::watch::{EventKind, WatchEvent, WatchOptions, Watcher};
use etcd_tower::{Client, EtcdError, GetOptions};
use futures_core::Stream;

use crate::endpoint::Endpoint;

/// What happened to an endpoint: Go's `endpoints.Operation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// The endpoint was added, or its value replaced.
    Add,
    /// The endpoint's key was deleted (or its lease ended).
    Delete,
}

/// One change of one endpoint: Go's `endpoints.Update`. A
/// [`Delete`](Operation::Delete) carries an empty endpoint, as Go's does.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// Added or deleted.
    pub op: Operation,
    /// The endpoint's key in etcd (`<target>/<addr>` by convention).
    pub key: String,
    /// The endpoint; empty for a delete.
    pub endpoint: Endpoint,
}

/// A service's endpoints at one revision: the answer of
/// [`EndpointManager::list`](crate::EndpointManager::list).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointList {
    /// The store's revision the list was read at.
    pub revision: i64,
    /// The endpoints, by key.
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// Reads every endpoint under `prefix` (`<target>/`), skipping the values
/// Go's manager would skip too.
pub(crate) async fn list(client: &Client, prefix: &str) -> Result<EndpointList, EtcdError> {
    let found = client.get_with(prefix, GetOptions::new().prefix()).await?;
    let mut endpoints = BTreeMap::new();
    for kv in found.kvs() {
        let Ok(key) = kv.key_str() else {
            tracing::warn!(key = ?kv.key(), "an endpoint key that is not UTF-8; skipped");
            continue;
        };
        match Endpoint::from_json(kv.value()) {
            Ok(endpoint) => {
                endpoints.insert(key.to_owned(), endpoint);
            }
            Err(error) => tracing::warn!(key, %error, "an endpoint that cannot be read; skipped"),
        }
    }
    Ok(EndpointList {
        revision: found.revision(),
        endpoints,
    })
}

/// Watches every key under `prefix` from `revision` on.
pub(crate) async fn watch_from(
    client: &Client,
    prefix: &str,
    revision: i64,
) -> Result<Watcher, EtcdError> {
    let options = WatchOptions::new().prefix().start_revision(revision);
    client.watch(prefix, options).await
}

/// The update an event makes, as Go's manager reads it: a put is an
/// addition (if its value can be read), a delete a removal.
pub(crate) fn update_of(event: &WatchEvent) -> Option<Update> {
    let kv = event.kv()?;
    let Ok(key) = std::str::from_utf8(&kv.key) else {
        tracing::warn!(key = ?kv.key, "an endpoint key that is not UTF-8; skipped");
        return None;
    };
    let key = key.to_owned();
    match event.kind() {
        EventKind::Put => match Endpoint::from_json(&kv.value) {
            Ok(endpoint) => Some(Update {
                op: Operation::Add,
                key,
                endpoint,
            }),
            Err(error) => {
                tracing::warn!(key, %error, "an endpoint that cannot be read; skipped");
                None
            }
        },
        EventKind::Delete => Some(Update {
            op: Operation::Delete,
            key,
            endpoint: Endpoint::new(""),
        }),
        EventKind::Unknown(number) => {
            tracing::warn!(key, number, "a watch event of an unknown type; skipped");
            None
        }
    }
}

/// A service's endpoints, then their changes: a [`Stream`] of batches of
/// [`Update`]s, as Go's `Manager.NewWatchChannel` delivers them. The first
/// batch adds every endpoint there was (left out when there was none);
/// each later one holds the changes of one watch response. It ends after
/// an error (the watch's history was compacted away, permission denied):
/// list again to go on.
#[derive(Debug)]
pub struct EndpointUpdates {
    initial: Option<Vec<Update>>,
    watcher: Watcher,
}

impl EndpointUpdates {
    pub(crate) async fn start(client: &Client, prefix: &str) -> Result<Self, EtcdError> {
        let listed = list(client, prefix).await?;
        let watcher = watch_from(client, prefix, listed.revision + 1).await?;
        let initial: Vec<Update> = listed
            .endpoints
            .into_iter()
            .map(|(key, endpoint)| Update {
                op: Operation::Add,
                key,
                endpoint,
            })
            .collect();
        Ok(EndpointUpdates {
            initial: (!initial.is_empty()).then_some(initial),
            watcher,
        })
    }
}

impl Stream for EndpointUpdates {
    type Item = Result<Vec<Update>, EtcdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(initial) = self.initial.take() {
            return Poll::Ready(Some(Ok(initial)));
        }
        loop {
            match Pin::new(&mut self.watcher).poll_next(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    let updates: Vec<Update> =
                        batch.events().iter().filter_map(update_of).collect();
                    // Progress notifications and unreadable puts: nothing.
                    if !updates.is_empty() {
                        return Poll::Ready(Some(Ok(updates)));
                    }
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
