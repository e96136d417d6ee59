//! A TCP proxy between the client under test and etcd, for network faults.
//!
//! Killing or freezing etcd tests server faults; the network between client
//! and server fails in other ways, and those are what keep-alives, time-outs
//! and retries exist for. The proxy listens on a free loopback port, forwards
//! each connection to a target, and lets the test:
//!
//! - [`cut`](Proxy::cut) every open connection abruptly (RST, as after a
//!   server crash or a middlebox dropping state), while still accepting new ones;
//! - [`blackhole`](Proxy::blackhole) traffic: bytes stop flowing in both
//!   directions but no connection is closed, so the client sees a silent, open
//!   connection, the way a network partition looks. Nothing is dropped:
//!   bytes are held back, as TCP retransmission would do across a partition,
//!   and flow again when the blackhole is lifted;
//! - [`forget_open`](Proxy::forget_open) connections, as a NAT or load
//!   balancer that dropped its state does: their bytes are dropped from
//!   then on, both ways, while new connections work;
//! - [`reject_new`](Proxy::reject_new) connections (accepted then reset at once);
//! - [`retarget`](Proxy::retarget) new connections to another address.
//!
//! It runs on tokio tasks that are aborted when the proxy is dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{Result, TestkitError};

/// How long the proxy tries to reach its target for one accepted connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Size of the forwarding buffer of each direction of each connection.
const BUFFER_SIZE: usize = 16 * 1024;

/// A TCP proxy on 127.0.0.1 with fault injection. Stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    target: Mutex<SocketAddr>,
    reject_new: AtomicBool,
    connections: AtomicUsize,
    /// `true` while blackholed; every pump watches it.
    blackhole: watch::Sender<bool>,
    /// Bumped by `cut()`; every connection watches it.
    cut: watch::Sender<u64>,
    /// Bumped by `forget_open()`: connections accepted before drop every
    /// byte from then on.
    forget: watch::Sender<u64>,
    /// Connections accepted so far.
    accepted: AtomicUsize,
}

impl Proxy {
    /// Starts a proxy on a free port of 127.0.0.1 forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| TestkitError::io("binding the proxy on 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestkitError::io("reading the proxy's address", e))?;
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            reject_new: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            blackhole: watch::Sender::new(false),
            cut: watch::Sender::new(0),
            forget: watch::Sender::new(0),
            accepted: AtomicUsize::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::info!(%addr, %target, "started proxy");
        Ok(Self {
            addr,
            shared,
            accept_task,
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, to use as an etcd endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where new connections are forwarded to.
    pub fn target(&self) -> SocketAddr {
        *self
            .shared
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Forwards connections accepted from now on to `target`; open
    /// connections keep their old target.
    pub fn retarget(&self, target: SocketAddr) {
        *self
            .shared
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = target;
        tracing::info!(proxy = %self.addr, %target, "proxy retargeted");
    }

    /// Resets every open connection (both sides get an RST); new
    /// connections are still accepted.
    pub fn cut(&self) {
        self.shared.cut.send_modify(|generation| *generation += 1);
        tracing::info!(proxy = %self.addr, connections = self.connections(), "proxy cut all connections");
    }

    /// While `true`, no byte is forwarded in either direction, on open and new
    /// connections alike, and no connection is closed. `false` lets the
    /// held-back bytes flow again.
    pub fn blackhole(&self, on: bool) {
        self.shared.blackhole.send_replace(on);
        tracing::info!(proxy = %self.addr, on, "proxy blackhole");
    }

    /// While `true`, new connections are accepted and immediately reset.
    pub fn reject_new(&self, on: bool) {
        self.shared.reject_new.store(on, Ordering::Relaxed);
        tracing::info!(proxy = %self.addr, on, "proxy rejects new connections");
    }

    /// Forgets every open connection, as a NAT or load balancer that lost
    /// its state does: from now on their bytes are dropped in both
    /// directions, with no FIN or RST, so neither side can tell until a
    /// timeout; a side that closes its end makes the proxy drop the
    /// connection. Connections accepted later work.
    pub fn forget_open(&self) {
        self.shared
            .forget
            .send_modify(|generation| *generation += 1);
        tracing::info!(proxy = %self.addr, connections = self.connections(), "proxy forgot its open connections");
    }

    /// How many connections the proxy accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// How many connections are open through the proxy right now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks: aborting it aborts them.
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        if shared.reject_new.load(Ordering::Relaxed) {
            reset(client);
            continue;
        }
        connections.spawn(forward(client, Arc::clone(&shared)));
    }
}

/// Forwards one accepted connection until either side closes or it is cut.
async fn forward(mut client: TcpStream, shared: Arc<Shared>) {
    let target = *shared.target.lock().unwrap_or_else(PoisonError::into_inner);
    let mut upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
    {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(_)) | Err(_) => {
            reset(client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let mut cut = shared.cut.subscribe();
    let _count = ConnectionCount::new(&shared.connections);
    let born = *shared.forget.borrow();
    let was_cut = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let faults = |shared: &Shared| Faults {
            blackhole: shared.blackhole.subscribe(),
            forget: shared.forget.subscribe(),
            born,
        };
        // Both directions to their end, unless one ends on a forgotten
        // connection: then the connection is dropped at once.
        let both_ways = async {
            let up = pump(&mut client_read, &mut upstream_write, faults(&shared));
            let down = pump(&mut upstream_read, &mut client_write, faults(&shared));
            tokio::pin!(up, down);
            tokio::select! {
                forgotten = &mut up => forgotten || down.await,
                forgotten = &mut down => forgotten || up.await,
            }
        };
        tokio::select! {
            forgotten = both_ways => forgotten,
            _ = cut.changed() => true,
        }
    };
    if was_cut {
        reset(client);
        reset(upstream);
    }
}

/// What a pump watches: the blackhole, and whether its connection was
/// forgotten (accepted before the last `forget_open`).
struct Faults {
    blackhole: watch::Receiver<bool>,
    forget: watch::Receiver<u64>,
    born: u64,
}

impl Faults {
    fn forgotten(&self) -> bool {
        *self.forget.borrow() > self.born
    }
}

/// Copies bytes from `from` to `to`, pausing whenever the blackhole is on,
/// dropping them once the connection is forgotten. On end of stream,
/// half-closes `to`; returns whether the connection was forgotten by then
/// (the caller then drops it both ways).
async fn pump(
    from: &mut tokio::net::tcp::ReadHalf<'_>,
    to: &mut tokio::net::tcp::WriteHalf<'_>,
    mut faults: Faults,
) -> bool {
    let mut buf = vec![0u8; BUFFER_SIZE];
    loop {
        if !faults.forgotten() && faults.blackhole.wait_for(|on| !on).await.is_err() {
            return false;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                if faults.forgotten() {
                    return true;
                }
                let _ = to.shutdown().await;
                return false;
            }
            Ok(n) => n,
        };
        if faults.forgotten() {
            continue; // dropped, as by a NAT that lost the connection
        }
        // The blackhole may have been switched on while we were reading.
        if faults.blackhole.wait_for(|on| !on).await.is_err() {
            return false;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
}

/// Closes `stream` with an RST instead of a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Counts a connection as open for as long as it lives.
struct ConnectionCount<'a>(&'a AtomicUsize);

impl<'a> ConnectionCount<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for ConnectionCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
