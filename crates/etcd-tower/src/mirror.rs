//! Mirroring a prefix: [`Syncer`] copies every key under a prefix as of
//! one revision, then every later change, without a gap or a repeat.
//!
//! This is Go's `client/v3/mirror` (`SyncBase`, then `SyncUpdates` from the
//! copy's revision + 1), with what it leaves to the caller done here:
//!
//! * **One revision for the whole copy.** The copy is read in pages
//!   ([`batch_size`](Syncer::batch_size), 1,000 keys as in Go), every page
//!   at the revision of the first, so the copy is a consistent snapshot
//!   however many writes happen while it is read.
//! * **No gap after it.** The changes start at the copy's revision + 1, on
//!   the watch engine, which resumes across restarts, cut streams, leader
//!   changes and token expiry from the last revision it delivered.
//! * **Compaction is survived, not reported.** When the history the syncer
//!   needs is compacted away (a copy slower than the compactor, or a watch
//!   that was disconnected past a compaction), it starts a new copy at the
//!   current revision and says so with [`MirrorUpdate::Reset`]. Go's
//!   syncer ends there with an error.
//!
//! What the consumer does with the updates:
//!
//! | update | meaning |
//! |---|---|
//! | [`Reset`](MirrorUpdate::Reset) | a copy begins; the pages that follow replace everything held under the prefix |
//! | [`Page`](MirrorUpdate::Page) | keys of the copy, in key order |
//! | [`Synced`](MirrorUpdate::Synced) | the copy is complete: the consumer holds the prefix as of that revision |
//! | [`Changes`](MirrorUpdate::Changes) | puts and deletes after it, in revision order |
//!
//! A consumer that must never show an empty or half-copied mirror keeps
//! what it holds on a `Reset`, notes the keys the pages name, and at
//! `Synced` deletes the keys the copy did not name (the `mirror` example
//! does this to copy a prefix into another cluster).
//!
//! [`Syncer::next`] is cancel-safe: a call dropped in a `select!` or a
//! `timeout` loses nothing, and the next call goes on from the same place.
//! An error (permission denied, the cluster unreachable past the client's
//! retries) is returned once; calling `next` again goes on from the last
//! revision delivered.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use std::collections::BTreeMap;
//! use etcd_tower::mirror::{MirrorChange, MirrorUpdate, Syncer};
//! use etcd_tower::Client;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let mut syncer = Syncer::new(&client, "config/");
//! let mut copy = BTreeMap::new();
//! loop {
//!     match syncer.next().await? {
//!         MirrorUpdate::Reset { .. } => copy.clear(),
//!         MirrorUpdate::Page { kvs, .. } => {
//!             copy.extend(kvs.into_iter().map(|kv| kv.into_key_value()));
//!         }
//!         MirrorUpdate::Synced { revision } => println!("copied at {revision}"),
//!         MirrorUpdate::Changes { changes, .. } => {
//!             for change in changes {
//!                 match change {
//!                     MirrorChange::Put(kv) => {
//!                         let (key, value) = kv.into_key_value();
//!                         copy.insert(key, value);
//!                     }
//!                     MirrorChange::Delete { key, .. } => {
//!                         copy.remove(&key);
//!                     }
//!                 }
//!             }
//!         }
//!     }
//! }
//! # }
//! ```

use bytes::Bytes;
use etcd_tower_core::{ErrorKind, EtcdError};
use futures_util::{Stream, StreamExt};

use crate::bytes::{prefix_end, IntoBytes};
use crate::client::Client;
use crate::kv::{GetOptions, GetResponse, KeyValue};
use crate::watch::{EventKind, WatchEvent, WatchOptions, Watcher};

/// Go's `batchLimit`: keys per page of the copy.
const DEFAULT_BATCH: i64 = 1000;

/// What the consumer of a [`Syncer`] receives; see the
/// [module docs](self) for what to do with each.
#[derive(Clone, Debug)]
pub enum MirrorUpdate {
    /// A copy of the prefix begins: the [`Page`](Self::Page)s up to the
    /// next [`Synced`](Self::Synced) replace everything the consumer holds
    /// under the prefix.
    Reset {
        /// Why a copy is made.
        reason: ResetReason,
    },
    /// Keys of the copy, in key order, as they were at `revision`.
    Page {
        /// The revision of the copy.
        revision: i64,
        /// The keys and values.
        kvs: Vec<KeyValue>,
    },
    /// The copy is complete: with the pages since the last
    /// [`Reset`](Self::Reset), the consumer holds the prefix as it was at
    /// `revision`. The changes after it follow.
    Synced {
        /// The revision of the copy.
        revision: i64,
    },
    /// Changes after the copy, in revision order: every put and delete of
    /// a key under the prefix, each once.
    Changes {
        /// The revision of the last change.
        revision: i64,
        /// The changes.
        changes: Vec<MirrorChange>,
    },
}

