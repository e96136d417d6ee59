//! The future of a [`Retry`](crate::Retry) call.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::policy::{Config, Session};

/// What the futures of one [`Retry`](crate::Retry) service share: a clone
/// of the inner service, never polled ready, to clone again for a call's
/// retries, and the policy's settings.
pub(crate) struct Shared<S> {
    /// In a mutex only so that the futures stay `Send` for a service that
    /// is `Send` but not `Sync`; locked only to clone, when a call is
    /// retried.
    service: Mutex<S>,
    config: Arc<Config>,
}

impl<S> Shared<S> {
    pub(crate) fn new(service: S, config: Arc<Config>) -> Self {
        Shared {
            service: Mutex::new(service),
            config,
        }
    }
}

impl<S: Clone> Shared<S> {
    fn service(&self) -> S {
        self.service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<S> std::fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The future of a [`Retry`](crate::Retry) call: the attempt under way, and
/// what a retry needs. It follows `tower::retry::Retry`'s future: after a
/// failure the policy decides, the backoff is waited, then a clone of the
/// inner service is polled ready and the copy of the request sent on it.
///
/// The common path (the first attempt answers) holds only the attempt, the
/// copy of the request and a shared reference: the session of a call that
/// is retried, with its service clone, is boxed when the first retry is
/// decided.
#[pin_project::pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    #[pin]
    state: State<S::Future>,
    shared: Arc<Shared<S>>,
    /// The copy of the request for the next attempt; `None` for a
    /// bidirectional stream, which is never retried.
    request: Option<EtcdRequest>,
    /// When the first attempt was made.
    started: Instant,
    /// The session, once a retry was decided.
    retrying: Option<Box<Retrying<S>>>,
}

/// A call that is being retried.
struct Retrying<S> {
    session: Session,
    /// The clone the retries are sent on, taken at the first retry.
    service: S,
}

#[pin_project::pin_project(project = StateProj)]
enum State<F> {
    /// An attempt is under way.
    Called {
        #[pin]
        future: F,
    },
    /// Backing off before the next attempt.
    Waiting { sleep: Pin<Box<Sleep>> },
    /// Waiting for the clone to be ready, then sending.
    Retrying,
}

impl<S> ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    pub(crate) fn new(
        future: S::Future,
        shared: Arc<Shared<S>>,
        request: Option<EtcdRequest>,
        started: Instant,
    ) -> Self {
        ResponseFuture {
            state: State::Called { future },
            shared,
            request,
            started,
            retrying: None,
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone,
{
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let result = ready!(future.poll(cx));
                    let Some(request) = this.request.as_ref() else {
                        return Poll::Ready(result);
                    };
                    let sleep = match this.retrying.as_mut() {
                        Some(retrying) => {
                            this.shared
                                .config
                                .decide(&mut retrying.session, request, &result)
                        }
                        None => {
                            let mut session = Session::started_at(*this.started);
                            let sleep = this.shared.config.decide(&mut session, request, &result);
                            if sleep.is_some() {
                                *this.retrying = Some(Box::new(Retrying {
                                    session,
                                    service: this.shared.service(),
                                }));
                            }
                            sleep
                        }
                    };
                    match sleep {
                        Some(sleep) => this.state.set(State::Waiting {
                            sleep: Box::pin(sleep),
                        }),
                        None => return Poll::Ready(result),
                    }
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state.set(State::Retrying);
                }
                StateProj::Retrying => {
                    let (Some(retrying), Some(request)) =
                        (this.retrying.as_mut(), this.request.take())
                    else {
                        // Unreachable: a retry is decided only with both.
                        return Poll::Ready(Err(EtcdError::client(
                            etcd_tower_core::ErrorKind::InvalidRequest,
                            "retry ResponseFuture in an inconsistent state",
                        )));
                    };
                    if let Poll::Ready(ready) = retrying.service.poll_ready(cx) {
                        ready?;
                    } else {
                        *this.request = Some(request);
                        return Poll::Pending;
                    }
                    *this.request = request.try_clone();
                    // The layers below (the transport's `etcd_call` span)
                    // open their spans inside this one: which attempt.
                    let attempt = retrying.session.attempts() + 1;
                    let future = tracing::debug_span!("etcd_retry", attempt)
                        .in_scope(|| retrying.service.call(request));
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
        f.debug_struct("ResponseFuture")
            .field("retrying", &self.retrying.is_some())
            .finish_non_exhaustive()
    }
}
