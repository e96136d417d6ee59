//! The [`Client`]: one cloneable handle over the whole tower stack.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_tower_core::{
    EtcdError, EtcdRequest, EtcdResponse, RequestBody, TargetEndpoint, Transport,
};
use etcd_tower_watch::{WatchConfig, WatchEngine};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::builder::ClientBuilder;
use crate::endpoints::AutoSync;
use crate::keeper::HubSlot;
use crate::options::CallOptions;

/// The stack behind a [`Client`], boxed once at the boundary.
pub type BoxEtcdService = BoxCloneSyncService<EtcdRequest, EtcdResponse, EtcdError>;

/// A typed etcd v3 client.
///
/// A `Client` is a thin, typed face over one
/// `Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>`: the
/// transport with whatever layers were stacked on it (auth, namespace,
/// retry, timeout, metrics). The stack is boxed once, here, so the client
/// has one concrete type whatever it is made of.
///
/// Cloning is cheap and every clone shares the same connections and the
/// same auth session: clone it into every task that needs it.
///
/// Three ways to get one:
///
/// * [`Client::connect`]: defaults, checks that the cluster answers.
/// * [`Client::builder`]: credentials, TLS, namespace, timeout, retries,
///   metrics and transport limits.
/// * [`Client::from_service`]: any stack you composed yourself.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// let client = etcd_tower::Client::connect(["127.0.0.1:2379"]).await?;
/// client.put("greeting", "hello").await?;
/// let resp = client.get("greeting").await?;
/// if let Some(kv) = resp.kvs().first() {
///     println!("{} = {}", kv.key_str().unwrap_or("?"), kv.value_str().unwrap_or("?"));
/// }
/// # Ok(())
/// # }
/// ```
///
/// The client is also a `Service<EtcdRequest>` itself, so anything written
/// against the service type (the watch engine, your own layers) takes it.
#[derive(Clone)]
pub struct Client {
    service: BoxEtcdService,
    watch: WatchEngine<BoxEtcdService>,
    /// What this handle's calls carry (see [`Client::with_options`]).
    options: CallOptions,
    /// The transport, when the builder made it (for its endpoints).
    transport: Option<Transport>,
    /// The background endpoint sync, stopped with the last clone.
    auto_sync: Option<Arc<AutoSync>>,
    /// The builder's auth layer's credentials, to change them at run time.
    #[cfg(feature = "auth")]
    credentials: Option<etcd_tower_auth::CredentialsHandle>,
    /// The keep-alive hub of this handle's lease keepers, shared by clones.
    leases: Arc<HubSlot>,
}

