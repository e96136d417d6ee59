//! Service naming for etcd-tower: instances of a service registered in
//! etcd under leases, listed, watched, and balanced over with tower.
//!
//! A service is a *target* name; each of its instances is an [`Endpoint`]
//! (an address and optional JSON metadata) stored under
//! `<target>/<addr>`. The keys and values are those of Go's
//! `go.etcd.io/etcd/client/v3/naming/endpoints` (etcd v3.5; the same
//! layout as etcd 3.4's `clientv3/naming`), byte for byte, so Go services
//! registered with Go's endpoints manager are found here, and instances
//! registered here are found by Go's manager and its gRPC resolver (see
//! [`endpoint`] for the format and how it is read).
//!
//! * [`EndpointManager::register`] puts an instance under a lease of its
//!   own, kept alive until the [`Registration`] is closed or dropped; an
//!   instance that dies leaves the list when its lease's TTL has passed.
//! * [`EndpointManager::list`] and [`EndpointManager::watch`] read the
//!   instances as Go's `List` and `NewWatchChannel` do.
//! * [`EndpointManager::discover`] is a [`tower::discover::Discover`] of
//!   the instances, for `tower::balance::p2c::Balance`.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::Client;
//! use etcd_tower_naming::{Endpoint, EndpointManager, RegisterOptions};
//! use serde_json::json;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let greeter = EndpointManager::new(&client, "greeter")?;
//!
//! // This instance: listed until closed, or for 10 s after it dies.
//! let me = Endpoint::new("10.0.0.7:8080").with_metadata(json!({"zone": "b"}));
//! let registration = greeter.register(me, RegisterOptions::new().ttl(10)).await?;
//!
//! for (key, endpoint) in greeter.list().await?.endpoints {
//!     println!("{key}: {} {}", endpoint.addr, endpoint.metadata);
//! }
//! registration.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The crate's `examples/balance.rs` registers three HTTP servers and
//! balances requests over them with p2c while one leaves and comes back.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod discover;
pub mod endpoint;
pub mod manager;
pub mod registration;
pub mod updates;

pub use discover::EndpointDiscover;
pub use endpoint::{DecodeError, Endpoint};
pub use manager::EndpointManager;
pub use registration::{RegisterOptions, Registration};
pub use updates::{EndpointList, EndpointUpdates, Operation, Update};

/// tower's `Change`, which [`EndpointDiscover`] yields.
pub use tower::discover::Change;
