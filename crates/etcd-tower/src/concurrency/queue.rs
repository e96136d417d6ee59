//! [`Queue`]: a multi-producer, multi-consumer FIFO queue with Go's keys
//! (`client/v3/experimental/recipes/queue.go`), and the dequeue it shares
//! with [`PriorityQueue`](super::PriorityQueue).
//!
//! # Taking an item exactly once, and giving up on a dequeue
//!
//! A consumer reads the first item and *claims* it: it deletes the item's
//! key only if its mod revision is still the one read (Go's
//! `deleteRevKey`), so of several consumers exactly one gets each item.
//! When the queue is empty it watches the queue's keys from the revision of
//! that read (no put is missed, nothing polls) and claims the first item
//! put.
//!
//! A dequeue runs in a task of its own (the crate's `detached` runner),
//! which its caller's future only listens to. When the caller gives up
//! (drops the future, a `timeout` fires):
//!
//! * before the claim is sent: no claim is sent, nothing is taken;
//! * while the claim is in flight, or after it succeeded but before the
//!   caller read the item: the claim runs to its answer, and an item taken
//!   that nobody read is **put back** under its own key (if that key is
//!   still free), with its value, in the background. In a [`Queue`] (ordered
//!   by mod revision) the item goes to the back of the line; in a
//!   [`PriorityQueue`](super::PriorityQueue) (ordered by key) it regains its
//!   place. If its key was taken meanwhile (a priority queue reuses the
//!   number of a deleted last item), it is enqueued anew.
//!
//! Transient failures of the put-back are retried for up to ten minutes (a
//! put-back whose answer was lost looks for the item under its key before
//! trying again; only a re-enqueue under a new key whose answer is lost,
//! and which is then tried again, could deliver the item twice).
//! Only a process that dies, or a Tokio runtime shut down, between the
//! claim and the put-back loses the item, as a Go consumer that dies after
//! its `Dequeue` does: the queue delivers at most once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use etcd_tower_core::{EtcdError, Sent};
use etcd_tower_watch::{EventKind, WatchOptions};

use super::line::Caller;
use super::recipe_keys::{claim, put_new, put_sequential, put_unique};
use super::wait_events::wait_sequence;
use super::{abandoned, is_compacted};
use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::detached::{detached, retry_transient};
use crate::kv::{GetOptions, KeyValue, SortOrder, SortTarget};

/// How long the put-back of an item nobody read keeps trying at most.
const PUT_BACK_GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// A distributed FIFO queue: producers [`enqueue`](Self::enqueue), any
/// number of consumers [`dequeue`](Self::dequeue), and each item is
/// dequeued exactly once, oldest first.
///
/// An item is the key `<prefix>/<time in ns>` with the item as its value,
/// without a lease, put only if the key is new; items are dequeued in the
/// order of their mod revision. These are the keys, values and claims of
/// Go's `recipe.Queue` (etcd v3.5.30's
/// `client/v3/experimental/recipes/queue.go`, unchanged since v3.4), so Go
/// and Rust producers and consumers share one queue. As in Go, a dequeue
/// reads every key that *starts with* `prefix`: name queues so that no name
/// is a prefix of another (`jobs` and `jobs2` would share items).
///
/// [`dequeue`](Self::dequeue) is cancel-safe: a dropped dequeue loses no
/// item it took, see [`queue`](self#taking-an-item-exactly-once-and-giving-up-on-a-dequeue).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use std::time::Duration;
/// use etcd_tower::concurrency::Queue;
/// use etcd_tower::Client;
///
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// let jobs = Queue::new(&client, "jobs");
/// jobs.enqueue("resize photo 17").await?;
/// // Waits for an item; giving up after a second takes nothing.
/// if let Ok(job) = tokio::time::timeout(Duration::from_secs(1), jobs.dequeue()).await {
///     println!("working on {:?}", job?);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Queue {
    client: Client,
    prefix: Bytes,
}

impl Queue {
    /// The queue named `prefix` (its items live under `prefix/`).
    pub fn new(client: &Client, prefix: impl IntoBytes) -> Queue {
        Queue {
            client: client.clone(),
            prefix: prefix.into_bytes(),
        }
    }

    /// Adds `value` at the back of the queue (Go's `Enqueue`).
    pub async fn enqueue(&self, value: impl IntoBytes) -> Result<(), EtcdError> {
        put_unique(&self.client, &self.prefix, &value.into_bytes(), 0).await?;
        Ok(())
    }

