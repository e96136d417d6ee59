//! The gRPC transport: the service at the bottom of every stack.
//!
//! [`Transport`] is a `Service<EtcdRequest, Response = EtcdResponse, Error =
//! EtcdError>` over one lazily connected HTTP/2 channel per endpoint.
//!
//! * **Choosing an endpoint.** `poll_ready` picks the next healthy endpoint
//!   (round-robin) and waits until its channel can take a call: that is the
//!   transport's backpressure. An endpoint whose connection fails is skipped
//!   for a back-off period.
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
mod connector;
mod endpoint;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tonic::transport::Channel;
use tower::Service;

pub use builder::{TlsOptions, TransportBuilder, DEFAULT_MAX_SEND_SIZE};

use crate::error::{ErrorKind, EtcdError};
use crate::{EtcdRequest, EtcdResponse};
use endpoint::EndpointSet;

/// The gRPC transport service; see the [module docs](self).
///
/// Clones share the connections. Each clone keeps its own readiness, as
/// `tower` requires: a clone must be polled ready before it is called.
pub struct Transport {
    shared: Arc<Shared>,
    /// The endpoint chosen by `poll_ready`, with a channel handle that holds
    /// a slot reserved for the next call.
    ready: Option<(usize, Channel)>,
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
    /// `http://host:port` or `https://host:port`).
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

    fn from_shared(shared: Arc<Shared>) -> Self {
        Transport {
            shared,
            ready: None,
        }
    }

    /// The endpoints, as parsed.
    pub fn endpoints(&self) -> impl Iterator<Item = &http::Uri> {
        (0..self.shared.endpoints.len()).map(|i| &self.shared.endpoints.slot(i).uri)
    }
}

impl Clone for Transport {
    /// A clone shares the connections but not the readiness reserved by
    /// `poll_ready`: it must be polled ready itself.
    fn clone(&self) -> Self {
        Transport::from_shared(self.shared.clone())
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("endpoints", &self.endpoints().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Service<EtcdRequest> for Transport {
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        loop {
            let (index, channel) = self.ready.get_or_insert_with(|| {
                let index = self.shared.endpoints.pick();
                (index, self.shared.endpoints.slot(index).channel.clone())
            });
            match ready!(Service::<http::Request<tonic::body::Body>>::poll_ready(
                channel, cx
            )) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(error) => {
                    // The channel's worker is gone; try another endpoint.
                    tracing::warn!(%error, "etcd channel failed while waiting for readiness");
                    let index = *index;
                    self.shared.endpoints.mark_down(index);
                    self.ready = None;
                    if self.shared.endpoints.len() == 1 {
                        return Poll::Ready(Err(EtcdError::client(
                            ErrorKind::Closed,
                            error.to_string(),
                        )));
                    }
                }
            }
        }
    }

    fn call(&mut self, request: EtcdRequest) -> ResponseFuture {
        let Some((index, channel)) = self.ready.take() else {
            return ResponseFuture::failed(EtcdError::client(
                ErrorKind::InvalidRequest,
                "Transport::call before poll_ready returned Ready",
            ));
        };
        if let Err(error) = crate::validate::validate(&request.body, self.shared.limits.max_txn_ops)
        {
            return ResponseFuture::failed(error);
        }
        let carrier = call::Carrier {
            shared: self.shared.clone(),
            index,
            channel,
            meta: request.meta,
        };
        match request.body.dispatch(carrier) {
            Ok(future) => ResponseFuture::call(future),
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
}

#[pin_project::pin_project(project = StateProj)]
enum State {
    Call(#[pin] BoxCall),
    Failed(Option<EtcdError>),
}

impl ResponseFuture {
    fn call(future: BoxCall) -> Self {
        ResponseFuture {
            state: State::Call(future),
        }
    }

    fn failed(error: EtcdError) -> Self {
        ResponseFuture {
            state: State::Failed(Some(error)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Call(future) => future.poll(cx),
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
