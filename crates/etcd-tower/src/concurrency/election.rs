//! [`Election`]: leader election through a [`Session`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use etcd_tower_core::proto::mvccpb::event::EventType;
use etcd_tower_core::{ErrorKind, EtcdError};
use futures_core::Stream;
use tokio::sync::mpsc;

use super::{dir, first_created, session_expired, session_key, wait_deletes, Session};
use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::kv::{KeyValue, PutOptions, ResponseHeader};
use crate::txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use crate::watch::KeyWatch;

/// Leader election: candidates queue by create revision under the
/// election's prefix, the oldest leads, and each waits only on its
/// predecessor. Leadership ends with [`resign`](Self::resign) or with the
/// session.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use etcd_tower::concurrency::{Election, Session};
/// use etcd_tower::Client;
/// use futures_util::StreamExt;
///
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// let session = Session::with_ttl(&client, 10).await?;
/// let mut election = Election::new(&session, "elections/scheduler");
///
/// let mut leaders = election.observe();
/// tokio::spawn(async move {
///     while let Some(Ok(leader)) = leaders.next().await {
///         println!("leader is now {:?}", leader.value_str());
///     }
/// });
///
/// election.campaign("node-1").await?; // waits until elected
/// election.proclaim("node-1, busy").await?;
/// election.resign().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Election {
    session: Session,
    dir: Bytes,
    leader_key: Option<Bytes>,
    leader_revision: i64,
    header: Option<ResponseHeader>,
}

impl Election {
    /// An election named `prefix` (candidates' keys live under `prefix/`).
    pub fn new(session: &Session, prefix: impl IntoBytes) -> Election {
        Election {
            session: session.clone(),
            dir: dir(prefix),
            leader_key: None,
            leader_revision: 0,
            header: None,
        }
    }

    fn client(&self) -> &Client {
        self.session.client()
    }

    /// Runs for leader with `value`, waiting until elected. Fails with
    /// [`ErrorKind::LeaseNotFound`] if the session ends first.
    pub async fn campaign(&mut self, value: impl IntoBytes) -> Result<(), EtcdError> {
        if !self.session.is_alive() {
            return Err(session_expired());
        }
        let value = value.into_bytes();
        let key = session_key(&self.dir, self.session.lease_id());
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put_with(
                key.clone(),
                value.clone(),
                PutOptions::new().lease(self.session.lease_id()),
            )])
            .or_else([TxnOp::get(key.clone())]);
        let resp = self.client().txn(txn).await?;
        self.leader_key = Some(key);
        self.leader_revision = resp.revision();
        if !resp.succeeded() {
            let existing = match resp.op_responses().first() {
                Some(TxnOpResponse::Get(get)) => get.kvs().first().cloned(),
                _ => None,
            };
            let Some(existing) = existing else {
                self.leader_key = None;
                return Err(session_expired());
            };
            self.leader_revision = existing.create_revision();
            if existing.value() != &value[..] {
                if let Err(error) = self.proclaim(value).await {
                    self.resign_quietly().await;
                    return Err(error);
                }
            }
        }
        let client = self.client().clone();
        let waited = tokio::select! {
            waited = wait_deletes(&client, &self.dir, self.leader_revision - 1) => waited,
            _ = self.session.lost() => Err(session_expired()),
        };
        if let Err(error) = waited {
            self.resign_quietly().await;
            return Err(error);
        }
        self.header = resp.header().copied();
        Ok(())
    }

    /// Publishes a new value while leader; fails with
    /// [`ErrorKind::ElectionNotLeader`] otherwise.
    pub async fn proclaim(&mut self, value: impl IntoBytes) -> Result<(), EtcdError> {
        let Some(key) = self.leader_key.clone() else {
            return Err(not_leader());
        };
        let txn = Txn::new()
            .when([Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                self.leader_revision,
            )])
            .and_then([TxnOp::put_with(
                key,
                value,
                PutOptions::new().lease(self.session.lease_id()),
            )]);
        let resp = self.client().txn(txn).await?;
        if !resp.succeeded() {
            self.leader_key = None;
            return Err(not_leader());
        }
        self.header = resp.header().copied();
        Ok(())
    }

    /// Gives up leadership (or leaves the queue); a no-op when not campaigning.
    pub async fn resign(&mut self) -> Result<(), EtcdError> {
        let Some(key) = self.leader_key.take() else {
            return Ok(());
        };
        let txn = Txn::new()
            .when([Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                self.leader_revision,
            )])
            .and_then([TxnOp::delete(key)]);
        let resp = self.client().txn(txn).await?;
        self.header = resp.header().copied();
        Ok(())
    }

    async fn resign_quietly(&mut self) {
        if let Err(error) = self.resign().await {
            tracing::debug!(%error, "leaving the election failed; the session's lease will");
        }
    }

    /// The current leader's key-value; fails with
    /// [`ErrorKind::ElectionNoLeader`] when there is none.
    pub async fn leader(&self) -> Result<KeyValue, EtcdError> {
        let resp = self
            .client()
            .get_with(self.dir.clone(), first_created())
            .await?;
        resp.into_kvs().into_iter().next().ok_or_else(|| {
            EtcdError::client(ErrorKind::ElectionNoLeader, "the election has no leader")
        })
    }

    /// This candidate's key, while campaigning or leading.
    pub fn key(&self) -> Option<&[u8]> {
        self.leader_key.as_deref()
    }

    /// The create revision of this candidate's key.
    pub fn revision(&self) -> i64 {
        self.leader_revision
    }

    /// The header of the last answer.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }

    /// Streams the leader's key-value: the current leader (once there is
    /// one), then every new value it proclaims and every new leader. The
    /// stream ends after an error; dropping it stops the watching.
    pub fn observe(&self) -> ObserveLeader {
        let (tx, rx) = mpsc::channel(16);
        let client = self.client().clone();
        let dir = self.dir.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = observe(client, dir, tx.clone()) => {}
                () = tx.closed() => {}
            }
        });
        ObserveLeader { rx }
    }
}

