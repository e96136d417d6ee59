//! What to watch and how: [`WatchOptions`].
//!
//! One type serves both ends: [`WatchEngine::watch`](crate::WatchEngine::watch)
//! and the facade's `Client::watch` both take the key and a
//! [`WatchOptions`], so a watch reads the same with or without the client.
//! The options carry no key because the client's other calls
//! (`get(key, GetOptions)`, `delete(key, DeleteOptions)`) do not either: the
//! key is what the call is about, the options how. Which keys beyond the
//! key a watch covers is core's [`Span`], resolved with core's one
//! [`prefix_end`](etcd_tower_core::range::prefix_end).

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb::{watch_create_request::FilterType, WatchCreateRequest};
use etcd_tower_core::range::Span;
use etcd_tower_core::{ErrorKind, EtcdError};

/// Which keys a watcher watches beyond its key, from which revision, and
/// what it receives.
///
/// ```
/// use etcd_tower_watch::WatchOptions;
///
/// // With `watch("config/", options)`: every change under `config/` from
/// // revision 42 on, with previous values, deletions only.
/// let options = WatchOptions::new()
///     .prefix()
///     .start_revision(42)
///     .prev_kv()
///     .no_put();
/// # drop(options);
/// ```
///
/// An empty key with [`prefix`](Self::prefix) or
/// [`from_key`](Self::from_key) watches every key (in a namespace: every key
/// of the namespace); an empty key alone is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    span: Span,
    start_revision: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    fragment: bool,
    require_leader: bool,
    buffer: Option<usize>,
}

impl WatchOptions {
    /// Only the key, from now on.
    pub fn new() -> Self {
        WatchOptions::default()
    }

    /// Every key that starts with the key (every key for an empty key).
    pub fn prefix(mut self) -> Self {
        self.span = Span::Prefix;
        self
    }

    /// Every key greater than or equal to the key (every key for an empty
    /// key).
    pub fn from_key(mut self) -> Self {
        self.span = Span::FromKey;
        self
    }

    /// The keys in `[key, end)`. An end of `"\0"` means "every key from the
    /// key on".
    pub fn range_end(mut self, end: impl Into<Bytes>) -> Self {
        self.span = Span::End(end.into());
        self
    }

    /// Starts at this revision (inclusive): the watcher first receives the
    /// history from there. 0 (the default) means "from now on".
    pub fn start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    /// Sends the previous key-value with each event
    /// ([`WatchEvent::prev_kv`](crate::WatchEvent::prev_kv)).
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Filters out put events (the server does not send them).
    pub fn no_put(mut self) -> Self {
        self.no_put = true;
        self
    }

    /// Filters out delete events.
    pub fn no_delete(mut self) -> Self {
        self.no_delete = true;
        self
    }

    /// Lets the watcher's stream yield the server's periodic progress
    /// notifications: empty batches ([`WatchBatch::is_progress_notify`](crate::WatchBatch::is_progress_notify))
    /// that say how far the store has gone without an event in the range
    /// (every `--experimental-watch-progress-notify-interval`, 10 minutes
    /// by default on the server).
    ///
    /// The engine asks the server for these on every watcher, whatever this
    /// option says: they keep a quiet watcher's resume revision recent, so
    /// that it does not resume after a fault from a revision compacted
    /// meanwhile (see the crate docs on compaction). This option only
    /// decides whether the watcher's stream shows them.
    pub fn progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }

    /// Lets the server split very large responses; the engine joins the
    /// pieces, so the watcher always receives whole revisions.
    pub fn fragment(mut self) -> Self {
        self.fragment = true;
        self
    }

    /// Puts the watcher on a stream opened with `require_leader`: a member
    /// that loses its leader cancels such a stream, and the engine moves its
    /// watchers to another member (instead of waiting on a partitioned one).
    pub fn require_leader(mut self) -> Self {
        self.require_leader = true;
        self
    }

    /// How many events the watcher's buffer holds before the watcher counts
    /// as lagging (see the crate docs); the engine's
    /// [`WatchConfig::buffer`](crate::WatchConfig::buffer) otherwise. At
    /// least 1.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = Some(events.max(1));
        self
    }

    /// The key and range end a watch of `key` with these options sends
    /// (an empty end: the key alone).
    pub fn key_range(&self, key: impl Into<Bytes>) -> (Bytes, Bytes) {
        self.span.resolve(key.into())
    }

    /// Whether the watcher goes on a `require_leader` stream.
    pub fn requires_leader(&self) -> bool {
        self.require_leader
    }

    /// The options with their key: what the engine keeps per watcher.
    pub(crate) fn with_key(self, key: Bytes) -> WatchSpec {
        let (key, range_end) = self.span.resolve(key);
        WatchSpec {
            key,
            range_end,
            start_revision: self.start_revision,
            prev_kv: self.prev_kv,
            no_put: self.no_put,
            no_delete: self.no_delete,
            progress_notify: self.progress_notify,
            fragment: self.fragment,
            require_leader: self.require_leader,
            buffer: self.buffer,
        }
    }
}

