//! KV: get, put, delete and compact, with typed options and responses.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::{Client, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! client.put("app/a", "1").await?;
//! let old = client.put_with("app/a", "2", PutOptions::new().prev_kv()).await?;
//! assert_eq!(old.prev_kv().map(|kv| kv.value()), Some(&b"1"[..]));
//!
//! let page = client
//!     .get_with("app/", GetOptions::new().prefix().limit(10).sort(SortTarget::Key, SortOrder::Descend))
//!     .await?;
//! for kv in page.kvs() {
//!     println!("{} = {}", kv.key_str().unwrap_or("?"), kv.value_str().unwrap_or("?"));
//! }
//! let count = client.get_with("app/", GetOptions::new().prefix().count_only()).await?.count();
//! let gone = client.delete_with("app/", DeleteOptions::new().prefix()).await?.deleted();
//! assert_eq!(count, gone);
//! # Ok(())
//! # }
//! ```

use std::fmt;

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::proto::mvccpb;
use etcd_tower_core::EtcdError;

pub use etcd_tower_core::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
pub use etcd_tower_core::proto::etcdserverpb::ResponseHeader;

use crate::bytes::IntoBytes;
use crate::client::Client;

/// Which keys a get or delete covers, beyond the key itself: core's one
/// definition, shared with watches.
pub(crate) use etcd_tower_core::range::Span;

/// Options of a get (a `Range` request).
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    span: Span,
    request: pb::RangeRequest,
}

impl GetOptions {
    /// Only the key, at the latest revision, linearizable.
    pub fn new() -> Self {
        GetOptions::default()
    }

    /// Every key that starts with the key.
    pub fn prefix(mut self) -> Self {
        self.span = Span::Prefix;
        self
    }

    /// Every key greater than or equal to the key.
    pub fn from_key(mut self) -> Self {
        self.span = Span::FromKey;
        self
    }

    /// Keys in `[key, end)`.
    pub fn range_end(mut self, end: impl IntoBytes) -> Self {
        self.span = Span::End(end.into_bytes());
        self
    }

    /// At most `limit` keys (0: no limit); `more()` tells whether there
    /// were more.
    pub fn limit(mut self, limit: i64) -> Self {
        self.request.limit = limit;
        self
    }

    /// Reads at a past revision (0: the latest).
    pub fn revision(mut self, revision: i64) -> Self {
        self.request.revision = revision;
        self
    }

    /// Serves the read from the member's local state, without a consensus
    /// round: faster, possibly stale.
    pub fn serializable(mut self) -> Self {
        self.request.serializable = true;
        self
    }

    /// Returns keys without values.
    pub fn keys_only(mut self) -> Self {
        self.request.keys_only = true;
        self
    }

    /// Returns only the count of keys.
    pub fn count_only(mut self) -> Self {
        self.request.count_only = true;
        self
    }

    /// Sorts the result.
    pub fn sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.request.sort_target = target as i32;
        self.request.sort_order = order as i32;
        self
    }

    /// Only keys modified at or after `revision`.
    pub fn min_mod_revision(mut self, revision: i64) -> Self {
        self.request.min_mod_revision = revision;
        self
    }

    /// Only keys modified at or before `revision`.
    pub fn max_mod_revision(mut self, revision: i64) -> Self {
        self.request.max_mod_revision = revision;
        self
    }

    /// Only keys created at or after `revision`.
    pub fn min_create_revision(mut self, revision: i64) -> Self {
        self.request.min_create_revision = revision;
        self
    }

    /// Only keys created at or before `revision`.
    pub fn max_create_revision(mut self, revision: i64) -> Self {
        self.request.max_create_revision = revision;
        self
    }

    /// The request message for `key`.
    pub fn into_request(self, key: impl IntoBytes) -> pb::RangeRequest {
        let (key, range_end) = self.span.resolve(key.into_bytes());
        pb::RangeRequest {
            range_end,
            key,
            ..self.request
        }
    }
}

/// Options of a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    request: pb::PutRequest,
}

impl PutOptions {
    /// A plain put.
    pub fn new() -> Self {
        PutOptions::default()
    }

    /// Attaches the key to a lease: it is deleted when the lease ends.
    pub fn lease(mut self, lease_id: i64) -> Self {
        self.request.lease = lease_id;
        self
    }

    /// Returns the previous key-value.
    pub fn prev_kv(mut self) -> Self {
        self.request.prev_kv = true;
        self
    }

    /// Keeps the current value (the key must exist); only the lease changes.
    pub fn ignore_value(mut self) -> Self {
        self.request.ignore_value = true;
        self
    }

    /// Keeps the current lease (the key must exist); only the value changes.
    pub fn ignore_lease(mut self) -> Self {
        self.request.ignore_lease = true;
        self
    }

    /// The request message for `key` and `value`.
    pub fn into_request(self, key: impl IntoBytes, value: impl IntoBytes) -> pb::PutRequest {
        pb::PutRequest {
            key: key.into_bytes(),
            value: value.into_bytes(),
            ..self.request
        }
    }
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    span: Span,
    prev_kv: bool,
}