/// Why a [`Syncer`] starts a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// The first copy.
    Start,
    /// The history after the last copy or change was compacted (up to
    /// `compact_revision`, when the server said): the changes since cannot
    /// be replayed, so the prefix is copied again at the current revision.
    Compacted {
        /// The oldest revision the server still had, when it said.
        compact_revision: Option<i64>,
    },
}

/// One change of a key under the mirrored prefix.
#[derive(Clone, Debug)]
pub enum MirrorChange {
    /// The key was created or updated.
    Put(KeyValue),
    /// The key was deleted.
    Delete {
        /// The deleted key.
        key: Bytes,
        /// The revision of the delete.
        revision: i64,
    },
}

impl MirrorChange {
    /// The revision of the change.
    pub fn revision(&self) -> i64 {
        match self {
            MirrorChange::Put(kv) => kv.mod_revision(),
            MirrorChange::Delete { revision, .. } => *revision,
        }
    }

    /// The key changed.
    pub fn key(&self) -> &[u8] {
        match self {
            MirrorChange::Put(kv) => kv.key(),
            MirrorChange::Delete { key, .. } => key,
        }
    }
}

/// Copies a prefix and follows its changes; see the [module docs](self).
#[derive(Debug)]
pub struct Syncer {
    client: Client,
    /// The first key of the span, and its end (Go's spelling: `"\0"` and
    /// `"\0"` for every key).
    key: Bytes,
    range_end: Bytes,
    /// The prefix as the user gave it, for the watch.
    prefix: Bytes,
    batch: i64,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// A copy is to begin, at `revision` (0: the current one).
    Start { revision: i64, reason: ResetReason },
    /// Reading the copy at `revision` (0: not fixed yet, the first page
    /// fixes it); the next page starts at `from`.
    Copying { revision: i64, from: Bytes },
    /// Everything up to `revision` was delivered; `watcher` follows what
    /// comes after (`None`: to be opened).
    Following {
        revision: i64,
        watcher: Option<Watcher>,
    },
    /// The last page of the copy at `revision` was delivered.
    Synced { revision: i64 },
}

impl Syncer {
    /// A syncer of every key under `prefix` (an empty prefix: every key of
    /// the client's keyspace), starting with a copy at the current
    /// revision. Nothing is sent until [`next`](Self::next).
    pub fn new(client: &Client, prefix: impl IntoBytes) -> Syncer {
        let prefix = prefix.into_bytes();
        let (key, range_end) = if prefix.is_empty() {
            (Bytes::from_static(b"\0"), Bytes::from_static(b"\0"))
        } else {
            (prefix.clone(), prefix_end(&prefix))
        };
        Syncer {
            client: client.clone(),
            key,
            range_end,
            prefix,
            batch: DEFAULT_BATCH,
            phase: Phase::Start {
                revision: 0,
                reason: ResetReason::Start,
            },
        }
    }

    /// Makes the first copy at `revision` instead of the current one (Go's
    /// `NewSyncer(c, prefix, rev)`). If that revision is compacted, the
    /// copy is made at the current revision, after a
    /// [`ResetReason::Compacted`] reset.
    pub fn at_revision(mut self, revision: i64) -> Syncer {
        if let Phase::Start {
            revision: first, ..
        } = &mut self.phase
        {
            *first = revision.max(0);
        }
        self
    }

    /// Keys per page of the copy (default 1,000, as Go's; at least 1).
    pub fn batch_size(mut self, keys: i64) -> Syncer {
        self.batch = keys.max(1);
        self
    }

