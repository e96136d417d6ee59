//! The layer against a scripted etcd (`tower_test` mock).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error as StdError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_tower_core::proto::etcdserverpb::{
    AuthenticateRequest, AuthenticateResponse, PutRequest, RangeRequest, RangeResponse,
    WatchRequest, WatchResponse,
};
use etcd_tower_core::signal::{
    CurrentTokenGeneration, RenewToken, ReportTokenGeneration, TokenGeneration,
};
use etcd_tower_core::{
    Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody, Rpc, Sent,
};
use futures::StreamExt;
use tower::{Service, ServiceExt};

use crate::jwt::tests::jwt_expiring_at;
use crate::{Auth, AuthLayer};

type MockHandle = tower_test::mock::Handle<EtcdRequest, EtcdResponse>;

/// The mock with its boxed errors turned back into `EtcdError`s.
#[derive(Clone, Debug)]
struct Inner(tower_test::mock::Mock<EtcdRequest, EtcdResponse>);

impl Service<EtcdRequest> for Inner {
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = futures::future::BoxFuture<'static, Result<EtcdResponse, EtcdError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        self.0.poll_ready(cx).map_err(to_etcd_error)
    }

    fn call(&mut self, request: EtcdRequest) -> Self::Future {
        let future = self.0.call(request);
        Box::pin(async move { future.await.map_err(to_etcd_error) })
    }
}

fn to_etcd_error(error: Box<dyn StdError + Send + Sync>) -> EtcdError {
    match error.downcast::<EtcdError>() {
        Ok(error) => *error,
        Err(other) => EtcdError::client(ErrorKind::Closed, other.to_string()),
    }
}

fn mock() -> (Inner, MockHandle) {
    let (mock, handle) = tower_test::mock::pair();
    (Inner(mock), handle)
}

fn invalid_token() -> EtcdError {
    EtcdError::new(
        ErrorKind::InvalidAuthToken,
        Code::Unauthenticated,
        "etcdserver: invalid auth token",
        Sent::Rejected,
    )
}

fn auth_failed() -> EtcdError {
    EtcdError::new(
        ErrorKind::AuthFailed,
        Code::InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password",
        Sent::Rejected,
    )
}

fn range() -> EtcdRequest {
    EtcdRequest::new(RangeRequest {
        key: "k".into(),
        count_only: true,
        ..Default::default()
    })
}

fn watch() -> EtcdRequest {
    let outbound: etcd_tower_core::RequestStream<WatchRequest> =
        Box::pin(futures::stream::pending());
    EtcdRequest::new(RequestBody::Watch(outbound))
}

