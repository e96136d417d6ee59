//! etcd's lock service (`v3lockpb`): distributed locks held by the server
//! on behalf of a lease.
//!
//! `lock` waits until the lock is acquired and returns the key that owns
//! it; the lock is held until `unlock(key)` or until the lease ends. For a
//! lock implemented in the client (fair, with `try_lock`), see
//! [`concurrency::Mutex`](crate::concurrency::Mutex).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::{Client, LeaseKeeper};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let lease = LeaseKeeper::grant(&client, 10).await?;
//! let held = client.lock("jobs/nightly", lease.id()).await?;
//! // ... the critical section ...
//! client.unlock(held.key.clone()).await?;
//! # Ok(())
//! # }
//! ```

use etcd_tower_core::proto::v3lockpb as pb;
use etcd_tower_core::EtcdError;

pub use etcd_tower_core::proto::v3lockpb::{LockResponse, UnlockResponse};

use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::detached::{on_server, waiter_key};

/// # Lock service
impl Client {
    /// Acquires the lock `name` for the lease `lease_id`, waiting as long as
    /// it takes: the client-wide deadlines do not cut the wait short (set
    /// one with [`Client::with_options`], or wrap the call in
    /// `tokio::time::timeout`). The answer's `key` owns the lock: `name`,
    /// `/` and the lease ID in hex, as in Go's `concurrency` package.
    ///
    /// **Cancel-safe**: dropping the future (a `timeout`, a `select!`)
    /// removes the waiter's key, so no later waiter queues behind it, and a
    /// lock granted just as the call was dropped is unlocked. The server
    /// removes the key of a cancelled call itself, but not when the cancel
    /// lands just after its put of the key (etcd 3.4 and 3.5 then return
    /// without cleaning up, and the key stays until the lease ends), so the
    /// client finishes the job in the background: it lets the call run
    /// until the key is on the server, then cancels it and deletes the key.
    pub async fn lock(
        &self,
        name: impl IntoBytes,
        lease_id: i64,
    ) -> Result<LockResponse, EtcdError> {
        let name = name.into_bytes();
        let key = waiter_key(&name, lease_id);
        let (locking, unlocking) = (self.clone(), self.clone());
        let call = async move {
            locking
                .unary_waiting(pb::LockRequest {
                    name,
                    lease: lease_id,
                })
                .await
        };
        on_server(self, key, call, move |held: LockResponse| async move {
            if let Err(error) = unlocking.unlock(held.key).await {
                tracing::debug!(%error, "unlocking a lock nobody took failed; its lease will end it");
            }
        })
        .await
    }

    /// Releases a lock by its owner key (the `key` of [`Client::lock`]'s answer).
    pub async fn unlock(&self, key: impl IntoBytes) -> Result<UnlockResponse, EtcdError> {
        self.unary(pb::UnlockRequest {
            key: key.into_bytes(),
        })
        .await
    }
}
