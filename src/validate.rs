//! Checks a request before anything is sent.
//!
//! The server rejects these mistakes too, but only after a round trip, and
//! some (an oversized request) only after the bytes have gone out. Catching
//! them here gives the caller a typed error with [`Sent::NotSent`](crate::Sent)
//! and leaves the server untouched.

use std::collections::HashSet;

use crate::error::{ErrorKind, EtcdError};
use crate::proto::etcdserverpb::{request_op, RequestOp, TxnRequest};
use crate::rpc::RequestBody;

/// etcd's largest lease TTL, in seconds (`lease.MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// Validates what can be validated without the server.
pub fn validate(body: &RequestBody, max_txn_ops: usize) -> Result<(), EtcdError> {
    match body {
        RequestBody::Range(r) => require_key(&r.key, "range"),
        RequestBody::Put(r) => require_key(&r.key, "put"),
        RequestBody::DeleteRange(r) => require_key(&r.key, "delete"),
        RequestBody::Txn(t) => validate_txn(t, max_txn_ops),
        RequestBody::LeaseGrant(g) => validate_ttl(g.ttl),
        RequestBody::Lock(l) => require_key(&l.name, "lock name"),
        RequestBody::Campaign(c) => require_key(&c.name, "election name"),
        _ => Ok(()),
    }
}

fn require_key(key: &[u8], what: &str) -> Result<(), EtcdError> {
    if key.is_empty() {
        Err(EtcdError::client(
            ErrorKind::EmptyKey,
            format!("{what}: the key is empty"),
        ))
    } else {
        Ok(())
    }
}

/// A lease TTL must be positive and at most [`MAX_LEASE_TTL`].
pub fn validate_ttl(ttl: i64) -> Result<(), EtcdError> {
    if ttl <= 0 || ttl > MAX_LEASE_TTL {
        Err(EtcdError::client(
            ErrorKind::InvalidTtl,
            format!("lease TTL {ttl} is outside 1..={MAX_LEASE_TTL} seconds"),
        ))
    } else {
        Ok(())
    }
}

fn validate_txn(txn: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    let largest = txn
        .compare
        .len()
        .max(txn.success.len())
        .max(txn.failure.len());
    if largest > max_ops {
        return Err(EtcdError::client(
            ErrorKind::TooManyOps,
            format!("txn has {largest} operations in one part; the limit is {max_ops}"),
        ));
    }
    validate_branch(&txn.success, max_ops)?;
    validate_branch(&txn.failure, max_ops)
}

/// Each op's key must be set, nested txns must be valid, and a branch may
/// not put the same key twice (the server's `duplicate key` rule).
fn validate_branch(ops: &[RequestOp], max_ops: usize) -> Result<(), EtcdError> {
    let mut puts = HashSet::new();
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => require_key(&r.key, "txn range")?,
            Some(request_op::Request::RequestPut(p)) => {
                require_key(&p.key, "txn put")?;
                if !puts.insert(&p.key) {
                    return Err(EtcdError::client(
                        ErrorKind::DuplicateKey,
                        "txn puts the same key twice in one branch",
                    ));
                }
            }
            Some(request_op::Request::RequestDeleteRange(d)) => require_key(&d.key, "txn delete")?,
            Some(request_op::Request::RequestTxn(t)) => validate_txn(t, max_ops)?,
            None => {
                return Err(EtcdError::client(
                    ErrorKind::InvalidRequest,
                    "txn has an empty operation",
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{PutRequest, RangeRequest};

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.to_owned().into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn empty_keys_are_refused() {
        let body = RequestBody::from(RangeRequest::default());
        let err = validate(&body, DEFAULT_MAX_TXN_OPS).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::EmptyKey);
        assert_eq!(err.sent(), crate::Sent::NotSent);
    }

    #[test]
    fn nested_txn_ops_are_checked() {
        let inner = TxnRequest {
            success: vec![put("")],
            ..Default::default()
        };
        let outer = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(inner)),
            }],
            ..Default::default()
        };
        let err = validate(&RequestBody::from(outer), 128).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::EmptyKey);
    }

    #[test]
    fn too_many_ops_and_duplicates() {
        let many = TxnRequest {
            success: (0..129).map(|i| put(&format!("k{i}"))).collect(),
            ..Default::default()
        };
        let err = validate(&RequestBody::from(many), 128).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::TooManyOps);

        let dup = TxnRequest {
            success: vec![put("a"), put("a")],
            ..Default::default()
        };
        let err = validate(&RequestBody::from(dup), 128).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::DuplicateKey);

        // The same key in the two branches is fine: only one runs.
        let ok = TxnRequest {
            success: vec![put("a")],
            failure: vec![put("a")],
            ..Default::default()
        };
        assert!(validate(&RequestBody::from(ok), 128).is_ok());
    }

    #[test]
    fn ttls_are_bounded() {
        assert!(validate_ttl(0).is_err());
        assert!(validate_ttl(-5).is_err());
        assert!(validate_ttl(MAX_LEASE_TTL + 1).is_err());
        assert!(validate_ttl(5).is_ok());
    }
}
