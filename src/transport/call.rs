//! Carrying one call over an HTTP/2 connection, by shape: the gRPC
//! protocol (request head, framed messages, status in the trailers) spoken
//! over h2 directly.

use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use http::header::{CONTENT_TYPE, TE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use tokio::sync::oneshot;

use super::codec;
use super::connection::{ActiveGuard, ConnectionInfo, Live};
use super::route::{bit, TargetEndpoint, TriedEndpoints};
use super::{BoxCall, Shared};
use crate::error::{Code, ErrorKind, EtcdError, Sent};
use crate::request::RequestMeta;
use crate::rpc::{Dispatch, ResponseBody, Rpc};
use crate::stream::{RequestStream, ResponseStream};
use crate::EtcdResponse;

/// gRPC metadata key etcd reads the auth token from.
const TOKEN_KEY: &str = "token";
/// gRPC metadata key that asks a member to refuse calls while leaderless.
const HAS_LEADER_KEY: &str = "hasleader";

/// One call's way to the server: the endpoint chosen for it, whether it
/// may fail over to another, its ready connection (`None`: the call
/// connects first), and the metadata to send.
pub(super) struct Carrier<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) index: usize,
    pub(super) failover: bool,
    pub(super) live: Option<&'a mut Live>,
    pub(super) meta: RequestMeta,
}

/// The request head: `POST /service/Method`, gRPC content type, and the
/// metadata.
fn head(
    info: &ConnectionInfo,
    rpc: Rpc,
    meta: &RequestMeta,
) -> Result<http::Request<()>, EtcdError> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(info.scheme.clone());
    parts.authority = Some(info.authority.clone());
    parts.path_and_query = Some(PathAndQuery::from_static(rpc.path()));
    let uri = Uri::from_parts(parts)
        .map_err(|e| EtcdError::client(ErrorKind::InvalidEndpoint, e.to_string()))?;
    let mut request = http::Request::new(());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.reserve(4);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    if let Some(token) = &meta.token {
        headers.insert(TOKEN_KEY, token.header_value().clone());
    }
    if meta.require_leader {
        headers.insert(HAS_LEADER_KEY, HeaderValue::from_static("true"));
    }
    meta.metadata.write_to(headers);
    Ok(request)
}

/// The connection could not take the stream: nothing was sent. The
/// connection is dropped, so the next call makes a new one.
fn not_sent(info: &ConnectionInfo, error: h2::Error) -> EtcdError {
    info.close();
    EtcdError::client(
        ErrorKind::Connect,
        format!("the connection to {} is closed: {error}", info.authority),
    )
    .with_source(error)
}

/// The connection or stream failed after the request may have left;
/// unless the server reset the stream with `REFUSED_STREAM`, HTTP/2's word
/// for "not processed at all" (RFC 9113, section 8.7), which is safe to
/// send again.
fn lost(error: h2::Error) -> EtcdError {
    let refused = error.is_remote() && error.reason() == Some(h2::Reason::REFUSED_STREAM);
    let sent = if refused {
        Sent::NotSent
    } else {
        Sent::MayHaveBeenApplied
    };
    EtcdError::new(
        ErrorKind::ConnectionLost,
        Code::Unavailable,
        format!("connection lost: {error}"),
        sent,
    )
    .with_source(error)
}

/// An answer the client could not decode, or one over its receive limit
/// (the codec's statuses): the request was sent and may have been applied.
fn malformed(status: tonic::Status) -> EtcdError {
    let (kind, code) = match status.code() {
        tonic::Code::OutOfRange => (ErrorKind::ResponseTooLarge, Code::ResourceExhausted),
        _ => (ErrorKind::UnexpectedResponse, Code::Internal),
    };
    EtcdError::new(kind, code, status.message(), Sent::MayHaveBeenApplied)
}

/// A status the server sent (or one the client inferred from what it
/// received), classified from its code and catalogue message.
fn status(status: tonic::Status) -> EtcdError {
    EtcdError::from_status(status)
}

/// The outcome a response head already carries: an HTTP error, or the
/// status of a trailers-only response (no messages).
fn head_status(response: &http::response::Parts) -> Option<tonic::Status> {
    if response.status != StatusCode::OK {
        return Some(http_status(response.status));
    }
    tonic::Status::from_header_map(&response.headers)
}

