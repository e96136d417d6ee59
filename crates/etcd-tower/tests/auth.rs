//! Auth administration and logging in through the builder, against etcd
//! 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use etcd_tower::watch::WatchOptions;
use etcd_tower::{Client, Code, ErrorKind, Permission, PermissionType, StreamExt};
use support::{each_version, is_34, single};

#[tokio::test]
async fn users_roles_permissions_and_login() {
    each_version(90, |bin| async move {
        let (cluster, admin) = single(&bin).await;

        match admin.auth_status().await {
            Ok(status) => assert!(!status.enabled),
            Err(e) => {
                assert!(is_34(&bin), "{e}");
                assert_eq!(e.code(), Code::Unimplemented);
            }
        }

        admin.role_add("reader").await.unwrap();
        admin.role_add("tmp").await.unwrap();
        let e = admin.role_add("reader").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::RoleExists, "{e}");
        admin
            .role_grant_permission("reader", Permission::read("app/").with_prefix())
            .await
            .unwrap();
        admin
            .role_grant_permission("reader", Permission::write("app/a").with_range_end("app/c"))
            .await
            .unwrap();
        admin
            .role_grant_permission("reader", Permission::read_write("solo"))
            .await
            .unwrap();
        let perms: Vec<Permission> = admin
            .role_get("reader")
            .await
            .unwrap()
            .perm
            .into_iter()
            .map(Permission::from)
            .collect();
        assert_eq!(perms.len(), 3, "{perms:?}");
        assert!(perms.contains(&Permission::read("app/").with_prefix()));
        assert!(perms
            .iter()
            .any(|p| p.kind() == PermissionType::Readwrite && p.key() == b"solo"));
        admin
            .role_revoke_permission("reader", Permission::read_write("solo"))
            .await
            .unwrap();
        assert_eq!(admin.role_get("reader").await.unwrap().perm.len(), 2);
        let mut roles = admin.role_list().await.unwrap().roles;
        roles.sort();
        assert_eq!(roles, ["reader", "tmp"]);
        admin.role_delete("tmp").await.unwrap();
        let e = admin.role_get("tmp").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::RoleNotFound, "{e}");

        admin.user_add("alice", "first").await.unwrap();
        admin.user_add_no_password("cert-user").await.unwrap();
        let e = admin.user_add("alice", "again").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::UserExists, "{e}");
        admin.user_grant_role("alice", "reader").await.unwrap();
        admin.user_grant_role("cert-user", "reader").await.unwrap();
        assert_eq!(admin.user_get("alice").await.unwrap().roles, ["reader"]);
        admin.user_revoke_role("cert-user", "reader").await.unwrap();
        assert!(admin.user_get("cert-user").await.unwrap().roles.is_empty());
        let mut users = admin.user_list().await.unwrap().users;
        users.sort();
        assert_eq!(users, ["alice", "cert-user"]);
        admin.user_delete("cert-user").await.unwrap();
        let e = admin.user_get("cert-user").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::UserNotFound, "{e}");
        admin.user_change_password("alice", "second").await.unwrap();

        admin.put("app/x", "1").await.unwrap();
        admin.put("other", "1").await.unwrap();
        admin.user_add("root", "rootpw").await.unwrap();
        admin.user_grant_role("root", "root").await.unwrap();
        admin.auth_enable().await.unwrap();

        // Anonymous calls are refused now.
        let e = admin.get("app/x").await.unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::UserEmpty | ErrorKind::PermissionDenied | ErrorKind::InvalidAuthToken
            ),
            "{e}"
        );
        // The old password no longer works; connect() logs in and says so.
        let e = Client::builder(cluster.endpoints())
            .user("alice", "first")
            .connect()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::AuthFailed, "{e}");

        let alice = Client::builder(cluster.endpoints())
            .user("alice", "second")
            .connect()
            .await
            .unwrap();
        assert_eq!(alice.get("app/x").await.unwrap().kvs()[0].value(), b"1");
        alice.put("app/b", "ok").await.unwrap();
        let e = alice.get("other").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::PermissionDenied, "{e}");
        let e = alice.put("app/x", "no").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::PermissionDenied, "{e}");

        let root = Client::builder(cluster.endpoints())
            .user("root", "rootpw")
            .build()
            .unwrap();
        if !is_34(&bin) {
            assert!(root.auth_status().await.unwrap().enabled);
        }
        root.auth_disable().await.unwrap();
        admin.get("other").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn update_user_switches_identity_and_keeps_watches() {
    each_version(60, |bin| async move {
        let (cluster, admin) = single(&bin).await;
        for (role, own) in [("a-role", "a/"), ("b-role", "b/")] {
            admin.role_add(role).await.unwrap();
            admin
                .role_grant_permission(role, Permission::read_write(own).with_prefix())
                .await
                .unwrap();
            admin
                .role_grant_permission(role, Permission::read("shared/").with_prefix())
                .await
                .unwrap();
        }
        for (user, role) in [("alice", "a-role"), ("bob", "b-role"), ("root", "root")] {
            admin.user_add(user, &format!("{user}-pw")).await.unwrap();
            admin.user_grant_role(user, role).await.unwrap();
        }
        admin.auth_enable().await.unwrap();
        let root = Client::builder(cluster.endpoints())
            .user("root", "root-pw")
            .connect()
            .await
            .unwrap();

        let client = Client::builder(cluster.endpoints())
            .user("alice", "alice-pw")
            .connect()
            .await
            .unwrap();
        let clone = client.clone();
        assert_eq!(client.user().as_deref(), Some("alice"));
        client.put("a/1", "x").await.unwrap();
        let e = client.put("b/1", "x").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::PermissionDenied, "{e}");
        let mut watcher = client
            .watch("shared/", WatchOptions::new().prefix())
            .await
            .unwrap();
        root.put("shared/1", "before").await.unwrap();

        client.update_user("bob", "bob-pw").await.unwrap();
        assert_eq!(clone.user().as_deref(), Some("bob"), "clones share it");
        clone.put("b/1", "x").await.unwrap();
        let e = client.put("a/2", "x").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::PermissionDenied, "{e}");
        // A new watch makes the engine re-open the stream with bob's token.
        let mut bobs = client
            .watch("b/", WatchOptions::new().prefix())
            .await
            .unwrap();
        root.put("shared/2", "after").await.unwrap();
        root.put("b/2", "y").await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let batch = tokio::time::timeout(Duration::from_secs(10), watcher.next())
                .await
                .expect("alice's watch goes on")
                .unwrap()
                .unwrap();
            seen.extend(
                batch
                    .events()
                    .iter()
                    .map(|e| e.value_str().unwrap().to_owned()),
            );
        }
        assert_eq!(seen, ["before", "after"], "every event once, in order");
        let batch = tokio::time::timeout(Duration::from_secs(10), bobs.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(batch.events()[0].key(), b"b/2");

        client.update_user("bob", "wrong").await.unwrap();
        let e = client.get("b/1").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::AuthFailed, "{e}");
        client.update_user("bob", "bob-pw").await.unwrap();
        client.get("b/1").await.unwrap();

        let plain = Client::builder(cluster.endpoints()).build().unwrap();
        let e = plain.update_user("bob", "bob-pw").await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidRequest, "{e}");
        assert_eq!(e.sent(), etcd_tower::Sent::NotSent);
        assert_eq!(plain.user(), None);
    })
    .await;
}
