//! [`Registration`]: an instance of a service, in etcd for as long as the
//! instance lives.
//!
//! An instance that stops without saying so (killed, crashed, cut off)
//! must still leave the list, so its key is put under a lease of its own,
//! kept alive by a [`LeaseKeeper`]: once the renewals stop, the server
//! deletes the key when the lease's TTL has passed, and every watcher
//! (Go's resolver, [`EndpointDiscover`](crate::EndpointDiscover)) sees the
//! instance leave. An instance that stops on purpose says so at once:
//!
//! * [`Registration::close`] deletes the key (only if it is still this
//!   registration's: the same address registered again since keeps its
//!   key) and revokes the lease, and says whether that worked;
//! * dropping the registration stops the renewals at once and does the
//!   same in the background, as best effort: if it cannot (no Tokio
//!   runtime any more, etcd unreachable), the lease's TTL removes the key.

use std::time::Duration;

use etcd_tower::{ErrorKind, EtcdError, LeaseKeeper, LeaseLost, LeaseState, PutOptions};
use tokio::runtime::Handle;

use crate::endpoint::Endpoint;
use crate::manager::EndpointManager;

/// How a [`Registration`] is made.
#[derive(Clone, Debug)]
pub struct RegisterOptions {
    ttl: i64,
    key: Option<String>,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions::new()
    }
}

impl RegisterOptions {
    /// The defaults: key `<target>/<addr>`, a lease of
    /// [`DEFAULT_TTL`](Self::DEFAULT_TTL) seconds.
    pub fn new() -> Self {
        RegisterOptions {
            ttl: Self::DEFAULT_TTL,
            key: None,
        }
    }

    /// The lease's TTL when none is set, in seconds: how long an instance
    /// that died without deregistering stays listed, at most.
    pub const DEFAULT_TTL: i64 = 10;

    /// The lease's TTL in seconds (the server may raise it to its
    /// minimum).
    pub fn ttl(mut self, seconds: i64) -> Self {
        self.ttl = seconds;
        self
    }

    /// The key, instead of `<target>/<addr>`; it must start with
    /// `<target>/`.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

/// A registered instance; see the [module docs](self).
#[derive(Debug)]
pub struct Registration {
    manager: EndpointManager,
    key: String,
    endpoint: Endpoint,
    lease_id: i64,
    /// `None` once deregistration has started.
    keeper: Option<LeaseKeeper>,
    runtime: Handle,
}

impl Registration {
    pub(crate) async fn start(
        manager: &EndpointManager,
        endpoint: Endpoint,
        options: RegisterOptions,
    ) -> Result<Registration, EtcdError> {
        let key = options
            .key
            .unwrap_or_else(|| manager.key_for(&endpoint.addr));
        manager.check_key(&key)?;
        let runtime = Handle::try_current().map_err(|_| {
            EtcdError::client(
                ErrorKind::InvalidRequest,
                "a registration keeps its lease alive in a Tokio task: register inside a Tokio runtime",
            )
        })?;
        // Cancel-safe by itself: a grant answered after this future is
        // dropped is revoked.
        let keeper = LeaseKeeper::grant(manager.client(), options.ttl).await?;
        let lease_id = keeper.id();
        // From here on the registration owns the lease: if this future is
        // dropped during the put, its drop revokes the lease, which takes
        // the key with it whether the put lands before or after.
        let registration = Registration {
            manager: manager.clone(),
            key,
            endpoint,
            lease_id,
            keeper: Some(keeper),
            runtime,
        };
        let put = PutOptions::new().lease(lease_id);
        // `close` (not drop) on failure, so that the caller finds nothing
        // left once the error is returned.
        if let Err(error) = manager
            .add_endpoint(&registration.key, &registration.endpoint, put)
            .await
        {
            if let Err(cleanup) = registration.close().await {
                tracing::debug!(%cleanup, lease = lease_id, "removing a failed registration failed; its lease expires with its TTL");
            }
            return Err(error);
        }
        Ok(registration)
    }

    /// The endpoint's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The registered endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The ID of the lease the key is under.
    pub fn lease_id(&self) -> i64 {
        self.lease_id
    }

    /// The lease's TTL as granted.
    pub fn ttl(&self) -> Duration {
        let ttl = self.keeper.as_ref().map_or(0, LeaseKeeper::ttl);
        Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
    }

    /// The lease's state, as its keeper knows it.
    pub fn state(&self) -> LeaseState {
        self.keeper
            .as_ref()
            .map_or(LeaseState::Lost(LeaseLost::Stopped), LeaseKeeper::state)
    }

    /// Resolves when the lease is lost (the key is gone, or going with
    /// it): the instance is no longer listed, and should register again
    /// if it goes on serving.
    pub async fn lost(&self) -> LeaseLost {
        match &self.keeper {
            Some(keeper) => keeper.lost().await,
            None => LeaseLost::Stopped,
        }
    }

    /// Deregisters: deletes the key (if it is still this registration's)
    /// and revokes the lease. A lease that had expired already is not an
    /// error. **Cancel-safe**: the deregistration runs in a task of its
    /// own, which finishes if this future is dropped.
    pub async fn close(mut self) -> Result<(), EtcdError> {
        let Some(work) = self.deregistration() else {
            return Ok(());
        };
        match self.runtime.spawn(work).await {
            Ok(result) => result,
            Err(_) => Err(EtcdError::client(
                ErrorKind::Closed,
                "the deregistration's task ended without an answer: the Tokio runtime is shutting down",
            )),
        }
    }

    /// The deregistration's work, once: the renewals stop at once (the
    /// keeper is dropped), then the key is deleted and the lease revoked.
    fn deregistration(
        &mut self,
    ) -> Option<impl std::future::Future<Output = Result<(), EtcdError>> + Send + 'static> {
        drop(self.keeper.take()?);
        let manager = self.manager.clone();
        let key = std::mem::take(&mut self.key);
        let lease_id = self.lease_id;
        Some(async move {
            // The key first, so that watchers see the instance leave even
            // if the revoke fails; the revoke deletes it anyway.
            let deleted = manager.delete_if_leased(&key, lease_id).await;
            let revoked = match manager.client().lease_revoke(lease_id).await {
                Err(error) if error.kind() == &ErrorKind::LeaseNotFound => Ok(()),
                other => other.map(drop),
            };
            deleted.and(revoked)
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(work) = self.deregistration() {
            let lease = self.lease_id;
            // On a runtime that has shut down this does nothing; the
            // lease's TTL removes the key then.
            self.runtime.spawn(async move {
                if let Err(error) = work.await {
                    tracing::debug!(%error, lease, "deregistering a dropped registration failed; its lease expires with its TTL");
                }
            });
        }
    }
}
