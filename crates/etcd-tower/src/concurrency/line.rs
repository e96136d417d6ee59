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
//! So each wait runs in a task of its own ([`Line::wait`], on the crate's
//! `detached` runner), which the caller's future only listens to:
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
//! * **The wait succeeds just as the caller gives up**: the success nobody
//!   read is undone when it is dropped, by the same removal.
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
use etcd_tower_core::{EtcdError, Sent};
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

use super::abandoned;
use super::Session;
pub(crate) use crate::detached::Caller;
use crate::detached::{detached, remove_key};

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
        let line = self.clone();
        let work = move |caller| async move {
            // Earlier attempts' removals go first.
            let turn = line.turn.clone().lock_owned().await;
            let release = Release { line, _turn: turn };
            match wait(caller).await {
                Ok(value) => Ok((value, release)),
                Err(error) => {
                    release.run().await;
                    Err(error)
                }
            }
        };
        let (value, _release) = detached(work, |(_, release)| release.run()).await?;
        Ok(value)
    }
}

/// The removal of a contender's key, holding the line's turn until done.
struct Release {
    line: Line,
    _turn: OwnedMutexGuard<()>,
}

impl Release {
    /// Removes the key (see [`remove`]), holding the line's turn until done.
    async fn run(self) {
        remove(&self.line.session, self.line.key.clone()).await;
    }
}

/// Deletes `key`, a key of `session`'s, trying again after transient
/// failures until it is gone, the session's lease is gone (and with it the
/// key), or [`RELEASE_GIVE_UP_AFTER`] has passed.
pub(crate) async fn remove(session: &Session, key: Bytes) {
    let give_up = tokio::time::Instant::now() + RELEASE_GIVE_UP_AFTER;
    let lease_gone = async {
        session.lost().await;
    };
    remove_key(session.client(), key, give_up, lease_gone).await;
}

/// A key a recipe's wait put for itself, and the revision of that put.
#[derive(Clone, Debug)]
pub(crate) struct Placed {
    /// The key.
    pub(crate) key: Bytes,
    /// The revision of the put that created it.
    pub(crate) revision: i64,
}

/// A put of a recipe's own key that failed: the key it tried, and why. A
/// put that may have been applied leaves the key to remove.
#[derive(Debug)]
pub(crate) struct Unplaced {
    /// The key the put tried.
    pub(crate) key: Bytes,
    /// Why it failed.
    pub(crate) error: EtcdError,
}

/// Like [`Line::wait`], for recipes whose key is new on every attempt
/// (Go's `newUniqueEphemeralKey`: `<prefix>/<time in ns>`), so that its
/// name is known only once its put has been answered: runs `place` (the
/// put) and then `wait` in a task of its own. If `wait` fails, or this
/// future is dropped before it has the outcome, the placed key is removed,
/// as for a [`Line`]; so is the key of a put that failed after it may have
/// been applied. A caller gone before the put leaves nothing to remove.
///
/// No turn is needed: a late removal can only delete its own attempt's
/// key, never the key of a later attempt.
pub(crate) async fn placed_wait<T, P, PF, W, WF>(
    session: &Session,
    place: P,
    wait: W,
) -> Result<(Placed, T), EtcdError>
where
    T: Send + 'static,
    P: FnOnce() -> PF + Send + 'static,
    PF: Future<Output = Result<Placed, Unplaced>> + Send,
    W: FnOnce(Caller, Placed) -> WF + Send + 'static,
    WF: Future<Output = Result<T, EtcdError>> + Send,
{
    let session = session.clone();
    let undo_session = session.clone();
    let work = move |mut caller: Caller| async move {
        if caller.is_gone() {
            return Err(abandoned());
        }
        let placed = match place().await {
            Ok(placed) => placed,
            Err(Unplaced { key, error }) => {
                if error.sent() == Sent::MayHaveBeenApplied {
                    remove(&session, key).await;
                }
                return Err(error);
            }
        };
        match wait(caller, placed.clone()).await {
            Ok(value) => Ok((placed, value)),
            Err(error) => {
                remove(&session, placed.key).await;
                Err(error)
            }
        }
    };
    detached(work, move |(placed, _): (Placed, T)| async move {
        remove(&undo_session, placed.key).await;
    })
    .await
}
