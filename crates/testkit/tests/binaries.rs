//! Choosing the etcd binaries through the environment. One test only: it
//! changes environment variables, which must not race with other tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use etcd_tower_testkit::{binaries, repo_root, try_binaries, TestkitError};

#[test]
fn environment_selects_binaries_and_missing_ones_fail_loudly() {
    let saved: Vec<_> = [
        "ETCD_BIN",
        "ETCDCTL_BIN",
        "ETCD3530_BIN",
        "ETCD35_BIN",
        "ETCD34_BIN",
    ]
    .into_iter()
    .map(|k| (k, std::env::var_os(k)))
    .collect();
    for (key, _) in &saved {
        std::env::remove_var(key);
    }

    let defaults = binaries();
    assert_eq!(defaults.len(), 3);
    assert_eq!(defaults[0].etcd(), repo_root().join(".etcd/v3.5.30/etcd"));
    assert_eq!(defaults[1].etcd(), repo_root().join(".etcd/v3.5/etcd"));
    assert_eq!(
        defaults[2].etcdctl(),
        repo_root().join(".etcd/v3.4/etcdctl")
    );
    assert_eq!(defaults[0].version(), "3.5.30");
    assert_eq!(defaults[1].major_minor(), (3, 5));
    assert_eq!(defaults[2].major_minor(), (3, 4));

    // ETCD_BIN: only that one, with the etcdctl beside it.
    std::env::set_var("ETCD_BIN", defaults[2].etcd());
    let only = binaries();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].label(), defaults[2].label());
    assert_eq!(only[0].etcdctl(), defaults[2].etcdctl());
    std::env::remove_var("ETCD_BIN");

    // A missing default binary is an error that says how to fix it.
    std::env::set_var("ETCD34_BIN", "/nonexistent/etcd");
    let err = try_binaries().unwrap_err();
    assert!(matches!(err, TestkitError::MissingBinary { .. }), "{err}");
    assert!(err.to_string().contains("scripts/install-etcd.sh"), "{err}");
    assert!(std::panic::catch_unwind(binaries).is_err());
    std::env::remove_var("ETCD34_BIN");

    for (key, value) in saved {
        if let Some(value) = value {
            std::env::set_var(key, value);
        }
    }
}
