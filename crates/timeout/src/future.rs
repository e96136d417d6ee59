//! The future of a [`Timeout`](crate::Timeout) call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_tower_core::{ErrorKind, EtcdError, EtcdResponse, Rpc};
use tokio::time::Sleep;

use crate::error::{elapsed, Stage};
use crate::stream::until_first_message;
use crate::Scope;

/// The future of a [`Timeout`](crate::Timeout) call: the inner call raced
/// against a pinned [`Sleep`], or an error when the deadline had passed
/// before the call could be made.
#[pin_project::pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<F> {
    #[pin]
    state: State<F>,
}

#[pin_project::pin_project(project = StateProj)]
enum State<F> {
    /// The call is under way. `sleep` is `None` when there is no deadline.
    Called {
        #[pin]
        response: F,
        #[pin]
        sleep: Option<Sleep>,
        rpc: Rpc,
        timeout: Duration,
        scope: Scope,
    },
    /// The deadline had passed before the call; it was not made.
    Expired(Option<EtcdError>),
}

impl<F> ResponseFuture<F> {
    pub(crate) fn called(response: F, rpc: Rpc, timeout: Option<Duration>, scope: Scope) -> Self {
        let sleep = timeout.and_then(|t| {
            // A deadline past the end of time is no deadline.
            tokio::time::Instant::now()
                .checked_add(t)
                .map(tokio::time::sleep_until)
        });
        ResponseFuture {
            state: State::Called {
                response,
                sleep,
                rpc,
                timeout: timeout.unwrap_or(Duration::MAX),
                scope,
            },
        }
    }

    pub(crate) fn expired(rpc: Rpc, timeout: Duration, scope: Scope) -> Self {
        ResponseFuture {
            state: State::Expired(Some(elapsed(rpc, timeout, scope, Stage::BeforeCall))),
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<EtcdResponse, EtcdError>>,
{
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called {
                response,
                mut sleep,
                rpc,
                timeout,
                scope,
            } => {
                // The answer first: one that is ready wins over a deadline
                // that passed at the same time.
                if let Poll::Ready(result) = response.poll(cx) {
                    return Poll::Ready(result.map(|mut response| {
                        if let Some(sleep) = sleep.as_ref().as_pin_ref() {
                            if rpc.is_streaming() {
                                response.body = until_first_message(
                                    response.body,
                                    sleep.deadline(),
                                    *timeout,
                                    *scope,
                                );
                            }
                        }
                        response
                    }));
                }
                match sleep.as_mut().as_pin_mut() {
                    Some(sleep) => match sleep.poll(cx) {
                        Poll::Ready(()) => {
                            Poll::Ready(Err(elapsed(*rpc, *timeout, *scope, Stage::Answer)))
                        }
                        Poll::Pending => Poll::Pending,
                    },
                    None => Poll::Pending,
                }
            }
            StateProj::Expired(error) => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                EtcdError::client(
                    ErrorKind::InvalidRequest,
                    "timeout ResponseFuture polled after completion",
                )
            }))),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("ResponseFuture");
        match &self.state {
            State::Called {
                sleep,
                rpc,
                timeout,
                ..
            } => s
                .field("rpc", rpc)
                .field("timeout", &sleep.as_ref().map(|_| timeout))
                .finish_non_exhaustive(),
            State::Expired(error) => s.field("expired", error).finish(),
        }
    }
}
