//! Watch engine for etcd-tower: many watchers on one stream, resumed across
//! faults, with no event lost or repeated.
//!
//! Watches are where etcd clients break in practice: events silently stop
//! after a member restart, or repeat after a reconnect. [`WatchEngine`]
//! exists so that a watcher sees **one ordered, gap-free, duplicate-free
//! sequence of events** for as long as it lives, whatever happens to the
//! connections underneath.
//!
//! # Example
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower_core::EtcdError> {
//! use std::time::Duration;
//! use etcd_tower_core::Transport;
//! use etcd_tower_watch::{WatchEngine, WatchOptions};
//! use futures_util::StreamExt;
//! use tower::ServiceBuilder;
//!
//! let transport = Transport::builder(["127.0.0.1:2379", "127.0.0.1:22379"])
//!     .keepalive(Duration::from_secs(5), Duration::from_secs(3))
//!     .build()?;
//! // Any layers (namespace, auth, metrics) go here: the engine's streams
//! // and probes go through them.
//! let stack = ServiceBuilder::new().service(transport);
//! let engine = WatchEngine::new(stack);
//!
//! let mut watcher = engine.watch("config/", WatchOptions::new().prefix().prev_kv()).await?;
//! while let Some(batch) = watcher.next().await {
//!     for event in batch?.events() {
//!         println!("{:?} {:?} at {}", event.kind(), event.key_str(), event.mod_revision());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The key is the call's argument and [`WatchOptions`] say how, as in the
//! `etcd-tower` facade's `Client::watch(key, options)`, which takes this
//! very type. Each batch's events are [`WatchEvent`]s: etcd's protobuf
//! event behind typed accessors ([`EventKind`], key, value, `is_create`),
//! at no cost per event (see [`WatchEvent`] for why it is a wrapper).
//!
//! # Design
//!
//! The engine sits *above* the layer stack, like a facade: it is generic
//! over `S: Service<EtcdRequest, Response = EtcdResponse, Error =
//! EtcdError>` and opens watch streams by calling it with a
//! `RequestBody::Watch`, so the namespace, auth and metrics layers apply to
//! watches as to any call.
//!
//! **One stream, many watchers.** Watchers are grouped as etcd's Go client
//! groups them, by `require_leader`: each group has one gRPC stream, owned
//! by one task. Watchers are told apart by `watch_id`. Each create asks for
//! an id of the engine's own, starting at 1 and never reused (each
//! re-creation of a watcher asks for a fresh one, so that a late message for
//! an old incarnation is recognised and dropped), but the watcher takes the
//! id its create's answer gives: etcd's members echo the requested id,
//! etcd's gRPC proxy numbers watches itself. Creates are answered in order,
//! so each answer is matched to the oldest pending create (this also
//! matches refusals that carry `watch_id = -1`); creates go back to back
//! while the server echoes ids, and one at a time once it has shown it
//! picks its own, because a proxy may then answer them out of order. An
//! answer that fits no create re-opens the stream, a bounded number of
//! times in a row, after which the stream's watchers end with an
//! [`ErrorKind::UnexpectedResponse`](etcd_tower_core::ErrorKind::UnexpectedResponse)
//! error instead of being resumed forever. Dropping a [`Watcher`] sends a
//! cancel; the stream is closed when its last watcher goes; the tasks end
//! when the engine and every watcher are gone.
//!
//! **Resume.** When a stream fails (a member killed or restarted, a
//! connection cut, a black-holed connection found by the transport's HTTP/2
//! keepalive, a member without a leader cancelling a `require_leader`
//! stream), the engine re-opens it through the service (the transport
//! chooses the next healthy endpoint) after a bounded exponential back-off
//! (20 ms doubling to 2 s by default, never a tight loop; it starts again
//! once the server confirms a create on the new stream), and re-creates
//! every watcher from its *next revision*. While no server can be reached
//! at all (connections refused, no HTTP/2 answer: nothing was sent), the
//! delay stops growing at [`WatchConfig::reconnect_max`] (100 ms): such
//! attempts cost the servers nothing, and it bounds how late watchers
//! resume once a restarted member answers again. A re-open because the
//! stream's token was replaced is not a failure and has no delay at all
//! (see the auth section below). How
//! the next revision is kept is explained in the `revision` module: one
//! past the last delivered event's `mod_revision`; one past the created
//! header's revision only for a watcher that started at "now"; one past a
//! progress notification's revision, where the server guarantees that no
//! event before it is still on its way (see the compaction section).
//! Events below the next revision are dropped defensively. A watcher that was not yet confirmed is simply created
//! again; its `watch()` call keeps waiting.
//!
//! **Compaction.** When a create or a resume asks for a revision that was
//! compacted away, etcd answers the create normally, then sends a
//! cancellation with `compact_revision = N`. The watcher's stream then
//! yields an [`EtcdError`](etcd_tower_core::EtcdError) of kind
//! [`ErrorKind::Compacted`](etcd_tower_core::ErrorKind::Compacted)` {
//! compact_revision: Some(N) }` and ends; other watchers are not affected.
//!
//! A watcher must not end this way when it missed nothing: a quiet one (no
//! event in its range for a while, or none since it was created) would
//! otherwise resume after a fault from an old revision, compacted
//! meanwhile, while busy watchers on the same stream survive. So the engine
//! keeps every watcher's next revision recent, whatever the user asked:
//!
//! * **Every version.** Every create asks for per-watcher progress
//!   notifications (`progress_notify = true` on the wire). The server sends
//!   one to each synced watcher that had no event during its
//!   `--experimental-watch-progress-notify-interval` (10 minutes by
//!   default), in order with the watcher's events, and it moves the next
//!   revision. A watcher's stream shows them only if its user asked
//!   ([`WatchOptions::progress_notify`]).
//! * **etcd 3.4.24+, 3.5.8+, 3.6.** Every
//!   [`WatchConfig::progress_interval`] (10 s by default) while a stream has
//!   watchers, the engine asks the stream's member for progress. These
//!   servers answer only once every watcher of the stream is synced, in
//!   order with the events (etcd PR 15237), so the answer moves the next
//!   revision of every watcher whose `created` answer had arrived, that is
//!   not lagging and not in the middle of a fragmented response. Answers to
//!   the engine's own requests do not reach the users; answers to
//!   [`Watcher::request_progress`] do, as before. The engine learns each
//!   member's version once, with a `Status` call through the stack (a
//!   `PermissionDenied` answer, which etcd 3.5.28+ gives users who are not
//!   root, also means a fixed server), and trusts it only if the answer
//!   names the stream's member.
//! * **Older servers** answer progress requests at once, ahead of events
//!   still on their way (etcd issue 15220), so the engine sends none of its
//!   own there and no answer moves a next revision. The server's
//!   `--experimental-watch-progress-notify-interval` then bounds how stale
//!   a quiet watcher can be: **set it below your compaction retention** (for
//!   example `--experimental-watch-progress-notify-interval=1m` with
//!   `--auto-compaction-retention=5m`), or a quiet watcher may still end with
//!   `Compacted` after a fault.
//!
//! **Slow consumers.** Each watcher has a bounded buffer (1024 events by
//! default, [`WatchOptions::buffer`], [`WatchConfig::buffer`]). When a
//! response does not fit, the engine neither blocks the shared stream nor
//! drops anything silently: it **cancels that watcher on the server and
//! marks it lagging**. The events already buffered stay; the response that
//! did not fit is discarded (it is still in the server's history). When the
//! consumer has emptied the buffer, the engine re-creates the watcher from
//! its next revision, and the server replays what was missed from its
//! history. The slow watcher loses nothing; the other watchers of the stream
//! are not delayed at all. If the history was compacted meanwhile, the
//! lagging watcher ends with the compaction error. Progress notifications
//! are skipped (not queued) while a buffer is full: they carry no event.
//!
//! **Fragments.** With [`WatchOptions::fragment`] the server may split a
//! huge response; the pieces are joined before delivery, up to
//! [`WatchConfig::max_fragmented`] bytes (256 MiB by default): past it the
//! watcher is cancelled and ends with a `ResponseTooLarge` error rather
//! than the engine holding whatever a server keeps sending.
//!
//! # Auth: a stale stream token versus a real denial
//!
//! etcd checks a watch's permission when the watch is created, with the
//! token its stream was opened with. Once that token expires, the server
//! refuses every new create or resume on the stream (watchers already
//! created keep working), and it answers exactly as it answers a real
//! permission denial: a response with `created`, `canceled` and
//! `compact_revision = 0` (etcd 3.5.1 even uses the same `cancel_reason`
//! text for both; 3.4.23 answers with `watch_id = -1`). The engine never
//! reads `cancel_reason` to decide anything: server messages are not a
//! contract, they changed between versions, and etcd's maintainers rejected
//! a Go fix that compared them. Instead it uses structural signals shared
//! with the auth layer through [`etcd_tower_core::signal`]:
//!
//! 1. The auth layer puts the `TokenGeneration` of the token a stream was
//!    opened with into the stream's response extensions; the engine records
//!    it per stream (a stack without auth reports none).
//! 2. On a refused create, the engine runs **one probe for the episode**
//!    (one at a time, off the event loop: the other watchers keep
//!    delivering meanwhile): a unary count-only `Range` over the refused
//!    watcher's range, with `ReportTokenGeneration` in its extensions, so
//!    that the auth layer (which refreshes expired tokens on unary calls)
//!    reports the generation the call was finally sent with.
//! 3. The probe fails with `PermissionDenied`: a real denial; that watcher
//!    ends with a typed `PermissionDenied` error (or its `watch()` fails),
//!    nothing else changes. The probe succeeds with a *different*
//!    generation: the stream's token is stale; the engine re-opens the
//!    stream at once, without back-off (the auth layer attaches its current
//!    token), and resumes every watcher, the refused one included, from its
//!    next revision. The probe
//!    succeeds with the *same* generation (or none on both sides): the
//!    stream's token is valid, so the refusal was a real denial. Any other
//!    probe failure is treated as a stream fault (re-open with back-off).
//! 4. Before sending a new create on a stream, and when a create is
//!    refused, the engine compares the stream's generation with the newest
//!    one it knows of: from its probes, and from the auth layer's
//!    `CurrentTokenGeneration`, which every stream carries and which
//!    follows logins caused by any call (a unary call that met the expired
//!    token, a JWT replaced ahead of its expiry). If the stream's is older,
//!    it re-opens the stream at once with the current token instead of
//!    collecting a refusal: a new watch after a refresh is created in one
//!    round trip. These re-opens cannot loop: each carries a newer token
//!    than the stream it replaces.
//!
//! Because every create asks for an id of the engine's own, never 0, a
//! member (which echoes it) is also immune to the etcd 3.5.1 bug where a
//! refused create that asked for no id makes the server drop the healthy
//! watcher 0.
//!
//! # Metrics
//!
//! Through the `metrics` facade: `etcd_watch_events_delivered_total`
//! (events handed to watchers' buffers) and `etcd_watch_resumes_total`
//! (streams re-opened with watchers to resume, by `reason`: `disconnected`
//! or `auth`); the names are in [`etcd_tower_core::metric_names`].
#![deny(missing_docs)]

mod backoff;
mod config;
mod engine;
mod event;
mod fragment;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod ids;
mod options;
mod probe;
mod progress_order;
mod progress_requests;
mod queue;
mod revision;
mod stream_task;
mod watcher;

pub use config::WatchConfig;
pub use engine::WatchEngine;
/// Core's one computation of a prefix's range end.
pub use etcd_tower_core::range::prefix_end;
pub use event::{EventKind, WatchEvent};
pub use options::WatchOptions;
pub use watcher::{WatchBatch, Watcher};
