//! Carrying one call over a channel, by shape.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

use super::codec::PreEncodedCodec;
use super::{BoxCall, Shared};
use crate::error::{ErrorKind, EtcdError, Sent};
use crate::request::RequestMeta;
use crate::rpc::{Dispatch, ResponseBody, Rpc};
use crate::stream::{RequestStream, ResponseStream};
use crate::EtcdResponse;

/// gRPC metadata key etcd reads the auth token from.
const TOKEN_KEY: &str = "token";
/// gRPC metadata key that asks a member to refuse calls while leaderless.
const HAS_LEADER_KEY: &str = "hasleader";

/// One call's way to the server: the endpoint `poll_ready` chose, its ready
/// channel, and the metadata to send.
pub(super) struct Carrier {
    pub(super) shared: Arc<Shared>,
    pub(super) index: usize,
    pub(super) channel: Channel,
    pub(super) meta: RequestMeta,
}

impl Carrier {
    fn metadata(&self) -> MetadataMap {
        let mut headers = http::HeaderMap::new();
        if let Some(token) = &self.meta.token {
            headers.insert(TOKEN_KEY, token.header_value().clone());
        }
        if self.meta.require_leader {
            headers.insert(HAS_LEADER_KEY, http::HeaderValue::from_static("true"));
        }
        MetadataMap::from_headers(headers)
    }

    /// Encodes a single request message, refusing it when it is over the
    /// send limit.
    fn encode<M: prost::Message>(&self, rpc: Rpc, message: &M) -> Result<Bytes, EtcdError> {
        let len = message.encoded_len();
        let limit = self.shared.limits.max_send_size;
        if len > limit {
            return Err(EtcdError::client(
                ErrorKind::RequestTooLarge,
                format!("{rpc} request is {len} bytes; the send limit is {limit}"),
            ));
        }
        let mut buf = BytesMut::with_capacity(len);
        message.encode_raw(&mut buf);
        Ok(buf.freeze())
    }

    /// Sends an encoded request, moving to the next endpoint for as long as
    /// connections cannot be made (nothing was sent, so nothing can be
    /// applied twice).
    async fn with_failover<T, F, Fut>(self, mut attempt: F) -> Result<T, EtcdError>
    where
        F: FnMut(Grpc<Channel>, MetadataMap) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let metadata = self.metadata();
        let mut index = self.index;
        // The first attempt uses the very channel handle `poll_ready` made
        // ready: a clone would not hold its reserved slot.
        let Carrier {
            shared, channel, ..
        } = self;
        let mut grpc = grpc(&shared, channel);
        let mut tried: u64 = 0;
        loop {
            tried |= 1u64
                .checked_shl(u32::try_from(index).unwrap_or(u32::MAX))
                .unwrap_or(0);
            let error = match attempt(grpc, metadata.clone()).await {
                Ok(value) => return Ok(value),
                Err(status) => EtcdError::from_status(status),
            };
            note_failure(&shared, index, &error);
            if error.sent() != Sent::NotSent {
                return Err(error);
            }
            let Some(next) = shared.endpoints.pick_untried(tried) else {
                return Err(error);
            };
            tracing::debug!(
                from = %shared.endpoints.slot(index).uri,
                to = %shared.endpoints.slot(next).uri,
                %error,
                "etcd call not sent; trying the next endpoint"
            );
            index = next;
            grpc = self::grpc(&shared, shared.endpoints.slot(next).channel.clone());
            grpc.ready().await.map_err(|e| {
                EtcdError::client(ErrorKind::Connect, format!("channel closed: {e}"))
            })?;
        }
    }
}

/// A gRPC client over a channel, with the transport's size limits.
fn grpc(shared: &Shared, channel: Channel) -> Grpc<Channel> {
    Grpc::new(channel)
        .max_encoding_message_size(shared.limits.max_send_size)
        .max_decoding_message_size(shared.limits.max_recv_size)
}

/// Records a connection failure against the endpoint.
fn note_failure(shared: &Shared, index: usize, error: &EtcdError) {
    if matches!(error.kind(), ErrorKind::Connect | ErrorKind::ConnectionLost) {
        shared.endpoints.mark_down(index);
    }
}

fn path(rpc: Rpc) -> PathAndQuery {
    PathAndQuery::from_static(rpc.path())
}

fn inbound<T: Send + 'static>(stream: tonic::Streaming<T>) -> ResponseStream<T> {
    Box::pin(stream.map(|item| item.map_err(EtcdError::from_status)))
}

impl Dispatch for Carrier {
    type Output = Result<BoxCall, EtcdError>;

    fn unary<Req, Resp>(self, rpc: Rpc, body: Req, wrap: fn(Resp) -> ResponseBody) -> Self::Output
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let encoded = self.encode(rpc, &body)?;
        drop(body);
        Ok(Box::pin(async move {
            let response = self
                .with_failover(|mut grpc, metadata| {
                    let request =
                        tonic::Request::from_parts(metadata, Default::default(), encoded.clone());
                    async move {
                        grpc.unary(request, path(rpc), PreEncodedCodec::<Resp>::default())
                            .await
                    }
                })
                .await?;
            Ok(EtcdResponse::new(wrap(response.into_inner())))
        }))
    }

    fn server_streaming<Req, Resp>(
        self,
        rpc: Rpc,
        body: Req,
        wrap: fn(ResponseStream<Resp>) -> ResponseBody,
    ) -> Self::Output
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let encoded = self.encode(rpc, &body)?;
        drop(body);
        Ok(Box::pin(async move {
            let response = self
                .with_failover(|mut grpc, metadata| {
                    let request =
                        tonic::Request::from_parts(metadata, Default::default(), encoded.clone());
                    async move {
                        grpc.server_streaming(
                            request,
                            path(rpc),
                            PreEncodedCodec::<Resp>::default(),
                        )
                        .await
                    }
                })
                .await?;
            Ok(EtcdResponse::new(wrap(inbound(response.into_inner()))))
        }))
    }

    fn bidirectional<Req, Resp>(
        self,
        rpc: Rpc,
        body: RequestStream<Req>,
        wrap: fn(ResponseStream<Resp>) -> ResponseBody,
    ) -> Self::Output
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        Ok(Box::pin(async move {
            let request = tonic::Request::from_parts(self.metadata(), Default::default(), body);
            let Carrier {
                shared,
                index,
                channel,
                ..
            } = self;
            let mut grpc = grpc(&shared, channel);
            match grpc
                .streaming(request, path(rpc), ProstCodec::<Req, Resp>::default())
                .await
            {
                Ok(response) => Ok(EtcdResponse::new(wrap(inbound(response.into_inner())))),
                Err(status) => {
                    let error = EtcdError::from_status(status);
                    note_failure(&shared, index, &error);
                    Err(error)
                }
            }
        }))
    }
}
