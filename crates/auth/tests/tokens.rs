//! The auth layer against real etcd (3.5.1 and 3.4.23): token expiry, a
//! restart that forgets every token, a hundred calls racing an expiry, a
//! wrong password; simple and JWT tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use etcd_tower_core::proto::etcdserverpb::RangeRequest;
use etcd_tower_core::signal::{ReportTokenGeneration, TokenGeneration};
use etcd_tower_core::{ErrorKind, EtcdRequest, Sent};
use etcd_tower_testkit::binaries;
use support::{
    bounded, call, client, get, is_transport_error, jwt_cluster, put, simple_cluster, Client,
    ROOT_PASSWORD,
};

/// Runs 100 gets at once on clones of `client`; all must succeed.
async fn hundred_gets(client: &Client, label: &str) {
    let calls = (0..100).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move { get(&mut client, "k").await })
    });
    for joined in futures::future::join_all(calls).await {
        let value = joined.unwrap().unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(value.as_deref(), Some("v"), "{label}");
    }
}

#[tokio::test]
async fn simple_token_expiry_costs_one_authenticate() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = simple_cluster(&bin, 2).await;
            let (mut client, counts) = client(&cluster, "root", ROOT_PASSWORD);
            put(&mut client, "k", "v").await.unwrap();
            assert_eq!(counts.logins(), 1, "{label}");

            // Idle past the TTL (2 s, checked every second by the server).
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_eq!(
                get(&mut client, "k").await.unwrap().as_deref(),
                Some("v"),
                "{label}"
            );
            assert_eq!(
                counts.token_rejections(),
                1,
                "{label}: the old token was rejected"
            );
            assert_eq!(
                counts.logins(),
                2,
                "{label}: exactly one Authenticate for the expiry"
            );
            assert_eq!(client.token_generation(), TokenGeneration(2), "{label}");

            // While in use the token lives on (the TTL slides).
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(700)).await;
                get(&mut client, "k").await.unwrap();
            }
            assert_eq!(counts.logins(), 2, "{label}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_hundred_calls_racing_a_simple_token_expiry_send_one_authenticate() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = simple_cluster(&bin, 2).await;
            let (mut client, counts) = client(&cluster, "root", ROOT_PASSWORD);
            put(&mut client, "k", "v").await.unwrap();
            tokio::time::sleep(Duration::from_secs(4)).await;

            hundred_gets(&client, &label).await;
            assert!(counts.token_rejections() >= 1, "{label}");
            assert_eq!(
                counts.logins(),
                2,
                "{label}: one Authenticate for 100 calls"
            );
            eprintln!(
                "{label}: 100 calls racing an expiry: {} rejected, {} Authenticate",
                counts.token_rejections(),
                counts.logins() - 1
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_restart_forgets_simple_tokens_and_the_next_call_logs_in() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = simple_cluster(&bin, 300).await;
            let (mut client, counts) = client(&cluster, "root", ROOT_PASSWORD);
            put(&mut client, "k", "v").await.unwrap();
            // etcd re-applies the `Authenticate` entries its backend had not
            // yet committed when it died (every 100 ms), restoring their
            // tokens; give the backend time to commit, so that the restart
            // really forgets the token.
            tokio::time::sleep(Duration::from_millis(500)).await;

            cluster.member(0).restart().await.unwrap();
            // The first call may meet the connection the restart broke; that
            // is the transport's (and the retry layer's) business, not auth's.
            let mut transport_errors = 0;
            let value = loop {
                match get(&mut client, "k").await {
                    Ok(value) => break value,
                    Err(e) if is_transport_error(&e) && transport_errors < 3 => {
                        transport_errors += 1;
                        eprintln!("{label}: after restart: {e}");
                    }
                    Err(e) => panic!("{label}: {e}"),
                }
            };
            assert_eq!(value.as_deref(), Some("v"), "{label}");
            eprintln!(
                "{label}: after restart: {transport_errors} transport errors, {} token rejections",
                counts.token_rejections()
            );
            assert_eq!(counts.token_rejections(), 1, "{label}: the forgotten token");
            assert_eq!(counts.logins(), 2, "{label}");
        }
    })
    .await;
}

