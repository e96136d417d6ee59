//! Waits in the recipes that users bound with `timeout`, `select!` or an
//! aborted task: an abandoned wait leaves no key behind, and a wait that is
//! kept survives token expiry, a cut connection and a member restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_tower::concurrency::{Election, Mutex, Session};
use etcd_tower::{Client, ErrorKind, GetOptions, Txn, TxnOp};
use etcd_tower_testkit::{Cluster, Proxy};
use futures::StreamExt;
use support::{each_version, single};
use tokio::time::timeout;

/// How many keys are under `prefix`.
async fn keys_under(client: &Client, prefix: &str) -> i64 {
    client
        .get_with(prefix, GetOptions::new().prefix().count_only())
        .await
        .unwrap()
        .count()
}

/// Waits (bounded) until `prefix` holds exactly `n` keys; the removal of
/// an abandoned key runs in the background, right after the drop.
async fn until_keys(client: &Client, prefix: &str, n: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = keys_under(client, prefix).await;
        if found == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {found} keys under {prefix}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 8 tasks contend for one lock: 4 wait as long as it takes, 4 give up
/// after a short timeout that fires while they are queued. Nobody is left
/// blocked behind an abandoned waiter, the fenced counter counts exactly
/// the increments made, and no key of the lock's prefix remains.
#[tokio::test]
async fn abandoned_lock_waits_block_nobody_and_leave_no_key() {
    each_version(120, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        client.put("counter", "0").await.unwrap();
        let increments = Arc::new(AtomicU64::new(0));
        let gave_up = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..8u64)
            .map(|task| {
                let client = client.clone();
                let increments = increments.clone();
                let gave_up = gave_up.clone();
                tokio::spawn(async move {
                    let session = Session::with_ttl(&client, 30).await.unwrap();
                    let mut mutex = Mutex::new(&session, "locks/shared");
                    let patient = task % 2 == 0;
                    for round in 0..12u64 {
                        if patient {
                            mutex.lock().await.unwrap();
                        } else {
                            // 5..=35 ms: shorter than one holder's turn.
                            let patience = Duration::from_millis(5 + (task * 7 + round * 11) % 31);
                            match timeout(patience, mutex.lock()).await {
                                Ok(locked) => locked.unwrap(),
                                Err(_) => {
                                    gave_up.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                            }
                        }
                        let current = client.get("counter").await.unwrap();
                        let n: u64 = current.kvs()[0].value_str().unwrap().parse().unwrap();
                        // Hold the lock long enough for others to queue.
                        tokio::time::sleep(Duration::from_millis(15)).await;
                        let txn = Txn::new()
                            .when([mutex.is_owner()])
                            .and_then([TxnOp::put("counter", (n + 1).to_string())]);
                        assert!(client.txn(txn).await.unwrap().succeeded(), "fenced write");
                        increments.fetch_add(1, Ordering::Relaxed);
                        mutex.unlock().await.unwrap();
                    }
                    session
                })
            })
            .collect();
        let mut sessions = Vec::new();
        for task in tasks {
            sessions.push(
                timeout(Duration::from_secs(60), task)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        let made = increments.load(Ordering::Relaxed);
        let abandoned = gave_up.load(Ordering::Relaxed);
        let counter = client.get("counter").await.unwrap();
        assert_eq!(
            counter.kvs()[0].value_str().unwrap(),
            made.to_string(),
            "{}",
            bin.label()
        );
        assert!(made >= 48, "every patient round locked: {made}");
        assert!(abandoned > 0, "no timeout fired while queued");
        // The sessions are all still alive: only the recipe removed keys.
        assert!(sessions.iter().all(Session::is_alive));
        until_keys(&client, "locks/shared/", 0, &bin.label()).await;
        eprintln!(
            "{}: {made} fenced increments, {abandoned} waits abandoned, no key left",
            bin.label()
        );
        for session in sessions {
            session.close().await.unwrap();
        }
    })
    .await;
}

/// Campaigns given up while queued (by a timeout, by `select!` and by
/// aborting their task) never become leader: when the leader resigns, the
/// candidate queued behind all of them is elected, and only its key
/// remains.
#[tokio::test]
async fn an_abandoned_campaign_never_becomes_leader() {
    each_version(90, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let mut sessions = Vec::new();
        for _ in 0..5 {
            sessions.push(Session::with_ttl(&client, 30).await.unwrap());
        }
        let mut leader = Election::new(&sessions[0], "elect/abandon");
        leader.campaign("first").await.unwrap();
        let observer = Election::new(&sessions[0], "elect/abandon");
        let mut leaders = observer.observe();
        let seen = timeout(Duration::from_secs(5), leaders.next())
            .await
            .unwrap();
        assert_eq!(seen.unwrap().unwrap().value(), b"first");

        let by_timeout = {
            let mut election = Election::new(&sessions[1], "elect/abandon");
            tokio::spawn(async move {
                let waited = timeout(Duration::from_secs(2), election.campaign("timed-out")).await;
                assert!(waited.is_err(), "the campaign must still be waiting");
                election
            })
        };
        let (give_up, given_up) = tokio::sync::oneshot::channel::<()>();
        let by_select = {
            let mut election = Election::new(&sessions[2], "elect/abandon");
            tokio::spawn(async move {
                tokio::select! {
                    won = election.campaign("selected-away") => panic!("elected: {won:?}"),
                    _ = given_up => {}
                }
            })
        };
        let by_abort = {
            let session = sessions[3].clone();
            tokio::spawn(async move {
                let mut election = Election::new(&session, "elect/abandon");
                let won = election.campaign("aborted").await;
                panic!("an aborted campaign returned: {won:?}");
            })
        };
        until_keys(&client, "elect/abandon/", 4, "three queued").await;
        // A patient candidate queued behind all three.
        let patient = {
            let session = sessions[4].clone();
            tokio::spawn(async move {
                let mut election = Election::new(&session, "elect/abandon");
                election.campaign("patient").await.unwrap();
                election
            })
        };
        until_keys(&client, "elect/abandon/", 5, "four queued").await;
        give_up.send(()).unwrap();
        by_select.await.unwrap();
        by_abort.abort();
        assert!(by_abort.await.unwrap_err().is_cancelled());
        let mut by_timeout = by_timeout.await.unwrap();
        // Only the leader and the patient candidate are left.
        until_keys(&client, "elect/abandon/", 2, "after giving up").await;

        leader.resign().await.unwrap();
        let mut patient = timeout(Duration::from_secs(5), patient)
            .await
            .expect("the patient candidate is elected")
            .unwrap();
        let seen = timeout(Duration::from_secs(5), leaders.next())
            .await
            .unwrap();
        assert_eq!(seen.unwrap().unwrap().value(), b"patient");
        assert_eq!(observer.leader().await.unwrap().value(), b"patient");
        assert_eq!(keys_under(&client, "elect/abandon/").await, 1);
        // Over time, nothing changes: the abandoned ones never come back.
        assert!(
            timeout(Duration::from_secs(1), leaders.next())
                .await
                .is_err(),
            "no other leader may appear"
        );
        assert_eq!(observer.leader().await.unwrap().value(), b"patient");
        patient.resign().await.unwrap();
        let e = observer.leader().await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::ElectionNoLeader, "{e}");
        // The timed-out election campaigns again, cleanly.
        by_timeout.campaign("back").await.unwrap();
        assert_eq!(observer.leader().await.unwrap().value(), b"back");
        by_timeout.resign().await.unwrap();
        for session in sessions {
            session.close().await.unwrap();
        }
    })
    .await;
}

