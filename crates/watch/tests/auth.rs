//! The engine side of auth cooperation, end to end on real etcd 3.5 and
//! 3.4 with short-lived simple tokens. The auth layer is played by a small
//! stand-in (`TokenStack`) that behaves as the brief describes the real one:
//! it attaches a token, re-authenticates a unary call refused with
//! `InvalidAuthToken`, and reports the `TokenGeneration` of every stream and
//! of unary calls that ask for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{AuthenticateRequest, AuthenticateResponse};
use etcd_tower_core::signal::{ReportTokenGeneration, TokenGeneration};
use etcd_tower_core::{AuthToken, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, Transport};
use etcd_tower_testkit::{binaries, Cluster};
use etcd_tower_watch::{WatchEngine, WatchOptions};
use support::etcd::*;
use tower::ServiceExt;

#[derive(Clone)]
struct TokenStack {
    inner: Transport,
    user: (&'static str, &'static str),
    state: Arc<tokio::sync::Mutex<(Option<AuthToken>, u64)>>,
}

impl TokenStack {
    fn new(inner: Transport, user: (&'static str, &'static str)) -> Self {
        TokenStack {
            inner,
            user,
            state: Arc::default(),
        }
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
        Ok((token, state.1))
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
            Ok(response)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_stream_token_is_renewed_and_a_real_denial_is_reported() {
    for bin in binaries() {
        let label = bin.label();
        let mut cluster = Cluster::builder(&bin)
            .auth_token_ttl(2)
            .start()
            .await
            .unwrap();
        cluster.enable_auth("rootpw").await.unwrap();
        for args in [
            &["user", "add", "alice:alicepw"][..],
            &["role", "add", "w"],
            &[
                "role",
                "grant-permission",
                "w",
                "readwrite",
                "w/",
                "--prefix=true",
            ],
            &["user", "grant-role", "alice", "w"],
        ] {
            cluster.etcdctl(args).await.unwrap();
        }
        let endpoints = cluster.endpoints();
        let writer = TokenStack::new(transport(&endpoints), ("root", "rootpw"));
        let alice = TokenStack::new(transport(&endpoints), ("alice", "alicepw"));
        let engine = WatchEngine::new(alice.clone());

        let put_as_root = |key: &'static str, value: String| {
            let writer = writer.clone();
            async move {
                use etcd_tower_core::proto::etcdserverpb::{PutRequest, PutResponse};
                let request = PutRequest {
                    key: key.into(),
                    value: value.into(),
                    ..Default::default()
                };
                let response = writer.oneshot(EtcdRequest::new(request)).await?;
                Ok::<i64, EtcdError>(PutResponse::try_from(response)?.header.unwrap().revision)
            }
        };
        let from = put_as_root("w/a", "0".into()).await.unwrap();
        let mut first = engine
            .watch(WatchOptions::key("w/a").start_revision(from))
            .await
            .unwrap();
        let rev = put_as_root("w/a", "1".into()).await.unwrap();
        let mut got_a = collect_until(&mut first, rev, 10).await;

        // The stream's token expires; the watcher already created keeps
        // delivering, a new create is refused by the server.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let rev = put_as_root("w/a", "2".into()).await.unwrap();
        got_a.extend(collect_until(&mut first, rev, 10).await);
        let mut second = bounded(
            30,
            "a watch after expiry",
            engine.watch(WatchOptions::prefix("w/b")),
        )
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
        // The refusal was probed: alice's token was renewed (generation 2)
        // and the stream re-opened with it.
        assert_eq!(
            alice.state.lock().await.1,
            2,
            "{label}: the token was not renewed"
        );
        // Both on the new stream, without loss.
        let rev_a = put_as_root("w/a", "3".into()).await.unwrap();
        let rev_b = put_as_root("w/b1", "b".into()).await.unwrap();
        got_a.extend(collect_until(&mut first, rev_a, 10).await);
        let got_b = collect_until(&mut second, rev_b, 10).await;
        let values: Vec<&[u8]> = got_a.iter().map(|s| s.2.as_ref()).collect();
        assert_eq!(values, [&b"0"[..], b"1", b"2", b"3"], "{label}");
        assert_eq!(got_b.len(), 1, "{label}");

        // A real denial ends that watch only.
        let denied = bounded(
            30,
            "a denied watch",
            engine.watch(WatchOptions::prefix("secret/")),
        )
        .await
        .expect_err("alice may not watch secret/");
        assert_eq!(
            denied.kind(),
            &ErrorKind::PermissionDenied,
            "{label}: {denied}"
        );
        let rev_a = put_as_root("w/a", "4".into()).await.unwrap();
        let more = collect_until(&mut first, rev_a, 10).await;
        assert_eq!(more.len(), 1, "{label}");
    }
}
