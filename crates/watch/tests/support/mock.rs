//! A scripted stand-in for the service stack: the test plays the server.
//!
//! Every watch stream the engine opens shows up as a [`MockStream`]: the
//! test reads what the engine sends and answers what it wants, message by
//! message. Unary calls (the engine's permission probes) show up as
//! [`MockUnary`] and are answered by the test too. This makes the engine's
//! state machine testable deterministically, including server behaviours
//! that are hard to provoke on a real server (a stale token, fragments).
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{
    watch_request::RequestUnion, RangeRequest, RangeResponse, ResponseHeader, WatchCreateRequest,
    WatchRequest, WatchResponse,
};
use etcd_tower_core::proto::mvccpb::{Event, KeyValue};
use etcd_tower_core::signal::{
    CurrentTokenGeneration, RenewToken, ReportTokenGeneration, TokenGeneration,
};
use etcd_tower_core::{
    EtcdError, EtcdRequest, EtcdResponse, RequestBody, RequestStream, ResponseBody,
};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

pub const STEP: Duration = Duration::from_secs(5);

/// The service handed to the engine.
#[derive(Clone)]
pub struct MockService {
    calls: mpsc::UnboundedSender<Call>,
}

pub enum Call {
    Watch(MockStream),
    Unary(MockUnary),
}

/// A unary call made by the engine (a probe).
pub struct MockUnary {
    pub request: EtcdRequest,
    reply: oneshot::Sender<Result<EtcdResponse, EtcdError>>,
}

impl MockUnary {
    pub fn range(&self) -> &RangeRequest {
        match &self.request.body {
            RequestBody::Range(range) => range,
            other => panic!("expected a Range probe, got {other:?}"),
        }
    }

    pub fn asks_for_generation(&self) -> bool {
        self.request
            .meta
            .extensions
            .get::<ReportTokenGeneration>()
            .is_some()
    }

    /// The token generation this probe asks the auth layer to replace.
    pub fn renews(&self) -> Option<u64> {
        self.request
            .meta
            .extensions
            .get::<RenewToken>()
            .map(|RenewToken(TokenGeneration(g))| *g)
    }

    /// Answers with a successful range and the given token generation.
    pub fn ok(self, generation: Option<u64>) {
        let mut response = EtcdResponse::new(ResponseBody::Range(RangeResponse::default()));
        if let Some(generation) = generation {
            response.extensions.insert(TokenGeneration(generation));
        }
        let _ = self.reply.send(Ok(response));
    }

    pub fn fail(self, error: EtcdError) {
        let _ = self.reply.send(Err(error));
    }
}

/// One watch stream the engine opened.
pub struct MockStream {
    pub require_leader: bool,
    outbound: RequestStream<WatchRequest>,
    inbound: mpsc::UnboundedSender<Result<WatchResponse, EtcdError>>,
    open: Option<oneshot::Sender<Result<Opened, EtcdError>>>,
}

/// How an open completes: the stream's token generation, and the auth
/// layer's current-generation cell.
type Opened = (Option<u64>, Option<CurrentTokenGeneration>);

impl MockStream {
    /// Completes the open (as the first message would), reporting the
    /// given token generation.
    pub fn accept(&mut self, generation: Option<u64>) {
        if let Some(open) = self.open.take() {
            let _ = open.send(Ok((generation, None)));
        }
    }

    /// Completes the open as a stack with an auth layer does: the stream's
    /// generation and the layer's current-generation cell.
    pub fn accept_with(&mut self, generation: u64, current: &CurrentTokenGeneration) {
        if let Some(open) = self.open.take() {
            let _ = open.send(Ok((Some(generation), Some(current.clone()))));
        }
    }

    /// Fails the open with `error`.
    pub fn reject(&mut self, error: EtcdError) {
        if let Some(open) = self.open.take() {
            let _ = open.send(Err(error));
        }
    }

    /// The next message the engine sends; `None` when it closed its side.
    pub async fn next_request(&mut self) -> Option<RequestUnion> {
        tokio::time::timeout(STEP, self.outbound.next())
            .await
            .expect("the engine sent nothing in time")
            .map(|request| request.request_union.expect("an empty watch request"))
    }

    /// The next message, which must be a create.
    pub async fn next_create(&mut self) -> WatchCreateRequest {
        match self.next_request().await {
            Some(RequestUnion::CreateRequest(create)) => create,
            other => panic!("expected a create, got {other:?}"),
        }
    }

    /// The next message, which must be a cancel; returns its watch id.
    pub async fn next_cancel(&mut self) -> i64 {
        match self.next_request().await {
            Some(RequestUnion::CancelRequest(cancel)) => cancel.watch_id,
            other => panic!("expected a cancel, got {other:?}"),
        }
    }

