//! An instance whose process is killed (SIGKILL: no deregistration, no
//! last renewal) leaves the Discover stream when its lease expires, within
//! the lease's TTL, on every etcd version the test kit offers.
//!
//! The instance is a real child process: this test binary run again with
//! only [`child_instance`] selected and the endpoints in
//! [`CHILD_ENDPOINTS`]; it registers, says so on stdout, and waits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use etcd_tower::Client;
use etcd_tower_naming::{Change, Endpoint, EndpointManager, RegisterOptions};
use futures::StreamExt;
use support::{each_version, single};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::{timeout, Instant};

/// Set for the child: the etcd endpoints it registers with.
const CHILD_ENDPOINTS: &str = "ETCD_TOWER_NAMING_CHILD_ENDPOINTS";
/// The TTL the child asks for, in seconds.
const TTL: i64 = 2;
/// What the expiry may take beyond the TTL: etcd looks for expired
/// leases every 500 ms, then revokes through raft.
const MARGIN: Duration = Duration::from_millis(1500);

/// The child's part: nothing unless run as the child.
#[tokio::test]
async fn child_instance() {
    let Ok(endpoints) = std::env::var(CHILD_ENDPOINTS) else {
        return;
    };
    let client = Client::connect(endpoints.split(',')).await.unwrap();
    let manager = EndpointManager::new(&client, "killed").unwrap();
    let endpoint = Endpoint::new(format!("pid-{}", std::process::id()));
    let registration = manager
        .register(endpoint, RegisterOptions::new().ttl(TTL))
        .await
        .unwrap();
    println!(
        "REGISTERED {} {}",
        registration.key(),
        registration.ttl().as_millis()
    );
    // Killed long before this ends.
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(registration);
}

#[tokio::test]
async fn killed_instance_leaves_within_its_ttl() {
    if std::env::var(CHILD_ENDPOINTS).is_ok() {
        return;
    }
    each_version(30, |bin| async move {
        let (cluster, client) = single(&bin).await;
        let label = bin.label();
        let manager = EndpointManager::new(&client, "killed").unwrap();
        let mut discover = manager
            .discover(|endpoint| endpoint.addr.clone())
            .await
            .unwrap();

        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_instance",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENDPOINTS, cluster.endpoints().join(","))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let said = timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // After libtest's "test child_instance ... ".
                if let Some((_, said)) = line.split_once("REGISTERED ") {
                    return said.to_owned();
                }
            }
            panic!("the child ended without registering");
        })
        .await
        .unwrap();
        let (key, ttl_ms) = said.split_once(' ').unwrap();
        let ttl = Duration::from_millis(ttl_ms.parse().unwrap());
        let pid = child.id().unwrap();
        assert_eq!(key, format!("killed/pid-{pid}"));

        let inserted = timeout(Duration::from_secs(5), discover.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match inserted {
            Change::Insert(k, addr) => {
                assert_eq!((k.as_str(), addr), (key, format!("pid-{pid}")), "{label}")
            }
            Change::Remove(k) => panic!("{label}: {k} removed before it was killed"),
        }
        // Let the child renew a few times, so that the lease is kept by
        // its keeper, not by the grant alone.
        tokio::time::sleep(ttl * 3 / 2).await;
        assert_eq!(
            client.get(key).await.unwrap().kvs().len(),
            1,
            "{label}: kept alive past its TTL"
        );

        child.start_kill().unwrap();
        let killed_at = Instant::now();
        child.wait().await.unwrap();
        let removed = timeout(ttl + MARGIN, discover.next())
            .await
            .unwrap_or_else(|_| panic!("{label}: still there {:?} after the kill", ttl + MARGIN))
            .unwrap()
            .unwrap();
        let took = killed_at.elapsed();
        assert!(matches!(&removed, Change::Remove(k) if k == key), "{label}");
        println!("{label}: removed {took:?} after SIGKILL (lease TTL {ttl:?})");
    })
    .await;
}
