//! Following a living cluster: the client's endpoints at run time, synced
//! from the cluster's member list on demand or on a timer (Go's
//! `SetEndpoints`, `Sync` and `AutoSyncInterval`).
//!
//! A long-lived service outlives the members it was configured with:
//! members get replaced, with new addresses. [`Client::set_endpoints`]
//! changes the endpoints of the client's transport, for every clone of the
//! client (see `etcd_tower_core::transport::reconfigure` for what happens
//! to calls and watches under way: nothing is cut, nothing is lost).
//! [`Client::sync_endpoints`] reads the member list through consensus and
//! takes the members' client URLs; [`ClientBuilder::auto_sync`] does that
//! on a timer, in the background, for as long as a clone of the client
//! lives.
//!
//! A sync never leaves the client without endpoints: a member list with
//! no usable client URL, or one that cannot be read (no quorum, no
//! connection), keeps the endpoints as they are. Learners are skipped
//! (they refuse most calls), as are members that have not started yet
//! (no client URLs).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use std::time::Duration;
//! use etcd_tower::Client;
//!
//! let client = Client::builder(["10.0.0.1:2379"])
//!     .auto_sync(Duration::from_secs(60))
//!     .connect()
//!     .await?;
//! // Or at once, after a change you know of:
//! let endpoints = client.sync_endpoints().await?;
//! println!("now talking to {endpoints:?}");
//! # Ok(())
//! # }
//! ```
//!
//! ## Finding the cluster in DNS (feature `dns-srv`)
//!
//! Where a cluster's members are published as DNS SRV records
//! (`_etcd-client-ssl._tcp.<domain>` for `https://`,
//! `_etcd-client._tcp.<domain>` for `http://`, as etcd's documentation
//! and Go's `--discovery-srv` use them), `Client::builder_srv` looks them
//! up and starts a builder with the endpoints found; `discover_srv` returns
//! them alone. See `etcd_tower_core::transport::discovery` for the record
//! names, the order and the errors.
//!
//! ```no_run
//! # #[cfg(feature = "dns-srv")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use std::time::Duration;
//! use etcd_tower::endpoints::DiscoveryOptions;
//! use etcd_tower::Client;
//!
//! // `_etcd-client-ssl._tcp.example.com` only: TLS endpoints, no plaintext.
//! let options = DiscoveryOptions::new().tls_only(true);
//! let client = Client::builder_srv("example.com", options)
//!     .await?
//!     .auto_sync(Duration::from_secs(60))
//!     .connect()
//!     .await?;
//! client.put("config", "on").await?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "dns-srv"))]
//! # fn main() {}
//! ```
//!
//! [`ClientBuilder::auto_sync`]: crate::ClientBuilder::auto_sync

use std::sync::Arc;
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, Transport};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::client::{BoxEtcdService, Client};
#[cfg(feature = "dns-srv")]
pub use etcd_tower_core::transport::{discover_srv, DiscoveryOptions};

/// Stops the auto-sync task when the last clone of the client is dropped.
#[derive(Debug)]
pub(crate) struct AutoSync(JoinHandle<()>);

impl Drop for AutoSync {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl AutoSync {
    /// Syncs every `interval` through `service` (the client's stack) into
    /// `transport`. The task holds no client, so it does not keep one
    /// alive.
    pub(crate) fn start(
        service: BoxEtcdService,
        transport: Transport,
        interval: Duration,
    ) -> Arc<AutoSync> {
        Arc::new(AutoSync(tokio::spawn(async move {
            let mut timer = tokio::time::interval(interval);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer.tick().await; // the first tick is now
            loop {
                timer.tick().await;
                match sync(&service, &transport).await {
                    Ok(endpoints) => tracing::debug!(?endpoints, "etcd endpoints synced"),
                    Err(error) => {
                        tracing::info!(%error, "etcd endpoint sync failed; keeping the endpoints")
                    }
                }
            }
        })))
    }
}

/// Reads the member list through consensus and sets the transport's
/// endpoints to the client URLs of the started voting members.
async fn sync(service: &BoxEtcdService, transport: &Transport) -> Result<Vec<String>, EtcdError> {
    let response = service
        .clone()
        .oneshot(EtcdRequest::new(pb::MemberListRequest {
            linearizable: true,
        }))
        .await?;
    let members = pb::MemberListResponse::try_from(response)?.members;
    let endpoints: Vec<String> = members
        .into_iter()
        .filter(|member| !member.is_learner)
        .flat_map(|member| member.client_ur_ls)
        .collect();
    if endpoints.is_empty() {
        return Err(EtcdError::client(
            ErrorKind::NoEndpoints,
            "the member list has no voting member with a client URL; keeping the endpoints",
        ));
    }
    transport.set_endpoints(&endpoints)?;
    Ok(endpoints)
}

/// # Endpoints at run time
impl Client {
    /// The transport under the client, when the client was built by
    /// [`ClientBuilder`](crate::ClientBuilder) (a client made with
    /// [`Client::from_service`] does not know it).
    fn transport(&self) -> Result<&Transport, EtcdError> {
        self.transport_handle().ok_or_else(|| {
            EtcdError::client(
                ErrorKind::InvalidRequest,
                "this client was made from a service of its own: change the endpoints on its \
                 Transport (Transport::set_endpoints)",
            )
        })
    }

    /// The endpoints the client uses now.
    pub fn endpoints(&self) -> Result<Vec<String>, EtcdError> {
        Ok(self
            .transport()?
            .endpoints()
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    /// Replaces the endpoints, for every clone of the client: calls and
    /// watches under way are not cut (see the [module docs](self)). Fails,
    /// changing nothing, for an empty list or an endpoint that does not
    /// parse.
    pub fn set_endpoints<I, S>(&self, endpoints: I) -> Result<(), EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.transport()?.set_endpoints(endpoints)
    }

    /// Reads the member list (linearizable) and makes the client URLs of
    /// the started voting members the client's endpoints; returns them. On
    /// any failure the endpoints stay as they were.
    pub async fn sync_endpoints(&self) -> Result<Vec<String>, EtcdError> {
        sync(&self.service(), self.transport()?).await
    }
}

/// # Finding the cluster in DNS (feature `dns-srv`)
#[cfg(feature = "dns-srv")]
impl Client {
    /// Looks up the cluster's DNS SRV records under `domain` (see the
    /// [module docs](self#finding-the-cluster-in-dns-feature-dns-srv)) and
    /// starts a builder with the endpoints found, `https://` ones first.
    /// Set TLS with [`ClientBuilder::tls`](crate::ClientBuilder::tls)
    /// when the records are `_etcd-client-ssl`; with TLS settings, plaintext
    /// endpoints are refused when the client is built, so ask for
    /// [`DiscoveryOptions::tls_only`] then. Fails with
    /// [`ErrorKind::NoEndpoints`] when DNS has no record, with
    /// [`ErrorKind::Connect`] when the lookup failed.
    pub async fn builder_srv(
        domain: &str,
        options: DiscoveryOptions,
    ) -> Result<crate::ClientBuilder, EtcdError> {
        let endpoints = discover_srv(domain, options).await?;
        Ok(Client::builder(endpoints))
    }
}
