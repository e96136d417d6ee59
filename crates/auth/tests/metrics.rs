//! `etcd_auth_token_refreshes_total` against real etcd (3.5.1 and 3.4.23),
//! recorded by `metrics-util`'s `DebuggingRecorder`: one count per
//! `Authenticate` the layer sends, by `outcome` and `reason`, for the first
//! login, an expired simple token, a JWT near its `exp` and a wrong password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_tower_core::metric_names::{
    AUTH_TOKEN_REFRESHES_TOTAL, LABEL_OUTCOME, LABEL_REASON, OUTCOME_ERROR, OUTCOME_OK,
    REFRESH_EXPIRING, REFRESH_NO_TOKEN, REFRESH_REJECTED,
};
use etcd_tower_testkit::binaries;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::{bounded, client, get, jwt_cluster, put, simple_cluster, ROOT_PASSWORD};

/// What the refresh counter counted since the last call, by (`outcome`,
/// `reason`), leaving out series that did not move (the debugging recorder
/// resets counters on every snapshot).
fn refreshes(snapshotter: &Snapshotter) -> BTreeMap<(String, String), u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == AUTH_TOKEN_REFRESHES_TOTAL)
        .filter_map(|(key, _, _, value)| {
            let label = |name: &str| {
                key.key()
                    .labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default()
            };
            let DebugValue::Counter(count) = value else {
                panic!("{AUTH_TOKEN_REFRESHES_TOTAL} is not a counter: {value:?}")
            };
            (count > 0).then(|| ((label(LABEL_OUTCOME), label(LABEL_REASON)), count))
        })
        .collect()
}

fn series(outcome: &str, reason: &str, count: u64) -> ((String, String), u64) {
    ((outcome.to_owned(), reason.to_owned()), count)
}

#[tokio::test]
async fn every_authenticate_is_counted_by_outcome_and_reason() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            // The recorder is this thread's: the test runtime has one thread,
            // so the layer's calls (and their refreshes) record here.
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            let _guard = metrics::set_default_local_recorder(&recorder);

            // Simple tokens living 2 s idle: the first login, then an expiry.
            let cluster = simple_cluster(&bin, 2).await;
            let (mut root, counts) = client(&cluster, "root", ROOT_PASSWORD);
            put(&mut root, "k", "v").await.unwrap();
            tokio::time::sleep(Duration::from_secs(4)).await;
            get(&mut root, "k").await.unwrap();
            assert_eq!(counts.token_rejections(), 1, "{label}");

            // A wrong password: refused, and remembered (not counted again).
            let (mut wrong, _) = client(&cluster, "root", "wrong");
            put(&mut wrong, "k", "v").await.unwrap_err();
            get(&mut wrong, "k").await.unwrap_err();
            assert_eq!(
                refreshes(&snapshotter),
                BTreeMap::from([
                    series(OUTCOME_OK, REFRESH_NO_TOKEN, 1),
                    series(OUTCOME_OK, REFRESH_REJECTED, 1),
                    series(OUTCOME_ERROR, REFRESH_NO_TOKEN, 1),
                ]),
                "{label}"
            );
            drop(cluster);

            // A JWT valid for 3 s is replaced after 80 % of it, before any
            // call meets it expired.
            let cluster = jwt_cluster(&bin, Duration::from_secs(3)).await;
            let (mut jwt, counts) = client(&cluster, "root", ROOT_PASSWORD);
            put(&mut jwt, "k", "v").await.unwrap();
            tokio::time::sleep(Duration::from_millis(2700)).await;
            get(&mut jwt, "k").await.unwrap();
            assert_eq!(counts.token_rejections(), 0, "{label}");
            assert_eq!(counts.logins(), 2, "{label}");
            assert_eq!(
                refreshes(&snapshotter),
                BTreeMap::from([
                    series(OUTCOME_OK, REFRESH_NO_TOKEN, 1),
                    series(OUTCOME_OK, REFRESH_EXPIRING, 1),
                ]),
                "{label}"
            );
        }
    })
    .await;
}
