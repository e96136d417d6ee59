//! # etcd-tower
//!
//! A typed etcd v3 client assembled from tower layers.
//!
//! Every concern of the client is a `tower::Layer` over one service type,
//! `Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>`:
//! the gRPC [`Transport`] at the bottom, then the auth, retry, timeout,
//! metrics and namespace layers (in the [layer order](#layer-order)),
//! each in its own crate. [`Client`] is the
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
//! ## Guide
//!
//! From the first call to a stack of your own, in five steps.
//!
//! **1. Connect.** [`Client::connect`] takes the endpoints (`host:port`,
//! `http://` or `https://`) and checks that the cluster answers;
//! [`Client::builder`] sets everything else. Connections are made lazily
//! and shared by every clone of the client.
//!
//! **2. Configure the stack.** Each [`ClientBuilder`] setting adds one
//! layer: [`user`](ClientBuilder::user) (login and token refresh),
//! [`namespace`](ClientBuilder::namespace), [`timeout`](ClientBuilder::timeout),
//! [`attempt_timeout`](ClientBuilder::attempt_timeout),
//! [`metrics`](ClientBuilder::metrics); retries are on by default. With
//! [`tls`](ClientBuilder::tls), every endpoint is reached over TLS.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use std::time::Duration;
//! use etcd_tower::Client;
//!
//! let client = Client::builder(["127.0.0.1:2379", "127.0.0.1:22379"])
//!     .user("app", "secret")
//!     .namespace("app-1/")
//!     .timeout(Duration::from_secs(5))
//!     .metrics(true)
//!     .connect()
//!     .await?;
//! # drop(client);
//! # Ok(())
//! # }
//! ```
//!
//! **3. Call.** Keys and values, [transactions](txn), [leases](lease) and
//! their [keepers](LeaseKeeper), [watches](watch) that survive every fault,
//! the [lock] and [election] services, and [maintenance]
//! (see [What is where](#what-is-where)). Every error is an
//! [`EtcdError`] that says whether the request was [`Sent`].
//!
//! **4. Coordinate.** The [recipes](concurrency) (feature `recipes`):
//! sessions, mutexes and elections on the keys and protocol of Go's
//! `concurrency` package, cancel-safe.
//!
//! **5. Compose your own stack.** The layers are tower layers, re-exported
//! in [`layers`]; stack them with [`tower::ServiceBuilder`] in the
//! [layer order](#layer-order), add your own, and hand the result to
//! [`Client::from_service`] (or call it as a plain tower service):
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use std::time::Duration;
//! use etcd_tower::layers::{AuthLayer, NamespaceLayer, RetryLayer, TimeoutLayer};
//! use etcd_tower::tower::ServiceBuilder;
//! use etcd_tower::tower::util::MapRequestLayer;
//! use etcd_tower::{Client, EtcdRequest, Transport};
//!
//! // Any tower layer fits; this one asks for a leader on every call.
//! let require_leader = MapRequestLayer::new(|mut request: EtcdRequest| {
//!     request.meta.require_leader = true;
//!     request
//! });
//! let stack = ServiceBuilder::new()
//!     .layer(require_leader)
//!     .layer(NamespaceLayer::new("app-1/"))
//!     .layer(TimeoutLayer::new(Duration::from_secs(5)))
//!     .layer(RetryLayer::new())
//!     .layer(AuthLayer::new("app", "secret"))
//!     .service(Transport::builder(["127.0.0.1:2379"]).build()?);
//! let client = Client::from_service(stack);
//! client.put("config", "on").await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `tls` | on | TLS (rustls, ring) for `https://` endpoints; without it, TLS settings are refused when the client is built |
//! | `tls-native-roots` | on | with no CA given, trust the system's root certificates |
//! | `tls-webpki-roots` | off | with no CA given, trust the Mozilla roots compiled into the binary |
//! | `auth` | on | [`ClientBuilder::user`], [`layers::AuthLayer`] |
//! | `namespace` | on | [`ClientBuilder::namespace`], [`layers::NamespaceLayer`] |
//! | `metrics` | on | [`ClientBuilder::metrics`], [`layers::MetricsLayer`] |
//! | `recipes` | on | [`concurrency`]: `Session`, `Mutex`, `Election` |
//! | `dns-srv` | off | DNS SRV discovery of the endpoints, as Go's client does: `Client::builder_srv`, `endpoints::discover_srv` (hickory-resolver) |
//!
//! Endpoints are TCP (`host:port`, `http://`, `https://`) or, on Unix, a
//! local socket (`unix://path`, `unixs://path` for TLS over it), with no
//! feature needed; see [`Endpoint`](etcd_tower_core::Endpoint).
//!
//! The retry and timeout layers and the watch engine are always there.
//! The minimum supported Rust version is 1.88.
//!
//! ## Layer order
//!
//! The one order of the stack, written once here; every layer's crate
//! links to it. A call goes down from the first layer to the
//! [`Transport`], and its answer comes back up the same way in reverse.
//! [`ClientBuilder::build`] stacks the layers as below, from the outside
//! in, leaving out those not configured; a stack composed by hand with
//! `tower::ServiceBuilder` (`.layer(..)` calls from the outside in, as in
//! [`ClientBuilder`]'s second example) should keep the same order.
//!
//! | | layer | set with | why it sits here |
//! |---|---|---|---|
//! | 1 | require-leader metadata | [`require_leader`](ClientBuilder::require_leader) | A flag in the request's metadata, set once: every layer below and every attempt of the call carries it. |
//! | 2 | `NamespaceLayer` | [`namespace`](ClientBuilder::namespace) | Rewrites the request once, before any other layer sees it, and strips the prefix from the answer last. Callers above (your code, the watch engine, the recipes) see only their own keys; the layers below see the keys as etcd stores them, and a retry re-sends the rewritten request instead of rewriting it again. |
//! | 3 | `MetricsLayer` | [`metrics`](ClientBuilder::metrics) | Above the timeout and the retries: one count, one latency and one outcome per call as its caller sees it (retries and backoff included; a call the timeout cut counts as `kind="Timeout"`). The retries are counted by the retry layer (`etcd_retries_total`), the logins by the auth layer (`etcd_auth_token_refreshes_total`). |
//! | 4 | `TimeoutLayer`, whole call | [`timeout`](ClientBuilder::timeout) | Above the retries: bounds how long the caller waits, every attempt and backoff included. |
//! | 5 | `OrderingLayer` | [`ordered_reads`](ClientBuilder::ordered_reads) (off by default) | Above the retries, under the whole-call timeout: it sees each answer once the retries are done with it, and a stale serializable read it sends again goes through the retry layer like any call, to a member the call has not tried. |
//! | 6 | `RetryLayer` | [`retry`](ClientBuilder::retry), [`no_retry`](ClientBuilder::no_retry) (on by default) | Above the auth layer and the transport: each attempt goes to a clone of the stack below, polled ready again, so that the transport can pick another member and the auth layer gives the attempt the current token. |
//! | 7 | `TimeoutLayer`, each attempt | [`attempt_timeout`](ClientBuilder::attempt_timeout) | Under the retries: bounds each attempt (its login included), so that one stuck on a frozen member fails in time for the retry layer to send the next (reads only: a write that may have been applied is never repeated) to a member the call has not tried yet. |
//! | 8 | `AuthLayer` | [`user`](ClientBuilder::user) | Inside the retries, next to the transport: every attempt, stream open and watch probe leaves with the current token. A call rejected for its token is refreshed and sent again inside the one attempt (the server applied nothing), and the layer's own `Authenticate` calls go straight to the transport, unseen by the layers above. |
//! | 9 | [`Transport`] | endpoints, [`tls`](ClientBuilder::tls), limits | The bottom: refuses an invalid request before sending it ([`Sent::NotSent`]), picks a member, fails over, sends. |
//!
//! ## Per-call options
//!
//! The builder's settings are defaults. [`Client::with_options`] gives a
//! handle whose calls carry their own [`CallOptions`]: a whole-call or
//! per-attempt deadline, require-leader, or one endpoint to go to
//! ([`Client::at_endpoint`], for maintenance aimed at a member). Calls that
//! wait by design (`lock`, `campaign`, `observe`, `defragment`) are never
//! cut by the client-wide deadlines: they wait until they are answered,
//! unless their options set a deadline.
//!
//! The watch engine and the recipes (sessions, mutexes, elections) are not
//! layers: they call the stack like your code does, so their watch creates,
//! resumes and token probes pass through every layer (a resumed watch stays
//! in its namespace and carries a current token).
//!
//! One consequence of the order: a request the namespace layer refuses (an
//! empty key, which under a prefix would name the prefix itself) never
//! reaches the metrics layer, and is not counted.
//!
//! ## What is where
//!
//! | group | methods on [`Client`] | types |
//! |---|---|---|
//! | [KV](kv) | `get`, `put`, `delete`, `compact` (`*_with` for options) | [`GetOptions`], [`PutOptions`], [`DeleteOptions`], [`KeyValue`] |
//! | [Transactions](txn) | `txn` | [`Txn`], [`Compare`], [`TxnOp`] |
//! | [Leases](lease) | `lease_grant`, `lease_revoke`, `lease_time_to_live`, `lease_leases`, `lease_keep_alive`, `lease_keep_alive_once` | [`LeaseKeeper`] |
//! | [Auth](auth) | `auth_enable`, `user_*`, `role_*` | [`Permission`] |
//! | [Cluster](cluster) | `member_*` | |
//! | [Endpoints](endpoints) | `endpoints`, `set_endpoints`, `sync_endpoints`; [`auto_sync`](ClientBuilder::auto_sync) | |
//! | [Maintenance](maintenance) | `status`, `alarm_*`, `defragment`, `hash`, `hash_kv`, `snapshot`, `move_leader` | [`SnapshotInfo`] |
//! | [Mirror](mirror) | | [`Syncer`](mirror::Syncer): a prefix copied at one revision, then its changes, across faults and compaction |
//! | [Per member](per_member) | `defragment_each_member`, `hash_kv_each_member`, `status_each_member`, `move_leader_to`; `at_endpoint` for any call | [`MemberAnswer`](per_member::MemberAnswer), [`CallOptions`] |
//! | [Lock service](lock) | `lock`, `unlock` | |
//! | [Election service](election) | `campaign`, `proclaim`, `leader`, `observe`, `resign` | |
//! | [Recipes](concurrency) | `stm` | [`Session`](concurrency::Session), [`Mutex`](concurrency::Mutex), [`Election`](concurrency::Election), [`Stm`](concurrency::Stm) |
//!
//! ## Errors
//!
//! Every call fails with [`EtcdError`]: which etcd error it was
//! ([`ErrorKind`]), the gRPC code and message, and whether the request was
//! sent ([`Sent`]). Bad input (an empty key, a TTL out of range, a value
//! over the send limit, a txn over the op limit or writing a key twice)
//! fails before anything is sent, with [`Sent::NotSent`].
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod bytes;
mod client;
mod detached;
pub mod endpoints;
mod options;

