//! [`Session`]: a lease kept alive for as long as the session lives.

use std::sync::{Arc, Mutex as StdMutex};

use etcd_tower_core::EtcdError;
use tokio::sync::watch;

use crate::client::Client;
use crate::keeper::{wait_lost, LeaseKeeper, LeaseLost, LeaseState};

/// The default session TTL, in seconds (the Go client's).
pub const DEFAULT_TTL: i64 = 60;

/// A lease kept alive by a [`LeaseKeeper`], that the recipes hang their
/// keys on. Clones share the session.
///
/// The session ends when [`close`](Self::close) revokes its lease, when the
/// last clone is dropped (the lease is then revoked in the background, if a
/// Tokio runtime is still running), or when the lease is lost (see
/// [`lost`](Self::lost)): every lock and leadership held through it ends
/// with it.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    lease_id: i64,
    ttl: i64,
    state: watch::Receiver<LeaseState>,
    keeper: StdMutex<Option<LeaseKeeper>>,
}

impl Session {
    /// A session on a new lease of [`DEFAULT_SESSION_TTL`](super::DEFAULT_SESSION_TTL) seconds (60).
    pub async fn new(client: &Client) -> Result<Session, EtcdError> {
        Session::with_ttl(client, DEFAULT_TTL).await
    }

    /// A session on a new lease of `ttl` seconds: what it holds is released
    /// at most `ttl` seconds after the process holding it dies.
    pub async fn with_ttl(client: &Client, ttl: i64) -> Result<Session, EtcdError> {
        Ok(Session::from_keeper(
            client,
            LeaseKeeper::grant(client, ttl).await?,
        ))
    }

    /// A session on an existing lease, which it keeps alive from now on.
    pub async fn from_lease(client: &Client, lease_id: i64) -> Result<Session, EtcdError> {
        Ok(Session::from_keeper(
            client,
            LeaseKeeper::existing(client, lease_id).await?,
        ))
    }

    /// A session on a lease already kept alive.
    pub fn from_keeper(client: &Client, keeper: LeaseKeeper) -> Session {
        Session {
            inner: Arc::new(Inner {
                client: client.clone(),
                lease_id: keeper.id(),
                ttl: keeper.ttl(),
                state: keeper.subscribe(),
                keeper: StdMutex::new(Some(keeper)),
            }),
        }
    }

    /// The session's lease.
    pub fn lease_id(&self) -> i64 {
        self.inner.lease_id
    }

    /// The lease's TTL, in seconds.
    pub fn ttl(&self) -> i64 {
        self.inner.ttl
    }

    /// The client the session was made with.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The lease's state.
    pub fn state(&self) -> LeaseState {
        *self.inner.state.borrow()
    }

    /// Whether the lease is still kept alive.
    pub fn is_alive(&self) -> bool {
        self.state().is_alive()
    }

    /// Resolves when the session's lease is lost, with the reason.
    pub async fn lost(&self) -> LeaseLost {
        wait_lost(self.inner.state.clone()).await
    }

    fn take_keeper(&self) -> Option<LeaseKeeper> {
        match self.inner.keeper.lock() {
            Ok(mut keeper) => keeper.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// Ends the session for every clone: revokes the lease, which releases
    /// everything held through it at once.
    pub async fn close(&self) -> Result<(), EtcdError> {
        match self.take_keeper() {
            Some(keeper) => keeper.revoke().await,
            None => Ok(()),
        }
    }

    /// Stops keeping the lease alive without revoking it: what the session
    /// holds is released when the lease's TTL runs out, as if this process
    /// had died.
    pub fn orphan(&self) {
        drop(self.take_keeper());
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let keeper = match self.keeper.get_mut() {
            Ok(keeper) => keeper.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(keeper) = keeper else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = keeper.revoke().await {
                    tracing::debug!(%error, "revoking a dropped session's lease failed");
                }
            });
        }
    }
}
