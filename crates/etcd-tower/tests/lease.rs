//! Leases and the LeaseKeeper, against etcd 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower::{ErrorKind, LeaseKeeper, LeaseLost, LeaseState, PutOptions};
use support::{each_version, single};
use tokio::time::{timeout, Instant};

#[tokio::test]
async fn lease_rpcs_and_the_raw_keep_alive_stream() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let lease = client.lease_grant(30).await.unwrap();
        assert!(lease.id > 0 && lease.ttl > 0);
        let chosen = client.lease_grant_with_id(30, 0x1234).await.unwrap();
        assert_eq!(chosen.id, 0x1234);
        let e = client.lease_grant_with_id(30, 0x1234).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::LeaseExists, "{e}");

        client
            .put_with("leased", "v", PutOptions::new().lease(lease.id))
            .await
            .unwrap();
        let ttl = client.lease_time_to_live_with_keys(lease.id).await.unwrap();
        assert_eq!(ttl.granted_ttl, 30);
        assert_eq!(ttl.keys, vec![bytes_of("leased")]);
        let no_keys = client.lease_time_to_live(lease.id).await.unwrap();
        assert!(no_keys.keys.is_empty());
        let mut ids: Vec<_> = client
            .lease_leases()
            .await
            .unwrap()
            .leases
            .iter()
            .map(|l| l.id)
            .collect();
        ids.sort();
        assert_eq!(ids, {
            let mut v = vec![lease.id, 0x1234];
            v.sort();
            v
        });

        let (mut sender, mut answers) = client.lease_keep_alive(lease.id).await.unwrap();
        let answer = answers.message().await.unwrap().unwrap();
        assert_eq!((answer.id, answer.ttl), (lease.id, 30));

        client.lease_revoke(lease.id).await.unwrap();
        assert!(client.get("leased").await.unwrap().kvs().is_empty());
        sender.keep_alive().await.unwrap();
        let answer = answers.message().await.unwrap().unwrap();
        assert!(answer.ttl <= 0, "a revoked lease renews with TTL 0");
        let gone = client.lease_time_to_live(lease.id).await.unwrap();
        assert_eq!(gone.ttl, -1);
        let e = client.lease_revoke(lease.id).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::LeaseNotFound, "{e}");
        let e = LeaseKeeper::existing(&client, lease.id).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::LeaseNotFound, "{e}");
    })
    .await;
}

fn bytes_of(s: &'static str) -> bytes::Bytes {
    bytes::Bytes::from_static(s.as_bytes())
}

/// The keeper keeps a short lease alive well past its TTL, and says
/// `Revoked` when revoked through it.
#[tokio::test]
async fn keeper_renews_and_revokes() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let keeper = LeaseKeeper::grant(&client, 2).await.unwrap();
        let ttl = keeper.ttl();
        let mut states = keeper.subscribe();
        tokio::time::sleep(Duration::from_secs(u64::try_from(ttl).unwrap() * 2 + 1)).await;
        assert!(keeper.is_alive());
        let left = client.lease_time_to_live(keeper.id()).await.unwrap();
        assert!(left.ttl > 0, "the lease outlived its TTL: {left:?}");
        keeper.revoke().await.unwrap();
        states.changed().await.unwrap();
        assert_eq!(
            *states.borrow(),
            etcd_tower::LeaseState::Lost(LeaseLost::Revoked)
        );
    })
    .await;
}

/// Revoked elsewhere: the next renewal answers TTL 0 and the keeper says
/// `Expired` within one renewal period.
#[tokio::test]
async fn keeper_notices_a_revoke_elsewhere() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let keeper = LeaseKeeper::grant(&client, 3).await.unwrap();
        client.lease_revoke(keeper.id()).await.unwrap();
        let reason = timeout(Duration::from_secs(3), keeper.lost())
            .await
            .unwrap();
        assert_eq!(reason, LeaseLost::Expired);
    })
    .await;
}