/// One watcher's resolved key range and options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WatchSpec {
    pub(crate) key: Bytes,
    pub(crate) range_end: Bytes,
    pub(crate) start_revision: i64,
    pub(crate) prev_kv: bool,
    pub(crate) no_put: bool,
    pub(crate) no_delete: bool,
    pub(crate) progress_notify: bool,
    pub(crate) fragment: bool,
    pub(crate) require_leader: bool,
    pub(crate) buffer: Option<usize>,
}

impl WatchSpec {
    /// Refuses what the server would reject with a message only (an empty
    /// key, an empty range, a negative revision): the engine never reads
    /// rejection messages, so these must not reach the server.
    pub(crate) fn validate(&self) -> Result<(), EtcdError> {
        if self.key.is_empty() {
            return Err(EtcdError::client(
                ErrorKind::EmptyKey,
                "a watch needs a key (watch the empty key with WatchOptions::prefix to watch every key)",
            ));
        }
        if self.start_revision < 0 {
            return Err(EtcdError::client(
                ErrorKind::InvalidRequest,
                format!("watch start revision {} is negative", self.start_revision),
            ));
        }
        let from_key = self.range_end.as_ref() == b"\0";
        if !self.range_end.is_empty() && !from_key && self.range_end <= self.key {
            return Err(EtcdError::client(
                ErrorKind::InvalidRequest,
                "the watch range is empty: its end is not after its key",
            ));
        }
        Ok(())
    }

    /// The create request for one incarnation of the watcher. It always
    /// asks for progress notifications (see [`WatchOptions::progress_notify`]).
    pub(crate) fn create_request(&self, watch_id: i64, start_revision: i64) -> WatchCreateRequest {
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if self.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        WatchCreateRequest {
            key: self.key.clone(),
            range_end: self.range_end.clone(),
            start_revision,
            progress_notify: true,
            filters,
            prev_kv: self.prev_kv,
            watch_id,
            fragment: self.fragment,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn spec(key: &'static str, options: WatchOptions) -> WatchSpec {
        options.with_key(Bytes::from_static(key.as_bytes()))
    }

    #[test]
    fn spans_resolve_with_cores_prefix_end() {
        let s = spec("a/", WatchOptions::new().prefix());
        assert_eq!((&s.key[..], &s.range_end[..]), (&b"a/"[..], &b"a0"[..]));
        let s = WatchOptions::new()
            .prefix()
            .with_key(Bytes::from_static(b"a\xff"));
        assert_eq!(&s.range_end[..], b"b");
        let all = spec("", WatchOptions::new().prefix());
        assert_eq!((&all.key[..], &all.range_end[..]), (&b"\0"[..], &b"\0"[..]));
        assert_eq!(all, spec("", WatchOptions::new().from_key()));
        let s = spec("a", WatchOptions::new().from_key());
        assert_eq!(&s.range_end[..], b"\0");
        assert_eq!(
            WatchOptions::new().prefix().key_range("a/"),
            (Bytes::from("a/"), Bytes::from("a0"))
        );
    }

    #[test]
    fn invalid_ranges_are_refused_before_sending() {
        assert_eq!(
            spec("", WatchOptions::new()).validate().unwrap_err().kind(),
            &ErrorKind::EmptyKey
        );
        assert_eq!(
            spec("b", WatchOptions::new().range_end("a"))
                .validate()
                .unwrap_err()
                .kind(),
            &ErrorKind::InvalidRequest
        );
        assert!(spec("b", WatchOptions::new().range_end("b"))
            .validate()
            .is_err());
        assert!(spec("a", WatchOptions::new().start_revision(-1))
            .validate()
            .is_err());
        for (key, ok) in [
            ("a", WatchOptions::new()),
            ("a/", WatchOptions::new().prefix()),
            ("a", WatchOptions::new().from_key()),
            ("", WatchOptions::new().prefix()),
            ("a", WatchOptions::new().range_end("b").start_revision(3)),
        ] {
            spec(key, ok).validate().unwrap();
        }
    }

    #[test]
    fn the_create_request_carries_every_option() {
        let create = spec(
            "p/",
            WatchOptions::new()
                .prefix()
                .prev_kv()
                .no_put()
                .no_delete()
                .progress_notify()
                .fragment(),
        )
        .create_request(7, 40);
        assert_eq!(create.key, Bytes::from_static(b"p/"));
        assert_eq!(create.range_end, Bytes::from_static(b"p0"));
        assert_eq!(create.watch_id, 7);
        assert_eq!(create.start_revision, 40);
        assert!(create.prev_kv && create.progress_notify && create.fragment);
        assert_eq!(
            create.filters,
            [FilterType::Noput as i32, FilterType::Nodelete as i32]
        );
    }

    #[test]
    fn every_create_asks_for_progress_notifications() {
        let create = spec("k", WatchOptions::new()).create_request(1, 0);
        assert!(create.progress_notify, "the engine's own, not shown");
    }

    #[test]
    fn buffer_is_at_least_one() {
        assert_eq!(spec("k", WatchOptions::new().buffer(0)).buffer, Some(1));
    }
}