fn not_leader() -> EtcdError {
    EtcdError::client(ErrorKind::ElectionNotLeader, "not the election's leader")
}

/// The leaders of an [`Election`]; see [`Election::observe`].
#[derive(Debug)]
pub struct ObserveLeader {
    rx: mpsc::Receiver<Result<KeyValue, EtcdError>>,
}

impl Stream for ObserveLeader {
    type Item = Result<KeyValue, EtcdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

type Sink = mpsc::Sender<Result<KeyValue, EtcdError>>;

/// Feeds the observer: the leader, its updates until its key is deleted,
/// then the next leader.
async fn observe(client: Client, dir: Bytes, tx: Sink) {
    if let Err(error) = observe_leaders(&client, &dir, &tx).await {
        // The receiver may be gone; then nobody is listening anyway.
        if tx.send(Err(error)).await.is_err() {
            tracing::trace!("election observer dropped");
        }
    }
}

async fn observe_leaders(client: &Client, dir: &Bytes, tx: &Sink) -> Result<(), EtcdError> {
    loop {
        let resp = client.get_with(dir.clone(), first_created()).await?;
        let (leader, revision) = match resp.kvs().first() {
            Some(kv) => (kv.clone(), resp.revision()),
            None => {
                // Wait for the first candidate's put.
                let mut watch = KeyWatch::new(
                    client,
                    dir.clone(),
                    crate::bytes::prefix_end(dir),
                    resp.revision(),
                );
                loop {
                    let put = watch
                        .next()
                        .await?
                        .into_iter()
                        .find(|e| e.r#type == EventType::Put as i32)
                        .and_then(|e| e.kv);
                    if let Some(kv) = put {
                        let revision = kv.mod_revision;
                        break (KeyValue::from(kv), revision);
                    }
                }
            }
        };
        if tx.send(Ok(leader.clone())).await.is_err() {
            return Ok(());
        }
        let mut watch = KeyWatch::new(
            client,
            leader.key_bytes().clone(),
            Bytes::new(),
            revision + 1,
        );
        'leader: loop {
            for event in watch.next().await? {
                if event.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                if let Some(kv) = event.kv {
                    if tx.send(Ok(KeyValue::from(kv))).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
