//! Which endpoint the next call goes to: the selection policy.
//!
//! The transport asks its policy for an endpoint in `poll_ready`, once per
//! call. Three policies come with it, and any type implementing
//! [`SelectionPolicy`] can take their place
//! ([`TransportBuilder::selection`](super::TransportBuilder::selection)):
//!
//! | policy | picks | for |
//! |---|---|---|
//! | [`RoundRobin`] (default) | the next healthy endpoint in turn, as Go's client does | spreading reads over every member |
//! | [`PickFirst`] | the same endpoint until it fails, then the next healthy one, and stays there | one member's connection and cache (gRPC's `pick_first`); a leader-only deployment named first |
//! | [`LeastLoaded`] | the less busy of two healthy endpoints drawn at random (power of two choices over calls in flight, as `tower::balance::p2c`) | members of uneven speed: a slow or frozen member gets fewer calls as its calls pile up |
//!
//! "Healthy" means not backing off: an endpoint whose connection failed is
//! avoided for the transport's
//! [`failed_endpoint_backoff`](super::TransportBuilder::failed_endpoint_backoff),
//! and the policies pass over it; when every endpoint is backing off they
//! pick the one whose back-off ends first. A call aimed at one endpoint
//! ([`TargetEndpoint`](super::TargetEndpoint)) and an attempt preferring an
//! endpoint not yet tried ([`TriedEndpoints`](super::TriedEndpoints)) go
//! where they must, whatever the policy said.
//!
//! A policy is shared by every clone of the transport and kept when
//! [`set_endpoints`](super::Transport::set_endpoints) changes the set; an
//! index it remembers may then name another endpoint, and one past the end
//! of the new set is taken modulo its length.
//!
//! ```
//! use etcd_tower_core::transport::selection::{Candidates, SelectionPolicy};
//!
//! /// Always the last healthy endpoint (say, the one nearest to us).
//! #[derive(Debug)]
//! struct LastHealthy;
//!
//! impl SelectionPolicy for LastHealthy {
//!     fn pick(&self, endpoints: &Candidates<'_>) -> usize {
//!         endpoints
//!             .healthy()
//!             .last()
//!             .unwrap_or_else(|| endpoints.soonest_healthy())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower_core::EtcdError> {
//! let transport = etcd_tower_core::Transport::builder(["127.0.0.1:2379", "127.0.0.1:22379"])
//!     .selection(LastHealthy)
//!     .build()?;
//! # drop(transport);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::endpoint::{Endpoint, EndpointSet, Slot};

/// Chooses the endpoint of each call; see the [module docs](self).
pub trait SelectionPolicy: fmt::Debug + Send + Sync + 'static {
    /// The index (below `endpoints.len()`, which is never 0) of the
    /// endpoint the next call goes to.
    fn pick(&self, endpoints: &Candidates<'_>) -> usize;

    /// Whether the policy reads [`Candidates::in_flight`]: the transport
    /// counts each endpoint's calls in flight only for a policy that does
    /// (two atomic operations per call). Asked once, when the endpoint set
    /// is made. Default `false`.
    fn counts_in_flight(&self) -> bool {
        false
    }
}

/// What a [`SelectionPolicy`] sees of the endpoints: their order, health
/// and load. Borrowed from the transport for one pick; nothing is copied.
pub struct Candidates<'a> {
    set: &'a EndpointSet,
    now_ms: u64,
}

impl<'a> Candidates<'a> {
    pub(super) fn new(set: &'a EndpointSet, now_ms: u64) -> Self {
        Candidates { set, now_ms }
    }

    /// How many endpoints there are (at least one).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Endpoint `index`, as the transport was given it.
    pub fn endpoint(&self, index: usize) -> &Endpoint {
        self.set.slot(index).endpoint()
    }

    /// Whether endpoint `index` is not backing off after a failure.
    pub fn is_healthy(&self, index: usize) -> bool {
        self.set.is_up(index, self.now_ms)
    }

    /// The healthy endpoints' indexes, in order.
    pub fn healthy(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| self.is_healthy(i))
    }

    /// The endpoint whose back-off ends first (for when none is healthy).
    pub fn soonest_healthy(&self) -> usize {
        self.set.soonest_up()
    }

    /// The calls in flight on endpoint `index`: sent and not yet answered
    /// (a stream counts until its response headers). Always 0 unless the
    /// policy's [`counts_in_flight`](SelectionPolicy::counts_in_flight)
    /// says `true`.
    pub fn in_flight(&self, index: usize) -> usize {
        self.set.slot(index).in_flight.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Candidates<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries((0..self.len()).map(|i| {
                (
                    self.endpoint(i).to_string(),
                    self.is_healthy(i),
                    self.in_flight(i),
                )
            }))
            .finish()
    }
}

/// The next healthy endpoint in turn (the default; Go's client does the
/// same).
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// Starts at the first endpoint.
    pub fn new() -> Self {
        RoundRobin::default()
    }
}

impl SelectionPolicy for RoundRobin {
    fn pick(&self, endpoints: &Candidates<'_>) -> usize {
        let n = endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        if n == 1 {
            return 0;
        }
        (0..n)
            .map(|offset| (start + offset) % n)
            .find(|&i| endpoints.is_healthy(i))
            .unwrap_or_else(|| endpoints.soonest_healthy())
    }
}

