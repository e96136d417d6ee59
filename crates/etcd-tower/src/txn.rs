//! Transactions: compare, then one branch of operations, atomically.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! // Create "leader" only if nobody holds it, and read it either way.
//! let txn = Txn::new()
//!     .when([Compare::create_revision("leader", CompareOp::Equal, 0)])
//!     .and_then([TxnOp::put("leader", "me"), TxnOp::get("leader")])
//!     .or_else([TxnOp::get("leader")]);
//! let resp = client.txn(txn).await?;
//! println!("won: {}", resp.succeeded());
//! for op in resp.op_responses() {
//!     if let TxnOpResponse::Get(get) = op {
//!         println!("leader is {:?}", get.kvs().first().map(|kv| kv.value_str()));
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_tower_core::proto::etcdserverpb::{request_op, response_op};
use etcd_tower_core::{ErrorKind, EtcdError};

use crate::bytes::{prefix_end, IntoBytes};
use crate::client::Client;
use crate::kv::{
    DeleteOptions, DeleteResponse, GetOptions, GetResponse, PutOptions, PutResponse, ResponseHeader,
};

/// How a [`Compare`] compares the key's field with the given value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `>`
    Greater,
    /// `<`
    Less,
}

impl From<CompareOp> for CompareResult {
    fn from(op: CompareOp) -> Self {
        match op {
            CompareOp::Equal => CompareResult::Equal,
            CompareOp::NotEqual => CompareResult::NotEqual,
            CompareOp::Greater => CompareResult::Greater,
            CompareOp::Less => CompareResult::Less,
        }
    }
}

/// One condition of a [`Txn`]: a field of a key (or of every key of a
/// range) compared with a value. A key that does not exist has version,
/// create and mod revision 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Compare(pb::Compare);

impl Compare {
    fn new(key: impl IntoBytes, op: CompareOp, target: CompareTarget, value: TargetUnion) -> Self {
        Compare(pb::Compare {
            result: CompareResult::from(op) as i32,
            target: target as i32,
            key: key.into_bytes(),
            range_end: Bytes::new(),
            target_union: Some(value),
        })
    }

    /// Compares the key's value.
    pub fn value(key: impl IntoBytes, op: CompareOp, value: impl IntoBytes) -> Self {
        Compare::new(
            key,
            op,
            CompareTarget::Value,
            TargetUnion::Value(value.into_bytes()),
        )
    }

    /// Compares the key's version (writes since creation; 0: absent).
    pub fn version(key: impl IntoBytes, op: CompareOp, version: i64) -> Self {
        Compare::new(
            key,
            op,
            CompareTarget::Version,
            TargetUnion::Version(version),
        )
    }

    /// Compares the key's create revision (0: absent).
    pub fn create_revision(key: impl IntoBytes, op: CompareOp, revision: i64) -> Self {
        Compare::new(
            key,
            op,
            CompareTarget::Create,
            TargetUnion::CreateRevision(revision),
        )
    }

    /// Compares the key's last modification revision.
    pub fn mod_revision(key: impl IntoBytes, op: CompareOp, revision: i64) -> Self {
        Compare::new(
            key,
            op,
            CompareTarget::Mod,
            TargetUnion::ModRevision(revision),
        )
    }

    /// Compares the key's lease (0: none).
    pub fn lease(key: impl IntoBytes, op: CompareOp, lease_id: i64) -> Self {
        Compare::new(key, op, CompareTarget::Lease, TargetUnion::Lease(lease_id))
    }

    /// Applies the comparison to every key in `[key, end)`.
    pub fn with_range(mut self, end: impl IntoBytes) -> Self {
        self.0.range_end = end.into_bytes();
        self
    }

    /// Applies the comparison to every key that starts with the key.
    pub fn with_prefix(mut self) -> Self {
        self.0.range_end = prefix_end(&self.0.key);
        self
    }

    /// The protobuf message.
    pub fn into_proto(self) -> pb::Compare {
        self.0
    }
}

/// One operation of a [`Txn`] branch.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnOp(pb::RequestOp);

