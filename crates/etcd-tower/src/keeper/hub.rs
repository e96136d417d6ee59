//! One keep-alive stream and one timer for every lease a client keeps.
//!
//! Go's lessor renews all of a client's leases over a single
//! `LeaseKeepAlive` stream; a stream and a task per lease (what the keeper
//! did before) costs an HTTP/2 stream, a task and a timer per lease, which
//! at thousands of leases is most of the client's memory and wake-ups. The
//! hub is one task per [`Client`] (its clones share it; a handle made by
//! [`Client::with_options`] has its own, with its own options) that holds:
//!
//! * the leases, each with one wake-up time in one ordered schedule (the
//!   next renewal, the check of an unanswered one, or its expiry), so one
//!   `sleep_until` serves them all;
//! * one stream, opened when the first lease arrives, closed when the last
//!   one goes, and reopened through the client's stack (another endpoint, a
//!   fresh token) with a back-off when it breaks; every lease is renewed on
//!   the new stream at once.
//!
//! Each lease keeps the keeper's rules (see the [keeper](super)): renewed
//! every TTL/3, lost when the server answers TTL ≤ 0, when its TTL passes
//! without a renewal, when answers on one stream carry a falling TTL, or
//! when on two streams in a row a renewal went unanswered while its
//! `TimeToLive` was answered. The task ends when the last keeper is
//! dropped; it holds no keeper itself, so nothing keeps it alive.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::{
    ErrorKind, EtcdError, EtcdRequest, RequestBody, ResponseBody, ResponseStream,
};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, timeout_at, Instant};

use super::{secs, LeaseLost, LeaseState};
use crate::client::Client;
use crate::lease::unbounded_channel_stream;

/// Where a client's hub is found: shared by the client's clones, holding
/// the hub only weakly, so that the hub ends with the last keeper.
#[derive(Debug, Default)]
pub(crate) struct HubSlot(StdMutex<Weak<HubHandle>>);

/// A keeper's hold on the hub: the hub runs while any is held.
#[derive(Debug)]
pub(crate) struct HubHandle {
    commands: mpsc::UnboundedSender<Command>,
}

/// A lease handed to the hub to keep.
pub(crate) struct Kept {
    /// The lease.
    pub(crate) id: i64,
    /// Tells this registration from a later one of the same lease.
    pub(crate) serial: u64,
    /// Its granted TTL, in seconds.
    pub(crate) ttl: i64,
    /// When it expires if no renewal succeeds.
    pub(crate) expires_at: Instant,
    /// Where its state is published.
    pub(crate) state: Arc<watch::Sender<LeaseState>>,
}

enum Command {
    Keep(Kept),
    Stop { id: i64, serial: u64 },
}

