//! [`RwMutex`]: a distributed readers-writer lock held through a
//! [`Session`], with Go's keys (`client/v3/experimental/recipes/rwmutex.go`).

use bytes::Bytes;
use etcd_tower_core::{ErrorKind, EtcdError};

use super::line::{placed_wait, Caller, Placed};
use super::recipe_keys::{child, try_put_unique};
use super::{abandoned, session_expired, wait_none_left, Session};
use crate::bytes::IntoBytes;
use crate::kv::{GetOptions, SortOrder, SortTarget};

/// A readers-writer lock: any number of readers hold it together, a
/// writer holds it alone, and a waiting writer is never starved: every
/// reader that asks after it waits behind it.
///
/// Each attempt puts a key of the session's under the lock's prefix,
/// ordered by revision: `<prefix>/read/<time in ns>` for a reader,
/// `<prefix>/write/<time in ns>` for a writer (empty values, on the
/// session's lease). A reader waits until no `write` key older than its own
/// is left; a writer until no key at all older than its own is left. Each
/// waits on the newest such key only, through the client's watch engine,
/// and reads again when it is deleted. These are the keys, values and
/// reads of Go's `recipe.RWMutex` (etcd v3.5.30's
/// `client/v3/experimental/recipes/rwmutex.go`, unchanged since v3.4), so
/// Go and Rust readers and writers of one lock exclude each other.
///
/// **Cancel-safe**: drop a [`read_lock`](Self::read_lock) or
/// [`lock`](Self::lock) future mid-wait and its key is removed in the
/// background, so nobody waits behind an abandoned attempt (see
/// [`concurrency`](super#giving-up-on-a-wait)). What is held ends with
/// [`unlock`](Self::unlock) or with the session.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use etcd_tower::concurrency::{RwMutex, Session};
/// use etcd_tower::Client;
///
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// let session = Session::with_ttl(&client, 10).await?;
/// let mut lock = RwMutex::new(&session, "locks/catalog");
/// lock.read_lock().await?; // shared with other readers
/// // ... read the catalog ...
/// lock.unlock().await?;
/// lock.lock().await?; // alone
/// // ... rewrite the catalog ...
/// lock.unlock().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RwMutex {
    session: Session,
    prefix: Bytes,
    held: Option<Placed>,
}

impl RwMutex {
    /// A readers-writer lock named `prefix` (its keys live under `prefix/`).
    pub fn new(session: &Session, prefix: impl IntoBytes) -> RwMutex {
        RwMutex {
            session: session.clone(),
            prefix: prefix.into_bytes(),
            held: None,
        }
    }

    /// Waits until the lock is held for reading (Go's `RLock`): until no
    /// writer that asked earlier holds it or waits for it. Fails with
    /// [`ErrorKind::LeaseNotFound`] if the session ends first.
    /// Cancel-safe; see the [type docs](Self).
    pub async fn read_lock(&mut self) -> Result<(), EtcdError> {
        let blockers = child(&self.prefix, b"write");
        self.acquire(b"read", blockers).await
    }

    /// Waits until the lock is held for writing (Go's `Lock`): until no
    /// reader or writer that asked earlier holds it or waits for it. Fails
    /// with [`ErrorKind::LeaseNotFound`] if the session ends first.
    /// Cancel-safe; see the [type docs](Self).
    pub async fn lock(&mut self) -> Result<(), EtcdError> {
        let blockers = child(&self.prefix, b"");
        self.acquire(b"write", blockers).await
    }

    /// Releases the lock, read or write (Go's `RUnlock` and `Unlock`); a
    /// no-op when not held.
    pub async fn unlock(&mut self) -> Result<(), EtcdError> {
        if let Some(held) = &self.held {
            self.session.client().delete(held.key.clone()).await?;
            self.held = None;
        }
        Ok(())
    }

    /// The key this lock is held with, while held.
    pub fn key(&self) -> Option<&[u8]> {
        self.held.as_ref().map(|held| &held.key[..])
    }

    /// The create revision of [`key`](Self::key) (0 when not held): a
    /// fencing token.
    pub fn revision(&self) -> i64 {
        self.held.as_ref().map_or(0, |held| held.revision)
    }

    async fn acquire(&mut self, role: &[u8], blockers: Bytes) -> Result<(), EtcdError> {
        if self.held.is_some() {
            return Err(EtcdError::client(
                ErrorKind::InvalidRequest,
                "this RwMutex holds its lock already: unlock it before locking again",
            ));
        }
        if !self.session.is_alive() {
            return Err(session_expired());
        }
        let session = self.session.clone();
        let mine = child(&self.prefix, role);
        let place = {
            let session = session.clone();
            move || async move {
                try_put_unique(session.client(), &mine, &Bytes::new(), session.lease_id()).await
            }
        };
        let wait = move |caller, placed| wait_turn(session, blockers, placed, caller);
        let (placed, ()) = placed_wait(&self.session, place, wait).await?;
        self.held = Some(placed);
        Ok(())
    }
}

/// Waits until no key with a prefix of `blockers` and a revision below
/// `placed`'s is left (Go's `waitOnLastRev` loop): each round watches the
/// newest such key until it is deleted.
async fn wait_turn(
    session: Session,
    blockers: Bytes,
    placed: Placed,
    mut caller: Caller,
) -> Result<(), EtcdError> {
    let client = session.client();
    let newest_before = GetOptions::new()
        .prefix()
        .sort(SortTarget::Mod, SortOrder::Descend)
        .limit(1)
        .max_mod_revision(placed.revision - 1);
    tokio::select! {
        waited = wait_none_left(client, &blockers, newest_before) => waited?,
        _ = session.lost() => return Err(session_expired()),
        () = caller.gone() => return Err(abandoned()),
    }
    // The session may have expired while waiting: its key would be gone.
    if client.get(placed.key.clone()).await?.kvs().is_empty() {
        return Err(session_expired());
    }
    Ok(())
}
