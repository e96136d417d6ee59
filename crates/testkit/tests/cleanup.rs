//! Nothing outlives a test: not on drop, not on panic, not when the test
//! process itself is killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use etcd_tower_testkit::{binaries, Cluster};
use support::{bounded, process_exists};

#[tokio::test]
async fn drop_kills_every_member_and_removes_the_dir() {
    bounded(60, async {
        for bin in binaries() {
            let label = bin.label();
            let cluster = Cluster::builder(&bin).members(3).start().await.unwrap();
            let pids: Vec<u32> = cluster.members().iter().map(|m| m.pid().unwrap()).collect();
            let dir = cluster.dir().to_owned();
            assert!(dir.is_dir());
            // Also when a member is frozen.
            cluster.member(1).stop().unwrap();
            drop(cluster);
            for pid in pids {
                assert!(!process_exists(pid), "{label}: pid {pid} survived the drop");
            }
            assert!(
                !dir.exists(),
                "{label}: {} survived the drop",
                dir.display()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_panicking_test_leaves_nothing_behind() {
    bounded(60, async {
        for bin in binaries() {
            let (sender, receiver) = tokio::sync::oneshot::channel::<(Vec<u32>, PathBuf)>();
            let task = tokio::spawn(async move {
                let cluster = Cluster::start(&bin).await.unwrap();
                let pids = cluster.members().iter().map(|m| m.pid().unwrap()).collect();
                sender.send((pids, cluster.dir().to_owned())).unwrap();
                panic!("deliberate panic with a live cluster");
            });
            assert!(task.await.unwrap_err().is_panic());
            let (pids, dir) = receiver.await.unwrap();
            for pid in pids {
                assert!(!process_exists(pid), "pid {pid} survived the panic");
            }
            assert!(!dir.exists());
        }
    })
    .await;
}

const HELPER_ENV: &str = "ETCD_TESTKIT_ORPHAN_HELPER_PID_FILE";

/// Run as a child process by `members_die_with_the_test_process`: starts a
/// cluster, writes the member's pid to a file, and waits to be killed.
#[tokio::test]
#[ignore = "helper process for members_die_with_the_test_process"]
async fn orphan_helper() {
    let Some(pid_file) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let bin = binaries().remove(0);
    let cluster = Cluster::start(&bin).await.unwrap();
    let pid = cluster.member(0).pid().unwrap();
    let report = format!("{pid}\n{}", cluster.dir().display());
    // Written whole in one step, so the parent never reads half of it.
    let tmp = PathBuf::from(&pid_file).with_extension("tmp");
    std::fs::write(&tmp, report).unwrap();
    std::fs::rename(tmp, pid_file).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn members_die_with_the_test_process() {
    bounded(60, async {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut helper = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "orphan_helper", "--ignored", "--nocapture"])
            .env(HELPER_ENV, &pid_file)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (etcd_pid, cluster_dir) = loop {
            if let Ok(text) = std::fs::read_to_string(&pid_file) {
                let (pid, dir) = text.split_once('\n').unwrap();
                break (pid.parse::<u32>().unwrap(), PathBuf::from(dir));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(process_exists(etcd_pid));

        // SIGKILL: no destructor runs in the helper; only the kernel can clean up.
        helper.kill().await.unwrap();
        let mut died = false;
        for _ in 0..100 {
            if !process_exists(etcd_pid) {
                died = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // No destructor ran in the helper, so its temp dir is ours to remove.
        std::fs::remove_dir_all(&cluster_dir).unwrap();
        assert!(died, "etcd pid {etcd_pid} outlived the killed test process");
    })
    .await;
}

/// The kit's futures can be moved into `tokio::spawn` (checked at compile time).
#[allow(dead_code)]
fn futures_are_send(bin: &etcd_tower_testkit::EtcdBinary, cluster: &mut Cluster) {
    fn send<T: Send>(_: T) {}
    send(Cluster::builder(bin).start());
    send(cluster.etcdctl(&[]));
    send(cluster.etcdctl_as(None, &[]));
    send(cluster.leader_index());
    send(cluster.move_leader(0));
    send(cluster.wait_healthy());
    send(cluster.member(0).restart());
    send(cluster.member(0).is_leader());
    send(cluster.member(0).etcdctl(&[]));
    if let Some(tls) = cluster.tls() {
        send(tls.issue_client_cert("x"));
    }
    send(cluster.enable_auth(""));
    send(etcd_tower_testkit::Proxy::start(([127, 0, 0, 1], 1).into()));
}
