//! The task that owns one gRPC watch stream and every watcher on it.
//!
//! One task per require-leader group. It is the only place where watcher
//! state changes, so no lock guards it: the engine, the watchers and the
//! stream talk to it through channels, and it reacts to one wake-up at a
//! time (a command, a note from a watcher, a message or failure of the
//! stream, the end of a back-off, a probe's answer).
//!
//! Each watcher goes through these phases:
//!
//! ```text
//!            create sent             created
//!  Unsent ───────────────> Creating ──────────> Active ──┐ buffer full:
//!    ^  ^                     │ refused                  │ cancel on server
//!    │  │  stream re-opened   v                          v
//!    │  └──────────────── Rejected (probe)            Lagging
//!    └────────────────────────────────────────────────── ┘ consumer drained
//! ```
//!
//! A stream fault moves every `Creating`, `Active` and `Rejected` watcher
//! back to `Unsent`; they are created again, from their next revision, on
//! the next stream. `Creating` holds the id the create asked for, `Active`
//! the id the server gave (see [`ids`](crate::ids): etcd's gRPC proxy picks
//! its own); only `Active` ids are looked up, cancelled and matched to
//! events. Every incarnation of a watcher asks for a fresh id (never 0,
//! never reused), so with a member, which echoes it, a late message for an
//! old incarnation can never be mistaken for the new one.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use etcd_tower_core::metric_names::{
    LABEL_REASON, RESUME_AUTH, RESUME_DISCONNECTED, WATCH_EVENTS_DELIVERED_TOTAL,
    WATCH_RESUMES_TOTAL,
};
use etcd_tower_core::proto::etcdserverpb::{
    watch_request::RequestUnion, ResponseHeader, WatchCancelRequest, WatchProgressRequest,
    WatchRequest, WatchResponse,
};
use etcd_tower_core::signal::{CurrentTokenGeneration, TokenGeneration};
use etcd_tower_core::{
    Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, ResponseBody,
    ResponseStream, Sent, TargetEndpoint,
};
use futures_core::Stream;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};
use tower::{Service, ServiceExt};

use crate::backoff::{Backoff, Failure};
use crate::config::WatchConfig;
use crate::fragment::{Fragments, TooLarge};
use crate::ids::{self, Answer, FaultCount, IdMode, PendingCreates};
use crate::options::WatchSpec;
use crate::probe::{self, ProbeFuture, ProbeOutcome, Verdict};
use crate::progress_order::{self, MemberOrders};
use crate::progress_requests::{Asker, StreamProgress};
use crate::queue::{Pushed, Queue};
use crate::revision::{AtBroadcast, BroadcastOrder, NextRevision};
use crate::watcher::{Note, WatchBatch, Watcher};

/// How many stream messages are handled in one go before the task looks at
/// its other inputs again.
const INBOUND_BURST: usize = 256;

/// State shared by the engine and its stream tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: WatchConfig,
    /// The newest token generation seen, plus one; 0 when none was seen.
    generation: AtomicU64,
    /// The auth layer's current generation, from the first stream that
    /// carried it (see [`CurrentTokenGeneration`]).
    current: OnceLock<CurrentTokenGeneration>,
    next_key: AtomicU64,
    /// How each member seen answers progress requests (checked once per
    /// member id).
    members: Arc<MemberOrders>,
}

impl Shared {
    pub(crate) fn new(config: WatchConfig) -> Self {
        Shared {
            config,
            generation: AtomicU64::new(0),
            current: OnceLock::new(),
            next_key: AtomicU64::new(1),
            members: Arc::default(),
        }
    }

    /// The newest token generation the engine knows of (from a probe, a
    /// stream, or the auth layer's current one), if any.
    pub(crate) fn known_generation(&self) -> Option<TokenGeneration> {
        let seen = match self.generation.load(Ordering::Acquire) {
            0 => None,
            n => Some(TokenGeneration(n - 1)),
        };
        let current = self.current.get().map(CurrentTokenGeneration::get);
        seen.max(current)
    }

    /// Keeps the auth layer's current-generation cell (the first one seen:
    /// an engine has one service stack).
    fn learn_current(&self, current: &CurrentTokenGeneration) {
        if self.current.get().is_none() {
            let _ = self.current.set(current.clone());
        }
    }

    fn note_generation(&self, generation: TokenGeneration) {
        self.generation
            .fetch_max(generation.0.saturating_add(1), Ordering::AcqRel);
    }

    fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }
}

/// What the engine asks of a stream task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Create a watcher and answer once the server confirmed it.
    Watch {
        options: WatchSpec,
        reply: oneshot::Sender<Result<Watcher, EtcdError>>,
    },
    /// Ask the server for a progress notification.
    Progress,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Needs a create on the current (or next) stream.
    Unsent,
    /// Create sent asking for this id, not answered yet.
    Creating(i64),
    /// Created on the server with this id (the one its answer gave).
    Active(i64),
    /// Cancelled on the server because its buffer was full; waits for its
    /// consumer to drain the buffer.
    Lagging,
    /// The server refused its create; waits for the probe's verdict.
    Rejected,
}

