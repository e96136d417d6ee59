//! Ordering layer for etcd-tower: serializable reads never go back in
//! revision.
//!
//! # Why
//!
//! A serializable read (`RangeRequest { serializable: true, .. }`) is
//! answered by whichever member gets it, from its own store, without
//! asking the leader: cheap, and available without a quorum, but a member
//! that is behind (partitioned, slow, just restarted, or a gRPC proxy's
//! cache) answers with old data. A client that wrote at revision 12 and
//! then reads at revision 5 sees time go backwards: its own write is gone,
//! a key it deleted is back. etcd's Go client offers the remedy as a
//! wrapper (`client/v3/ordering`); [`OrderingLayer`] is that wrapper as a
//! tower layer:
//!
//! * **It remembers how far the cluster has come.** Every answer's header
//!   carries the revision of the member's store; the layer keeps the
//!   highest one seen, in one atomic shared by every service the layer
//!   builds and their clones. Writes, linearizable reads, leases, status
//!   and the messages of Watch, LeaseKeepAlive and Observe streams all
//!   raise it.
//! * **It checks only what can be stale.** A read answered from a
//!   member's local store (the server's own rule, `isTxnReadonly` and
//!   `isTxnSerializable` in etcd's `v3_server.go`) below the highest
//!   revision seen *when it was sent* is an order violation:
//!
//!   | request | checked |
//!   |---|---|
//!   | Range with `serializable = true` | yes |
//!   | Txn whose every operation, in both branches, is a Range with `serializable = true` (or that has none) | yes: it writes nothing, so it is as safe to send again as a Range |
//!   | any other Range or Txn (linearizable, or with a put, a delete, a nested txn) | no: it goes through raft or ReadIndex, and cannot be behind |
//!   | every other RPC, and streams | no: they only raise the highest revision (a watch replays history from the revision it asks for) |
//!
//!   Go's wrapper checks every Get and Txn, and resends a Txn only when
//!   the branch taken was read-only; following the server's rule checks
//!   exactly what can be stale, and resends only what cannot write.
//! * **It does what you chose** ([`OnViolation`]): by default
//!   ([`OnViolation::Retry`]) it sends the read again, at most a few times,
//!   to a member the call has not tried: the call carries a
//!   [`TriedEndpoints`], as the retry layer's calls do, and the transport
//!   skips the members it lists. Go's wrapper leaves this to round-robin;
//!   here the member that answered stale is not asked again while another
//!   one has not been tried. Or ([`OnViolation::Error`]) it fails the call
//!   with a [`StaleRead`] error, so the caller can read linearizably
//!   instead, or wait.
//!
//! A stale answer is refused, never returned: what the caller gets is at
//! or above every revision the client had seen when it sent the read. A
//! read that cannot be sent again (aimed at one endpoint with
//! `request.meta.endpoint`, or a request that cannot be copied) fails with
//! the [`StaleRead`] error whatever the policy.
//!
//! # Where it goes in a stack
//!
//! Between the whole-call timeout and the retry layer (the facade's
//! [layer order](../etcd_tower/index.html#layer-order) is the one
//! description of the stack): its resends then count against the call's
//! deadline, each resend is an ordinary call for the retry layer (which
//! retries transient failures and keeps the call's `TriedEndpoints`), and
//! a metrics layer above counts one call, not its resends. Every stack of
//! one client should be built from the same layer (or clones of it), so
//! that all of them share one highest revision.
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(metrics)
//!     .layer(TimeoutLayer::new(total))
//!     .layer(OrderingLayer::new())                  // stale serializable reads are sent again
//!     .layer(RetryLayer::new())
//!     .layer(TimeoutLayer::new(each).per_attempt())
//!     .layer(auth)
//!     .service(transport)
//! ```
//!
//! # Cost
//!
//! Every answer costs an atomic `fetch_max`; a stream, one allocation when
//! it opens (its messages are observed through a wrapper). A serializable
//! read sent after some revision was seen also keeps a copy of its request
//! and a clone of the inner service for a resend (not under
//! [`OnViolation::Error`]). The inner service must be `Clone`.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
//! use std::sync::Arc;
//!
//! use etcd_tower_core::proto::etcdserverpb::{PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader};
//! use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody};
//! use etcd_tower_ordering::{OnViolation, OrderingLayer, StaleRead};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), EtcdError> {
//! // Stands in for a transport over two members: writes are at revision
//! // 12, and the first serializable read meets a member still at 5.
//! let reads = Arc::new(AtomicI64::new(0));
//! let transport = tower::service_fn({
//!     let reads = reads.clone();
//!     move |request: EtcdRequest| {
//!         let header = |revision| Some(ResponseHeader { revision, ..Default::default() });
//!         let body = match request.body {
//!             RequestBody::Put(_) => ResponseBody::Put(PutResponse { header: header(12), ..Default::default() }),
//!             _ => {
//!                 let revision = if reads.fetch_add(1, AtomicOrdering::SeqCst) == 0 { 5 } else { 12 };
//!                 ResponseBody::Range(RangeResponse { header: header(revision), ..Default::default() })
//!             }
//!         };
//!         std::future::ready(Ok::<_, EtcdError>(EtcdResponse::new(body)))
//!     }
//! });
//! let layer = OrderingLayer::new();
//! let client = ServiceBuilder::new().layer(layer.clone()).service(transport.clone());
//!
//! let put = PutRequest { key: "k".into(), value: "v".into(), ..Default::default() };
//! client.clone().oneshot(EtcdRequest::new(put)).await?;
//! assert_eq!(layer.highest_revision(), 12);
//!
//! let get = || EtcdRequest::new(RangeRequest { key: "k".into(), serializable: true, ..Default::default() });
//! let range = RangeResponse::try_from(client.oneshot(get()).await?)?;
//! assert_eq!(range.header.map(|h| h.revision), Some(12)); // the stale answer was sent again
//! assert_eq!(reads.load(AtomicOrdering::SeqCst), 2);
//!
//! // The same client's view, failing instead of resending:
//! reads.store(0, AtomicOrdering::SeqCst);
//! let strict = ServiceBuilder::new()
//!     .layer(layer.on_violation(OnViolation::Error))
//!     .service(transport);
//! let error = strict.oneshot(get()).await.unwrap_err();
//! let stale = StaleRead::of(&error).expect("a stale read");
//! assert_eq!((stale.revision(), stale.highest_seen()), (5, 12));
//! assert!(error.to_string().contains("answered at revision 5, behind revision 12"), "{error}");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod error;
pub mod future;
mod header;
mod highest;
mod layer;
mod policy;
mod serializable;
mod stream;

