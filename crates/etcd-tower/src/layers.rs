//! Every layer of the stack, re-exported, so that one dependency on
//! `etcd-tower` is enough to compose a stack by hand.
//!
//! Each layer lives in its own crate and can be used alone (a plain tower
//! service over [`Transport`](crate::Transport) needs only
//! `etcd-tower-core` and the layers it stacks). Here they are all in one
//! place: the layer types at the top of this module, and each crate under
//! its own name for the rest of its items (policies, futures, markers such
//! as [`timeout::CallTimeout`]). The auth, namespace and metrics layers
//! come with the features of the same names (all on by default). Stack them
//! in the crate's [layer order](crate#layer-order).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use std::time::Duration;
//! use etcd_tower::layers::{NamespaceLayer, RetryLayer, TimeoutLayer};
//! use etcd_tower::tower::ServiceBuilder;
//! use etcd_tower::{Client, Transport};
//!
//! let stack = ServiceBuilder::new()
//!     .layer(NamespaceLayer::new("app-1/"))
//!     .layer(TimeoutLayer::new(Duration::from_secs(5)))
//!     .layer(RetryLayer::new())
//!     .service(Transport::builder(["127.0.0.1:2379"]).build()?);
//! let client = Client::from_service(stack);
//! client.put("config", "on").await?; // stored as "app-1/config"
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "auth")]
pub use etcd_tower_auth as auth;
#[cfg(feature = "auth")]
pub use etcd_tower_auth::AuthLayer;
#[cfg(feature = "metrics")]
pub use etcd_tower_metrics as metrics;
#[cfg(feature = "metrics")]
pub use etcd_tower_metrics::MetricsLayer;
#[cfg(feature = "namespace")]
pub use etcd_tower_namespace as namespace;
#[cfg(feature = "namespace")]
pub use etcd_tower_namespace::NamespaceLayer;
pub use etcd_tower_ordering as ordering;
pub use etcd_tower_ordering::OrderingLayer;
pub use etcd_tower_retry as retry;
pub use etcd_tower_retry::RetryLayer;
pub use etcd_tower_timeout as timeout;
pub use etcd_tower_timeout::TimeoutLayer;
