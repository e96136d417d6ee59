//! [`LeaseKeeper`]: keeps a lease alive and says when it is lost.
//!
//! A lease is only as good as its renewals. The keeper renews every TTL/3
//! over a keep-alive stream; when the stream breaks (a member restarts, the
//! connection drops, the auth token behind the stream expires) it opens a
//! new one through the client's stack, which picks another endpoint and a
//! fresh token, for as long as the lease can still be alive. It gives up,
//! and says so, when:
//!
//! * the server answers a renewal with TTL ≤ 0: the lease is gone
//!   ([`LeaseLost::Expired`]);
//! * it was revoked through the keeper ([`LeaseLost::Revoked`]);
//! * the lease's TTL passed since the last successful renewal
//!   ([`LeaseLost::TimedOut`]): the server has let it expire by then.
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

use std::sync::Arc;
use std::time::Duration;

use etcd_tower_core::validate::validate_ttl;
use etcd_tower_core::{ErrorKind, EtcdError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use crate::client::Client;
use crate::detached::detached;

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
    /// The keeper was stopped (dropped) without revoking: the lease expires
    /// after its TTL unless someone else renews it.
    Stopped,
}

/// Keeps one lease alive in a background task; see the
/// [module docs](self). Dropping the keeper stops the renewals (the lease
/// then expires after its TTL); [`revoke`](Self::revoke) ends it at once.
#[derive(Debug)]
pub struct LeaseKeeper {
    id: i64,
    ttl: i64,
    client: Client,
    state: Arc<watch::Sender<LeaseState>>,
    task: JoinHandle<()>,
}

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
        let task = tokio::spawn(run(client.clone(), id, expires_at, Arc::clone(&state)));
        Ok(LeaseKeeper {
            id,
            ttl,
            client: client.clone(),
            state,
            task,
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
        self.task.abort();
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
        self.task.abort();
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

/// How one keep-alive stream ended.
enum Ended {
    /// The lease is lost; the state says why.
    Lost,
    /// The stream broke; the lease may still be alive.
    Broken(EtcdError),
}

/// The keeper's task: streams, one after another, until the lease is lost.
async fn run(
    client: Client,
    id: i64,
    mut expires_at: Instant,
    state: Arc<watch::Sender<LeaseState>>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let before = expires_at;
        match stream(&client, id, &mut expires_at, &state).await {
            Ended::Lost => return,
            Ended::Broken(error) => {
                tracing::debug!(lease = id, %error, "lease keep-alive stream broke; reopening");
                if expires_at > before {
                    backoff = Duration::from_millis(50);
                }
                let retry_at = (Instant::now() + backoff).min(expires_at);
                backoff = (backoff * 2).min(Duration::from_secs(1));
                sleep_until(retry_at).await;
                if Instant::now() >= expires_at {
                    tracing::warn!(lease = id, "lease not renewed within its TTL");
                    state.send_replace(LeaseState::Lost(LeaseLost::TimedOut));
                    return;
                }
            }
        }
    }
}

/// Runs one keep-alive stream: a renewal every TTL/3, each answer moving
/// the expiry forward.
async fn stream(
    client: &Client,
    id: i64,
    expires_at: &mut Instant,
    state: &watch::Sender<LeaseState>,
) -> Ended {
    let timed_out = || {
        state.send_replace(LeaseState::Lost(LeaseLost::TimedOut));
        Ended::Lost
    };
    // Opening the stream sends the first renewal.
    let mut sent_at = Instant::now();
    let opened = tokio::select! {
        opened = client.lease_keep_alive(id) => opened,
        () = sleep_until(*expires_at) => return timed_out(),
    };
    let (mut sender, mut answers) = match opened {
        Ok(pair) => pair,
        Err(error) => return Ended::Broken(error),
    };
    loop {
        let answer = tokio::select! {
            answer = answers.message() => answer,
            () = sleep_until(*expires_at) => return timed_out(),
        };
        let ttl = match answer {
            Ok(Some(answer)) if answer.ttl <= 0 => {
                state.send_replace(LeaseState::Lost(LeaseLost::Expired));
                return Ended::Lost;
            }
            Ok(Some(answer)) => answer.ttl,
            Ok(None) => {
                return Ended::Broken(EtcdError::client(
                    ErrorKind::ConnectionLost,
                    "the server closed the keep-alive stream",
                ))
            }
            Err(error) => return Ended::Broken(error),
        };
        *expires_at = sent_at + secs(ttl);
        state.send_replace(LeaseState::Alive {
            ttl,
            expires_at: *expires_at,
        });
        let next = sent_at + secs(ttl) / 3;
        // Wait for the next renewal, noticing a stream that ends meanwhile.
        tokio::select! {
            () = sleep_until(next) => {}
            answer = answers.message() => match answer {
                Ok(Some(answer)) if answer.ttl <= 0 => {
                    state.send_replace(LeaseState::Lost(LeaseLost::Expired));
                    return Ended::Lost;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Ended::Broken(EtcdError::client(
                        ErrorKind::ConnectionLost,
                        "the server closed the keep-alive stream",
                    ))
                }
                Err(error) => return Ended::Broken(error),
            },
        }
        sent_at = Instant::now();
        if let Err(error) = sender.keep_alive().await {
            return Ended::Broken(error);
        }
    }
}
