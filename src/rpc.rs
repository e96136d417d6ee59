//! The catalogue of etcd v3 RPCs, written once.
//!
//! Every RPC the client speaks is one row of the table in this file. From that
//! single table the crate derives the [`Rpc`] kind (with its gRPC path and its
//! retry class), the request and response bodies ([`RequestBody`],
//! [`ResponseBody`]), the conversions between protobuf messages and bodies,
//! and the transport's dispatch. Adding an RPC is adding a row; nothing can
//! fall out of sync.
//!
//! Streaming RPCs are part of the same table. Opening a stream *is* the call:
//! a bidirectional RPC (Watch, LeaseKeepAlive) carries its outbound messages
//! in the request as a [`RequestStream`], a server-streaming one (Snapshot,
//! Observe) carries its single request message, and both answer with a
//! [`ResponseStream`]. Layers therefore see streams exactly as they see unary
//! calls.

use crate::error::{ErrorKind, EtcdError};
use crate::proto::{etcdserverpb as pb, v3electionpb as election, v3lockpb as lock};
use crate::stream::{RequestStream, ResponseStream};
use crate::EtcdResponse;

/// Which gRPC service of etcd an [`Rpc`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcService {
    /// `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.
    Kv,
    /// `etcdserverpb.Watch`.
    Watch,
    /// `etcdserverpb.Lease`.
    Lease,
    /// `etcdserverpb.Auth`.
    Auth,
    /// `etcdserverpb.Cluster`.
    Cluster,
    /// `etcdserverpb.Maintenance`.
    Maintenance,
    /// `v3lockpb.Lock`.
    Lock,
    /// `v3electionpb.Election`.
    Election,
}

/// How the messages of an RPC flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcShape {
    /// One request message, one response message.
    Unary,
    /// One request message, a stream of response messages (Snapshot, Observe).
    ServerStreaming,
    /// A stream each way (Watch, LeaseKeepAlive).
    Bidirectional,
}

/// Whether an RPC may be repeated, following the rules of etcd's Go client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Repeatable {
    /// Reads nothing but state; repeating it changes nothing.
    ReadOnly,
    /// Changes state, but repeating it is harmless (lease grant/revoke,
    /// alarm, move-leader): the Go client retries these on `Unavailable`.
    Idempotent,
    /// A write whose repetition could apply it twice (Put, Txn, ...).
    No,
}

