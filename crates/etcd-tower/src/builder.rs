//! [`ClientBuilder`]: the one-line stack, re-composable.

use std::time::Duration;

#[cfg(feature = "namespace")]
use bytes::Bytes;
#[cfg(feature = "auth")]
use etcd_tower_auth::AuthLayer;
use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::{EtcdError, EtcdRequest, Metadata, TlsOptions, TransportBuilder};
#[cfg(feature = "metrics")]
use etcd_tower_metrics::MetricsLayer;
#[cfg(feature = "namespace")]
use etcd_tower_namespace::NamespaceLayer;
use etcd_tower_ordering::{OnViolation, OrderingLayer};
use etcd_tower_retry::RetryLayer;
use etcd_tower_timeout::TimeoutLayer;
#[cfg(not(all(feature = "namespace", feature = "metrics")))]
use tower::layer::util::Identity;
#[cfg(feature = "auth")]
use tower::util::Either;
use tower::util::MapRequestLayer;
#[cfg(feature = "auth")]
use tower::Layer;
use tower::ServiceBuilder;

#[cfg(feature = "namespace")]
use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::watch::WatchConfig;

/// Configures a [`Client`].
///
/// The builder assembles the same tower layers you can stack yourself; it
/// only saves the typing. From the outside in:
///
/// | layer | crate | set with |
/// |---|---|---|
/// | require-leader, metadata | (this crate) | [`require_leader`](Self::require_leader), [`metadata`](Self::metadata) |
/// | `NamespaceLayer` | `etcd-tower-namespace` (feature `namespace`) | [`namespace`](Self::namespace) |
/// | `MetricsLayer` | `etcd-tower-metrics` (feature `metrics`) | [`metrics`](Self::metrics) |
/// | `TimeoutLayer` | `etcd-tower-timeout` | [`timeout`](Self::timeout) |
/// | `OrderingLayer` | `etcd-tower-ordering` | [`ordered_reads`](Self::ordered_reads) (off by default) |
/// | `RetryLayer` | `etcd-tower-retry` | [`retry`](Self::retry), [`no_retry`](Self::no_retry) (on by default) |
/// | `TimeoutLayer`, each attempt | `etcd-tower-timeout` | [`attempt_timeout`](Self::attempt_timeout) |
/// | `AuthLayer` | `etcd-tower-auth` (feature `auth`) | [`user`](Self::user) |
/// | `Transport` | `etcd-tower-core` | endpoints, [`tls`](Self::tls), limits |
///
/// Watches go through the watch engine (`etcd-tower-watch`), above the
/// whole stack; its settings are [`watch_config`](Self::watch_config).
///
/// The timeout sits outside the retries, so it bounds the whole call; the
/// attempt timeout and the auth layer sit inside them, so every attempt is
/// bounded and carries a valid token. See the crate's
/// [layer order](crate#layer-order) for why.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use std::time::Duration;
/// use etcd_tower::Client;
///
/// let client = Client::builder(["127.0.0.1:2379", "127.0.0.1:22379"])
///     .namespace("app-1/")
///     .timeout(Duration::from_secs(5))
///     .metrics(true)
///     .require_leader(true)
///     .max_send_size(4 * 1024 * 1024)
///     .connect()
///     .await?;
/// client.put("config", "on").await?; // stored as "app-1/config"
/// # Ok(())
/// # }
/// ```
///
/// The same client, composed by hand (see also `examples/compose.rs`):
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use std::time::Duration;
/// use etcd_tower::layers::{AuthLayer, MetricsLayer, NamespaceLayer, RetryLayer, TimeoutLayer};
/// use etcd_tower::tower::ServiceBuilder;
/// use etcd_tower::{Client, Transport};
///
/// let transport = Transport::builder(["127.0.0.1:2379"]).build()?;
/// let stack = ServiceBuilder::new()
///     .layer(NamespaceLayer::new("app-1/"))
///     .layer(MetricsLayer::new())
///     .layer(TimeoutLayer::new(Duration::from_secs(5)))
///     .layer(RetryLayer::new())
///     .layer(AuthLayer::new("app", "secret"))
///     .service(transport);
/// let client = Client::from_service(stack);
/// # drop(client);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` or `connect` is called"]
pub struct ClientBuilder {
    transport: TransportBuilder,
    #[cfg(feature = "auth")]
    /// The login: built at once, so the password lives only in the layer,
    /// which never prints it and wipes it when dropped.
    auth: Option<AuthLayer>,
    #[cfg(feature = "namespace")]
    namespace: Option<Bytes>,
    timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    #[cfg(feature = "metrics")]
    metrics: bool,
    require_leader: bool,
    metadata: Metadata,
    auto_sync: Option<Duration>,
    retry: Option<RetryLayer>,
    ordering: Option<OrderingLayer>,
    watch: WatchConfig,
}

