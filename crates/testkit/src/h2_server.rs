//! A misbehaving gRPC server: HTTP/2 on 127.0.0.1 that answers each call
//! the way the test says, wrong on purpose.
//!
//! Real etcd servers test what a client does when a server is late, gone
//! or restarted; they never send a malformed answer. Something pretending
//! to be etcd (a broken proxy, a middlebox, a bug) can: garbage where a
//! message should be, a length prefix that lies, a message of another
//! type, a stream reset, a GOAWAY in the middle of a call, an answer that
//! never ends with a status, or nothing at all. [`MisbehavingServer`]
//! serves those, per gRPC method, on `h2`'s server side, so that tests can
//! check that the client fails with a typed error, classifies what may
//! have been applied, does not hang, and recovers for the next call.
//!
//! The server speaks bytes, not etcd's types (the kit does not depend on
//! the client): a test encodes the messages it wants answered, and reads
//! the requests the server recorded.
//!
//! ```no_run
//! # async fn demo() -> etcd_tower_testkit::Result<()> {
//! use etcd_tower_testkit::{Answer, MisbehavingServer};
//!
//! let server = MisbehavingServer::start().await?;
//! let garbage = bytes::Bytes::from_static(b"not grpc");
//! server.answer("/etcdserverpb.KV/Range", Answer::Chunks(vec![garbage]));
//! // ... point a client at server.endpoint() and call Range ...
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{BufMut, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::{Result, TestkitError};

/// How the server answers a call.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Each message, framed as gRPC frames it, then status OK. For a
    /// unary call, give one message.
    Messages(Vec<Bytes>),
    /// Each message, framed, and then nothing more: the stream stays open
    /// (as a watch stream does) until the client closes it.
    MessagesThenOpen(Vec<Bytes>),
    /// A status without a message (a trailers-only answer).
    Status {
        /// The gRPC status code.
        code: i32,
        /// The `grpc-message`.
        message: String,
    },
    /// These DATA chunks as the response body, as they are (not framed:
    /// garbage, or frames cut anywhere), then status OK.
    Chunks(Vec<Bytes>),
    /// A frame whose length prefix claims `claimed` bytes, followed by
    /// `sent` of them, then status OK.
    LyingLength {
        /// What the prefix says.
        claimed: u32,
        /// How many bytes follow it.
        sent: usize,
    },
    /// The message, framed, then the stream ends without trailers: no
    /// gRPC status at all.
    NoTrailers(Bytes),
    /// The stream is reset with this reason before any answer.
    Reset(Reason),
    /// A GOAWAY before any answer, closing the connection.
    GoAway,
    /// Nothing: the stream stays open and unanswered.
    Silence,
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The gRPC method path, e.g. `/etcdserverpb.KV/Range`.
    pub path: String,
    /// The request's headers (metadata).
    pub headers: HeaderMap,
    /// The messages the client sent, unframed, as they arrived while the
    /// stream was open.
    pub messages: Vec<Bytes>,
}

#[derive(Default)]
struct State {
    answers: HashMap<String, Answer>,
    /// Answers for the next calls of a path, used (once each) before
    /// `answers`.
    once: HashMap<String, VecDeque<Answer>>,
    received: Vec<Received>,
    connections: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a request or message is recorded.
    changed: Notify,
    /// Bumped by [`MisbehavingServer::go_away`]: every connection sends a
    /// GOAWAY and closes.
    go_away: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// An HTTP/2 server on a free port of 127.0.0.1 that answers each gRPC
/// method as told ([`answer`](Self::answer)); methods without an answer
/// get status `UNIMPLEMENTED`. Stops when dropped.
pub struct MisbehavingServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl MisbehavingServer {
    /// Starts the server.
    pub async fn start() -> Result<MisbehavingServer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TestkitError::io("binding the misbehaving server", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestkitError::io("reading the misbehaving server's address", e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            go_away: tokio::sync::watch::Sender::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(MisbehavingServer {
            addr,
            shared,
            accept,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, to use as an etcd endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers calls of `path` (e.g. `/etcdserverpb.KV/Range`) from now on
    /// with `answer`.
    pub fn answer(&self, path: &str, answer: Answer) {
        self.shared.with(|state| {
            state.answers.insert(path.to_owned(), answer);
        });
    }

    /// Answers the next call of `path` with `answer`, once; queued after
    /// other one-off answers of the path, and used before the one set with
    /// [`answer`](Self::answer).
    pub fn answer_once(&self, path: &str, answer: Answer) {
        self.shared.with(|state| {
            state
                .once
                .entry(path.to_owned())
                .or_default()
                .push_back(answer);
        });
    }

    /// Sends a GOAWAY on every open connection and closes it, whatever its
    /// streams are doing (a watch stream mid-way, a call waiting for its
    /// answer). Streams the server accepted may have been applied.
    pub fn go_away(&self) {
        self.shared
            .go_away
            .send_modify(|generation| *generation += 1);
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.with(|state| state.received.clone())
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.with(|state| state.connections)
    }

    /// Waits until `ready` holds for the requests received (checked at
    /// each new request or message), or `within` passes; returns whether
    /// it held.
    pub async fn wait_for(
        &self,
        within: std::time::Duration,
        mut ready: impl FnMut(&[Received]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.shared.changed.notified();
            if self.shared.with(|state| ready(&state.received)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.shared.with(|state| ready(&state.received));
            }
        }
    }
}

impl std::fmt::Debug for MisbehavingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MisbehavingServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for MisbehavingServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        shared.with(|state| state.connections += 1);
        connections.spawn(serve(socket, Arc::clone(&shared)));
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
    }
}

/// Serves one connection: every stream in its own task; a stream that
/// asks for a GOAWAY signals the connection, which sends it and closes.
async fn serve(socket: TcpStream, shared: Arc<Shared>) {
    let Ok(mut connection) = h2::server::handshake(socket).await else {
        return;
    };
    let go_away = Arc::new(Notify::new());
    let mut told = shared.go_away.subscribe();
    let mut streams = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = connection.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    streams.spawn(stream(request, respond, Arc::clone(&shared), Arc::clone(&go_away)));
                }
                _ => return,
            },
            _ = told.changed() => {
                connection.abrupt_shutdown(Reason::NO_ERROR);
                while let Some(Ok(_)) = connection.accept().await {}
                return;
            }
            () = go_away.notified() => {
                connection.abrupt_shutdown(Reason::NO_ERROR);
                // Drive the connection until the GOAWAY is out and it closes.
                while let Some(Ok(_)) = connection.accept().await {}
                return;
            }
        }
    }
}

