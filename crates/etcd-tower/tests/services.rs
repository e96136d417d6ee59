//! etcd's lock and election services, and watches through the facade,
//! against etcd 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower::proto::mvccpb::event::EventType;
use etcd_tower::watch::WatchOptions;
use etcd_tower::{ErrorKind, LeaseKeeper};
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
        assert_eq!(event.r#type(), EventType::Put);
        assert_eq!(&event.prev_kv.as_ref().unwrap().value[..], b"0");
        let batch = timeout(Duration::from_secs(5), history.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(batch.events()[0].kv.as_ref().unwrap().mod_revision, start);
        let batch = timeout(Duration::from_secs(5), deletes.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(batch.events()[0].r#type(), EventType::Delete);
    })
    .await;
}
