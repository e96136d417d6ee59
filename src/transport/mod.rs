//! The gRPC transport: the service at the bottom of every stack.
//!
//! [`Transport`] is a `Service<EtcdRequest, Response = EtcdResponse, Error =
//! EtcdError>` over one lazily made HTTP/2 connection per endpoint, spoken
//! through `h2` directly: a call opens its stream on the connection from
//! the caller's task, with no worker task or channel in between (see
//! `connection.rs` for why).
//!
//! * **Choosing an endpoint.** `poll_ready` asks the
//!   [selection policy](selection) for a healthy endpoint (round-robin by
//!   default; pick-first, least-loaded or your own). When its connection is up, `poll_ready` waits until h2
//!   takes one more stream on it: that is the transport's backpressure
//!   (streams beyond the server's `SETTINGS_MAX_CONCURRENT_STREAMS` wait).
//!   When it has no connection, the call makes one (or waits for the one
//!   being made) as its first step, within the call's deadline, as tonic's
//!   buffered channel did. An endpoint whose connection fails is skipped
//!   for a back-off period.
//! * **Cheap calls.** A call encodes its request once, opens its stream and
//!   hands the frames to h2 inside `call` itself; its future only waits for
//!   the answer. Small frames of concurrent calls leave in one `write` (see
//!   `connector.rs`), and responses are decoded in place from the received
//!   bytes.
//! * **Keepalive.** While calls or streams are open, each connection is
//!   PINGed; one that does not answer in time is closed, which fails what
//!   is open on it (a frozen member or a black-holed connection), and the
//!   next call connects again.
//! * **Failover without duplicates.** A unary request is encoded once. When
//!   no connection could be made to the chosen endpoint, nothing was sent, so
//!   the same bytes go to the next endpoint within the same call. Once a
//!   request may have reached a server the transport never resends it; the
//!   error says [`Sent::MayHaveBeenApplied`](crate::Sent) and the retry
//!   layer decides.
//! * **Validation first.** Empty keys, oversized requests and malformed
//!   txns fail before anything is sent (see [`validate`](crate::validate)).
//! * **Metadata.** [`RequestMeta::token`](crate::RequestMeta) is sent as
//!   gRPC metadata `token`, `require_leader` as `hasleader: true`.
//! * **Addresses.** TCP (`host:port`, `http://`, `https://`) or, on
//!   Unix, a local socket (`unix://`, `unixs://`); see [`Endpoint`].
//! * **Discovery.** With the `dns-srv` feature, `discover_srv` finds
//!   the endpoints in DNS SRV records, as Go's client does; see
//!   `discovery`.
//! * **Routing.** A call aimed at one endpoint ([`TargetEndpoint`], for
//!   per-member maintenance) goes there and never fails over; a retried
//!   call prefers an endpoint its earlier attempts did not go to
//!   ([`TriedEndpoints`]); see [`route`].
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower_core::EtcdError> {
//! use etcd_tower_core::proto::etcdserverpb::{PutRequest, PutResponse};
//! use etcd_tower_core::{EtcdRequest, Transport};
//! use tower::ServiceExt;
//!
//! let transport = Transport::builder(["127.0.0.1:2379"]).build()?;
//! let put = PutRequest { key: "greeting".into(), value: "hello".into(), ..Default::default() };
//! let response = transport.oneshot(EtcdRequest::new(put)).await?;
//! let put = PutResponse::try_from(response)?;
//! println!("written at revision {}", put.header.map_or(0, |h| h.revision));
//! # Ok(())
//! # }
//! ```

mod builder;
mod call;
mod codec;
mod connection;
mod connector;
#[cfg(feature = "dns-srv")]
pub mod discovery;
mod endpoint;
#[cfg(any(test, fuzzing))]
mod fuzz_support;
#[cfg(test)]
mod fuzz_tests;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod reconfigure;
pub mod route;
pub mod selection;
mod settings;
mod tls;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;
use tracing::Instrument;

pub use builder::{TransportBuilder, DEFAULT_MAX_SEND_SIZE};
#[cfg(feature = "dns-srv")]
pub use discovery::{discover_srv, DiscoveryOptions};
pub use endpoint::Endpoint;
pub use route::{TargetEndpoint, TriedEndpoints};
pub use selection::{LeastLoaded, PickFirst, RoundRobin, SelectionPolicy};
pub use tls::TlsOptions;

/// The rustls this crate builds its TLS on, for
/// [`TlsOptions::rustls_config`]: a `ClientConfig` must come from the same
/// rustls version.
#[cfg(feature = "tls")]
pub use tokio_rustls::rustls;

use crate::error::{ErrorKind, EtcdError};
use crate::{EtcdRequest, EtcdResponse};
use connection::Live;
use endpoint::EndpointSet;
use reconfigure::Current;

/// The gRPC transport service; see the [module docs](self).
///
/// Clones share the connections. Each clone keeps its own readiness, as
/// `tower` requires: a clone must be polled ready before it is called.
pub struct Transport {
    /// The endpoint set every clone shares, which may change.
    current: Arc<Current>,
    /// This handle's copy of the current set, and its number: calls use
    /// it, so a call started on a set finishes on it.
    shared: Arc<Shared>,
    generation: u64,
    /// The connection this handle used last: its endpoint and h2 handle.
    /// It is kept across calls, so that a call opens its stream without
    /// cloning the handle (a clone and its drop each take h2's lock).
    conn: Option<(usize, Live)>,
    /// What `poll_ready` reserved for the next call: the endpoint, and
    /// whether its ready connection is `conn` or the call must connect
    /// first.
    ready: Option<(usize, Reserved)>,
    /// The endpoint `poll_ready` chose, while it waits for h2 to take one
    /// more stream.
    picked: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reserved {
    /// `conn` is the endpoint's connection, ready for a stream.
    Connection,
    /// The endpoint has no connection (yet, or any more): the call makes
    /// one, or waits for the one being made, as its first step. That wait
    /// is part of the call, bounded by the call's deadline, as it was with
    /// tonic's buffered channel, and a failure to connect is the call's
    /// "not sent" error, which it fails over from.
    Connect,
}

#[derive(Debug)]
struct Shared {
    endpoints: EndpointSet,
    limits: Limits,
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    max_send_size: usize,
    max_recv_size: usize,
    max_txn_ops: usize,
}

impl Transport {
    /// Starts configuring a transport over these endpoints (`host:port`,
    /// `http://host:port`, `https://host:port` or, on Unix, a socket:
    /// `unix://path`, `unixs://path`; see [`Endpoint`]).
    pub fn builder<I, S>(endpoints: I) -> TransportBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        TransportBuilder::new(endpoints)
    }

    /// A transport with default settings; connects lazily.
    pub fn connect_lazy<I, S>(endpoints: I) -> Result<Transport, EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        TransportBuilder::new(endpoints).build()
    }

    fn from_current(current: Arc<Current>) -> Self {
        let (shared, generation) = current.load();
        Transport {
            current,
            shared,
            generation,
            conn: None,
            ready: None,
            picked: None,
        }
    }

    /// The endpoints, as parsed (the current set, which
    /// [`set_endpoints`](Self::set_endpoints) may change).
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let (shared, _) = self.current.load();
        (0..shared.endpoints.len())
            .map(|i| shared.endpoints.slot(i).endpoint().clone())
            .collect()
    }

    /// Takes up a newer endpoint set, if there is one.
    fn refresh(&mut self) {
        if self.current.generation() != self.generation {
            (self.shared, self.generation) = self.current.load();
            self.conn = None;
            self.picked = None;
        }
    }
}

