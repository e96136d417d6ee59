//! The engine: [`WatchEngine`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use etcd_tower_core::{ErrorKind, EtcdError, EtcdRequest, EtcdResponse};
use tokio::sync::{mpsc, oneshot};
use tower::Service;

use crate::config::WatchConfig;
use crate::options::WatchOptions;
use crate::stream_task::{Command, Shared, StreamTask};
use crate::watcher::Watcher;

/// How many commands (mostly `watch()` calls) may wait for a stream task.
const COMMAND_CAPACITY: usize = 256;

/// Watches over one service stack; see the [crate docs](crate).
///
/// Clones share the streams and the watchers. The engine's tasks end when
/// every clone of the engine and every [`Watcher`] is gone.
pub struct WatchEngine<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    service: Mutex<S>,
    shared: Arc<Shared>,
    /// The stream task of each require-leader group: `[false, true]`.
    groups: Mutex<[Option<mpsc::Sender<Command>>; 2]>,
}

impl<S> Clone for WatchEngine<S> {
    fn clone(&self) -> Self {
        WatchEngine {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::fmt::Debug for WatchEngine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchEngine")
            .field("config", &self.inner.shared.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stopped() -> EtcdError {
    EtcdError::client(ErrorKind::Closed, "the watch engine has stopped")
}

impl<S> WatchEngine<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone + Send + 'static,
    S::Future: Send,
{
    /// An engine over `service` (a transport, or a stack of layers over
    /// one), with the default [`WatchConfig`]. Streams are opened on the
    /// first `watch`.
    pub fn new(service: S) -> Self {
        Self::with_config(service, WatchConfig::default())
    }

    /// An engine with the given settings.
    pub fn with_config(service: S, config: WatchConfig) -> Self {
        WatchEngine {
            inner: Arc::new(Inner {
                service: Mutex::new(service),
                shared: Arc::new(Shared::new(config)),
                groups: Mutex::new([None, None]),
            }),
        }
    }

    /// The engine's settings.
    pub fn config(&self) -> &WatchConfig {
        &self.inner.shared.config
    }

    /// Starts a watcher of `key` (and, as `options` say, the keys beyond
    /// it); resolves once the server confirmed it.
    ///
    /// While no stream can be opened (every member down), the call waits,
    /// re-trying with back-off: wrap it in a timeout to bound it. It fails
    /// at once for invalid options, with `PermissionDenied` when the user
    /// may not watch the range, and with the error of a failure re-trying
    /// cannot fix (bad credentials, a bad configuration).
    pub async fn watch(
        &self,
        key: impl Into<Bytes>,
        options: WatchOptions,
    ) -> Result<Watcher, EtcdError> {
        let options = options.with_key(key.into());
        options.validate()?;
        let (reply, answer) = oneshot::channel();
        let mut command = Command::Watch { options, reply };
        // A stream task only stops once the engine is gone, so one retry
        // (after replacing a task that died) is enough.
        for _ in 0..2 {
            let require_leader = match &command {
                Command::Watch { options, .. } => options.require_leader,
                Command::Progress => false,
            };
            let sender = self.group(require_leader)?;
            match sender.send(command).await {
                Ok(()) => return answer.await.map_err(|_| stopped())?,
                Err(mpsc::error::SendError(back)) => command = back,
            }
        }
        Err(stopped())
    }

    /// Asks the server for a progress notification on every open stream
    /// (see [`Watcher::request_progress`]).
    pub async fn request_progress(&self) -> Result<(), EtcdError> {
        let senders: Vec<_> = lock(&self.inner.groups).iter().flatten().cloned().collect();
        for sender in senders {
            sender
                .send(Command::Progress)
                .await
                .map_err(|_| stopped())?;
        }
        Ok(())
    }

    /// The command sender of a group's stream task, starting the task if
    /// there is none.
    fn group(&self, require_leader: bool) -> Result<mpsc::Sender<Command>, EtcdError> {
        let mut groups = lock(&self.inner.groups);
        let slot = &mut groups[usize::from(require_leader)];
        if let Some(sender) = slot.as_ref().filter(|sender| !sender.is_closed()) {
            return Ok(sender.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            EtcdError::client(
                ErrorKind::InvalidRequest,
                "the watch engine must be used inside a Tokio runtime",
            )
        })?;
        let (sender, commands) = mpsc::channel(COMMAND_CAPACITY);
        let service = lock(&self.inner.service).clone();
        let task = StreamTask::new(service, self.inner.shared.clone(), require_leader, commands);
        runtime.spawn(task.run());
        *slot = Some(sender.clone());
        Ok(sender)
    }
}
