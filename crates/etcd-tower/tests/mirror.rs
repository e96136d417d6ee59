//! The mirror's syncer against real etcd: a copy at one revision while
//! writers change the prefix, then every change exactly once, across a cut
//! stream, and a new copy after the history it needed was compacted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use etcd_tower::mirror::{MirrorChange, MirrorUpdate, ResetReason, Syncer};
use etcd_tower::{Client, CompactOptions, GetOptions};
use etcd_tower_testkit::Proxy;
use futures_util::future::try_join_all;
use support::{each_version, single};

/// What a consumer holds: the model every test checks against the server.
#[derive(Default)]
struct Copy {
    kvs: BTreeMap<Bytes, Bytes>,
    /// The revision the copy is at.
    revision: i64,
    resets: Vec<ResetReason>,
    /// Every change applied, as (revision, key), to find repeats.
    changes: Vec<(i64, Bytes)>,
}

impl Copy {
    fn apply(&mut self, update: MirrorUpdate) {
        match update {
            MirrorUpdate::Reset { reason } => {
                self.kvs.clear();
                self.resets.push(reason);
            }
            MirrorUpdate::Page { revision, kvs } => {
                assert!(revision >= self.revision, "a page went back to {revision}");
                self.revision = revision;
                self.kvs
                    .extend(kvs.into_iter().map(|kv| kv.into_key_value()));
            }
            MirrorUpdate::Synced { revision } => self.revision = revision,
            MirrorUpdate::Changes { revision, changes } => {
                for change in changes {
                    let at = change.revision();
                    assert!(at > self.revision, "change at {at} after {}", self.revision);
                    self.revision = at;
                    self.changes
                        .push((at, Bytes::copy_from_slice(change.key())));
                    match change {
                        MirrorChange::Put(kv) => {
                            let (key, value) = kv.into_key_value();
                            self.kvs.insert(key, value);
                        }
                        MirrorChange::Delete { key, .. } => {
                            self.kvs.remove(&key);
                        }
                    }
                }
                assert_eq!(self.revision, revision);
            }
        }
    }

    /// Applies updates until the copy is synced.
    async fn sync(&mut self, syncer: &mut Syncer) {
        loop {
            let update = syncer.next().await.unwrap();
            let synced = matches!(update, MirrorUpdate::Synced { .. });
            self.apply(update);
            if synced {
                return;
            }
        }
    }

    /// Applies updates until the copy reached `revision` (after a sync).
    async fn follow_to(&mut self, syncer: &mut Syncer, revision: i64) {
        while self.revision < revision {
            let update = syncer.next().await.unwrap();
            self.apply(update);
        }
    }
}

/// Fails naming the first key where the copy and the server differ (the
/// maps are too large to print whole).
fn same(copy: &BTreeMap<Bytes, Bytes>, server: &BTreeMap<Bytes, Bytes>) {
    let differs = copy
        .iter()
        .zip(server.iter())
        .find(|(ours, theirs)| ours != theirs);
    assert!(
        differs.is_none() && copy.len() == server.len(),
        "the copy ({} keys) differs from the server ({} keys), first at {differs:?}",
        copy.len(),
        server.len()
    );
}

/// The prefix on the server at `revision` (0: now).
async fn server_state(client: &Client, prefix: &str, revision: i64) -> BTreeMap<Bytes, Bytes> {
    let found = client
        .get_with(prefix, GetOptions::new().prefix().revision(revision))
        .await
        .unwrap();
    assert!(!found.more());
    found
        .into_kvs()
        .into_iter()
        .map(|kv| kv.into_key_value())
        .collect()
}

/// Puts `count` keys `prefix{i:05}`, 50 at a time.
async fn fill(client: &Client, prefix: &str, count: usize) -> i64 {
    let mut revision = 0;
    for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
        let puts = chunk
            .iter()
            .map(|i| client.put(format!("{prefix}{i:05}"), format!("v{i}")));
        for put in try_join_all(puts).await.unwrap() {
            revision = revision.max(put.revision());
        }
    }
    revision
}