/// gRPC's mapping of an HTTP status without a gRPC status to a code.
fn http_status(http: StatusCode) -> tonic::Status {
    let code = match http {
        StatusCode::BAD_REQUEST => tonic::Code::Internal,
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
        StatusCode::NOT_FOUND => tonic::Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => tonic::Code::Unavailable,
        _ => tonic::Code::Unknown,
    };
    tonic::Status::new(code, format!("HTTP status {http} without a gRPC status"))
}

/// The call's status from its trailers.
fn trailer_status(trailers: Option<&HeaderMap>) -> Result<(), EtcdError> {
    // The common case without building a `Status` (which clones the map).
    if trailers
        .and_then(|t| t.get("grpc-status"))
        .is_some_and(|code| code == "0")
    {
        return Ok(());
    }
    match trailers.and_then(tonic::Status::from_header_map) {
        Some(sent) if sent.code() == tonic::Code::Ok => Ok(()),
        Some(sent) => Err(status(sent)),
        None => Err(malformed(codec::bad_frame(
            "the response ended without a gRPC status",
        ))),
    }
}

/// Reads the next chunk of a response body, returning its flow-control
/// capacity to the connection at once: the message is in memory now.
fn poll_chunk(
    body: &mut h2::RecvStream,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, h2::Error>>> {
    let chunk = ready!(body.poll_data(cx));
    if let Some(Ok(data)) = &chunk {
        if let Err(error) = body.flow_control().release_capacity(data.len()) {
            return Poll::Ready(Some(Err(error)));
        }
    }
    Poll::Ready(chunk)
}

/// Opens a stream on the connection. Nothing is sent if this fails (the
/// error says [`Sent::NotSent`]).
fn start(
    live: &mut Live,
    rpc: Rpc,
    meta: &RequestMeta,
) -> Result<
    (
        h2::client::ResponseFuture,
        h2::SendStream<Bytes>,
        ActiveGuard,
    ),
    EtcdError,
> {
    let request = head(&live.info, rpc, meta)?;
    let (response, sending) = live
        .send
        .send_request(request, false)
        .map_err(|e| not_sent(&live.info, e))?;
    Ok((response, sending, live.info.open()))
}

/// Sends a whole request (its one framed message) on a new stream. The
/// frame is taken only once the stream is open, so that it is still there
/// to send elsewhere when the connection could not take it.
fn send_framed(
    live: &mut Live,
    rpc: Rpc,
    meta: &RequestMeta,
    frame: &mut Option<Bytes>,
) -> Result<(h2::client::ResponseFuture, ActiveGuard), EtcdError> {
    let (response, mut sending, open) = start(live, rpc, meta)?;
    sending
        .send_data(frame.take().unwrap_or_default(), true)
        .map_err(lost)?;
    Ok((response, open))
}

/// After a first attempt that sent nothing (no connection could be made,
/// or it was closed before the stream opened), sends the request to the
/// next endpoints, for as long as nothing is sent, so that nothing can be
/// applied twice. Returns the sent stream and the endpoint it went to.
async fn resend(
    shared: &Shared,
    mut index: usize,
    mut error: EtcdError,
    rpc: Rpc,
    meta: &RequestMeta,
    mut frame: Option<Bytes>,
) -> Result<(h2::client::ResponseFuture, ActiveGuard, usize), EtcdError> {
    // Endpoints earlier attempts of the call went to are skipped, unless
    // that leaves none: then any other will do.
    let earlier = meta.tried.as_ref().map_or(0, TriedEndpoints::bits);
    let mut tried = bit(index) | earlier;
    if shared.endpoints.pick_untried(tried).is_none() {
        tried = bit(index);
    }
    loop {
        note_failure(shared, index, &error);
        if error.sent() != Sent::NotSent || frame.is_none() {
            return Err(error);
        }
        let Some(next) = shared.endpoints.pick_untried(tried) else {
            return Err(error);
        };
        tracing::debug!(
            from = %shared.endpoints.slot(index).endpoint(),
            to = %shared.endpoints.slot(next).endpoint(),
            %error,
            "etcd call not sent; trying the next endpoint"
        );
        index = next;
        tried |= bit(next);
        if let Some(attempts) = &meta.tried {
            attempts.record(next);
        }
        error = match shared.endpoints.slot(next).connection.live().await {
            Ok(mut live) => match send_framed(&mut live, rpc, meta, &mut frame) {
                Ok((response, open)) => return Ok((response, open, index)),
                Err(error) => error,
            },
            Err(error) => error,
        };
    }
}

/// Receives the answer to a unary call.
async fn receive_unary<Resp>(
    response: h2::client::ResponseFuture,
    _open: ActiveGuard,
    max_recv: usize,
) -> Result<Resp, EtcdError>
where
    Resp: prost::Message + Default,
{
    let (parts, mut body) = response.await.map_err(lost)?.into_parts();
    if let Some(head) = head_status(&parts) {
        return Err(match head.code() {
            tonic::Code::Ok => {
                malformed(codec::bad_frame("the server answered OK without a message"))
            }
            _ => status(head),
        });
    }
    // Almost always the message comes in one DATA frame: decode it from
    // that frame's bytes, without copying.
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    // The whole answer's length, once its prefix is in: a prefix over
    // `max_recv`, or more bytes than it announced, fail at once, before
    // the rest is buffered.
    let mut expected: Option<usize> = None;
    while let Some(chunk) = poll_fn(|cx| poll_chunk(&mut body, cx)).await {
        let chunk = chunk.map_err(lost)?;
        match (&first, &mut more) {
            (None, _) => first = Some(chunk),
            (Some(head), None) => {
                let mut joined = BytesMut::with_capacity(head.len() + chunk.len());
                joined.extend_from_slice(head);
                joined.extend_from_slice(&chunk);
                more = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&chunk),
        }
        let received: &[u8] = match (&more, &first) {
            (Some(joined), _) => joined,
            (None, Some(first)) => first,
            (None, None) => &[],
        };
        if expected.is_none() {
            expected = codec::message_len(received, max_recv)
                .map_err(malformed)?
                .map(|len| codec::PREFIX_LEN.saturating_add(len));
        }
        if let Some(expected) = expected.filter(|expected| received.len() > *expected) {
            return Err(malformed(codec::bad_frame(format!(
                "a unary response must be one whole message of {expected} bytes; received more"
            ))));
        }
    }
    let trailers = poll_fn(|cx| body.poll_trailers(cx)).await.map_err(lost)?;
    trailer_status(trailers.as_ref())?;
    let received = match (more, first) {
        (Some(joined), _) => joined.freeze(),
        (None, Some(first)) => first,
        (None, None) => {
            return Err(malformed(codec::bad_frame(
                "the server answered OK without a message",
            )))
        }
    };
    let len = codec::message_len(&received, max_recv)
        .map_err(malformed)?
        .unwrap_or(usize::MAX);
    if received.len() != codec::PREFIX_LEN.saturating_add(len) {
        return Err(malformed(codec::bad_frame(format!(
            "a unary response must be one whole message; received {} bytes",
            received.len()
        ))));
    }
    codec::decode(received.slice(codec::PREFIX_LEN..)).map_err(malformed)
}

/// Records a connection failure against the endpoint.
fn note_failure(shared: &Shared, index: usize, error: &EtcdError) {
    if matches!(error.kind(), ErrorKind::Connect | ErrorKind::ConnectionLost) {
        shared.endpoints.mark_down(index);
    }
}

impl Carrier<'_> {
    /// Sends a one-message request now, on the connection `poll_ready`
    /// reserved; returns what the call's future needs to finish it (and
    /// to fail over, if nothing could be sent).
    fn send_now(self, rpc: Rpc, frame: Bytes) -> Unsent {
        let mut frame = Some(frame);
        let first = match self.live {
            Some(live) => match send_framed(live, rpc, &self.meta, &mut frame) {
                Ok(sent) => First::Sent(sent),
                Err(error) => First::Failed(error),
            },
            None => First::Connect,
        };
        Unsent {
            shared: self.shared.clone(),
            index: self.index,
            failover: self.failover,
            meta: self.meta,
            frame,
            first,
        }
    }
}

