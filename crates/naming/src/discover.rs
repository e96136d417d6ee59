//! [`EndpointDiscover`]: a service's instances as a
//! [`tower::discover::Discover`], for `tower::balance::p2c::Balance` and
//! the rest of tower's balancing.
//!
//! tower balances over a stream of [`Change`]s: `Insert(key, service)`
//! when an instance appears, `Remove(key)` when it goes. Here the key is
//! the endpoint's etcd key, and the service is what your `make_service`
//! makes of its [`Endpoint`] (a client for its address). The stream starts
//! with an `Insert` for every instance listed, then follows the watch from
//! the next revision: a put of a new or changed endpoint is an `Insert`
//! (which replaces the key's service), a delete, or the end of an
//! instance's lease, a `Remove`. A value Go's manager cannot read is
//! skipped, as Go skips it; a put of an unchanged endpoint (the instance
//! registered again) changes nothing.
//!
//! The watch is the client's: it resumes across member restarts and
//! broken connections without losing an event, so the stream has no
//! error to report for those. It yields an error, and then ends, only when
//! the watch does (its history was compacted away while it could not
//! follow, permission was denied); `Balance` then fails, and a new
//! [`EndpointManager::discover`] starts over from a fresh list.
//!
//! p2c needs each service to report its load: wrap them, as
//! `tower::load::PendingRequestsDiscover` does for a whole `Discover`:
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use etcd_tower::tower::{service_fn, ServiceExt};
//! use etcd_tower::Client;
//! use etcd_tower_naming::EndpointManager;
//! use tower::balance::p2c::Balance;
//! use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let manager = EndpointManager::new(&client, "greeter")?;
//! let instances = manager
//!     .discover(|endpoint| {
//!         let addr = endpoint.addr.clone();
//!         service_fn(move |name: String| {
//!             let addr = addr.clone();
//!             async move { Ok::<_, std::convert::Infallible>(format!("{addr} greets {name}")) }
//!         })
//!     })
//!     .await?;
//! let balance = Balance::new(PendingRequestsDiscover::new(
//!     instances,
//!     CompleteOnResponse::default(),
//! ));
//! println!("{}", balance.oneshot("you".to_owned()).await?);
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use etcd_tower::watch::Watcher;
use etcd_tower::EtcdError;
use futures_core::Stream;
use tower::discover::Change;

use crate::endpoint::Endpoint;
use crate::manager::EndpointManager;
use crate::updates::{self, Operation};

/// What turns an endpoint into a service.
type MakeService<S> = Box<dyn FnMut(&Endpoint) -> S + Send>;

/// A service's instances as a stream of [`Change`]s, and so a
/// [`tower::discover::Discover`]; see the [module docs](self).
pub struct EndpointDiscover<S> {
    make_service: MakeService<S>,
    /// The endpoints inserted and not removed since.
    known: BTreeMap<String, Endpoint>,
    /// Changes made, not yet yielded.
    pending: VecDeque<Change<String, S>>,
    /// `None` once the watch has ended.
    watcher: Option<Watcher>,
}

impl<S> EndpointDiscover<S> {
    pub(crate) async fn start(
        manager: &EndpointManager,
        make_service: MakeService<S>,
    ) -> Result<Self, EtcdError> {
        let listed = updates::list(manager.client(), manager.prefix()).await?;
        let watcher =
            updates::watch_from(manager.client(), manager.prefix(), listed.revision + 1).await?;
        let mut discover = EndpointDiscover {
            make_service,
            known: BTreeMap::new(),
            pending: VecDeque::new(),
            watcher: Some(watcher),
        };
        for (key, endpoint) in listed.endpoints {
            discover.insert(key, endpoint);
        }
        Ok(discover)
    }

    /// The endpoints inserted and not removed, by key: those of the
    /// changes yielded so far and of those waiting to be yielded.
    pub fn endpoints(&self) -> &BTreeMap<String, Endpoint> {
        &self.known
    }

    fn insert(&mut self, key: String, endpoint: Endpoint) {
        if self.known.get(&key) == Some(&endpoint) {
            return;
        }
        let service = (self.make_service)(&endpoint);
        self.known.insert(key.clone(), endpoint);
        self.pending.push_back(Change::Insert(key, service));
    }

    fn remove(&mut self, key: String) {
        if self.known.remove(&key).is_some() {
            self.pending.push_back(Change::Remove(key));
        }
    }
}

impl<S> Stream for EndpointDiscover<S> {
    type Item = Result<Change<String, S>, EtcdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(change)));
            }
            let Some(watcher) = self.watcher.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(watcher).poll_next(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    for update in batch.events().iter().filter_map(updates::update_of) {
                        match update.op {
                            Operation::Add => self.insert(update.key, update.endpoint),
                            Operation::Delete => self.remove(update.key),
                        }
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    self.watcher = None;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    self.watcher = None;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

// Nothing is pinned in place: the fields are only ever moved as a whole.
impl<S> Unpin for EndpointDiscover<S> {}

impl<S> fmt::Debug for EndpointDiscover<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointDiscover")
            .field("endpoints", &self.known)
            .field("pending", &self.pending.len())
            .field("watching", &self.watcher.is_some())
            .finish()
    }
}
