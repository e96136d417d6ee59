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

/// # Lock service
impl Client {
    /// Acquires the lock `name` for the lease `lease_id`, waiting as long as
    /// it takes: the client-wide deadlines do not cut the wait short (set
    /// one with [`Client::with_options`], or wrap the call in
    /// `tokio::time::timeout`; the server removes the waiter's key when the
    /// call is dropped). The answer's `key` owns the lock.
    pub async fn lock(
        &self,
        name: impl IntoBytes,
        lease_id: i64,
    ) -> Result<LockResponse, EtcdError> {
        self.unary_waiting(pb::LockRequest {
            name: name.into_bytes(),
            lease: lease_id,
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
