//! Maintenance aimed at members, as runbooks use it: the NOSPACE recovery
//! (compact, defragment every member, disarm every alarm), hashes compared
//! across members, leadership handed over by the leader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use etcd_tower::maintenance::AlarmType;
use etcd_tower::{Client, ErrorKind};
use etcd_tower_testkit::Cluster;
use support::each_version;

/// The members' space quota: small, so that a few writes fill it.
const QUOTA: u64 = 4 * 1024 * 1024;
/// Each write: overwriting one key, so that the space is all history that
/// a compaction frees.
const VALUE_SIZE: usize = 256 * 1024;

/// Fills a 3-member cluster's small quota until etcd refuses writes with
/// NOSPACE and raises its alarm, then recovers as the runbook says:
/// compact, defragment every member in turn, disarm the alarms (one per
/// member: a disarm for member 0 alone clears nothing), write again.
#[tokio::test]
async fn nospace_runbook_compact_defragment_each_member_disarm_write() {
    each_version(120, |bin| async move {
        let label = bin.label();
        let cluster = Cluster::builder(&bin)
            .members(3)
            .arg(format!("--quota-backend-bytes={QUOTA}"))
            .start()
            .await
            .unwrap();
        let client = Client::connect(cluster.endpoints()).await.unwrap();

        let value = vec![b'x'; VALUE_SIZE];
        let mut writes = 0;
        let error = loop {
            match client.put("big", value.clone()).await {
                Ok(_) => writes += 1,
                Err(error) => break error,
            }
            assert!(writes < 200, "{label}: {writes} writes and no NOSPACE");
        };
        assert_eq!(error.kind(), &ErrorKind::NoSpace, "{label}: {error}");
        assert!(error.is_not_applied(), "{label}: {error}");

        // The alarm is raised by the members (each for itself), sooner or
        // later on the followers.
        let raised = wait_for_alarms(&client, &label).await;
        assert!(
            raised.iter().all(|a| a.alarm() == AlarmType::Nospace),
            "{label}: {raised:?}"
        );

        // Compact away the history, then defragment each member: its
        // database file shrinks.
        let revision = client.get("big").await.unwrap().revision();
        client.compact(revision).await.unwrap();
        let before = client.status_each_member().await.unwrap();
        let done = client.defragment_each_member().await.unwrap();
        assert_eq!(done.len(), 3, "{label}");
        let ids: HashSet<u64> = done.iter().map(|d| d.member.id).collect();
        assert_eq!(ids.len(), 3, "{label}: every member, once");
        let after = client.status_each_member().await.unwrap();
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.member.id, a.member.id);
            assert_eq!(
                a.response.header.unwrap().member_id,
                a.member.id,
                "{label}: answered by the member aimed at"
            );
            assert!(
                a.response.db_size < b.response.db_size,
                "{label}: member {} db {} -> {} bytes",
                a.member.name,
                b.response.db_size,
                a.response.db_size
            );
        }

        // Disarm every alarm on every member, then write again.
        let disarmed = client.alarm_disarm(0, AlarmType::None).await.unwrap();
        assert_eq!(disarmed.alarms.len(), raised.len(), "{label}: {disarmed:?}");
        assert!(
            client.alarm_list().await.unwrap().alarms.is_empty(),
            "{label}"
        );
        client.put("big", "small again").await.unwrap();
        client.put("other", value).await.unwrap();
    })
    .await;
}

/// Waits (bounded) until every member has raised its NOSPACE alarm.
async fn wait_for_alarms(
    client: &Client,
    label: &str,
) -> Vec<etcd_tower::maintenance::AlarmMember> {
    for _ in 0..100 {
        let alarms = client.alarm_list().await.unwrap().alarms;
        if alarms.len() == 3 {
            return alarms;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alarms = client.alarm_list().await.unwrap().alarms;
    assert!(!alarms.is_empty(), "{label}: no alarm raised");
    alarms
}

/// Members agree on the history's hash at one revision; the leader's
/// status comes from the leader; leadership handed over through the leader.
#[tokio::test]
async fn hashes_compared_across_members_and_leadership_moved_by_the_leader() {
    each_version(60, |bin| async move {
        let label = bin.label();
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        let client = Client::connect(cluster.endpoints()).await.unwrap();
        for i in 0..20 {
            client.put(format!("k{i}"), "v").await.unwrap();
        }
        let revision = client.get("k0").await.unwrap().revision();
        let hashes = client.hash_kv_each_member(revision).await.unwrap();
        assert_eq!(hashes.len(), 3, "{label}");
        assert!(
            hashes
                .windows(2)
                .all(|w| w[0].response.hash == w[1].response.hash),
            "{label}: members disagree: {:?}",
            hashes.iter().map(|h| h.response.hash).collect::<Vec<_>>()
        );

        // Hand leadership to a follower, whichever member the client would
        // have reached: the request goes to the leader.
        let leader = cluster.leader_index().await.unwrap();
        let target = (leader + 1) % 3;
        let target_id = cluster.member(target).member_id().await.unwrap();
        for _ in 0..3 {
            // Several calls, so that round-robin would have met a follower.
            let _ = client.status().await.unwrap();
        }
        client.move_leader_to(target_id).await.unwrap();
        let mut now = leader;
        for _ in 0..100 {
            now = cluster.leader_index().await.unwrap();
            if now == target {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(now, target, "{label}: leadership did not move");
    })
    .await;
}
