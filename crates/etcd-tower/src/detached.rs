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

use std::future::Future;
use std::pin::Pin;

use etcd_tower_core::{ErrorKind, EtcdError};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

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

fn ended_without_answer() -> EtcdError {
    EtcdError::client(
        ErrorKind::Closed,
        "the call's task ended without an answer: the Tokio runtime is shutting down",
    )
}

/// What the work knows of its caller.
#[derive(Debug)]
pub(crate) struct Caller {
    present: oneshot::Receiver<()>,
}

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
