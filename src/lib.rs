//! # etcd-tower-core
//!
//! The foundation of etcd-tower: etcd's v3 API types, the one request,
//! response and error model every layer shares, and the gRPC transport.
//!
//! Every concern of the client (auth, namespaces, metrics, retries,
//! timeouts) is a `tower::Layer` over one service type:
//!
//! ```text
//! Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>
//! ```
//!
//! * [`EtcdRequest`] names the RPC and carries its payload ([`RequestBody`],
//!   one variant per RPC, from the table in [`rpc`]) and per-call metadata
//!   ([`RequestMeta`]: token, require-leader, extensions for layers).
//! * [`EtcdResponse`] carries the answer ([`ResponseBody`]). Streaming RPCs
//!   (Watch, LeaseKeepAlive, Snapshot, Observe) go through the same service:
//!   opening the stream is the call, so layers see streams too.
//! * [`EtcdError`] says which etcd error it was ([`ErrorKind`]), its gRPC
//!   code and message, and whether the request was sent ([`Sent`]).
//! * [`Transport`] is the service at the bottom: many endpoints,
//!   failover, TLS, HTTP/2 keepalive, validation before sending.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower_core::EtcdError> {
//! use etcd_tower_core::proto::etcdserverpb::{RangeRequest, RangeResponse};
//! use etcd_tower_core::{EtcdRequest, Transport};
//! use tower::ServiceExt;
//!
//! let transport = Transport::connect_lazy(["127.0.0.1:2379"])?;
//! let get = RangeRequest { key: "greeting".into(), ..Default::default() };
//! let range = RangeResponse::try_from(transport.oneshot(EtcdRequest::new(get)).await?)?;
//! for kv in range.kvs {
//!     println!("{:?} = {:?}", kv.key, kv.value);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod metadata;
pub mod metric_names;
pub mod proto;
pub mod range;
pub mod request;
pub mod response;
pub mod rpc;
pub mod signal;
pub mod stream;
pub mod transport;
pub mod validate;

pub use error::{Code, ErrorKind, EtcdError, Sent};
pub use metadata::Metadata;
pub use request::{AuthToken, EtcdRequest, RequestMeta};
pub use response::EtcdResponse;
pub use rpc::{Repeatable, RequestBody, ResponseBody, Rpc, RpcService, RpcShape};
pub use stream::{RequestStream, ResponseStream};
pub use transport::{
    Endpoint, LeastLoaded, PickFirst, RoundRobin, SelectionPolicy, TargetEndpoint, TlsOptions,
    Transport, TransportBuilder, TriedEndpoints,
};
