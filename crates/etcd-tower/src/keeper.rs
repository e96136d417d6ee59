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
        let task = tokio::spawn(run(client.clone(), id, ttl, expires_at, Arc::clone(&state)));
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
    /// A renewal went unanswered while the server answered the lease's
    /// `TimeToLive`: the stream's member may be stuck (another may renew),
    /// or the server does not renew at all.
    Unanswered,
}

/// The keeper's task: streams, one after another, until the lease is lost.
async fn run(
    client: Client,
    id: i64,
    ttl: i64,
    mut expires_at: Instant,
    state: Arc<watch::Sender<LeaseState>>,
) {
    let mut backoff = Duration::from_millis(50);
    // A stream has gone unanswered since the last renewal.
    let mut unanswered = false;
    loop {
        let before = expires_at;
        let ended = stream(&client, id, ttl, &mut expires_at, &state).await;
        if expires_at > before {
            unanswered = false;
        }
        match ended {
            Ended::Lost => return,
            Ended::Unanswered if unanswered => {
                // Two streams in a row, and no renewal between them.
                tracing::warn!(
                    lease = id,
                    "the server answers but does not renew the lease (etcd 3.5.30's gRPC \
                     proxy does this for users who are not root); it will expire"
                );
                state.send_replace(LeaseState::Lost(LeaseLost::NotRenewed));
                return;
            }
            Ended::Unanswered => {
                tracing::debug!(lease = id, "lease renewal unanswered; reopening the stream");
                unanswered = true;
            }
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

/// What the lease's `TimeToLive` says while a renewal is unanswered:
/// gone, or still there ([`Ended::Unanswered`]); `None` when it is not
/// answered either (then the renewal's wait goes on). Bounded by the
/// lease's expiry, when the lease is lost as [`LeaseLost::TimedOut`].
async fn check_unanswered(
    client: &Client,
    id: i64,
    state: &watch::Sender<LeaseState>,
    expires_at: Instant,
) -> Option<Ended> {
    let answer = tokio::select! {
        answer = client.lease_time_to_live(id) => answer,
        () = sleep_until(expires_at) => {
            state.send_replace(LeaseState::Lost(LeaseLost::TimedOut));
            return Some(Ended::Lost);
        }
    };
    match answer {
        // -1 when it is gone; 0 while under a second is left.
        Ok(left) if left.ttl >= 0 => Some(Ended::Unanswered),
        Ok(_) => {
            state.send_replace(LeaseState::Lost(LeaseLost::Expired));
            Some(Ended::Lost)
        }
        Err(error) if error.kind() == &ErrorKind::LeaseNotFound => {
            state.send_replace(LeaseState::Lost(LeaseLost::Expired));
            Some(Ended::Lost)
        }
        Err(_) => None,
    }
}

/// Runs one keep-alive stream: a renewal every TTL/3, each answer moving
/// the expiry forward. A renewal still unanswered when the next one is
/// due is checked with a `TimeToLive` call: a lease still there ends the
/// stream as [`Ended::Unanswered`] (see [`LeaseLost::NotRenewed`]).
async fn stream(
    client: &Client,
    id: i64,
    ttl: i64,
    expires_at: &mut Instant,
    state: &watch::Sender<LeaseState>,
) -> Ended {
    let timed_out = || {
        state.send_replace(LeaseState::Lost(LeaseLost::TimedOut));
        Ended::Lost
    };

    // Opening the stream sends the first renewal.
    let mut sent_at = Instant::now();
    // A server that never answers the first renewal may not even answer
    // the stream's opening: the same check applies.
    let opening = client.lease_keep_alive(id);
    tokio::pin!(opening);
    let mut checked = false;
    let opened = loop {
        tokio::select! {
            opened = &mut opening => break opened,
            () = sleep_until(*expires_at) => return timed_out(),
            () = sleep_until(sent_at + secs(ttl) / 3), if !checked => {
                checked = true;
                if let Some(ended) = check_unanswered(client, id, state, *expires_at).await {
                    return ended;
                }
            }
        }
    };
    let (mut sender, mut answers) = match opened {
        Ok(pair) => pair,
        Err(error) => return Ended::Broken(error),
    };
    // The TTL of the last answer on this stream: a renewal answers the
    // lease's full TTL every time, so a falling TTL says none happened.
    let mut last_ttl = None;
    loop {
        let mut checked = false;
        let answer = loop {
            let check_at = sent_at + secs(ttl) / 3;
            tokio::select! {
                answer = answers.message() => break answer,
                () = sleep_until(*expires_at) => return timed_out(),
                () = sleep_until(check_at), if !checked => {
                    checked = true;
                    if let Some(ended) = check_unanswered(client, id, state, *expires_at).await {
                        return ended;
                    }
                }
            }
        };
        let answered = match answer {
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
        if last_ttl.is_some_and(|last| answered < last) {
            tracing::warn!(
                lease = id,
                ttl = answered,
                "the server answers lease renewals without renewing; the lease will expire"
            );
            state.send_replace(LeaseState::Lost(LeaseLost::NotRenewed));
            return Ended::Lost;
        }
        last_ttl = Some(answered);
        *expires_at = sent_at + secs(answered);
        state.send_replace(LeaseState::Alive {
            ttl: answered,
            expires_at: *expires_at,
        });
        let next = sent_at + secs(answered) / 3;
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
