//! A small stand-in for the auth layer (this crate does not depend on the
//! auth crate), shared by `auth.rs`, `quiet_watchers.rs` and
//! `resume_latency.rs`: it attaches a simple token, logs in again when a
//! unary call is refused with `InvalidAuthToken`, and reports the
//! `TokenGeneration` of every stream and of unary calls that ask for it.
//! Optionally (see [`TokenStack::publishing_current_generation`]) it also
//! tags every stream with the layer's `CurrentTokenGeneration`, as the real
//! layer does. It counts its logins, the watch streams it opened and the
//! unary calls that asked for their generation (the engine's probes). Plus
//! the unary calls the tests make through it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use etcd_tower_core::proto::etcdserverpb::{
    request_op, AuthenticateRequest, AuthenticateResponse, CompactionRequest, DeleteRangeRequest,
    PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use etcd_tower_core::signal::{CurrentTokenGeneration, ReportTokenGeneration, TokenGeneration};
use etcd_tower_core::{AuthToken, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, Transport};
use tower::ServiceExt;

#[derive(Clone)]
pub struct TokenStack {
    inner: Transport,
    user: (&'static str, &'static str),
    /// The token held, and how many times it logged in (the generation of
    /// that token).
    state: Arc<tokio::sync::Mutex<(Option<AuthToken>, u64)>>,
    /// Advanced on every login; attached to streams only if `publish`.
    current: CurrentTokenGeneration,
    /// Whether streams carry `current`.
    publish: bool,
    /// Watch streams opened.
    opens: Arc<AtomicUsize>,
    /// Unary calls that asked for their token generation (the engine's
    /// probes).
    probes: Arc<AtomicUsize>,
}

impl TokenStack {
    /// A stack that logs in as `user` (name, password). Its streams do not
    /// carry a `CurrentTokenGeneration`.
    pub fn new(inner: Transport, user: (&'static str, &'static str)) -> Self {
        TokenStack {
            inner,
            user,
            state: Arc::default(),
            current: CurrentTokenGeneration::default(),
            publish: false,
            opens: Arc::default(),
            probes: Arc::default(),
        }
    }

    /// Tags every stream with the layer's `CurrentTokenGeneration` too, as
    /// the real auth layer does.
    pub fn publishing_current_generation(mut self) -> Self {
        self.publish = true;
        self
    }

    /// How many times it logged in.
    pub async fn logins(&self) -> u64 {
        self.state.lock().await.1
    }

    /// The generation of the token held now, from the
    /// `CurrentTokenGeneration` (whether published or not).
    pub fn generation(&self) -> u64 {
        self.current.get().0
    }

    /// Watch streams opened so far.
    pub fn opens(&self) -> usize {
        self.opens.load(Ordering::Relaxed)
    }

    /// Unary calls so far that asked for their token generation.
    pub fn probes(&self) -> usize {
        self.probes.load(Ordering::Relaxed)
    }

    /// The current token, or a new one if there is none or `stale` is the
    /// current generation.
    async fn token(&self, stale: Option<u64>) -> Result<(AuthToken, u64), EtcdError> {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.0 {
            if Some(state.1) != stale {
                return Ok((token.clone(), state.1));
            }
        }
        let request = AuthenticateRequest {
            name: self.user.0.into(),
            password: self.user.1.into(),
        };
        let response = self
            .inner
            .clone()
            .oneshot(EtcdRequest::new(request))
            .await?;
        let token = AuthToken::new(&AuthenticateResponse::try_from(response)?.token)?;
        state.1 += 1;
        state.0 = Some(token.clone());
        self.current.advance(TokenGeneration(state.1));
        Ok((token, state.1))
    }

    /// Puts several keys (one is fine) in one transaction: one revision.
    pub async fn put_all(&self, pairs: &[(String, String)]) -> Result<i64, EtcdError> {
        let success = pairs
            .iter()
            .map(|(k, v)| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: k.clone().into(),
                    value: v.clone().into(),
                    ..Default::default()
                })),
            })
            .collect();
        let request = TxnRequest {
            success,
            ..Default::default()
        };
        let response = self.clone().oneshot(EtcdRequest::new(request)).await?;
        Ok(TxnResponse::try_from(response)?
            .header
            .map_or(0, |h| h.revision))
    }

    pub async fn put(&self, key: &str, value: &str) -> Result<i64, EtcdError> {
        self.put_all(&[(key.to_owned(), value.to_owned())]).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        let request = DeleteRangeRequest {
            key: key.to_owned().into(),
            ..Default::default()
        };
        self.clone().oneshot(EtcdRequest::new(request)).await?;
        Ok(())
    }

    /// The store's revision now, from a read's header (no write).
    pub async fn head(&self) -> Result<i64, EtcdError> {
        let request = RangeRequest {
            key: "q/".into(),
            count_only: true,
            ..Default::default()
        };
        let response = self.clone().oneshot(EtcdRequest::new(request)).await?;
        Ok(RangeResponse::try_from(response)?
            .header
            .map_or(0, |h| h.revision))
    }

    pub async fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        let request = CompactionRequest {
            revision,
            physical: true,
        };
        self.clone().oneshot(EtcdRequest::new(request)).await?;
        Ok(())
    }
}

impl tower::Service<EtcdRequest> for TokenStack {
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = Pin<Box<dyn Future<Output = Result<EtcdResponse, EtcdError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: EtcdRequest) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let report = request
                .meta
                .extensions
                .get::<ReportTokenGeneration>()
                .is_some();
            let streaming = request.rpc().is_streaming();
            if streaming {
                this.opens.fetch_add(1, Ordering::Relaxed);
            } else if report {
                this.probes.fetch_add(1, Ordering::Relaxed);
            }
            let (token, generation) = this.token(None).await?;
            let again = request.try_clone();
            request.meta.token = Some(token);
            let (result, generation) = match (this.inner.clone().oneshot(request).await, again) {
                (Err(error), Some(mut again)) if *error.kind() == ErrorKind::InvalidAuthToken => {
                    let (token, generation) = this.token(Some(generation)).await?;
                    again.meta.token = Some(token);
                    (this.inner.clone().oneshot(again).await, generation)
                }
                (result, _) => (result, generation),
            };
            let mut response = result?;
            if streaming || report {
                response.extensions.insert(TokenGeneration(generation));
            }
            if streaming && this.publish {
                response.extensions.insert(this.current.clone());
            }
            Ok(response)
        })
    }
}
