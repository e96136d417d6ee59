//! [`Barrier`]: one process holds a barrier, others wait until it is
//! released; Go's keys (`client/v3/experimental/recipes/barrier.go`).

use bytes::Bytes;
use etcd_tower_core::EtcdError;
use etcd_tower_watch::{EventKind, WatchOptions};

use super::is_compacted;
use super::recipe_keys::put_new;
use super::wait_events::wait_sequence;
use crate::bytes::IntoBytes;
use crate::client::Client;

/// A barrier: [`hold`](Self::hold) puts its key, [`wait`](Self::wait)
/// blocks until the key is gone, and [`release`](Self::release) deletes it,
/// releasing every waiter at once.
///
/// The barrier is the key itself, with an empty value and no lease (a
/// barrier outlives the process that holds it), put only if it does not
/// exist. These are the key and value of Go's `recipe.Barrier` (etcd
/// v3.5.30's `client/v3/experimental/recipes/barrier.go`), so Go and Rust
/// processes hold and wait on one barrier. One difference, a fix: Go's
/// `Wait` waits for a put *and then* a delete from the revision it read,
/// so it misses a release whenever any other write reached the cluster
/// between the hold and its read; this `wait` waits for the delete only.
///
/// A dropped `wait` leaves nothing behind: it only watches.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use etcd_tower::concurrency::Barrier;
/// use etcd_tower::Client;
///
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// let gate = Barrier::new(&client, "barriers/migration");
/// gate.hold().await?;
/// let waiter = {
///     let gate = gate.clone();
///     tokio::spawn(async move { gate.wait().await })
/// };
/// // ... migrate ...
/// gate.release().await?; // every waiter goes on now
/// waiter.await.ok();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Barrier {
    client: Client,
    key: Bytes,
}

impl Barrier {
    /// The barrier `key`.
    pub fn new(client: &Client, key: impl IntoBytes) -> Barrier {
        Barrier {
            client: client.clone(),
            key: key.into_bytes(),
        }
    }

    /// Puts the barrier up (Go's `Hold`): `true` if this call put it,
    /// `false` if it was held already (Go's `ErrKeyExists`).
    pub async fn hold(&self) -> Result<bool, EtcdError> {
        let put = put_new(&self.client, &self.key, &Bytes::new(), 0).await?;
        Ok(put.is_some())
    }

    /// Takes the barrier down, releasing every waiter (Go's `Release`).
    pub async fn release(&self) -> Result<(), EtcdError> {
        self.client.delete(self.key.clone()).await?;
        Ok(())
    }

    /// Waits until the barrier is released; returns at once when it is not
    /// held (Go's `Wait`).
    pub async fn wait(&self) -> Result<(), EtcdError> {
        let mut held_since = None;
        loop {
            let resp = self.client.get(self.key.clone()).await?;
            let Some(kv) = resp.kvs().first() else {
                return Ok(());
            };
            // After a compaction: held again since we looked, so released.
            if held_since.is_some_and(|since| since != kv.create_revision()) {
                return Ok(());
            }
            held_since = Some(kv.create_revision());
            let deletes = WatchOptions::new().start_revision(resp.revision()).no_put();
            let key = self.key.clone();
            match wait_sequence(&self.client, key, deletes, &[EventKind::Delete]).await {
                Ok(_) => return Ok(()),
                Err(error) if is_compacted(&error) => continue,
                Err(error) => return Err(error),
            }
        }
    }
}
