//! Which requests a member may answer from its own, possibly stale, state.
//!
//! A linearizable read waits until the member has applied everything the
//! cluster committed before it arrived (etcd's ReadIndex), and a write goes
//! through raft: neither can answer below a revision the client has seen.
//! A *serializable* read is answered at once from the member's local store,
//! however far behind the leader it is. The rule is the server's own
//! (`isTxnReadonly` and `isTxnSerializable` in etcd's `v3_server.go`); the
//! table is in the [crate docs](crate).

use etcd_tower_core::proto::etcdserverpb::{request_op, RequestOp, TxnRequest};
use etcd_tower_core::RequestBody;

/// Whether the member that takes this request answers it from its local
/// store (see the [module docs](self)).
pub(crate) fn is_serializable_read(body: &RequestBody) -> bool {
    match body {
        RequestBody::Range(range) => range.serializable,
        RequestBody::Txn(txn) => is_serializable_txn(txn),
        _ => false,
    }
}

fn is_serializable_txn(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .all(is_serializable_range)
}

fn is_serializable_range(op: &RequestOp) -> bool {
    matches!(&op.request, Some(request_op::Request::RequestRange(range)) if range.serializable)
}