impl Clone for Transport {
    /// A clone shares the connections but not the readiness reserved by
    /// `poll_ready`: it must be polled ready itself.
    fn clone(&self) -> Self {
        // This handle's copy of the set, without taking the cell's lock
        // (a clone per call is the hot path); `poll_ready` takes up a
        // newer set if there is one.
        Transport {
            current: self.current.clone(),
            shared: self.shared.clone(),
            generation: self.generation,
            conn: None,
            ready: None,
            picked: None,
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("endpoints", &self.endpoints())
            .finish_non_exhaustive()
    }
}

impl Service<EtcdRequest> for Transport {
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        if self.ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        self.refresh();
        let shared = &self.shared;
        let index = *self.picked.get_or_insert_with(|| shared.endpoints.pick());
        let connection = &shared.endpoints.slot(index).connection;
        let cached =
            matches!(&self.conn, Some((used, live)) if *used == index && !live.info.is_closed());
        if !cached {
            self.conn = connection.current().map(|live| (index, live));
        }
        let reserved = match &mut self.conn {
            None => Reserved::Connect,
            Some((_, live)) => match live.send.poll_ready(cx) {
                Poll::Ready(Ok(())) => Reserved::Connection,
                Poll::Ready(Err(error)) => {
                    // The connection failed since it was last used: the
                    // call makes a new one.
                    tracing::debug!(endpoint = %connection.endpoint(), %error, "etcd connection closed");
                    live.info.close();
                    self.conn = None;
                    Reserved::Connect
                }
                Poll::Pending => return Poll::Pending,
            },
        };
        self.picked = None;
        self.ready = Some((index, reserved));
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EtcdRequest) -> ResponseFuture {
        let Some((index, reserved)) = self.ready.take() else {
            return ResponseFuture::failed(EtcdError::client(
                ErrorKind::InvalidRequest,
                "Transport::call before poll_ready returned Ready",
            ));
        };
        if let Err(error) = crate::validate::validate(&request.body, self.shared.limits.max_txn_ops)
        {
            return ResponseFuture::failed(error);
        }
        let choice = match route::choose(&self.shared.endpoints, index, &request.meta) {
            Ok(choice) => choice,
            Err(error) => return ResponseFuture::failed(error),
        };
        // The reserved connection serves only a call that goes where
        // `poll_ready` looked; any other endpoint is connected in the call.
        let live = match (reserved, &mut self.conn) {
            (Reserved::Connection, Some((used, live))) if *used == choice.index => Some(live),
            _ => None,
        };
        // One span per call: the RPC and the endpoint picked first (a
        // failover inside the call logs where it went). Never the token.
        let span = tracing::debug_span!(
            "etcd_call",
            rpc = %request.body.rpc(),
            endpoint = %self.shared.endpoints.slot(choice.index).endpoint(),
        );
        let carrier = call::Carrier {
            shared: &self.shared,
            index: choice.index,
            failover: choice.failover,
            live,
            meta: request.meta,
        };
        let in_flight = self.shared.endpoints.counts_in_flight().then(|| {
            selection::InFlight::start(Arc::clone(self.shared.endpoints.slot_arc(choice.index)))
        });
        match span.in_scope(|| request.body.dispatch(carrier)) {
            Ok(future) => ResponseFuture::call(future.instrument(span), in_flight),
            Err(error) => ResponseFuture::failed(error),
        }
    }
}

