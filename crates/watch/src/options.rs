//! What to watch and how: [`WatchOptions`].

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb::{watch_create_request::FilterType, WatchCreateRequest};
use etcd_tower_core::{ErrorKind, EtcdError};

/// Which keys a watcher watches, from which revision, and what it receives.
///
/// ```
/// use etcd_tower_watch::WatchOptions;
///
/// // Every change under `config/` from revision 42 on, with previous values,
/// // deletions only.
/// let options = WatchOptions::prefix("config/")
///     .start_revision(42)
///     .prev_kv(true)
///     .no_put(true);
/// # drop(options);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchOptions {
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

impl WatchOptions {
    /// Watches one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        WatchOptions {
            key: key.into(),
            range_end: Bytes::new(),
            start_revision: 0,
            prev_kv: false,
            no_put: false,
            no_delete: false,
            progress_notify: false,
            fragment: false,
            require_leader: false,
            buffer: None,
        }
    }

    /// Watches every key that starts with `prefix` (every key when the
    /// prefix is empty).
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let prefix = prefix.into();
        if prefix.is_empty() {
            return Self::all_keys();
        }
        let end = prefix_end(&prefix);
        Self::key(prefix).range_end(end)
    }

    /// Watches every key greater than or equal to `key`.
    pub fn from_key(key: impl Into<Bytes>) -> Self {
        Self::key(key).range_end(Bytes::from_static(b"\0"))
    }

    /// Watches every key.
    pub fn all_keys() -> Self {
        Self::key(Bytes::from_static(b"\0")).range_end(Bytes::from_static(b"\0"))
    }

    /// Watches the keys in `[key, end)`. An end of `"\0"` means "every key
    /// from `key` on".
    pub fn range_end(mut self, end: impl Into<Bytes>) -> Self {
        self.range_end = end.into();
        self
    }

    /// Starts at this revision (inclusive): the watcher first receives the
    /// history from there. 0 (the default) means "from now on".
    pub fn start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    /// Sends the previous key-value with each event.
    pub fn prev_kv(mut self, on: bool) -> Self {
        self.prev_kv = on;
        self
    }

    /// Filters out put events (the server does not send them).
    pub fn no_put(mut self, on: bool) -> Self {
        self.no_put = on;
        self
    }

    /// Filters out delete events.
    pub fn no_delete(mut self, on: bool) -> Self {
        self.no_delete = on;
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
    pub fn progress_notify(mut self, on: bool) -> Self {
        self.progress_notify = on;
        self
    }

    /// Lets the server split very large responses; the engine joins the
    /// pieces, so the watcher always receives whole revisions.
    pub fn fragment(mut self, on: bool) -> Self {
        self.fragment = on;
        self
    }

    /// Puts the watcher on a stream opened with `require_leader`: a member
    /// that loses its leader cancels such a stream, and the engine moves its
    /// watchers to another member (instead of waiting on a partitioned one).
    pub fn require_leader(mut self, on: bool) -> Self {
        self.require_leader = on;
        self
    }

    /// How many events the watcher's buffer holds before the watcher counts
    /// as lagging (see the crate docs); the engine's default otherwise.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = Some(events.max(1));
        self
    }

    /// The watched key.
    pub fn watched_key(&self) -> &Bytes {
        &self.key
    }

    /// The end of the watched range (empty: the key alone).
    pub fn watched_range_end(&self) -> &Bytes {
        &self.range_end
    }

    /// Whether the watcher goes on a `require_leader` stream.
    pub fn requires_leader(&self) -> bool {
        self.require_leader
    }

    /// Refuses what the server would reject with a message only (an empty
    /// key, an empty range, a negative revision): the engine never reads
    /// rejection messages, so these must not reach the server.
    pub(crate) fn validate(&self) -> Result<(), EtcdError> {
        if self.key.is_empty() {
            return Err(EtcdError::client(
                ErrorKind::EmptyKey,
                "a watch needs a key (use WatchOptions::all_keys to watch every key)",
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
    /// asks for progress notifications (see [`Self::progress_notify`]).
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

/// The end of the range of keys starting with `prefix`: the prefix with its
/// last byte below 0xff incremented (and what follows dropped), or `"\0"`
/// (every key from the prefix on) for an all-0xff prefix.
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end.into();
        }
    }
    Bytes::from_static(b"\0")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a/"), Bytes::from_static(b"a0"));
        assert_eq!(prefix_end(b"a\xff"), Bytes::from_static(b"b"));
        assert_eq!(prefix_end(b"\xff\xff"), Bytes::from_static(b"\0"));
        let all = WatchOptions::prefix("");
        assert_eq!(all, WatchOptions::all_keys());
    }

    #[test]
    fn invalid_ranges_are_refused_before_sending() {
        assert_eq!(
            WatchOptions::key("").validate().unwrap_err().kind(),
            &ErrorKind::EmptyKey
        );
        assert_eq!(
            WatchOptions::key("b")
                .range_end("a")
                .validate()
                .unwrap_err()
                .kind(),
            &ErrorKind::InvalidRequest
        );
        assert!(WatchOptions::key("b").range_end("b").validate().is_err());
        assert!(WatchOptions::key("a")
            .start_revision(-1)
            .validate()
            .is_err());
        for ok in [
            WatchOptions::key("a"),
            WatchOptions::prefix("a/"),
            WatchOptions::from_key("a"),
            WatchOptions::all_keys(),
            WatchOptions::key("a").range_end("b").start_revision(3),
        ] {
            ok.validate().unwrap();
        }
    }

    #[test]
    fn the_create_request_carries_every_option() {
        let create = WatchOptions::prefix("p/")
            .prev_kv(true)
            .no_put(true)
            .no_delete(true)
            .progress_notify(true)
            .fragment(true)
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
        let create = WatchOptions::key("k").create_request(1, 0);
        assert!(create.progress_notify, "the engine's own, not shown");
    }
}
