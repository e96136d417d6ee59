//! [`PriorityQueue`]: a multi-producer, multi-consumer queue served by
//! priority, with Go's keys
//! (`client/v3/experimental/recipes/priority_queue.go`).

use bytes::Bytes;
use etcd_tower_core::EtcdError;

use super::queue::{dequeue, Order};
use super::recipe_keys::put_sequential;
use crate::bytes::IntoBytes;
use crate::client::Client;

/// A distributed priority queue: [`dequeue`](Self::dequeue) takes an item
/// of the lowest priority *number* first, and items of one priority in the
/// order they were enqueued; each item is dequeued exactly once.
///
/// An item is the key `<prefix>/<priority as %05d>/<sequence as %016d>`
/// with the item as its value, without a lease: the sequence is one more
/// than the priority's last key, in a txn guarded by the bookkeeping key
/// `__<prefix>/<priority as %05d>` (which stays). A dequeue takes the
/// first key under `<prefix>/`. These are the keys, values and claims of
/// Go's `recipe.PriorityQueue` (etcd v3.5.30's
/// `client/v3/experimental/recipes/priority_queue.go` and `key.go`,
/// unchanged since v3.4), so Go and Rust processes share one queue.
///
/// [`dequeue`](Self::dequeue) is cancel-safe: a dropped dequeue loses no
/// item it took (it is put back in its place), see
/// [`Queue`](super::Queue).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use etcd_tower::concurrency::PriorityQueue;
/// use etcd_tower::Client;
///
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// let alerts = PriorityQueue::new(&client, "alerts");
/// alerts.enqueue("disk 80% full", 5).await?;
/// alerts.enqueue("member down", 0).await?;
/// assert_eq!(alerts.dequeue().await?, "member down"); // priority 0 first
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct PriorityQueue {
    client: Client,
    /// `prefix/`, as Go keeps it.
    dir: Bytes,
}

impl PriorityQueue {
    /// The priority queue named `prefix` (its items live under `prefix/`).
    pub fn new(client: &Client, prefix: impl IntoBytes) -> PriorityQueue {
        PriorityQueue {
            client: client.clone(),
            dir: super::dir(prefix),
        }
    }

    /// Adds `value` with `priority`: lower numbers are dequeued first (Go's
    /// `Enqueue`).
    pub async fn enqueue(&self, value: impl IntoBytes, priority: u16) -> Result<(), EtcdError> {
        let mut prefix = self.dir.to_vec();
        prefix.extend_from_slice(format!("{priority:05}").as_bytes());
        put_sequential(&self.client, &prefix, &value.into_bytes()).await?;
        Ok(())
    }

    /// Takes the item of the lowest priority number, the oldest of that
    /// priority, waiting for one while the queue is empty (Go's `Dequeue`).
    /// Cancel-safe: see the [type docs](Self).
    pub async fn dequeue(&self) -> Result<Bytes, EtcdError> {
        dequeue(&self.client, self.dir.clone(), Order::ByKey).await
    }
}
