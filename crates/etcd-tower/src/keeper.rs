//! [`LeaseKeeper`]: keeps a lease alive and says when it is lost.
//!
//! A lease is only as good as its renewals. The keeper renews every TTL/3
//! over the client's keep-alive stream, which every keeper of the client
//! (and of its clones) shares, driven by one task and one timer as Go's
//! lessor is (so ten thousand leases cost one HTTP/2 stream); when the
//! stream breaks (a member restarts, the connection drops, the auth token
//! behind the stream expires) a new one is opened through the client's
//! stack, which picks another endpoint and a fresh token, and every lease
//! is renewed on it at once, for as long as it can still be alive. A keeper
//! gives up, and says so, when:
//!
//! * the server answers a renewal with TTL ≤ 0: the lease is gone
//!   ([`LeaseLost::Expired`]);
//! * it was revoked through the keeper ([`LeaseLost::Revoked`]);
//! * the lease's TTL passed since the last successful renewal
//!   ([`LeaseLost::TimedOut`]): the server has let it expire by then;
//! * the server is up but does not renew ([`LeaseLost::NotRenewed`]): two
//!   answers in a row carried a falling TTL (a renewal always answers the
//!   lease's full TTL), or on two streams in a row a renewal went
//!   unanswered past the time of the next one while the lease's
//!   `TimeToLive` was answered. (After the first such stream the keeper
//!   reopens at once: the stream's member may be stuck while another can
//!   renew.) etcd 3.5.30's gRPC proxy leaves a non-root user's renewals
//!   unanswered (`etcdctl lease keep-alive` through it fails too): the
//!   lease then expires whatever the keeper does, so it says so within
//!   about two thirds of the TTL instead of when the lease is gone. Reach
//!   the cluster directly, or through a proxy that renews.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::{Client, LeaseKeeper, PutOptions};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let keeper = LeaseKeeper::grant(&client, 5).await?;
//! client.put_with("service/me", "up", PutOptions::new().lease(keeper.id())).await?;
//! tokio::select! {
//!     reason = keeper.lost() => eprintln!("lease lost: {reason:?}; stop serving"),
//!     _ = tokio::signal::ctrl_c() => keeper.revoke().await?,
//! }
//! # Ok(())
//! # }
//! ```

mod hub;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_tower_core::validate::validate_ttl;
use etcd_tower_core::{ErrorKind, EtcdError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::Client;
use crate::detached::detached;

pub(crate) use hub::HubSlot;
use hub::{HubHandle, Kept};

/// What a [`LeaseKeeper`] knows about its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Renewed: the server gave the lease `ttl` more seconds, so it lives at
    /// least until `expires_at` (measured from when the renewal was sent).
    Alive {
        /// The TTL of the last renewal, in seconds.
        ttl: i64,
        /// When the lease expires if no further renewal succeeds.
        expires_at: Instant,
    },
    /// The lease is gone, or no longer kept.
    Lost(LeaseLost),
}

impl LeaseState {
    /// Whether the lease is still kept alive.
    pub fn is_alive(&self) -> bool {
        matches!(self, LeaseState::Alive { .. })
    }
}

/// Why a lease is no longer kept alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseLost {
    /// The server answered a renewal with TTL ≤ 0: the lease expired or was
    /// revoked elsewhere.
    Expired,
    /// The lease was revoked through the keeper.
    Revoked,
    /// No renewal succeeded within the lease's TTL.
    TimedOut,
    /// The server is up but does not renew: its answers' TTL falls, or
    /// renewals go unanswered while the lease's `TimeToLive` is answered
    /// (etcd 3.5.30's gRPC proxy does this for users who are not root). The
    /// lease expires at its remaining TTL; reach the cluster without that
    /// proxy to keep leases.
    NotRenewed,
    /// The keeper was stopped (dropped) without revoking: the lease expires
    /// after its TTL unless someone else renews it.
    Stopped,
}

/// Keeps one lease alive; see the [module docs](self). Every keeper of a
/// client (and of its clones) renews over the client's one keep-alive
/// stream, driven by one background task and one timer, as Go's lessor
/// does: ten thousand keepers cost one HTTP/2 stream, not ten thousand.
/// Dropping the keeper stops the renewals (the lease then expires after
/// its TTL); [`revoke`](Self::revoke) ends it at once.
#[derive(Debug)]
pub struct LeaseKeeper {
    id: i64,
    ttl: i64,
    serial: u64,
    client: Client,
    state: Arc<watch::Sender<LeaseState>>,
    hub: Arc<HubHandle>,
}

/// Tells one keeper of a lease from a later one of the same lease.
static SERIAL: AtomicU64 = AtomicU64::new(0);

