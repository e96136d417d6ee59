//! The future of an [`Auth`](crate::Auth) call.
//!
//! The common path (a token is at hand, the call succeeds) is the inner
//! service's future plus a few words of state: no allocation beyond what
//! the inner service does. Only the rare paths (log in first, or refresh
//! after a rejection and send again) are boxed: they await a shared lock,
//! an `Authenticate` call and a second call, and are taken once per token
//! lifetime, not once per call.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use etcd_tower_core::signal::TokenGeneration;
use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse, Sent};
use pin_project::pin_project;
use tower_service::Service;

use crate::stream::watch_streams;
use crate::token::{is_token_error, Shared, Why};

/// A boxed slow path.
type Slow = Pin<Box<dyn Future<Output = Result<EtcdResponse, EtcdError>> + Send + 'static>>;

/// Response future of [`Auth`](crate::Auth).
#[pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<S>
where
    S: Service<EtcdRequest>,
{
    #[pin]
    state: State<S>,
}

// The common path (`Sent`) keeps the request copy inline on purpose:
// boxing it would allocate on every call to save bytes on the rare one.
#[allow(clippy::large_enum_variant)]
#[pin_project(project = StateProj)]
enum State<S>
where
    S: Service<EtcdRequest>,
{
    /// Sent with the token at hand. `attempt` is `None` for calls the layer
    /// passes through untouched (`Authenticate` itself).
    Sent {
        #[pin]
        future: S::Future,
        attempt: Option<Attempt<S>>,
    },
    /// Logging in (or refreshing) first, then sending.
    Slow { future: Slow },
}

/// What the calls of one [`Auth`](crate::Auth) service share for a refresh
/// and a second try.
pub(crate) struct Spare<S> {
    pub(crate) shared: Arc<Shared>,
    /// A clone of the inner service, never polled ready: a second try
    /// clones it and polls that clone ready. In a mutex only so that the
    /// futures stay `Send` for a service that is `Send` but not `Sync`; it
    /// is locked only to clone, on the rare path.
    pub(crate) service: Mutex<S>,
}

impl<S: Clone> Spare<S> {
    /// A clone of the inner service, for a second try.
    pub(crate) fn service(&self) -> S {
        self.service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the common path keeps to finish the call, or to refresh and send
/// again once.
pub(crate) struct Attempt<S> {
    pub(crate) spare: Arc<Spare<S>>,
    /// A copy of the request for a second try; `None` for a bidirectional
    /// stream, whose outbound messages can be consumed only once.
    pub(crate) retry: Option<EtcdRequest>,
    /// The token generation the call was sent with.
    pub(crate) generation: u64,
    /// Whether to report that generation in the response's extensions.
    pub(crate) report: bool,
}

impl<S> ResponseFuture<S>
where
    S: Service<EtcdRequest>,
{
    pub(crate) fn sent(future: S::Future, attempt: Option<Attempt<S>>) -> Self {
        ResponseFuture {
            state: State::Sent { future, attempt },
        }
    }

    pub(crate) fn slow(future: Slow) -> Self {
        ResponseFuture {
            state: State::Slow { future },
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Sent { future, attempt } => {
                    let result = ready!(future.poll(cx));
                    let Some(attempt) = attempt.take() else {
                        return Poll::Ready(result);
                    };
                    match result {
                        Ok(response) => {
                            return Poll::Ready(Ok(finish(
                                response,
                                &attempt.spare.shared,
                                attempt.generation,
                                attempt.report,
                            )))
                        }
                        Err(error) if is_token_error(&error) => {
                            let Attempt {
                                spare,
                                retry,
                                generation,
                                report,
                            } = attempt;
                            let future = Box::pin(refresh_and_retry(
                                Arc::clone(&spare.shared),
                                spare.service(),
                                retry,
                                generation,
                                report,
                                error,
                            ));
                            this.state.set(State::Slow { future });
                        }
                        Err(error) => return Poll::Ready(Err(error)),
                    }
                }
                StateProj::Slow { future } => return future.as_mut().poll(cx),
            }
        }
    }
}

impl<S> std::fmt::Debug for ResponseFuture<S>
where
    S: Service<EtcdRequest>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Sent { .. } => "sent",
            State::Slow { .. } => "refreshing",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// Tags a successful response with the token generation it was sent with
/// (and a stream with the layer's current generation, which follows later
/// logins), and watches a stream's errors for a token rejection.
pub(crate) fn finish(
    mut response: EtcdResponse,
    shared: &Arc<Shared>,
    generation: u64,
    report: bool,
) -> EtcdResponse {
    if report {
        response.extensions.insert(TokenGeneration(generation));
    }
    if response.rpc().is_streaming() {
        response
            .extensions
            .insert(shared.current_generation().clone());
        watch_streams(&mut response, shared, generation);
    }
    response
}

/// The server rejected the token the call was sent with: get a newer one
/// (one `Authenticate` for all the calls that failed with that token) and
/// send the call once more. A rejection of the second try is returned.
///
/// A bidirectional stream cannot be sent again: its rejection is returned
/// after the refresh, so that the caller's next open carries the new token.
async fn refresh_and_retry<S>(
    shared: Arc<Shared>,
    mut service: S,
    retry: Option<EtcdRequest>,
    generation: u64,
    report: bool,
    rejection: EtcdError,
) -> Result<EtcdResponse, EtcdError>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    tracing::debug!(generation, kind = ?rejection.kind(), "etcd rejected the auth token");
    let current = shared
        .refresh(&mut service, generation, Why::Rejected)
        .await
        // The call itself was rejected, so it was not applied.
        .map_err(|error| error.with_sent(Sent::Rejected))?;
    let Some(mut request) = retry else {
        return Err(rejection);
    };
    request.meta.token = current.token;
    poll_fn(|cx| service.poll_ready(cx)).await?;
    let response = service.call(request).await?;
    Ok(finish(response, &shared, current.generation, report))
}

/// No usable token (first call, token reported stale, or a JWT near its
/// expiry): refresh, then send. A rejection now is returned: one refresh per
/// call at most.
pub(crate) async fn refresh_then_send<S>(
    shared: Arc<Shared>,
    mut service: S,
    mut request: EtcdRequest,
    seen: u64,
    why: Why,
    report: bool,
) -> Result<EtcdResponse, EtcdError>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    let current = shared
        .refresh(&mut service, seen, why)
        .await
        .map_err(|error| error.with_sent(Sent::NotSent))?;
    request.meta.token = current.token;
    poll_fn(|cx| service.poll_ready(cx)).await?;
    let response = service.call(request).await?;
    Ok(finish(response, &shared, current.generation, report))
}