#[tokio::test]
async fn jwt_tokens_are_refreshed_before_they_expire() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = jwt_cluster(&bin, Duration::from_secs(3)).await;
            let (mut client, counts) = client(&cluster, "root", ROOT_PASSWORD);
            put(&mut client, "k", "v").await.unwrap();
            assert_eq!(counts.logins(), 1, "{label}");

            // Idle past `exp`: the layer knows, and logs in before sending.
            tokio::time::sleep(Duration::from_millis(3500)).await;
            assert_eq!(
                get(&mut client, "k").await.unwrap().as_deref(),
                Some("v"),
                "{label}"
            );
            assert_eq!(counts.logins(), 2, "{label}");
            assert_eq!(
                counts.token_rejections(),
                0,
                "{label}: never sent an expired JWT"
            );

            // Busy through several lifetimes: refreshed ahead each time,
            // never rejected.
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(7) {
                get(&mut client, "k").await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(counts.token_rejections(), 0, "{label}");
            let logins = counts.logins();
            assert!((3..=8).contains(&logins), "{label}: {logins} logins");
        }
    })
    .await;
}

#[tokio::test]
async fn a_hundred_calls_racing_a_jwt_expiry_send_one_authenticate() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = jwt_cluster(&bin, Duration::from_secs(2)).await;
            let (mut client, counts) = client(&cluster, "root", ROOT_PASSWORD);
            put(&mut client, "k", "v").await.unwrap();
            tokio::time::sleep(Duration::from_millis(2500)).await;

            hundred_gets(&client, &label).await;
            assert_eq!(
                counts.logins(),
                2,
                "{label}: one Authenticate for 100 calls"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_probe_reports_the_generation_it_was_sent_with() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = simple_cluster(&bin, 2).await;
            let (mut client, _counts) = client(&cluster, "root", ROOT_PASSWORD);
            put(&mut client, "k", "v").await.unwrap();
            tokio::time::sleep(Duration::from_secs(4)).await;

            let mut probe = EtcdRequest::new(RangeRequest {
                key: "k".into(),
                count_only: true,
                ..Default::default()
            });
            probe.meta.extensions.insert(ReportTokenGeneration);
            let response = call(&mut client, probe).await.unwrap();
            assert_eq!(
                response.extensions.get::<TokenGeneration>(),
                Some(&TokenGeneration(2)),
                "{label}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_is_a_typed_auth_failed() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = simple_cluster(&bin, 300).await;
            let (mut client, counts) = client(&cluster, "root", "wrong");
            let error = put(&mut client, "k", "v").await.unwrap_err();
            assert_eq!(error.kind(), &ErrorKind::AuthFailed, "{label}: {error}");
            assert_eq!(error.sent(), Sent::NotSent, "{label}");
            // At once again: the refusal is remembered, not asked again.
            let error = get(&mut client, "k").await.unwrap_err();
            assert_eq!(error.kind(), &ErrorKind::AuthFailed, "{label}: {error}");
            assert_eq!(counts.logins(), 1, "{label}");

            let (mut unknown, _) = support::client(&cluster, "nobody", "x");
            let error = get(&mut unknown, "k").await.unwrap_err();
            assert_eq!(error.kind(), &ErrorKind::AuthFailed, "{label}: {error}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_user_is_denied_what_its_role_does_not_grant() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = simple_cluster(&bin, 300).await;
            support::add_user(&cluster, "alice", "alice-pw", "alice/").await;
            let (mut client, counts) = client(&cluster, "alice", "alice-pw");
            put(&mut client, "alice/k", "v").await.unwrap();
            let error = put(&mut client, "bob/k", "v").await.unwrap_err();
            assert_eq!(
                error.kind(),
                &ErrorKind::PermissionDenied,
                "{label}: {error}"
            );
            let error = get(&mut client, "bob/k").await.unwrap_err();
            assert_eq!(
                error.kind(),
                &ErrorKind::PermissionDenied,
                "{label}: {error}"
            );
            assert_eq!(
                counts.logins(),
                1,
                "{label}: a denial is not a token problem"
            );
        }
    })
    .await;
}