impl LeaseKeeper {
    /// Grants a lease of `ttl` seconds and keeps it alive.
    ///
    /// **Cancel-safe**: if this future is dropped (a `timeout`, a
    /// `select!`) once the grant was sent, the grant is still answered in
    /// the background and the lease it created is revoked at once, instead
    /// of lingering on the server for its TTL.
    pub async fn grant(client: &Client, ttl: i64) -> Result<LeaseKeeper, EtcdError> {
        validate_ttl(ttl)?;
        let granting = client.clone();
        let revoking = client.clone();
        let granted = detached(
            move |_caller| async move { granting.lease_grant(ttl).await },
            move |granted| async move {
                if let Err(error) = revoking.lease_revoke(granted.id).await {
                    tracing::debug!(%error, lease = granted.id, "revoking a lease nobody took failed; it expires with its TTL");
                }
            },
        )
        .await?;
        LeaseKeeper::new(client, granted.id, granted.ttl)
    }

    /// Keeps an existing lease alive, asking the server for its TTL first.
    /// Fails with [`ErrorKind::LeaseNotFound`] if the lease does not exist.
    pub async fn existing(client: &Client, id: i64) -> Result<LeaseKeeper, EtcdError> {
        let current = client.lease_time_to_live(id).await?;
        if current.ttl <= 0 {
            return Err(EtcdError::client(
                ErrorKind::LeaseNotFound,
                format!("lease {id:x} does not exist"),
            ));
        }
        LeaseKeeper::start(client, id, current.granted_ttl, current.ttl)
    }

    /// Keeps the lease `id` of `ttl` seconds alive, assuming it was just
    /// granted or renewed. Fails with [`ErrorKind::InvalidTtl`] for a TTL
    /// that is not positive or is above etcd's maximum; no I/O happens here.
    pub fn new(client: &Client, id: i64, ttl: i64) -> Result<LeaseKeeper, EtcdError> {
        LeaseKeeper::start(client, id, ttl, ttl)
    }

    fn start(client: &Client, id: i64, ttl: i64, remaining: i64) -> Result<LeaseKeeper, EtcdError> {
        validate_ttl(ttl)?;
        let expires_at = Instant::now() + secs(remaining.max(1));
        let state = Arc::new(watch::Sender::new(LeaseState::Alive { ttl, expires_at }));
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let hub = client.lease_hub().keep(
            client,
            Kept {
                id,
                serial,
                ttl,
                expires_at,
                state: Arc::clone(&state),
            },
        );
        Ok(LeaseKeeper {
            id,
            ttl,
            serial,
            client: client.clone(),
            state,
            hub,
        })
    }

    /// The lease's ID.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The lease's granted TTL, in seconds.
    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// The current state.
    pub fn state(&self) -> LeaseState {
        *self.state.borrow()
    }

    /// Whether the lease is still kept alive.
    pub fn is_alive(&self) -> bool {
        self.state().is_alive()
    }

    /// A receiver that sees every change of state.
    pub fn subscribe(&self) -> watch::Receiver<LeaseState> {
        self.state.subscribe()
    }

    /// Resolves when the lease is lost, with the reason.
    pub async fn lost(&self) -> LeaseLost {
        wait_lost(self.subscribe()).await
    }

    /// Stops renewing and revokes the lease, deleting its keys.
    pub async fn revoke(self) -> Result<(), EtcdError> {
        self.hub.stop(self.id, self.serial);
        let result = self.client.lease_revoke(self.id).await;
        match &result {
            Ok(_) => self
                .state
                .send_replace(LeaseState::Lost(LeaseLost::Revoked)),
            Err(e) if e.kind() == &ErrorKind::LeaseNotFound => self
                .state
                .send_replace(LeaseState::Lost(LeaseLost::Expired)),
            Err(_) => self
                .state
                .send_replace(LeaseState::Lost(LeaseLost::Stopped)),
        };
        result.map(|_| ())
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.hub.stop(self.id, self.serial);
        self.state.send_if_modified(|state| {
            if state.is_alive() {
                *state = LeaseState::Lost(LeaseLost::Stopped);
                true
            } else {
                false
            }
        });
    }
}

/// Waits until a state receiver reports a lost lease.
pub(crate) async fn wait_lost(mut state: watch::Receiver<LeaseState>) -> LeaseLost {
    loop {
        if let LeaseState::Lost(reason) = *state.borrow_and_update() {
            return reason;
        }
        if state.changed().await.is_err() {
            return match *state.borrow() {
                LeaseState::Lost(reason) => reason,
                LeaseState::Alive { .. } => LeaseLost::Stopped,
            };
        }
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}