async fn stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    shared: Arc<Shared>,
    go_away: Arc<Notify>,
) {
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let mut body = request.into_body();
    let index = shared.with(|state| {
        state.received.push(Received {
            path: path.clone(),
            headers,
            messages: Vec::new(),
        });
        state.received.len() - 1
    });
    shared.changed.notify_waiters();
    let answer = shared.with(|state| {
        let once = state.once.get_mut(&path).and_then(VecDeque::pop_front);
        once.or_else(|| state.answers.get(&path).cloned())
    });
    let answer = answer.unwrap_or(Answer::Status {
        code: 12, // UNIMPLEMENTED
        message: format!("the misbehaving server has no answer for {path}"),
    });
    // Record what the client sends while the stream is open (a unary
    // request, a watch stream's creates), without waiting for it: a
    // stream whose client sends nothing is answered too.
    let mut reader = Reader::default();
    let recorder = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                let Some(message) = reader.next(&mut body).await else {
                    return;
                };
                record(&shared, index, Some(message));
            }
        })
    };
    let _recorder = AbortOnDrop(recorder);
    match answer {
        Answer::Messages(messages) => {
            if let Some(mut send) = ok_head(&mut respond) {
                for message in messages {
                    if send.send_data(frame(&message), false).is_err() {
                        return;
                    }
                }
                let _ = send.send_trailers(status_trailers(0, ""));
            }
        }
        Answer::MessagesThenOpen(messages) => {
            if let Some(mut send) = ok_head(&mut respond) {
                for message in messages {
                    if send.send_data(frame(&message), false).is_err() {
                        return;
                    }
                }
                // Stay open until the client resets the stream or the
                // connection ends.
                let _ = std::future::poll_fn(|cx| send.poll_reset(cx)).await;
            }
        }
        Answer::Status { code, message } => {
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::OK;
            let headers = response.headers_mut();
            headers.insert("content-type", HeaderValue::from_static("application/grpc"));
            headers.extend(status_trailers(code, &message));
            let _ = respond.send_response(response, true);
        }
        Answer::Chunks(chunks) => {
            if let Some(mut send) = ok_head(&mut respond) {
                for chunk in chunks {
                    if send.send_data(chunk, false).is_err() {
                        return;
                    }
                }
                let _ = send.send_trailers(status_trailers(0, ""));
            }
        }
        Answer::LyingLength { claimed, sent } => {
            if let Some(mut send) = ok_head(&mut respond) {
                let mut data = BytesMut::with_capacity(5 + sent);
                data.put_u8(0);
                data.put_u32(claimed);
                data.put_bytes(0x08, sent);
                if send.send_data(data.freeze(), false).is_ok() {
                    let _ = send.send_trailers(status_trailers(0, ""));
                }
            }
        }
        Answer::NoTrailers(message) => {
            if let Some(mut send) = ok_head(&mut respond) {
                let _ = send.send_data(frame(&message), true);
            }
        }
        Answer::Reset(reason) => respond.send_reset(reason),
        Answer::GoAway => {
            go_away.notify_one();
            let _ = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
        }
        Answer::Silence => {
            let _ = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
        }
    }
}

fn record(shared: &Shared, index: usize, message: Option<Bytes>) {
    let Some(message) = message else {
        return;
    };
    shared.with(|state| {
        if let Some(received) = state.received.get_mut(index) {
            received.messages.push(message);
        }
    });
    shared.changed.notify_waiters();
}

/// Sends a 200 with gRPC's content type, keeping the stream open.
fn ok_head(respond: &mut SendResponse<Bytes>) -> Option<h2::SendStream<Bytes>> {
    let mut response = Response::new(());
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    respond.send_response(response, false).ok()
}

/// A gRPC frame: not compressed, 4-byte big-endian length, the message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut data = BytesMut::with_capacity(5 + message.len());
    data.put_u8(0);
    data.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    data.put_slice(message);
    data.freeze()
}

fn status_trailers(code: i32, message: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(message) = HeaderValue::from_str(message) {
        if !message.is_empty() {
            trailers.insert("grpc-message", message);
        }
    }
    trailers
}

/// Splits a request body into gRPC messages.
#[derive(Default)]
struct Reader {
    buffer: BytesMut,
}

impl Reader {
    /// The next whole message, or `None` at the end of the body.
    async fn next(&mut self, body: &mut RecvStream) -> Option<Bytes> {
        loop {
            if self.buffer.len() >= 5 {
                let len = u32::from_be_bytes([
                    self.buffer[1],
                    self.buffer[2],
                    self.buffer[3],
                    self.buffer[4],
                ]) as usize;
                if self.buffer.len() >= 5 + len {
                    let mut message = self.buffer.split_to(5 + len);
                    return Some(message.split_off(5).freeze());
                }
            }
            let chunk = body.data().await?.ok()?;
            let _ = body.flow_control().release_capacity(chunk.len());
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
