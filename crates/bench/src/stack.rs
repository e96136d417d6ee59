//! The services the harness drives: the bare transport, or the full stack
//! of layers over it.
//!
//! Each kind is its own concrete type and the workload is generic over it,
//! so the comparison of bare and full measures the layers and nothing
//! else (no boxing or dynamic dispatch is added for the harness' sake).

use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use etcd_tower_auth::AuthLayer;
use etcd_tower_core::proto::etcdserverpb::{
    response_op, AuthenticateRequest, AuthenticateResponse, DeleteRangeResponse, PutResponse,
    RangeResponse, ResponseHeader, ResponseOp, TxnResponse,
};
use etcd_tower_core::proto::mvccpb::KeyValue;
use etcd_tower_core::{
    AuthToken, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody,
    Transport,
};
use etcd_tower_metrics::MetricsLayer;
use etcd_tower_namespace::NamespaceLayer;
use etcd_tower_retry::RetryLayer;
use etcd_tower_timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::args::Layers;

/// What the workload needs of a stack.
pub trait EtcdService:
    Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> EtcdService for S where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// One transport per `--conns`: each is its own HTTP/2 connection.
pub fn transports(endpoints: &[String], conns: usize) -> Result<Vec<Transport>, EtcdError> {
    (0..conns)
        .map(|_| Transport::builder(endpoints).build())
        .collect()
}

/// Logs in once, for the bare stack on a server with auth enabled: the
/// token is then sent as is, with no refresh (runs are short).
pub async fn login(
    transport: &Transport,
    user: &str,
    password: &str,
) -> Result<AuthToken, EtcdError> {
    let request = AuthenticateRequest {
        name: user.to_owned(),
        password: password.to_owned(),
    };
    let response = transport.clone().oneshot(EtcdRequest::new(request)).await?;
    AuthToken::new(&AuthenticateResponse::try_from(response)?.token)
}

/// The transport with a fixed token on every request: the bare stack on a
/// server with auth enabled.
#[derive(Clone, Debug)]
pub struct WithToken<S> {
    inner: S,
    token: AuthToken,
}

impl<S> WithToken<S> {
    pub fn new(inner: S, token: AuthToken) -> Self {
        WithToken { inner, token }
    }
}

impl<S: Service<EtcdRequest>> Service<EtcdRequest> for WithToken<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: EtcdRequest) -> S::Future {
        request.meta.token = Some(self.token.clone());
        self.inner.call(request)
    }
}

/// The layered stack, outermost first: metrics (one count per caller's
/// call), retry, a per-attempt timeout, auth (when credentials are given)
/// and the namespace, over the transport: the order the retry crate
/// documents. Layers left out of `layers` are `Either::Right` pass-throughs
/// (a branch, no other cost), so that one type serves every subset.
pub fn layered<S: EtcdService>(
    inner: S,
    layers: Layers,
    namespace: &str,
    auth: Option<&AuthLayer>,
    timeout: Duration,
) -> impl EtcdService {
    ServiceBuilder::new()
        .option_layer(layers.metrics.then(MetricsLayer::new))
        .option_layer(layers.retry.then(RetryLayer::new))
        .option_layer(
            layers
                .timeout
                .then(|| TimeoutLayer::new(timeout).per_attempt()),
        )
        .option_layer(auth.filter(|_| layers.auth).cloned())
        .option_layer(
            layers
                .namespace
                .then(|| NamespaceLayer::new(namespace.as_bytes().to_vec())),
        )
        .service(inner)
}

/// An in-process stand-in for etcd (`--mock`): each call is pending once
/// (so that the layers' futures do what they do while a real call is in
/// flight: a timeout's timer is registered, a task yields), then answers.
/// What the harness measures over it is the cost of the harness, the
/// runtime and the layers alone, without the server's noise: `--mock
/// --stack full` minus `--mock` is what the layers cost per call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mock;

/// The answer of a [`Mock`] call, after one `Pending`.
#[derive(Debug)]
pub struct MockAnswer(Option<Result<EtcdResponse, EtcdError>>, bool);

impl std::future::Future for MockAnswer {
    type Output = Result<EtcdResponse, EtcdError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.1 {
            this.1 = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match this.0.take() {
            Some(answer) => Poll::Ready(answer),
            None => Poll::Ready(Err(EtcdError::client(
                ErrorKind::InvalidRequest,
                "MockAnswer polled after completion",
            ))),
        }
    }
}

impl Service<EtcdRequest> for Mock {
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = MockAnswer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EtcdRequest) -> Self::Future {
        let header = Some(ResponseHeader {
            revision: 1,
            ..Default::default()
        });
        let put = || PutResponse {
            header,
            ..Default::default()
        };
        let body = match request.body {
            RequestBody::Put(_) => ResponseBody::Put(put()),
            RequestBody::Range(range) => ResponseBody::Range(RangeResponse {
                header,
                kvs: vec![KeyValue {
                    key: range.key,
                    value: Bytes::from_static(b"value"),
                    ..Default::default()
                }],
                count: 1,
                ..Default::default()
            }),
            RequestBody::Txn(_) => ResponseBody::Txn(TxnResponse {
                header,
                succeeded: true,
                responses: vec![ResponseOp {
                    response: Some(response_op::Response::ResponsePut(put())),
                }],
            }),
            RequestBody::DeleteRange(_) => ResponseBody::DeleteRange(DeleteRangeResponse {
                header,
                ..Default::default()
            }),
            RequestBody::Authenticate(_) => ResponseBody::Authenticate(AuthenticateResponse {
                header,
                token: "mock.1".into(),
            }),
            other => {
                return MockAnswer(
                    Some(Err(EtcdError::client(
                        ErrorKind::InvalidRequest,
                        format!(
                            "--mock answers put, range, txn and delete, not {:?}",
                            other.rpc()
                        ),
                    ))),
                    false,
                )
            }
        };
        MockAnswer(Some(Ok(EtcdResponse::new(body))), false)
    }
}
