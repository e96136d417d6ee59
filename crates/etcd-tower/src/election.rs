//! etcd's election service (`v3electionpb`): leader election run by the
//! server on behalf of a lease.
//!
//! `campaign` waits until the caller is leader and returns its
//! [`LeaderKey`], which `proclaim` and `resign` take. For the same recipe in
//! the client, see [`concurrency::Election`](crate::concurrency::Election).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::{Client, LeaseKeeper};
//! use futures_util::StreamExt;
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! let lease = LeaseKeeper::grant(&client, 10).await?;
//! let leader = client.campaign("service/leader", "node-1", lease.id()).await?;
//! client.proclaim(&leader, "node-1, ready").await?;
//!
//! let mut changes = client.observe("service/leader").await?;
//! if let Some(current) = changes.next().await {
//!     println!("leader says {:?}", current?.value_str());
//! }
//! client.resign(&leader).await?;
//! # Ok(())
//! # }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use etcd_tower_core::proto::v3electionpb as pb;
use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, ResponseBody, ResponseStream};
use futures_core::Stream;

pub use etcd_tower_core::proto::v3electionpb::{
    LeaderKey, LeaderResponse, ProclaimResponse, ResignResponse,
};

use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::detached::{on_server, waiter_key};
use crate::kv::KeyValue;

/// The leader's key-values as an election changes hands; see
/// [`Client::observe`].
pub struct ObserveStream {
    stream: ResponseStream<pb::LeaderResponse>,
}

impl Stream for ObserveStream {
    type Item = Result<KeyValue, EtcdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match std::task::ready!(self.stream.as_mut().poll_next(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(response)) => {
                    if let Some(kv) = response.kv {
                        return Poll::Ready(Some(Ok(kv.into())));
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for ObserveStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveStream").finish_non_exhaustive()
    }
}

/// # Election service
impl Client {
    /// Campaigns in the election `name` with `value`, waiting until the
    /// lease `lease_id` holds leadership, however long that takes: the
    /// client-wide deadlines do not cut it short (set one with
    /// [`Client::with_options`], or wrap the call in `tokio::time::timeout`).
    /// Returns the leader key (its `key`: `name`, `/` and the lease ID in
    /// hex, as in Go's `concurrency` package).
    ///
    /// **Cancel-safe**: dropping the future (a `timeout`, a `select!`)
    /// withdraws the campaign: the candidate's key is removed, so an
    /// abandoned campaign never becomes leader, and a leadership won just
    /// as the call was dropped is resigned. The server withdraws a
    /// cancelled campaign itself, but not when the cancel lands just after
    /// its put of the key (etcd 3.4 and 3.5 then return without cleaning
    /// up, and the key stays until the lease ends), so the client finishes
    /// the job in the background: it lets the call run until the key is on
    /// the server, then cancels it and deletes the key.
    pub async fn campaign(
        &self,
        name: impl IntoBytes,
        value: impl IntoBytes,
        lease_id: i64,
    ) -> Result<LeaderKey, EtcdError> {
        let (name, value) = (name.into_bytes(), value.into_bytes());
        let key = waiter_key(&name, lease_id);
        let (campaigning, resigning) = (self.clone(), self.clone());
        let call = async move {
            let response: pb::CampaignResponse = campaigning
                .unary_waiting(pb::CampaignRequest {
                    name,
                    lease: lease_id,
                    value,
                })
                .await?;
            response.leader.ok_or_else(|| {
                EtcdError::client(
                    ErrorKind::UnexpectedResponse,
                    "the campaign answer carries no leader key",
                )
            })
        };
        on_server(self, key, call, move |leader: LeaderKey| async move {
            if let Err(error) = resigning.resign(&leader).await {
                tracing::debug!(%error, "resigning a leadership nobody took failed; its lease will end it");
            }
        })
        .await
    }

    /// Publishes a new value as the leader (fails with
    /// [`ErrorKind::ElectionNotLeader`] if `leader` no longer leads).
    pub async fn proclaim(
        &self,
        leader: &LeaderKey,
        value: impl IntoBytes,
    ) -> Result<ProclaimResponse, EtcdError> {
        self.unary(pb::ProclaimRequest {
            leader: Some(leader.clone()),
            value: value.into_bytes(),
        })
        .await
    }

    /// The current leader's key-value (fails with
    /// [`ErrorKind::ElectionNoLeader`] when there is none).
    pub async fn leader(&self, name: impl IntoBytes) -> Result<KeyValue, EtcdError> {
        let response: pb::LeaderResponse = self
            .unary(pb::LeaderRequest {
                name: name.into_bytes(),
            })
            .await?;
        response.kv.map(KeyValue::from).ok_or_else(|| {
            EtcdError::client(ErrorKind::ElectionNoLeader, "the election has no leader")
        })
    }

    /// Streams the leader's key-value: the current one, then each change.
    /// The first message waits for the election to have a leader; the
    /// client-wide deadlines do not apply to that wait.
    pub async fn observe(&self, name: impl IntoBytes) -> Result<ObserveStream, EtcdError> {
        let request = pb::LeaderRequest {
            name: name.into_bytes(),
        };
        let response = self
            .call_waiting(EtcdRequest::new(etcd_tower_core::RequestBody::Observe(
                request,
            )))
            .await?;
        match response.body {
            ResponseBody::Observe(stream) => Ok(ObserveStream { stream }),
            other => Err(EtcdError::client(
                ErrorKind::UnexpectedResponse,
                format!("expected an Observe stream, got {}", other.rpc()),
            )),
        }
    }

    /// Gives up leadership.
    pub async fn resign(&self, leader: &LeaderKey) -> Result<ResignResponse, EtcdError> {
        self.unary(pb::ResignRequest {
            leader: Some(leader.clone()),
        })
        .await
    }
}