    /// Asserts that the engine sends nothing for a short while.
    pub async fn expect_silence(&mut self) {
        if let Ok(item) =
            tokio::time::timeout(Duration::from_millis(150), self.outbound.next()).await
        {
            panic!("expected silence, the engine sent {item:?}");
        }
    }

    pub fn send(&self, response: WatchResponse) {
        let _ = self.inbound.send(Ok(response));
    }

    pub fn fail(&self, error: EtcdError) {
        let _ = self.inbound.send(Err(error));
    }

    pub fn created(&self, watch_id: i64, revision: i64) {
        self.send(WatchResponse {
            header: Some(header(revision)),
            watch_id,
            created: true,
            ..Default::default()
        });
    }

    /// A refused create, as etcd answers one (id as asked on 3.5.1, -1 on
    /// 3.4.23), with a misleading reason that must not matter.
    pub fn refused(&self, watch_id: i64, revision: i64) {
        self.send(WatchResponse {
            header: Some(header(revision)),
            watch_id,
            created: true,
            canceled: true,
            cancel_reason:
                "rpc error: code = PermissionDenied desc = etcdserver: permission denied".into(),
            ..Default::default()
        });
    }

    pub fn events(&self, watch_id: i64, revision: i64, revs: &[i64]) {
        self.send(WatchResponse {
            header: Some(header(revision)),
            watch_id,
            events: revs.iter().map(|&r| put(r)).collect(),
            ..Default::default()
        });
    }

    pub fn progress(&self, watch_id: i64, revision: i64) {
        self.send(WatchResponse {
            header: Some(header(revision)),
            watch_id,
            ..Default::default()
        });
    }

    pub fn compacted(&self, watch_id: i64, compact_revision: i64) {
        self.send(WatchResponse {
            watch_id,
            canceled: true,
            compact_revision,
            ..Default::default()
        });
    }

    /// Whether the engine closed the stream (dropped its receiving half).
    pub fn is_closed_by_client(&self) -> bool {
        self.inbound.is_closed()
    }
}

pub fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

pub fn put(revision: i64) -> Event {
    Event {
        kv: Some(KeyValue {
            key: format!("k{revision}").into(),
            value: format!("v{revision}").into(),
            mod_revision: revision,
            create_revision: revision,
            version: 1,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The engine's side and the test's side.
pub fn pair() -> (MockService, mpsc::UnboundedReceiver<Call>) {
    let (calls, rx) = mpsc::unbounded_channel();
    (MockService { calls }, rx)
}

/// The next call the engine makes.
pub async fn next_call(calls: &mut mpsc::UnboundedReceiver<Call>) -> Call {
    tokio::time::timeout(STEP, calls.recv())
        .await
        .expect("the engine made no call in time")
        .expect("the engine is gone")
}

pub async fn next_stream(calls: &mut mpsc::UnboundedReceiver<Call>) -> MockStream {
    match next_call(calls).await {
        Call::Watch(stream) => stream,
        Call::Unary(unary) => panic!("expected a watch stream, got {:?}", unary.request),
    }
}

pub async fn next_unary(calls: &mut mpsc::UnboundedReceiver<Call>) -> MockUnary {
    match next_call(calls).await {
        Call::Unary(unary) => unary,
        Call::Watch(_) => panic!("expected a unary call, got a watch stream"),
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<EtcdResponse, EtcdError>> + Send>>;

impl tower::Service<EtcdRequest> for MockService {
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EtcdRequest) -> BoxFuture {
        let calls = self.calls.clone();
        Box::pin(async move {
            let closed = || EtcdError::client(etcd_tower_core::ErrorKind::Closed, "mock gone");
            let require_leader = request.meta.require_leader;
            match request.body {
                RequestBody::Watch(outbound) => {
                    let (inbound, rx) = mpsc::unbounded_channel();
                    let (open, opened) = oneshot::channel();
                    calls
                        .send(Call::Watch(MockStream {
                            require_leader,
                            outbound,
                            inbound,
                            open: Some(open),
                        }))
                        .map_err(|_| closed())?;
                    let (generation, current) = opened.await.map_err(|_| closed())??;
                    let stream = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|item| (item, rx))
                    });
                    let mut response = EtcdResponse::new(ResponseBody::Watch(Box::pin(stream)));
                    if let Some(generation) = generation {
                        response.extensions.insert(TokenGeneration(generation));
                    }
                    if let Some(current) = current {
                        response.extensions.insert(current);
                    }
                    Ok(response)
                }
                body => {
                    let (reply, answer) = oneshot::channel();
                    calls
                        .send(Call::Unary(MockUnary {
                            request: EtcdRequest {
                                body,
                                meta: request.meta,
                            },
                            reply,
                        }))
                        .map_err(|_| closed())?;
                    answer.await.map_err(|_| closed())?
                }
            }
        })
    }
}
