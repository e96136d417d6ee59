//! Calls whose success puts state on the server (a lease, a recipe's key),
//! run so that a caller who gives up leaves none of it behind.
//!
//! Users bound waits with `tokio::time::timeout` or `select!`, which drop
//! the future wherever it is. A request already sent cannot be taken back,
//! and its answer is the only thing that says what it created (a lease's
//! ID). So [`detached`] runs the work in a task of its own, which the
//! caller's future only listens to:
//!
//! * the work always runs to its answer: nothing is cut between being sent
//!   and being answered;
//! * the work sees the caller give up ([`Caller::gone`]) and may stop
//!   waiting then;
//! * a success that no caller takes is handed to `undo` (revoke the lease,
//!   delete the key): whether the caller was gone before the answer, or
//!   gave up in the instant between the answer and reading it.
//!
//! Only a runtime shutting down (which stops every task) or a process that
//! dies skips `undo`; what a lease holds then expires with its TTL.
//!
//! # Waits of etcd's lock and election services
//!
//! [`Client::lock`] and [`Client::campaign`] queue on the server: etcd runs
//! Go's `concurrency` recipe for them, with the waiter key `<name>/<lease
//! in hex>`. The server withdraws a waiter whose call is cancelled, except
//! when the cancel lands between its put of the key and its reading of the
//! put's answer: the recipe then returns that error without deleting the
//! key (measured on etcd 3.4.23, 3.5.1 and 3.5.30: up to a few in every
//! hundred calls dropped just as their key appeared), which then stays
//! until the lease ends and blocks every later waiter. [`on_server`] runs such a call
//! on [`detached`], and once the caller is gone:
//!
//! * keeps the call until its key is on the server, or it is answered:
//!   cancelled earlier, the server's put could still land after the
//!   removal;
//! * then cancels the call and deletes the key itself, if it still has the
//!   create revision it was seen with (a later call on the same name and
//!   lease may have put it anew by then);
//! * hands a success answered meanwhile to `undo` (unlock, resign). An
//!   error answered meanwhile needs nothing: the server has finished, and
//!   removes the key of a wait that failed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use etcd_tower_core::{ErrorKind, EtcdError};
use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::time::{sleep, sleep_until, Instant};

use crate::client::Client;
use crate::txn::{Compare, CompareOp, Txn, TxnOp};
use crate::watch::{EventKind, WatchOptions};

/// Runs `work` in a Tokio task and returns its outcome. If this future is
/// dropped before it has read a success, that success is passed to `undo`
/// in the background. See the [module docs](self).
pub(crate) async fn detached<T, W, WF, U, UF>(work: W, undo: U) -> Result<T, EtcdError>
where
    T: Send + 'static,
    W: FnOnce(Caller) -> WF + Send + 'static,
    WF: Future<Output = Result<T, EtcdError>> + Send,
    U: FnOnce(T) -> UF + Send + 'static,
    UF: Future<Output = ()> + Send + 'static,
{
    let runtime = Handle::try_current().map_err(|_| {
        EtcdError::client(
            ErrorKind::InvalidRequest,
            "this call runs in a Tokio task: call it inside a Tokio runtime",
        )
    })?;
    let undo: Undo<T> = Box::new(move |value| Box::pin(undo(value)));
    let (answer, answered) = oneshot::channel::<Result<Unclaimed<T>, EtcdError>>();
    let (present, caller) = oneshot::channel::<()>();
    runtime.clone().spawn(async move {
        let outcome = work(Caller { present: caller })
            .await
            .map(|value| Unclaimed {
                value: Some(value),
                undo: Some(undo),
                runtime,
            });
        if let Err(Ok(mut unread)) = answer.send(outcome) {
            if let Some(undo_now) = unread.disarm() {
                undo_now.await;
            }
        }
    });
    let outcome = answered.await;
    drop(present);
    match outcome {
        Ok(Ok(mut unclaimed)) => unclaimed.claim().ok_or_else(ended_without_answer),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ended_without_answer()),
    }
}

/// The error a waiting task ends with once its caller has given up (nobody
/// reads it: it only makes the task clean up).
pub(crate) fn abandoned() -> EtcdError {
    EtcdError::client(ErrorKind::Closed, "the caller stopped waiting")
}

fn ended_without_answer() -> EtcdError {
    EtcdError::client(
        ErrorKind::Closed,
        "the call's task ended without an answer: the Tokio runtime is shutting down",
    )
}

/// What the work knows of its caller. Only the recipes ask.
#[derive(Debug)]
#[cfg_attr(not(feature = "recipes"), allow(dead_code))]
pub(crate) struct Caller {
    present: oneshot::Receiver<()>,
}

#[cfg_attr(not(feature = "recipes"), allow(dead_code))]
impl Caller {
    /// Resolves once the caller has given up (dropped its future).
    pub(crate) async fn gone(&mut self) {
        // The caller never sends: the channel only closes.
        let _ = (&mut self.present).await;
    }

    /// Whether the caller has given up already.
    pub(crate) fn is_gone(&mut self) -> bool {
        matches!(
            self.present.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        )
    }
}

/// Undoes a success nobody took.
type Undo<T> = Box<dyn FnOnce(T) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A success on its way to the caller; undone if dropped unclaimed.
struct Unclaimed<T> {
    value: Option<T>,
    undo: Option<Undo<T>>,
    runtime: Handle,
}

impl<T> Unclaimed<T> {
    /// The value, for the caller: nothing will be undone.
    fn claim(&mut self) -> Option<T> {
        self.undo = None;
        self.value.take()
    }

    /// The undoing of the value, for whoever must run it.
    fn disarm(&mut self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        match (self.value.take(), self.undo.take()) {
            (Some(value), Some(undo)) => Some(undo(value)),
            _ => None,
        }
    }
}