impl TxnOp {
    fn op(request: request_op::Request) -> Self {
        TxnOp(pb::RequestOp {
            request: Some(request),
        })
    }

    /// Writes a key.
    pub fn put(key: impl IntoBytes, value: impl IntoBytes) -> Self {
        TxnOp::put_with(key, value, PutOptions::new())
    }

    /// Writes a key, with options.
    pub fn put_with(key: impl IntoBytes, value: impl IntoBytes, options: PutOptions) -> Self {
        TxnOp::op(request_op::Request::RequestPut(
            options.into_request(key, value),
        ))
    }

    /// Reads a key.
    pub fn get(key: impl IntoBytes) -> Self {
        TxnOp::get_with(key, GetOptions::new())
    }

    /// Reads a key or a range, with options.
    pub fn get_with(key: impl IntoBytes, options: GetOptions) -> Self {
        TxnOp::op(request_op::Request::RequestRange(options.into_request(key)))
    }

    /// Deletes a key.
    pub fn delete(key: impl IntoBytes) -> Self {
        TxnOp::delete_with(key, DeleteOptions::new())
    }

    /// Deletes a key or a range, with options.
    pub fn delete_with(key: impl IntoBytes, options: DeleteOptions) -> Self {
        TxnOp::op(request_op::Request::RequestDeleteRange(
            options.into_request(key),
        ))
    }

    /// A nested transaction.
    pub fn txn(txn: Txn) -> Self {
        TxnOp::op(request_op::Request::RequestTxn(txn.request))
    }

    /// The protobuf message.
    pub fn into_proto(self) -> pb::RequestOp {
        self.0
    }
}

/// A transaction: if every comparison holds, the `and_then` operations run,
/// otherwise the `or_else` ones, all at one revision.
///
/// Each call appends: `when([a]).when([b])` is `when([a, b])`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Txn {
    request: pb::TxnRequest,
}

impl Txn {
    /// An empty transaction (always succeeds, does nothing).
    pub fn new() -> Self {
        Txn::default()
    }

    /// Adds comparisons; all must hold for `and_then` to run.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.request
            .compare
            .extend(compares.into_iter().map(|c| c.0));
        self
    }

    /// Adds operations run when every comparison holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.request.success.extend(ops.into_iter().map(|o| o.0));
        self
    }

    /// Adds operations run when a comparison fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.request.failure.extend(ops.into_iter().map(|o| o.0));
        self
    }

    /// The protobuf message.
    pub fn into_request(self) -> pb::TxnRequest {
        self.request
    }

    /// Refuses what the server would refuse and the transport does not
    /// check: a branch that puts a key another of its operations (or a
    /// nested txn on the same path) deletes. Puts of the same key, too many
    /// ops and empty keys are checked by the transport.
    pub fn validate(&self) -> Result<(), EtcdError> {
        check_intervals(&self.request.success)?;
        check_intervals(&self.request.failure)?;
        Ok(())
    }
}

/// A deleted interval `[start, end)`; `end` empty means only `start`,
/// `\0` means everything from `start` on.
struct Interval {
    start: Bytes,
    end: Bytes,
}

impl Interval {
    fn contains(&self, key: &[u8]) -> bool {
        if self.end.is_empty() {
            return self.start == key;
        }
        key >= &self.start[..] && (self.end[..] == b"\0"[..] || key < &self.end[..])
    }
}

fn duplicate() -> EtcdError {
    EtcdError::client(
        ErrorKind::DuplicateKey,
        "txn writes the same key twice on one path (put and put, or put and delete)",
    )
}

