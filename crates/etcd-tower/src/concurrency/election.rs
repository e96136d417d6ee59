//! [`Election`]: leader election through a [`Session`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use etcd_tower_core::{ErrorKind, EtcdError};
use futures_core::Stream;
use tokio::sync::mpsc;

use super::line::{Caller, Line};
use super::{
    abandoned, dir, first_created, is_compacted, session_expired, wait_deletes, watch_ended,
    watch_unless_compacted, Session,
};
use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::detached::waiter_key;
use crate::kv::{KeyValue, PutOptions, ResponseHeader};
use crate::txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use etcd_tower_watch::{EventKind, WatchOptions};
use futures_util::StreamExt;

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
    line: Line,
    dir: Bytes,
    leader_key: Option<Bytes>,
    leader_revision: i64,
    header: Option<ResponseHeader>,
}

/// A won campaign: the create revision of the candidate's key and the
/// header of the answer that queued it.
#[derive(Debug)]
struct Elected {
    revision: i64,
    header: Option<ResponseHeader>,
}

impl Election {
    /// An election named `prefix` (candidates' keys live under `prefix/`).
    pub fn new(session: &Session, prefix: impl IntoBytes) -> Election {
        let prefix = prefix.into_bytes();
        let dir = dir(&prefix);
        Election {
            line: Line::new(session, waiter_key(&prefix, session.lease_id())),
            dir,
            leader_key: None,
            leader_revision: 0,
            header: None,
        }
    }

    /// An election already won, resumed from its leader key and that
    /// key's create revision (Go's `ResumeElection`): after a restart, a
    /// process whose session's lease is still alive (see
    /// [`Session::from_lease`](super::Session::from_lease)) takes back its leadership
    /// without campaigning again, and can [`proclaim`](Self::proclaim) and
    /// [`resign`](Self::resign). If the key is no longer the leader's, the
    /// first proclaim fails with [`ErrorKind::ElectionNotLeader`].
    pub fn resume(
        session: &Session,
        prefix: impl IntoBytes,
        leader_key: impl IntoBytes,
        leader_revision: i64,
    ) -> Election {
        let mut election = Election::new(session, prefix);
        election.leader_key = Some(leader_key.into_bytes());
        election.leader_revision = leader_revision;
        election
    }

    fn client(&self) -> &Client {
        self.line.session().client()
    }

    /// Runs for leader with `value`, waiting until elected. Fails with
    /// [`ErrorKind::LeaseNotFound`] if the session ends first.
    ///
    /// **Cancel-safe**: dropping the future (a `timeout`, a `select!`, an
    /// aborted task) withdraws the candidacy: the candidate's key is
    /// removed, so an abandoned campaign never becomes leader (see
    /// [`concurrency`](super#giving-up-on-a-wait)). On an error the key is
    /// removed before the error is returned.
    pub async fn campaign(&mut self, value: impl IntoBytes) -> Result<(), EtcdError> {
        if !self.line.session().is_alive() {
            return Err(session_expired());
        }
        let (line, dir, value) = (self.line.clone(), self.dir.clone(), value.into_bytes());
        self.leader_key = None;
        let elected = self
            .line
            .wait(move |caller| run_for_leader(line, dir, value, caller))
            .await?;
        self.leader_key = Some(self.line.key().clone());
        self.leader_revision = elected.revision;
        self.header = elected.header;
        Ok(())
    }