/// A scripted etcd: issues tokens `t1`, `t2`, ... (or JWTs) and accepts
/// only the tokens in `valid`; counts logins and calls.
#[derive(Clone, Default)]
struct Fake {
    state: Arc<Mutex<FakeState>>,
    logins: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

#[derive(Default)]
struct FakeState {
    issued: usize,
    /// Tokens the server accepts.
    valid: Vec<String>,
    /// Answer every login with this error.
    refuse_login: Option<EtcdError>,
    /// Issue JWTs valid for this long (by the system clock).
    jwt_ttl: Option<Duration>,
    /// Reject every token, valid or not.
    reject_all: bool,
    /// Tokens seen on calls other than Authenticate, in order.
    seen: Vec<Option<String>>,
    /// Hold this many calls before answering any.
    hold: usize,
    /// The streams to answer Watch opens with.
    watch_stream: Option<etcd_tower_core::ResponseStream<WatchResponse>>,
}

impl Fake {
    fn spawn(&self, mut handle: MockHandle) {
        let fake = self.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((request, respond)) = handle.next_request().await {
                let hold = fake.state.lock().unwrap().hold;
                if hold > 0 && request.rpc() != Rpc::Authenticate {
                    // Answer nothing until `hold` calls are in flight, so
                    // that they all race the same answer.
                    held.push((request, respond));
                    if held.len() < hold {
                        continue;
                    }
                    fake.state.lock().unwrap().hold = 0;
                } else {
                    held.push((request, respond));
                }
                for (request, respond) in held.drain(..) {
                    match fake.answer(request) {
                        Ok(response) => respond.send_response(response),
                        Err(error) => respond.send_error(error),
                    }
                }
            }
        });
    }

    fn answer(&self, request: EtcdRequest) -> Result<EtcdResponse, EtcdError> {
        let mut state = self.state.lock().unwrap();
        if let RequestBody::Authenticate(AuthenticateRequest { name, password }) = &request.body {
            self.logins.fetch_add(1, Ordering::SeqCst);
            assert!(request.meta.token.is_none(), "a login carries no token");
            assert_eq!((name.as_str(), password.as_str()), ("root", "pw"));
            if let Some(error) = &state.refuse_login {
                return Err(error.clone());
            }
            state.issued += 1;
            let token = match state.jwt_ttl {
                Some(ttl) => {
                    let exp = (SystemTime::now() + ttl)
                        .duration_since(UNIX_EPOCH)
                        .unwrap();
                    format!("{}{}", jwt_expiring_at(exp.as_secs()), state.issued)
                }
                None => format!("t{}", state.issued),
            };
            state.valid.push(token.clone());
            return Ok(EtcdResponse::new(ResponseBody::Authenticate(
                AuthenticateResponse {
                    header: None,
                    token,
                },
            )));
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let token = request.meta.token.as_ref().map(|t| t.expose().to_owned());
        state.seen.push(token.clone());
        let accepted = token.is_some_and(|t| state.valid.contains(&t)) && !state.reject_all;
        if !accepted {
            return Err(invalid_token());
        }
        match request.rpc() {
            Rpc::Watch => {
                let stream = state
                    .watch_stream
                    .take()
                    .unwrap_or_else(|| Box::pin(futures::stream::pending()));
                Ok(EtcdResponse::new(ResponseBody::Watch(stream)))
            }
            _ => Ok(EtcdResponse::new(ResponseBody::Range(
                RangeResponse::default(),
            ))),
        }
    }

    /// The server forgets every token (expiry, restart).
    fn expire_all(&self) {
        self.state.lock().unwrap().valid.clear();
    }

    fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn last_token(&self) -> Option<String> {
        self.state.lock().unwrap().seen.last().cloned().flatten()
    }
}

fn client(fake: &Fake) -> Auth<Inner> {
    let (inner, handle) = mock();
    fake.spawn(handle);
    AuthLayer::new("root", "pw").wrap(inner)
}

async fn call(client: &mut Auth<Inner>, request: EtcdRequest) -> Result<EtcdResponse, EtcdError> {
    client.ready().await?.call(request).await
}

/// Runs `n` calls at once on clones of `client`.
async fn concurrently(client: &Auth<Inner>, n: usize) -> Vec<Result<EtcdResponse, EtcdError>> {
    let calls = (0..n).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move { call(&mut client, range()).await })
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect()
}

