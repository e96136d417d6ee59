//! The endpoints of a cluster: parsing them, and choosing one per call.
//!
//! An endpoint is a TCP address (`host:port`, `http://host:port`,
//! `https://host:port`) or, on Unix, a socket (`unix://path`,
//! `unixs://path`). etcd listens on a socket with
//! `--listen-client-urls unix://…`; a client on the same host reaches it
//! without a TCP port, and the file's permissions say who may connect.
//! The socket forms are Go's (`clientv3`'s endpoint parsing):
//!
//! | written | socket |
//! |---|---|
//! | `unix:///var/run/etcd.sock` | `/var/run/etcd.sock` (absolute) |
//! | `unix://localhost:2379` | `localhost:2379`, relative to the working directory: the file etcd creates for `--listen-client-urls unix://localhost:2379` |
//! | `unix:etcd.sock` | `etcd.sock`, relative |
//!
//! `unixs://` is TLS over the socket: the server's certificate must carry
//! the name set with [`TlsOptions::domain_name`](super::TlsOptions::domain_name),
//! or else the socket's file name without its `:port` (`localhost` for
//! `unixs://localhost:2379`, as in Go). HTTP/2 requests on a socket carry
//! that name as their `:authority` (`localhost` when the file name is not
//! a valid one); etcd does not check it.
//!
//! Calls are spread over the endpoints by the transport's
//! [selection policy](super::selection), round-robin by default (as etcd's
//! Go client does). An endpoint whose connection could not be made, or
//! broke, is skipped for a back-off period, so that after a member dies
//! only the calls already on it notice; the next ones go elsewhere at once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use http::Uri;

use super::connection::Connection;
use super::selection::{Candidates, SelectionPolicy};
use crate::error::{ErrorKind, EtcdError};

/// One endpoint, parsed: a TCP address or a Unix socket, with or without
/// TLS. Its `Display` is the canonical text, which parses back to it
/// (`http://127.0.0.1:2379/`, `unix:///var/run/etcd.sock`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    address: Address,
    tls: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Address {
    Tcp(Uri),
    /// Only ever made on Unix.
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses an endpoint as [`Transport::builder`](super::Transport::builder)
    /// does without TLS settings (a scheme-less `host:port` is `http://`).
    pub fn parse(text: &str) -> Result<Endpoint, EtcdError> {
        parse_endpoint(text, "http")
    }

    /// Whether the endpoint speaks TLS (`https://`, `unixs://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The URL of a TCP endpoint; `None` for a Unix socket.
    pub fn uri(&self) -> Option<&Uri> {
        match &self.address {
            Address::Tcp(uri) => Some(uri),
            Address::Unix(_) => None,
        }
    }

    /// The socket of a Unix endpoint; `None` for a TCP one.
    pub fn unix_path(&self) -> Option<&Path> {
        match &self.address {
            Address::Tcp(_) => None,
            Address::Unix(path) => Some(path),
        }
    }

    /// The scheme as written: `http`, `https`, `unix` or `unixs`.
    pub fn scheme(&self) -> &str {
        match (&self.address, self.tls) {
            (Address::Tcp(_), false) => "http",
            (Address::Tcp(_), true) => "https",
            (Address::Unix(_), false) => "unix",
            (Address::Unix(_), true) => "unixs",
        }
    }

    /// The HTTP/2 `:scheme` of its requests.
    pub(crate) fn http_scheme(&self) -> Scheme {
        match self.tls {
            true => Scheme::HTTPS,
            false => Scheme::HTTP,
        }
    }

    /// The HTTP/2 `:authority` of its requests: the URL's for TCP, the
    /// socket's file name (or `localhost`) for a socket.
    pub(crate) fn authority(&self) -> Authority {
        match &self.address {
            Address::Tcp(uri) => uri
                .authority()
                .cloned()
                .unwrap_or_else(|| Authority::from_static("localhost")),
            Address::Unix(path) => socket_authority(path),
        }
    }

    /// The name its TLS server must prove, unless the TLS settings name
    /// one: the URL's host, or the socket's file name without its port.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_host(&self) -> String {
        match &self.address {
            Address::Tcp(uri) => uri.host().unwrap_or_default().to_owned(),
            Address::Unix(path) => socket_authority(path).host().to_owned(),
        }
    }

    /// Whether `other` is this endpoint, its scheme aside (for a
    /// [`TargetEndpoint`](super::TargetEndpoint) written without one).
    pub(crate) fn same_address(&self, other: &Endpoint) -> bool {
        match (&self.address, &other.address) {
            (Address::Tcp(a), Address::Tcp(b)) => a.authority() == b.authority(),
            (Address::Unix(a), Address::Unix(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Address::Tcp(uri) => write!(f, "{uri}"),
            Address::Unix(path) => write!(f, "{}://{}", self.scheme(), path.display()),
        }
    }
}

/// A socket's `:authority`: its file name if that is one (`localhost:2379`
/// for etcd's `unix://localhost:2379`), else `localhost`.
fn socket_authority(path: &Path) -> Authority {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| Authority::try_from(name).ok())
        .filter(|authority| !authority.host().is_empty() && !authority.as_str().contains('@'))
        .unwrap_or_else(|| Authority::from_static("localhost"))
}

