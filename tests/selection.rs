//! Endpoint selection policies against a real three-member cluster on
//! every etcd version: pick-first stays on one member until it fails and
//! does not go back; least-loaded steers new calls around a frozen member
//! whose calls pile up, where round-robin keeps sending a third of them
//! into it; a policy of the user's own decides every call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::transport::selection::{Candidates, SelectionPolicy};
use etcd_tower_core::{
    EtcdError, EtcdRequest, LeastLoaded, PickFirst, RoundRobin, Transport, TransportBuilder,
};
use etcd_tower_testkit::{binaries, Cluster};
use tower::ServiceExt;

/// A serializable read (answered by the member it is sent to); the
/// answering member's ID.
async fn answered_by(transport: &Transport) -> Result<u64, EtcdError> {
    let request = EtcdRequest::new(pb::RangeRequest {
        key: "k".into(),
        serializable: true,
        ..Default::default()
    });
    let response: pb::RangeResponse = transport.clone().oneshot(request).await?.try_into()?;
    Ok(response.header.unwrap().member_id)
}

async fn member_ids(cluster: &Cluster) -> Vec<u64> {
    let mut ids = Vec::new();
    for member in cluster.members() {
        ids.push(member.member_id().await.unwrap());
    }
    ids
}

fn builder(cluster: &Cluster) -> TransportBuilder {
    Transport::builder(cluster.endpoints()).failed_endpoint_backoff(Duration::from_millis(200))
}

#[tokio::test]
async fn pick_first_stays_on_one_member_until_it_fails() {
    for bin in binaries() {
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let ids = member_ids(&cluster).await;
        let transport = builder(&cluster)
            .selection(PickFirst::new())
            .build()
            .unwrap();
        for _ in 0..20 {
            assert_eq!(answered_by(&transport).await.unwrap(), ids[0], "{bin}");
        }
        cluster.member(0).kill().unwrap();
        // The first call after the kill may meet the broken connection;
        // within a few the policy has moved on.
        let mut moved = false;
        for _ in 0..5 {
            if answered_by(&transport).await.is_ok() {
                moved = true;
                break;
            }
        }
        assert!(
            moved,
            "{bin}: no call succeeded after the first member died"
        );
        for _ in 0..20 {
            assert_eq!(answered_by(&transport).await.unwrap(), ids[1], "{bin}");
        }
        cluster.member(0).restart().await.unwrap();
        cluster
            .member(0)
            .wait_healthy(Duration::from_secs(20))
            .await
            .unwrap();
        // Past the first member's back-off: it is healthy again, and not
        // gone back to.
        tokio::time::sleep(Duration::from_millis(400)).await;
        for _ in 0..20 {
            assert_eq!(answered_by(&transport).await.unwrap(), ids[1], "{bin}");
        }
    }
}

/// Freezes a follower, starts 30 calls 20 ms apart, each bounded by 1.5 s,
/// and counts those that did not finish.
async fn stuck_calls(cluster: &Cluster, transport: &Transport) -> usize {
    let leader = cluster.leader_index().await.unwrap();
    let frozen = (leader + 1) % 3;
    for _ in 0..9 {
        answered_by(transport).await.unwrap(); // every connection made
    }
    cluster.member(frozen).stop().unwrap();
    let mut calls = Vec::new();
    for _ in 0..30 {
        let transport = transport.clone();
        calls.push(tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(1500), answered_by(&transport))
                .await
                .is_err()
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stuck = 0;
    for call in calls {
        stuck += usize::from(call.await.unwrap());
    }
    cluster.member(frozen).cont().unwrap();
    stuck
}

#[tokio::test]
async fn least_loaded_steers_around_a_frozen_member() {
    for bin in binaries() {
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let round_robin = builder(&cluster)
            .selection(RoundRobin::new())
            .build()
            .unwrap();
        let control = stuck_calls(&cluster, &round_robin).await;
        assert!(
            control >= 8,
            "{bin}: round-robin sent only {control} of 30 calls to the frozen member"
        );
        let least_loaded = builder(&cluster)
            .selection(LeastLoaded::new())
            .build()
            .unwrap();
        let stuck = stuck_calls(&cluster, &least_loaded).await;
        assert!(
            stuck <= 2,
            "{bin}: least-loaded sent {stuck} of 30 calls to the frozen member"
        );
        // The frozen member is back: least-loaded uses every member again.
        let ids = member_ids(&cluster).await;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..60 {
            seen.insert(answered_by(&least_loaded).await.unwrap());
        }
        assert_eq!(seen.len(), 3, "{bin}: {seen:?} of {ids:?}");
    }
}

/// The last healthy endpoint, always.
#[derive(Debug)]
struct LastHealthy;

impl SelectionPolicy for LastHealthy {
    fn pick(&self, endpoints: &Candidates<'_>) -> usize {
        endpoints
            .healthy()
            .last()
            .unwrap_or_else(|| endpoints.soonest_healthy())
    }
}

#[tokio::test]
async fn a_policy_of_the_users_own_decides_every_call() {
    for bin in binaries() {
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let ids = member_ids(&cluster).await;
        let transport = builder(&cluster).selection(LastHealthy).build().unwrap();
        for _ in 0..20 {
            assert_eq!(answered_by(&transport).await.unwrap(), ids[2], "{bin}");
        }
        // It is kept when the endpoints change.
        transport.set_endpoints(&cluster.endpoints()[..2]).unwrap();
        for _ in 0..20 {
            assert_eq!(answered_by(&transport).await.unwrap(), ids[1], "{bin}");
        }
    }
}