#[tokio::test]
async fn one_login_for_a_hundred_first_calls_and_a_token_on_each() {
    let fake = Fake::default();
    let client = client(&fake);
    for result in concurrently(&client, 100).await {
        result.unwrap();
    }
    assert_eq!(fake.logins(), 1);
    assert_eq!(fake.calls(), 100);
    let seen = fake.state.lock().unwrap().seen.clone();
    assert!(seen.iter().all(|t| t.as_deref() == Some("t1")), "{seen:?}");
    assert_eq!(client.token_generation(), TokenGeneration(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_calls_racing_a_rejection_send_one_authenticate() {
    let fake = Fake::default();
    let mut client = client(&fake);
    call(&mut client, range()).await.unwrap();
    assert_eq!(fake.logins(), 1);

    fake.expire_all();
    fake.state.lock().unwrap().hold = 100;
    for result in concurrently(&client, 100).await {
        result.unwrap();
    }
    assert_eq!(fake.logins(), 2, "one refresh for all the rejected calls");
    assert_eq!(client.token_generation(), TokenGeneration(2));
    // All 100 were rejected with t1 and sent once more with t2.
    let seen = fake.state.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 1 + 200);
    assert!(seen[1..101].iter().all(|t| t.as_deref() == Some("t1")));
    assert!(seen[101..].iter().all(|t| t.as_deref() == Some("t2")));
}

#[tokio::test]
async fn a_second_rejection_after_the_refresh_is_returned() {
    let fake = Fake::default();
    let mut client = client(&fake);
    call(&mut client, range()).await.unwrap();
    fake.state.lock().unwrap().reject_all = true;

    let calls_before = fake.calls();
    let error = call(&mut client, range()).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::InvalidAuthToken);
    assert_eq!(
        fake.calls() - calls_before,
        2,
        "sent, refreshed, sent once more"
    );
    assert_eq!(fake.logins(), 2);
}

#[tokio::test]
async fn writes_are_retried_after_a_token_rejection() {
    let fake = Fake::default();
    let mut client = client(&fake);
    call(&mut client, range()).await.unwrap();
    fake.expire_all();
    let put = EtcdRequest::new(PutRequest {
        key: "k".into(),
        value: "v".into(),
        ..Default::default()
    });
    call(&mut client, put).await.unwrap();
    assert_eq!(fake.logins(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_password_is_an_error_not_a_loop() {
    let fake = Fake::default();
    fake.state.lock().unwrap().refuse_login = Some(auth_failed());
    let mut client = client(&fake);

    let error = call(&mut client, range()).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::AuthFailed);
    assert_eq!(
        error.sent(),
        Sent::NotSent,
        "the call itself was never sent"
    );
    assert_eq!(fake.logins(), 1);
    assert_eq!(fake.calls(), 0);

    // Within the backoff: the same error, no new login.
    for _ in 0..10 {
        let error = call(&mut client, range()).await.unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::AuthFailed);
    }
    assert_eq!(fake.logins(), 1);

    // After it, the next call asks again (once).
    tokio::time::advance(crate::DEFAULT_FAILURE_BACKOFF + Duration::from_millis(1)).await;
    fake.state.lock().unwrap().refuse_login = None;
    call(&mut client, range()).await.unwrap();
    assert_eq!(fake.logins(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_login_without_a_connection_is_a_connection_failure_not_a_refusal() {
    let fake = Fake::default();
    let unreachable = EtcdError::new(
        ErrorKind::Connect,
        Code::Unavailable,
        "cannot connect: connection refused",
        Sent::NotSent,
    );
    fake.state.lock().unwrap().refuse_login = Some(unreachable);
    let mut client = client(&fake);

    // The caller learns that no connection could be made, not that the
    // credentials were refused.
    let error = call(&mut client, range()).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Connect, "{error}");
    assert_eq!(error.sent(), Sent::NotSent);
    // Nothing is remembered against the credentials: the next call (no
    // time has passed) tries to log in again, and succeeds once the server
    // answers.
    assert_eq!(
        call(&mut client, range()).await.unwrap_err().kind(),
        &ErrorKind::Connect
    );
    assert_eq!(fake.logins(), 2);
    fake.state.lock().unwrap().refuse_login = None;
    call(&mut client, range()).await.unwrap();
    assert_eq!(fake.logins(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_password_changed_under_a_live_client_fails_once_per_backoff() {
    let fake = Fake::default();
    let mut client = client(&fake);
    call(&mut client, range()).await.unwrap();
    fake.expire_all();
    fake.state.lock().unwrap().refuse_login = Some(auth_failed());

    let error = call(&mut client, range()).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::AuthFailed);
    assert_eq!(
        error.sent(),
        Sent::Rejected,
        "sent once and rejected: not applied"
    );
    let calls = fake.calls();
    let error = call(&mut client, range()).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::AuthFailed);
    assert_eq!(
        error.sent(),
        Sent::NotSent,
        "the dead token is not sent again"
    );
    assert_eq!(fake.calls(), calls);
    assert_eq!(fake.logins(), 2, "the refusal is remembered");
}

#[tokio::test]
async fn nothing_secret_is_printed() {
    let layer = AuthLayer::new("root", "pw-hunter2");
    let printed = format!("{layer:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("root") && printed.contains("<redacted>"),
        "{printed}"
    );

    let fake = Fake::default();
    let mut client = client(&fake);
    call(&mut client, range()).await.unwrap();
    let token = fake.last_token().unwrap();
    let mut other = client.clone();
    let future = other.ready().await.unwrap().call(range());
    for printed in [format!("{client:?}"), format!("{future:?}")] {
        assert!(!printed.contains(&token), "{printed}");
        assert!(!printed.contains("\"pw\""), "{printed}");
    }
    future.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_jwt_is_refreshed_before_it_expires() {
    let fake = Fake::default();
    fake.state.lock().unwrap().jwt_ttl = Some(Duration::from_secs(100));
    let mut client = client(&fake);
    call(&mut client, range()).await.unwrap();
    assert_eq!(fake.logins(), 1);

    // At 70 % of its life the token is still used as is.
    tokio::time::advance(Duration::from_secs(70)).await;
    call(&mut client, range()).await.unwrap();
    assert_eq!(fake.logins(), 1);

    // Past 80 % (of 99..100 s: `exp` is whole seconds), the next call logs
    // in first, and the server never saw a stale token.
    tokio::time::advance(Duration::from_secs(10)).await;
    call(&mut client, range()).await.unwrap();
    assert_eq!(fake.logins(), 2);
    assert_eq!(client.token_generation(), TokenGeneration(2));
    assert_eq!(fake.calls(), 3, "no call was rejected");
}

#[tokio::test(start_paused = true)]
async fn a_failed_jwt_refresh_keeps_the_still_valid_token() {
    let fake = Fake::default();
    fake.state.lock().unwrap().jwt_ttl = Some(Duration::from_secs(100));
    let mut client = client(&fake);
    call(&mut client, range()).await.unwrap();
    let first = fake.last_token();

    tokio::time::advance(Duration::from_secs(85)).await;
    fake.state.lock().unwrap().refuse_login =
        Some(EtcdError::client(ErrorKind::Connect, "connection refused"));
    call(&mut client, range()).await.unwrap();
    assert_eq!(fake.logins(), 2);
    assert_eq!(fake.last_token(), first);
    // Not asked again on every call: only after the backoff.
    call(&mut client, range()).await.unwrap();
    assert_eq!(fake.logins(), 2);

    // A refusal (password changed) is remembered; the old token serves on.
    tokio::time::advance(crate::DEFAULT_FAILURE_BACKOFF).await;
    fake.state.lock().unwrap().refuse_login = Some(auth_failed());
    for _ in 0..5 {
        call(&mut client, range()).await.unwrap();
    }
    assert_eq!(fake.logins(), 3);
    assert_eq!(fake.last_token(), first);
}

#[tokio::test]
async fn streams_and_asking_calls_report_their_token_generation() {
    let fake = Fake::default();
    let mut client = client(&fake);

    // A plain unary call reports nothing.
    let response = call(&mut client, range()).await.unwrap();
    assert!(response.extensions.get::<TokenGeneration>().is_none());

    // Every stream reports the generation it was opened with.
    let response = call(&mut client, watch()).await.unwrap();
    assert_eq!(
        response.extensions.get::<TokenGeneration>(),
        Some(&TokenGeneration(1))
    );

    // A probe after expiry reports the generation it was finally sent with.
    fake.expire_all();
    let mut probe = range();
    probe.meta.extensions.insert(ReportTokenGeneration);
    let response = call(&mut client, probe).await.unwrap();
    assert_eq!(
        response.extensions.get::<TokenGeneration>(),
        Some(&TokenGeneration(2))
    );

    // A new stream carries the new token and says so.
    let response = call(&mut client, watch()).await.unwrap();
    assert_eq!(
        response.extensions.get::<TokenGeneration>(),
        Some(&TokenGeneration(2))
    );
    assert_eq!(fake.last_token().as_deref(), Some("t2"));
}

#[tokio::test]
async fn streams_carry_the_current_generation_which_follows_later_logins() {
    let fake = Fake::default();
    let mut client = client(&fake);
    let response = call(&mut client, watch()).await.unwrap();
    let current = response
        .extensions
        .get::<CurrentTokenGeneration>()
        .expect("a stream carries the layer's current generation")
        .clone();
    assert_eq!(current.get(), TokenGeneration(1));

    // A unary call (not the stream) meets the expiry and logs in again:
    // the stream's holder learns of it without any call of its own.
    fake.expire_all();
    call(&mut client, range()).await.unwrap();
    assert_eq!(current.get(), TokenGeneration(2));
    assert_eq!(client.token_generation(), TokenGeneration(2));

    // Unary calls carry no cell.
    let response = call(&mut client, range()).await.unwrap();
    assert!(response
        .extensions
        .get::<CurrentTokenGeneration>()
        .is_none());
}

#[tokio::test]
async fn a_renewal_request_logs_in_once_per_stale_generation() {
    let fake = Fake::default();
    let mut client = client(&fake);
    call(&mut client, range()).await.unwrap();
    assert_eq!(fake.logins(), 1);

    // The token of generation 1 is suspected stale: one new login, and the
    // call reports the new generation.
    let mut renew = range();
    renew.meta.extensions.insert(RenewToken(TokenGeneration(1)));
    renew.meta.extensions.insert(ReportTokenGeneration);
    let response = call(&mut client, renew).await.unwrap();
    assert_eq!(fake.logins(), 2);
    assert_eq!(
        response.extensions.get::<TokenGeneration>(),
        Some(&TokenGeneration(2))
    );

    // A late renewal of the same old generation changes nothing.
    let mut late = range();
    late.meta.extensions.insert(RenewToken(TokenGeneration(1)));
    call(&mut client, late).await.unwrap();
    assert_eq!(fake.logins(), 2, "a newer token is already held");
}

#[tokio::test]
async fn a_rejected_watch_open_refreshes_and_returns_the_rejection() {
    let fake = Fake::default();
    let mut client = client(&fake);
    call(&mut client, range()).await.unwrap();
    fake.expire_all();

    let error = call(&mut client, watch()).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::InvalidAuthToken);
    assert_eq!(fake.logins(), 2, "refreshed for the reopen");
    let response = call(&mut client, watch()).await.unwrap();
    assert_eq!(
        response.extensions.get::<TokenGeneration>(),
        Some(&TokenGeneration(2))
    );
    assert_eq!(fake.logins(), 2);
}

#[tokio::test]
async fn a_stream_ending_with_a_token_error_makes_the_next_call_log_in() {
    let fake = Fake::default();
    let mut client = client(&fake);
    let failing: etcd_tower_core::ResponseStream<WatchResponse> =
        Box::pin(futures::stream::iter([Err(invalid_token())]));
    fake.state.lock().unwrap().watch_stream = Some(failing);

    let response = call(&mut client, watch()).await.unwrap();
    let ResponseBody::Watch(mut stream) = response.body else {
        panic!("not a watch stream");
    };
    let item = stream.next().await.unwrap();
    assert_eq!(item.unwrap_err().kind(), &ErrorKind::InvalidAuthToken);

    call(&mut client, watch()).await.unwrap();
    assert_eq!(fake.logins(), 2);
    assert_eq!(fake.last_token().as_deref(), Some("t2"));
}

#[tokio::test]
async fn authenticate_calls_of_the_caller_pass_through() {
    let fake = Fake::default();
    let mut client = client(&fake);
    let login = EtcdRequest::new(AuthenticateRequest {
        name: "root".into(),
        password: "pw".into(),
    });
    let response = call(&mut client, login).await.unwrap();
    assert_eq!(response.rpc(), Rpc::Authenticate);
    assert_eq!(fake.logins(), 1);
    assert_eq!(client.token_generation(), TokenGeneration(0));
}

#[tokio::test]
async fn auth_disabled_means_no_token_until_the_server_asks_for_one() {
    let fake = Fake::default();
    fake.state.lock().unwrap().refuse_login = Some(EtcdError::new(
        ErrorKind::AuthNotEnabled,
        Code::FailedPrecondition,
        "etcdserver: authentication is not enabled",
        Sent::Rejected,
    ));
    let (inner, mut handle) = mock();
    let mut client = AuthLayer::new("root", "pw").wrap(inner);
    let logins = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&logins);
    let user_empty = Arc::new(Mutex::new(false));
    let ask = Arc::clone(&user_empty);
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            match request.rpc() {
                Rpc::Authenticate => {
                    counted.fetch_add(1, Ordering::SeqCst);
                    if *ask.lock().unwrap() {
                        respond.send_response(EtcdResponse::new(ResponseBody::Authenticate(
                            AuthenticateResponse {
                                header: None,
                                token: "t1".into(),
                            },
                        )));
                    } else {
                        respond
                            .send_error(fake.state.lock().unwrap().refuse_login.clone().unwrap());
                    }
                }
                _ if *ask.lock().unwrap() && request.meta.token.is_none() => {
                    respond.send_error(EtcdError::new(
                        ErrorKind::UserEmpty,
                        Code::InvalidArgument,
                        "etcdserver: user name is empty",
                        Sent::Rejected,
                    ))
                }
                _ => respond.send_response(EtcdResponse::new(ResponseBody::Range(
                    RangeResponse::default(),
                ))),
            }
        }
    });
    for _ in 0..3 {
        call(&mut client, range()).await.unwrap();
    }
    assert_eq!(logins.load(Ordering::SeqCst), 1);

    // Auth gets enabled: the first `user name is empty` logs in.
    *user_empty.lock().unwrap() = true;
    call(&mut client, range()).await.unwrap();
    assert_eq!(logins.load(Ordering::SeqCst), 2);
}

async fn bounded<F: std::future::Future>(
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(5), future).await
}