    /// Publishes a new value while leader; fails with
    /// [`ErrorKind::ElectionNotLeader`] otherwise.
    pub async fn proclaim(&mut self, value: impl IntoBytes) -> Result<(), EtcdError> {
        let Some(key) = self.leader_key.clone() else {
            return Err(not_leader());
        };
        match proclaim_as(
            self.line.session(),
            key,
            self.leader_revision,
            value.into_bytes(),
        )
        .await
        {
            Ok(header) => {
                self.header = header;
                Ok(())
            }
            Err(error) => {
                if error.kind() == &ErrorKind::ElectionNotLeader {
                    self.leader_key = None;
                }
                Err(error)
            }
        }
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

/// Puts `value` on the candidate's `key` if it still has the create
/// revision `revision` (Go's `Proclaim`); the answer's header.
async fn proclaim_as(
    session: &Session,
    key: Bytes,
    revision: i64,
    value: Bytes,
) -> Result<Option<ResponseHeader>, EtcdError> {
    let txn = Txn::new()
        .when([Compare::create_revision(
            key.clone(),
            CompareOp::Equal,
            revision,
        )])
        .and_then([TxnOp::put_with(
            key,
            value,
            PutOptions::new().lease(session.lease_id()),
        )]);
    let resp = session.client().txn(txn).await?;
    if !resp.succeeded() {
        return Err(not_leader());
    }
    Ok(resp.header().copied())
}

/// The whole campaign, run by [`Line::wait`] (Go's `Election.Campaign`):
/// put the candidate's key unless it is there (proclaiming `value` on a key
/// left from an earlier campaign), then wait until every older key is gone.
async fn run_for_leader(
    line: Line,
    dir: Bytes,
    value: Bytes,
    mut caller: Caller,
) -> Result<Elected, EtcdError> {
    let session = line.session();
    let client = session.client();
    let key = line.key().clone();
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put_with(
            key.clone(),
            value.clone(),
            PutOptions::new().lease(session.lease_id()),
        )])
        .or_else([TxnOp::get(key.clone())]);
    let resp = client.txn(txn).await?;
    let mut revision = resp.revision();
    if !resp.succeeded() {
        let existing = match resp.op_responses().first() {
            Some(TxnOpResponse::Get(get)) => get.kvs().first().cloned(),
            _ => None,
        };
        let Some(existing) = existing else {
            return Err(session_expired());
        };
        revision = existing.create_revision();
        if existing.value() != &value[..] {
            proclaim_as(session, key, revision, value).await?;
        }
    }
    if caller.is_gone() {
        return Err(abandoned());
    }
    tokio::select! {
        waited = wait_deletes(client, &dir, revision - 1) => waited?,
        _ = session.lost() => return Err(session_expired()),
        () = caller.gone() => return Err(abandoned()),
    }
    Ok(Elected {
        revision,
        header: resp.header().copied(),
    })
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

/// Go's `Election.observe`, on the client's watch engine: so a stream fault
/// (an expired token, a restart) never makes the observer miss a change.
/// A watch whose history was compacted reads the leader again.
async fn observe_leaders(client: &Client, dir: &Bytes, tx: &Sink) -> Result<(), EtcdError> {
    loop {
        let resp = client.get_with(dir.clone(), first_created()).await?;
        let (leader, revision) = match resp.kvs().first() {
            Some(kv) => (kv.clone(), resp.revision()),
            None => {
                let candidates = WatchOptions::new()
                    .prefix()
                    .start_revision(resp.revision())
                    .no_delete();
                match first_put(client, dir.clone(), candidates).await? {
                    Some(first) => first,
                    None => continue,
                }
            }
        };
        if tx.send(Ok(leader.clone())).await.is_err() {
            return Ok(());
        }
        let updates = WatchOptions::new().start_revision(revision + 1);
        let key = leader.key_bytes().clone();
        let Some(mut watcher) = watch_unless_compacted(client, key, updates).await? else {
            continue;
        };
        'leader: loop {
            let batch = match watcher.next().await {
                Some(Ok(batch)) => batch,
                Some(Err(error)) if is_compacted(&error) => break 'leader,
                Some(Err(error)) => return Err(error),
                None => return Err(watch_ended()),
            };
            for event in batch.into_events() {
                if event.kind() == EventKind::Delete {
                    break 'leader;
                }
                if let Some(kv) = event.into_proto().kv {
                    if tx.send(Ok(KeyValue::from(kv))).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The first put under an empty election's prefix `dir` and its revision;
/// `None` when the history it waited on was compacted.
async fn first_put(
    client: &Client,
    dir: Bytes,
    options: WatchOptions,
) -> Result<Option<(KeyValue, i64)>, EtcdError> {
    let Some(mut watcher) = watch_unless_compacted(client, dir, options).await? else {
        return Ok(None);
    };
    loop {
        let batch = match watcher.next().await {
            Some(Ok(batch)) => batch,
            Some(Err(error)) if is_compacted(&error) => return Ok(None),
            Some(Err(error)) => return Err(error),
            None => return Err(watch_ended()),
        };
        let put = batch
            .into_events()
            .into_iter()
            .find(|event| event.kind() == EventKind::Put)
            .and_then(|event| event.into_proto().kv);
        if let Some(kv) = put {
            let revision = kv.mod_revision;
            return Ok(Some((KeyValue::from(kv), revision)));
        }
    }
}
