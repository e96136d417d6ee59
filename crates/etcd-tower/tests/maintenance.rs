//! Maintenance through the facade, against etcd 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use etcd_tower::maintenance::{AlarmType, DowngradeAction};
use etcd_tower::{Code, ErrorKind};
use sha2::{Digest, Sha256};
use support::{each_version, is_34, single};

#[tokio::test]
async fn status_alarms_hashes_defragment() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        client.put("k", "v").await.unwrap();
        let status = client.status().await.unwrap();
        assert!(
            bin.version().starts_with(&status.version),
            "{}",
            status.version
        );
        assert!(status.db_size > 0);
        assert_eq!(status.leader, status.header.unwrap().member_id);

        assert!(client.alarm_list().await.unwrap().alarms.is_empty());
        client.alarm_disarm(0, AlarmType::Nospace).await.unwrap();

        let hash = client.hash().await.unwrap();
        assert_ne!(hash.hash, 0);
        let kv = client.hash_kv(0).await.unwrap();
        assert_eq!(kv.hash, client.hash_kv(0).await.unwrap().hash, "stable");
        client.defragment().await.unwrap();

        // Only one member: moving leadership to itself is accepted or refused
        // with a typed error, never hangs.
        let me = status.header.unwrap().member_id;
        match client.move_leader(me).await {
            Ok(_) => {}
            Err(e) => assert_ne!(e.kind(), &ErrorKind::Other, "{e}"),
        }
        let e = client.move_leader(12345).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::BadLeaderTransferee, "{e}");

        let downgrade = client.downgrade(DowngradeAction::Validate, "3.0.0").await;
        if is_34(&bin) {
            assert_eq!(downgrade.unwrap_err().code(), Code::Unimplemented);
        } else {
            assert!(downgrade.is_err(), "3.0 is not a valid downgrade target");
        }
    })
    .await;
}

/// The snapshot is written with etcd's trailing sha256, which the client
/// verifies; etcdctl (3.4) / etcdutl (3.5) restore it.
#[tokio::test]
async fn snapshot_is_verified_and_restores() {
    each_version(90, |bin| async move {
        let (cluster, client) = single(&bin).await;
        for i in 0..100 {
            client
                .put(format!("snap/{i}"), "x".repeat(100))
                .await
                .unwrap();
        }
        let path = cluster.dir().join("backup.db");
        let mut file = tokio::fs::File::create(&path).await.unwrap();
        let info = client.snapshot(&mut file).await.unwrap();
        drop(file);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, info.size() + 32);
        let (db, sum) = bytes.split_at(bytes.len() - 32);
        assert_eq!(&Sha256::digest(db)[..], sum);
        assert_eq!(info.sha256(), sum);
        assert_eq!(db.len() % 512, 0, "a bolt db is whole pages");

        // Restore with the matching tool: etcdctl on 3.4, etcdutl on 3.5
        // (etcdctl's restore is deprecated there but still works).
        let restored = cluster.dir().join("restored");
        let tool = bin.etcdctl().to_owned();
        let out = tokio::process::Command::new(&tool)
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "restore"])
            .arg(&path)
            .arg("--data-dir")
            .arg(&restored)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(restored.join("member").exists());

        // A corrupted copy is refused by the restore tool too.
        let mut bad = bytes.clone();
        bad[100] ^= 0xff;
        let bad_path = cluster.dir().join("bad.db");
        std::fs::write(&bad_path, &bad).unwrap();
        let out = tokio::process::Command::new(&tool)
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "restore"])
            .arg(&bad_path)
            .arg("--data-dir")
            .arg(cluster.dir().join("bad-restore"))
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
    })
    .await;
}
