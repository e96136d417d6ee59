//! The TCP connector under every channel: plain `hyper-util` HTTP
//! connector, plus `tracing` events when a connection opens, fails or
//! closes, so that failovers can be followed in the logs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Connects to one endpoint and traces the connection's life.
#[derive(Clone, Debug)]
pub(crate) struct TracedConnector {
    inner: HttpConnector,
}

impl TracedConnector {
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        let mut inner = HttpConnector::new();
        inner.enforce_http(false);
        inner.set_nodelay(true);
        inner.set_connect_timeout(Some(connect_timeout));
        TracedConnector { inner }
    }
}

impl tower::Service<Uri> for TracedConnector {
    type Response = TracedIo;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<TracedIo, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri.clone());
        Box::pin(async move {
            match connecting.await {
                Ok(io) => {
                    tracing::debug!(endpoint = %uri, "etcd connection established");
                    Ok(TracedIo { io, uri })
                }
                Err(error) => {
                    tracing::debug!(endpoint = %uri, %error, "etcd connection failed");
                    Err(error.into())
                }
            }
        })
    }
}

/// A TCP stream that says in the logs when it closes.
#[pin_project::pin_project(PinnedDrop)]
#[derive(Debug)]
pub(crate) struct TracedIo {
    #[pin]
    io: TokioIo<TcpStream>,
    uri: Uri,
}

#[pin_project::pinned_drop]
impl PinnedDrop for TracedIo {
    fn drop(self: Pin<&mut Self>) {
        tracing::debug!(endpoint = %self.uri, "etcd connection closed");
    }
}

impl Read for TracedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl Write for TracedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
}
