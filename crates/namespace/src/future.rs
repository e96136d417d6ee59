//! The namespace service's response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use etcd_tower_core::{EtcdError, EtcdResponse};
use pin_project::pin_project;

use crate::keys::Prefix;
use crate::response::strip_response_mut;

/// Response future of [`Namespace`](crate::Namespace): the inner service's
/// future with the prefix stripped from its answer, or the refusal of a
/// request the layer would not send. No allocation: unary answers are
/// rewritten in place, streams are wrapped once when they open.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F> {
    #[pin]
    kind: Kind<F>,
}

#[pin_project(project = KindProj)]
#[derive(Debug)]
enum Kind<F> {
    /// The inner call; its answer is stripped when `prefix` is set (it is
    /// not for the empty prefix).
    Inner {
        #[pin]
        future: F,
        prefix: Option<Prefix>,
    },
    /// The request was refused before reaching the inner service.
    Refused { error: Option<EtcdError> },
}

impl<F> ResponseFuture<F> {
    /// Strips `prefix` from the answer of `future`.
    pub(crate) fn strip(future: F, prefix: Prefix) -> Self {
        ResponseFuture {
            kind: Kind::Inner {
                future,
                prefix: Some(prefix),
            },
        }
    }

    /// The answer of `future`, unchanged (the empty prefix).
    pub(crate) fn passthrough(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner {
                future,
                prefix: None,
            },
        }
    }

    /// Fails with `error` without calling the inner service.
    pub(crate) fn refused(error: EtcdError) -> Self {
        ResponseFuture {
            kind: Kind::Refused { error: Some(error) },
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<EtcdResponse, EtcdError>>,
{
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, prefix } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(prefix) = prefix.as_ref() {
                    strip_response_mut(&mut response.body, prefix);
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Refused { error } => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                EtcdError::client(
                    etcd_tower_core::ErrorKind::Closed,
                    "the namespace response future was polled after it completed",
                )
            }))),
        }
    }
}
