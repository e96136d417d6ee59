//! Helpers shared by the namespace layer's server tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb::{
    watch_request, PutRequest, PutResponse, RangeRequest, RangeResponse, WatchCreateRequest,
    WatchRequest, WatchResponse,
};
use etcd_tower_core::proto::mvccpb::KeyValue;
use etcd_tower_core::{
    EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody, ResponseStream,
};
use futures::channel::mpsc;
use futures::StreamExt;
use tower::{Service, ServiceExt};

/// How long one server test (one etcd version) may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Calls one unary RPC through `service` and converts the answer.
pub async fn call<S, R>(service: &S, body: impl Into<RequestBody>) -> Result<R, EtcdError>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone,
    R: TryFrom<EtcdResponse, Error = EtcdError>,
{
    let response = service.clone().oneshot(EtcdRequest::new(body)).await?;
    R::try_from(response)
}

pub fn b(s: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(s.as_ref())
}

pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        ..Default::default()
    }
}

pub fn range(key: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> RangeRequest {
    RangeRequest {
        key: b(key),
        range_end: b(end),
        ..Default::default()
    }
}

/// The end of the range of keys starting with `prefix`, written here
/// independently of the crate so that the tests do not trust its math.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while end.last() == Some(&0xff) {
        end.pop();
    }
    match end.last_mut() {
        Some(last) => {
            *last += 1;
            end
        }
        None => vec![0],
    }
}

/// Every key on the server, read without any namespace.
pub async fn all_keys<S>(raw: &S) -> Vec<KeyValue>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone,
{
    let all: RangeResponse = call(raw, range("\0", "\0")).await.unwrap();
    all.kvs
}

/// Every server key, as `(key, value)`.
pub async fn raw_pairs<S>(raw: &S) -> Vec<(Bytes, Bytes)>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone,
{
    all_keys(raw)
        .await
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

pub async fn put_raw<S>(raw: &S, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>)
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone,
{
    let _: PutResponse = call(raw, put(key, value)).await.unwrap();
}

/// An open watch stream: the sender for more watch requests and the
/// inbound messages.
pub struct WatchStream {
    pub requests: mpsc::UnboundedSender<WatchRequest>,
    pub inbound: ResponseStream<WatchResponse>,
}

pub fn create(create: WatchCreateRequest) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
    }
}

/// Opens a Watch stream through `service` with one create request and
/// waits for the server to confirm it. The create is queued before the
/// call: the stream opens only when the server sends its first message.
pub async fn open_watch<S>(service: &S, request: WatchCreateRequest) -> WatchStream
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone,
{
    let (requests, outbound) = mpsc::unbounded();
    requests.unbounded_send(create(request)).unwrap();
    let response = service
        .clone()
        .oneshot(EtcdRequest::new(RequestBody::Watch(Box::pin(outbound))))
        .await
        .unwrap();
    let ResponseBody::Watch(mut inbound) = response.body else {
        panic!("not a watch stream: {:?}", response.body)
    };
    let created = inbound.next().await.unwrap().unwrap();
    assert!(created.created && !created.canceled, "{created:?}");
    WatchStream { requests, inbound }
}