    /// The next update. Cancel-safe: see the [module docs](self).
    pub async fn next(&mut self) -> Result<MirrorUpdate, EtcdError> {
        loop {
            match &mut self.phase {
                Phase::Start { revision, reason } => {
                    let reason = *reason;
                    self.phase = Phase::Copying {
                        revision: *revision,
                        from: self.key.clone(),
                    };
                    return Ok(MirrorUpdate::Reset { reason });
                }
                Phase::Synced { revision } => {
                    let revision = *revision;
                    self.phase = Phase::Following {
                        revision,
                        watcher: None,
                    };
                    return Ok(MirrorUpdate::Synced { revision });
                }
                Phase::Copying { revision, from } => {
                    let (revision, from) = (*revision, from.clone());
                    let page = match self.page(revision, from).await {
                        Ok(page) => page,
                        Err(error) => return self.restart_if_compacted(error),
                    };
                    return Ok(self.after_page(revision, page));
                }
                Phase::Following { revision, watcher } => {
                    let revision = *revision;
                    let watcher = match watcher {
                        Some(watcher) => watcher,
                        None => {
                            let options = WatchOptions::new().prefix().start_revision(revision + 1);
                            let opened = self.client.watch(self.prefix.clone(), options).await;
                            match opened {
                                Ok(opened) => watcher.insert(opened),
                                Err(error) => return self.restart_if_compacted(error),
                            }
                        }
                    };
                    match watcher.next().await {
                        // The engine stopped: open the watch again.
                        None => {
                            self.phase = Phase::Following {
                                revision,
                                watcher: None,
                            }
                        }
                        Some(Err(error)) => {
                            self.phase = Phase::Following {
                                revision,
                                watcher: None,
                            };
                            return self.restart_if_compacted(error);
                        }
                        Some(Ok(batch)) => {
                            let changes = batch
                                .into_events()
                                .into_iter()
                                .map(change)
                                .collect::<Result<Vec<_>, _>>();
                            let changes = match changes {
                                Ok(changes) => changes,
                                Err(error) => {
                                    self.phase = Phase::Following {
                                        revision,
                                        watcher: None,
                                    };
                                    return Err(error);
                                }
                            };
                            // None: a progress notification.
                            if let Some(last) = changes.last().map(MirrorChange::revision) {
                                if let Phase::Following { revision, .. } = &mut self.phase {
                                    *revision = last;
                                }
                                return Ok(MirrorUpdate::Changes {
                                    revision: last,
                                    changes,
                                });
                            }
                        }
                    }
                }
            }
        }
    }

    /// The updates as a stream, for `StreamExt` adapters. It ends after
    /// the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<MirrorUpdate, EtcdError>> + Send {
        futures_util::stream::unfold(Some(self), |syncer| async move {
            let mut syncer = syncer?;
            match syncer.next().await {
                Ok(update) => Some((Ok(update), Some(syncer))),
                Err(error) => Some((Err(error), None)),
            }
        })
    }

    /// One page of the copy at `revision` (0: the current revision).
    async fn page(&self, revision: i64, from: Bytes) -> Result<GetResponse, EtcdError> {
        let options = GetOptions::new()
            .range_end(self.range_end.clone())
            .revision(revision)
            .limit(self.batch);
        self.client.get_with(from, options).await
    }

    /// Where the syncer goes after a page: the next page, or the changes.
    fn after_page(&mut self, revision: i64, page: GetResponse) -> MirrorUpdate {
        let revision = if revision > 0 {
            revision
        } else {
            page.revision()
        };
        let more = page.more();
        let kvs = page.into_kvs();
        let Some(last) = kvs.last() else {
            // An empty prefix, or nothing after the last full page.
            self.phase = Phase::Following {
                revision,
                watcher: None,
            };
            return MirrorUpdate::Synced { revision };
        };
        self.phase = if more {
            // The next page starts just after the last key.
            let mut from = Vec::with_capacity(last.key().len() + 1);
            from.extend_from_slice(last.key());
            from.push(0);
            Phase::Copying {
                revision,
                from: from.into(),
            }
        } else {
            Phase::Synced { revision }
        };
        MirrorUpdate::Page { revision, kvs }
    }

    /// A compacted revision starts a new copy at the current revision; any
    /// other error is the caller's.
    fn restart_if_compacted(&mut self, error: EtcdError) -> Result<MirrorUpdate, EtcdError> {
        let ErrorKind::Compacted { compact_revision } = *error.kind() else {
            return Err(error);
        };
        tracing::debug!(%error, "the mirror's history was compacted: copying again");
        self.phase = Phase::Copying {
            revision: 0,
            from: self.key.clone(),
        };
        Ok(MirrorUpdate::Reset {
            reason: ResetReason::Compacted { compact_revision },
        })
    }
}

/// A watch event as a change. An event of a type this client does not know
/// is an error, not left out: the mirror would silently differ.
fn change(event: WatchEvent) -> Result<MirrorChange, EtcdError> {
    let unexpected = |what: String| EtcdError::client(ErrorKind::UnexpectedResponse, what);
    let kind = event.kind();
    let kv = event
        .into_proto()
        .kv
        .ok_or_else(|| unexpected("a watch event came without its key-value".into()))?;
    match kind {
        EventKind::Put => Ok(MirrorChange::Put(KeyValue::from(kv))),
        EventKind::Delete => Ok(MirrorChange::Delete {
            key: kv.key,
            revision: kv.mod_revision,
        }),
        EventKind::Unknown(number) => Err(unexpected(format!(
            "a watch event has the unknown type {number}"
        ))),
    }
}
