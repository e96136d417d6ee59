//! # etcd-tower
//!
//! A typed etcd v3 client assembled from tower layers.
//!
//! Every concern of the client is a `tower::Layer` over one service type,
//! `Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>`:
//! the gRPC [`Transport`] at the bottom, then auth, namespace, retry,
//! timeout and metrics layers, each in its own crate. [`Client`] is the
//! typed face on top of that stack: the easy path is one line, and the
//! custom path is the same stack, composed by you with
//! `tower::ServiceBuilder` and handed to [`Client::from_service`].
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::{Client, GetOptions};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! client.put("app/greeting", "hello").await?;
//! let found = client.get_with("app/", GetOptions::new().prefix()).await?;
//! for kv in found.kvs() {
//!     println!("{} = {}", kv.key_str().unwrap_or("?"), kv.value_str().unwrap_or("?"));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## What is where
//!
//! | group | methods on [`Client`] | types |
//! |---|---|---|
//! | [KV](kv) | `get`, `put`, `delete`, `compact` (`*_with` for options) | [`GetOptions`], [`PutOptions`], [`DeleteOptions`], [`KeyValue`] |
//! | [Transactions](txn) | `txn` | [`Txn`], [`Compare`], [`TxnOp`] |
//! | [Leases](lease) | `lease_grant`, `lease_revoke`, `lease_time_to_live`, `lease_leases`, `lease_keep_alive` | [`LeaseKeeper`] |
//! | [Auth](auth) | `auth_enable`, `user_*`, `role_*` | [`Permission`] |
//! | [Cluster](cluster) | `member_*` | |
//! | [Maintenance](maintenance) | `status`, `alarm_*`, `defragment`, `hash`, `hash_kv`, `snapshot`, `move_leader` | [`SnapshotInfo`] |
//! | [Lock service](lock) | `lock`, `unlock` | |
//! | [Election service](election) | `campaign`, `proclaim`, `leader`, `observe`, `resign` | |
//! | [Recipes](concurrency) | | [`Session`](concurrency::Session), [`Mutex`](concurrency::Mutex), [`Election`](concurrency::Election) |
//!
//! ## Errors
//!
//! Every call fails with [`EtcdError`]: which etcd error it was
//! ([`ErrorKind`]), the gRPC code and message, and whether the request was
//! sent ([`Sent`]). Bad input (an empty key, a TTL out of range, a value
//! over the send limit, a txn over the op limit or writing a key twice)
//! fails before anything is sent, with [`Sent::NotSent`].
#![deny(missing_docs)]

mod builder;
mod bytes;
mod client;
mod detached;

pub mod auth;
pub mod cluster;
pub mod concurrency;
pub mod election;
pub mod keeper;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod txn;
pub mod watch;

pub use crate::builder::ClientBuilder;
pub use crate::bytes::{prefix_end, IntoBytes};
pub use crate::client::{BoxEtcdService, Client};
pub use auth::{Permission, PermissionType};
pub use keeper::{LeaseKeeper, LeaseLost, LeaseState};
pub use kv::{
    CompactOptions, DeleteOptions, DeleteResponse, GetOptions, GetResponse, KeyValue, PutOptions,
    PutResponse, ResponseHeader, SortOrder, SortTarget,
};
pub use maintenance::SnapshotInfo;
pub use txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse};

pub use etcd_tower_core::{
    proto, Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody, Sent,
    TlsOptions, Transport, TransportBuilder,
};