/// One watcher, as the task sees it.
struct Entry {
    options: WatchSpec,
    next: NextRevision,
    phase: Phase,
    queue: Arc<Queue>,
    /// The caller of `watch()`, until the server confirms the first create.
    reply: Option<oneshot::Sender<Result<Watcher, EtcdError>>>,
    /// A probe already renewed the token for this watcher's current refusal
    /// episode; cleared when a create succeeds.
    renewed: bool,
    /// Re-checks on a new stream left in this episode (see
    /// [`probe::RECHECKS`]); reset when a create succeeds.
    rechecks_left: u8,
    /// How many progress requests the stream had sent before this
    /// watcher's last create (see [`progress_requests`](crate::progress_requests)).
    requests_before_create: u64,
}

impl Drop for Entry {
    /// A watcher the task lets go of without an error (the task itself is
    /// dropped, for example at runtime shutdown) must not leave its
    /// consumer waiting forever.
    fn drop(&mut self) {
        self.queue.finish(Some(EtcdError::client(
            ErrorKind::Closed,
            "the watch engine stopped",
        )));
    }
}

/// The client's half of one open (or opening) stream.
struct Link {
    outbound: mpsc::UnboundedSender<WatchRequest>,
    /// A progress request is queued and not yet taken by the transport.
    progress_queued: Arc<AtomicBool>,
    /// Creates sent and not yet answered, in order.
    pending: PendingCreates,
    fragments: Fragments,
    /// The token generation the stream was opened with.
    generation: Option<TokenGeneration>,
    /// The endpoint the stream was opened on (from the transport), where
    /// the member's version is asked.
    endpoint: Option<TargetEndpoint>,
    /// The stream's member and its unanswered progress requests.
    progress: StreamProgress,
}

impl Link {
    fn send(&self, request: RequestUnion) {
        // A send fails only when the transport dropped the outbound stream,
        // i.e. the call failed; the inbound side reports that failure.
        if self
            .outbound
            .send(WatchRequest {
                request_union: Some(request),
            })
            .is_err()
        {
            tracing::trace!("watch stream outbound closed");
        }
    }

    fn cancel(&mut self, watch_id: i64) {
        self.fragments.forget(watch_id);
        self.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id }));
    }

    /// Sends a progress request for `asker`, or merges it with one still
    /// queued (see [`progress_requests`](crate::progress_requests)).
    fn request_progress(&mut self, asker: Asker) {
        if self.progress_queued.swap(true, Ordering::AcqRel) {
            self.progress.merged(asker);
        } else {
            self.progress.sent(asker);
            self.send(RequestUnion::ProgressRequest(WatchProgressRequest {}));
        }
    }
}

type OpenFuture = Pin<Box<dyn Future<Output = Result<EtcdResponse, EtcdError>> + Send>>;

enum Conn {
    /// No stream, none wanted right now.
    Idle,
    /// Backing off before the next open.
    Waiting(Pin<Box<Sleep>>),
    /// The open call is under way (it completes with the first message).
    Opening {
        link: Link,
        future: OpenFuture,
        deadline: Pin<Box<Sleep>>,
    },
    /// The stream is open.
    Open {
        link: Link,
        inbound: ResponseStream<WatchResponse>,
        opened_at: Instant,
    },
}

struct InFlightProbe {
    future: ProbeFuture,
    watcher: u64,
    /// This probe carries a token renewal.
    renewing: bool,
    epoch: u64,
    stream_generation: Option<TokenGeneration>,
}

enum Wake {
    Command(Option<Command>),
    Note(Option<Note>),
    Opened(Result<EtcdResponse, EtcdError>),
    OpenTimedOut,
    Inbound(Option<Result<WatchResponse, EtcdError>>),
    Retry,
    Probe(ProbeOutcome),
    /// Time to ask the stream's member for progress.
    ProgressTick,
}

/// The outbound half handed to the service: the task's channel, noting
/// when a queued progress request leaves so that a later one is sent.
struct Outbound {
    rx: mpsc::UnboundedReceiver<WatchRequest>,
    progress_queued: Arc<AtomicBool>,
}

impl Stream for Outbound {
    type Item = WatchRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchRequest>> {
        let item = ready!(self.rx.poll_recv(cx));
        if let Some(WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(_)),
        }) = &item
        {
            self.progress_queued.store(false, Ordering::Release);
        }
        Poll::Ready(item)
    }
}

/// The task owning one require-leader group's stream.
pub(crate) struct StreamTask<S> {
    service: S,
    shared: Arc<Shared>,
    require_leader: bool,
    commands: mpsc::Receiver<Command>,
    commands_open: bool,
    notes: mpsc::UnboundedReceiver<Note>,
    notes_tx: mpsc::UnboundedSender<Note>,
    watchers: HashMap<u64, Entry>,
    /// Server watch id of each `Active` watcher -> watcher.
    by_id: HashMap<i64, u64>,
    /// Watchers that went `Unsent`, in order (entries may be stale).
    to_create: VecDeque<u64>,
    next_watch_id: i64,
    conn: Conn,
    /// Bumped whenever the stream is dropped: tells stale probe answers.
    epoch: u64,
    backoff: Backoff,
    probe: Option<InFlightProbe>,
    /// Rejected watchers waiting for their probe, in order.
    probe_waiting: VecDeque<u64>,
    /// Why the stream is being re-opened (the `reason` of the resume
    /// metric), until the new stream is open.
    resume_reason: Option<&'static str>,
    /// Whose watch ids the server uses, as learned from its answers.
    ids: IdMode,
    /// Answers that fit no create, in a row.
    protocol_faults: FaultCount,
    /// The last failure was "cannot connect", already logged at info.
    unreachable_logged: bool,
    /// The next progress request of the engine's own, while a stream is
    /// open (see [`WatchConfig::progress_interval`]).
    progress_timer: Option<Pin<Box<Sleep>>>,
}

