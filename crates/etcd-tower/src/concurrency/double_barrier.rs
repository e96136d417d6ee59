//! [`DoubleBarrier`]: a group of `count` processes enters together and
//! leaves together; Go's keys and protocol
//! (`client/v3/experimental/recipes/double_barrier.go`).

use bytes::Bytes;
use etcd_tower_core::{ErrorKind, EtcdError};
use etcd_tower_watch::{EventKind, WatchOptions};

use super::line::{placed_wait, remove, Caller, Placed};
use super::recipe_keys::{child, try_put_unique};
use super::wait_events::wait_sequence;
use super::{abandoned, is_compacted, session_expired, wait_delete, Session};
use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::detached::detached;
use crate::kv::{GetOptions, KeyValue, SortOrder, SortTarget};

/// A double barrier: [`enter`](Self::enter) waits until `count` processes
/// have entered, [`leave`](Self::leave) until all of them have left.
///
/// Each process that enters puts `<key>/waiters/<time in ns>` (empty, on
/// its session's lease). The one whose key is the `count`-th by create
/// revision puts `<key>/ready` (empty, no lease), which releases the others:
/// they watch it from their own key's revision. A process that would be
/// one too many removes its key and fails. To leave, every process but the
/// one with the oldest key deletes its key and waits for the oldest; the
/// oldest waits for the newest until it is alone, then deletes `ready` and
/// its key. These are the keys, values and steps of Go's
/// `recipe.DoubleBarrier` as of etcd v3.5.30
/// (`client/v3/experimental/recipes/double_barrier.go`, whose `Enter`
/// counts by create revision since v3.5.6; v3.4 counts all keys), so Go and
/// Rust processes make up one group. A process that dies leaves the group
/// with its session's lease.
///
/// **Cancel-safe**: a dropped [`enter`](Self::enter) or
/// [`leave`](Self::leave) removes this process's waiter key in the
/// background (see [`concurrency`](super#giving-up-on-a-wait)). `ready`
/// then stays until the group's last process leaves; a stale `ready` is
/// harmless, since `enter` waits for a *new* put of it.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use etcd_tower::concurrency::{DoubleBarrier, Session};
/// use etcd_tower::Client;
///
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// let session = Session::with_ttl(&client, 10).await?;
/// let mut round = DoubleBarrier::new(&session, "barriers/round-7", 3);
/// round.enter().await?; // the three workers start together
/// // ... compute ...
/// round.leave().await?; // and nobody starts the next round early
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DoubleBarrier {
    session: Session,
    waiters: Bytes,
    ready: Bytes,
    count: usize,
    mine: Option<Placed>,
}

impl DoubleBarrier {
    /// The double barrier `key` for a group of `count` processes.
    pub fn new(session: &Session, key: impl IntoBytes, count: usize) -> DoubleBarrier {
        let key = key.into_bytes();
        DoubleBarrier {
            session: session.clone(),
            waiters: child(&key, b"waiters"),
            ready: child(&key, b"ready"),
            count,
            mine: None,
        }
    }

    /// Enters, and waits until the whole group of `count` has entered (Go's
    /// `Enter`). Fails with [`ErrorKind::InvalidRequest`] if `count`
    /// processes have entered already (Go's `ErrTooManyClients`; this
    /// process's key is then removed), and with
    /// [`ErrorKind::LeaseNotFound`] if the session ends first.
    /// Cancel-safe; see the [type docs](Self).
    pub async fn enter(&mut self) -> Result<(), EtcdError> {
        if self.mine.is_some() {
            return Err(EtcdError::client(
                ErrorKind::InvalidRequest,
                "this DoubleBarrier has entered already: leave it before entering again",
            ));
        }
        if !self.session.is_alive() {
            return Err(session_expired());
        }
        let count = self.count;
        let client = self.session.client();
        if entered(client, &self.waiters).await?.len() >= count {
            return Err(too_many(count));
        }
        let (session, waiters, ready) = (
            self.session.clone(),
            self.waiters.clone(),
            self.ready.clone(),
        );
        let place = {
            let (session, waiters) = (session.clone(), waiters.clone());
            move || async move {
                try_put_unique(
                    session.client(),
                    &waiters,
                    &Bytes::new(),
                    session.lease_id(),
                )
                .await
            }
        };
        let wait = move |caller, placed| enter_wait(session, waiters, ready, count, placed, caller);
        let (placed, ()) = placed_wait(&self.session, place, wait).await?;
        self.mine = Some(placed);
        Ok(())
    }

