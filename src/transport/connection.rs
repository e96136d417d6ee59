//! One endpoint's HTTP/2 connection: made lazily, shared by every call to
//! the endpoint, kept alive with PINGs, and made again after it breaks.
//!
//! Calls talk to h2 directly: a call clones the connection's
//! `SendRequest`, opens its stream, and polls its response from its own
//! task. Nothing sits between the caller and the connection task: no
//! buffer worker, no dispatch channel, no task per request. (tonic's
//! `Channel` routes each call through a `tower::buffer` worker task and
//! then hyper's dispatcher, which spawns a task per response: two extra
//! task hops and wake-ups per call, the largest client cost we measured.)
//!
//! A connection is usable only once the server has answered as an HTTP/2
//! server: the connection task sends a PING right after the client's
//! preface, and the connection is live when its PONG arrives (the server
//! must send its SETTINGS first). As gRPC's own clients wait for the
//! server's preface, this tells a server that never spoke HTTP/2 (a TLS
//! listener reached with `http://`, a TLS handshake the server ends for a
//! missing client certificate, something else on the port) from a
//! connection that broke with calls on it: the first fails the connect,
//! as [`ErrorKind::Connect`], which sent nothing, and no call is ever
//! started on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::uri::{Authority, Scheme};
use tokio::sync::{oneshot, Notify};

use super::connector::{Connector, Io};
use super::endpoint::Endpoint;
use crate::error::{ErrorKind, EtcdError};

/// The HTTP/2 settings of every connection: hyper's defaults, which
/// tonic used before. Windows are large because on a LAN the default 64 KiB
/// would throttle large ranges and snapshots.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_FRAME_SIZE: u32 = 16 * 1024;
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;
/// Streams allowed before the server's SETTINGS say how many it takes.
const INITIAL_MAX_SEND_STREAMS: usize = 100;

/// HTTP/2 keepalive: a PING every `interval` while calls or streams are
/// open (and while idle too with `while_idle`); no PONG within `timeout`
/// closes the connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keepalive {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) while_idle: bool,
}

type Connecting = Shared<BoxFuture<'static, Result<Live, EtcdError>>>;

/// One endpoint's connection, as the endpoint set holds it.
pub(crate) struct Connection {
    endpoint: Endpoint,
    scheme: Scheme,
    authority: Authority,
    connector: Connector,
    keepalive: Option<Keepalive>,
    state: Mutex<State>,
    /// Numbers the connection attempts.
    attempts: AtomicU64,
    /// The endpoint was removed from the transport: no new connection.
    retired: AtomicBool,
}

enum State {
    /// Not connected: the next call connects.
    Idle,
    /// A connection is being made; every caller waits on the same attempt
    /// (told apart from later ones by its number).
    Connecting(u64, Connecting),
    Live(Live),
}

/// A usable connection: what a call needs to open a stream on it.
#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) send: h2::client::SendRequest<Bytes>,
    pub(crate) info: Arc<ConnectionInfo>,
}

/// What the connection's task and its calls share.
#[derive(Debug)]
pub(crate) struct ConnectionInfo {
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    /// Calls and streams open (for keepalive: no PINGs while idle).
    active: AtomicUsize,
    /// Those of them still waiting for their answer's head (for write
    /// coalescing): a stream that has answered, such as a watch or a
    /// lease keep-alive, writes rarely and is not counted.
    waiting: AtomicUsize,
    closed: AtomicBool,
    /// The endpoint was removed: the connection closes once no call waits
    /// for an answer on it (its streams then fail, and their owners, such
    /// as the watch engine, reopen them on the endpoints that remain).
    retired: AtomicBool,
    /// Wakes the connection task when it is retired, and when, retired,
    /// its last waiting call is answered.
    retire: Notify,
}

impl ConnectionInfo {
    /// Counts a call or stream as open until the guard is dropped, and as
    /// waiting for its answer until [`ActiveGuard::answered`].
    pub(crate) fn open(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.waiting.fetch_add(1, Ordering::Relaxed);
        ActiveGuard {
            info: self.clone(),
            waiting: true,
        }
    }

