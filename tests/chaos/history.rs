//! The server's own history, recorded by the historian, and an index to
//! ask it "what was key K at revision R?".
//!
//! # Why a historian, and why it is sound
//!
//! The run compacts the store, so the history cannot simply be read back
//! at the end. Instead a dedicated watcher on a *raw* client (no
//! namespace, same auth, same proxies, same faults) watches every key from
//! revision 1 and keeps every event. Its record is only trusted because it
//! is checked, independently of the watch engine it runs on:
//!
//! * **gap-free**: every KV write makes one new revision, and nothing but
//!   the workload writes KV, so the events' revisions must be exactly
//!   2, 3, ..., F with no revision missing or repeated out of order, where
//!   F is the store's revision read at the end;
//! * **consistent**: replaying the events must give each key's
//!   `create_revision` and `version` as the server reported them;
//! * **equal to the server**: before each compaction at R the compactor
//!   reads the whole namespace *at revision R* (still readable then) and at
//!   the end the whole namespace at F; replaying the history to R must give
//!   exactly that state (values, revisions, versions, leases);
//! * **never compacted**: compactions only ever go to revisions the
//!   historian has already delivered, so its resumes never need compacted
//!   history.
//!
//! A historian that lost, repeated or reordered anything would fail one of
//! these, and that would itself be a watch-engine bug.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_tower::Client;
use etcd_tower_watch::WatchOptions;
use futures::StreamExt;
use tokio::sync::Mutex as AsyncMutex;

use crate::model::{KvState, Recorder};

/// One event of the server's history.
#[derive(Clone, Debug)]
pub struct HEvent {
    pub rev: i64,
    pub key: Bytes,
    pub put: bool,
    pub kv: KvState,
}

/// Runs the historian until `rec.stop` and the caller's final revision;
/// events go to `out`. Returns an error text if its watch ended.
pub async fn historian(
    raw: Client,
    rec: Arc<Recorder>,
    out: Arc<AsyncMutex<Vec<HEvent>>>,
    mut done: tokio::sync::watch::Receiver<Option<i64>>,
) -> Result<(), String> {
    let mut watcher = raw
        .watch_engine()
        .watch(
            "",
            WatchOptions::new()
                .prefix()
                .start_revision(1)
                .buffer(1 << 16),
        )
        .await
        .map_err(|e| format!("the historian's watch() failed: {e}"))?;
    loop {
        let target = *done.borrow();
        let last = rec.historian_rev.load(Ordering::Relaxed);
        if let Some(final_rev) = target {
            if last >= final_rev {
                return Ok(());
            }
        }
        let item = tokio::select! {
            item = watcher.next() => item,
            _ = done.changed() => continue,
            () = tokio::time::sleep(Duration::from_millis(500)) => continue,
        };
        let batch = match item {
            None => return Err("the historian's watcher ended without an error".into()),
            Some(Err(e)) => return Err(format!("the historian's watcher failed: {e}")),
            Some(Ok(batch)) => batch,
        };
        let mut events = out.lock().await;
        for event in batch.events() {
            let Some(kv) = event.kv.as_ref() else {
                continue;
            };
            events.push(HEvent {
                rev: kv.mod_revision,
                key: kv.key.clone(),
                put: event.r#type == 0,
                kv: KvState {
                    value: kv.value.clone(),
                    mod_rev: kv.mod_revision,
                    create_rev: kv.create_revision,
                    version: kv.version,
                    lease: kv.lease,
                },
            });
            rec.historian_rev
                .fetch_max(kv.mod_revision, Ordering::Relaxed);
        }
    }
}

/// The history, indexed by key and by value.
#[derive(Debug, Default)]
pub struct History {
    pub events: Vec<HEvent>,
    /// Each key's states in revision order: `(rev, state or None if deleted)`.
    by_key: HashMap<Bytes, Vec<(i64, Option<KvState>)>>,
    /// Indexes of the put events that wrote each value.
    pub by_value: HashMap<Bytes, Vec<usize>>,
}

impl History {
    pub fn new(events: Vec<HEvent>) -> History {
        let mut by_key: HashMap<Bytes, Vec<(i64, Option<KvState>)>> = HashMap::new();
        let mut by_value: HashMap<Bytes, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            let state = e.put.then(|| e.kv.clone());
            by_key
                .entry(e.key.clone())
                .or_default()
                .push((e.rev, state));
            if e.put {
                by_value.entry(e.kv.value.clone()).or_default().push(i);
            }
        }
        History {
            events,
            by_key,
            by_value,
        }
    }

    /// The state of `key` at revision `rev` (after every write ≤ rev).
    pub fn state_at(&self, key: &[u8], rev: i64) -> Option<&KvState> {
        let versions = self.by_key.get(key)?;
        let after = versions.partition_point(|(r, _)| *r <= rev);
        versions[..after].last().and_then(|(_, s)| s.as_ref())
    }

    /// Every key that ever existed.
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.by_key.keys()
    }
}