const ROOT_PASSWORD: &str = "root-pw";

/// A lock waiter behind a proxy keeps waiting while its auth token expires
/// (2 s TTL), while the proxy cuts its connections and while the only
/// member restarts (forgetting every token), and acquires the lock as soon
/// as the holder unlocks.
#[tokio::test]
async fn a_lock_waiter_survives_token_expiry_a_cut_and_a_restart() {
    each_version(120, |bin| async move {
        let mut cluster = Cluster::builder(&bin)
            .auth_token_ttl(2)
            .start()
            .await
            .unwrap();
        cluster.enable_auth(ROOT_PASSWORD).await.unwrap();
        let member = cluster.member(0);
        let proxy = Proxy::start(member.client_addr()).await.unwrap();
        let holder = Client::builder(cluster.endpoints())
            .user("root", ROOT_PASSWORD)
            .build()
            .unwrap();
        let waiter = Client::builder([proxy.endpoint()])
            .user("root", ROOT_PASSWORD)
            .build()
            .unwrap();
        let holding = Session::with_ttl(&holder, 60).await.unwrap();
        let mut held = Mutex::new(&holding, "locks/faults");
        held.lock().await.unwrap();
        let waiting = Session::with_ttl(&waiter, 60).await.unwrap();
        let mut queued = Mutex::new(&waiting, "locks/faults");
        let locker = tokio::spawn(async move { queued.lock().await.map(|()| queued) });
        until_keys(&holder, "locks/faults/", 2, "queued").await;

        // The waiter's stream token expires (its watch is idle meanwhile).
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!locker.is_finished(), "still waiting after token expiry");
        // Its connections are cut: the watch reopens, with a stale token.
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!locker.is_finished(), "still waiting after a cut");
        // The member restarts and forgets every token.
        member.restart().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!locker.is_finished(), "still waiting after a restart");

        let released = Instant::now();
        held.unlock().await.unwrap();
        let mut queued = timeout(Duration::from_secs(10), locker)
            .await
            .expect("the waiter acquires the lock once it is released")
            .unwrap()
            .unwrap();
        let took = released.elapsed();
        let fenced = Txn::new()
            .when([queued.is_owner()])
            .and_then([TxnOp::put("fenced", "by the waiter")]);
        assert!(waiter.txn(fenced).await.unwrap().succeeded());
        eprintln!("{}: acquired {took:?} after the unlock", bin.label());
        queued.unlock().await.unwrap();
        waiting.close().await.unwrap();
        holding.close().await.unwrap();
    })
    .await;
}

/// `try_lock` dropped at any point of its call leaves no key behind.
#[tokio::test]
async fn try_lock_given_up_mid_call_leaves_no_key() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let holder = Session::with_ttl(&client, 30).await.unwrap();
        let mut held = Mutex::new(&holder, "locks/try");
        held.lock().await.unwrap();
        let other = Session::with_ttl(&client, 30).await.unwrap();
        let mut contender = Mutex::new(&other, "locks/try");
        // Drop try_lock at every point of its call: its key never stays.
        for micros in [0u64, 50, 200, 500, 1000, 3000] {
            let _ = timeout(Duration::from_micros(micros), contender.try_lock()).await;
            until_keys(&client, "locks/try/", 1, "after a dropped try_lock").await;
        }
        assert!(!contender.try_lock().await.unwrap());
        held.unlock().await.unwrap();
        assert!(contender.try_lock().await.unwrap());
        contender.unlock().await.unwrap();
        other.close().await.unwrap();
        holder.close().await.unwrap();
    })
    .await;
}