type BoxCall = Pin<Box<dyn Future<Output = Result<EtcdResponse, EtcdError>> + Send>>;

/// The future of a [`Transport`] call: either a call under way, or an
/// error found before anything was sent.
#[pin_project::pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture {
    #[pin]
    state: State,
    /// Counts the call on its endpoint while it lives, for a selection
    /// policy that reads the load.
    in_flight: Option<selection::InFlight>,
}

#[pin_project::pin_project(project = StateProj)]
enum State {
    Call(#[pin] tracing::instrument::Instrumented<BoxCall>),
    Failed(Option<EtcdError>),
}

impl ResponseFuture {
    fn call(
        future: tracing::instrument::Instrumented<BoxCall>,
        in_flight: Option<selection::InFlight>,
    ) -> Self {
        ResponseFuture {
            state: State::Call(future),
            in_flight,
        }
    }

    fn failed(error: EtcdError) -> Self {
        ResponseFuture {
            state: State::Failed(Some(error)),
            in_flight: None,
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Call(future) => {
                let output = std::task::ready!(future.poll(cx));
                // Answered: the call no longer loads its endpoint.
                this.in_flight.take();
                Poll::Ready(output)
            }
            StateProj::Failed(error) => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                EtcdError::client(
                    ErrorKind::InvalidRequest,
                    "ResponseFuture polled after completion",
                )
            }))),
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