impl<S> StreamTask<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone + Send + 'static,
    S::Future: Send,
{
    pub(crate) fn new(
        service: S,
        shared: Arc<Shared>,
        require_leader: bool,
        commands: mpsc::Receiver<Command>,
    ) -> Self {
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let backoff = Backoff::new(
            shared.config.backoff_initial,
            shared.config.backoff_max,
            shared.config.reconnect_max,
            shared.config.backoff_reset_after,
        );
        StreamTask {
            service,
            shared,
            require_leader,
            commands,
            commands_open: true,
            notes,
            notes_tx,
            watchers: HashMap::new(),
            by_id: HashMap::new(),
            to_create: VecDeque::new(),
            next_watch_id: 1,
            conn: Conn::Idle,
            epoch: 0,
            backoff,
            probe: None,
            probe_waiting: VecDeque::new(),
            resume_reason: None,
            ids: IdMode::Echoed,
            protocol_faults: FaultCount::default(),
            unreachable_logged: false,
            progress_timer: None,
        }
    }

    /// Runs until the engine and every watcher are gone.
    pub(crate) async fn run(mut self) {
        loop {
            self.reconcile();
            if !self.commands_open && self.watchers.is_empty() {
                break;
            }
            let wake = tokio::select! {
                command = self.commands.recv(), if self.commands_open => Wake::Command(command),
                note = self.notes.recv() => Wake::Note(note),
                wake = conn_wake(&mut self.conn) => wake,
                outcome = probe_wake(&mut self.probe) => Wake::Probe(outcome),
                () = timer_wake(&mut self.progress_timer) => Wake::ProgressTick,
            };
            self.handle(wake);
        }
        tracing::debug!(
            require_leader = self.require_leader,
            "watch stream task done"
        );
    }

    fn handle(&mut self, wake: Wake) {
        match wake {
            Wake::Command(None) => self.commands_open = false,
            Wake::Command(Some(Command::Watch { options, reply })) => {
                self.add_watcher(options, reply)
            }
            Wake::Command(Some(Command::Progress)) => {
                if let Some(link) = self.link_mut() {
                    link.request_progress(Asker::User);
                }
            }
            Wake::Note(Some(Note::Progress(key))) => {
                if let Some(entry) = self.watchers.get(&key) {
                    entry.queue.progress_taken();
                }
                if let Some(link) = self.link_mut() {
                    link.request_progress(Asker::User);
                }
            }
            Wake::Note(Some(Note::Dropped(key))) => self.remove_watcher(key),
            Wake::Note(Some(Note::Drained(key))) => self.on_drained(key),
            // The task holds a sender: the channel never closes.
            Wake::Note(None) => {}
            Wake::Opened(result) => self.on_opened(result),
            Wake::OpenTimedOut => self.fault(EtcdError::new(
                ErrorKind::Timeout,
                Code::DeadlineExceeded,
                "opening the watch stream timed out",
                Sent::MayHaveBeenApplied,
            )),
            Wake::Inbound(item) => {
                self.on_inbound(item);
                // Take what else is already there before looking elsewhere.
                for _ in 0..INBOUND_BURST {
                    let next = match &mut self.conn {
                        Conn::Open { inbound, .. } => inbound.next().now_or_never(),
                        _ => None,
                    };
                    match next {
                        Some(item) => self.on_inbound(item),
                        None => break,
                    }
                }
            }
            Wake::Retry => self.conn = Conn::Idle,
            Wake::Probe(outcome) => self.on_probe(outcome),
            Wake::ProgressTick => self.on_progress_tick(),
        }
    }

    fn link(&self) -> Option<&Link> {
        match &self.conn {
            Conn::Opening { link, .. } | Conn::Open { link, .. } => Some(link),
            Conn::Idle | Conn::Waiting(_) => None,
        }
    }

    fn link_mut(&mut self) -> Option<&mut Link> {
        match &mut self.conn {
            Conn::Opening { link, .. } | Conn::Open { link, .. } => Some(link),
            Conn::Idle | Conn::Waiting(_) => None,
        }
    }

    /// Brings the stream in line with the watchers: closes it when none is
    /// left, opens it or sends creates when some need one.
    fn reconcile(&mut self) {
        if self.watchers.is_empty() {
            if self.link().is_some() {
                tracing::debug!("last watcher gone; closing the watch stream");
                self.drop_stream();
            }
            self.to_create.clear();
            return;
        }
        self.arm_progress_timer();
        if self.to_create.is_empty() {
            return;
        }
        match &self.conn {
            Conn::Waiting(_) => {}
            Conn::Idle => self.open(),
            Conn::Opening { .. } => self.send_creates(),
            Conn::Open { .. } => {
                // A newer token exists (a unary call or a probe logged in
                // again): creates on this stream could be refused. Re-open
                // with the current token first, in the same round trip as
                // the creates.
                if self.reopen_if_token_replaced() {
                    self.open();
                } else {
                    self.send_creates();
                }
            }
        }
    }

    fn add_watcher(
        &mut self,
        options: WatchSpec,
        reply: oneshot::Sender<Result<Watcher, EtcdError>>,
    ) {
        let key = self.shared.next_key();
        let capacity = options.buffer.unwrap_or(self.shared.config.buffer);
        let entry = Entry {
            next: NextRevision::new(options.start_revision),
            options,
            phase: Phase::Unsent,
            queue: Arc::new(Queue::new(capacity)),
            reply: Some(reply),
            renewed: false,
            rechecks_left: probe::RECHECKS,
            requests_before_create: 0,
        };
        self.watchers.insert(key, entry);
        self.to_create.push_back(key);
    }

    /// Opens a stream whose outbound side already holds the creates (the
    /// open completes only when the server sends its first message, which
    /// it does when it answers the first create).
    fn open(&mut self) {
        let (outbound, rx) = mpsc::unbounded_channel();
        let progress_queued = Arc::new(AtomicBool::new(false));
        let stream = Outbound {
            rx,
            progress_queued: progress_queued.clone(),
        };
        let mut request = EtcdRequest::new(RequestBody::Watch(Box::pin(stream)));
        request.meta.require_leader = self.require_leader;
        let mut service = self.service.clone();
        let future: OpenFuture = Box::pin(async move {
            ServiceExt::<EtcdRequest>::ready(&mut service).await?;
            Service::call(&mut service, request).await
        });
        self.conn = Conn::Opening {
            link: Link {
                outbound,
                progress_queued,
                pending: PendingCreates::default(),
                fragments: Fragments::new(self.shared.config.max_fragmented),
                generation: None,
                endpoint: None,
                progress: StreamProgress::default(),
            },
            future,
            deadline: Box::pin(tokio::time::sleep(self.shared.config.open_timeout)),
        };
        self.send_creates();
        if self.link().is_none_or(|link| link.pending.is_empty()) {
            // Nothing to create after all: a stream without a create would
            // never see its first message.
            self.conn = Conn::Idle;
        } else {
            tracing::debug!(
                require_leader = self.require_leader,
                "opening a watch stream"
            );
        }
    }

    /// Sends a create for every `Unsent` watcher; only one at a time (the
    /// next once it is answered) to a server that picks its own ids.
    fn send_creates(&mut self) {
        let link = match &mut self.conn {
            Conn::Opening { link, .. } | Conn::Open { link, .. } => link,
            Conn::Idle | Conn::Waiting(_) => return,
        };
        while link.pending.may_send(self.ids) {
            let Some(key) = self.to_create.pop_front() else {
                break;
            };
            let Some(entry) = self.watchers.get_mut(&key) else {
                continue;
            };
            if entry.phase != Phase::Unsent {
                continue;
            }
            let id = self.next_watch_id;
            self.next_watch_id = self.next_watch_id.saturating_add(1);
            entry.phase = Phase::Creating(id);
            entry.requests_before_create = link.progress.requests_sent();
            let create = entry.options.create_request(id, entry.next.resume_from());
            link.send(RequestUnion::CreateRequest(create));
            link.pending.sent(id, key);
        }
    }

    /// Drops the stream (closing it) and moves every watcher that was on
    /// it back to `Unsent`.
    fn drop_stream(&mut self) {
        self.conn = Conn::Idle;
        self.progress_timer = None;
        self.epoch = self.epoch.wrapping_add(1);
        self.by_id.clear();
        self.probe_waiting.clear();
        for (key, entry) in &mut self.watchers {
            match entry.phase {
                Phase::Creating(_) | Phase::Active(_) | Phase::Rejected => {
                    entry.phase = Phase::Unsent;
                    self.to_create.push_back(*key);
                }
                Phase::Unsent | Phase::Lagging => {}
            }
        }
    }

    fn healthy_for(&self) -> Option<Duration> {
        match &self.conn {
            Conn::Open { opened_at, .. } => Some(opened_at.elapsed()),
            _ => None,
        }
    }

    /// Drops the stream and re-opens it after the back-off delay; `reason`
    /// is [`RESUME_DISCONNECTED`] or [`RESUME_AUTH`].
    fn restart(&mut self, reason: &'static str, failure: Failure) {
        let healthy_for = self.healthy_for();
        self.note_resume(reason);
        self.drop_stream();
        let delay = self.backoff.next_delay(healthy_for, failure);
        tracing::debug!(?delay, "re-opening the watch stream after a delay");
        self.conn = Conn::Waiting(Box::pin(tokio::time::sleep(delay)));
    }

    /// Counts the coming re-open as a resume if a watcher is to be resumed
    /// (not only created for the first time).
    fn note_resume(&mut self, reason: &'static str) {
        if self.watchers.values().any(|entry| entry.reply.is_none()) {
            self.resume_reason.get_or_insert(reason);
        }
    }

    /// Re-opens the stream at once, without back-off, if its token is
    /// older than the newest one known; returns whether it did.
    ///
    /// A stream with a replaced token is not a failure: the server refuses
    /// (or would refuse) its creates because the token it was opened with
    /// is gone, and a stream opened now carries the current one. This
    /// cannot loop: every such re-open carries a newer token than the
    /// stream it replaces, and a refusal on a stream with the newest token
    /// goes through the probe, whose re-checks do back off.
    fn reopen_if_token_replaced(&mut self) -> bool {
        let Some(stream_generation) = self.link().map(|link| link.generation) else {
            return false;
        };
        if self.shared.known_generation() <= stream_generation {
            return false;
        }
        tracing::info!(
            "the watch stream's token was replaced; re-opening at once with the current one"
        );
        self.note_resume(RESUME_AUTH);
        // Idle: the next reconcile opens the new stream.
        self.drop_stream();
        true
    }

    /// The stream failed: re-open with back-off, or end every watcher if
    /// the failure cannot go away by itself.
    fn fault(&mut self, error: EtcdError) {
        if is_permanent(&error) {
            tracing::warn!(%error, "watch stream failed for good; ending its watchers");
            return self.end_all(error);
        }
        // No endpoint could be reached: nothing was sent (see `backoff`).
        let failure = if *error.kind() == ErrorKind::Connect {
            Failure::Unreachable
        } else {
            Failure::Reached
        };
        if failure == Failure::Unreachable && self.unreachable_logged {
            // Retried often while the servers are away: said once.
            tracing::debug!(%error, "watch stream still cannot connect; retrying");
        } else {
            tracing::info!(%error, watchers = self.watchers.len(), "watch stream broke; resuming");
        }
        self.unreachable_logged = failure == Failure::Unreachable;
        self.restart(RESUME_DISCONNECTED, failure);
    }

    /// The server sent something that fits no request: re-open with
    /// back-off, but end every watcher after [`ids::FAULT_LIMIT`] of these
    /// in a row (see [`ids`](crate::ids)).
    fn protocol_fault(&mut self, message: String) {
        let give_up = self
            .protocol_faults
            .record(self.healthy_for(), self.shared.config.backoff_reset_after);
        if give_up {
            let error = protocol_error(format!(
                "{message}; the watchers of this stream were ended after {} such answers in a row",
                ids::FAULT_LIMIT
            ));
            tracing::warn!(%error, "the watch server keeps breaking the protocol; ending its watchers");
            return self.end_all(error);
        }
        let error = protocol_error(message);
        tracing::info!(%error, watchers = self.watchers.len(), "watch stream broke the protocol; resuming");
        self.restart(RESUME_DISCONNECTED, Failure::Reached);
    }

    /// Drops the stream and ends every watcher with `error`.
    fn end_all(&mut self, error: EtcdError) {
        self.drop_stream();
        self.resume_reason = None;
        let keys: Vec<u64> = self.watchers.keys().copied().collect();
        for key in keys {
            self.end_watcher(key, error.clone());
        }
    }

    fn on_opened(&mut self, result: Result<EtcdResponse, EtcdError>) {
        let response = match result {
            Ok(response) => response,
            Err(error) => return self.fault(error),
        };
        let generation = response.extensions.get::<TokenGeneration>().copied();
        let endpoint = response.extensions.get::<TargetEndpoint>().cloned();
        let inbound = match response.body {
            ResponseBody::Watch(inbound) => inbound,
            other => {
                return self.protocol_fault(format!(
                    "a watch open was answered with a {} response",
                    other.rpc()
                ))
            }
        };
        if let Some(generation) = generation {
            self.shared.note_generation(generation);
        }
        if let Some(current) = response.extensions.get::<CurrentTokenGeneration>() {
            self.shared.learn_current(current);
        }
        if let Conn::Opening { mut link, .. } = std::mem::replace(&mut self.conn, Conn::Idle) {
            link.generation = generation;
            link.endpoint = endpoint;
            if let Some(reason) = self.resume_reason.take() {
                metrics::counter!(WATCH_RESUMES_TOTAL, LABEL_REASON => reason).increment(1);
            }
            self.conn = Conn::Open {
                link,
                inbound,
                opened_at: Instant::now(),
            };
        }
    }

    fn on_inbound(&mut self, item: Option<Result<WatchResponse, EtcdError>>) {
        match item {
            Some(Ok(response)) => self.on_response(response),
            Some(Err(error)) => self.fault(error),
            None => self.fault(EtcdError::new(
                ErrorKind::ConnectionLost,
                Code::Unavailable,
                "the server ended the watch stream",
                Sent::MayHaveBeenApplied,
            )),
        }
    }

    fn on_response(&mut self, response: WatchResponse) {
        if let Some(header) = &response.header {
            self.saw_member(header.member_id);
        }
        if response.created {
            return self.on_create_answer(response);
        }
        if response.watch_id == -1 {
            return self.broadcast_progress(response);
        }
        let Some(&key) = self.by_id.get(&response.watch_id) else {
            // An incarnation cancelled by the client; its messages may
            // still be on the way.
            return;
        };
        let Some(link) = self.link_mut() else {
            return;
        };
        let response = match link.fragments.push(response) {
            Ok(Some(response)) => response,
            Ok(None) => return,
            Err(TooLarge { watch_id, limit }) => {
                link.cancel(watch_id);
                let error = EtcdError::new(
                    ErrorKind::ResponseTooLarge,
                    Code::ResourceExhausted,
                    format!(
                        "the server's fragmented watch response passed the limit of {limit} bytes \
                         (WatchConfig::max_fragmented); the watch was cancelled"
                    ),
                    Sent::Rejected,
                );
                tracing::warn!(%error, "ending a watcher");
                return self.end_watcher(key, error);
            }
        };
        if response.canceled {
            self.by_id.remove(&response.watch_id);
            let error = if response.compact_revision != 0 {
                compacted(response.compact_revision)
            } else {
                EtcdError::new(
                    ErrorKind::WatchCanceled,
                    Code::Cancelled,
                    format!("the server cancelled the watch: {}", response.cancel_reason),
                    Sent::Rejected,
                )
            };
            return self.end_watcher(key, error);
        }
        let header = response.header.unwrap_or_default();
        if response.events.is_empty() {
            return self.progress(key, header);
        }
        self.deliver(key, response.watch_id, header, response.events);
    }

    /// The answer to the oldest create still pending (creates are answered
    /// in order; a refusal may carry watch id -1). The watcher takes the id
    /// the answer gives, which etcd's gRPC proxy picks itself (see
    /// [`ids`](crate::ids)).
    fn on_create_answer(&mut self, response: WatchResponse) {
        let by_id = &self.by_id;
        let ids = &mut self.ids;
        let answer = match &mut self.conn {
            Conn::Opening { link, .. } | Conn::Open { link, .. } => {
                link.pending
                    .answer(&response, ids, |id| by_id.get(&id).copied())
            }
            Conn::Idle | Conn::Waiting(_) => return,
        };
        let (requested, key, id) = match answer {
            Answer::Created {
                requested,
                watcher,
                id,
            } => (requested, watcher, id),
            Answer::Refused { requested, watcher } => return self.on_rejected(watcher, requested),
            Answer::Fault(message) => return self.protocol_fault(message),
            Answer::Ambiguous => {
                tracing::info!(
                    "the watch server picks its own watch ids (etcd's gRPC proxy does); \
                     re-opening the stream to create one watch at a time"
                );
                self.note_resume(RESUME_DISCONNECTED);
                // At once: this happens once per task, as the mode sticks.
                return self.drop_stream();
            }
        };
        let Some(entry) = self
            .watchers
            .get_mut(&key)
            .filter(|entry| entry.phase == Phase::Creating(requested))
        else {
            // Dropped while its create was under way: cancel it under the
            // id the server gave.
            if let Some(link) = self.link_mut() {
                link.cancel(id);
            }
            return;
        };
        if id != requested {
            tracing::trace!(
                watcher = key,
                requested,
                id,
                "watch id picked by the server"
            );
        }
        entry.phase = Phase::Active(id);
        self.by_id.insert(id, key);
        // The stream works again: the next failure backs off from the start.
        self.backoff.reset();
        entry.renewed = false;
        entry.rechecks_left = probe::RECHECKS;
        entry
            .next
            .on_created(response.header.map_or(0, |h| h.revision));
        if let Some(reply) = entry.reply.take() {
            let watcher = Watcher::new(key, entry.queue.clone(), self.notes_tx.clone());
            // If the caller is gone, the watcher handle is dropped with
            // the failed send, and its drop note cancels it.
            if reply.send(Ok(watcher)).is_err() {
                tracing::trace!(
                    watcher = key,
                    "watch caller gone before the create was confirmed"
                );
            }
        }
    }

    /// The server refused a create (`created` and `canceled`): either the
    /// stream's token is stale or the watch is not permitted. See
    /// [`probe`](crate::probe).
    fn on_rejected(&mut self, key: u64, id: i64) {
        let Some(entry) = self.watchers.get_mut(&key) else {
            return;
        };
        if entry.phase != Phase::Creating(id) {
            return;
        }
        entry.phase = Phase::Rejected;
        if self.reopen_if_token_replaced() {
            return;
        }
        tracing::debug!(watcher = key, "watch create refused; probing why");
        self.probe_waiting.push_back(key);
        self.start_probe();
    }

    /// Starts the probe for the oldest refused watcher, unless one is
    /// already under way (one probe at a time, whatever the number of
    /// refusals).
    fn start_probe(&mut self) {
        self.start_probe_renewing(None);
    }

    /// Starts the next probe; with `renew`, for the watcher at the head of
    /// the queue, asking the auth layer to replace that token generation.
    fn start_probe_renewing(&mut self, renew: Option<TokenGeneration>) {
        if self.probe.is_some() {
            return;
        }
        let stream_generation = match &self.conn {
            Conn::Open { link, .. } => link.generation,
            _ => return,
        };
        while let Some(key) = self.probe_waiting.pop_front() {
            let Some(entry) = self.watchers.get(&key) else {
                continue;
            };
            if entry.phase != Phase::Rejected {
                continue;
            }
            let future = probe::probe(
                self.service.clone(),
                entry.options.key.clone(),
                entry.options.range_end.clone(),
                renew,
                self.shared.config.probe_timeout,
            );
            self.probe = Some(InFlightProbe {
                future,
                watcher: key,
                renewing: renew.is_some(),
                epoch: self.epoch,
                stream_generation,
            });
            return;
        }
    }

    fn on_probe(&mut self, outcome: ProbeOutcome) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        if let ProbeOutcome::Readable(Some(generation)) = &outcome {
            self.shared.note_generation(*generation);
        }
        if probe.epoch != self.epoch {
            // The stream was replaced meanwhile and the watcher re-created.
            return self.start_probe();
        }
        let may_renew = !probe.renewing
            && self
                .watchers
                .get(&probe.watcher)
                .is_some_and(|entry| !entry.renewed);
        match outcome.verdict(probe.stream_generation, may_renew) {
            Verdict::Renew(generation) => {
                tracing::info!(
                    watcher = probe.watcher,
                    "watch refused although its stream's token reads; renewing the token once"
                );
                if let Some(entry) = self.watchers.get_mut(&probe.watcher) {
                    entry.renewed = true;
                }
                self.probe_waiting.push_front(probe.watcher);
                self.start_probe_renewing(Some(generation));
            }
            Verdict::Unconfirmed => {
                let recheck = self.watchers.get_mut(&probe.watcher).and_then(|entry| {
                    entry.rechecks_left = entry.rechecks_left.checked_sub(1)?;
                    Some(())
                });
                if recheck.is_some() {
                    tracing::info!(
                        watcher = probe.watcher,
                        "watch refused again with a token that reads; re-checking on a new stream"
                    );
                    self.restart(RESUME_AUTH, Failure::Reached);
                } else {
                    tracing::debug!(watcher = probe.watcher, "watch permission denied");
                    self.end_watcher(probe.watcher, probe::denied());
                    self.start_probe();
                }
            }
            Verdict::StaleToken => {
                // The probe's refresh made the current token newer than
                // the stream's: re-open at once, with no back-off.
                if !self.reopen_if_token_replaced() {
                    tracing::info!("the watch stream's token is stale; re-opening and resuming");
                    self.restart(RESUME_AUTH, Failure::Reached);
                }
            }
            Verdict::Denied(error) => {
                tracing::debug!(watcher = probe.watcher, "watch permission denied");
                self.end_watcher(probe.watcher, error);
                self.start_probe();
            }
            Verdict::Fault(error) => self.fault(error),
        }
    }

    fn deliver(
        &mut self,
        key: u64,
        id: i64,
        header: ResponseHeader,
        mut events: Vec<etcd_tower_core::proto::mvccpb::Event>,
    ) {
        let Some(entry) = self.watchers.get_mut(&key) else {
            return;
        };
        entry.next.retain_new(&mut events);
        if events.is_empty() {
            return;
        }
        let count = events.len() as u64;
        let mut next = entry.next;
        next.on_delivered(&events);
        match entry
            .queue
            .push_events(WatchBatch::new(header, events, false))
        {
            Pushed::Accepted => {
                entry.next = next;
                metrics::counter!(WATCH_EVENTS_DELIVERED_TOTAL).increment(count);
            }
            Pushed::Full => {
                // Never block the shared stream, never drop silently:
                // cancel this watcher and re-create it from its next
                // revision once its consumer has caught up.
                tracing::debug!(watcher = key, "watcher buffer full; lagging");
                entry.phase = Phase::Lagging;
                self.by_id.remove(&id);
                if let Some(link) = self.link_mut() {
                    link.cancel(id);
                }
            }
            Pushed::ConsumerGone => {}
        }
    }

    /// A progress notification for one watcher: every event up to its
    /// revision was sent (etcd sends these only to synced watchers).
    fn progress(&mut self, key: u64, header: ResponseHeader) {
        let Some(entry) = self.watchers.get_mut(&key) else {
            return;
        };
        entry.next.on_progress(header.revision);
        // Every create asks for these; only a user who asked sees them.
        if entry.options.progress_notify {
            entry
                .queue
                .push_progress(WatchBatch::new(header, Vec::new(), true));
        }
    }

    /// An answer to a progress request, for every watcher of the stream.
    /// It moves the next revision of the watchers the rules allow (see
    /// [`revision`](crate::revision)), and reaches the users unless it
    /// answers a request of the engine's own (see
    /// [`progress_requests`](crate::progress_requests)).
    fn broadcast_progress(&mut self, response: WatchResponse) {
        let header = response.header.unwrap_or_default();
        let order = self.broadcast_order(header.member_id);
        let (Conn::Opening { link, .. } | Conn::Open { link, .. }) = &mut self.conn else {
            return;
        };
        let answer = link.progress.answered();
        let show = answer.show;
        let mut moved = 0usize;
        for entry in self.watchers.values_mut() {
            let at = match entry.phase {
                Phase::Active(id)
                    if answer
                        .request
                        .is_some_and(|request| entry.requests_before_create < request) =>
                {
                    AtBroadcast::Confirmed {
                        partial_fragment: link.fragments.is_partial(id),
                    }
                }
                Phase::Active(_) => AtBroadcast::CreatedAfterRequest,
                Phase::Lagging => AtBroadcast::Lagging,
                Phase::Unsent | Phase::Creating(_) | Phase::Rejected => AtBroadcast::Unconfirmed,
            };
            if entry.next.on_broadcast_progress(header.revision, order, at) {
                moved += 1;
            }
            if show && matches!(entry.phase, Phase::Active(_)) {
                entry
                    .queue
                    .push_progress(WatchBatch::new(header, Vec::new(), true));
            }
        }
        tracing::trace!(
            revision = header.revision,
            ?order,
            moved,
            shown = show,
            "progress answer"
        );
    }

    /// How the stream's member answers progress requests, for an answer
    /// whose header names `member_id`: in order only if the stream's
    /// headers all named that one member and it is known to be fixed.
    fn broadcast_order(&self, member_id: u64) -> BroadcastOrder {
        match self.link().and_then(|link| link.progress.member()) {
            Some(member) if member == member_id => self.shared.members.order(member),
            _ => BroadcastOrder::MayOvertake,
        }
    }

    /// A response header named `member_id`: the first one a stream shows
    /// has its version checked, once per member id for the engine.
    fn saw_member(&mut self, member_id: u64) {
        let Some(link) = self.link_mut() else {
            return;
        };
        let Some(member) = link.progress.saw_member(member_id) else {
            return;
        };
        let endpoint = link.endpoint.clone();
        if self.shared.config.progress_interval.is_some() {
            progress_order::spawn_check(
                self.shared.members.clone(),
                self.service.clone(),
                member,
                endpoint,
                self.shared.config.probe_timeout,
            );
        }
    }

    /// Keeps the engine's progress timer running while a stream is open.
    fn arm_progress_timer(&mut self) {
        let Some(interval) = self.shared.config.progress_interval else {
            return;
        };
        if self.progress_timer.is_none() && matches!(self.conn, Conn::Open { .. }) {
            self.progress_timer = Some(Box::pin(tokio::time::sleep(interval)));
        }
    }

    /// The progress timer fired: asks the stream's member for progress if
    /// its answers may move next revisions and some watcher is active.
    fn on_progress_tick(&mut self) {
        self.progress_timer = None;
        let in_order = self
            .link()
            .and_then(|link| link.progress.member())
            .is_some_and(|member| self.shared.members.order(member) == BroadcastOrder::InOrder);
        let active = self
            .watchers
            .values()
            .any(|entry| matches!(entry.phase, Phase::Active(_)));
        if !in_order || !active {
            return;
        }
        if let Some(link) = self.link_mut() {
            if link.progress.engine_may_ask() {
                link.request_progress(Asker::Engine);
            }
        }
    }

    fn on_drained(&mut self, key: u64) {
        if let Some(entry) = self.watchers.get_mut(&key) {
            if entry.phase == Phase::Lagging {
                tracing::debug!(watcher = key, "lagging watcher drained; re-creating");
                entry.phase = Phase::Unsent;
                self.to_create.push_back(key);
            }
        }
    }

    /// The watcher's handle was dropped: forget it and cancel it on the
    /// server (one still being created is cancelled when its answer names
    /// its id).
    fn remove_watcher(&mut self, key: u64) {
        let Some(entry) = self.watchers.remove(&key) else {
            return;
        };
        if let Phase::Active(id) = entry.phase {
            self.by_id.remove(&id);
            if let Some(link) = self.link_mut() {
                link.cancel(id);
            }
        }
    }

    /// Ends a watcher with an error: its caller's `watch()` fails, or its
    /// stream yields the error and ends.
    fn end_watcher(&mut self, key: u64, error: EtcdError) {
        let Some(mut entry) = self.watchers.remove(&key) else {
            return;
        };
        if let Phase::Active(id) = entry.phase {
            self.by_id.remove(&id);
        }
        match entry.reply.take() {
            Some(reply) => {
                if reply.send(Err(error)).is_err() {
                    tracing::trace!(watcher = key, "watch caller gone");
                }
            }
            None => entry.queue.finish(Some(error)),
        }
    }
}

