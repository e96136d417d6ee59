//! Retry layer for etcd-tower: retries only what is safe to retry.
//!
//! # Why
//!
//! Members restart, leaders change, connections break: most failures of a
//! healthy cluster last less than a second, and a client that surfaces each
//! of them pushes the same retry loop into every caller. But a retry is
//! only safe when it cannot apply a write twice. [`RetryLayer`] retries
//! exactly what is safe, decided from the error's
//! [`Sent`](etcd_tower_core::Sent) and the RPC's retry class
//! ([`Rpc::is_idempotent`](etcd_tower_core::Rpc::is_idempotent), which
//! encodes etcd's Go client's list):
//!
//! * **Not sent**: a request that provably never left the client (no
//!   connection could be made, a deadline had passed before the call) is
//!   sent again, writes included. Client-side validation errors (empty
//!   key, too large, invalid TTL, too many ops, duplicate key, invalid
//!   request or endpoint, no endpoints) are "not sent" too, but would fail
//!   again: they are surfaced at once.
//! * **Transient failures of repeatable RPCs** (reads, lease grant/revoke,
//!   alarms, member list, status, ...): `Unavailable` answers (no leader,
//!   leader changed, stopped, request timed out, unhealthy), too many
//!   requests, a lost connection, a per-attempt timeout.
//! * **Never a write that may have been applied.** A Put, DeleteRange,
//!   Txn, Compact (or any other non-repeatable RPC) whose connection broke
//!   after sending, or that timed out, is surfaced *as it is*: its
//!   [`sent()`](etcd_tower_core::EtcdError::sent) is
//!   [`Sent::MayHaveBeenApplied`](etcd_tower_core::Sent), its kind says
//!   what happened (`ConnectionLost`, `Timeout`, `ServerTimeout`, ...) and
//!   its `Display` says `sent, may have been applied`. Only the caller can
//!   tell whether repeating it is right (read it back, or use a txn guarded
//!   on the key's revision).
//! * **Streams.** A bidirectional request (Watch, LeaseKeepAlive) cannot be
//!   cloned, so this layer never retries it: the watch engine and the lease
//!   keep-alive reopen their own streams, from where they left off. A
//!   server-streaming RPC (Snapshot, Observe) is retried like a unary one
//!   while it *opens*; once open, errors arrive in the stream and are the
//!   consumer's.
//!
//! See [`classify`] for the full table. Between attempts the layer waits
//! an exponential backoff with jitter (25 ms, doubling up to 500 ms, +10 %),
//! for at most 5 attempts within 10 s, within a retry budget shared by all
//! calls ([`EtcdRetryPolicy`]). Each retry counts in the
//! `etcd_retries_total` counter.
//!
//! The layer works as `tower::retry::Retry` with [`EtcdRetryPolicy`] (it
//! does not clone the inner service and the policy for every call, see
//! [`Retry`]): each new attempt goes to a
//! clone of the inner service, polled ready first (backpressure holds for
//! retries too). With the transport below, a clone picks its endpoint
//! when it is polled ready, and skips endpoints that recently failed: the
//! next attempt goes to another member.
//!
//! # Where it goes in a stack
//!
//! Below the metrics layer and the whole-call timeout, above a per-attempt
//! timeout, the auth layer and the transport: the facade's
//! [layer order](../etcd_tower/index.html#layer-order) is the one
//! description of the stack, and says why. What it means for this layer:
//! each attempt it sends carries the auth layer's current token and may go
//! to another member; the auth layer's own "token expired, log in, send
//! again" happens inside one attempt and is not a retry here; and the
//! callers' calls are counted above it, its retries by
//! `etcd_retries_total{service, rpc, kind}`.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::{Arc, OnceLock};
//! use std::time::Duration;
//!
//! use etcd_tower_core::proto::etcdserverpb::{PutRequest, PutResponse};
//! use etcd_tower_core::{Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, ResponseBody, Sent};
//! use etcd_tower_retry::RetryLayer;
//! use etcd_tower_timeout::TimeoutLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), EtcdError> {
//! // Stands in for the transport: the first attempt finds no member to
//! // connect to (provably not sent), the second succeeds.
//! let attempts = Arc::new(AtomicU32::new(0));
//! let transport = tower::service_fn({
//!     let attempts = attempts.clone();
//!     move |_: EtcdRequest| {
//!         let n = attempts.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             match n {
//!                 0 => Err(EtcdError::new(ErrorKind::Connect, Code::Unavailable, "refused", Sent::NotSent)),
//!                 _ => Ok(EtcdResponse::new(ResponseBody::Put(PutResponse::default()))),
//!             }
//!         }
//!     }
//! });
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new())
//!     .layer(TimeoutLayer::new(Duration::from_secs(2)).per_attempt()) // per attempt
//!     .service(transport);
//!
//! let put = PutRequest { key: "k".into(), value: "v".into(), ..Default::default() };
//! client.oneshot(EtcdRequest::new(put)).await?; // a put, yet retried: it was never sent
//! assert_eq!(attempts.load(Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod backoff;
mod classify;
pub mod future;
mod layer;
mod policy;

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse, TriedEndpoints};
use tower_service::Service;