impl DeleteOptions {
    /// Deletes only the key.
    pub fn new() -> Self {
        DeleteOptions::default()
    }

    /// Deletes every key that starts with the key.
    pub fn prefix(mut self) -> Self {
        self.span = Span::Prefix;
        self
    }

    /// Deletes every key greater than or equal to the key.
    pub fn from_key(mut self) -> Self {
        self.span = Span::FromKey;
        self
    }

    /// Deletes keys in `[key, end)`.
    pub fn range_end(mut self, end: impl IntoBytes) -> Self {
        self.span = Span::End(end.into_bytes());
        self
    }

    /// Returns the deleted key-values.
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// The request message for `key`.
    pub fn into_request(self, key: impl IntoBytes) -> pb::DeleteRangeRequest {
        let (key, range_end) = self.span.resolve(key.into_bytes());
        pb::DeleteRangeRequest {
            range_end,
            key,
            prev_kv: self.prev_kv,
        }
    }
}

/// A key-value as stored, with its revisions.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct KeyValue(mvccpb::KeyValue);

impl KeyValue {
    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.0.key
    }

    /// The key as UTF-8.
    pub fn key_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0.key)
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.0.value
    }

    /// The value as UTF-8.
    pub fn value_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0.value)
    }

    /// The key, without copying.
    pub fn key_bytes(&self) -> &Bytes {
        &self.0.key
    }

    /// The value, without copying.
    pub fn value_bytes(&self) -> &Bytes {
        &self.0.value
    }

    /// The revision of the key's last creation.
    pub fn create_revision(&self) -> i64 {
        self.0.create_revision
    }

    /// The revision of the key's last modification.
    pub fn mod_revision(&self) -> i64 {
        self.0.mod_revision
    }

    /// How many times the key was written since its creation.
    pub fn version(&self) -> i64 {
        self.0.version
    }

    /// The lease the key is attached to (0: none).
    pub fn lease(&self) -> i64 {
        self.0.lease
    }

    /// The protobuf message.
    pub fn as_proto(&self) -> &mvccpb::KeyValue {
        &self.0
    }

    /// The protobuf message, owned.
    pub fn into_proto(self) -> mvccpb::KeyValue {
        self.0
    }

    /// Key and value, owned.
    pub fn into_key_value(self) -> (Bytes, Bytes) {
        (self.0.key, self.0.value)
    }
}

impl From<mvccpb::KeyValue> for KeyValue {
    fn from(kv: mvccpb::KeyValue) -> Self {
        KeyValue(kv)
    }
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &String::from_utf8_lossy(&self.0.key))
            .field("value", &String::from_utf8_lossy(&self.0.value))
            .field("create_revision", &self.0.create_revision)
            .field("mod_revision", &self.0.mod_revision)
            .field("version", &self.0.version)
            .field("lease", &self.0.lease)
            .finish()
    }
}

pub(crate) fn kvs(kvs: Vec<mvccpb::KeyValue>) -> Vec<KeyValue> {
    kvs.into_iter().map(KeyValue).collect()
}

fn revision(header: &Option<ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
}

/// The answer to a get.
#[derive(Clone, Debug, Default)]
pub struct GetResponse {
    header: Option<ResponseHeader>,
    kvs: Vec<KeyValue>,
    more: bool,
    count: i64,
}

impl GetResponse {
    /// The response header.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }

    /// The store's revision when the read was served.
    pub fn revision(&self) -> i64 {
        revision(&self.header)
    }

    /// The keys found.
    pub fn kvs(&self) -> &[KeyValue] {
        &self.kvs
    }

    /// The keys found, owned.
    pub fn into_kvs(self) -> Vec<KeyValue> {
        self.kvs
    }

    /// Whether a limit left keys out.
    pub fn more(&self) -> bool {
        self.more
    }

    /// How many keys are in the range (regardless of limit).
    pub fn count(&self) -> i64 {
        self.count
    }
}

impl From<pb::RangeResponse> for GetResponse {
    fn from(r: pb::RangeResponse) -> Self {
        GetResponse {
            header: r.header,
            kvs: kvs(r.kvs),
            more: r.more,
            count: r.count,
        }
    }
}

/// The answer to a put.
#[derive(Clone, Debug, Default)]
pub struct PutResponse {
    header: Option<ResponseHeader>,
    prev_kv: Option<KeyValue>,
}

impl PutResponse {
    /// The response header.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }

    /// The revision the put created.
    pub fn revision(&self) -> i64 {
        revision(&self.header)
    }

    /// The previous key-value, when asked for with `prev_kv` and the key existed.
    pub fn prev_kv(&self) -> Option<&KeyValue> {
        self.prev_kv.as_ref()
    }

    /// The previous key-value, owned.
    pub fn into_prev_kv(self) -> Option<KeyValue> {
        self.prev_kv
    }
}

