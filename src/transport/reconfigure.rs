//! Endpoints that change at run time: [`Transport::set_endpoints`],
//! [`add_endpoint`](Transport::add_endpoint) and
//! [`remove_endpoint`](Transport::remove_endpoint), shared by every clone
//! of the transport (and so of every client and stack built on it).
//!
//! Clusters change under long-lived clients: members are replaced, with
//! new addresses, by operators, Kubernetes or an autoscaling group. The
//! transport keeps its endpoint set behind one shared cell; a change puts
//! a new set there, and each clone of the transport takes it up at its
//! next `poll_ready` (one atomic load per call when nothing changed).
//!
//! * An endpoint the new set keeps keeps its connection and its back-off.
//! * Calls already under way finish where they are, on the set they
//!   started with: a call is never cut by a change.
//! * New calls go to the new set only.
//! * The connection to a removed endpoint closes once no call waits for
//!   an answer on it. Streams still open on it (watches, lease
//!   keep-alives) then fail, and their owners reopen them on the endpoints
//!   that remain: the watch engine resumes each watcher from its next
//!   revision, so no event is lost or repeated.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower_core::EtcdError> {
//! use etcd_tower_core::Transport;
//!
//! let transport = Transport::builder(["10.0.0.1:2379", "10.0.0.2:2379"]).build()?;
//! // ... member 10.0.0.1 is replaced by 10.0.0.3:
//! transport.set_endpoints(["10.0.0.2:2379", "10.0.0.3:2379"])?;
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::endpoint::{Endpoint, EndpointSet, Slot};
use super::settings::ConnectionSettings;
use super::{Shared, Transport};
use crate::error::{ErrorKind, EtcdError};

/// The transport's current endpoint set, shared by every clone.
#[derive(Debug)]
pub(super) struct Current {
    shared: RwLock<Arc<Shared>>,
    /// Counts the changes; a clone whose copy is older takes the new set.
    generation: AtomicU64,
    settings: ConnectionSettings,
}

impl Current {
    pub(super) fn new(shared: Arc<Shared>, settings: ConnectionSettings) -> Self {
        Current {
            shared: RwLock::new(shared),
            generation: AtomicU64::new(0),
            settings,
        }
    }

    /// The number of the current set.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current set and its number.
    pub(super) fn load(&self) -> (Arc<Shared>, u64) {
        let shared = self.shared.read().unwrap_or_else(PoisonError::into_inner);
        (shared.clone(), self.generation())
    }

    /// Replaces the set with one made by `change` from the endpoints of the
    /// current one (in order).
    fn change(
        &self,
        change: impl FnOnce(Vec<Endpoint>) -> Result<Vec<Endpoint>, EtcdError>,
    ) -> Result<(), EtcdError> {
        let mut current = self.shared.write().unwrap_or_else(PoisonError::into_inner);
        let old = current.endpoints.slots();
        let wanted = change(old.iter().map(|slot| slot.endpoint().clone()).collect())?;
        if wanted.is_empty() {
            return Err(EtcdError::client(
                ErrorKind::NoEndpoints,
                "a client cannot be left without endpoints",
            ));
        }
        let mut new_endpoints = Vec::new();
        let mut slots: Vec<Option<Arc<Slot>>> = Vec::with_capacity(wanted.len());
        for endpoint in &wanted {
            match old.iter().find(|slot| slot.endpoint() == endpoint) {
                Some(slot) => slots.push(Some(slot.clone())),
                None => {
                    new_endpoints.push(endpoint.clone());
                    slots.push(None);
                }
            }
        }
        let mut made = self
            .settings
            .connect(new_endpoints)?
            .into_iter()
            .map(Slot::new);
        let slots: Vec<Arc<Slot>> = slots
            .into_iter()
            .filter_map(|slot| slot.or_else(|| made.next()))
            .collect();
        for removed in old
            .iter()
            .filter(|slot| !slots.iter().any(|kept| Arc::ptr_eq(kept, slot)))
        {
            tracing::info!(endpoint = %removed.endpoint(), "etcd endpoint removed");
            removed.connection.retire();
        }
        let endpoints = EndpointSet::with_epoch(
            slots,
            current.endpoints.backoff(),
            current.endpoints.epoch(),
            Arc::clone(current.endpoints.policy()),
        );
        *current = Arc::new(Shared {
            endpoints,
            limits: current.limits,
        });
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

/// # Endpoints at run time
impl Transport {
    /// Replaces the endpoints (parsed as [`Transport::builder`] parses
    /// them). Endpoints kept keep their connections; see the
    /// [module docs](self) for what happens to calls and streams. Fails,
    /// changing nothing, for an empty list or an endpoint that does not
    /// parse.
    pub fn set_endpoints<I, S>(&self, endpoints: I) -> Result<(), EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let texts: Vec<S> = endpoints.into_iter().collect();
        let parsed = self.current.settings.parse(&texts)?;
        self.current.change(|_| Ok(parsed))
    }

    /// Adds an endpoint (a no-op if the transport has it already).
    pub fn add_endpoint(&self, endpoint: &str) -> Result<(), EtcdError> {
        let endpoint = self.parse_one(endpoint)?;
        self.current.change(|mut endpoints| {
            if !endpoints.contains(&endpoint) {
                endpoints.push(endpoint);
            }
            Ok(endpoints)
        })
    }

    /// Removes an endpoint (a no-op if the transport does not have it).
    /// Fails with [`ErrorKind::NoEndpoints`] for the last one.
    pub fn remove_endpoint(&self, endpoint: &str) -> Result<(), EtcdError> {
        let endpoint = self.parse_one(endpoint)?;
        self.current.change(|mut endpoints| {
            endpoints.retain(|kept| *kept != endpoint);
            Ok(endpoints)
        })
    }

    fn parse_one(&self, endpoint: &str) -> Result<Endpoint, EtcdError> {
        let mut parsed = self.current.settings.parse(&[endpoint])?;
        parsed
            .pop()
            .ok_or_else(|| EtcdError::client(ErrorKind::NoEndpoints, "no endpoint was given"))
    }
}
