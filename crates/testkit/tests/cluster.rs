//! Starting clusters and injecting process faults, on every etcd version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower_testkit::{binaries, Cluster};
use support::{bounded, health_once};

#[tokio::test]
async fn binaries_are_3530_351_and_34() {
    let labels: Vec<String> = binaries().iter().map(|b| b.label()).collect();
    if std::env::var_os("ETCD_BIN").is_none() {
        assert_eq!(labels.len(), 3, "{labels:?}");
        assert_eq!(labels[0], "etcd 3.5.30", "{labels:?}");
        assert_eq!(labels[1], "etcd 3.5.1", "{labels:?}");
        assert!(labels[2].starts_with("etcd 3.4."), "{labels:?}");
    }
}

#[tokio::test]
async fn single_member_starts_healthy_and_serves() {
    bounded(60, async {
        for bin in binaries() {
            let cluster = Cluster::start(&bin).await.unwrap();
            let label = bin.label();
            assert_eq!(cluster.member_count(), 1);
            let endpoints = cluster.endpoints();
            assert_eq!(endpoints.len(), 1);
            assert!(endpoints[0].starts_with("http://127.0.0.1:"), "{label}");

            let body = health_once(cluster.member(0).client_addr())
                .await
                .unwrap()
                .unwrap();
            assert!(body.contains(r#""health":"true""#), "{label}: {body}");

            cluster
                .etcdctl(&["put", "greeting", "hello"])
                .await
                .unwrap();
            let out = cluster
                .etcdctl(&["get", "greeting", "--print-value-only"])
                .await
                .unwrap();
            assert_eq!(out.trim(), "hello", "{label}");
            assert!(cluster.member(0).is_leader().await.unwrap(), "{label}");
            assert_eq!(cluster.leader_index().await.unwrap(), 0, "{label}");
        }
    })
    .await;
}

#[tokio::test]
async fn three_members_survive_a_follower_kill_and_restart() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
            assert_eq!(cluster.member_count(), 3);
            let leader = cluster.leader_index().await.unwrap();
            assert!(cluster.member(leader).is_leader().await.unwrap(), "{label}");
            let follower = (leader + 1) % 3;
            assert!(
                !cluster.member(follower).is_leader().await.unwrap(),
                "{label}"
            );

            let pid = cluster.member(follower).pid().unwrap();
            cluster.member(follower).kill().unwrap();
            assert_eq!(cluster.member(follower).pid(), None, "{label}");
            assert!(
                !support::process_exists(pid),
                "{label}: pid {pid} still there"
            );

            // Two of three still make a quorum.
            cluster
                .etcdctl(&["put", "k", "written-while-down"])
                .await
                .unwrap();

            cluster.member(follower).restart().await.unwrap();
            let new_pid = cluster.member(follower).pid().unwrap();
            assert_ne!(new_pid, pid, "{label}");
            let body = health_once(cluster.member(follower).client_addr())
                .await
                .unwrap()
                .unwrap();
            assert!(body.contains(r#""health":"true""#), "{label}: {body}");
            // The restarted member caught up on what it missed.
            let out = cluster
                .member(follower)
                .etcdctl(&["get", "k", "--print-value-only", "--consistency=s"])
                .await;
            let mut value = out.unwrap();
            for _ in 0..100 {
                if value.trim() == "written-while-down" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                value = cluster
                    .member(follower)
                    .etcdctl(&["get", "k", "--print-value-only", "--consistency=s"])
                    .await
                    .unwrap();
            }
            assert_eq!(value.trim(), "written-while-down", "{label}");
        }
    })
    .await;
}

#[tokio::test]
async fn sigstop_freezes_and_sigcont_resumes() {
    bounded(60, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::start(&bin).await.unwrap();
            let member = cluster.member(0);
            member.stop().unwrap();
            assert!(member.is_stopped());
            assert!(
                member.pid().is_some(),
                "{label}: a stopped member still runs"
            );

            // The kernel still accepts connections, but nobody answers.
            let probe = tokio::time::timeout(
                Duration::from_millis(500),
                health_once(member.client_addr()),
            )
            .await;
            assert!(
                probe.is_err(),
                "{label}: a stopped member answered: {probe:?}"
            );
            let get = cluster.etcdctl(&["--command-timeout=1s", "get", "k"]).await;
            assert!(get.is_err(), "{label}: {get:?}");

            member.cont().unwrap();
            member.wait_healthy(Duration::from_secs(10)).await.unwrap();
            cluster.etcdctl(&["put", "k", "v"]).await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn stopping_the_leader_elects_another_and_move_leader_moves_it() {
    bounded(120, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
            let leader = cluster.leader_index().await.unwrap();

            let target = (leader + 1) % 3;
            cluster.move_leader(target).await.unwrap();
            assert_eq!(cluster.leader_index().await.unwrap(), target, "{label}");

            cluster.member(target).stop().unwrap();
            let new_leader = cluster.leader_index().await.unwrap();
            assert_ne!(new_leader, target, "{label}");
            cluster.member(target).cont().unwrap();
            cluster.wait_healthy().await.unwrap();
        }
    })
    .await;
}
