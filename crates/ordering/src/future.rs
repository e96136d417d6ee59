//! The future of an [`Ordering`](crate::Ordering) call.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, EtcdResponse, Rpc};
use tower_service::Service;

use crate::error::{Reason, StaleRead};
use crate::header::header_revision;
use crate::highest::HighestRevision;
use crate::stream::observe_stream;

/// The future of an [`Ordering`](crate::Ordering) call: the inner call,
/// whose answer raises the highest revision seen; for a serializable read,
/// also the order check and, under
/// [`OnViolation::Retry`](crate::OnViolation::Retry), what a resend needs
/// (a clone of the inner service, polled ready before each resend, and a
/// copy of the request), kept inline: the future allocates nothing.
#[pin_project::pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    #[pin]
    state: State<S::Future>,
    highest: HighestRevision,
    /// `None` unless the call is a serializable read made after some
    /// revision was seen.
    check: Option<Check<S>>,
}

#[pin_project::pin_project(project = StateProj)]
enum State<F> {
    /// A call is under way.
    Called {
        #[pin]
        future: F,
    },
    /// A stale answer came; waiting for the clone to be ready to resend.
    Resending,
}

/// The order check of one serializable read.
pub(crate) struct Check<S> {
    rpc: Rpc,
    /// The highest revision seen when the read was sent: the answer must
    /// not be below it.
    floor: i64,
    /// Stale answers so far.
    stale: u32,
    /// Resends the policy still allows.
    left: u32,
    resend: Resend<S>,
}

/// Whether a stale read can be sent again.
// Inline on purpose: boxing `Possible` would allocate for every checked
// read, and the future is as large as its largest state anyway.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Resend<S> {
    /// It can: on this clone of the inner service, with this copy of the
    /// request (`None` only if a copy could not be made).
    Possible {
        service: S,
        request: Option<EtcdRequest>,
    },
    /// It cannot, for this reason.
    Impossible(Reason),
}

impl<S> Check<S> {
    pub(crate) fn new(rpc: Rpc, floor: i64, attempts: u32, resend: Resend<S>) -> Self {
        Check {
            rpc,
            floor,
            stale: 0,
            left: attempts,
            resend,
        }
    }

    /// After a stale answer at `revision`: `Ok` to resend, or the error.
    fn on_stale(&mut self, revision: i64) -> Result<(), EtcdError> {
        self.stale += 1;
        let reason = match &self.resend {
            Resend::Impossible(reason) => Some(*reason),
            Resend::Possible { .. } if self.left == 0 => Some(Reason::Policy),
            Resend::Possible { request: None, .. } => Some(Reason::NotCloneable),
            Resend::Possible { .. } => None,
        };
        match reason {
            Some(reason) => Err(
                StaleRead::new(self.rpc, revision, self.floor, self.stale, reason)
                    .into_etcd_error(),
            ),
            None => {
                self.left -= 1;
                Ok(())
            }
        }
    }
}

impl<S> ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    pub(crate) fn new(
        future: S::Future,
        highest: HighestRevision,
        check: Option<Check<S>>,
    ) -> Self {
        ResponseFuture {
            state: State::Called { future },
            highest,
            check,
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let mut response = ready!(future.poll(cx))?;
                    let revision = header_revision(&response.body);
                    if let (Some(check), Some(revision)) = (this.check.as_mut(), revision) {
                        if revision < check.floor {
                            check.on_stale(revision)?;
                            this.state.set(State::Resending);
                            continue;
                        }
                    }
                    if let Some(revision) = revision {
                        this.highest.observe(revision);
                    }
                    response.body = observe_stream(response.body, this.highest);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Resending => {
                    let Some(Check {
                        resend: Resend::Possible { service, request },
                        left,
                        ..
                    }) = this.check.as_mut()
                    else {
                        // Unreachable: a resend is decided only when possible.
                        return Poll::Ready(Err(EtcdError::client(
                            ErrorKind::InvalidRequest,
                            "ordering ResponseFuture resending without a service",
                        )));
                    };
                    ready!(service.poll_ready(cx))?;
                    let Some(next) = request.take() else {
                        return Poll::Ready(Err(EtcdError::client(
                            ErrorKind::InvalidRequest,
                            "ordering ResponseFuture resending without a request",
                        )));
                    };
                    if *left > 0 {
                        *request = next.try_clone();
                    }
                    let future = service.call(next);
                    this.state.set(State::Called { future });
                }
            }
        }
    }
}

impl<S> std::fmt::Debug for ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("ResponseFuture");
        if let Some(check) = &self.check {
            s.field("rpc", &check.rpc)
                .field("floor", &check.floor)
                .field("stale_answers", &check.stale);
        }
        s.finish_non_exhaustive()
    }
}
