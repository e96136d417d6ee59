//! Opening the byte stream under a connection: TCP (the host resolved by
//! the system's resolver through Tokio, each address tried in turn,
//! `TCP_NODELAY`) or, for `unix://` and `unixs://` endpoints, a Unix
//! socket; then TLS for `https://` and `unixs://` endpoints (with the
//! `tls` feature), all within the connect timeout, with
//! `tracing` events when a connection opens, fails or closes, so that
//! failovers can be followed in the logs.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
#[cfg(feature = "tls")]
use tokio_rustls::client::TlsStream;

use super::connection::ConnectionInfo;
use super::endpoint::Endpoint;
use super::tls::TlsConnect;
use crate::error::{ErrorKind, EtcdError};

/// How to reach one endpoint.
#[derive(Clone)]
pub(crate) struct Connector {
    timeout: Duration,
    /// For `https://` and `unixs://` endpoints: the TLS settings and the name the
    /// server's certificate must carry.
    tls: Option<TlsConnect>,
}

impl Connector {
    pub(crate) fn new(timeout: Duration, tls: Option<TlsConnect>) -> Self {
        Connector { timeout, tls }
    }

    /// How long connecting may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Opens the byte stream to `endpoint` for the connection `info`
    /// describes. Every failure is a [`ErrorKind::Connect`] error: nothing
    /// was sent.
    pub(crate) async fn connect(
        &self,
        endpoint: &Endpoint,
        info: Arc<ConnectionInfo>,
    ) -> Result<Io, EtcdError> {
        let failed = |what: &str, error: &dyn std::fmt::Display| {
            tracing::debug!(%endpoint, %error, "etcd connection failed");
            EtcdError::client(ErrorKind::Connect, format!("{what} {endpoint}: {error}"))
        };
        let opening = async {
            let socket = Socket::connect(endpoint)
                .await
                .map_err(|e| failed("cannot connect to", &e))?;
            match &self.tls {
                None => Ok::<_, EtcdError>(Stream::Plain(socket)),
                #[cfg(feature = "tls")]
                Some(tls) => {
                    let tls = tls
                        .handshake(socket)
                        .await
                        .map_err(|e| failed("TLS handshake failed with", &e))?;
                    match tls.get_ref().1.alpn_protocol() {
                        None | Some(b"h2") => Ok(Stream::Tls(Box::new(tls))),
                        Some(other) => Err(failed(
                            "HTTP/2 was not negotiated with",
                            &String::from_utf8_lossy(other),
                        )),
                    }
                }
                #[cfg(not(feature = "tls"))]
                Some(never) => match *never {},
            }
        };
        let stream = tokio::time::timeout(self.timeout, opening)
            .await
            .map_err(|_| failed("timed out connecting to", &format!("{:?}", self.timeout)))??;
        tracing::debug!(%endpoint, "etcd connection established");
        Ok(Io {
            stream,
            endpoint: endpoint.clone(),
            info,
            yielded: false,
        })
    }
}

/// The socket under a connection: TCP, or a Unix socket.
pub(crate) enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Socket {
    /// Connects to the endpoint's socket, or its host's addresses.
    async fn connect(endpoint: &Endpoint) -> io::Result<Socket> {
        #[cfg(unix)]
        if let Some(path) = endpoint.unix_path() {
            return UnixStream::connect(path).await.map(Socket::Unix);
        }
        match endpoint.uri() {
            Some(uri) => tcp_connect(uri).await.map(Socket::Tcp),
            // Only Unix makes socket endpoints.
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "Unix sockets are not available on this platform",
            )),
        }
    }
}

/// TCP keepalive on every connection, as Go's dialer sets it: the kernel
/// probes a connection idle this long, every this long, so that one whose
/// peer vanished (a crashed host, a NAT that forgot it) is closed even
/// with HTTP/2 keepalive off.
const TCP_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// Resolves the endpoint's host and connects to its addresses in turn
/// (the first that answers wins), with `TCP_NODELAY` set (the small
/// frames of a request leave at once) and TCP keepalive on.
async fn tcp_connect(uri: &http::Uri) -> io::Result<TcpStream> {
    let host = uri.host().unwrap_or_default();
    // `Uri::host` keeps the brackets of an IPv6 address.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(2379);
    let mut last = None;
    for address in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(address).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(TCP_KEEPALIVE)
                    .with_interval(TCP_KEEPALIVE);
                socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
                return Ok(tcp);
            }
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{host} resolves to no address"),
        )
    }))
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

enum Stream {
    Plain(Socket),
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream<Socket>>),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(unix)]
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(unix)]
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(unix)]
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The byte stream of one connection; says in the logs when it closes.
///
/// It reports no vectored writes on purpose: h2 then copies frames of
/// up to 1 KiB into its write buffer instead of chaining each one as a
/// separate slice, so that the requests of many concurrent calls leave in
/// one `write` instead of one `writev` each (measured: 1.27 `writev` per
/// put at 16 concurrent calls before, 0.4 `write` after).
///
/// And it coalesces writes: while several calls on the connection wait
/// for their answers, the first write of each flush cycle yields to the
/// runtime once before it reaches the socket, so that the calls that are ready to
/// run add their requests to h2's write buffer first, and they all leave
/// in one `write`. Most of the client's cost of a small request is the
/// system call and the kernel's work on each segment (on loopback, the
/// sender also pays for the receiver's TCP processing), so this divides it
/// among the calls of a cycle, for one scheduling round of latency. A
/// lone call is written at once, even beside open watches: there is
/// nothing to wait for (measured, one caller beside a watch: 4.4 → 3.3
/// context switches and about 8 % less CPU per put and event).
pub(crate) struct Io {
    stream: Stream,
    endpoint: Endpoint,
    info: Arc<ConnectionInfo>,
    /// This flush cycle has yielded already.
    yielded: bool,
}

impl Drop for Io {
    fn drop(&mut self) {
        tracing::debug!(endpoint = %self.endpoint, "etcd connection closed");
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.yielded {
            this.yielded = true;
            if this.info.busy() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.yielded = false;
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_connections_have_keepalive_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: http::Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let tcp = tcp_connect(&uri).await.unwrap();
        let socket = socket2::SockRef::from(&tcp);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), TCP_KEEPALIVE);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), TCP_KEEPALIVE);
        assert!(tcp.nodelay().unwrap());
    }
}
