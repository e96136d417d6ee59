//! The endpoints of a cluster: parsing them, and choosing one per call.
//!
//! Calls are spread round-robin over the endpoints (as etcd's Go client
//! does). An endpoint whose connection could not be made, or broke, is
//! skipped for a back-off period, so that after a member dies only the
//! calls already on it notice; the next ones go elsewhere at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Uri;

use super::connection::Connection;
use crate::error::{ErrorKind, EtcdError};

/// Parses one endpoint: `host:port`, `http://host:port` or
/// `https://host:port`. An endpoint without a scheme takes
/// `default_scheme`: `https` when TLS settings were given, else `http`.
pub(crate) fn parse_endpoint(text: &str, default_scheme: &str) -> Result<Uri, EtcdError> {
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
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("{default_scheme}://{trimmed}")
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|e| invalid(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(invalid("the scheme must be http or https")),
    }
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
    Ok(uri)
}

/// One endpoint and its (lazily made) connection.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) connection: Connection,
    /// Milliseconds since [`EndpointSet::epoch`] until which the endpoint
    /// is avoided; 0 when healthy.
    down_until_ms: AtomicU64,
}

/// The endpoints, with round-robin choice and failure back-off.
#[derive(Debug)]
pub(crate) struct EndpointSet {
    /// Shared with the sets that replace this one, for the endpoints they
    /// keep: a kept endpoint keeps its connection and its back-off.
    slots: Box<[Arc<Slot>]>,
    next: AtomicUsize,
    epoch: Instant,
    backoff: Duration,
}

impl Slot {
    pub(crate) fn new(connection: Connection) -> Arc<Slot> {
        Arc::new(Slot {
            connection,
            down_until_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn uri(&self) -> &Uri {
        self.connection.uri()
    }
}

impl EndpointSet {
    pub(crate) fn new(endpoints: Vec<Connection>, backoff: Duration) -> Self {
        EndpointSet::with_epoch(
            endpoints.into_iter().map(Slot::new).collect(),
            backoff,
            Instant::now(),
        )
    }

    /// A set of these slots; `epoch` is that of the set they come from, so
    /// that their back-off deadlines keep their meaning.
    pub(crate) fn with_epoch(slots: Vec<Arc<Slot>>, backoff: Duration, epoch: Instant) -> Self {
        EndpointSet {
            slots: slots.into_boxed_slice(),
            next: AtomicUsize::new(0),
            epoch,
            backoff,
        }
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

    fn is_up(&self, index: usize, now: u64) -> bool {
        self.slots[index].down_until_ms.load(Ordering::Relaxed) <= now
    }

    /// The next endpoint in round-robin order that is not backing off; if
    /// every endpoint is backing off, the one whose back-off ends first.
    pub(crate) fn pick(&self) -> usize {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        if n == 1 {
            return 0;
        }
        let now = self.now_ms();
        (0..n)
            .map(|offset| (start + offset) % n)
            .find(|&i| self.is_up(i, now))
            .unwrap_or_else(|| self.soonest_up())
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

    fn soonest_up(&self) -> usize {
        (0..self.slots.len())
            .min_by_key(|&i| self.slots[i].down_until_ms.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Avoids the endpoint for the back-off period.
    pub(crate) fn mark_down(&self, index: usize) {
        let slot = self.slot(index);
        let until = self.now_ms() + u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX);
        let was = slot.down_until_ms.swap(until, Ordering::Relaxed);
        if was <= self.now_ms() {
            tracing::info!(endpoint = %slot.uri(), backoff = ?self.backoff, "etcd endpoint failed; failing over");
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
                .scheme_str(),
            Some("https")
        );
    }

    #[test]
    fn bad_endpoints_are_typed_errors() {
        for bad in [
            "",
            "   ",
            "127.0.0.1",
            "unix:///tmp/x",
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
                    let uri = parse_endpoint(&format!("127.0.0.1:{p}"), "http").unwrap();
                    Connection::new(uri, connector.clone(), None)
                })
                .collect(),
            Duration::from_secs(60),
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