/// Parses one endpoint: `host:port`, `http://host:port`,
/// `https://host:port`, or a Unix socket (see the [module docs](self)).
/// An endpoint without a scheme takes `default_scheme`: `https` when TLS
/// settings were given, else `http`.
pub(crate) fn parse_endpoint(text: &str, default_scheme: &str) -> Result<Endpoint, EtcdError> {
    let trimmed = text.trim();
    let invalid = |why: &str| {
        EtcdError::client(
            ErrorKind::InvalidEndpoint,
            format!("endpoint {trimmed:?}: {why}"),
        )
    };
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if let Some((tls, path)) = split_unix(trimmed) {
        return unix_socket(path, tls).map_err(|why| invalid(&why));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("{default_scheme}://{trimmed}")
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|e| invalid(&format!("not a URL ({e})")))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(invalid("the scheme must be http, https, unix or unixs")),
    };
    let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
    if authority.host().is_empty() {
        return Err(invalid("it has no host"));
    }
    if authority.port_u16().is_none() {
        return Err(invalid("it has no port"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("it must not have a path"));
    }
    Ok(Endpoint {
        address: Address::Tcp(uri),
        tls,
    })
}

/// `unix://path`, `unixs://path`, `unix:path` or `unixs:path` (any case
/// of the scheme): whether it is TLS, and the path.
fn split_unix(text: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    let tls = if scheme.eq_ignore_ascii_case("unix") {
        false
    } else if scheme.eq_ignore_ascii_case("unixs") {
        true
    } else {
        return None;
    };
    Some((tls, rest.strip_prefix("//").unwrap_or(rest)))
}

/// The longest socket path the platform's `sockaddr_un` holds (its
/// `sun_path`, less the closing NUL).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_SOCKET_PATH: usize = 107;
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
const MAX_SOCKET_PATH: usize = 103;

/// A Unix socket endpoint, or why `path` cannot be one.
#[cfg(unix)]
fn unix_socket(path: &str, tls: bool) -> Result<Endpoint, String> {
    if path.is_empty() {
        return Err("the socket path is empty: write unix:///absolute/path \
                    or unix://relative/path"
            .to_owned());
    }
    if path.contains('\0') {
        return Err("the socket path holds a NUL byte".to_owned());
    }
    if path.ends_with('/') {
        return Err("the socket path ends with '/', so it names a directory".to_owned());
    }
    if path.len() > MAX_SOCKET_PATH {
        return Err(format!(
            "the socket path is {} bytes long, but a Unix socket address holds at most \
             {MAX_SOCKET_PATH}",
            path.len()
        ));
    }
    Ok(Endpoint {
        address: Address::Unix(PathBuf::from(path)),
        tls,
    })
}

/// Unix sockets exist only on Unix.
#[cfg(not(unix))]
fn unix_socket(_path: &str, _tls: bool) -> Result<Endpoint, String> {
    Err("Unix socket endpoints are not available on this platform".to_owned())
}

/// One endpoint and its (lazily made) connection.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) connection: Connection,
    /// Milliseconds since [`EndpointSet::epoch`] until which the endpoint
    /// is avoided; 0 when healthy.
    down_until_ms: AtomicU64,
    /// Calls in flight, counted for a policy that reads them.
    pub(crate) in_flight: AtomicUsize,
}