impl HubSlot {
    /// Hands `lease` to the client's hub, starting one if none runs.
    pub(crate) fn keep(&self, client: &Client, lease: Kept) -> Arc<HubHandle> {
        let mut slot = match self.0.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut command = Command::Keep(lease);
        if let Some(hub) = slot.upgrade() {
            match hub.commands.send(command) {
                Ok(()) => return hub,
                // The hub's runtime is gone: start another on this one.
                Err(mpsc::error::SendError(unsent)) => command = unsent,
            }
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        // A fresh channel whose receiver is alive: this send cannot fail.
        let _ = commands.send(command);
        let hub = Arc::new(HubHandle { commands });
        tokio::spawn(Hub::new(client.clone(), receiver).run());
        *slot = Arc::downgrade(&hub);
        hub
    }
}

impl HubHandle {
    /// Stops keeping the registration `serial` of lease `id`.
    pub(crate) fn stop(&self, id: i64, serial: u64) {
        // A hub that is gone keeps nothing already.
        let _ = self.commands.send(Command::Stop { id, serial });
    }
}

/// One lease in the hub.
struct Entry {
    serial: u64,
    ttl: i64,
    expires_at: Instant,
    /// The renewal waiting for its answer: when it was sent, and whether
    /// its `TimeToLive` check has started.
    pending: Option<(Instant, bool)>,
    /// When the next renewal is due (while none is pending).
    next_send: Instant,
    /// The TTL of the last answer on the current stream.
    last_ttl: Option<i64>,
    /// A renewal went unanswered on an earlier stream, with no renewal
    /// since.
    unanswered: bool,
    /// Its place in the schedule.
    wake: Instant,
    state: Arc<watch::Sender<LeaseState>>,
}

impl Entry {
    /// The entry's next wake-up: its check, renewal or expiry.
    fn next_wake(&self) -> Instant {
        match self.pending {
            Some((sent_at, false)) => (sent_at + secs(self.ttl) / 3).min(self.expires_at),
            Some((_, true)) => self.expires_at,
            None => self.next_send.min(self.expires_at),
        }
    }
}

type Opening = Pin<
    Box<dyn Future<Output = Result<ResponseStream<pb::LeaseKeepAliveResponse>, EtcdError>> + Send>,
>;

/// The hub's one stream.
enum Stream {
    /// No lease to keep.
    Closed,
    /// Broken; reopened at the instant.
    Waiting(Instant),
    /// Opened, renewals already queued on it.
    Opening(mpsc::UnboundedSender<pb::LeaseKeepAliveRequest>, Opening),
    /// Open.
    Open(
        mpsc::UnboundedSender<pb::LeaseKeepAliveRequest>,
        ResponseStream<pb::LeaseKeepAliveResponse>,
    ),
}

impl Stream {
    fn sender(&self) -> Option<&mpsc::UnboundedSender<pb::LeaseKeepAliveRequest>> {
        match self {
            Stream::Opening(tx, _) | Stream::Open(tx, _) => Some(tx),
            Stream::Closed | Stream::Waiting(_) => None,
        }
    }
}

enum StreamEvent {
    BackoffOver,
    Opened(Result<ResponseStream<pb::LeaseKeepAliveResponse>, EtcdError>),
    Answer(Option<Result<pb::LeaseKeepAliveResponse, EtcdError>>),
}

/// The next thing the stream has to say; never, while it is closed.
async fn stream_event(stream: &mut Stream) -> StreamEvent {
    match stream {
        Stream::Closed => std::future::pending().await,
        Stream::Waiting(until) => {
            sleep_until(*until).await;
            StreamEvent::BackoffOver
        }
        Stream::Opening(_, opening) => StreamEvent::Opened(opening.await),
        Stream::Open(_, answers) => StreamEvent::Answer(answers.next().await),
    }
}

/// What a lease's `TimeToLive` said while a renewal was unanswered.
enum Checked {
    /// The lease is there: the renewal went unanswered.
    Present,
    /// The lease is gone.
    Gone,
    /// No answer in time.
    Unknown,
}

struct CheckDone {
    id: i64,
    serial: u64,
    generation: u64,
    checked: Checked,
}

type Check = Pin<Box<dyn Future<Output = CheckDone> + Send>>;

enum Event {
    Command(Option<Command>),
    Timer,
    Stream(StreamEvent),
    Check(CheckDone),
}

struct Hub {
    client: Client,
    commands: mpsc::UnboundedReceiver<Command>,
    leases: HashMap<i64, Entry>,
    schedule: BTreeSet<(Instant, i64)>,
    stream: Stream,
    /// Counts streams, so that a check of an old stream's renewal does not
    /// reopen a newer one.
    generation: u64,
    checks: FuturesUnordered<Check>,
    backoff: Duration,
    /// A renewal succeeded since the stream last broke.
    renewed: bool,
}

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Hub {
    fn new(client: Client, commands: mpsc::UnboundedReceiver<Command>) -> Hub {
        Hub {
            client,
            commands,
            leases: HashMap::new(),
            schedule: BTreeSet::new(),
            stream: Stream::Closed,
            generation: 0,
            checks: FuturesUnordered::new(),
            backoff: BACKOFF_MIN,
            renewed: false,
        }
    }

    async fn run(mut self) {
        // The one timer: reset to the schedule's first wake-up.
        let timer = sleep_until(far_future());
        tokio::pin!(timer);
        let mut armed = None;
        loop {
            let wake = self.schedule.first().map(|(at, _)| *at);
            if let Some(at) = wake {
                if armed != Some(at) {
                    timer.as_mut().reset(at);
                    armed = Some(at);
                }
            }
            let event = tokio::select! {
                command = self.commands.recv() => Event::Command(command),
                () = &mut timer, if wake.is_some() => {
                    armed = None;
                    Event::Timer
                }
                event = stream_event(&mut self.stream) => Event::Stream(event),
                Some(done) = self.checks.next(), if !self.checks.is_empty() => Event::Check(done),
            };
            match event {
                Event::Command(None) => return,
                Event::Command(Some(Command::Keep(lease))) => self.keep(lease),
                Event::Command(Some(Command::Stop { id, serial })) => {
                    if self
                        .leases
                        .get(&id)
                        .is_some_and(|entry| entry.serial == serial)
                    {
                        self.remove(id);
                    }
                }
                Event::Timer => self.on_timer(),
                Event::Stream(StreamEvent::BackoffOver) => self.open(),
                Event::Stream(StreamEvent::Opened(Ok(answers))) => {
                    if let Stream::Opening(tx, _) =
                        std::mem::replace(&mut self.stream, Stream::Closed)
                    {
                        self.stream = Stream::Open(tx, answers);
                    }
                }
                Event::Stream(StreamEvent::Opened(Err(error))) => self.broken(error),
                Event::Stream(StreamEvent::Answer(Some(Ok(answer)))) => self.on_answer(answer),
                Event::Stream(StreamEvent::Answer(Some(Err(error)))) => self.broken(error),
                Event::Stream(StreamEvent::Answer(None)) => self.broken(EtcdError::client(
                    ErrorKind::ConnectionLost,
                    "the server closed the keep-alive stream",
                )),
                Event::Check(done) => self.on_check(done),
            }
        }
    }

    fn keep(&mut self, lease: Kept) {
        if self.leases.contains_key(&lease.id) {
            self.remove_quietly(lease.id);
        }
        let now = Instant::now();
        let entry = Entry {
            serial: lease.serial,
            ttl: lease.ttl,
            expires_at: lease.expires_at,
            pending: None,
            next_send: now,
            last_ttl: None,
            unanswered: false,
            wake: now,
            state: lease.state,
        };
        self.leases.insert(lease.id, entry);
        if matches!(self.stream, Stream::Closed) {
            self.open();
        } else {
            self.renew(lease.id, now);
        }
    }

    /// Sends a renewal of `id` if a stream takes it; otherwise the lease
    /// waits for the stream's reopening, which renews every lease.
    fn renew(&mut self, id: i64, now: Instant) {
        let sent = self
            .stream
            .sender()
            .is_some_and(|tx| tx.send(pb::LeaseKeepAliveRequest { id }).is_ok());
        if let Some(entry) = self.leases.get_mut(&id) {
            if sent {
                entry.pending = Some((now, false));
            } else {
                entry.pending = None;
                entry.next_send = entry.expires_at;
            }
        }
        self.reschedule(id);
    }

    /// Opens a stream with a renewal of every lease in it.
    fn open(&mut self) {
        self.generation += 1;
        if self.leases.is_empty() {
            self.stream = Stream::Closed;
            return;
        }
        let (tx, outbound) = unbounded_channel_stream();
        let client = self.client.clone();
        let opening: Opening = Box::pin(async move {
            let response = client
                .call(EtcdRequest::new(RequestBody::LeaseKeepAlive(outbound)))
                .await?;
            match response.body {
                ResponseBody::LeaseKeepAlive(answers) => Ok(answers),
                other => Err(EtcdError::client(
                    ErrorKind::UnexpectedResponse,
                    format!("expected a LeaseKeepAlive stream, got {}", other.rpc()),
                )),
            }
        });
        self.stream = Stream::Opening(tx, opening);
        let now = Instant::now();
        let ids: Vec<i64> = self.leases.keys().copied().collect();
        for id in ids {
            if let Some(entry) = self.leases.get_mut(&id) {
                entry.last_ttl = None;
            }
            self.renew(id, now);
        }
    }

    fn broken(&mut self, error: EtcdError) {
        tracing::debug!(%error, leases = self.leases.len(), "lease keep-alive stream broke; reopening");
        if self.renewed {
            self.backoff = BACKOFF_MIN;
        }
        self.renewed = false;
        let until = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.stream = Stream::Waiting(until);
        self.generation += 1;
        let ids: Vec<i64> = self.leases.keys().copied().collect();
        for id in ids {
            if let Some(entry) = self.leases.get_mut(&id) {
                entry.pending = None;
                entry.next_send = entry.expires_at;
            }
            self.reschedule(id);
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        while let Some(&(at, id)) = self.schedule.first() {
            if at > now {
                break;
            }
            self.schedule.pop_first();
            let Some(entry) = self.leases.get_mut(&id) else {
                continue;
            };
            entry.wake = far_future();
            if now >= entry.expires_at {
                tracing::warn!(lease = id, "lease not renewed within its TTL");
                self.lose(id, LeaseLost::TimedOut);
                continue;
            }
            match entry.pending {
                Some((sent_at, false)) if now >= sent_at + secs(entry.ttl) / 3 => {
                    entry.pending = Some((sent_at, true));
                    let check = check(
                        self.client.clone(),
                        id,
                        entry.serial,
                        self.generation,
                        entry.expires_at,
                    );
                    self.checks.push(Box::pin(check));
                    self.reschedule(id);
                }
                None if now >= entry.next_send => self.renew(id, now),
                _ => self.reschedule(id),
            }
        }
    }

    fn on_answer(&mut self, answer: pb::LeaseKeepAliveResponse) {
        let id = answer.id;
        let Some(entry) = self.leases.get_mut(&id) else {
            return;
        };
        if answer.ttl <= 0 {
            self.lose(id, LeaseLost::Expired);
            return;
        }
        let Some((sent_at, _)) = entry.pending else {
            return;
        };
        if entry.last_ttl.is_some_and(|last| answer.ttl < last) {
            tracing::warn!(
                lease = id,
                ttl = answer.ttl,
                "the server answers lease renewals without renewing; the lease will expire"
            );
            self.lose(id, LeaseLost::NotRenewed);
            return;
        }
        entry.last_ttl = Some(answer.ttl);
        entry.expires_at = sent_at + secs(answer.ttl);
        entry.pending = None;
        entry.next_send = sent_at + secs(answer.ttl) / 3;
        entry.unanswered = false;
        entry.state.send_replace(LeaseState::Alive {
            ttl: answer.ttl,
            expires_at: entry.expires_at,
        });
        self.renewed = true;
        self.reschedule(id);
    }

    fn on_check(&mut self, done: CheckDone) {
        let Some(entry) = self.leases.get_mut(&done.id) else {
            return;
        };
        if entry.serial != done.serial {
            return;
        }
        match done.checked {
            Checked::Gone => self.lose(done.id, LeaseLost::Expired),
            Checked::Unknown => {}
            // Answered meanwhile, or on a stream since reopened.
            Checked::Present if entry.pending.is_none() => {}
            Checked::Present if entry.unanswered => {
                tracing::warn!(
                    lease = done.id,
                    "the server answers but does not renew the lease (etcd 3.5.30's gRPC \
                     proxy does this for users who are not root); it will expire"
                );
                self.lose(done.id, LeaseLost::NotRenewed);
            }
            Checked::Present => {
                entry.unanswered = true;
                if done.generation == self.generation {
                    // The stream's member may be stuck while another can
                    // renew: reopen at once.
                    tracing::debug!(
                        lease = done.id,
                        "lease renewal unanswered; reopening the stream"
                    );
                    self.open();
                }
            }
        }
    }

    /// Ends keeping `id`, publishing why.
    fn lose(&mut self, id: i64, reason: LeaseLost) {
        if let Some(entry) = self.leases.get(&id) {
            entry.state.send_replace(LeaseState::Lost(reason));
        }
        self.remove(id);
    }

    /// Ends keeping `id`; the last lease closes the stream.
    fn remove(&mut self, id: i64) {
        self.remove_quietly(id);
        if self.leases.is_empty() {
            self.stream = Stream::Closed;
        }
    }

    fn remove_quietly(&mut self, id: i64) {
        if let Some(entry) = self.leases.remove(&id) {
            self.schedule.remove(&(entry.wake, id));
        }
    }

    /// Moves `id` to its next wake-up in the schedule.
    fn reschedule(&mut self, id: i64) {
        if let Some(entry) = self.leases.get_mut(&id) {
            self.schedule.remove(&(entry.wake, id));
            entry.wake = entry.next_wake();
            self.schedule.insert((entry.wake, id));
        }
    }
}

/// Asks for the lease's `TimeToLive`, until it expires.
async fn check(
    client: Client,
    id: i64,
    serial: u64,
    generation: u64,
    expires_at: Instant,
) -> CheckDone {
    let checked = match timeout_at(expires_at, client.lease_time_to_live(id)).await {
        // -1 when it is gone; 0 while under a second is left.
        Ok(Ok(left)) if left.ttl >= 0 => Checked::Present,
        Ok(Ok(_)) => Checked::Gone,
        Ok(Err(error)) if error.kind() == &ErrorKind::LeaseNotFound => Checked::Gone,
        Ok(Err(_)) | Err(_) => Checked::Unknown,
    };
    CheckDone {
        id,
        serial,
        generation,
        checked,
    }
}

/// A time the schedule never reaches.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