    /// Takes the oldest item, waiting for one while the queue is empty
    /// (Go's `Dequeue`). Cancel-safe: see the [type docs](Self).
    pub async fn dequeue(&self) -> Result<Bytes, EtcdError> {
        dequeue(&self.client, self.prefix.clone(), Order::Fifo).await
    }
}

/// Which item a dequeue takes first.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Order {
    /// The oldest put (Go's `WithFirstRev`); items are `<prefix>/<ns>`.
    Fifo,
    /// The first key (Go's `WithFirstKey`); items are `<prefix>/<%016d>`.
    ByKey,
}

impl Order {
    fn sort(self) -> SortTarget {
        match self {
            Order::Fifo => SortTarget::Mod,
            Order::ByKey => SortTarget::Key,
        }
    }
}

/// Takes the first item under `range` in `order`, waiting for one while
/// there is none, in a task of its own; an item taken that the caller did
/// not read is put back. See the [module docs](self).
pub(crate) async fn dequeue(
    client: &Client,
    range: Bytes,
    order: Order,
) -> Result<Bytes, EtcdError> {
    let (work_client, undo_client) = (client.clone(), client.clone());
    let item = detached(
        move |caller| take(work_client, range, order, caller),
        move |item: KeyValue| put_back(undo_client, item, order),
    )
    .await?;
    Ok(item.value_bytes().clone())
}

/// Go's `Dequeue` loop: read the first item and claim it; when there is
/// none, claim the first one put from the read's revision on. No claim is
/// sent once the caller is gone; one in flight runs to its answer.
async fn take(
    client: Client,
    range: Bytes,
    order: Order,
    mut caller: Caller,
) -> Result<KeyValue, EtcdError> {
    let first = GetOptions::new()
        .prefix()
        .sort(order.sort(), SortOrder::Ascend)
        .limit(1);
    loop {
        if caller.is_gone() {
            return Err(abandoned());
        }
        let resp = client.get_with(range.clone(), first.clone()).await?;
        if let Some(kv) = resp.kvs().first() {
            if caller.is_gone() {
                return Err(abandoned());
            }
            if claim(&client, kv).await? {
                return Ok(kv.clone());
            }
            if resp.more() {
                // Another consumer took it; there are more to try.
                continue;
            }
        }
        let puts = WatchOptions::new()
            .prefix()
            .start_revision(resp.revision())
            .no_delete();
        let put = tokio::select! {
            put = wait_sequence(&client, range.clone(), puts, &[EventKind::Put]) => put,
            () = caller.gone() => return Err(abandoned()),
        };
        let kv = match put {
            Ok(event) => event.into_proto().kv.map(KeyValue::from),
            // The history is gone: read the queue again.
            Err(error) if is_compacted(&error) => None,
            Err(error) => return Err(error),
        };
        if let Some(kv) = kv {
            if !caller.is_gone() && claim(&client, &kv).await? {
                return Ok(kv);
            }
        }
    }
}

/// Puts an item that was taken but never read back into the queue: under
/// its own key if that is still free, else as a new item of its queue (or
/// priority).
async fn put_back(client: Client, item: KeyValue, order: Order) {
    let give_up = tokio::time::Instant::now() + PUT_BACK_GIVE_UP_AFTER;
    let key = item.key_bytes().clone();
    let value = item.value_bytes().clone();
    let parent_len = key.iter().rposition(|b| *b == b'/').unwrap_or(0);
    let parent = key.slice(..parent_len);
    // Set once a put-back may have landed without its answer: a retry
    // then finds the key, with the item as its value.
    let maybe_put = AtomicBool::new(false);
    let what = "putting back a dequeued item nobody read";
    let done = retry_transient(what, give_up, std::future::pending(), || async {
        match put_new(&client, &key, &value, 0).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if maybe_put.load(Ordering::Relaxed) => {
                let now = client.get(key.clone()).await?;
                if now.kvs().first().is_some_and(|kv| kv.value() == &value[..]) {
                    return Ok(());
                }
            }
            Ok(None) => {}
            Err(error) => {
                if error.sent() == Sent::MayHaveBeenApplied {
                    maybe_put.store(true, Ordering::Relaxed);
                }
                return Err(error);
            }
        }
        match order {
            Order::Fifo => put_unique(&client, &parent, &value, 0).await.map(drop),
            Order::ByKey => put_sequential(&client, &parent, &value).await.map(drop),
        }
    })
    .await;
    if done {
        tracing::debug!(key = ?String::from_utf8_lossy(&key), "put back a dequeued item nobody read");
    }
}