impl ClientBuilder {
    pub(crate) fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ClientBuilder {
            transport: etcd_tower_core::Transport::builder(endpoints),
            #[cfg(feature = "auth")]
            auth: None,
            #[cfg(feature = "namespace")]
            namespace: None,
            timeout: None,
            attempt_timeout: None,
            #[cfg(feature = "metrics")]
            metrics: false,
            require_leader: false,
            metadata: Metadata::new(),
            auto_sync: None,
            retry: Some(RetryLayer::new()),
            ordering: None,
            watch: WatchConfig::default(),
        }
    }

    /// Logs in as `user` with `password` and keeps a token on every call
    /// (feature `auth`).
    #[cfg(feature = "auth")]
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(AuthLayer::new(user, password));
        self
    }

    /// TLS for every endpoint (CA, client certificate): an endpoint written
    /// without a scheme is then `https://`, and an `http://` endpoint is
    /// refused by [`build`](Self::build). Needs the `tls` feature (on by
    /// default); without it `build` refuses TLS settings with
    /// [`ErrorKind::InvalidTls`](crate::ErrorKind::InvalidTls).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.transport = self.transport.tls(tls);
        self
    }

    /// Prefixes every key with `prefix`, and strips it from answers: the
    /// client sees only its own part of the keyspace (feature `namespace`).
    #[cfg(feature = "namespace")]
    pub fn namespace(mut self, prefix: impl IntoBytes) -> Self {
        let prefix = prefix.into_bytes();
        self.namespace = (!prefix.is_empty()).then_some(prefix);
        self
    }

    /// A deadline for every call, retries included: a unary call's answer,
    /// a stream's opening and first message. Calls that wait by design
    /// (`lock`, `campaign`, `observe`, `defragment`) are not bound by it;
    /// [`Client::with_options`] overrides it for one handle.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A deadline for each attempt, under the retries: an attempt stuck on
    /// a frozen member (its connection open, nothing answering) fails after
    /// `timeout`, and a read is retried on a member the call has not tried
    /// yet, within the whole-call [`timeout`](Self::timeout). Keep it
    /// above the connect timeout (2 s by default) if writes should fail
    /// over when a member is down, and well below the whole-call deadline.
    /// Off by default; calls that wait by design are not bound by it.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Retries with this policy what is safe to retry (reads and other
    /// repeatable calls on `Unavailable`; writes only when they were
    /// certainly not sent). On by default, with `RetryLayer::new()`.
    pub fn retry(mut self, retry: RetryLayer) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Never returns a serializable read older than a revision the client
    /// has already seen (Go's `ordering` wrapper): such an answer, from a
    /// member lagging behind after a failover, is sent again to another
    /// member or fails as [`ErrorKind::StaleRead`](crate::ErrorKind::StaleRead),
    /// as `policy` says. Off by default (linearizable reads, the default,
    /// are never stale). See [`layers::ordering`](crate::layers::ordering).
    pub fn ordered_reads(mut self, policy: OnViolation) -> Self {
        self.ordering = Some(OrderingLayer::new().on_violation(policy));
        self
    }

    /// Never retries: every failure reaches the caller.
    pub fn no_retry(mut self) -> Self {
        self.retry = None;
        self
    }

    /// Records request counts, latencies and errors through the `metrics`
    /// facade. Off by default (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Syncs the endpoints from the cluster's member list every `interval`,
    /// in the background, while a clone of the client lives (Go's
    /// `AutoSyncInterval`); see [`endpoints`](crate::endpoints). Off by
    /// default.
    pub fn auto_sync(mut self, interval: Duration) -> Self {
        self.auto_sync = Some(interval);
        self
    }

    /// Asks members to refuse calls (and cancel streams) while they have no
    /// leader, instead of serving possibly stale data or hanging.
    pub fn require_leader(mut self, on: bool) -> Self {
        self.require_leader = on;
        self
    }

    /// Extra gRPC headers on every call and watch stream of the client (a
    /// tenant for a proxy in front of etcd, say), after those a request or
    /// a handle's [`CallOptions::metadata`](crate::CallOptions::metadata)
    /// carries. Names and values are checked when `metadata` is built; see
    /// [`Metadata`].
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), etcd_tower::EtcdError> {
    /// use etcd_tower::{Client, Metadata};
    ///
    /// let mut metadata = Metadata::new();
    /// metadata.insert("x-tenant", "blue")?;
    /// let client = Client::builder(["127.0.0.1:2379"]).metadata(metadata).connect().await?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// The largest request the client sends (default 2 MiB).
    pub fn max_send_size(mut self, bytes: usize) -> Self {
        self.transport = self.transport.max_send_size(bytes);
        self
    }

    /// The largest response the client accepts (default unlimited).
    pub fn max_recv_size(mut self, bytes: usize) -> Self {
        self.transport = self.transport.max_recv_size(bytes);
        self
    }

    /// The most operations a txn branch may hold; match the server's
    /// `--max-txn-ops` (default 128).
    pub fn max_txn_ops(mut self, ops: usize) -> Self {
        self.transport = self.transport.max_txn_ops(ops);
        self
    }

    /// How long to wait for a connection before trying the next endpoint.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.transport = self.transport.connect_timeout(timeout);
        self
    }

    /// HTTP/2 keepalive interval and timeout.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.transport = self.transport.keepalive(interval, timeout);
        self
    }

    /// Keepalive PINGs on idle connections too (Go's
    /// `PermitWithoutStream`), so that one a NAT dropped is found before
    /// the next write; see
    /// [`TransportBuilder::keepalive_while_idle`](crate::TransportBuilder::keepalive_while_idle)
    /// for how etcd answers them.
    pub fn keepalive_while_idle(mut self, on: bool) -> Self {
        self.transport = self.transport.keepalive_while_idle(on);
        self
    }

    /// How each call's endpoint is chosen: round-robin by default,
    /// [`PickFirst`](crate::PickFirst), [`LeastLoaded`](crate::LeastLoaded)
    /// or a [`SelectionPolicy`](crate::SelectionPolicy) of your own; see
    /// [`TransportBuilder::selection`](crate::TransportBuilder::selection).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), etcd_tower::EtcdError> {
    /// use etcd_tower::{Client, LeastLoaded};
    ///
    /// let client = Client::builder(["127.0.0.1:2379", "127.0.0.1:22379"])
    ///     .selection(LeastLoaded::new())
    ///     .connect()
    ///     .await?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    pub fn selection(mut self, policy: impl etcd_tower_core::SelectionPolicy) -> Self {
        self.transport = self.transport.selection(policy);
        self
    }

    /// Any other transport setting.
    pub fn transport(
        mut self,
        configure: impl FnOnce(TransportBuilder) -> TransportBuilder,
    ) -> Self {
        self.transport = configure(self.transport);
        self
    }

    /// The watch engine's settings (default [`WatchConfig::default`]): how
    /// many events a watcher buffers before it lags and is re-created from
    /// the server's history (overridden per watch by
    /// [`WatchOptions::buffer`](crate::watch::WatchOptions::buffer)), the
    /// back-off between re-opens of a broken stream, how long opening one
    /// may take, how often the engine asks for progress. Every watch of the
    /// client (and of its clones) goes through the engine built with them.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), etcd_tower::EtcdError> {
    /// use std::time::Duration;
    /// use etcd_tower::watch::WatchConfig;
    /// use etcd_tower::Client;
    ///
    /// let client = Client::builder(["127.0.0.1:2379"])
    ///     .watch_config(
    ///         WatchConfig::default()
    ///             .buffer(16 * 1024)
    ///             .backoff(Duration::from_millis(50), Duration::from_secs(5))
    ///             .open_timeout(Duration::from_secs(3)),
    ///     )
    ///     .connect()
    ///     .await?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_config(mut self, config: WatchConfig) -> Self {
        self.watch = config;
        self
    }

    /// Builds the client without any I/O: connections are made on first
    /// use. Must run inside a Tokio runtime.
    pub fn build(self) -> Result<Client, EtcdError> {
        let transport = self.transport.build()?;
        let transport_handle = transport.clone();
        let require_leader = self.require_leader;
        let metadata = self.metadata;
        let defaults = (require_leader || !metadata.is_empty()).then_some(MapRequestLayer::new(
            move |mut request: EtcdRequest| {
                request.meta.require_leader |= require_leader;
                request.meta.metadata.extend(&metadata);
                request
            },
        ));
        // The auth service is made here rather than by `option_layer`, so
        // that the client can hand out its credentials handle.
        #[cfg(feature = "auth")]
        let (transport, credentials) = match self.auth {
            Some(layer) => {
                let auth = layer.layer(transport);
                let credentials = auth.credentials();
                (Either::Left(auth), Some(credentials))
            }
            None => (Either::Right(transport), None),
        };
        #[cfg(feature = "namespace")]
        let namespace = self.namespace.map(NamespaceLayer::new);
        #[cfg(not(feature = "namespace"))]
        let namespace = None::<Identity>;
        #[cfg(feature = "metrics")]
        let metrics = self.metrics.then(MetricsLayer::new);
        #[cfg(not(feature = "metrics"))]
        let metrics = None::<Identity>;
        let stack = ServiceBuilder::new()
            .option_layer(defaults)
            .option_layer(namespace)
            .option_layer(metrics)
            .option_layer(self.timeout.map(TimeoutLayer::new))
            .option_layer(self.ordering)
            .option_layer(self.retry)
            .option_layer(
                self.attempt_timeout
                    .map(|t| TimeoutLayer::new(t).per_attempt()),
            )
            .service(transport);
        let client = Client::from_service_with_watch_config(stack, self.watch)
            .with_transport(transport_handle, self.auto_sync);
        #[cfg(feature = "auth")]
        let client = client.with_credentials(credentials);
        Ok(client)
    }

    /// Builds the client and checks that the cluster answers: one
    /// `MemberList` call (served by the member, not through consensus),
    /// which logs in first when credentials are set. `MemberList` is the
    /// check because every user may call it on every supported etcd:
    /// `Status`, the obvious choice, is reserved for admins when auth is on
    /// in recent 3.5 releases (3.5.30 refuses it to any user but root with
    /// `PermissionDenied`; 3.5.1 and 3.4 allow it).
    pub async fn connect(self) -> Result<Client, EtcdError> {
        let client = self.build()?;
        let _members: pb::MemberListResponse = client
            .unary(pb::MemberListRequest {
                linearizable: false,
            })
            .await?;
        Ok(client)
    }
}
