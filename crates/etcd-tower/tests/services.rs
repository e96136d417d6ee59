//! etcd's lock and election services, and watches through the facade,
//! against etcd 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower::watch::{EventKind, WatchBatch, WatchConfig, WatchOptions, Watcher};
use etcd_tower::{Client, ErrorKind, LeaseKeeper};
use futures::StreamExt;
use support::{each_version, single};
use tokio::time::timeout;

#[tokio::test]
async fn lock_service() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let a = LeaseKeeper::grant(&client, 10).await.unwrap();
        let b = LeaseKeeper::grant(&client, 10).await.unwrap();
        let held = client.lock("jobs/x", a.id()).await.unwrap();
        assert!(held.key.starts_with(b"jobs/x/"));
        let waiter = {
            let client = client.clone();
            let lease = b.id();
            tokio::spawn(async move { client.lock("jobs/x", lease).await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "the lock is held");
        client.unlock(held.key.clone()).await.unwrap();
        let second = timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        // Revoking the holder's lease releases the lock as well.
        let waiter = {
            let client = client.clone();
            let lease = a.id();
            tokio::spawn(async move { client.lock("jobs/x", lease).await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());
        b.revoke().await.unwrap();
        timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(client.get(second.key).await.unwrap().kvs().is_empty());
        let e = client.lock("", a.id()).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::EmptyKey);
    })
    .await;
}

#[tokio::test]
async fn election_service() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let e = client.leader("svc").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::ElectionNoLeader, "{e}");
        let a = LeaseKeeper::grant(&client, 10).await.unwrap();
        let b = LeaseKeeper::grant(&client, 10).await.unwrap();
        let lead = client.campaign("svc", "a", a.id()).await.unwrap();
        assert_eq!(client.leader("svc").await.unwrap().value(), b"a");
        let mut changes = client.observe("svc").await.unwrap();
        let first = timeout(Duration::from_secs(5), changes.next())
            .await
            .unwrap();
        assert_eq!(first.unwrap().unwrap().value(), b"a");
        client.proclaim(&lead, "a2").await.unwrap();
        let next = timeout(Duration::from_secs(5), changes.next())
            .await
            .unwrap();
        assert_eq!(next.unwrap().unwrap().value(), b"a2");

        let candidate = {
            let client = client.clone();
            let lease = b.id();
            tokio::spawn(async move { client.campaign("svc", "b", lease).await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!candidate.is_finished());
        client.resign(&lead).await.unwrap();
        let b_lead = timeout(Duration::from_secs(5), candidate)
            .await
            .unwrap()
            .unwrap();
        let next = timeout(Duration::from_secs(5), changes.next())
            .await
            .unwrap();
        assert_eq!(next.unwrap().unwrap().value(), b"b");
        let e = client.proclaim(&lead, "stale").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::ElectionNotLeader, "{e}");
        client.resign(&b_lead).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn watch_through_the_engine() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let start = client.put("w/a", "0").await.unwrap().revision();
        let mut prefix = client
            .watch("w/", WatchOptions::new().prefix().prev_kv())
            .await
            .unwrap();
        let mut history = client
            .watch("w/a", WatchOptions::new().start_revision(start))
            .await
            .unwrap();
        let mut deletes = client
            .watch("w/", WatchOptions::new().prefix().no_put())
            .await
            .unwrap();
        client.put("w/a", "1").await.unwrap();
        client.delete("w/a").await.unwrap();

        let batch = timeout(Duration::from_secs(5), prefix.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let event = &batch.events()[0];
        assert_eq!(event.kind(), EventKind::Put);
        assert_eq!(&event.prev_kv().unwrap().value[..], b"0");
        let batch = timeout(Duration::from_secs(5), history.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(batch.events()[0].mod_revision(), start);
        let batch = timeout(Duration::from_secs(5), deletes.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(batch.events()[0].kind(), EventKind::Delete);
    })
    .await;
}

async fn next_batch(watcher: &mut Watcher) -> WatchBatch {
    timeout(Duration::from_secs(5), watcher.next())
        .await
        .expect("a batch within 5 s")
        .expect("the watch goes on")
        .expect("a batch, not an error")
}

#[tokio::test]
async fn typed_watch_events() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let mut watcher = client
            .watch("t/", WatchOptions::new().prefix().prev_kv())
            .await
            .unwrap();
        let created = client.put("t/k", "one").await.unwrap().revision();
        let updated = client.put("t/k", "two").await.unwrap().revision();
        let deleted = client.delete("t/k").await.unwrap().revision();
        let mut events = Vec::new();
        while events.len() < 3 {
            events.extend(next_batch(&mut watcher).await.into_events());
        }
        let [create, update, delete] = <[_; 3]>::try_from(events).unwrap();

        assert_eq!(create.kind(), EventKind::Put);
        assert!(create.is_create(), "the first put creates the key");
        assert_eq!(
            (create.key_str(), create.value_str()),
            (Ok("t/k"), Ok("one"))
        );
        assert_eq!(create.mod_revision(), created);
        assert_eq!(create.kv().unwrap().create_revision, created);
        assert!(create.prev_kv().is_none(), "nothing before a create");

        assert_eq!(update.kind(), EventKind::Put);
        assert!(!update.is_create(), "the second put updates it");
        assert_eq!((update.key(), update.value()), (&b"t/k"[..], &b"two"[..]));
        assert_eq!(update.mod_revision(), updated);
        assert_eq!(update.kv().unwrap().create_revision, created);
        assert_eq!(&update.prev_kv().unwrap().value[..], b"one");

        assert_eq!(delete.kind(), EventKind::Delete);
        assert!(!delete.is_create());
        assert_eq!((delete.key_str(), delete.value_str()), (Ok("t/k"), Ok("")));
        assert_eq!(delete.mod_revision(), deleted);
        let before = delete.prev_kv().unwrap();
        assert_eq!(
            (&before.value[..], before.mod_revision),
            (&b"two"[..], updated)
        );
        // The proto stays at hand.
        assert_eq!(delete.as_proto().r#type, 1);
    })
    .await;
}