pub use classify::{classify, is_transient, RetryReason};
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::{
    EtcdRetryPolicy, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_JITTER,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_ELAPSED,
};

/// Retries failed calls of the inner service when that is safe; see the
/// [crate docs](crate).
///
/// The inner service must be `Clone`: each retry is sent on a clone, after
/// polling that clone ready.
///
/// # Cost
///
/// Like `tower::retry::Retry` (whose [`Policy`](tower::retry::Policy) it
/// follows, see [`EtcdRetryPolicy`]), but without cloning the inner service
/// and the policy for every call: a call that is not retried costs a copy
/// of its request (kept for a retry), a clock read (the start of the
/// retry time bound) and a reference-count bump. The clone a retry is
/// sent on is taken from a copy of the inner service made once, at the
/// first call or clone (and again after [`get_mut`](Retry::get_mut)), rather than
/// from the service at the time of the call; the two differ only for a
/// service whose clones copy mutable state, which the etcd-tower layers
/// and the transport do not have (their clones share it, and a clone is
/// never ready before it is polled).
#[derive(Debug)]
pub struct Retry<S> {
    inner: S,
    policy: EtcdRetryPolicy,
    /// What every call's future shares: a clone of `inner` for retries and
    /// the policy's settings. Made at the first call or clone, and shared
    /// with clones (a client that clones the stack for every call does not
    /// make one per call); empty again after `get_mut`, so that retries see
    /// the changed service.
    shared: OnceLock<Arc<future::Shared<S>>>,
}

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            shared: OnceLock::from(Arc::clone(self.shared())),
        }
    }
}

impl<S> Retry<S> {
    /// Wraps `inner` with the default policy.
    pub fn new(inner: S) -> Self {
        Retry::with_policy(inner, EtcdRetryPolicy::new())
    }

    /// Wraps `inner` with a policy (as configured by a [`RetryLayer`]).
    pub fn with_policy(inner: S, policy: EtcdRetryPolicy) -> Self {
        Retry {
            inner,
            policy,
            shared: OnceLock::new(),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. Retries of later calls go to clones of
    /// the service as changed.
    pub fn get_mut(&mut self) -> &mut S {
        self.shared = OnceLock::new();
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn shared(&self) -> &Arc<future::Shared<S>>
    where
        S: Clone,
    {
        self.shared.get_or_init(|| {
            Arc::new(future::Shared::new(
                self.inner.clone(),
                Arc::clone(self.policy.config()),
            ))
        })
    }
}

impl<S> Service<EtcdRequest> for Retry<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone,
{
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: EtcdRequest) -> ResponseFuture<S> {
        // A call that may be repeated after it was sent records where its
        // attempts went, so that a retry goes to another member than the
        // one that timed out or failed (see `etcd_tower_core::TriedEndpoints`).
        if request.rpc().is_idempotent()
            && request.meta.endpoint.is_none()
            && request.meta.tried.is_none()
        {
            request.meta.tried = Some(TriedEndpoints::new());
        }
        // As `tower::retry::Retry`: the copy for a retry is taken before the
        // call (`None` for a bidirectional stream: never retried), and the
        // retry clock starts now.
        let started = tokio::time::Instant::now();
        let retry = request.try_clone();
        let shared = Arc::clone(self.shared());
        ResponseFuture::new(self.inner.call(request), shared, retry, started)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