/// The endpoints, with the selection policy and failure back-off.
#[derive(Debug)]
pub(crate) struct EndpointSet {
    /// Shared with the sets that replace this one, for the endpoints they
    /// keep: a kept endpoint keeps its connection and its back-off.
    slots: Box<[Arc<Slot>]>,
    /// Shared with the sets that replace this one.
    policy: Arc<dyn SelectionPolicy>,
    /// The policy's `counts_in_flight`, asked once.
    counts_in_flight: bool,
    epoch: Instant,
    backoff: Duration,
}

impl Slot {
    pub(crate) fn new(connection: Connection) -> Arc<Slot> {
        Arc::new(Slot {
            connection,
            down_until_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        self.connection.endpoint()
    }
}

impl EndpointSet {
    pub(crate) fn new(
        endpoints: Vec<Connection>,
        backoff: Duration,
        policy: Arc<dyn SelectionPolicy>,
    ) -> Self {
        EndpointSet::with_epoch(
            endpoints.into_iter().map(Slot::new).collect(),
            backoff,
            Instant::now(),
            policy,
        )
    }

    /// A set of these slots; `epoch` is that of the set they come from, so
    /// that their back-off deadlines keep their meaning.
    pub(crate) fn with_epoch(
        slots: Vec<Arc<Slot>>,
        backoff: Duration,
        epoch: Instant,
        policy: Arc<dyn SelectionPolicy>,
    ) -> Self {
        EndpointSet {
            slots: slots.into_boxed_slice(),
            counts_in_flight: policy.counts_in_flight(),
            policy,
            epoch,
            backoff,
        }
    }

    /// The selection policy, for a set that replaces this one.
    pub(crate) fn policy(&self) -> &Arc<dyn SelectionPolicy> {
        &self.policy
    }

    /// The slots, for a set that replaces this one.
    pub(crate) fn slots(&self) -> &[Arc<Slot>] {
        &self.slots
    }

    /// When this set's clock started (back-off deadlines count from it).
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The back-off of a failed endpoint.
    pub(crate) fn backoff(&self) -> Duration {
        self.backoff
    }

    pub(crate) fn slot(&self, index: usize) -> &Slot {
        &self.slots[index % self.slots.len()]
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn is_up(&self, index: usize, now: u64) -> bool {
        self.slot(index).down_until_ms.load(Ordering::Relaxed) <= now
    }

    /// The endpoint the policy picks for the next call.
    pub(crate) fn pick(&self) -> usize {
        let candidates = Candidates::new(self, self.now_ms());
        self.policy.pick(&candidates) % self.slots.len()
    }

    /// Whether calls are counted in flight (the policy reads them).
    pub(crate) fn counts_in_flight(&self) -> bool {
        self.counts_in_flight
    }

    /// The shared slot of endpoint `index`.
    pub(crate) fn slot_arc(&self, index: usize) -> &Arc<Slot> {
        &self.slots[index % self.slots.len()]
    }

    /// An endpoint not in `tried` (a bit set of indexes), healthy ones
    /// first; `None` when every endpoint was tried.
    pub(crate) fn pick_untried(&self, tried: u64) -> Option<usize> {
        let now = self.now_ms();
        let untried = |i: &usize| *i >= 64 || tried & (1 << i) == 0;
        let candidates = (0..self.slots.len()).filter(untried);
        let mut fallback = None;
        for i in candidates {
            if self.is_up(i, now) {
                return Some(i);
            }
            fallback.get_or_insert(i);
        }
        fallback
    }

    pub(crate) fn soonest_up(&self) -> usize {
        (0..self.slots.len())
            .min_by_key(|&i| self.slots[i].down_until_ms.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Ends the endpoint's back-off.
    #[cfg(test)]
    pub(crate) fn mark_up(&self, index: usize) {
        self.slot(index).down_until_ms.store(0, Ordering::Relaxed);
    }

    /// Avoids the endpoint for the back-off period.
    pub(crate) fn mark_down(&self, index: usize) {
        let slot = self.slot(index);
        let until = self.now_ms() + u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX);
        let was = slot.down_until_ms.swap(until, Ordering::Relaxed);
        if was <= self.now_ms() {
            tracing::info!(endpoint = %slot.endpoint(), backoff = ?self.backoff, "etcd endpoint failed; failing over");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::connector::Connector;

    #[test]
    fn endpoints_parse_with_or_without_scheme() {
        assert_eq!(
            parse_endpoint("127.0.0.1:2379", "http")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:2379/"
        );
        assert_eq!(
            parse_endpoint(" https://etcd.local:2379 ", "http")
                .unwrap()
                .scheme(),
            "https"
        );
    }

    #[cfg(unix)]
    #[test]
    fn unix_sockets_parse_as_go_writes_them() {
        for (text, path, tls, authority) in [
            (
                "unix:///var/run/etcd.sock",
                "/var/run/etcd.sock",
                false,
                "etcd.sock",
            ),
            (
                "unix://localhost:2379",
                "localhost:2379",
                false,
                "localhost:2379",
            ),
            (
                "UNIXS://localhost:2379",
                "localhost:2379",
                true,
                "localhost:2379",
            ),
            ("unix:etcd.sock", "etcd.sock", false, "etcd.sock"),
            ("unixs:///tmp/x/a b", "/tmp/x/a b", true, "localhost"),
        ] {
            let endpoint = parse_endpoint(text, "https").unwrap();
            assert_eq!(endpoint.unix_path(), Some(Path::new(path)), "{text}");
            assert_eq!(endpoint.is_tls(), tls, "{text}");
            assert_eq!(endpoint.authority().as_str(), authority, "{text}");
            assert_eq!(endpoint.uri(), None, "{text}");
            // The canonical text parses back to the same endpoint.
            assert_eq!(
                parse_endpoint(&endpoint.to_string(), "http").unwrap(),
                endpoint
            );
        }
        let tls = parse_endpoint("unixs://localhost:2379", "http").unwrap();
        #[cfg(feature = "tls")]
        assert_eq!(tls.tls_host(), "localhost");
        assert_eq!(tls.to_string(), "unixs://localhost:2379");
        assert_eq!(tls.http_scheme(), Scheme::HTTPS);
    }

    #[cfg(unix)]
    #[test]
    fn malformed_unix_sockets_are_typed_errors_that_read_as_sentences() {
        let long = format!("unix:///{}", "a".repeat(MAX_SOCKET_PATH));
        for (bad, why) in [
            ("unix://", "the socket path is empty"),
            ("unixs:", "the socket path is empty"),
            ("unix:///tmp/", "names a directory"),
            ("unix:///tmp/a\0b", "NUL byte"),
            (long.as_str(), "bytes long"),
        ] {
            let err = parse_endpoint(bad, "http").unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidEndpoint, "{bad:?}: {err}");
            assert!(err.message().starts_with("endpoint \""), "{err}");
            assert!(err.message().contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn bad_endpoints_are_typed_errors() {
        for bad in [
            "",
            "   ",
            "127.0.0.1",
            "ftp://h:2379",
            "http://:2379",
            "http://h:2379/path",
            "h:notaport",
            "http://[::1",
        ] {
            let err = parse_endpoint(bad, "http").unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidEndpoint, "{bad:?}: {err}");
        }
    }

    #[tokio::test]
    async fn a_failed_endpoint_is_skipped_until_its_backoff_ends() {
        let connector = Connector::new(Duration::from_secs(1), None);
        let set = EndpointSet::new(
            (1..=3)
                .map(|p| {
                    let endpoint = parse_endpoint(&format!("127.0.0.1:{p}"), "http").unwrap();
                    Connection::new(endpoint, connector.clone(), None)
                })
                .collect(),
            Duration::from_secs(60),
            crate::transport::selection::default_policy(),
        );
        set.mark_down(1);
        let picks: Vec<usize> = (0..6).map(|_| set.pick()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert!(picks.contains(&0) && picks.contains(&2), "{picks:?}");
        assert_eq!(set.pick_untried(0b001), Some(2));
        assert_eq!(set.pick_untried(0b101), Some(1));
        assert_eq!(set.pick_untried(0b111), None);
    }
}
