//! The keys of Go's `client/v3/experimental/recipes` (etcd v3.5.30,
//! `key.go` and `client.go`), written and claimed exactly as Go does, so
//! that Go and Rust processes share one queue, barrier or lock.
//!
//! * a *new* key is put only if it does not exist (`version == 0`), Go's
//!   `putNewKV`;
//! * a *unique* key is `<prefix>/<time in ns>` (Go's `%s/%v` of
//!   `time.Now().UnixNano()`), tried again with a new time while it exists
//!   (`newUniqueKV`, `newUniqueEphemeralKV`);
//! * a *sequential* key is `<prefix>/<%016d>`, one more than the last one,
//!   guarded by a bookkeeping key `__<prefix>` (`newSequentialKV`);
//! * an item is *claimed* by deleting it only if its mod revision is still
//!   the one read (`deleteRevKey`): of several consumers, exactly one wins.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use etcd_tower_core::{ErrorKind, EtcdError};

use super::line::{Placed, Unplaced};
use crate::client::Client;
use crate::kv::{GetOptions, KeyValue, PutOptions, SortOrder, SortTarget};
use crate::txn::{Compare, CompareOp, Txn, TxnOp};

/// `prefix`, `/` and `suffix`.
pub(crate) fn child(prefix: &[u8], suffix: &[u8]) -> Bytes {
    let mut key = BytesMut::with_capacity(prefix.len() + 1 + suffix.len());
    key.put_slice(prefix);
    key.put_u8(b'/');
    key.put_slice(suffix);
    key.freeze()
}

/// Go's `time.Now().UnixNano()`, in decimal.
fn now_nanos() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    nanos.to_string()
}

/// Puts `key` only if it does not exist (Go's `putNewKV`); the revision of
/// the put, or `None` when the key exists. `lease` 0 is no lease.
pub(crate) async fn put_new(
    client: &Client,
    key: &Bytes,
    value: &Bytes,
    lease: i64,
) -> Result<Option<i64>, EtcdError> {
    let txn = Txn::new()
        .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put_with(
            key.clone(),
            value.clone(),
            PutOptions::new().lease(lease),
        )]);
    let resp = client.txn(txn).await?;
    Ok(resp.succeeded().then(|| resp.revision()))
}

/// Puts a new `<prefix>/<time in ns>` key (Go's `newUniqueKV`, and with a
/// lease `newUniqueEphemeralKV`).
pub(crate) async fn put_unique(
    client: &Client,
    prefix: &[u8],
    value: &Bytes,
    lease: i64,
) -> Result<Placed, EtcdError> {
    try_put_unique(client, prefix, value, lease)
        .await
        .map_err(|unplaced| unplaced.error)
}

/// [`put_unique`], saying which key a failed put tried (it may have been
/// applied: then the key is there).
pub(crate) async fn try_put_unique(
    client: &Client,
    prefix: &[u8],
    value: &Bytes,
    lease: i64,
) -> Result<Placed, Unplaced> {
    loop {
        let key = child(prefix, now_nanos().as_bytes());
        match put_new(client, &key, value, lease).await {
            Ok(Some(revision)) => return Ok(Placed { key, revision }),
            Ok(None) => continue,
            Err(error) => return Err(Unplaced { key, error }),
        }
    }
}

/// Puts the next `<prefix>/<%016d>` key (Go's `newSequentialKV`): one more
/// than the last key under `prefix`, in a txn that fails if the
/// bookkeeping key `__<prefix>` changed since that read, so that a number
/// is never given out twice.
pub(crate) async fn put_sequential(
    client: &Client,
    prefix: &[u8],
    value: &Bytes,
) -> Result<Placed, EtcdError> {
    let last_key = GetOptions::new()
        .prefix()
        .sort(SortTarget::Key, SortOrder::Descend)
        .limit(1);
    let mut base = BytesMut::with_capacity(prefix.len() + 2);
    base.put_slice(b"__");
    base.put_slice(prefix);
    let base = base.freeze();
    loop {
        let resp = client
            .get_with(Bytes::copy_from_slice(prefix), last_key.clone())
            .await?;
        let next = match resp.kvs().first() {
            Some(last) => sequence_number(last.key())? + 1,
            None => 0,
        };
        let key = child(prefix, format!("{next:016}").as_bytes());
        let txn = Txn::new()
            .when([Compare::mod_revision(
                base.clone(),
                CompareOp::Less,
                resp.revision() + 1,
            )])
            .and_then([
                TxnOp::put(base.clone(), Bytes::new()),
                TxnOp::put(key.clone(), value.clone()),
            ]);
        let put = client.txn(txn).await?;
        if put.succeeded() {
            return Ok(Placed {
                key,
                revision: put.revision(),
            });
        }
    }
}

/// The number after a sequential key's last `/` (Go's `Sscanf("%d")`: an
/// optional sign and the digits that follow).
fn sequence_number(key: &[u8]) -> Result<i64, EtcdError> {
    let last = key.rsplit(|b| *b == b'/').next().unwrap_or_default();
    let signed = usize::from(matches!(last.first(), Some(b'-' | b'+')));
    let digits = last[signed..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&last[..signed + digits])
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            EtcdError::client(
                ErrorKind::UnexpectedResponse,
                format!(
                    "the queue's last key {:?} does not end in a sequence number",
                    String::from_utf8_lossy(key)
                ),
            )
        })
}

/// Deletes `kv` if its mod revision is still the one read (Go's
/// `deleteRevKey`); whether this call deleted it.
pub(crate) async fn claim(client: &Client, kv: &KeyValue) -> Result<bool, EtcdError> {
    let txn = Txn::new()
        .when([Compare::mod_revision(
            kv.key_bytes().clone(),
            CompareOp::Equal,
            kv.mod_revision(),
        )])
        .and_then([TxnOp::delete(kv.key_bytes().clone())]);
    Ok(client.txn(txn).await?.succeeded())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::sequence_number;

    #[test]
    fn sequence_numbers_parse_as_go_scans_them() {
        assert_eq!(sequence_number(b"q/00003/0000000000000041").unwrap(), 41);
        assert_eq!(sequence_number(b"q/00003/7x").unwrap(), 7);
        assert!(sequence_number(b"q/00003/x").is_err());
    }
}
