//! [`Mutex`]: a fair distributed lock held through a [`Session`].

use bytes::Bytes;
use etcd_tower_core::EtcdError;

use super::{dir, first_created, session_expired, session_key, wait_deletes, Session};
use crate::bytes::IntoBytes;
use crate::kv::{PutOptions, ResponseHeader};
use crate::txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse};

/// A distributed lock, fair by arrival: waiters are served in the order
/// they asked (the create revision of their key under the lock's prefix).
/// Each waiter watches only its predecessor's key, so an unlock wakes one
/// waiter and nothing polls.
///
/// The lock is held through a [`Session`]: it is released by
/// [`unlock`](Self::unlock), or when the session ends (closed, dropped, or
/// its lease lost). Use [`is_owner`](Self::is_owner) in a [`Txn`] to write
/// only while still holding the lock.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use etcd_tower::concurrency::{Mutex, Session};
/// use etcd_tower::{Client, Txn, TxnOp};
///
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// let session = Session::with_ttl(&client, 10).await?;
/// let mut mutex = Mutex::new(&session, "locks/config");
/// if mutex.try_lock().await? {
///     // Fenced write: applied only if we still hold the lock.
///     let txn = Txn::new().when([mutex.is_owner()]).and_then([TxnOp::put("config", "v2")]);
///     client.txn(txn).await?;
///     mutex.unlock().await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Mutex {
    session: Session,
    dir: Bytes,
    key: Bytes,
    revision: i64,
    header: Option<ResponseHeader>,
}

impl Mutex {
    /// A lock named `prefix` (its waiters' keys live under `prefix/`).
    pub fn new(session: &Session, prefix: impl IntoBytes) -> Mutex {
        let dir = dir(prefix);
        Mutex {
            key: session_key(&dir, session.lease_id()),
            dir,
            session: session.clone(),
            revision: 0,
            header: None,
        }
    }

    /// Queues for the lock: puts this session's key unless it is there
    /// already, and reads the current owner. Returns whether this session
    /// owns the lock now.
    async fn enqueue(&mut self) -> Result<bool, EtcdError> {
        let client = self.session.client();
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([
                TxnOp::put_with(
                    self.key.clone(),
                    "",
                    PutOptions::new().lease(self.session.lease_id()),
                ),
                TxnOp::get_with(self.dir.clone(), first_created()),
            ])
            .or_else([
                TxnOp::get(self.key.clone()),
                TxnOp::get_with(self.dir.clone(), first_created()),
            ]);
        let resp: TxnResponse = client.txn(txn).await?;
        self.revision = resp.revision();
        let ops = resp.op_responses();
        if !resp.succeeded() {
            match ops.first() {
                Some(TxnOpResponse::Get(mine)) => match mine.kvs().first() {
                    Some(kv) => self.revision = kv.create_revision(),
                    None => return Err(session_expired()),
                },
                _ => return Err(session_expired()),
            }
        }
        self.header = resp.header().copied();
        let owner = match ops.get(1) {
            Some(TxnOpResponse::Get(owner)) => owner.kvs().first().map(|kv| kv.create_revision()),
            _ => None,
        };
        Ok(owner.is_none_or(|rev| rev == self.revision))
    }

    /// Waits until the lock is held. Fails with
    /// [`ErrorKind::LeaseNotFound`](etcd_tower_core::ErrorKind::LeaseNotFound)
    /// if the session ends first (and then holds nothing).
    pub async fn lock(&mut self) -> Result<(), EtcdError> {
        if !self.session.is_alive() {
            return Err(session_expired());
        }
        if self.enqueue().await? {
            return Ok(());
        }
        let client = self.session.client().clone();
        let waited = tokio::select! {
            waited = wait_deletes(&client, &self.dir, self.revision - 1) => waited,
            _ = self.session.lost() => Err(session_expired()),
        };
        if let Err(error) = waited {
            self.release_quietly().await;
            return Err(error);
        }
        // The session may have expired while waiting: its key would be gone.
        let mine = match client.get(self.key.clone()).await {
            Ok(mine) => mine,
            Err(error) => {
                self.release_quietly().await;
                return Err(error);
            }
        };
        if mine.kvs().is_empty() {
            self.revision = 0;
            return Err(session_expired());
        }
        self.header = mine.header().copied();
        Ok(())
    }

    /// Takes the lock if it is free, without waiting. Returns `false` (and
    /// leaves the queue) when someone else holds it.
    pub async fn try_lock(&mut self) -> Result<bool, EtcdError> {
        if !self.session.is_alive() {
            return Err(session_expired());
        }
        if self.enqueue().await? {
            return Ok(true);
        }
        self.unlock().await?;
        Ok(false)
    }

    /// Releases the lock (or leaves the queue).
    pub async fn unlock(&mut self) -> Result<(), EtcdError> {
        self.session.client().delete(self.key.clone()).await?;
        self.revision = 0;
        Ok(())
    }

    async fn release_quietly(&mut self) {
        if let Err(error) = self.unlock().await {
            tracing::debug!(%error, "leaving the lock queue failed; the session's lease will");
        }
    }

    /// The key this session holds (or waits with) under the lock's prefix.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The create revision of [`key`](Self::key) since the last lock
    /// attempt (0 when not queued): the lock's fencing token.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The header of the last answer that granted the lock.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }

    /// A comparison that holds only while this session owns the lock.
    pub fn is_owner(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.revision)
    }
}
