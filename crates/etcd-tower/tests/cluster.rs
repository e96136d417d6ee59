//! Cluster membership through the facade, against etcd 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::time::Duration;

use etcd_tower::{Client, ErrorKind, EtcdError};
use etcd_tower_testkit::{free_port, Cluster};
use support::each_version;

/// etcd refuses a membership change until the members have been connected
/// for a while (`unhealthy cluster`): retry that typed error, for 20 s at
/// most (then the error itself says which change never settled).
async fn settled<T, F, Fut>(mut change: F) -> Result<T, EtcdError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EtcdError>>,
{
    for _ in 0..40 {
        match change().await {
            Err(e) if e.kind() == &ErrorKind::Unhealthy => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            other => return other,
        }
    }
    change().await
}

#[tokio::test]
async fn member_list_add_update_promote_remove() {
    each_version(90, |bin| async move {
        let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
        // A deadline on every call: a change that hangs fails with its step.
        let client = Client::builder(cluster.endpoints())
            .timeout(Duration::from_secs(15))
            .connect()
            .await
            .unwrap();
        let members = client.member_list().await.unwrap().members;
        assert_eq!(members.len(), 3);
        let mut urls: Vec<_> = members
            .iter()
            .flat_map(|m| m.client_ur_ls.clone())
            .collect();
        urls.sort();
        let mut expected = cluster.endpoints();
        expected.sort();
        assert_eq!(urls, expected);
        client.member_list_linearizable().await.unwrap();

        let taken = cluster.member(0).peer_url();
        let e = settled(|| client.member_add_learner([taken.clone()]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::PeerUrlExists, "{e}");

        // A learner that is never started: listed, not promotable.
        let url = format!("http://127.0.0.1:{}", free_port().unwrap());
        let added = settled(|| client.member_add_learner([url.clone()]))
            .await
            .unwrap();
        let learner = added.member.unwrap();
        assert!(learner.is_learner);
        assert_eq!(added.members.len(), 4);
        let e = client.member_promote(learner.id).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::LearnerNotReady, "{e}");
        let e = client.member_promote(members[0].id).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::MemberNotLearner, "{e}");

        let other = format!("http://127.0.0.1:{}", free_port().unwrap());
        let updated = settled(|| client.member_update(learner.id, [other.clone()]))
            .await
            .unwrap();
        let listed = updated.members.iter().find(|m| m.id == learner.id).unwrap();
        assert_eq!(listed.peer_ur_ls, vec![other.clone()]);

        let removed = settled(|| client.member_remove(learner.id)).await.unwrap();
        assert_eq!(removed.members.len(), 3);
        let e = client.member_remove(learner.id).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::MemberNotFound, "{e}");

        // A voting member (never started: 4 members, 3 up, quorum kept).
        let url = format!("http://127.0.0.1:{}", free_port().unwrap());
        let added = settled(|| client.member_add([url.clone()])).await.unwrap();
        let new = added.member.unwrap();
        assert!(!new.is_learner);
        assert_eq!(added.members.len(), 4);
        // The remove's own answer, from the member that applied it: a
        // MemberList may be served by a member that has not applied the
        // change yet (it is not linearizable on 3.4).
        let removed = settled(|| client.member_remove(new.id)).await.unwrap();
        assert_eq!(removed.members.len(), 3);
    })
    .await;
}