/// A one-message request as `call` left it.
struct Unsent {
    shared: Arc<Shared>,
    index: usize,
    /// Whether nothing sent may go to another endpoint.
    failover: bool,
    meta: RequestMeta,
    /// The frame, while nothing has been sent.
    frame: Option<Bytes>,
    first: First,
}

/// How the first attempt went.
enum First {
    /// Sent on the connection `poll_ready` reserved.
    Sent((h2::client::ResponseFuture, ActiveGuard)),
    /// The endpoint had no connection: connect, then send.
    Connect,
    /// Nothing could be sent there.
    Failed(EtcdError),
}

/// A sent request: its response, the open-call count it holds, and the
/// endpoint it went to.
type SentCall = (h2::client::ResponseFuture, ActiveGuard, Arc<Shared>, usize);

impl Unsent {
    /// The sent stream, after failing over if the first attempt sent
    /// nothing.
    async fn sent(self, rpc: Rpc) -> Result<SentCall, EtcdError> {
        let Unsent {
            shared,
            index,
            failover,
            meta,
            mut frame,
            first,
        } = self;
        let error = match first {
            First::Sent((response, open)) => return Ok((response, open, shared, index)),
            First::Failed(error) => error,
            First::Connect => match shared.endpoints.slot(index).connection.live().await {
                Ok(mut live) => match send_framed(&mut live, rpc, &meta, &mut frame) {
                    Ok((response, open)) => return Ok((response, open, shared, index)),
                    Err(error) => error,
                },
                Err(error) => error,
            },
        };
        if !failover {
            note_failure(&shared, index, &error);
            return Err(error);
        }
        let (response, open, index) = resend(&shared, index, error, rpc, &meta, frame).await?;
        Ok((response, open, shared, index))
    }
}

