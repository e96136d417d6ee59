//! The namespace service.

use std::task::{Context, Poll};

use bytes::Bytes;
use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::keys::Prefix;
use crate::request::prefix_request_mut;

/// Confines every request of the inner service to a key prefix and strips
/// the prefix from every answer; see the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct Namespace<S> {
    inner: S,
    prefix: Prefix,
}

impl<S> Namespace<S> {
    /// Wraps `inner` in the namespace rooted at `prefix`. An empty prefix
    /// changes nothing.
    pub fn new(inner: S, prefix: impl Into<Bytes>) -> Self {
        Namespace::with_prefix(inner, Prefix::new(prefix))
    }

    /// Wraps `inner` in the namespace of an already built [`Prefix`].
    pub fn with_prefix(inner: S, prefix: Prefix) -> Self {
        Namespace { inner, prefix }
    }

    /// The namespace's prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
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

impl<S> Service<EtcdRequest> for Namespace<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: EtcdRequest) -> Self::Future {
        if self.prefix.is_empty() {
            return ResponseFuture::passthrough(self.inner.call(request));
        }
        match prefix_request_mut(&mut request.body, &self.prefix) {
            Ok(()) => ResponseFuture::strip(self.inner.call(request), self.prefix.clone()),
            // The slot reserved by `poll_ready` stays with the inner
            // service for the next call.
            Err(error) => ResponseFuture::refused(error),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::NamespaceLayer;
    use etcd_tower_core::proto::etcdserverpb::{
        PutRequest, PutResponse, RangeRequest, RangeResponse,
    };
    use etcd_tower_core::proto::mvccpb::KeyValue;
    use etcd_tower_core::{ErrorKind, RequestBody, ResponseBody};
    use tokio_test::{assert_pending, assert_ready_ok};
    use tower::{Layer, ServiceBuilder, ServiceExt};
    use tower_test::mock;

    fn range_answer(keys: &[&str]) -> EtcdResponse {
        let kvs = keys
            .iter()
            .map(|k| KeyValue {
                key: Bytes::copy_from_slice(k.as_bytes()),
                ..Default::default()
            })
            .collect();
        EtcdResponse::new(ResponseBody::Range(RangeResponse {
            kvs,
            ..Default::default()
        }))
    }

    fn get(key: &str) -> EtcdRequest {
        EtcdRequest::new(RangeRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn keys_go_down_prefixed_and_come_back_stripped() {
        let (service, mut handle) = mock::pair::<EtcdRequest, EtcdResponse>();
        let service = NamespaceLayer::new("t/")
            .layer(service.map_err(|_| EtcdError::client(ErrorKind::Closed, "mock")));
        let call = tokio::spawn(service.oneshot(get("k")));
        let (request, respond) = handle.next_request().await.unwrap();
        let RequestBody::Range(range) = request.body else {
            panic!("{:?}", request.body)
        };
        assert_eq!(&range.key[..], b"t/k");
        respond.send_response(range_answer(&["t/k"]));
        let range = RangeResponse::try_from(call.await.unwrap().unwrap()).unwrap();
        assert_eq!(&range.kvs[0].key[..], b"k");
    }

    #[tokio::test]
    async fn an_empty_prefix_changes_nothing() {
        let (service, mut handle) = mock::pair::<EtcdRequest, EtcdResponse>();
        let service = Namespace::new(
            service.map_err(|_| EtcdError::client(ErrorKind::Closed, "mock")),
            "",
        );
        assert!(service.prefix().is_empty());
        let call = tokio::spawn(service.oneshot(get("\0")));
        let (request, respond) = handle.next_request().await.unwrap();
        let RequestBody::Range(range) = request.body else {
            panic!()
        };
        assert_eq!(
            (&range.key[..], &range.range_end[..]),
            (&b"\0"[..], &b""[..])
        );
        respond.send_response(range_answer(&["any/key"]));
        let range = RangeResponse::try_from(call.await.unwrap().unwrap()).unwrap();
        assert_eq!(&range.kvs[0].key[..], b"any/key");
    }

    #[tokio::test]
    async fn a_refused_request_never_reaches_the_inner_service() {
        let (service, mut handle) = mock::pair::<EtcdRequest, EtcdResponse>();
        let service = Namespace::new(
            service.map_err(|_| EtcdError::client(ErrorKind::Closed, "mock")),
            "t/",
        );
        let err = service
            .oneshot(EtcdRequest::new(PutRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::EmptyKey);
        assert!(handle.next_request().await.is_none(), "nothing was sent");
    }

    #[tokio::test]
    async fn poll_ready_is_the_inner_services() {
        let (mut service, mut handle) =
            mock::spawn_with(|mock: mock::Mock<EtcdRequest, EtcdResponse>| {
                Namespace::new(
                    mock.map_err(|_| EtcdError::client(ErrorKind::Closed, "mock")),
                    "t/",
                )
            });
        handle.allow(0);
        assert_pending!(service.poll_ready());
        handle.allow(1);
        assert_ready_ok!(service.poll_ready());
    }

    /// `ServiceBuilder` calls the layer added first first: "a/" rewrites
    /// the caller's key, then "b/" rewrites that, so the server key is
    /// `b/a/k`; answers unwind in the opposite order.
    #[tokio::test]
    async fn nested_layers_put_the_outer_prefix_inside_the_inner_one() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let etcd = tower::service_fn(move |request: EtcdRequest| {
            let record = record.clone();
            async move {
                let RequestBody::Put(put) = request.body else {
                    panic!()
                };
                record.lock().unwrap().push(put.key.clone());
                let prev = KeyValue {
                    key: put.key,
                    ..Default::default()
                };
                Ok::<_, EtcdError>(EtcdResponse::new(ResponseBody::Put(PutResponse {
                    header: None,
                    prev_kv: Some(prev),
                })))
            }
        });
        let client = ServiceBuilder::new()
            .layer(NamespaceLayer::new("a/"))
            .layer(NamespaceLayer::new("b/"))
            .service(etcd);
        let put = PutRequest {
            key: "k".into(),
            prev_kv: true,
            ..Default::default()
        };
        let answer =
            PutResponse::try_from(client.oneshot(EtcdRequest::new(put)).await.unwrap()).unwrap();
        assert_eq!(seen.lock().unwrap().as_slice(), [Bytes::from("b/a/k")]);
        assert_eq!(&answer.prev_kv.unwrap().key[..], b"k");
    }
}
