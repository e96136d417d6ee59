//! Namespace layer for etcd-tower: transparent key-prefix isolation.
//!
//! Several tenants or applications often share one etcd cluster, each under
//! its own key prefix. Doing the prefixing by hand at every call site is how
//! one tenant ends up reading or deleting another's keys: a forgotten
//! prefix, a "delete all" whose range end was not moved, a watch from a key
//! that runs to the end of the keyspace. [`NamespaceLayer`] does it once,
//! below the code that builds requests: the service above it sees an etcd
//! whose whole keyspace is the prefix, and nothing it sends can reach
//! outside.
//!
//! * **Down**: every key, range end and name is moved into the prefix
//!   ([`request`]). Range ends follow etcd's rules ([`keys`]): `\0` ("from
//!   key") ends at the prefix's range end rather than the keyspace's, key
//!   `\0` with end `\0` ("all keys") becomes the whole prefix, and prefixes
//!   ending in `0xff` bytes get an exact range end. Txn compares and both
//!   branches are rewritten recursively; watch creates are rewritten as
//!   they are sent on the stream; lock and election names are prefixed.
//! * **Up**: the prefix is stripped from every key the server returns
//!   ([`response`]): `kvs`, `prev_kv(s)`, nested txn responses, watch
//!   events, lock keys, election leader keys and key-values. A lease's
//!   attached keys that belong to other namespaces are dropped.
//! * **Refused** (nothing sent): empty keys, which would name the prefix
//!   itself, and any RPC the layer does not know how to confine.
//!
//! # What is not namespaced
//!
//! RPCs that name no key pass through unchanged and act on the whole
//! cluster, as in etcd's Go `namespace` package: **Compact** (it drops the
//! history below a revision of *every* key), leases (IDs are cluster-wide,
//! and revoking a lease deletes all its keys, in any namespace), Auth
//! (role permissions name raw keys: grant a tenant's role the prefix's
//! range yourself), Cluster, and Maintenance (Status, Hash, HashKV,
//! Snapshot, Defragment, MoveLeader, Alarm, Downgrade).
//!
//! # Beside etcd's gRPC proxy
//!
//! etcd's own proxy (`etcd grpc-proxy start --namespace=<prefix>`) does the
//! same for KV, Watch and Lease calls, but **not for the Lock and Election
//! services**: a lock taken through a namespaced proxy (and so an
//! `etcdctl lock` pointed at it) lives under its raw name, outside the
//! tenant's prefix, while this layer puts lock and election names inside
//! the prefix. A deployment that mixes the two (Go services through a
//! namespaced proxy, Rust services with this layer over the same cluster)
//! must not rely on the proxy for those services: give the Go side's lock
//! and election names the prefix itself, or point both sides at the
//! cluster with their own namespacing. Do not stack this layer over a
//! namespaced proxy either: the prefixes would nest (`a/` here and `b/`
//! in the proxy store `k` as `b/a/k`).
//!
//! # Where it goes in a stack
//!
//! The layer rewrites the messages themselves, so it composes with the
//! other layers without knowing them. A watch engine above it re-creates
//! watchers after a broken stream by sending create requests on a new
//! stream; those pass through the same rewriting, so resumed watches stay
//! in the namespace. An auth layer anywhere in the stack only adds the
//! token to calls and streams (and may reopen them), which the rewriting
//! does not touch. A retry layer above the namespace re-sends the caller's
//! request, which is rewritten again; below it, the already rewritten one.
//!
//! An empty prefix is a no-op: requests and answers go through untouched,
//! with no copying.
//!
//! # Nesting
//!
//! Namespaces nest: the outer layer's prefix ends up *inside* the inner
//! layer's. `tower::ServiceBuilder` calls the layer added first first, so
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(NamespaceLayer::new("a/"))   // outer: "k" -> "a/k"
//!     .layer(NamespaceLayer::new("b/"))   // inner: "a/k" -> "b/a/k"
//!     .service(transport)
//! ```
//!
//! stores the caller's key `k` at `b/a/k`: the layer nearest the transport
//! contributes the leftmost part of the key. It is the same namespace as one
//! `NamespaceLayer::new("b/a/")`, range ends included.
//!
//! # Example
//!
//! With a stand-in for etcd that answers every Range with the key it was
//! sent:
//!
//! ```
//! # fn main() -> Result<(), etcd_tower_core::EtcdError> {
//! use etcd_tower_core::proto::etcdserverpb::{RangeRequest, RangeResponse};
//! use etcd_tower_core::proto::mvccpb::KeyValue;
//! use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody};
//! use etcd_tower_namespace::NamespaceLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let etcd = service_fn(|request: EtcdRequest| async move {
//!     let RequestBody::Range(range) = request.body else { unreachable!() };
//!     // What the server is asked for: the tenant's whole range.
//!     assert_eq!((&range.key[..], &range.range_end[..]), (&b"tenant-a/"[..], &b"tenant-a0"[..]));
//!     let kv = KeyValue { key: "tenant-a/config".into(), value: "v".into(), ..Default::default() };
//!     let answer = RangeResponse { kvs: vec![kv], count: 1, ..Default::default() };
//!     Ok::<_, EtcdError>(EtcdResponse::new(ResponseBody::Range(answer)))
//! });
//! let client = ServiceBuilder::new()
//!     .layer(NamespaceLayer::new("tenant-a/"))
//!     .service(etcd);
//!
//! // "All keys" ...
//! let all = RangeRequest { key: "\0".into(), range_end: "\0".into(), ..Default::default() };
//! let response = futures::executor::block_on(client.oneshot(EtcdRequest::new(all)))?;
//! // ... are the tenant's keys, without the prefix.
//! let range = RangeResponse::try_from(response)?;
//! assert_eq!(range.kvs[0].key, "config");
//! # Ok(())
//! # }
//! ```
//!
//! Against a server, over the transport:
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower_core::EtcdError> {
//! use etcd_tower_core::proto::etcdserverpb::{PutRequest, PutResponse};
//! use etcd_tower_core::{EtcdRequest, Transport};
//! use etcd_tower_namespace::NamespaceLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let transport = Transport::builder(["127.0.0.1:2379"]).build()?;
//! let tenant = ServiceBuilder::new()
//!     .layer(NamespaceLayer::new("tenant-a/"))
//!     .service(transport);
//! // Stored as "tenant-a/config".
//! let put = PutRequest { key: "config".into(), value: "on".into(), ..Default::default() };
//! PutResponse::try_from(tenant.oneshot(EtcdRequest::new(put)).await?)?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod future;
pub mod keys;
mod layer;
pub mod request;
pub mod response;
mod service;

pub use future::ResponseFuture;
pub use keys::{prefix_range_end, Prefix};
pub use layer::NamespaceLayer;
pub use service::Namespace;
