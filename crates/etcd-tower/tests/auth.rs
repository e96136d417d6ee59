//! Auth administration and logging in through the builder, against etcd
//! 3.5 and 3.4.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use etcd_tower::{Client, Code, ErrorKind, Permission, PermissionType};
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
