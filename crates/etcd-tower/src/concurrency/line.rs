//! A contender's place in a recipe's line, and why giving up on a wait
//! leaves nothing behind.
//!
//! A [`Mutex`](super::Mutex) or [`Election`](super::Election) waits by
//! putting a key under its prefix (its place in line) and watching its
//! predecessors. Users bound such waits with `tokio::time::timeout` or
//! `select!`, which *drops* the future mid-wait. Had the key stayed, every
//! later waiter would queue behind a contender that no longer exists (until
//! its session ends), and an abandoned campaign would later become leader.
//!
//! So each wait runs in a task of its own ([`Line::wait`]), which the
//! caller's future only listens to:
//!
//! * **The caller gives up** (its future is dropped): the task sees it at
//!   once ([`Caller::gone`]), lets any write already in flight finish (a
//!   request is never cut between being sent and being answered, so the key
//!   cannot appear after its removal), and deletes the key, retrying a
//!   failed delete until it succeeds or the session's lease is gone (which
//!   deletes the key anyway).
//! * **The wait fails** (an error reaches the caller): the task removes the
//!   key *before* answering, so a caller that sees the error sees the line
//!   already cleaned up.
//! * **The wait succeeds just as the caller gives up**: the answer sits
//!   unread in the channel; when the channel is dropped, the answer's
//!   [`Placed`] guard releases the key. A success is never lost unnoticed.
//! * **The next attempt** (the same `Mutex` or `Election` calling again)
//!   first waits for every earlier task's removal: both share one *turn*,
//!   so a late removal can never delete the key a new attempt just put.
//!
//! Only a runtime shutting down (which stops every task) or a process that
//! dies skips the removal; the session's lease then removes the key within
//! its TTL, as it does in Go's client.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_tower_core::{ErrorKind, EtcdError};
use tokio::sync::{oneshot, Mutex as TurnLock, OwnedMutexGuard};

use super::Session;

/// How long an abandoned key's removal keeps trying at most; the session's
/// lease ends the key by itself much sooner unless it is kept alive.
const RELEASE_GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// A contender's key under a recipe's prefix, and the turn its waits take.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    session: Session,
    key: Bytes,
    turn: Arc<TurnLock<()>>,
}

impl Line {
    /// The line for `key`, a key of `session`'s.
    pub(crate) fn new(session: &Session, key: Bytes) -> Line {
        Line {
            session: session.clone(),
            key,
            turn: Arc::new(TurnLock::new(())),
        }
    }

    /// The session the key belongs to.
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    /// The contender's key.
    pub(crate) fn key(&self) -> &Bytes {
        &self.key
    }

    /// Runs `wait` in a task of its own and returns its outcome. If `wait`
    /// fails, or this future is dropped before it has the outcome, the key
    /// is removed; see the [module docs](self).
    ///
    /// `wait` gets a [`Caller`] to stop waiting as soon as the caller is
    /// gone; whatever it has sent by then finishes first.
    pub(crate) async fn wait<T, F, Fut>(&self, wait: F) -> Result<T, EtcdError>
    where
        T: Send + 'static,
        F: FnOnce(Caller) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, EtcdError>> + Send,
    {
        let (answer, answered) = oneshot::channel::<Result<Placed<T>, EtcdError>>();
        let (present, caller) = oneshot::channel::<()>();
        let line = self.clone();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            EtcdError::client(
                ErrorKind::InvalidRequest,
                "the recipes wait in Tokio tasks: call them inside a Tokio runtime",
            )
        })?;
        runtime.clone().spawn(async move {
            // Earlier attempts' removals go first.
            let turn = line.turn.clone().lock_owned().await;
            let release = Release {
                line,
                runtime,
                _turn: turn,
            };
            match wait(Caller { present: caller }).await {
                Ok(value) => {
                    let placed = Placed {
                        value: Some(value),
                        release: Some(release),
                    };
                    if let Err(Ok(mut unread)) = answer.send(Ok(placed)) {
                        if let Some(release) = unread.release.take() {
                            release.run().await;
                        }
                    }
                }
                Err(error) => {
                    release.run().await;
                    // Nobody may be listening any more; the key is gone either way.
                    let _ = answer.send(Err(error));
                }
            }
        });
        let outcome = answered.await;
        drop(present);
        match outcome {
            Ok(Ok(mut placed)) => {
                placed.release = None;
                placed.value.take().ok_or_else(ended_without_answer)
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ended_without_answer()),
        }
    }
}

fn ended_without_answer() -> EtcdError {
    EtcdError::client(
        ErrorKind::Closed,
        "the recipe's wait ended without an answer: the Tokio runtime is shutting down",
    )
}

/// What a waiting task knows of its caller.
#[derive(Debug)]
pub(crate) struct Caller {
    present: oneshot::Receiver<()>,
}

impl Caller {
    /// Resolves once the caller has given up (dropped its future).
    pub(crate) async fn gone(&mut self) {
        // The caller never sends: the channel only closes.
        let _ = (&mut self.present).await;
    }

    /// Whether the caller has given up already.
    pub(crate) fn is_gone(&mut self) -> bool {
        matches!(
            self.present.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        )
    }
}

/// A successful wait's outcome on its way to the caller: if it is dropped
/// unread, the key is released.
struct Placed<T> {
    value: Option<T>,
    release: Option<Release>,
}

impl<T> Drop for Placed<T> {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let runtime = release.runtime.clone();
            runtime.spawn(release.run());
        }
    }
}

/// The removal of a contender's key, holding the line's turn until done.
struct Release {
    line: Line,
    runtime: tokio::runtime::Handle,
    _turn: OwnedMutexGuard<()>,
}

impl Release {
    /// Deletes the key, trying again after transient failures until it is
    /// gone, the session's lease is gone (and with it the key), or
    /// [`RELEASE_GIVE_UP_AFTER`] has passed.
    async fn run(self) {
        let session = &self.line.session;
        let client = session.client();
        let give_up = tokio::time::Instant::now() + RELEASE_GIVE_UP_AFTER;
        let mut pause = Duration::from_millis(50);
        loop {
            let error = match client.delete(self.line.key.clone()).await {
                Ok(_) => return,
                Err(error) => error,
            };
            if !etcd_tower_retry::is_transient(&error) || tokio::time::Instant::now() >= give_up {
                tracing::warn!(%error, "removing an abandoned recipe key failed; the session's lease will remove it");
                return;
            }
            tracing::debug!(%error, "removing an abandoned recipe key; trying again");
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = session.lost() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}