#[tokio::test]
async fn the_slow_paths_do_not_hold_the_inner_readiness() {
    // Under a concurrency limit of one, a login that waited for the slot
    // reserved by its own call's `poll_ready` would never finish.
    let fake = Fake::default();
    let (inner, handle) = mock();
    fake.spawn(handle);
    let limited = tower::limit::ConcurrencyLimit::new(inner, 1);
    let mut client = AuthLayer::new("root", "pw").wrap(limited);

    bounded(client.ready().await.unwrap().call(range()))
        .await
        .expect("the first call logged in")
        .unwrap();
    fake.expire_all();
    bounded(client.ready().await.unwrap().call(range()))
        .await
        .expect("the retry got the slot again")
        .unwrap();
    assert_eq!(fake.logins(), 2);
}

/// Counts the allocations made on the current thread.
mod allocations {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub(super) struct Counting;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: forwards to the system allocator unchanged.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            COUNT.with(|c| c.set(c.get() + 1));
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as the caller's.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    /// How many allocations `f` made on this thread.
    pub(super) fn during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = COUNT.with(Cell::get);
        let value = f();
        (value, COUNT.with(Cell::get) - before)
    }
}

#[global_allocator]
static ALLOCATOR: allocations::Counting = allocations::Counting;

/// An inner service that answers at once, allocating nothing.
#[derive(Clone)]
struct Instant;

