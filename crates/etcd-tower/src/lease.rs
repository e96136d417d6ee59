//! Leases: grant, revoke, inspect, and the raw keep-alive stream.
//!
//! Most code wants [`LeaseKeeper`](crate::LeaseKeeper) (or a
//! [`Session`](crate::concurrency::Session)) rather than the raw stream: it
//! renews on time, reopens broken streams and says when the lease is lost.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::{Client, PutOptions};
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let lease = client.lease_grant(10).await?;
//! client.put_with("service/me", "10.0.0.1", PutOptions::new().lease(lease.id)).await?;
//! let ttl = client.lease_time_to_live_with_keys(lease.id).await?;
//! println!("{} s left, keys {:?}", ttl.ttl, ttl.keys);
//!
//! let (mut keeper, mut answers) = client.lease_keep_alive(lease.id).await?;
//! if let Some(answer) = answers.message().await? {
//!     println!("renewed for {} s", answer.ttl);
//! }
//! keeper.keep_alive().await?; // and again
//! client.lease_revoke(lease.id).await?;
//! # Ok(())
//! # }
//! ```

use std::fmt;

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::validate::validate_ttl;
use etcd_tower_core::{
    Code, ErrorKind, EtcdError, EtcdRequest, RequestBody, ResponseBody, ResponseStream, Sent,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::client::Client;

pub use etcd_tower_core::proto::etcdserverpb::{
    LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse,
    LeaseStatus, LeaseTimeToLiveResponse,
};

/// Sends keep-alive requests on a stream opened by
/// [`Client::lease_keep_alive`].
pub struct LeaseKeepAliveSender {
    id: i64,
    tx: mpsc::Sender<pb::LeaseKeepAliveRequest>,
}

impl LeaseKeepAliveSender {
    /// The lease this sender renews.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Asks the server to renew the lease; the answer arrives on the
    /// [`LeaseKeepAliveStream`].
    pub async fn keep_alive(&mut self) -> Result<(), EtcdError> {
        self.tx
            .send(pb::LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| EtcdError::client(ErrorKind::Closed, "the keep-alive stream is closed"))
    }
}

impl fmt::Debug for LeaseKeepAliveSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseKeepAliveSender")
            .field("id", &self.id)
            .finish()
    }
}

/// The answers of a keep-alive stream. A TTL of 0 or less means the lease
/// is gone.
pub struct LeaseKeepAliveStream {
    stream: ResponseStream<pb::LeaseKeepAliveResponse>,
}

impl LeaseKeepAliveStream {
    /// The next answer; `Ok(None)` when the server closed the stream.
    pub async fn message(&mut self) -> Result<Option<LeaseKeepAliveResponse>, EtcdError> {
        self.stream.next().await.transpose()
    }

    /// The underlying stream.
    pub fn into_inner(self) -> ResponseStream<pb::LeaseKeepAliveResponse> {
        self.stream
    }
}

impl futures_core::Stream for LeaseKeepAliveStream {
    type Item = Result<LeaseKeepAliveResponse, EtcdError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for LeaseKeepAliveStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseKeepAliveStream")
            .finish_non_exhaustive()
    }
}

/// A stream of the messages put into a channel: the outbound half of a
/// bidirectional RPC.
pub(crate) fn channel_stream<T: Send + 'static>(
    capacity: usize,
) -> (mpsc::Sender<T>, etcd_tower_core::RequestStream<T>) {
    let (tx, rx) = mpsc::channel(capacity);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, Box::pin(stream))
}

/// [`channel_stream`] without a bound, for a sender that must never wait
/// (the keep-alive hub reads answers on the task that sends renewals).
pub(crate) fn unbounded_channel_stream<T: Send + 'static>(
) -> (mpsc::UnboundedSender<T>, etcd_tower_core::RequestStream<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, Box::pin(stream))
}

/// # Leases
impl Client {
    /// Grants a lease of `ttl` seconds, with an ID chosen by the server.
    pub async fn lease_grant(&self, ttl: i64) -> Result<LeaseGrantResponse, EtcdError> {
        self.lease_grant_with_id(ttl, 0).await
    }

    /// Grants a lease with the given ID (0: chosen by the server).
    pub async fn lease_grant_with_id(
        &self,
        ttl: i64,
        id: i64,
    ) -> Result<LeaseGrantResponse, EtcdError> {
        validate_ttl(ttl)?;
        self.unary(pb::LeaseGrantRequest { ttl, id }).await
    }

    /// Revokes a lease, deleting every key attached to it.
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, EtcdError> {
        self.unary(pb::LeaseRevokeRequest { id }).await
    }

    /// The lease's remaining and granted TTL (`ttl` is -1 when the lease
    /// does not exist).
    pub async fn lease_time_to_live(&self, id: i64) -> Result<LeaseTimeToLiveResponse, EtcdError> {
        self.unary(pb::LeaseTimeToLiveRequest { id, keys: false })
            .await
    }

    /// Like [`lease_time_to_live`](Self::lease_time_to_live), with the keys
    /// attached to the lease.
    pub async fn lease_time_to_live_with_keys(
        &self,
        id: i64,
    ) -> Result<LeaseTimeToLiveResponse, EtcdError> {
        self.unary(pb::LeaseTimeToLiveRequest { id, keys: true })
            .await
    }

    /// Every lease.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse, EtcdError> {
        self.unary(pb::LeaseLeasesRequest {}).await
    }

    /// Renews the lease once (Go's `KeepAliveOnce`): opens a keep-alive
    /// stream, sends one renewal and returns its answer. A lease that has
    /// expired or was revoked (the server answers TTL 0) fails with
    /// [`ErrorKind::LeaseNotFound`], as etcd's Go client does.
    pub async fn lease_keep_alive_once(
        &self,
        id: i64,
    ) -> Result<LeaseKeepAliveResponse, EtcdError> {
        let (_sender, mut answers) = self.lease_keep_alive(id).await?;
        match answers.message().await? {
            Some(answer) if answer.ttl > 0 => Ok(answer),
            Some(_) => Err(EtcdError::new(
                ErrorKind::LeaseNotFound,
                Code::NotFound,
                format!("lease {id:x} was not renewed: it expired or was revoked"),
                Sent::Rejected,
            )),
            None => Err(EtcdError::client(
                ErrorKind::ConnectionLost,
                "the server closed the keep-alive stream before answering",
            )
            .with_sent(Sent::MayHaveBeenApplied)),
        }
    }

    /// Opens a keep-alive stream for one lease and renews it once: the
    /// answer to that first renewal is the first message of the stream.
    /// The sender asks for more renewals; the stream yields the answers.
    ///
    /// (etcd answers the opening of the stream only with its first
    /// message, so the stream is opened with a renewal in it.)
    pub async fn lease_keep_alive(
        &self,
        id: i64,
    ) -> Result<(LeaseKeepAliveSender, LeaseKeepAliveStream), EtcdError> {
        let (tx, outbound) = channel_stream(4);
        tx.send(pb::LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| {
                EtcdError::client(ErrorKind::Closed, "the keep-alive channel is closed")
            })?;
        let response = self
            .call(EtcdRequest::new(RequestBody::LeaseKeepAlive(outbound)))
            .await?;
        match response.body {
            ResponseBody::LeaseKeepAlive(stream) => Ok((
                LeaseKeepAliveSender { id, tx },
                LeaseKeepAliveStream { stream },
            )),
            other => Err(EtcdError::client(
                ErrorKind::UnexpectedResponse,
                format!("expected a LeaseKeepAlive stream, got {}", other.rpc()),
            )),
        }
    }
}