/// One endpoint until it fails, then the next healthy one in order, which
/// is kept even after the first recovers (gRPC's `pick_first`): every call
/// shares one connection and one member.
#[derive(Debug, Default)]
pub struct PickFirst {
    current: AtomicUsize,
}

impl PickFirst {
    /// Starts on the first endpoint.
    pub fn new() -> Self {
        PickFirst::default()
    }
}

impl SelectionPolicy for PickFirst {
    fn pick(&self, endpoints: &Candidates<'_>) -> usize {
        let n = endpoints.len();
        let current = self.current.load(Ordering::Relaxed) % n;
        if endpoints.is_healthy(current) {
            return current;
        }
        let next = (1..n)
            .map(|offset| (current + offset) % n)
            .find(|&i| endpoints.is_healthy(i))
            .unwrap_or_else(|| endpoints.soonest_healthy());
        // Racing callers may each move on; they agree on `next`, which
        // depends only on the shared health.
        self.current.store(next, Ordering::Relaxed);
        next
    }
}

/// The less busy of two healthy endpoints drawn at random, by calls in
/// flight: the power of two choices, as `tower::balance::p2c` does over
/// its services' load. A member that answers slowly (or not at all, while
/// frozen) keeps its calls in flight longer, so it is drawn less.
#[derive(Debug)]
pub struct LeastLoaded {
    state: AtomicU64,
}

impl LeastLoaded {
    /// A policy with its own random sequence.
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |since| since.as_nanos() as u64);
        LeastLoaded {
            state: AtomicU64::new(seed),
        }
    }

    /// A random number (splitmix64 over a shared counter: cheap, and good
    /// enough to draw two endpoints).
    fn random(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    fn below(&self, n: usize) -> usize {
        usize::try_from(self.random() % n as u64).unwrap_or(0)
    }
}

impl Default for LeastLoaded {
    fn default() -> Self {
        LeastLoaded::new()
    }
}

impl SelectionPolicy for LeastLoaded {
    fn pick(&self, endpoints: &Candidates<'_>) -> usize {
        let healthy = endpoints.healthy().count();
        match healthy {
            0 => return endpoints.soonest_healthy(),
            1 => return endpoints.healthy().next().unwrap_or(0),
            _ => {}
        }
        let a = self.below(healthy);
        // A second draw among the others, so the two always differ.
        let b = (a + 1 + self.below(healthy - 1)) % healthy;
        // `x` is the first draw, so a tie goes either way.
        let x = endpoints.healthy().nth(a).unwrap_or(0);
        let y = endpoints.healthy().nth(b).unwrap_or(x);
        if endpoints.in_flight(y) < endpoints.in_flight(x) {
            y
        } else {
            x
        }
    }

    fn counts_in_flight(&self) -> bool {
        true
    }
}

/// The default policy, shared.
pub(crate) fn default_policy() -> Arc<dyn SelectionPolicy> {
    Arc::new(RoundRobin::new())
}

/// One call in flight on an endpoint, counted while it lives.
pub(crate) struct InFlight(Arc<Slot>);

impl InFlight {
    pub(crate) fn start(slot: Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(slot)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transport::connection::Connection;
    use crate::transport::connector::Connector;
    use crate::transport::endpoint::parse_endpoint;

    fn set(n: u16, policy: Arc<dyn SelectionPolicy>) -> EndpointSet {
        let connector = Connector::new(Duration::from_secs(1), None);
        EndpointSet::new(
            (1..=n)
                .map(|p| {
                    let endpoint = parse_endpoint(&format!("127.0.0.1:{p}"), "http").unwrap();
                    Connection::new(endpoint, connector.clone(), None)
                })
                .collect(),
            Duration::from_secs(60),
            policy,
        )
    }

    #[tokio::test]
    async fn round_robin_takes_turns_past_a_failed_endpoint() {
        let set = set(3, Arc::new(RoundRobin::new()));
        let picks: Vec<usize> = (0..6).map(|_| set.pick()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        set.mark_down(1);
        let picks: Vec<usize> = (0..6).map(|_| set.pick()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
    }

    #[tokio::test]
    async fn pick_first_stays_until_its_endpoint_fails_and_does_not_go_back() {
        let set = set(3, Arc::new(PickFirst::new()));
        assert!((0..5).all(|_| set.pick() == 0));
        set.mark_down(0);
        assert!((0..5).all(|_| set.pick() == 1));
        set.mark_up(0);
        assert!((0..5).all(|_| set.pick() == 1), "it stays on the second");
        set.mark_down(1);
        set.mark_down(2);
        assert_eq!(set.pick(), 0, "the first is healthy again");
    }

    #[tokio::test]
    async fn least_loaded_avoids_the_busy_endpoint_and_spreads_the_rest() {
        let set = set(3, Arc::new(LeastLoaded::new()));
        let busy: Vec<InFlight> = (0..5)
            .map(|_| InFlight::start(Arc::clone(&set.slots()[0])))
            .collect();
        let mut counts = [0; 3];
        for _ in 0..300 {
            counts[set.pick()] += 1;
        }
        assert_eq!(counts[0], 0, "{counts:?}");
        assert!(counts[1] > 50 && counts[2] > 50, "{counts:?}");
        drop(busy);
        assert_eq!(set.slots()[0].in_flight.load(Ordering::Relaxed), 0);
        let mut counts = [0; 3];
        for _ in 0..300 {
            counts[set.pick()] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
        set.mark_down(2);
        assert!((0..50).all(|_| set.pick() != 2));
    }
}