impl Service<EtcdRequest> for Instant {
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = std::future::Ready<Result<EtcdResponse, EtcdError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EtcdRequest) -> Self::Future {
        let response = match request.rpc() {
            Rpc::Authenticate => ResponseBody::Authenticate(AuthenticateResponse {
                header: None,
                token: "t1".into(),
            }),
            _ => ResponseBody::Range(RangeResponse::default()),
        };
        std::future::ready(Ok(EtcdResponse::new(response)))
    }
}

#[test]
fn the_common_path_does_not_allocate() {
    use futures::FutureExt;
    let mut client = AuthLayer::new("root", "pw").wrap(Instant);
    let request = || {
        EtcdRequest::new(RangeRequest {
            key: "k".into(), // static: cloning it allocates nothing
            ..Default::default()
        })
    };
    // The first calls log in (boxed, allocating) and share the token.
    for _ in 0..2 {
        client.call(request()).now_or_never().unwrap().unwrap();
    }
    let (response, allocations) = allocations::during(|| {
        let future = client.call(request());
        future.now_or_never().unwrap()
    });
    response.unwrap();
    assert_eq!(allocations, 0, "a call with a token at hand allocated");
    // The counter does count.
    assert_eq!(allocations::during(|| Box::new(1)).1, 1);
}
