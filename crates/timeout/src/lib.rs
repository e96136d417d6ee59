//! Timeout layer for etcd-tower: per-request deadlines.
//!
//! # Why
//!
//! A frozen member (a stopped process, a partitioned host) keeps its TCP
//! connection open and answers nothing; without a deadline a call to it
//! waits for as long as HTTP/2 keepalive takes to notice, or forever.
//! [`TimeoutLayer`] bounds every call, so that the caller (or the retry
//! layer above) gets control back and can go elsewhere.
//!
//! * **Per call.** The layer has a default deadline; a request overrides it
//!   with a [`CallTimeout`] in `request.meta.extensions` (an
//!   [`AttemptTimeout`] for a per-attempt layer), and
//!   [`CallTimeout::NONE`] turns it off for that call (a long-lived stream,
//!   a Snapshot of a large database, a lock that waits for its holder).
//! * **Streams.** For a streaming RPC (Watch, LeaseKeepAlive, Snapshot,
//!   Observe) the deadline covers opening the stream *and its first
//!   message*, then the stream runs freely: a watch lives for hours, but
//!   "did the server take my stream and answer" must be bounded. A watch or
//!   keep-alive stream answers only after the client sends its first
//!   request, so send it right away (or open such streams with
//!   [`CallTimeout::NONE`]). A deadline that passes before the first
//!   message ends the stream with a timeout error and drops (cancels) it.
//! * **The error.** [`ErrorKind::Timeout`](etcd_tower_core::ErrorKind),
//!   gRPC code `DeadlineExceeded`, and a message that says the deadline
//!   passed and at which stage. Once the call was made its outcome is
//!   unknown, so [`EtcdError::sent`](etcd_tower_core::EtcdError::sent) is
//!   [`Sent::MayHaveBeenApplied`](etcd_tower_core::Sent) — for read-only
//!   RPCs too, where it only means "sent, no answer" and is harmless (one
//!   rule instead of two; the retry layer retries reads whatever the
//!   value). A deadline of zero, or one that had passed before the call,
//!   fails at once without calling the inner service:
//!   [`Sent::NotSent`](etcd_tower_core::Sent).
//! * **Readiness is not timed** (as in tower's own `Timeout`): `poll_ready`
//!   has no request, hence no [`CallTimeout`] to apply, and an error from
//!   `poll_ready` means "this service is broken" in tower, not "this call
//!   was slow". The deadline starts at `call`. The transport's readiness is
//!   a channel slot, not a connection, so this leaves nothing slow
//!   unbounded in practice: connecting happens inside the call, under the
//!   deadline.
//!
//! # Where it goes in a stack
//!
//! Above the retry layer it bounds the whole call, retries included; a
//! request overrides it with a [`CallTimeout`]. Under the retry layer,
//! built with [`TimeoutLayer::per_attempt`], it bounds each attempt and a
//! request overrides it with an [`AttemptTimeout`]: an attempt stuck on a
//! frozen member times out, and the retry layer sends the next attempt
//! (reads only; a write that may have been applied is never repeated) to
//! a member the call has not tried yet (the retry layer gives the call an
//! `etcd_tower_core::TriedEndpoints` that the transport follows). The two
//! overrides are distinct types so that one request can set both, and so
//! that a call that must wait (a lock, a campaign) can turn both off.
//! Both layers can be used together:
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(metrics)                               // what callers see, one count per call
//!     .layer(TimeoutLayer::new(total))              // the whole call, retries included
//!     .layer(RetryLayer::new())                     // repeats what is safe to repeat
//!     .layer(TimeoutLayer::new(each).per_attempt()) // each attempt
//!     .layer(auth)                                  // token; refresh-and-resend inside one attempt
//!     .service(transport)
//! ```
//!
//! Keep the per-attempt deadline above the transport's connect timeout
//! (2 s by default) for writes: the transport tries the next endpoint when
//! a connection cannot be made, which it can report as "not sent" (so a
//! write may be retried); a deadline that cuts that short can only say "may
//! have been applied".
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use etcd_tower_core::proto::etcdserverpb::RangeRequest;
//! use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, EtcdResponse, Sent};
//! use etcd_tower_timeout::{CallTimeout, TimeoutLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // Stands in for a transport whose member is frozen: it never answers.
//! let frozen = tower::service_fn(|_: EtcdRequest| {
//!     std::future::pending::<Result<EtcdResponse, EtcdError>>()
//! });
//! let client = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(5)))
//!     .service(frozen);
//!
//! let mut get = EtcdRequest::new(RangeRequest { key: "k".into(), ..Default::default() });
//! get.meta.extensions.insert(CallTimeout(Duration::from_millis(100))); // this call only
//! let error = client.oneshot(get).await.unwrap_err();
//! assert_eq!(error.kind(), &ErrorKind::Timeout);
//! assert_eq!(error.sent(), Sent::MayHaveBeenApplied);
//! assert!(error.message().contains("deadline passed"), "{error}");
//! # }
//! ```
#![deny(missing_docs)]

mod call_timeout;
mod error;
pub mod future;
mod layer;
mod stream;

use std::task::{Context, Poll};
use std::time::Duration;

use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse};
use tower_service::Service;

pub use call_timeout::{AttemptTimeout, CallTimeout};
pub use future::ResponseFuture;
pub use layer::TimeoutLayer;

/// Applies a deadline to each call of the inner service; see the
/// [crate docs](crate).
#[derive(Clone, Copy, Debug)]
pub struct Timeout<S> {
    inner: S,
    default: Option<Duration>,
    scope: Scope,
}

/// What a [`Timeout`] bounds, hence which override it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole call ([`CallTimeout`]).
    Call,
    /// One attempt ([`AttemptTimeout`]).
    Attempt,
}

impl<S> Timeout<S> {
    /// Wraps `inner`: calls get `timeout` unless they carry a
    /// [`CallTimeout`].
    pub const fn new(inner: S, timeout: Duration) -> Self {
        Timeout {
            inner,
            default: Some(timeout),
            scope: Scope::Call,
        }
    }

    /// Wraps `inner` with an optional default deadline (`None`: only calls
    /// that carry a [`CallTimeout`] get one).
    pub const fn with_default(inner: S, default: Option<Duration>) -> Self {
        Timeout {
            inner,
            default,
            scope: Scope::Call,
        }
    }

    /// The default deadline, `None` when there is none.
    pub const fn default_timeout(&self) -> Option<Duration> {
        self.default
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<EtcdRequest> for Timeout<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = ResponseFuture<S::Future>;

    /// Waits for the inner service, without a deadline (see the crate
    /// docs for why).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: EtcdRequest) -> Self::Future {
        let rpc = request.rpc();
        let given = match self.scope {
            Scope::Call => CallTimeout::of(&request).map(CallTimeout::duration),
            Scope::Attempt => AttemptTimeout::of(&request).map(AttemptTimeout::duration),
        };
        let timeout = given.unwrap_or(self.default);
        if timeout == Some(Duration::ZERO) {
            return ResponseFuture::expired(rpc, Duration::ZERO, self.scope);
        }
        ResponseFuture::called(self.inner.call(request), rpc, timeout, self.scope)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