#[tokio::test]
async fn copies_at_one_revision_while_written_then_follows_every_change() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        fill(&client, "m/", 2_500).await;
        // Neighbours that are not under the prefix.
        client.put("m", "outside").await.unwrap();
        client.put("m0", "outside").await.unwrap();

        let mut syncer = Syncer::new(&client, "m/").batch_size(1_000);
        let mut copy = Copy::default();
        let reset = syncer.next().await.unwrap();
        assert!(matches!(reset, MirrorUpdate::Reset { .. }), "{reset:?}");
        copy.apply(reset);
        let first = syncer.next().await.unwrap();
        let MirrorUpdate::Page {
            revision: at,
            ref kvs,
        } = first
        else {
            panic!("expected the first page, got {first:?}");
        };
        assert_eq!(kvs.len(), 1_000);
        copy.apply(first);

        // Writes between the pages: updates, deletes, new keys.
        for i in 0..100 {
            client
                .put(format!("m/{:05}", i * 20), "changed")
                .await
                .unwrap();
            client.delete(format!("m/{:05}", i * 20 + 1)).await.unwrap();
            client.put(format!("m/new{i}"), "new").await.unwrap();
        }
        let last = client.put("m/zz", "last").await.unwrap().revision();

        copy.sync(&mut syncer).await;
        assert_eq!(
            copy.revision, at,
            "every page is read at the first one's revision"
        );
        same(&copy.kvs, &server_state(&client, "m/", at).await);
        assert_eq!(copy.kvs.len(), 2_500);

        copy.follow_to(&mut syncer, last).await;
        same(&copy.kvs, &server_state(&client, "m/", 0).await);
        assert_eq!(copy.changes.len(), 301, "each change once");
        assert_eq!(copy.resets, [ResetReason::Start]);
    })
    .await;
}

#[tokio::test]
async fn an_empty_prefix_mirrors_everything_and_an_old_revision_is_honoured() {
    each_version(30, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let before = fill(&client, "a/", 10).await;
        client.put("b", "later").await.unwrap();

        let mut copy = Copy::default();
        let mut syncer = Syncer::new(&client, "").at_revision(before).batch_size(3);
        copy.sync(&mut syncer).await;
        assert_eq!(copy.revision, before);
        assert_eq!(copy.kvs.len(), 10, "the copy is as of the revision asked");
        let now = client.put("c", "now").await.unwrap().revision();
        copy.follow_to(&mut syncer, now).await;
        same(&copy.kvs, &server_state(&client, "", 0).await);
    })
    .await;
}

#[tokio::test]
async fn a_cut_stream_loses_and_repeats_nothing_and_compaction_starts_a_new_copy() {
    each_version(60, |bin| async move {
        let (cluster, writer) = single(&bin).await;
        let proxy = Proxy::start(cluster.member(0).client_addr()).await.unwrap();
        let client = Client::connect([proxy.endpoint()]).await.unwrap();
        fill(&writer, "p/", 30).await;

        let mut copy = Copy::default();
        let mut syncer = Syncer::new(&client, "p/");
        copy.sync(&mut syncer).await;
        let synced_at = copy.revision;

        // Writes while the stream is cut, twice, and a delete of the whole
        // prefix.
        let mut last = 0;
        for round in 0..2 {
            proxy.cut();
            for i in 0..10 {
                last = writer
                    .put(format!("p/{i:05}"), format!("round {round}"))
                    .await
                    .unwrap()
                    .revision();
            }
            copy.follow_to(&mut syncer, last).await;
        }
        same(&copy.kvs, &server_state(&writer, "p/", 0).await);
        assert_eq!(copy.changes.len(), 20, "every change once");
        assert!(copy.changes.iter().all(|(at, _)| *at > synced_at));

        // The syncer cannot reach the server while the history it needs
        // is written and compacted away.
        proxy.reject_new(true);
        proxy.cut();
        writer.put("p/after", "compaction").await.unwrap();
        writer.delete("p/00003").await.unwrap();
        let compacted = writer.put("p/last", "one").await.unwrap().revision();
        writer
            .compact_with(compacted, CompactOptions::new().physical())
            .await
            .unwrap();
        proxy.reject_new(false);

        let update = tokio::time::timeout(Duration::from_secs(20), syncer.next())
            .await
            .expect("the syncer comes back after the fault")
            .unwrap();
        assert!(
            matches!(
                update,
                MirrorUpdate::Reset {
                    reason: ResetReason::Compacted { .. }
                }
            ),
            "a compacted history starts a new copy, got {update:?}"
        );
        copy.apply(update);
        copy.sync(&mut syncer).await;
        assert!(copy.revision >= compacted);
        same(&copy.kvs, &server_state(&writer, "p/", 0).await);
        assert!(!copy.kvs.contains_key(&b"p/00003"[..]));

        let now = writer.put("p/followed", "again").await.unwrap().revision();
        copy.follow_to(&mut syncer, now).await;
        same(&copy.kvs, &server_state(&writer, "p/", 0).await);
    })
    .await;
}

#[tokio::test]
async fn a_dropped_next_loses_nothing() {
    each_version(30, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        fill(&client, "d/", 5).await;
        let mut copy = Copy::default();
        let mut syncer = Syncer::new(&client, "d/").batch_size(2);
        copy.sync(&mut syncer).await;
        // A wait for a change that does not come, given up.
        let waited = tokio::time::timeout(Duration::from_millis(300), syncer.next()).await;
        assert!(waited.is_err());
        let now = client.put("d/00001", "changed").await.unwrap().revision();
        copy.follow_to(&mut syncer, now).await;
        same(&copy.kvs, &server_state(&client, "d/", 0).await);
        assert_eq!(copy.changes.len(), 1);
    })
    .await;
}