async fn conn_wake(conn: &mut Conn) -> Wake {
    match conn {
        Conn::Idle => std::future::pending().await,
        Conn::Waiting(sleep) => {
            sleep.as_mut().await;
            Wake::Retry
        }
        Conn::Opening {
            future, deadline, ..
        } => {
            tokio::select! {
                result = future.as_mut() => Wake::Opened(result),
                () = deadline.as_mut() => Wake::OpenTimedOut,
            }
        }
        Conn::Open { inbound, .. } => Wake::Inbound(inbound.next().await),
    }
}

async fn timer_wake(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn probe_wake(probe: &mut Option<InFlightProbe>) -> ProbeOutcome {
    match probe {
        Some(probe) => probe.future.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Failures that re-opening cannot fix: a configuration the server or the
/// stack refuses. Everything else (connections, leaders, timeouts, server
/// restarts) is retried with back-off.
fn is_permanent(error: &EtcdError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::AuthFailed
            | ErrorKind::PermissionDenied
            | ErrorKind::InvalidRequest
            | ErrorKind::InvalidEndpoint
            | ErrorKind::NoEndpoints
            | ErrorKind::InvalidTls
    ) || error.code() == Code::Unimplemented
}

fn protocol_error(message: String) -> EtcdError {
    EtcdError::new(
        ErrorKind::UnexpectedResponse,
        Code::Internal,
        message,
        Sent::MayHaveBeenApplied,
    )
}

/// The error of a watcher whose next revision was compacted away.
pub(crate) fn compacted(compact_revision: i64) -> EtcdError {
    EtcdError::new(
        ErrorKind::Compacted {
            compact_revision: Some(compact_revision),
        },
        Code::OutOfRange,
        format!(
            "etcdserver: mvcc: required revision has been compacted (compacted at {compact_revision})"
        ),
        Sent::Rejected,
    )
}
