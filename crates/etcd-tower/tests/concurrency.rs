//! Session, Mutex and Election recipes, against etcd 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use etcd_tower::concurrency::{Election, Mutex, Session};
use etcd_tower::{ErrorKind, LeaseLost, Txn, TxnOp};
use futures::StreamExt;
use support::{each_version, single};
use tokio::time::timeout;

/// 8 tasks on 8 sessions each add 1 to a counter 50 times with a
/// read-modify-write under the lock: no update is lost.
#[tokio::test]
async fn mutex_serialises_read_modify_write() {
    each_version(180, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        client.put("counter", "0").await.unwrap();
        let started = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    let session = Session::with_ttl(&client, 10).await.unwrap();
                    let mut mutex = Mutex::new(&session, "locks/counter");
                    for _ in 0..50 {
                        mutex.lock().await.unwrap();
                        let current = client.get("counter").await.unwrap();
                        let n: u64 = current.kvs()[0].value_str().unwrap().parse().unwrap();
                        // Fenced: applied only while the lock is ours.
                        let txn = Txn::new()
                            .when([mutex.is_owner()])
                            .and_then([TxnOp::put("counter", (n + 1).to_string())]);
                        assert!(client.txn(txn).await.unwrap().succeeded());
                        mutex.unlock().await.unwrap();
                    }
                    session.close().await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let total = client.get("counter").await.unwrap();
        assert_eq!(
            total.kvs()[0].value_str().unwrap(),
            "400",
            "{}",
            bin.label()
        );
        eprintln!(
            "{}: 400 locked increments by 8 sessions in {:?}",
            bin.label(),
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn try_lock_and_session_end() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let first = Session::with_ttl(&client, 10).await.unwrap();
        let second = Session::with_ttl(&client, 10).await.unwrap();
        let mut a = Mutex::new(&first, "locks/t");
        let mut b = Mutex::new(&second, "locks/t");
        assert!(a.try_lock().await.unwrap());
        assert!(!b.try_lock().await.unwrap(), "held by a");
        // b waits; closing a's session releases the lock to b.
        let waiter = tokio::spawn(async move {
            b.lock().await.unwrap();
            b
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiter.is_finished());
        first.close().await.unwrap();
        assert_eq!(first.lost().await, LeaseLost::Revoked);
        let mut b = timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        let e = a.lock().await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::LeaseNotFound, "{e}");
        b.unlock().await.unwrap();
        // Locking twice on one session is re-entrant (same key).
        b.lock().await.unwrap();
        b.lock().await.unwrap();
        b.unlock().await.unwrap();
    })
    .await;
}

/// The leader's session stops renewing (as if its process died): the next
/// candidate becomes leader within the TTL, and `observe` shows it.
#[tokio::test]
async fn election_fails_over_when_the_leader_session_dies() {
    each_version(90, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let s1 = Session::with_ttl(&client, 3).await.unwrap();
        let s2 = Session::with_ttl(&client, 3).await.unwrap();
        let ttl = Duration::from_secs(u64::try_from(s1.ttl()).unwrap());
        let mut e1 = Election::new(&s1, "elect/svc");
        let mut e2 = Election::new(&s2, "elect/svc");
        let observer = Election::new(&s2, "elect/svc");
        let e = observer.leader().await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::ElectionNoLeader);
        let mut leaders = observer.observe();

        e1.campaign("one").await.unwrap();
        let seen = timeout(Duration::from_secs(5), leaders.next())
            .await
            .unwrap();
        assert_eq!(seen.unwrap().unwrap().value(), b"one");
        e1.proclaim("one-b").await.unwrap();
        let seen = timeout(Duration::from_secs(5), leaders.next())
            .await
            .unwrap();
        assert_eq!(seen.unwrap().unwrap().value(), b"one-b");

        let second = tokio::spawn(async move {
            e2.campaign("two").await.unwrap();
            e2
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "two must wait for one");
        assert_eq!(observer.leader().await.unwrap().value(), b"one-b");

        // Stop renewing s1, as a crashed process would.
        let died = Instant::now();
        s1.orphan();
        let seen = timeout(ttl + Duration::from_secs(3), leaders.next())
            .await
            .unwrap();
        let took = died.elapsed();
        assert_eq!(seen.unwrap().unwrap().value(), b"two");
        assert!(took <= ttl + Duration::from_millis(1500), "took {took:?}");
        let mut e2 = second.await.unwrap();
        let e = e1.proclaim("still me?").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::ElectionNotLeader);
        eprintln!("{}: new leader after {took:?} (TTL {ttl:?})", bin.label());

        // Resigning hands over at once; revoking (close) too.
        let s3 = Session::with_ttl(&client, 3).await.unwrap();
        let mut e3 = Election::new(&s3, "elect/svc");
        let third = tokio::spawn(async move {
            e3.campaign("three").await.unwrap();
            e3
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        e2.resign().await.unwrap();
        let seen = timeout(Duration::from_secs(5), leaders.next())
            .await
            .unwrap();
        assert_eq!(seen.unwrap().unwrap().value(), b"three");
        let _e3 = third.await.unwrap();
        s3.close().await.unwrap();
        let e = timeout(Duration::from_secs(5), observer.leader())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::ElectionNoLeader);
    })
    .await;
}

/// Go's `ResumeElection`: a process that restarts with its session's lease
/// still alive takes its leadership back from the leader key, without
/// campaigning, and can proclaim and resign; a stale key cannot proclaim.
#[tokio::test]
async fn an_election_resumes_from_its_leader_key() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let session = Session::new(&client).await.unwrap();
        let mut first = Election::new(&session, "resume/e");
        first.campaign("v1").await.unwrap();
        let (key, revision) = (first.key().unwrap().to_vec(), first.revision());
        drop(first); // the process "restarts"; the lease lives on

        let session = Session::from_lease(&client, session.lease_id())
            .await
            .unwrap();
        let mut resumed = Election::resume(&session, "resume/e", key.clone(), revision);
        resumed.proclaim("v2").await.unwrap();
        let leader = resumed.leader().await.unwrap();
        assert_eq!((leader.key(), leader.value()), (&key[..], &b"v2"[..]));
        resumed.resign().await.unwrap();
        let error = resumed.leader().await.unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::ElectionNoLeader, "{error}");

        // The key is gone: a resumed election on it is not the leader.
        let mut stale = Election::resume(&session, "resume/e", key, revision);
        let error = stale.proclaim("v3").await.unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::ElectionNotLeader, "{error}");
    })
    .await;
}
