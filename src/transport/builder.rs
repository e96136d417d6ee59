//! Configuration of the transport.

use std::sync::Arc;
use std::time::Duration;

use super::connection::Keepalive;
use super::endpoint::EndpointSet;
use super::reconfigure::Current;
use super::selection::{self, SelectionPolicy};
use super::settings::ConnectionSettings;
use super::tls::TlsOptions;
use super::{Limits, Shared, Transport};
use crate::error::{ErrorKind, EtcdError};
use crate::validate::DEFAULT_MAX_TXN_OPS;

/// The send limit of etcd's Go client (`MaxCallSendMsgSize`): 2 MiB.
pub const DEFAULT_MAX_SEND_SIZE: usize = 2 * 1024 * 1024;

/// Builds a [`Transport`]. Every setting has a default suited to a cluster
/// on a local network; only the endpoints are required.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower_core::EtcdError> {
/// use std::time::Duration;
/// use etcd_tower_core::Transport;
///
/// let transport = Transport::builder(["127.0.0.1:2379", "127.0.0.1:22379"])
///     .connect_timeout(Duration::from_secs(1))
///     .keepalive(Duration::from_secs(5), Duration::from_secs(3))
///     .build()?; // connects lazily: no I/O yet
/// # drop(transport);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TransportBuilder {
    selection: Arc<dyn SelectionPolicy>,
    endpoints: Vec<String>,
    connect_timeout: Duration,
    keepalive_interval: Option<Duration>,
    keepalive_timeout: Duration,
    keepalive_while_idle: bool,
    max_send_size: usize,
    max_recv_size: usize,
    max_txn_ops: usize,
    failed_endpoint_backoff: Duration,
    tls: Option<TlsOptions>,
}

impl TransportBuilder {
    pub(crate) fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        TransportBuilder {
            selection: selection::default_policy(),
            endpoints: endpoints
                .into_iter()
                .map(|e| e.as_ref().to_owned())
                .collect(),
            connect_timeout: Duration::from_secs(2),
            keepalive_interval: Some(Duration::from_secs(10)),
            keepalive_timeout: Duration::from_secs(5),
            keepalive_while_idle: false,
            max_send_size: DEFAULT_MAX_SEND_SIZE,
            max_recv_size: usize::MAX,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            failed_endpoint_backoff: Duration::from_secs(1),
            tls: None,
        }
    }

    /// How long to wait for a TCP (and TLS) connection before trying the
    /// next endpoint, and then again for the server's first HTTP/2 answer
    /// (a member that accepts connections but is frozen fails here, having
    /// been sent nothing). Default 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// HTTP/2 keepalive: a PING every `interval` while calls or streams are
    /// open, and the connection closed (failing what is on it) when no
    /// answer comes within `timeout`. This is what detects a black-holed
    /// connection or a frozen member. Default 10 s / 5 s.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive_interval = Some(interval);
        self.keepalive_timeout = timeout;
        self
    }

    /// Also PINGs a connection with nothing open on it (Go's
    /// `PermitWithoutStream`; off by default), so that an idle connection
    /// a NAT or load balancer silently dropped is found and closed within
    /// `interval + timeout`, and the next call opens a fresh one (nothing
    /// sent) instead of writing into the dead one, where a write can only
    /// fail as "may have been applied".
    ///
    /// etcd's server (gRPC-Go, `PermitWithoutStream` off) counts a PING
    /// on an idle connection as a strike (a call's answer clears them):
    /// after the third it closes the connection with a GOAWAY
    /// (`too_many_pings`), on every etcd version tested (3.4.23, 3.5.1,
    /// 3.5.30). So against etcd an idle connection is closed after about
    /// three intervals, and the next call connects again, without an
    /// error: idle keepalive trades that reconnect for never writing into
    /// a dead connection.
    pub fn keepalive_while_idle(mut self, on: bool) -> Self {
        self.keepalive_while_idle = on;
        self
    }

    /// Turns HTTP/2 keepalive off.
    pub fn no_keepalive(mut self) -> Self {
        self.keepalive_interval = None;
        self
    }

    /// The largest request the client sends; larger ones fail with
    /// [`ErrorKind::RequestTooLarge`] before anything is sent.
    /// Default 2 MiB, like etcd's Go client.
    pub fn max_send_size(mut self, bytes: usize) -> Self {
        self.max_send_size = bytes;
        self
    }

    /// The largest response the client accepts. Default: unlimited.
    pub fn max_recv_size(mut self, bytes: usize) -> Self {
        self.max_recv_size = bytes;
        self
    }

    /// The most operations a txn branch may hold before the client refuses
    /// it; match the server's `--max-txn-ops`. Default 128.
    pub fn max_txn_ops(mut self, ops: usize) -> Self {
        self.max_txn_ops = ops;
        self
    }

    /// How long an endpoint that failed is skipped. Default 1 s.
    pub fn failed_endpoint_backoff(mut self, backoff: Duration) -> Self {
        self.failed_endpoint_backoff = backoff;
        self
    }

    /// TLS for every endpoint (CA, client certificate): an endpoint written
    /// without a scheme is then `https://`, and an `http://` endpoint is
    /// refused by [`build`](Self::build). Without the `tls` feature,
    /// `build` refuses any TLS setting with [`ErrorKind::InvalidTls`].
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How each call's endpoint is chosen: [`RoundRobin`](super::RoundRobin)
    /// by default, [`PickFirst`](super::PickFirst),
    /// [`LeastLoaded`](super::LeastLoaded), or a policy of your own; see
    /// [`selection`](super::selection).
    pub fn selection(mut self, policy: impl SelectionPolicy) -> Self {
        self.selection = Arc::new(policy);
        self
    }

    /// Builds the transport. Connections are made lazily, on first use;
    /// this only checks the configuration. Must run inside a Tokio runtime.
    pub fn build(self) -> Result<Transport, EtcdError> {
        let settings = ConnectionSettings {
            connect_timeout: self.connect_timeout,
            keepalive: self.keepalive_interval.map(|interval| Keepalive {
                interval,
                timeout: self.keepalive_timeout,
                while_idle: self.keepalive_while_idle,
            }),
            tls: self.tls,
        };
        let connections = settings.connections(&self.endpoints)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(EtcdError::client(
                ErrorKind::InvalidRequest,
                "the transport must be built inside a Tokio runtime",
            ));
        }
        let limits = Limits {
            max_send_size: self.max_send_size,
            max_recv_size: self.max_recv_size,
            max_txn_ops: self.max_txn_ops,
        };
        let shared = Arc::new(Shared {
            endpoints: EndpointSet::new(connections, self.failed_endpoint_backoff, self.selection),
            limits,
        });
        Ok(Transport::from_current(Arc::new(Current::new(
            shared, settings,
        ))))
    }
}