pub mod auth;
pub mod cluster;
#[cfg(feature = "recipes")]
pub mod concurrency;
pub mod election;
pub mod keeper;
pub mod kv;
pub mod layers;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod mirror;
pub mod per_member;
pub mod txn;
pub mod watch;

pub use crate::builder::ClientBuilder;
pub use crate::bytes::{prefix_end, IntoBytes};
pub use crate::client::{BoxEtcdService, Client};
pub use crate::options::CallOptions;
pub use auth::{Permission, PermissionType};
pub use keeper::{LeaseKeeper, LeaseLost, LeaseState};
pub use kv::{
    CompactOptions, DeleteOptions, DeleteResponse, GetOptions, GetResponse, KeyValue, PutOptions,
    PutResponse, ResponseHeader, SortOrder, SortTarget,
};
pub use maintenance::SnapshotInfo;
pub use txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse};

pub use etcd_tower_core::{
    metric_names, proto, rpc, signal, stream, AuthToken, Code, ErrorKind, EtcdError, EtcdRequest,
    EtcdResponse, LeastLoaded, Metadata, PickFirst, RequestBody, RequestMeta, RequestStream,
    ResponseBody, ResponseStream, RoundRobin, Rpc, SelectionPolicy, Sent, TargetEndpoint,
    TlsOptions, Transport, TransportBuilder, TriedEndpoints,
};

/// The tower this crate is built on, for `ServiceBuilder`, `ServiceExt`
/// and the rest, at the version the layers implement.
pub use tower;

/// What a [`Watcher`](watch::Watcher) is, and its adapters (`next`,
/// `map`, ...), re-exported so that `etcd-tower` alone is enough for the
/// examples.
pub use futures_util::{Stream, StreamExt};