macro_rules! rpc_table {
    ($(
        $(#[$doc:meta])*
        $name:ident: $service:ident $shape:ident $repeat:ident
            $path:literal ($req:ty) -> ($resp:ty);
    )*) => {
        /// Names one etcd v3 RPC.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Rpc {
            $( $(#[$doc])* $name, )*
        }

        impl Rpc {
            /// Every RPC, in catalogue order.
            pub const ALL: &'static [Rpc] = &[ $( Rpc::$name, )* ];

            /// The RPC's method name, as etcd's proto spells it (`"Range"`).
            pub const fn name(self) -> &'static str {
                match self { $( Rpc::$name => stringify!($name), )* }
            }

            /// The full gRPC path (`"/etcdserverpb.KV/Range"`).
            pub const fn path(self) -> &'static str {
                match self { $( Rpc::$name => $path, )* }
            }

            /// The gRPC service the RPC belongs to.
            pub const fn service(self) -> RpcService {
                match self { $( Rpc::$name => RpcService::$service, )* }
            }

            /// How the RPC's messages flow.
            pub const fn shape(self) -> RpcShape {
                match self { $( Rpc::$name => RpcShape::$shape, )* }
            }

            /// Whether the RPC may be repeated safely.
            pub const fn repeatable(self) -> Repeatable {
                match self { $( Rpc::$name => Repeatable::$repeat, )* }
            }
        }

        /// The payload of an [`EtcdRequest`](crate::EtcdRequest): one variant per RPC.
        ///
        /// Unary and server-streaming RPCs carry their request message;
        /// bidirectional ones carry the stream of messages to send.
        #[non_exhaustive]
        pub enum RequestBody {
            $( $(#[$doc])* $name(rpc_table!(@req $shape $req)), )*
        }

        /// The payload of an [`EtcdResponse`]: one variant per RPC.
        ///
        /// Streaming RPCs answer with the stream of messages received.
        #[non_exhaustive]
        pub enum ResponseBody {
            $( $(#[$doc])* $name(rpc_table!(@resp $shape $resp)), )*
        }

        impl RequestBody {
            /// Which RPC this body is for.
            pub const fn rpc(&self) -> Rpc {
                match self { $( RequestBody::$name(_) => Rpc::$name, )* }
            }
        }

        impl ResponseBody {
            /// Which RPC this body answers.
            pub const fn rpc(&self) -> Rpc {
                match self { $( ResponseBody::$name(_) => Rpc::$name, )* }
            }
        }

        impl std::fmt::Debug for RequestBody {
            #[allow(unused_variables)] // streams print as `<stream>`
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self { $( RequestBody::$name(body) => rpc_table!(@debug f $name $shape body), )* }
            }
        }

        impl std::fmt::Debug for ResponseBody {
            #[allow(unused_variables)] // streams print as `<stream>`
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self { $( ResponseBody::$name(body) => rpc_table!(@debug_resp f $name $shape body), )* }
            }
        }

        $( rpc_table!(@convert $name $shape $req, $resp); )*

        /// How a carrier (the transport) carries each shape of call: the
        /// table hands every body to the method for its shape, with the
        /// function that wraps the answer back into a [`ResponseBody`].
        pub(crate) trait Dispatch {
            /// The result of carrying one call.
            type Output;
            /// Carries a unary call.
            fn unary<Req, Resp>(self, rpc: Rpc, body: Req, wrap: fn(Resp) -> ResponseBody) -> Self::Output
            where
                Req: prost::Message + Send + Sync + 'static,
                Resp: prost::Message + Default + Send + Sync + 'static;
            /// Carries a server-streaming call.
            fn server_streaming<Req, Resp>(
                self,
                rpc: Rpc,
                body: Req,
                wrap: fn(ResponseStream<Resp>) -> ResponseBody,
            ) -> Self::Output
            where
                Req: prost::Message + Send + Sync + 'static,
                Resp: prost::Message + Default + Send + Sync + 'static;
            /// Carries a bidirectional call.
            fn bidirectional<Req, Resp>(
                self,
                rpc: Rpc,
                body: RequestStream<Req>,
                wrap: fn(ResponseStream<Resp>) -> ResponseBody,
            ) -> Self::Output
            where
                Req: prost::Message + Send + Sync + 'static,
                Resp: prost::Message + Default + Send + Sync + 'static;
        }

        impl RequestBody {
            /// Hands the body to the dispatcher method for its shape.
            pub(crate) fn dispatch<D: Dispatch>(self, d: D) -> D::Output {
                match self {
                    $( RequestBody::$name(body) => rpc_table!(@dispatch d $name $shape body), )*
                }
            }
        }
    };

    (@req Unary $req:ty) => { $req };
    (@req ServerStreaming $req:ty) => { $req };
    (@req Bidirectional $req:ty) => { RequestStream<$req> };
    (@resp Unary $resp:ty) => { $resp };
    (@resp ServerStreaming $resp:ty) => { ResponseStream<$resp> };
    (@resp Bidirectional $resp:ty) => { ResponseStream<$resp> };

    (@debug $f:ident $name:ident Unary $body:ident) => { debug_message($f, Rpc::$name, $body) };
    (@debug $f:ident $name:ident ServerStreaming $body:ident) => { debug_message($f, Rpc::$name, $body) };
    (@debug $f:ident $name:ident Bidirectional $body:ident) => { $f.debug_tuple(stringify!($name)).field(&"<stream>").finish() };
    (@debug_resp $f:ident $name:ident Unary $body:ident) => { debug_message($f, Rpc::$name, $body) };
    (@debug_resp $f:ident $name:ident $shape:ident $body:ident) => { $f.debug_tuple(stringify!($name)).field(&"<stream>").finish() };

    (@dispatch $d:ident $name:ident Unary $body:ident) => { $d.unary(Rpc::$name, $body, ResponseBody::$name) };
    (@dispatch $d:ident $name:ident ServerStreaming $body:ident) => { $d.server_streaming(Rpc::$name, $body, ResponseBody::$name) };
    (@dispatch $d:ident $name:ident Bidirectional $body:ident) => { $d.bidirectional(Rpc::$name, $body, ResponseBody::$name) };

    // Unary RPCs convert both ways between their messages and the bodies, so
    // callers write `client.call(pb::RangeRequest {..}.into())` and
    // `pb::RangeResponse::try_from(response)`.
    (@convert $name:ident Unary $req:ty, $resp:ty) => {
        impl From<$req> for RequestBody {
            fn from(body: $req) -> Self { RequestBody::$name(body) }
        }
        impl TryFrom<EtcdResponse> for $resp {
            type Error = EtcdError;
            fn try_from(response: EtcdResponse) -> Result<Self, EtcdError> {
                match response.body {
                    ResponseBody::$name(body) => Ok(body),
                    other => Err(unexpected(Rpc::$name, other.rpc())),
                }
            }
        }
    };
    (@convert $name:ident $shape:ident $req:ty, $resp:ty) => {};
}

/// Debug-prints a message, except for those that carry a password or a
/// token, which print as `<redacted>` so that no secret reaches a log.
fn debug_message(
    f: &mut std::fmt::Formatter<'_>,
    rpc: Rpc,
    message: &dyn std::fmt::Debug,
) -> std::fmt::Result {
    let mut tuple = f.debug_tuple(rpc.name());
    if rpc.carries_secret() {
        tuple.field(&format_args!("<redacted>"));
    } else {
        tuple.field(message);
    }
    tuple.finish()
}

fn unexpected(wanted: Rpc, got: Rpc) -> EtcdError {
    EtcdError::client(
        ErrorKind::UnexpectedResponse,
        format!(
            "expected a {} response, got a {} response",
            wanted.name(),
            got.name()
        ),
    )
}

rpc_table! {
    /// KV: read a key or a range.
    Range: Kv Unary ReadOnly "/etcdserverpb.KV/Range" (pb::RangeRequest) -> (pb::RangeResponse);
    /// KV: write a key.
    Put: Kv Unary No "/etcdserverpb.KV/Put" (pb::PutRequest) -> (pb::PutResponse);
    /// KV: delete a key or a range.
    DeleteRange: Kv Unary No "/etcdserverpb.KV/DeleteRange" (pb::DeleteRangeRequest) -> (pb::DeleteRangeResponse);
    /// KV: a transaction.
    Txn: Kv Unary No "/etcdserverpb.KV/Txn" (pb::TxnRequest) -> (pb::TxnResponse);
    /// KV: compact the history.
    Compact: Kv Unary No "/etcdserverpb.KV/Compact" (pb::CompactionRequest) -> (pb::CompactionResponse);

    /// Watch: the bidirectional watch stream.
    Watch: Watch Bidirectional ReadOnly "/etcdserverpb.Watch/Watch" (pb::WatchRequest) -> (pb::WatchResponse);

    /// Lease: grant a lease.
    LeaseGrant: Lease Unary Idempotent "/etcdserverpb.Lease/LeaseGrant" (pb::LeaseGrantRequest) -> (pb::LeaseGrantResponse);
    /// Lease: revoke a lease.
    LeaseRevoke: Lease Unary Idempotent "/etcdserverpb.Lease/LeaseRevoke" (pb::LeaseRevokeRequest) -> (pb::LeaseRevokeResponse);
    /// Lease: the bidirectional keep-alive stream.
    LeaseKeepAlive: Lease Bidirectional Idempotent "/etcdserverpb.Lease/LeaseKeepAlive" (pb::LeaseKeepAliveRequest) -> (pb::LeaseKeepAliveResponse);
    /// Lease: remaining TTL and attached keys.
    LeaseTimeToLive: Lease Unary ReadOnly "/etcdserverpb.Lease/LeaseTimeToLive" (pb::LeaseTimeToLiveRequest) -> (pb::LeaseTimeToLiveResponse);
    /// Lease: list leases.
    LeaseLeases: Lease Unary ReadOnly "/etcdserverpb.Lease/LeaseLeases" (pb::LeaseLeasesRequest) -> (pb::LeaseLeasesResponse);

    /// Auth: enable authentication.
    AuthEnable: Auth Unary No "/etcdserverpb.Auth/AuthEnable" (pb::AuthEnableRequest) -> (pb::AuthEnableResponse);
    /// Auth: disable authentication.
    AuthDisable: Auth Unary No "/etcdserverpb.Auth/AuthDisable" (pb::AuthDisableRequest) -> (pb::AuthDisableResponse);
    /// Auth: whether authentication is enabled.
    AuthStatus: Auth Unary ReadOnly "/etcdserverpb.Auth/AuthStatus" (pb::AuthStatusRequest) -> (pb::AuthStatusResponse);
    /// Auth: log in and get a token.
    Authenticate: Auth Unary No "/etcdserverpb.Auth/Authenticate" (pb::AuthenticateRequest) -> (pb::AuthenticateResponse);
    /// Auth: add a user.
    UserAdd: Auth Unary No "/etcdserverpb.Auth/UserAdd" (pb::AuthUserAddRequest) -> (pb::AuthUserAddResponse);
    /// Auth: read a user.
    UserGet: Auth Unary ReadOnly "/etcdserverpb.Auth/UserGet" (pb::AuthUserGetRequest) -> (pb::AuthUserGetResponse);
    /// Auth: list users.
    UserList: Auth Unary ReadOnly "/etcdserverpb.Auth/UserList" (pb::AuthUserListRequest) -> (pb::AuthUserListResponse);
    /// Auth: delete a user.
    UserDelete: Auth Unary No "/etcdserverpb.Auth/UserDelete" (pb::AuthUserDeleteRequest) -> (pb::AuthUserDeleteResponse);
    /// Auth: change a user's password.
    UserChangePassword: Auth Unary No "/etcdserverpb.Auth/UserChangePassword" (pb::AuthUserChangePasswordRequest) -> (pb::AuthUserChangePasswordResponse);
    /// Auth: grant a role to a user.
    UserGrantRole: Auth Unary No "/etcdserverpb.Auth/UserGrantRole" (pb::AuthUserGrantRoleRequest) -> (pb::AuthUserGrantRoleResponse);
    /// Auth: revoke a role from a user.
    UserRevokeRole: Auth Unary No "/etcdserverpb.Auth/UserRevokeRole" (pb::AuthUserRevokeRoleRequest) -> (pb::AuthUserRevokeRoleResponse);
    /// Auth: add a role.
    RoleAdd: Auth Unary No "/etcdserverpb.Auth/RoleAdd" (pb::AuthRoleAddRequest) -> (pb::AuthRoleAddResponse);
    /// Auth: read a role.
    RoleGet: Auth Unary ReadOnly "/etcdserverpb.Auth/RoleGet" (pb::AuthRoleGetRequest) -> (pb::AuthRoleGetResponse);
    /// Auth: list roles.
    RoleList: Auth Unary ReadOnly "/etcdserverpb.Auth/RoleList" (pb::AuthRoleListRequest) -> (pb::AuthRoleListResponse);
    /// Auth: delete a role.
    RoleDelete: Auth Unary No "/etcdserverpb.Auth/RoleDelete" (pb::AuthRoleDeleteRequest) -> (pb::AuthRoleDeleteResponse);
    /// Auth: grant a permission to a role.
    RoleGrantPermission: Auth Unary No "/etcdserverpb.Auth/RoleGrantPermission" (pb::AuthRoleGrantPermissionRequest) -> (pb::AuthRoleGrantPermissionResponse);
    /// Auth: revoke a permission from a role.
    RoleRevokePermission: Auth Unary No "/etcdserverpb.Auth/RoleRevokePermission" (pb::AuthRoleRevokePermissionRequest) -> (pb::AuthRoleRevokePermissionResponse);

    /// Cluster: add a member (or a learner).
    MemberAdd: Cluster Unary No "/etcdserverpb.Cluster/MemberAdd" (pb::MemberAddRequest) -> (pb::MemberAddResponse);
    /// Cluster: remove a member.
    MemberRemove: Cluster Unary No "/etcdserverpb.Cluster/MemberRemove" (pb::MemberRemoveRequest) -> (pb::MemberRemoveResponse);
    /// Cluster: update a member's peer URLs.
    MemberUpdate: Cluster Unary No "/etcdserverpb.Cluster/MemberUpdate" (pb::MemberUpdateRequest) -> (pb::MemberUpdateResponse);
    /// Cluster: list members.
    MemberList: Cluster Unary ReadOnly "/etcdserverpb.Cluster/MemberList" (pb::MemberListRequest) -> (pb::MemberListResponse);
    /// Cluster: promote a learner.
    MemberPromote: Cluster Unary No "/etcdserverpb.Cluster/MemberPromote" (pb::MemberPromoteRequest) -> (pb::MemberPromoteResponse);

    /// Maintenance: list, raise or disarm alarms.
    Alarm: Maintenance Unary Idempotent "/etcdserverpb.Maintenance/Alarm" (pb::AlarmRequest) -> (pb::AlarmResponse);
    /// Maintenance: a member's status.
    Status: Maintenance Unary ReadOnly "/etcdserverpb.Maintenance/Status" (pb::StatusRequest) -> (pb::StatusResponse);
    /// Maintenance: defragment a member's backend.
    Defragment: Maintenance Unary No "/etcdserverpb.Maintenance/Defragment" (pb::DefragmentRequest) -> (pb::DefragmentResponse);
    /// Maintenance: hash of the backend.
    Hash: Maintenance Unary ReadOnly "/etcdserverpb.Maintenance/Hash" (pb::HashRequest) -> (pb::HashResponse);
    /// Maintenance: hash of the KV history up to a revision.
    HashKv: Maintenance Unary ReadOnly "/etcdserverpb.Maintenance/HashKV" (pb::HashKvRequest) -> (pb::HashKvResponse);
    /// Maintenance: stream a snapshot of the backend.
    Snapshot: Maintenance ServerStreaming ReadOnly "/etcdserverpb.Maintenance/Snapshot" (pb::SnapshotRequest) -> (pb::SnapshotResponse);
    /// Maintenance: transfer leadership.
    MoveLeader: Maintenance Unary Idempotent "/etcdserverpb.Maintenance/MoveLeader" (pb::MoveLeaderRequest) -> (pb::MoveLeaderResponse);
    /// Maintenance: validate, start or cancel a downgrade.
    Downgrade: Maintenance Unary No "/etcdserverpb.Maintenance/Downgrade" (pb::DowngradeRequest) -> (pb::DowngradeResponse);

    /// Lock service: acquire a distributed lock.
    Lock: Lock Unary No "/v3lockpb.Lock/Lock" (lock::LockRequest) -> (lock::LockResponse);
    /// Lock service: release a lock.
    Unlock: Lock Unary No "/v3lockpb.Lock/Unlock" (lock::UnlockRequest) -> (lock::UnlockResponse);

    /// Election service: campaign for leadership.
    Campaign: Election Unary No "/v3electionpb.Election/Campaign" (election::CampaignRequest) -> (election::CampaignResponse);
    /// Election service: publish a new leader value.
    Proclaim: Election Unary No "/v3electionpb.Election/Proclaim" (election::ProclaimRequest) -> (election::ProclaimResponse);
    /// Election service: the current leader.
    Leader: Election Unary ReadOnly "/v3electionpb.Election/Leader" (election::LeaderRequest) -> (election::LeaderResponse);
    /// Election service: stream leader changes.
    Observe: Election ServerStreaming ReadOnly "/v3electionpb.Election/Observe" (election::LeaderRequest) -> (election::LeaderResponse);
    /// Election service: give up leadership.
    Resign: Election Unary No "/v3electionpb.Election/Resign" (election::ResignRequest) -> (election::ResignResponse);
}

impl Rpc {
    /// Whether the RPC only reads state.
    pub const fn is_read_only(self) -> bool {
        matches!(self.repeatable(), Repeatable::ReadOnly)
    }

    /// Whether repeating the RPC is harmless (read-only RPCs included).
    pub const fn is_idempotent(self) -> bool {
        !matches!(self.repeatable(), Repeatable::No)
    }

    /// Whether the RPC's request or response carries a password or a token
    /// (Authenticate, UserAdd, UserChangePassword): such messages are never
    /// printed.
    pub const fn carries_secret(self) -> bool {
        matches!(
            self,
            Rpc::Authenticate | Rpc::UserAdd | Rpc::UserChangePassword
        )
    }

    /// Whether the RPC streams in either direction.
    pub const fn is_streaming(self) -> bool {
        !matches!(self.shape(), RpcShape::Unary)
    }
}

impl std::fmt::Display for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl RequestBody {
    /// A copy of the body, or `None` for a bidirectional stream, whose
    /// outbound messages can be consumed only once.
    pub fn try_clone(&self) -> Option<Self> {
        try_clone_body(self)
    }
}

/// Clones the unary and server-streaming bodies. Written out by hand rather
/// than in the table because only this function needs it. prost derives
/// `Copy` for messages of scalar fields only, hence the lint allowance: the
/// uniform `clone()` keeps the match readable.
#[allow(clippy::clone_on_copy)]
fn try_clone_body(body: &RequestBody) -> Option<RequestBody> {
    use RequestBody as B;
    Some(match body {
        B::Range(m) => B::Range(m.clone()),
        B::Put(m) => B::Put(m.clone()),
        B::DeleteRange(m) => B::DeleteRange(m.clone()),
        B::Txn(m) => B::Txn(m.clone()),
        B::Compact(m) => B::Compact(m.clone()),
        B::Watch(_) | B::LeaseKeepAlive(_) => return None,
        B::LeaseGrant(m) => B::LeaseGrant(m.clone()),
        B::LeaseRevoke(m) => B::LeaseRevoke(m.clone()),
        B::LeaseTimeToLive(m) => B::LeaseTimeToLive(m.clone()),
        B::LeaseLeases(m) => B::LeaseLeases(m.clone()),
        B::AuthEnable(m) => B::AuthEnable(m.clone()),
        B::AuthDisable(m) => B::AuthDisable(m.clone()),
        B::AuthStatus(m) => B::AuthStatus(m.clone()),
        B::Authenticate(m) => B::Authenticate(m.clone()),
        B::UserAdd(m) => B::UserAdd(m.clone()),
        B::UserGet(m) => B::UserGet(m.clone()),
        B::UserList(m) => B::UserList(m.clone()),
        B::UserDelete(m) => B::UserDelete(m.clone()),
        B::UserChangePassword(m) => B::UserChangePassword(m.clone()),
        B::UserGrantRole(m) => B::UserGrantRole(m.clone()),
        B::UserRevokeRole(m) => B::UserRevokeRole(m.clone()),
        B::RoleAdd(m) => B::RoleAdd(m.clone()),
        B::RoleGet(m) => B::RoleGet(m.clone()),
        B::RoleList(m) => B::RoleList(m.clone()),
        B::RoleDelete(m) => B::RoleDelete(m.clone()),
        B::RoleGrantPermission(m) => B::RoleGrantPermission(m.clone()),
        B::RoleRevokePermission(m) => B::RoleRevokePermission(m.clone()),
        B::MemberAdd(m) => B::MemberAdd(m.clone()),
        B::MemberRemove(m) => B::MemberRemove(m.clone()),
        B::MemberUpdate(m) => B::MemberUpdate(m.clone()),
        B::MemberList(m) => B::MemberList(m.clone()),
        B::MemberPromote(m) => B::MemberPromote(m.clone()),
        B::Alarm(m) => B::Alarm(m.clone()),
        B::Status(m) => B::Status(m.clone()),
        B::Defragment(m) => B::Defragment(m.clone()),
        B::Hash(m) => B::Hash(m.clone()),
        B::HashKv(m) => B::HashKv(m.clone()),
        B::Snapshot(m) => B::Snapshot(m.clone()),
        B::MoveLeader(m) => B::MoveLeader(m.clone()),
        B::Downgrade(m) => B::Downgrade(m.clone()),
        B::Lock(m) => B::Lock(m.clone()),
        B::Unlock(m) => B::Unlock(m.clone()),
        B::Campaign(m) => B::Campaign(m.clone()),
        B::Proclaim(m) => B::Proclaim(m.clone()),
        B::Leader(m) => B::Leader(m.clone()),
        B::Observe(m) => B::Observe(m.clone()),
        B::Resign(m) => B::Resign(m.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_a_path_under_its_service() {
        for rpc in Rpc::ALL {
            let service = match rpc.service() {
                RpcService::Kv => "/etcdserverpb.KV/",
                RpcService::Watch => "/etcdserverpb.Watch/",
                RpcService::Lease => "/etcdserverpb.Lease/",
                RpcService::Auth => "/etcdserverpb.Auth/",
                RpcService::Cluster => "/etcdserverpb.Cluster/",
                RpcService::Maintenance => "/etcdserverpb.Maintenance/",
                RpcService::Lock => "/v3lockpb.Lock/",
                RpcService::Election => "/v3electionpb.Election/",
            };
            assert!(rpc.path().starts_with(service), "{rpc}: {}", rpc.path());
            assert!(
                rpc.path()
                    .eq_ignore_ascii_case(&format!("{service}{}", rpc.name())),
                "{rpc}: {}",
                rpc.path()
            );
        }
    }

    #[test]
    fn writes_are_never_idempotent() {
        for rpc in [
            Rpc::Put,
            Rpc::DeleteRange,
            Rpc::Txn,
            Rpc::Compact,
            Rpc::Defragment,
        ] {
            assert!(!rpc.is_idempotent(), "{rpc}");
        }
        assert!(Rpc::Range.is_read_only());
        assert!(Rpc::LeaseGrant.is_idempotent() && !Rpc::LeaseGrant.is_read_only());
    }

    #[test]
    fn streams_are_marked() {
        let streaming: Vec<_> = Rpc::ALL.iter().filter(|r| r.is_streaming()).collect();
        assert_eq!(
            streaming,
            [
                &Rpc::Watch,
                &Rpc::LeaseKeepAlive,
                &Rpc::Snapshot,
                &Rpc::Observe
            ]
        );
    }

    #[test]
    fn unary_bodies_clone_and_streams_do_not() {
        let body = RequestBody::from(pb::RangeRequest::default());
        assert_eq!(body.try_clone().map(|b| b.rpc()), Some(Rpc::Range));
        let stream: RequestStream<pb::WatchRequest> = Box::pin(futures_util::stream::empty());
        assert!(RequestBody::Watch(stream).try_clone().is_none());
    }
}