/// `ClientBuilder::watch_config` reaches the client's watch engine: with a
/// two-event buffer, a reader that does not read makes its watcher lag
/// (the crate docs' slow-consumer behaviour), and it still gets every
/// event once, in order, when it reads; the default keeps 1024 events.
#[tokio::test]
async fn the_builders_watch_config_reaches_the_engine() {
    each_version(60, |bin| async move {
        let (cluster, default) = single(&bin).await;
        assert_eq!(default.watch_engine().config(), &WatchConfig::default());
        let config = WatchConfig::default()
            .buffer(2)
            .open_timeout(Duration::from_secs(3));
        let client = Client::builder(cluster.endpoints())
            .watch_config(config.clone())
            .connect()
            .await
            .unwrap();
        assert_eq!(client.watch_engine().config(), &config);

        let mut slow = client
            .watch("lag/", WatchOptions::new().prefix())
            .await
            .unwrap();
        let mut roomy = default
            .watch("lag/", WatchOptions::new().prefix())
            .await
            .unwrap();
        let mut revisions = Vec::new();
        for i in 0..8 {
            revisions.push(
                client
                    .put(format!("lag/{i}"), "v")
                    .await
                    .unwrap()
                    .revision(),
            );
        }
        // The default watcher gets all eight without lagging...
        let mut got = Vec::new();
        while got.len() < 8 {
            got.extend(
                next_batch(&mut roomy)
                    .await
                    .events()
                    .iter()
                    .map(|e| e.mod_revision()),
            );
        }
        assert_eq!(got, revisions);
        assert!(!roomy.is_lagging());
        // ... by then the slow one, with room for two, lags (bounded wait).
        let mut lagged = slow.is_lagging();
        for _ in 0..200 {
            if lagged {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            lagged = slow.is_lagging();
        }
        assert!(lagged, "a two-event buffer holding eight events lags");
        let mut got = Vec::new();
        while got.len() < 8 {
            got.extend(
                next_batch(&mut slow)
                    .await
                    .events()
                    .iter()
                    .map(|e| e.mod_revision()),
            );
        }
        assert_eq!(got, revisions, "nothing lost or repeated after the lag");
    })
    .await;
}