impl Client {
    /// Connects with default settings and checks that some endpoint answers
    /// (one `MemberList` call, which any user may make), so a wrong address
    /// fails here rather than on the first real request. Use [`Client::builder`]`(..).build()` for a client
    /// that does no I/O until it is used.
    pub async fn connect<I, S>(endpoints: I) -> Result<Client, EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ClientBuilder::new(endpoints).connect().await
    }

    /// Starts configuring a client; see [`ClientBuilder`].
    pub fn builder<I, S>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ClientBuilder::new(endpoints)
    }

    /// A client over a plain [`Transport`], with no layers.
    pub fn from_transport(transport: Transport) -> Client {
        Client::from_service(transport)
    }

    /// A client over a stack you built yourself.
    ///
    /// The service must be `Sync` as well as `Clone + Send`, so that the
    /// client can be shared by reference across tasks (every tower
    /// middleware and the transport are).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), etcd_tower::EtcdError> {
    /// use std::time::Duration;
    /// use etcd_tower::{Client, Transport};
    /// use tower::ServiceBuilder;
    ///
    /// let transport = Transport::builder(["127.0.0.1:2379"]).build()?;
    /// let stack = ServiceBuilder::new()
    ///     // add etcd-tower layers (or your own) here
    ///     .service(transport);
    /// let client = Client::from_service(stack);
    /// client.put("k", "v").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_service<S>(service: S) -> Client
    where
        S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self::from_service_with_watch_config(service, WatchConfig::default())
    }

    /// [`from_service`](Self::from_service), with the watch engine's
    /// settings (buffer, back-off, open timeout, progress interval: see
    /// [`WatchConfig`]); the builder's
    /// [`watch_config`](crate::ClientBuilder::watch_config) ends here.
    pub fn from_service_with_watch_config<S>(service: S, watch: WatchConfig) -> Client
    where
        S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let service = BoxCloneSyncService::new(service);
        Client {
            watch: WatchEngine::with_config(service.clone(), watch),
            service,
            options: CallOptions::default(),
            transport: None,
            auto_sync: None,
            #[cfg(feature = "auth")]
            credentials: None,
            leases: Arc::default(),
        }
    }

    /// The client over the builder's stack, with its transport, syncing
    /// its endpoints every `auto_sync` if set.
    pub(crate) fn with_transport(
        mut self,
        transport: Transport,
        auto_sync: Option<Duration>,
    ) -> Client {
        self.auto_sync = auto_sync
            .map(|interval| AutoSync::start(self.service.clone(), transport.clone(), interval));
        self.transport = Some(transport);
        self
    }

    /// The client with the builder's credentials handle.
    #[cfg(feature = "auth")]
    pub(crate) fn with_credentials(
        mut self,
        credentials: Option<etcd_tower_auth::CredentialsHandle>,
    ) -> Client {
        self.credentials = credentials;
        self
    }

    /// The builder's credentials handle, if it was given a user.
    #[cfg(feature = "auth")]
    pub(crate) fn credentials_handle(&self) -> Option<&etcd_tower_auth::CredentialsHandle> {
        self.credentials.as_ref()
    }

    /// Where this handle's lease keepers find their keep-alive hub.
    pub(crate) fn lease_hub(&self) -> &HubSlot {
        &self.leases
    }

    /// The transport the builder made, if any.
    pub(crate) fn transport_handle(&self) -> Option<&Transport> {
        self.transport.as_ref()
    }

    /// A handle on the same stack, connections and watch engine whose calls
    /// carry `options` (deadlines, require-leader, one endpoint) in place of
    /// this handle's; see [`CallOptions`].
    pub fn with_options(&self, options: CallOptions) -> Client {
        Client {
            options,
            // Its keepers renew with these options, on their own stream.
            leases: Arc::default(),
            ..self.clone()
        }
    }

    /// A handle whose calls go to `endpoint` only, with no failover: for
    /// maintenance aimed at one member (its status, defragmenting it, its
    /// hashes and alarms). `endpoint` is written as the client's endpoints
    /// were (`host:port` or a URL) and must be one of them; a call aimed
    /// elsewhere fails before anything is sent, with
    /// [`ErrorKind::InvalidEndpoint`](crate::ErrorKind::InvalidEndpoint).
    /// Fails at once if `endpoint` does not parse.
    pub fn at_endpoint(&self, endpoint: &str) -> Result<Client, EtcdError> {
        let target = TargetEndpoint::new(endpoint)?;
        Ok(self.with_options(self.options.clone().endpoint(target)))
    }

    /// The options this handle's calls carry.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// The watch engine all clones of this client share.
    pub fn watch_engine(&self) -> &WatchEngine<BoxEtcdService> {
        &self.watch
    }

    /// A clone of the stack behind the client, for calls the typed API does
    /// not cover.
    pub fn service(&self) -> BoxEtcdService {
        self.service.clone()
    }

    /// Sends one request through the stack, with this handle's
    /// [options](Client::with_options) (what the request already carries
    /// wins).
    pub async fn call(&self, mut request: EtcdRequest) -> Result<EtcdResponse, EtcdError> {
        self.options.apply(&mut request);
        self.send(request).await
    }

    /// Sends a request that waits by design (a lock, a campaign, a
    /// defragmentation): the client-wide deadlines do not apply to it,
    /// only one this handle's options or the request set.
    pub(crate) async fn call_waiting(
        &self,
        mut request: EtcdRequest,
    ) -> Result<EtcdResponse, EtcdError> {
        self.options.apply_waiting(&mut request);
        self.send(request).await
    }

    async fn send(&self, request: EtcdRequest) -> Result<EtcdResponse, EtcdError> {
        let mut service = self.service.clone();
        service.ready().await?.call(request).await
    }

    /// Sends one unary request and converts the answer to its message.
    pub(crate) async fn unary<Resp>(&self, body: impl Into<RequestBody>) -> Result<Resp, EtcdError>
    where
        Resp: TryFrom<EtcdResponse, Error = EtcdError>,
    {
        Resp::try_from(self.call(EtcdRequest::new(body)).await?)
    }

    /// As [`unary`](Self::unary), for a call that waits by design.
    pub(crate) async fn unary_waiting<Resp>(
        &self,
        body: impl Into<RequestBody>,
    ) -> Result<Resp, EtcdError>
    where
        Resp: TryFrom<EtcdResponse, Error = EtcdError>,
    {
        Resp::try_from(self.call_waiting(EtcdRequest::new(body)).await?)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Service<EtcdRequest> for Client {
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = <BoxEtcdService as Service<EtcdRequest>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: EtcdRequest) -> Self::Future {
        self.service.call(request)
    }
}