impl<T> Drop for Unclaimed<T> {
    fn drop(&mut self) {
        if let Some(undo) = self.disarm() {
            self.runtime.spawn(undo);
        }
    }
}

/// The key a waiter on the lease `lease_id` queues with in the lock or
/// election `name`: the name, `/` and the lease ID in hex, as Go's
/// `concurrency` package (and so etcd's lock and election services) writes
/// it. That is `%x` of an `int64`: a negative ID (etcd grants one when
/// asked to) is `-` and the hex of its magnitude.
pub(crate) fn waiter_key(name: &[u8], lease_id: i64) -> Bytes {
    let sign = if lease_id < 0 { "-" } else { "" };
    let hex = format!("{sign}{:x}", lease_id.unsigned_abs());
    let mut key = BytesMut::with_capacity(name.len() + 1 + hex.len());
    key.put_slice(name);
    key.put_u8(b'/');
    key.put_slice(hex.as_bytes());
    key.freeze()
}

/// How long the withdrawal of a given-up service wait keeps trying at most;
/// the waiter's lease ends its key anyway.
const WITHDRAW_GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Runs `call`, a wait of etcd's lock or election service that queues on
/// the server with `key`, so that a caller who gives up leaves no key
/// behind; a success nobody took goes to `undo`. See the
/// [module docs](self#waits-of-etcds-lock-and-election-services).
pub(crate) async fn on_server<T, C, U, UF>(
    client: &Client,
    key: Bytes,
    call: C,
    undo: U,
) -> Result<T, EtcdError>
where
    T: Send + 'static,
    C: Future<Output = Result<T, EtcdError>> + Send + 'static,
    U: FnOnce(T) -> UF + Send + 'static,
    UF: Future<Output = ()> + Send + 'static,
{
    let client = client.clone();
    detached(
        move |mut caller| async move {
            let mut call = Box::pin(call);
            tokio::select! {
                answer = &mut call => answer,
                () = caller.gone() => withdraw(&client, key, call).await.ok_or_else(abandoned),
            }
        },
        undo,
    )
    .await
}

/// Withdraws a service wait whose caller is gone: waits until its key is
/// on the server (or the call is answered), cancels the call and deletes
/// the key. Returns a success answered meanwhile, for `undo`.
async fn withdraw<T, C>(client: &Client, key: Bytes, mut call: Pin<Box<C>>) -> Option<T>
where
    C: Future<Output = Result<T, EtcdError>>,
{
    let give_up = Instant::now() + WITHDRAW_GIVE_UP_AFTER;
    let created = tokio::select! {
        answer = &mut call => return answer.ok(),
        created = written(client, &key) => created,
        () = sleep_until(give_up) => return None,
    };
    // Dropping the call cancels it on the server.
    drop(call);
    let delete = Txn::new()
        .when([Compare::create_revision(
            key.clone(),
            CompareOp::Equal,
            created,
        )])
        .and_then([TxnOp::delete(key)]);
    retry_transient(ABANDONED_KEY, give_up, std::future::pending(), || async {
        client.txn(delete.clone()).await.map(drop)
    })
    .await;
    None
}

/// Resolves once `key` exists on the server, with its create revision:
/// read it, or watch it from the revision at which it did not yet exist.
async fn written(client: &Client, key: &Bytes) -> i64 {
    let mut pause = Duration::from_millis(50);
    loop {
        if let Ok(found) = client.get(key.clone()).await {
            if let Some(kv) = found.kvs().first() {
                return kv.create_revision();
            }
            let from = WatchOptions::new()
                .start_revision(found.revision() + 1)
                .no_delete();
            if let Ok(mut watcher) = client.watch(key.clone(), from).await {
                while let Some(Ok(batch)) = watcher.next().await {
                    let put = batch
                        .events()
                        .iter()
                        .filter(|event| event.kind() == EventKind::Put)
                        .find_map(|event| event.kv());
                    if let Some(kv) = put {
                        return kv.create_revision;
                    }
                }
            }
        }
        // A failed read or watch (compacted, refused): read again.
        sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Deletes `key`, trying again after transient failures until it is gone,
/// `give_up` has passed, or `lease_gone` resolves (the key then went with
/// its lease). Only the recipes remove keys this way.
#[cfg_attr(not(feature = "recipes"), allow(dead_code))]
pub(crate) async fn remove_key(
    client: &Client,
    key: Bytes,
    give_up: Instant,
    lease_gone: impl Future<Output = ()>,
) {
    retry_transient(ABANDONED_KEY, give_up, lease_gone, || async {
        client.delete(key.clone()).await.map(drop)
    })
    .await;
}

/// What [`retry_transient`] logs for the removal of an abandoned key.
const ABANDONED_KEY: &str = "removing an abandoned waiter's key (else its lease removes it)";

/// Runs `removal` (of an abandoned waiter's key, or another undoing of a
/// recipe's, which logs call `what`) until it succeeds, fails for good,
/// `give_up` has passed or `lease_gone` resolves; whether it succeeded.
pub(crate) async fn retry_transient<F, Fut>(
    what: &str,
    give_up: Instant,
    lease_gone: impl Future<Output = ()>,
    removal: F,
) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), EtcdError>>,
{
    let mut lease_gone = std::pin::pin!(lease_gone);
    let mut pause = Duration::from_millis(50);
    loop {
        let error = match removal().await {
            Ok(()) => return true,
            Err(error) => error,
        };
        if !etcd_tower_retry::is_transient(&error) || Instant::now() >= give_up {
            tracing::warn!(%error, "{what} failed; giving up");
            return false;
        }
        tracing::debug!(%error, "{what} failed; trying again");
        tokio::select! {
            () = sleep(pause) => {}
            () = &mut lease_gone => return false,
        }
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
