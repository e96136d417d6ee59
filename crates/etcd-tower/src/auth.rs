//! Auth administration: enable/disable, users, roles and permissions.
//!
//! Logging in is not here: give credentials to the builder
//! ([`ClientBuilder::user`](crate::ClientBuilder::user)) and the auth layer
//! keeps a token on every call; [`Client::update_user`] changes them on a
//! live client.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::{Client, Permission};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! client.role_add("reader").await?;
//! client.role_grant_permission("reader", Permission::read("app/").with_prefix()).await?;
//! client.user_add("alice", "s3cret").await?;
//! client.user_grant_role("alice", "reader").await?;
//! client.user_add("root", "rootpw").await?;
//! client.user_grant_role("root", "root").await?;
//! client.auth_enable().await?;
//! # Ok(())
//! # }
//! ```

use bytes::Bytes;
use etcd_tower_core::proto::authpb;
use etcd_tower_core::proto::etcdserverpb as pb;
#[cfg(feature = "auth")]
use etcd_tower_core::ErrorKind;
use etcd_tower_core::EtcdError;

pub use etcd_tower_core::proto::authpb::permission::Type as PermissionType;
pub use etcd_tower_core::proto::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse,
    AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthStatusResponse, AuthUserAddResponse,
    AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGetResponse,
    AuthUserGrantRoleResponse, AuthUserListResponse, AuthUserRevokeRoleResponse,
};

use crate::bytes::{prefix_end, IntoBytes};
use crate::client::Client;

/// A permission on a key, a range or a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    kind: PermissionType,
    key: Bytes,
    range_end: Bytes,
}

impl Permission {
    /// A permission of the given type on one key.
    pub fn new(kind: PermissionType, key: impl IntoBytes) -> Self {
        Permission {
            kind,
            key: key.into_bytes(),
            range_end: Bytes::new(),
        }
    }

    /// Read permission on one key.
    pub fn read(key: impl IntoBytes) -> Self {
        Permission::new(PermissionType::Read, key)
    }

    /// Write permission on one key.
    pub fn write(key: impl IntoBytes) -> Self {
        Permission::new(PermissionType::Write, key)
    }

    /// Read and write permission on one key.
    pub fn read_write(key: impl IntoBytes) -> Self {
        Permission::new(PermissionType::Readwrite, key)
    }

    /// Extends the permission to `[key, end)`.
    pub fn with_range_end(mut self, end: impl IntoBytes) -> Self {
        self.range_end = end.into_bytes();
        self
    }

    /// Extends the permission to every key that starts with the key.
    pub fn with_prefix(mut self) -> Self {
        self.range_end = prefix_end(&self.key);
        self
    }

    /// Extends the permission to every key from the key on.
    pub fn with_from_key(mut self) -> Self {
        self.range_end = Bytes::from_static(b"\0");
        self
    }

    /// The permission's type.
    pub fn kind(&self) -> PermissionType {
        self.kind
    }

    /// The key (the start of the range).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The end of the range (empty: only the key).
    pub fn range_end(&self) -> &[u8] {
        &self.range_end
    }
}

impl From<Permission> for authpb::Permission {
    fn from(p: Permission) -> Self {
        authpb::Permission {
            perm_type: p.kind as i32,
            key: p.key,
            range_end: p.range_end,
        }
    }
}

impl From<authpb::Permission> for Permission {
    fn from(p: authpb::Permission) -> Self {
        Permission {
            kind: PermissionType::try_from(p.perm_type).unwrap_or(PermissionType::Read),
            key: p.key,
            range_end: p.range_end,
        }
    }
}

/// # Logging in as another user
#[cfg(feature = "auth")]
impl Client {
    /// Logs in as `user` with `password` from now on, on this client and
    /// every clone of it (etcd-client's `update_user`); the client must have
    /// been built with [`ClientBuilder::user`](crate::ClientBuilder::user),
    /// or this fails with [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest)
    /// and changes nothing.
    ///
    /// It waits for a login under way, so every call made after it returns
    /// logs in as `user`; calls already sent finish with the token they
    /// carry. Watches are kept: before the next watch is created on a
    /// stream opened with the old token, the watch engine re-opens that
    /// stream with the new one and resumes its watchers from their next
    /// revision, losing nothing. A wrong password surfaces on the next call
    /// as [`ErrorKind::AuthFailed`](crate::ErrorKind::AuthFailed); see
    /// [`CredentialsHandle`](crate::layers::auth::CredentialsHandle).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), etcd_tower::EtcdError> {
    /// use etcd_tower::Client;
    ///
    /// let client = Client::builder(["127.0.0.1:2379"]).user("alice", "a-pw").connect().await?;
    /// client.update_user("bob", "b-pw").await?;
    /// client.put("owned-by-bob", "1").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update_user(
        &self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<(), EtcdError> {
        let credentials = self.credentials_handle().ok_or_else(|| {
            EtcdError::client(
                ErrorKind::InvalidRequest,
                "the client has no credentials to change: it was not built with ClientBuilder::user",
            )
        })?;
        credentials.update(user, password).await;
        Ok(())
    }

