//! How the engine behaves: [`WatchConfig`].

use std::time::Duration;

/// The default of [`WatchConfig::max_fragmented`]: 256 MiB.
pub(crate) const DEFAULT_MAX_FRAGMENTED: usize = 256 << 20;

/// Settings of a [`WatchEngine`](crate::WatchEngine). The defaults suit a
/// cluster on a local network.
///
/// ```
/// use std::time::Duration;
/// use etcd_tower_watch::WatchConfig;
///
/// let config = WatchConfig::default()
///     .buffer(4096)
///     .backoff(Duration::from_millis(20), Duration::from_secs(2))
///     .progress_interval(Duration::from_secs(30));
/// # drop(config);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    pub(crate) buffer: usize,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) backoff_reset_after: Duration,
    pub(crate) open_timeout: Duration,
    pub(crate) probe_timeout: Duration,
    /// `None`: no progress requests of the engine's own.
    pub(crate) progress_interval: Option<Duration>,
    pub(crate) max_fragmented: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            buffer: 1024,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_secs(2),
            reconnect_max: Duration::from_millis(100),
            backoff_reset_after: Duration::from_secs(5),
            open_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
            progress_interval: Some(Duration::from_secs(10)),
            max_fragmented: DEFAULT_MAX_FRAGMENTED,
        }
    }
}

impl WatchConfig {
    /// How many events a watcher's buffer holds before the watcher counts
    /// as lagging (see the crate docs). Default 1024; at least 1.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// The delay before re-opening a broken stream: `initial`, doubled
    /// after each consecutive failure, at most `max`. Default 20 ms to 2 s.
    /// The sequence starts again once the server confirms a create on the
    /// new stream.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_initial);
        self
    }

    /// The longest delay between re-opens while no server can be reached at
    /// all (every endpoint refused the connection or never answered
    /// HTTP/2, so nothing was sent). Default 100 ms; never more than the
    /// back-off's `max`.
    ///
    /// Such attempts cost the servers nothing, and this cap is what bounds
    /// how late watchers resume once a restarted member answers again (a
    /// member that is starting accepts connections before it answers, and
    /// an attempt made then completes as soon as it does). Raise it to make
    /// many clients of an unreachable cluster knock less often.
    pub fn reconnect_max(mut self, max: Duration) -> Self {
        self.reconnect_max = max.max(Duration::from_millis(1));
        self
    }

    /// How long a stream must have worked before the back-off starts again
    /// from its initial delay, for a stream on which no create was
    /// confirmed. Default 5 s.
    pub fn backoff_reset_after(mut self, healthy: Duration) -> Self {
        self.backoff_reset_after = healthy;
        self
    }

    /// How long opening a stream may take, until the server's first
    /// message. Default 10 s. (A connection that goes silent later is
    /// found by the transport's HTTP/2 keepalive.)
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// How long the probe that follows a rejected create may take (see the
    /// crate docs on auth). Default 5 s.
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// How often the engine asks a stream's member for progress while the
    /// stream has watchers; `Duration::ZERO` turns these requests off (and
    /// the one `Status` call per member that tells whether the member
    /// qualifies). Default 10 s; at least 10 ms.
    ///
    /// The answers keep quiet watchers (no event in their range for a
    /// while) recent: a watcher resumes after a fault from its next
    /// revision, and one that fell behind the cluster's compaction would
    /// end with a `Compacted` error although it missed nothing. The engine
    /// sends these requests only to members whose answers cannot overtake
    /// events (etcd 3.4.24+, 3.5.8+, 3.6; see the crate docs on
    /// compaction), one small message per stream and interval, answered by
    /// one. 10 s keeps a quiet watcher far closer to the head than any
    /// sensible compaction retention (minutes to hours) at a negligible
    /// cost; set it lower only if you compact more often than that.
    /// Requests of the engine's own never reach the watchers as progress
    /// notifications.
    pub fn progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = if interval.is_zero() {
            None
        } else {
            Some(interval.max(Duration::from_millis(10)))
        };
        self
    }

    /// The most a fragmented response may hold, in encoded bytes of its
    /// events, joined from its pieces (watchers created with
    /// [`WatchOptions::fragment`](crate::WatchOptions::fragment)). Default
    /// 256 MiB.
    ///
    /// Each piece is within the transport's receive limit, but a server
    /// decides how many pieces one response has. Past this bound the
    /// engine drops the pieces, cancels the watcher on the server and ends
    /// it with a `ResponseTooLarge` error (resuming would only ask for the
    /// same response again). etcd sends a response of up to 1,000
    /// revisions at once to a watcher catching up, so raise this only if
    /// one such batch of your writes can be larger.
    pub fn max_fragmented(mut self, bytes: usize) -> Self {
        self.max_fragmented = bytes;
        self
    }
}