/// etcd's `checkIntervals`: the puts and deletes a branch makes, checked
/// for overlaps along every path through nested txns.
fn check_intervals(ops: &[pb::RequestOp]) -> Result<(Vec<Bytes>, Vec<Interval>), EtcdError> {
    let mut dels: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(Interval {
                start: d.key.clone(),
                end: d.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Interval], key: &[u8]| dels.iter().any(|d| d.contains(key));
    let mut puts: Vec<Bytes> = Vec::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(txn)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&txn.success)?;
        let (puts_else, dels_else) = check_intervals(&txn.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deleted(&dels, key) {
                return Err(duplicate());
            }
        }
        let before = puts.len();
        puts.extend(puts_then.iter().cloned());
        for key in puts_else {
            // The two branches are exclusive: the same key in both is fine.
            if (puts[..before].contains(&key)) || deleted(&dels, &key) {
                return Err(duplicate());
            }
            if !puts_then.contains(&key) {
                puts.push(key);
            }
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(request_op::Request::RequestPut(put)) = &op.request else {
            continue;
        };
        if puts.contains(&put.key) || deleted(&dels, &put.key) {
            return Err(duplicate());
        }
        puts.push(put.key.clone());
    }
    Ok((puts, dels))
}

/// The answer to one operation of a txn branch.
#[derive(Clone, Debug)]
pub enum TxnOpResponse {
    /// A get's answer.
    Get(GetResponse),
    /// A put's answer.
    Put(PutResponse),
    /// A delete's answer.
    Delete(DeleteResponse),
    /// A nested txn's answer.
    Txn(TxnResponse),
}

/// The answer to a [`Txn`].
#[derive(Clone, Debug, Default)]
pub struct TxnResponse {
    header: Option<ResponseHeader>,
    succeeded: bool,
    responses: Vec<TxnOpResponse>,
}

impl TxnResponse {
    /// The response header.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }

    /// The store's revision after the txn.
    pub fn revision(&self) -> i64 {
        self.header.map_or(0, |h| h.revision)
    }

    /// Whether every comparison held (so `and_then` ran).
    pub fn succeeded(&self) -> bool {
        self.succeeded
    }

    /// The answers of the branch that ran, in order.
    pub fn op_responses(&self) -> &[TxnOpResponse] {
        &self.responses
    }

    /// The answers, owned.
    pub fn into_op_responses(self) -> Vec<TxnOpResponse> {
        self.responses
    }
}

impl From<pb::TxnResponse> for TxnResponse {
    fn from(r: pb::TxnResponse) -> Self {
        TxnResponse {
            header: r.header,
            succeeded: r.succeeded,
            responses: r
                .responses
                .into_iter()
                .filter_map(|op| {
                    Some(match op.response? {
                        response_op::Response::ResponseRange(r) => TxnOpResponse::Get(r.into()),
                        response_op::Response::ResponsePut(r) => TxnOpResponse::Put(r.into()),
                        response_op::Response::ResponseDeleteRange(r) => {
                            TxnOpResponse::Delete(r.into())
                        }
                        response_op::Response::ResponseTxn(r) => TxnOpResponse::Txn(r.into()),
                    })
                })
                .collect(),
        }
    }
}

/// # Transactions
impl Client {
    /// Runs a transaction.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse, EtcdError> {
        txn.validate()?;
        let response: pb::TxnResponse = self.unary(txn.into_request()).await?;
        Ok(response.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_inside_a_deleted_range_is_a_duplicate() {
        let txn = Txn::new().and_then([
            TxnOp::delete_with("a", DeleteOptions::new().prefix()),
            TxnOp::put("ab", "1"),
        ]);
        assert_eq!(txn.validate().unwrap_err().kind(), &ErrorKind::DuplicateKey);
        let ok = Txn::new().and_then([TxnOp::delete("a"), TxnOp::put("b", "1")]);
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn nested_branches_are_exclusive_but_paths_are_not() {
        let nested = Txn::new()
            .and_then([TxnOp::put("k", "1")])
            .or_else([TxnOp::put("k", "2")]);
        assert!(Txn::new()
            .and_then([TxnOp::txn(nested.clone())])
            .validate()
            .is_ok());
        let clash = Txn::new().and_then([TxnOp::txn(nested), TxnOp::put("k", "3")]);
        assert_eq!(
            clash.validate().unwrap_err().kind(),
            &ErrorKind::DuplicateKey
        );
    }
}