    /// Marks the connection unusable: the next call makes a new one.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether several calls wait for their answers: then the next write
    /// is worth delaying by a scheduling round to carry more of them. Open
    /// streams that have answered do not count: with one caller beside a
    /// watch, the delay would buy nothing and cost a wake-up per call.
    pub(crate) fn busy(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 1
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// No new call may use the connection; it closes once idle.
    fn retire(&self) {
        self.close();
        self.retired.store(true, Ordering::Release);
        self.retire.notify_one();
    }

    /// Resolves once the connection is retired and no call waits on it.
    async fn retired_and_idle(&self) {
        loop {
            let notified = self.retire.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.retired.load(Ordering::Acquire) && self.waiting.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// An open call or stream; see [`ConnectionInfo::open`].
#[derive(Debug)]
pub(crate) struct ActiveGuard {
    info: Arc<ConnectionInfo>,
    /// Still counted in [`ConnectionInfo::busy`].
    waiting: bool,
}

impl ActiveGuard {
    /// The stream's answer has begun: it stays open (for keepalive) but no
    /// longer counts as a call waiting for its answer.
    pub(crate) fn answered(&mut self) {
        if std::mem::take(&mut self.waiting) {
            let was = self.info.waiting.fetch_sub(1, Ordering::AcqRel);
            if was == 1 && self.info.retired.load(Ordering::Relaxed) {
                self.info.retire.notify_one();
            }
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.answered();
        self.info.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection attempt a caller is waiting on, and its number. (A
/// `Shared` future cannot say which attempt it was once it has completed.)
struct Waiting(u64, Connecting);

impl Connection {
    pub(crate) fn new(
        endpoint: Endpoint,
        connector: Connector,
        keepalive: Option<Keepalive>,
    ) -> Self {
        let scheme = endpoint.http_scheme();
        let authority = endpoint.authority();
        Connection {
            endpoint,
            scheme,
            authority,
            connector,
            keepalive,
            state: Mutex::new(State::Idle),
            attempts: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        }
    }

    /// The endpoint was removed: calls already on the connection finish,
    /// then it closes (see [`ConnectionInfo`]); it is never made again.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        if let State::Live(live) = &*lock(&self.state) {
            live.info.retire();
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The live connection, connecting first if there is none. A connect
    /// failure is returned once to each caller waiting on that attempt;
    /// the next call tries again.
    ///
    /// `waiting` carries the attempt between polls: pass the same `None`
    /// initialised slot until this returns `Ready`.
    fn poll_live(
        &self,
        cx: &mut Context<'_>,
        waiting: &mut Option<Waiting>,
    ) -> Poll<Result<Live, EtcdError>> {
        loop {
            if let Some(Waiting(number, attempt)) = waiting {
                let result = ready!(Pin::new(attempt).poll(cx));
                let number = *number;
                *waiting = None;
                let mut state = lock(&self.state);
                if matches!(&*state, State::Connecting(current, _) if *current == number) {
                    *state = match &result {
                        Ok(live) => State::Live(live.clone()),
                        Err(_) => State::Idle,
                    };
                }
                if let (Ok(live), true) = (&result, self.retired.load(Ordering::Acquire)) {
                    // Removed while connecting: this call may use it, and
                    // it closes after.
                    live.info.retire();
                }
                return Poll::Ready(result);
            }
            let mut state = lock(&self.state);
            match &*state {
                State::Live(live) if !live.info.is_closed() => {
                    return Poll::Ready(Ok(live.clone()));
                }
                State::Connecting(number, attempt) => {
                    *waiting = Some(Waiting(*number, attempt.clone()));
                }
                State::Idle | State::Live(_) if self.retired.load(Ordering::Acquire) => {
                    return Poll::Ready(Err(EtcdError::client(
                        ErrorKind::Connect,
                        format!("endpoint {} was removed from the client", self.endpoint),
                    )));
                }
                State::Idle | State::Live(_) => {
                    let number = self.attempts.fetch_add(1, Ordering::Relaxed);
                    let attempt = self.connect().boxed().shared();
                    *waiting = Some(Waiting(number, attempt.clone()));
                    *state = State::Connecting(number, attempt);
                }
            }
        }
    }

    /// The live connection, if there is one now; never connects.
    pub(crate) fn current(&self) -> Option<Live> {
        match &*lock(&self.state) {
            State::Live(live) if !live.info.is_closed() => Some(live.clone()),
            _ => None,
        }
    }

    /// [`poll_live`](Self::poll_live) as a future.
    pub(crate) async fn live(&self) -> Result<Live, EtcdError> {
        let mut waiting = None;
        std::future::poll_fn(|cx| self.poll_live(cx, &mut waiting)).await
    }

    fn connect(&self) -> impl Future<Output = Result<Live, EtcdError>> + Send + 'static {
        let connector = self.connector.clone();
        let endpoint = self.endpoint.clone();
        let keepalive = self.keepalive;
        let info = Arc::new(ConnectionInfo {
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            active: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            retire: Notify::new(),
        });
        async move {
            let io = connector.connect(&endpoint, info.clone()).await?;
            let (send, connection) = h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .max_frame_size(MAX_FRAME_SIZE)
                .max_header_list_size(MAX_HEADER_LIST_SIZE)
                .max_send_buffer_size(MAX_SEND_BUFFER)
                .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
                .enable_push(false)
                .handshake::<Io, Bytes>(io)
                .await
                .map_err(|e| {
                    EtcdError::client(
                        ErrorKind::Connect,
                        format!("HTTP/2 handshake with {endpoint} failed: {e}"),
                    )
                })?;
            let (answered, preface) = oneshot::channel();
            tokio::spawn(drive(
                connection,
                info.clone(),
                keepalive,
                endpoint.clone(),
                Preface {
                    timeout: connector.timeout(),
                    answered,
                },
            ));
            match preface.await {
                Ok(Ok(())) => Ok(Live { send, info }),
                Ok(Err(why)) => Err(no_preface(&endpoint, &why)),
                Err(_) => Err(no_preface(&endpoint, "the connection task ended")),
            }
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*lock(&self.state) {
            State::Idle => "idle",
            State::Connecting(..) => "connecting",
            State::Live(live) if live.info.is_closed() => "closed",
            State::Live(_) => "live",
        };
        f.debug_struct("Connection")
            .field("endpoint", &self.endpoint)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// A connect that never became an HTTP/2 connection: nothing was sent.
fn no_preface(endpoint: &Endpoint, why: &str) -> EtcdError {
    EtcdError::client(
        ErrorKind::Connect,
        format!(
            "{endpoint} did not answer as an HTTP/2 server ({why}); nothing was sent. \
             Check the endpoint's scheme (https:// or unixs:// for a TLS server, or TLS settings \
             on the client) and, if the server demands one, the client certificate"
        ),
    )
}

/// How the connection task tells the connect that the server answered.
struct Preface {
    /// The connect timeout, which bounds the wait for the answer too.
    timeout: Duration,
    answered: oneshot::Sender<Result<(), String>>,
}

/// Sends a PING and waits for its PONG while driving the connection: the
/// proof that an HTTP/2 server is at the other end.
async fn await_preface(
    connection: &mut h2::client::Connection<Io, Bytes>,
    ping_pong: &mut h2::PingPong,
    timeout: Duration,
) -> Result<(), String> {
    ping_pong
        .send_ping(h2::Ping::opaque())
        .map_err(|e| e.to_string())?;
    let pong = std::future::poll_fn(|cx| ping_pong.poll_pong(cx));
    tokio::select! {
        ended = &mut *connection => Err(match ended {
            Ok(()) => "the connection closed before the server's HTTP/2 preface".to_owned(),
            Err(error) => format!("the connection failed before the server's HTTP/2 preface: {error}"),
        }),
        answer = tokio::time::timeout(timeout, pong) => match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no HTTP/2 answer within {timeout:?}")),
        },
    }
}

/// The connection's task: waits for the server's answer to the preface
/// (see the [module docs](self)), then runs the HTTP/2 connection, and
/// with keepalive PINGs it while anything is open, closing it when no
/// PONG comes back in time (which fails what is open on it, and makes the
/// next call reconnect).
async fn drive(
    mut connection: h2::client::Connection<Io, Bytes>,
    info: Arc<ConnectionInfo>,
    keepalive: Option<Keepalive>,
    endpoint: Endpoint,
    preface: Preface,
) {
    let Some(mut ping_pong) = connection.ping_pong() else {
        let _ = preface
            .answered
            .send(Err("the connection's PING handle was taken".to_owned()));
        return;
    };
    let answer = await_preface(&mut connection, &mut ping_pong, preface.timeout).await;
    let failed = answer.is_err();
    if preface.answered.send(answer).is_err() || failed {
        // The connect gave up, or the server never answered: nothing was
        // sent on the connection, and nothing will be.
        info.close();
        return;
    }
    let pinger = keepalive.map(|k| (k, ping_pong));
    let running = async {
        match pinger {
            None => (&mut connection).await,
            Some((keepalive, ping_pong)) => {
                run_with_keepalive(&mut connection, &info, keepalive, ping_pong, &endpoint).await
            }
        }
    };
    let ended = tokio::select! {
        ended = running => ended,
        () = info.retired_and_idle() => {
            tracing::debug!(%endpoint, "etcd endpoint removed; closing its idle connection");
            Ok(())
        }
    };
    info.close();
    match ended {
        Ok(()) => tracing::debug!(%endpoint, "etcd HTTP/2 connection ended"),
        Err(error) => tracing::debug!(%endpoint, %error, "etcd HTTP/2 connection failed"),
    }
    // Dropping the connection fails every stream still open on it.
    drop(connection);
}

/// Drives the connection and PINGs it every `keepalive.interval` while
/// anything is open (or always, `while_idle`); ends when it does, or when
/// a PONG is late.
async fn run_with_keepalive(
    connection: &mut h2::client::Connection<Io, Bytes>,
    info: &ConnectionInfo,
    keepalive: Keepalive,
    mut ping_pong: h2::PingPong,
    endpoint: &Endpoint,
) -> Result<(), h2::Error> {
    loop {
        tokio::select! {
            ended = &mut *connection => return ended,
            () = tokio::time::sleep(keepalive.interval) => {}
        }
        if !keepalive.while_idle && info.active.load(Ordering::Relaxed) == 0 {
            continue;
        }
        ping_pong.send_ping(h2::Ping::opaque())?;
        let pong = std::future::poll_fn(|cx| ping_pong.poll_pong(cx));
        tokio::select! {
            ended = &mut *connection => return ended,
            answer = tokio::time::timeout(keepalive.timeout, pong) => match answer {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(error),
                Err(_) => {
                    tracing::warn!(%endpoint, timeout = ?keepalive.timeout, "etcd connection did not answer a keepalive PING; closing it");
                    return Ok(());
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> Arc<ConnectionInfo> {
        Arc::new(ConnectionInfo {
            scheme: Scheme::HTTP,
            authority: Authority::from_static("127.0.0.1:2379"),
            active: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            retire: Notify::new(),
        })
    }

    #[tokio::test]
    async fn a_retired_connection_is_idle_once_its_last_waiting_call_is_answered() {
        let info = info();
        let mut waiting = info.open();
        let _answered_stream = {
            let mut stream = info.open();
            stream.answered();
            stream
        };
        info.retire();
        assert!(info.is_closed(), "no new call may use it");
        let idle = info.retired_and_idle();
        tokio::pin!(idle);
        assert!(
            futures_util::poll!(idle.as_mut()).is_pending(),
            "a call still waits"
        );
        waiting.answered();
        tokio::time::timeout(std::time::Duration::from_secs(1), idle)
            .await
            .expect("idle once the waiting call is answered, open streams or not");
    }

    #[test]
    fn only_calls_waiting_for_an_answer_make_the_connection_busy() {
        let info = info();
        let mut watch = info.open();
        let call = info.open();
        assert!(info.busy(), "two calls wait for their answers");

        watch.answered();
        assert!(!info.busy(), "an answered stream does not count");
        assert_eq!(info.active.load(Ordering::Relaxed), 2, "but it is open");

        watch.answered();
        drop(call);
        assert_eq!(info.waiting.load(Ordering::Relaxed), 0);
        drop(watch);
        assert_eq!(info.active.load(Ordering::Relaxed), 0);
    }
}