use std::task::{Context, Poll};

use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse, TriedEndpoints};
use tower_service::Service;

use crate::error::Reason;
use crate::future::{Check, Resend};
use crate::highest::HighestRevision;
use crate::serializable::is_serializable_read;

pub use error::StaleRead;
pub use future::ResponseFuture;
pub use layer::OrderingLayer;
pub use policy::{OnViolation, DEFAULT_ATTEMPTS};

/// Checks the serializable reads of the inner service against the highest
/// revision seen; see the [crate docs](crate).
///
/// The inner service must be `Clone`: a resend goes to a clone, polled
/// ready first.
#[derive(Clone, Debug)]
pub struct Ordering<S> {
    inner: S,
    highest: HighestRevision,
    policy: OnViolation,
}

impl<S> Ordering<S> {
    /// Wraps `inner` with the default policy and nothing seen yet. Use an
    /// [`OrderingLayer`] to share the highest revision between stacks.
    pub fn new(inner: S) -> Self {
        Ordering::with_policy(inner, OnViolation::default())
    }

    /// Wraps `inner` with `policy` and nothing seen yet.
    pub fn with_policy(inner: S, policy: OnViolation) -> Self {
        Ordering::from_parts(inner, HighestRevision::default(), policy)
    }

    pub(crate) fn from_parts(inner: S, highest: HighestRevision, policy: OnViolation) -> Self {
        Ordering {
            inner,
            highest,
            policy,
        }
    }

    /// The policy.
    pub fn policy(&self) -> OnViolation {
        self.policy
    }

    /// The highest header revision seen so far (shared with clones and
    /// with every service of the same [`OrderingLayer`]); 0 before the
    /// first answer.
    pub fn highest_revision(&self) -> i64 {
        self.highest.get()
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

impl<S> Service<EtcdRequest> for Ordering<S>
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
        // The floor is what was known when the read was sent (as in Go's
        // wrapper): an answer racing a write that raised the highest
        // revision meanwhile is not stale.
        let floor = self.highest.get();
        let check = (floor > 0 && is_serializable_read(&request.body)).then(|| {
            let attempts = self.policy.attempts();
            let resend = if attempts == 0 {
                Resend::Impossible(Reason::Policy)
            } else if request.meta.endpoint.is_some() {
                Resend::Impossible(Reason::Targeted)
            } else {
                // Where the attempts went, so that a resend goes elsewhere:
                // the retry layer's mechanism, and shared with it, above or
                // below: each keeps a `tried` it finds.
                if request.meta.tried.is_none() {
                    request.meta.tried = Some(TriedEndpoints::new());
                }
                match request.try_clone() {
                    Some(copy) => Resend::Possible {
                        service: self.inner.clone(),
                        request: Some(copy),
                    },
                    None => Resend::Impossible(Reason::NotCloneable),
                }
            };
            Check::new(request.rpc(), floor, attempts, resend)
        });
        ResponseFuture::new(self.inner.call(request), self.highest.clone(), check)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
