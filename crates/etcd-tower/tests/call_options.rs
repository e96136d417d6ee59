//! Deadlines a user can trust: calls that wait by design are not cut by
//! the client-wide timeout, a per-attempt timeout moves a read off a frozen
//! member within the caller's deadline, and a call aimed at one endpoint
//! goes there or fails before sending.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_tower::{CallOptions, Client, ErrorKind, LeaseKeeper, Sent};
use etcd_tower_testkit::Cluster;
use support::{each_version, single};

/// How long the holder keeps the lock (or the leadership).
const HELD_FOR: Duration = Duration::from_secs(5);

/// With `ClientBuilder::timeout(1 s)`, `Client::lock` and
/// `Client::campaign` wait 5 s for the holder and then succeed; a handle
/// with its own deadline is cut by that deadline.
#[tokio::test]
async fn lock_and_campaign_outwait_the_client_wide_timeout() {
    each_version(60, |bin| async move {
        let label = bin.label();
        let (cluster, holder) = single(&bin).await;
        let waiter = Client::builder(cluster.endpoints())
            .timeout(Duration::from_secs(1))
            .attempt_timeout(Duration::from_millis(500))
            .connect()
            .await
            .unwrap();
        let holder_lease = LeaseKeeper::grant(&holder, 30).await.unwrap();
        let waiter_lease = LeaseKeeper::grant(&waiter, 30).await.unwrap();
        let held = holder
            .lock("jobs/nightly", holder_lease.id())
            .await
            .unwrap();
        let leader = holder
            .campaign("service/leader", "holder", holder_lease.id())
            .await
            .unwrap();

        // A deadline the handle asks for still applies.
        let impatient = waiter.with_options(CallOptions::new().timeout(Duration::from_millis(300)));
        let error = impatient
            .lock("jobs/nightly", waiter_lease.id())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Timeout, "{label}: {error}");

        let started = Instant::now();
        let lock = tokio::spawn({
            let waiter = waiter.clone();
            let lease = waiter_lease.id();
            async move { waiter.lock("jobs/nightly", lease).await }
        });
        let campaign = tokio::spawn({
            let waiter = waiter.clone();
            let lease = waiter_lease.id();
            async move { waiter.campaign("service/leader", "waiter", lease).await }
        });
        tokio::time::sleep(HELD_FOR).await;
        assert!(!lock.is_finished(), "{label}: the lock did not wait");
        assert!(
            !campaign.is_finished(),
            "{label}: the campaign did not wait"
        );
        holder.unlock(held.key.clone()).await.unwrap();
        holder.resign(&leader).await.unwrap();

        let locked = lock
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{label}: lock: {e}"));
        let elected = campaign
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{label}: campaign: {e}"));
        assert!(started.elapsed() >= HELD_FOR, "{label}");
        assert!(locked.key.starts_with(b"jobs/nightly/"), "{label}");
        let now = waiter.leader("service/leader").await.unwrap();
        assert_eq!(now.value(), b"waiter", "{label}");
        assert_eq!(now.key(), &elected.key[..], "{label}");
    })
    .await;
}

/// Each attempt's deadline.
const PER_ATTEMPT: Duration = Duration::from_secs(1);
/// What a read may take in all.
const DEADLINE: Duration = Duration::from_secs(3);
/// How long the member stays frozen.
const FROZEN_FOR: Duration = Duration::from_secs(4);

/// A follower is frozen (SIGSTOP) under a read load, with the transport's
/// default keepalive (it would notice after 15 s): every read succeeds
/// within its 3 s deadline, because an attempt that meets the frozen member
/// times out after 1 s and the retry goes to a member the read has not
/// tried, so no read meets the frozen member twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_with_an_attempt_timeout_go_around_a_frozen_member() {
    each_version(60, |bin| async move {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let client = Client::builder(cluster.endpoints())
            .timeout(DEADLINE)
            .attempt_timeout(PER_ATTEMPT)
            .connect()
            .await
            .unwrap();
        client.put("frozen/key", "value").await.unwrap();
        let leader = cluster.leader_index().await.unwrap();
        let frozen = (leader + 1) % 3;

        let reads = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (client, reads, stop) = (client.clone(), reads.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut slowest = Duration::ZERO;
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        match client.get("frozen/key").await {
                            Ok(found) => assert_eq!(found.kvs()[0].value(), b"value"),
                            Err(error) => failures.push(error.to_string()),
                        }
                        slowest = slowest.max(started.elapsed());
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    (slowest, failures)
                })
            })
            .collect();

        while reads.load(Ordering::Relaxed) < 30 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cluster.member(frozen).stop().unwrap();
        tokio::time::sleep(FROZEN_FOR).await;
        stop.store(true, Ordering::Relaxed);
        let mut slowest = Duration::ZERO;
        let mut failures = Vec::new();
        for reader in readers {
            let (s, f) = reader.await.unwrap();
            slowest = slowest.max(s);
            failures.extend(f);
        }
        cluster.member(frozen).cont().unwrap();

        assert!(failures.is_empty(), "{label}: failed reads: {failures:?}");
        // Some read met the frozen member and waited out one attempt...
        assert!(
            slowest >= PER_ATTEMPT,
            "{label}: no read met the frozen member ({slowest:?})"
        );
        // ...and none met it twice.
        assert!(
            slowest < PER_ATTEMPT * 2,
            "{label}: a read took {slowest:?}: it was sent to the frozen member more than once"
        );
    })
    .await;
}

/// `at_endpoint` sends to that member only; an endpoint that is not one of
/// the client's fails before sending, and an unparsable one at once.
#[tokio::test]
async fn calls_aimed_at_an_endpoint_go_there_or_nowhere() {
    each_version(60, |bin| async move {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let client = Client::connect(cluster.endpoints()).await.unwrap();
        for member in cluster.members() {
            let id = member.member_id().await.unwrap();
            for _ in 0..3 {
                let status = client
                    .at_endpoint(&member.client_url())
                    .unwrap()
                    .status()
                    .await
                    .unwrap();
                assert_eq!(status.header.unwrap().member_id, id, "{label}");
            }
        }

        let elsewhere = client.at_endpoint("127.0.0.1:1").unwrap();
        let error = elsewhere.status().await.unwrap_err();
        assert_eq!(
            error.kind(),
            &ErrorKind::InvalidEndpoint,
            "{label}: {error}"
        );
        assert_eq!(error.sent(), Sent::NotSent, "{label}: {error}");
        assert!(error.message().contains("127.0.0.1:1"), "{error}");

        let error = client.at_endpoint("not an endpoint").unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::InvalidEndpoint, "{error}");

        // A stopped member is an error, not a reason to ask another (the
        // retry layer would try it again until its budget ends: without
        // it, the first error shows).
        cluster.member(0).kill().unwrap();
        let once = Client::builder(cluster.endpoints())
            .no_retry()
            .build()
            .unwrap();
        let error = once
            .at_endpoint(&cluster.member(0).client_url())
            .unwrap()
            .status()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Connect, "{label}: {error}");
    })
    .await;
}