impl From<pb::PutResponse> for PutResponse {
    fn from(r: pb::PutResponse) -> Self {
        PutResponse {
            header: r.header,
            prev_kv: r.prev_kv.map(KeyValue),
        }
    }
}

/// The answer to a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteResponse {
    header: Option<ResponseHeader>,
    deleted: i64,
    prev_kvs: Vec<KeyValue>,
}

impl DeleteResponse {
    /// The response header.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }

    /// The store's revision after the delete.
    pub fn revision(&self) -> i64 {
        revision(&self.header)
    }

    /// How many keys were deleted.
    pub fn deleted(&self) -> i64 {
        self.deleted
    }

    /// The deleted key-values, when asked for with `prev_kv`.
    pub fn prev_kvs(&self) -> &[KeyValue] {
        &self.prev_kvs
    }

    /// The deleted key-values, owned.
    pub fn into_prev_kvs(self) -> Vec<KeyValue> {
        self.prev_kvs
    }
}

impl From<pb::DeleteRangeResponse> for DeleteResponse {
    fn from(r: pb::DeleteRangeResponse) -> Self {
        DeleteResponse {
            header: r.header,
            deleted: r.deleted,
            prev_kvs: kvs(r.prev_kvs),
        }
    }
}

/// Options of a compaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompactOptions {
    physical: bool,
}

impl CompactOptions {
    /// A logical compaction: the call returns before the space is freed.
    pub fn new() -> Self {
        CompactOptions::default()
    }

    /// Waits until the compaction is physically applied to the backend, so
    /// that the compacted revisions are gone when the call returns.
    pub fn physical(mut self) -> Self {
        self.physical = true;
        self
    }
}

/// # KV
impl Client {
    /// Reads one key.
    pub async fn get(&self, key: impl IntoBytes) -> Result<GetResponse, EtcdError> {
        self.get_with(key, GetOptions::new()).await
    }

    /// Reads a key or a range, with options.
    pub async fn get_with(
        &self,
        key: impl IntoBytes,
        options: GetOptions,
    ) -> Result<GetResponse, EtcdError> {
        let response: pb::RangeResponse = self.unary(options.into_request(key)).await?;
        Ok(response.into())
    }

    /// Writes a key.
    pub async fn put(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
    ) -> Result<PutResponse, EtcdError> {
        self.put_with(key, value, PutOptions::new()).await
    }

    /// Writes a key, with options.
    pub async fn put_with(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        options: PutOptions,
    ) -> Result<PutResponse, EtcdError> {
        let response: pb::PutResponse = self.unary(options.into_request(key, value)).await?;
        Ok(response.into())
    }

    /// Deletes one key.
    pub async fn delete(&self, key: impl IntoBytes) -> Result<DeleteResponse, EtcdError> {
        self.delete_with(key, DeleteOptions::new()).await
    }

    /// Deletes a key or a range, with options.
    pub async fn delete_with(
        &self,
        key: impl IntoBytes,
        options: DeleteOptions,
    ) -> Result<DeleteResponse, EtcdError> {
        let response: pb::DeleteRangeResponse = self.unary(options.into_request(key)).await?;
        Ok(response.into())
    }

    /// Compacts the history up to `revision`: older revisions can no longer
    /// be read or watched.
    pub async fn compact(&self, revision: i64) -> Result<ResponseHeader, EtcdError> {
        self.compact_with(revision, CompactOptions::new()).await
    }

    /// Compacts the history, with options.
    pub async fn compact_with(
        &self,
        revision: i64,
        options: CompactOptions,
    ) -> Result<ResponseHeader, EtcdError> {
        let response: pb::CompactionResponse = self
            .unary(pb::CompactionRequest {
                revision,
                physical: options.physical,
            })
            .await?;
        Ok(response.header.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_build_requests() {
        let r = GetOptions::new().prefix().limit(3).into_request("a/");
        assert_eq!(r.key, "a/");
        assert_eq!(r.range_end, "a0");
        assert_eq!(r.limit, 3);
        let r = GetOptions::new().from_key().into_request("a");
        assert_eq!(r.range_end, "\0");
        let d = DeleteOptions::new()
            .range_end("c")
            .prev_kv()
            .into_request("a");
        assert_eq!(d.range_end, "c");
        assert!(d.prev_kv);
        let p = PutOptions::new()
            .lease(7)
            .ignore_value()
            .into_request("k", "");
        assert_eq!((p.lease, p.ignore_value), (7, true));
    }

    #[test]
    fn an_empty_prefix_means_every_key() {
        for r in [
            GetOptions::new().prefix().into_request(""),
            GetOptions::new().from_key().into_request(""),
        ] {
            assert_eq!((&r.key[..], &r.range_end[..]), (&b"\0"[..], &b"\0"[..]));
        }
        let d = DeleteOptions::new().prefix().into_request("");
        assert_eq!((&d.key[..], &d.range_end[..]), (&b"\0"[..], &b"\0"[..]));
        // A single empty key stays empty, for the transport to refuse.
        assert!(GetOptions::new().into_request("").key.is_empty());
    }
}