    /// Leaves, and waits until every process of the group has left (Go's
    /// `Leave`); a no-op when not entered. Fails with
    /// [`ErrorKind::LeaseNotFound`] if the session ends first.
    /// Cancel-safe; see the [type docs](Self).
    pub async fn leave(&mut self) -> Result<(), EtcdError> {
        let Some(mine) = self.mine.clone() else {
            return Ok(());
        };
        let (session, waiters, ready) = (
            self.session.clone(),
            self.waiters.clone(),
            self.ready.clone(),
        );
        let work = move |caller| async move {
            let left = leave_rounds(&session, &waiters, &ready, &mine.key, caller).await;
            if left.is_err() {
                remove(&session, mine.key).await;
            }
            left
        };
        detached(work, |()| async {}).await?;
        self.mine = None;
        Ok(())
    }

    /// This process's waiter key, while entered.
    pub fn key(&self) -> Option<&[u8]> {
        self.mine.as_ref().map(|mine| &mine.key[..])
    }
}

fn too_many(count: usize) -> EtcdError {
    EtcdError::client(
        ErrorKind::InvalidRequest,
        format!("the double barrier's group of {count} has entered already: no more may enter"),
    )
}

/// The processes that entered, oldest first (Go's `enteredClients`).
async fn entered(client: &Client, waiters: &Bytes) -> Result<Vec<KeyValue>, EtcdError> {
    let by_age = GetOptions::new()
        .prefix()
        .sort(SortTarget::Create, SortOrder::Ascend);
    Ok(client.get_with(waiters.clone(), by_age).await?.into_kvs())
}

/// Go's `Enter` after the put of this process's key: count again; the
/// `count`-th puts `ready`, one past it fails, the others wait for `ready`.
async fn enter_wait(
    session: Session,
    waiters: Bytes,
    ready: Bytes,
    count: usize,
    placed: Placed,
    mut caller: Caller,
) -> Result<(), EtcdError> {
    let client = session.client();
    let entered = entered(client, &waiters).await?;
    if let Some(last) = count.checked_sub(1).and_then(|last| entered.get(last)) {
        if placed.revision > last.create_revision() {
            return Err(too_many(count));
        }
        if placed.revision == last.create_revision() {
            client.put(ready, Bytes::new()).await?;
            return Ok(());
        }
    }
    tokio::select! {
        waited = wait_ready(client, &ready, placed.revision) => waited,
        _ = session.lost() => Err(session_expired()),
        () = caller.gone() => Err(abandoned()),
    }
}

/// Waits for a put of `ready` at or after `since` (Go watches for it from
/// there); after a compaction, reads whether it came meanwhile.
async fn wait_ready(client: &Client, ready: &Bytes, since: i64) -> Result<(), EtcdError> {
    let mut from = since;
    loop {
        let puts = WatchOptions::new().start_revision(from).no_delete();
        match wait_sequence(client, ready.clone(), puts, &[EventKind::Put]).await {
            Ok(_) => return Ok(()),
            Err(error) if is_compacted(&error) => {
                let now = client.get(ready.clone()).await?;
                if now
                    .kvs()
                    .first()
                    .is_some_and(|kv| kv.mod_revision() >= since)
                {
                    return Ok(());
                }
                from = now.revision() + 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Go's `Leave`, round after round until no waiter key is left.
async fn leave_rounds(
    session: &Session,
    waiters: &Bytes,
    ready: &Bytes,
    mine: &Bytes,
    mut caller: Caller,
) -> Result<(), EtcdError> {
    let client = session.client();
    loop {
        let resp = client
            .get_with(waiters.clone(), GetOptions::new().prefix())
            .await?;
        let kvs = resp.kvs();
        let (Some(lowest), Some(highest)) = (
            kvs.iter().min_by_key(|kv| kv.mod_revision()),
            kvs.iter().max_by_key(|kv| kv.mod_revision()),
        ) else {
            return Ok(());
        };
        let is_lowest = lowest.key() == &mine[..];
        if kvs.len() == 1 && is_lowest {
            client.delete(ready.clone()).await?;
            client.delete(mine.clone()).await?;
            return Ok(());
        }
        // The oldest waits for the newest; the others leave, and wait for
        // the oldest.
        let (wait_for, revision) = if is_lowest {
            (highest.key_bytes().clone(), highest.mod_revision())
        } else {
            if kvs.iter().any(|kv| kv.key() == &mine[..]) {
                client.delete(mine.clone()).await?;
            }
            (lowest.key_bytes().clone(), lowest.mod_revision())
        };
        if caller.is_gone() {
            return Err(abandoned());
        }
        tokio::select! {
            waited = wait_delete(client, wait_for, revision) => waited?,
            _ = session.lost() => return Err(session_expired()),
            () = caller.gone() => return Err(abandoned()),
        }
    }
}
