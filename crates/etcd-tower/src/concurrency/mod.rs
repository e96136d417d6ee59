//! Client-side recipes on top of leases, txns and watches, like Go's
//! `clientv3/concurrency`: [`Session`], [`Mutex`] and [`Election`].
//!
//! A [`Session`] is a lease kept alive in the background; what a session
//! holds (a lock, leadership) ends when the session ends, whether it is
//! closed, dropped, or its process dies and the lease expires.
//!
//! The recipes use etcd's revision order: every contender writes a key
//! under a common prefix, and the key with the lowest create revision wins.
//! The others each watch only their predecessor's key, from the revision
//! they read at, so a release wakes exactly one waiter and nobody polls.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::concurrency::{Mutex, Session};
//! use etcd_tower::Client;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let session = Session::with_ttl(&client, 10).await?;
//! let mut mutex = Mutex::new(&session, "locks/report");
//! mutex.lock().await?;
//! // ... only one holder at a time here ...
//! mutex.unlock().await?;
//! session.close().await?;
//! # Ok(())
//! # }
//! ```

mod election;
mod mutex;
mod session;

pub use election::{Election, ObserveLeader};
pub use mutex::Mutex;
pub use session::{Session, DEFAULT_TTL as DEFAULT_SESSION_TTL};

use bytes::{BufMut, Bytes, BytesMut};
use etcd_tower_core::{ErrorKind, EtcdError};

use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::kv::{GetOptions, SortOrder, SortTarget};

/// `prefix` with a trailing `/`.
pub(crate) fn dir(prefix: impl IntoBytes) -> Bytes {
    let prefix = prefix.into_bytes();
    let mut dir = BytesMut::with_capacity(prefix.len() + 1);
    dir.put_slice(&prefix);
    dir.put_u8(b'/');
    dir.freeze()
}

/// The key a session owns under `dir`: the dir and the lease ID in hex.
pub(crate) fn session_key(dir: &Bytes, lease_id: i64) -> Bytes {
    let mut key = BytesMut::from(&dir[..]);
    key.put_slice(format!("{lease_id:x}").as_bytes());
    key.freeze()
}

/// The oldest key under a prefix.
pub(crate) fn first_created() -> GetOptions {
    GetOptions::new()
        .prefix()
        .sort(SortTarget::Create, SortOrder::Ascend)
        .limit(1)
}

/// The error of a recipe whose session's lease is gone.
pub(crate) fn session_expired() -> EtcdError {
    EtcdError::client(
        ErrorKind::LeaseNotFound,
        "the session expired: its lease is gone",
    )
}

/// Waits until no key under `dir` created at or before `max_create_revision`
/// is left: each round watches the newest such key until it is deleted.
pub(crate) async fn wait_deletes(
    client: &Client,
    dir: &Bytes,
    max_create_revision: i64,
) -> Result<(), EtcdError> {
    let newest_before = GetOptions::new()
        .prefix()
        .sort(SortTarget::Create, SortOrder::Descend)
        .limit(1)
        .max_create_revision(max_create_revision);
    loop {
        let resp = client.get_with(dir.clone(), newest_before.clone()).await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(());
        };
        crate::watch::wait_delete(client, kv.key_bytes().clone(), resp.revision()).await?;
    }
}