impl Dispatch for Carrier<'_> {
    type Output = Result<BoxCall, EtcdError>;

    fn unary<Req, Resp>(self, rpc: Rpc, body: Req, wrap: fn(Resp) -> ResponseBody) -> Self::Output
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let limits = self.shared.limits;
        let frame = codec::encode(rpc, &body, limits.max_send_size)?;
        drop(body);
        let unsent = self.send_now(rpc, frame);
        Ok(Box::pin(async move {
            let (response, open, shared, index) = unsent.sent(rpc).await?;
            match receive_unary::<Resp>(response, open, limits.max_recv_size).await {
                Ok(message) => Ok(EtcdResponse::new(wrap(message))),
                Err(error) => {
                    note_failure(&shared, index, &error);
                    Err(error)
                }
            }
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
        let limits = self.shared.limits;
        let frame = codec::encode(rpc, &body, limits.max_send_size)?;
        drop(body);
        let unsent = self.send_now(rpc, frame);
        Ok(Box::pin(async move {
            let (response, open, shared, index) = unsent.sent(rpc).await?;
            match GrpcStream::<Resp>::receive(response, open, None, limits.max_recv_size).await {
                Ok(stream) => Ok(EtcdResponse::new(wrap(Box::pin(stream)))),
                Err(error) => {
                    note_failure(&shared, index, &error);
                    Err(error)
                }
            }
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
        let limits = self.shared.limits;
        let first = match self.live {
            Some(live) => Some(start(live, rpc, &self.meta).inspect_err(|error| {
                note_failure(self.shared, self.index, error);
            })?),
            None => None,
        };
        let shared = self.shared.clone();
        let index = self.index;
        let meta = self.meta;
        Ok(Box::pin(async move {
            let (response, sending, open) = match first {
                Some(opened) => opened,
                None => {
                    let opened = match shared.endpoints.slot(index).connection.live().await {
                        Ok(mut live) => start(&mut live, rpc, &meta),
                        Err(error) => Err(error),
                    };
                    opened.inspect_err(|error| note_failure(&shared, index, error))?
                }
            };
            // The outbound messages are sent by a task of their own, so
            // that sending never waits for the consumer to read.
            let (cancel, canceled) = oneshot::channel();
            tokio::spawn(send_all(rpc, body, sending, canceled, limits.max_send_size));
            match GrpcStream::<Resp>::receive(response, open, Some(cancel), limits.max_recv_size)
                .await
            {
                Ok(stream) => {
                    let mut response = EtcdResponse::new(wrap(Box::pin(stream)));
                    // Where the stream is, for calls aimed at its member.
                    let served_by = TargetEndpoint::of(shared.endpoints.slot(index).endpoint());
                    response.extensions.insert(served_by);
                    Ok(response)
                }
                Err(error) => {
                    note_failure(&shared, index, &error);
                    Err(error)
                }
            }
        }))
    }
}

/// Sends the outbound messages of a bidirectional stream until they end
/// (then half-closes), the server resets the stream, or the response
/// stream is dropped or ends (then cancels it).
async fn send_all<Req: prost::Message>(
    rpc: Rpc,
    mut outbound: RequestStream<Req>,
    mut sending: h2::SendStream<Bytes>,
    mut canceled: oneshot::Receiver<()>,
    limit: usize,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut canceled => {
                sending.send_reset(h2::Reason::CANCEL);
                return;
            }
            reset = poll_fn(|cx| sending.poll_reset(cx)) => {
                tracing::trace!(?reset, %rpc, "etcd stream reset by the server");
                return;
            }
            next = outbound.next() => next,
        };
        let sent = match next {
            Some(message) => match codec::encode(rpc, &message, limit) {
                Ok(frame) => sending.send_data(frame, false),
                Err(error) => {
                    // The caller sees the stream fail (reset by the client).
                    tracing::warn!(%error, %rpc, "etcd stream message refused; canceling the stream");
                    sending.send_reset(h2::Reason::CANCEL);
                    return;
                }
            },
            None => {
                if let Err(error) = sending.send_data(Bytes::new(), true) {
                    tracing::trace!(%error, %rpc, "etcd stream closed before its half-close");
                }
                return;
            }
        };
        if let Err(error) = sent {
            tracing::trace!(%error, %rpc, "etcd stream closed while sending");
            return;
        }
    }
}

/// The inbound messages of a streaming call.
struct GrpcStream<Resp> {
    body: h2::RecvStream,
    /// The rest of the last DATA chunk, while no message is split across
    /// chunks: messages are sliced out of it without copying.
    chunk: Bytes,
    /// A message split across chunks, joined here.
    buf: BytesMut,
    state: Reading,
    max_recv: usize,
    /// Counts the stream as open for keepalive; dropped when it ends.
    open: Option<ActiveGuard>,
    /// Dropping it stops the task sending the outbound messages.
    cancel: Option<oneshot::Sender<()>>,
    _messages: PhantomData<fn() -> Resp>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Data,
    Trailers,
    Done,
}

impl<Resp: prost::Message + Default> GrpcStream<Resp> {
    /// Waits for the response head; fails if it carries an error.
    async fn receive(
        response: h2::client::ResponseFuture,
        mut open: ActiveGuard,
        cancel: Option<oneshot::Sender<()>>,
        max_recv: usize,
    ) -> Result<Self, EtcdError> {
        let (parts, body) = response.await.map_err(lost)?.into_parts();
        open.answered();
        let state = match head_status(&parts) {
            Some(head) if head.code() != tonic::Code::Ok => return Err(status(head)),
            Some(_) => Reading::Done,
            None => Reading::Data,
        };
        Ok(GrpcStream {
            body,
            chunk: Bytes::new(),
            buf: BytesMut::new(),
            state,
            max_recv,
            open: Some(open),
            cancel,
            _messages: PhantomData,
        })
    }

    fn finish(&mut self, last: Option<EtcdError>) -> Poll<Option<Result<Resp, EtcdError>>> {
        self.state = Reading::Done;
        self.cancel = None;
        self.open = None;
        Poll::Ready(last.map(Err))
    }
}

impl<Resp: prost::Message + Default> Stream for GrpcStream<Resp> {
    type Item = Result<Resp, EtcdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.state {
                Reading::Data => {
                    // Almost always a DATA chunk holds whole messages:
                    // they are decoded from its bytes. A message split
                    // across chunks is joined in `buf` first.
                    let split = if this.buf.is_empty() {
                        codec::split_bytes(&mut this.chunk, this.max_recv)
                    } else {
                        codec::split_message(&mut this.buf, this.max_recv)
                    };
                    match split {
                        Ok(Some(message)) => {
                            return match codec::decode(message) {
                                Ok(message) => Poll::Ready(Some(Ok(message))),
                                Err(e) => this.finish(Some(malformed(e))),
                            }
                        }
                        Ok(None) => {}
                        Err(e) => return this.finish(Some(malformed(e))),
                    }
                    if !this.chunk.is_empty() {
                        // The start of a message the next chunk continues.
                        this.buf.extend_from_slice(&this.chunk);
                        this.chunk.clear();
                    }
                    match ready!(poll_chunk(&mut this.body, cx)) {
                        Some(Ok(chunk)) if this.buf.is_empty() => this.chunk = chunk,
                        Some(Ok(chunk)) => this.buf.extend_from_slice(&chunk),
                        Some(Err(error)) => return this.finish(Some(lost(error))),
                        None => this.state = Reading::Trailers,
                    }
                }
                Reading::Trailers => {
                    let trailers = match ready!(this.body.poll_trailers(cx)) {
                        Ok(trailers) => trailers,
                        Err(error) => return this.finish(Some(lost(error))),
                    };
                    if let Err(e) = trailer_status(trailers.as_ref()) {
                        return this.finish(Some(e));
                    }
                    if !this.buf.is_empty() || !this.chunk.is_empty() {
                        return this.finish(Some(malformed(codec::bad_frame(
                            "the stream ended inside a message",
                        ))));
                    }
                    return this.finish(None);
                }
                Reading::Done => return Poll::Ready(None),
            }
        }
    }
}