/// A frozen server: no renewal succeeds, and the keeper gives the lease up
/// once its TTL has passed, not before.
#[tokio::test]
async fn keeper_times_out_when_no_renewal_succeeds() {
    each_version(60, |bin| async move {
        let (cluster, client) = single(&bin).await;
        let keeper = LeaseKeeper::grant(&client, 2).await.unwrap();
        let ttl = Duration::from_secs(u64::try_from(keeper.ttl()).unwrap());
        // Let one renewal happen so the stream is open, then freeze.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let frozen = Instant::now();
        cluster.member(0).stop().unwrap();
        let reason = timeout(ttl + Duration::from_secs(3), keeper.lost())
            .await
            .unwrap();
        let waited = frozen.elapsed();
        cluster.member(0).cont().unwrap();
        assert_eq!(reason, LeaseLost::TimedOut);
        assert!(
            waited + Duration::from_millis(300) >= ttl - ttl / 3,
            "gave up after {waited:?}, TTL {ttl:?}"
        );
    })
    .await;
}

/// The TTL of the leases kept across a restart: the keeper must reopen its
/// stream (and, with auth, log in again) within it, after a renewal sent up
/// to a third of it before the kill, on a machine that may be loaded (a TTL
/// of 4 s was once missed on etcd 3.5.30 under CI load).
const RESTART_TTL: i64 = 6;

/// Awaits a renewal sent after the restart (the keeper's expiry moves past
/// a full TTL from now), then checks the server agrees the lease lives.
async fn renewed_after_restart(client: &etcd_tower::Client, keeper: &LeaseKeeper) {
    renewed_since(client, keeper, Instant::now()).await;
}

/// Awaits a renewal sent after `restarted`, then checks the server agrees
/// the lease lives.
async fn renewed_since(client: &etcd_tower::Client, keeper: &LeaseKeeper, restarted: Instant) {
    let ttl = Duration::from_secs(RESTART_TTL as u64);
    let mut state = keeper.subscribe();
    timeout(2 * ttl, async {
        loop {
            match *state.borrow_and_update() {
                LeaseState::Alive { expires_at, .. } if expires_at >= restarted + ttl => break,
                LeaseState::Alive { .. } => {}
                LeaseState::Lost(reason) => panic!("lease lost after the restart: {reason:?}"),
            }
            state.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no renewal after the restart: {:?}", keeper.state()));
    let left = client.lease_time_to_live(keeper.id()).await.unwrap();
    assert!(left.ttl > 0, "{left:?}");
}

/// The keep-alive stream breaks when the member restarts; the keeper opens
/// a new one and the lease lives on.
#[tokio::test]
async fn keeper_reopens_its_stream_after_a_restart() {
    each_version(90, |bin| async move {
        let (cluster, client) = single(&bin).await;
        let keeper = LeaseKeeper::grant(&client, RESTART_TTL).await.unwrap();
        cluster.member(0).kill().unwrap();
        cluster.member(0).restart().await.unwrap();
        renewed_after_restart(&client, &keeper).await;
    })
    .await;
}

/// With auth on and short-lived tokens: the restart forgets every token, so
/// the keeper's new stream needs a fresh one, which the auth layer gets.
#[tokio::test]
async fn keeper_survives_a_restart_with_auth_and_expiring_tokens() {
    each_version(90, |bin| async move {
        let mut cluster = etcd_tower_testkit::Cluster::builder(&bin)
            .auth_token_ttl(2)
            .start()
            .await
            .unwrap();
        cluster.enable_auth("rootpw").await.unwrap();
        let client = etcd_tower::Client::builder(cluster.endpoints())
            .user("root", "rootpw")
            .connect()
            .await
            .unwrap();
        let keeper = LeaseKeeper::grant(&client, RESTART_TTL).await.unwrap();
        // Outlive the token first, then lose every token in a restart.
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.member(0).kill().unwrap();
        cluster.member(0).restart().await.unwrap();
        renewed_after_restart(&client, &keeper).await;
    })
    .await;
}

/// A `LeaseKeeper::grant` (and so `Session::new`) dropped at any point of
/// its call leaves no lease behind: a grant already sent is revoked as soon
/// as it is answered, instead of lingering for its TTL.
#[tokio::test]
async fn a_dropped_grant_leaves_no_lease() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let mut completed = 0;
        for micros in (0..40u64).map(|i| i * 75) {
            match timeout(
                Duration::from_micros(micros),
                LeaseKeeper::grant(&client, 300),
            )
            .await
            {
                Ok(keeper) => {
                    keeper.unwrap().revoke().await.unwrap();
                    completed += 1;
                }
                Err(_elapsed) => {}
            }
        }
        assert!(completed < 40, "no grant was dropped mid-call");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = client.lease_leases().await.unwrap().leases.len();
            if left == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {left} leases left by dropped grants",
                bin.label()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "{}: {} of 40 grants dropped, no lease left",
            bin.label(),
            40 - completed
        );
    })
    .await;
}

