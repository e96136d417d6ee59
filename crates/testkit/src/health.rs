//! Readiness probing through etcd's `GET /health` endpoint.
//!
//! Tests must not sleep for a fixed time hoping etcd is up; the kit polls
//! `/health` until it reports `"health":"true"` (etcd 3.4 answers
//! `{"health":"true"}`, 3.5 adds `"reason":""`). That answer means the member
//! has a leader and can serve a read, which is what a test needs before it
//! starts. A hand-written HTTP/1.0 request over a plain TCP socket keeps the
//! kit free of an HTTP client dependency.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often readiness is polled.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// One probe's own time limit: a stopped member accepts the connection but never answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the etcd HTTP listener at `addr` says it is healthy right now.
/// Any failure (refused, time-out, unhealthy) is `false`.
pub(crate) async fn is_healthy(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, get_health(addr)).await,
        Ok(Ok(body)) if body.replace(' ', "").contains("\"health\":\"true\"")
    )
}

/// Whether the HTTP listener at `addr` answers `GET /health` at all,
/// healthy or not, within the probe's time limit.
pub(crate) async fn answers(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, get_health(addr)).await,
        Ok(Ok(response)) if response.starts_with("HTTP/")
    )
}

/// Fetches `GET /health` from `addr` and returns the whole response.
pub(crate) async fn get_health(addr: SocketAddr) -> std::io::Result<String> {
    get(addr, "/health").await
}

/// Fetches `GET path` from `addr` over HTTP/1.0 and returns the whole
/// response.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}
