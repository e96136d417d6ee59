//! The revision in an answer's header: the one table of where to find it.
//!
//! Every etcd response carries a `ResponseHeader` whose `revision` is the
//! key-value store's revision on the member that answered, when it
//! answered (etcd fills it in for every service, KV, lease, auth, cluster,
//! maintenance, lock and election alike). So every answer tells the client
//! a revision the cluster has reached, and may raise the highest one it has
//! seen. A revision of 0 means "not filled in" and is ignored.

use etcd_tower_core::proto::etcdserverpb::ResponseHeader;
use etcd_tower_core::ResponseBody;

/// The header revision of a unary answer; `None` for a stream (its
/// messages carry the headers, see `crate::stream`), a missing header, or
/// a revision of 0.
pub(crate) fn header_revision(body: &ResponseBody) -> Option<i64> {
    use ResponseBody as B;
    let header = match body {
        B::Range(r) => &r.header,
        B::Put(r) => &r.header,
        B::DeleteRange(r) => &r.header,
        B::Txn(r) => &r.header,
        B::Compact(r) => &r.header,
        B::LeaseGrant(r) => &r.header,
        B::LeaseRevoke(r) => &r.header,
        B::LeaseTimeToLive(r) => &r.header,
        B::LeaseLeases(r) => &r.header,
        B::AuthEnable(r) => &r.header,
        B::AuthDisable(r) => &r.header,
        B::AuthStatus(r) => &r.header,
        B::Authenticate(r) => &r.header,
        B::UserAdd(r) => &r.header,
        B::UserGet(r) => &r.header,
        B::UserList(r) => &r.header,
        B::UserDelete(r) => &r.header,
        B::UserChangePassword(r) => &r.header,
        B::UserGrantRole(r) => &r.header,
        B::UserRevokeRole(r) => &r.header,
        B::RoleAdd(r) => &r.header,
        B::RoleGet(r) => &r.header,
        B::RoleList(r) => &r.header,
        B::RoleDelete(r) => &r.header,
        B::RoleGrantPermission(r) => &r.header,
        B::RoleRevokePermission(r) => &r.header,
        B::MemberAdd(r) => &r.header,
        B::MemberRemove(r) => &r.header,
        B::MemberUpdate(r) => &r.header,
        B::MemberList(r) => &r.header,
        B::MemberPromote(r) => &r.header,
        B::Alarm(r) => &r.header,
        B::Status(r) => &r.header,
        B::Defragment(r) => &r.header,
        B::Hash(r) => &r.header,
        B::HashKv(r) => &r.header,
        B::MoveLeader(r) => &r.header,
        B::Downgrade(r) => &r.header,
        B::Lock(r) => &r.header,
        B::Unlock(r) => &r.header,
        B::Campaign(r) => &r.header,
        B::Proclaim(r) => &r.header,
        B::Leader(r) => &r.header,
        B::Resign(r) => &r.header,
        // Streams (Watch, LeaseKeepAlive, Snapshot, Observe), and any RPC
        // the core adds later: no revision known.
        _ => return None,
    };
    revision(header)
}

/// The revision of a header, if it has one.
pub(crate) fn revision(header: &Option<ResponseHeader>) -> Option<i64> {
    header.as_ref().map(|h| h.revision).filter(|&r| r > 0)
}