/// Go's `KeepAliveOnce`: one renewal; a lease that is gone is
/// `LeaseNotFound`, not an answer with TTL 0.
#[tokio::test]
async fn keep_alive_once_renews_or_says_the_lease_is_gone() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let id = client.lease_grant(30).await.unwrap().id;
        let answer = client.lease_keep_alive_once(id).await.unwrap();
        assert_eq!((answer.id, answer.ttl), (id, 30));
        client.lease_revoke(id).await.unwrap();
        let error = client.lease_keep_alive_once(id).await.unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::LeaseNotFound, "{error}");
    })
    .await;
}

/// `LeaseKeepAlive` streams the member has open (started minus ended).
async fn open_keep_alive_streams(member: &etcd_tower_testkit::Member) -> f64 {
    let label = "grpc_method=\"LeaseKeepAlive\"";
    let started = member
        .metric_sum("grpc_server_started_total", label)
        .await
        .unwrap();
    let handled = member
        .metric_sum("grpc_server_handled_total", label)
        .await
        .unwrap();
    started - handled
}

/// Every keeper of a client and its clones renews over one stream: 300
/// leases cost the server one `LeaseKeepAlive` stream, also after a
/// restart; a dropped keeper's lease expires while the others live, and a
/// lease revoked elsewhere is reported lost by its keeper only.
#[tokio::test]
async fn keepers_share_one_stream() {
    each_version(120, |bin| async move {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let (cluster, client) = single(&bin).await;
        let clone = client.clone();
        let keepers: Vec<LeaseKeeper> = stream::iter(0..300)
            .map(|i| {
                let client = if i % 10 == 0 {
                    clone.clone()
                } else {
                    client.clone()
                };
                async move { LeaseKeeper::grant(&client, RESTART_TTL).await }
            })
            .buffer_unordered(16)
            .try_collect()
            .await
            .unwrap();
        // A short lease whose keeper is dropped, seen through its key.
        let dropped = LeaseKeeper::grant(&client, 2).await.unwrap();
        client
            .put_with("dropped", "v", PutOptions::new().lease(dropped.id()))
            .await
            .unwrap();
        let mut watch = client
            .watch("dropped", etcd_tower::watch::WatchOptions::new())
            .await
            .unwrap();
        let member = cluster.member(0);
        assert_eq!(open_keep_alive_streams(member).await, 1.0);
        drop(dropped);
        let batch = timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("the dropped keeper's lease did not expire")
            .unwrap()
            .unwrap();
        assert_eq!(
            batch.events()[0].kind(),
            etcd_tower::watch::EventKind::Delete,
            "{batch:?}"
        );

        // Revoked elsewhere: that keeper alone says so.
        let revoked = &keepers[7];
        client.lease_revoke(revoked.id()).await.unwrap();
        let reason = timeout(Duration::from_secs(RESTART_TTL as u64), revoked.lost())
            .await
            .unwrap();
        assert_eq!(reason, LeaseLost::Expired);

        member.kill().unwrap();
        member.restart().await.unwrap();
        let restarted = Instant::now();
        let renewed = keepers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 7)
            .map(|(_, keeper)| renewed_since(&client, keeper, restarted));
        futures::future::join_all(renewed).await;
        assert_eq!(open_keep_alive_streams(member).await, 1.0);
        let alive = client.lease_leases().await.unwrap().leases.len();
        assert_eq!(alive, 299, "every kept lease is alive, the others are gone");
        drop(keepers);
    })
    .await;
}
