//! [`Mutex`]: a fair distributed lock held through a [`Session`].

use bytes::Bytes;
use etcd_tower_core::EtcdError;

use super::line::{Caller, Line};
use super::{abandoned, dir, first_created, session_expired, wait_deletes, Session};
use crate::bytes::IntoBytes;
use crate::detached::waiter_key;
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
    line: Line,
    dir: Bytes,
    revision: i64,
    header: Option<ResponseHeader>,
}

/// A lock attempt's outcome: the key's create revision and the header of
/// the answer that granted the lock.
#[derive(Debug)]
struct Granted {
    revision: i64,
    header: Option<ResponseHeader>,
}

impl Mutex {
    /// A lock named `prefix` (its waiters' keys live under `prefix/`).
    pub fn new(session: &Session, prefix: impl IntoBytes) -> Mutex {
        let prefix = prefix.into_bytes();
        let dir = dir(&prefix);
        Mutex {
            line: Line::new(session, waiter_key(&prefix, session.lease_id())),
            dir,
            revision: 0,
            header: None,
        }
    }

    /// Waits until the lock is held. Fails with
    /// [`ErrorKind::LeaseNotFound`](etcd_tower_core::ErrorKind::LeaseNotFound)
    /// if the session ends first (and then holds nothing).
    ///
    /// **Cancel-safe**: dropping the future (a `timeout`, a `select!`, an
    /// aborted task) leaves the line: this session's key is removed, so no
    /// later waiter queues behind it (see [`concurrency`](super#giving-up-on-a-wait)).
    /// On an error the key is removed before the error is returned.
    pub async fn lock(&mut self) -> Result<(), EtcdError> {
        if !self.line.session().is_alive() {
            return Err(session_expired());
        }
        let (line, dir) = (self.line.clone(), self.dir.clone());
        self.revision = 0;
        let granted = self
            .line
            .wait(move |caller| acquire(line, dir, caller))
            .await?;
        self.revision = granted.revision;
        self.header = granted.header;
        Ok(())
    }

    /// Takes the lock if it is free, without waiting. Returns `false` (and
    /// leaves the queue) when someone else holds it. Cancel-safe like
    /// [`lock`](Self::lock).
    pub async fn try_lock(&mut self) -> Result<bool, EtcdError> {
        if !self.line.session().is_alive() {
            return Err(session_expired());
        }
        let (line, dir) = (self.line.clone(), self.dir.clone());
        self.revision = 0;
        let granted = self
            .line
            .wait(move |_caller| async move {
                let queued = enqueue(&line, &dir).await?;
                if queued.owns {
                    return Ok(Some(queued.granted));
                }
                line.session().client().delete(line.key().clone()).await?;
                Ok(None)
            })
            .await?;
        let Some(granted) = granted else {
            return Ok(false);
        };
        self.revision = granted.revision;
        self.header = granted.header;
        Ok(true)
    }

    /// Releases the lock (or leaves the queue).
    ///
    /// Dropping a `Mutex` that holds the lock does not release it (as in
    /// Go's client): call `unlock`, or end the session.
    pub async fn unlock(&mut self) -> Result<(), EtcdError> {
        self.line
            .session()
            .client()
            .delete(self.line.key().clone())
            .await?;
        self.revision = 0;
        Ok(())
    }

    /// The key this session holds (or waits with) under the lock's prefix.
    pub fn key(&self) -> &[u8] {
        self.line.key()
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
        Compare::create_revision(self.line.key().clone(), CompareOp::Equal, self.revision)
    }
}

/// Where an [`enqueue`] left this session.
struct Queued {
    granted: Granted,
    /// Whether the key is the oldest under the prefix: the lock is held.
    owns: bool,
}

/// Queues for the lock: puts the session's key unless it is there already,
/// and reads the current owner in the same txn (Go's `tryAcquire`).
async fn enqueue(line: &Line, dir: &Bytes) -> Result<Queued, EtcdError> {
    let session = line.session();
    let key = line.key().clone();
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([
            TxnOp::put_with(key.clone(), "", PutOptions::new().lease(session.lease_id())),
            TxnOp::get_with(dir.clone(), first_created()),
        ])
        .or_else([
            TxnOp::get(key),
            TxnOp::get_with(dir.clone(), first_created()),
        ]);
    let resp: TxnResponse = session.client().txn(txn).await?;
    let ops = resp.op_responses();
    let revision = if resp.succeeded() {
        resp.revision()
    } else {
        match ops.first() {
            Some(TxnOpResponse::Get(mine)) => match mine.kvs().first() {
                Some(kv) => kv.create_revision(),
                None => return Err(session_expired()),
            },
            _ => return Err(session_expired()),
        }
    };
    let owner = match ops.get(1) {
        Some(TxnOpResponse::Get(owner)) => owner.kvs().first().map(|kv| kv.create_revision()),
        _ => None,
    };
    Ok(Queued {
        granted: Granted {
            revision,
            header: resp.header().copied(),
        },
        owns: owner.is_none_or(|owner| owner == revision),
    })
}

/// The whole wait for the lock, run by [`Line::wait`] (Go's `Mutex.Lock`):
/// queue, wait until every older key is gone, then check that this
/// session's key survived the wait.
async fn acquire(line: Line, dir: Bytes, mut caller: Caller) -> Result<Granted, EtcdError> {
    let queued = enqueue(&line, &dir).await?;
    if queued.owns {
        return Ok(queued.granted);
    }
    if caller.is_gone() {
        return Err(abandoned());
    }
    let session = line.session();
    let client = session.client();
    tokio::select! {
        waited = wait_deletes(client, &dir, queued.granted.revision - 1) => waited?,
        _ = session.lost() => return Err(session_expired()),
        () = caller.gone() => return Err(abandoned()),
    }
    // The session may have expired while waiting: its key would be gone.
    let mine = client.get(line.key().clone()).await?;
    if mine.kvs().is_empty() {
        return Err(session_expired());
    }
    Ok(Granted {
        revision: queued.granted.revision,
        header: mine.header().copied(),
    })
}
