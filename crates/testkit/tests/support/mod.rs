//! Helpers shared by the kit's own tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Fails the test if `test` takes longer than `secs` seconds.
pub async fn bounded(secs: u64, test: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"));
}

/// Sends `GET /health` over an open keep-alive HTTP/1.1 connection.
pub async fn send_health_request(stream: &mut TcpStream) -> std::io::Result<()> {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
}

/// Reads one HTTP/1.1 response (headers plus `Content-Length` bytes of body)
/// and returns its body. `Ok(None)` when the peer closed the connection first.
pub async fn read_response(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&data, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return Ok(Some(
                    String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned(),
                ));
            }
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&buf[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One `GET /health` on a fresh connection to `addr`; returns the body.
pub async fn health_once(addr: SocketAddr) -> std::io::Result<Option<String>> {
    let mut stream = TcpStream::connect(addr).await?;
    send_health_request(&mut stream).await?;
    read_response(&mut stream).await
}

/// Whether `/proc/<pid>` exists (the process, or its zombie, is still there).
pub fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