    /// The user this client logs in as, if it was built with one.
    pub fn user(&self) -> Option<String> {
        self.credentials_handle()
            .map(|credentials| credentials.user())
    }
}

/// # Auth administration
impl Client {
    /// Enables authentication (the `root` user with the `root` role must exist).
    pub async fn auth_enable(&self) -> Result<AuthEnableResponse, EtcdError> {
        self.unary(pb::AuthEnableRequest {}).await
    }

    /// Disables authentication.
    pub async fn auth_disable(&self) -> Result<AuthDisableResponse, EtcdError> {
        self.unary(pb::AuthDisableRequest {}).await
    }

    /// Whether authentication is enabled, and the auth store's revision
    /// (etcd 3.5+; older servers answer `Unimplemented`).
    pub async fn auth_status(&self) -> Result<AuthStatusResponse, EtcdError> {
        self.unary(pb::AuthStatusRequest {}).await
    }

    /// Adds a user with a password.
    pub async fn user_add(
        &self,
        name: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<AuthUserAddResponse, EtcdError> {
        self.unary(pb::AuthUserAddRequest {
            name: name.into(),
            password: password.into(),
            options: Some(authpb::UserAddOptions { no_password: false }),
            hashed_password: String::new(),
        })
        .await
    }

    /// Adds a user that cannot log in with a password (for TLS
    /// common-name auth).
    pub async fn user_add_no_password(
        &self,
        name: impl Into<String>,
    ) -> Result<AuthUserAddResponse, EtcdError> {
        self.unary(pb::AuthUserAddRequest {
            name: name.into(),
            password: String::new(),
            options: Some(authpb::UserAddOptions { no_password: true }),
            hashed_password: String::new(),
        })
        .await
    }

    /// A user's roles.
    pub async fn user_get(
        &self,
        name: impl Into<String>,
    ) -> Result<AuthUserGetResponse, EtcdError> {
        self.unary(pb::AuthUserGetRequest { name: name.into() })
            .await
    }

    /// Every user.
    pub async fn user_list(&self) -> Result<AuthUserListResponse, EtcdError> {
        self.unary(pb::AuthUserListRequest {}).await
    }

    /// Deletes a user.
    pub async fn user_delete(
        &self,
        name: impl Into<String>,
    ) -> Result<AuthUserDeleteResponse, EtcdError> {
        self.unary(pb::AuthUserDeleteRequest { name: name.into() })
            .await
    }

    /// Changes a user's password.
    pub async fn user_change_password(
        &self,
        name: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<AuthUserChangePasswordResponse, EtcdError> {
        self.unary(pb::AuthUserChangePasswordRequest {
            name: name.into(),
            password: password.into(),
            hashed_password: String::new(),
        })
        .await
    }

    /// Grants a role to a user.
    pub async fn user_grant_role(
        &self,
        user: impl Into<String>,
        role: impl Into<String>,
    ) -> Result<AuthUserGrantRoleResponse, EtcdError> {
        self.unary(pb::AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        })
        .await
    }

    /// Revokes a role from a user.
    pub async fn user_revoke_role(
        &self,
        user: impl Into<String>,
        role: impl Into<String>,
    ) -> Result<AuthUserRevokeRoleResponse, EtcdError> {
        self.unary(pb::AuthUserRevokeRoleRequest {
            name: user.into(),
            role: role.into(),
        })
        .await
    }

    /// Adds a role.
    pub async fn role_add(
        &self,
        name: impl Into<String>,
    ) -> Result<AuthRoleAddResponse, EtcdError> {
        self.unary(pb::AuthRoleAddRequest { name: name.into() })
            .await
    }

    /// A role's permissions (`perm`; convert each with `Permission::from`).
    pub async fn role_get(
        &self,
        name: impl Into<String>,
    ) -> Result<AuthRoleGetResponse, EtcdError> {
        self.unary(pb::AuthRoleGetRequest { role: name.into() })
            .await
    }

    /// Every role.
    pub async fn role_list(&self) -> Result<AuthRoleListResponse, EtcdError> {
        self.unary(pb::AuthRoleListRequest {}).await
    }

    /// Deletes a role.
    pub async fn role_delete(
        &self,
        name: impl Into<String>,
    ) -> Result<AuthRoleDeleteResponse, EtcdError> {
        self.unary(pb::AuthRoleDeleteRequest { role: name.into() })
            .await
    }

    /// Grants a permission to a role.
    pub async fn role_grant_permission(
        &self,
        role: impl Into<String>,
        permission: Permission,
    ) -> Result<AuthRoleGrantPermissionResponse, EtcdError> {
        self.unary(pb::AuthRoleGrantPermissionRequest {
            name: role.into(),
            perm: Some(permission.into()),
        })
        .await
    }

    /// Revokes the permission on `[key, range_end)` from a role (the
    /// permission's type does not matter).
    pub async fn role_revoke_permission(
        &self,
        role: impl Into<String>,
        permission: Permission,
    ) -> Result<AuthRoleRevokePermissionResponse, EtcdError> {
        self.unary(pb::AuthRoleRevokePermissionRequest {
            role: role.into(),
            key: permission.key,
            range_end: permission.range_end,
        })
        .await
    }
}
