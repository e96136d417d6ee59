//! The puts and deletes under a prefix, as the server reports them to a
//! watch: what a test awaits instead of sleeping.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_tower::watch::{EventKind, WatchBatch, WatchOptions, Watcher};
use etcd_tower::Client;
use futures::StreamExt;

/// How long one expected event may take to arrive.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A put or a delete of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The key was written (created or updated).
    Put(String),
    /// The key was deleted (by a delete, a txn, or its lease ending).
    Delete(String),
}

/// The changes under a prefix from the moment [`KeyEvents::watch`]
/// returned, one at a time and in revision order.
pub struct KeyEvents {
    prefix: String,
    watcher: Watcher,
    pending: VecDeque<Change>,
}

impl KeyEvents {
    /// Watches every key under `prefix`; every change after this returns
    /// is seen.
    pub async fn watch(client: &Client, prefix: &str) -> KeyEvents {
        let watcher = client
            .watch(prefix, WatchOptions::new().prefix())
            .await
            .unwrap();
        KeyEvents {
            prefix: prefix.to_owned(),
            watcher,
            pending: VecDeque::new(),
        }
    }

    /// The next change, waiting at most 5 s for it.
    pub async fn next(&mut self, what: &str) -> Change {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return change;
            }
            let batch = tokio::time::timeout(EVENT_TIMEOUT, self.watcher.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{what}: no change under {} within {EVENT_TIMEOUT:?}",
                        self.prefix
                    )
                })
                .unwrap_or_else(|| panic!("{what}: the watch on {} ended", self.prefix))
                .unwrap_or_else(|e| panic!("{what}: the watch on {} failed: {e}", self.prefix));
            self.queue(batch);
        }
    }

    fn queue(&mut self, batch: WatchBatch) {
        for event in batch.into_events() {
            let key = String::from_utf8_lossy(event.key()).into_owned();
            self.pending.push_back(match event.kind() {
                EventKind::Delete => Change::Delete(key),
                EventKind::Put => Change::Put(key),
                EventKind::Unknown(number) => panic!("event type {number} on {key}"),
            });
        }
    }

    /// Asserts that the next change is `expected`.
    pub async fn expect(&mut self, expected: Change, what: &str) {
        let change = self.next(what).await;
        assert_eq!(change, expected, "{what}: unexpected change");
    }

    /// Whether a change is already waiting to be read (buffered here or in
    /// the watcher), without waiting for one.
    pub async fn has_pending(&mut self) -> bool {
        if !self.pending.is_empty() {
            return true;
        }
        match tokio::time::timeout(Duration::ZERO, self.watcher.next()).await {
            Err(_) => false,
            Ok(Some(Ok(batch))) => {
                self.queue(batch);
                !self.pending.is_empty()
            }
            Ok(other) => panic!("the watch on {} ended: {other:?}", self.prefix),
        }
    }
}
