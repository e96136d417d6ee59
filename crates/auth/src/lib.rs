//! Authentication for etcd-tower: log in with a user name and password,
//! send the token with every call and every stream, refresh it when it
//! expires, and tell the watch engine which token each stream carries.
//!
//! # Why a layer
//!
//! etcd's `Authenticate` is a Raft write: cheap once per login, far too
//! expensive once per request. Its token is sent as gRPC metadata `token`
//! on every unary call and on every stream *open* (the server reads a
//! stream's token once, when it opens). Tokens die: simple tokens after
//! `--auth-token-ttl` of disuse (300 s by default, and every restart of a
//! member forgets them all), JWT tokens at their `exp` claim. [`Auth`] hides
//! all of that below one `Service<EtcdRequest>`:
//!
//! * **One login for all.** Every clone of an [`Auth`] service shares one
//!   token store (an `Arc`). The first call logs in; the others wait for it.
//! * **Refresh once, retry once.** A call rejected for its token
//!   ([`ErrorKind::InvalidAuthToken`], i.e. `Unauthenticated`, or the
//!   `InvalidArgument` entries [`ErrorKind::AuthOldRevision`] and
//!   [`ErrorKind::UserEmpty`], all rejected by the server before anything is
//!   applied) gets a new token and is sent once more, on a clone of the
//!   inner service polled ready again. A second rejection is returned, never
//!   looped on.
//! * **Single flight.** A refresh holds a `tokio::sync::Mutex` and says
//!   which token *generation* it saw fail. Calls that queue behind it find a
//!   newer generation and take that token: a hundred calls failing with the
//!   same expired token cause exactly one `Authenticate`.
//! * **JWT ahead of time.** A JWT's payload (base64url JSON) carries `exp`;
//!   the layer refreshes it once [`AuthLayer::jwt_refresh_at`] of its
//!   remaining lifetime (80 % by default) has passed, so calls rarely meet
//!   an expired token. A simple token's lifetime cannot be known by the
//!   client: it is refreshed only when rejected.
//! * **A wrong password is an answer, not a loop.** A refused login
//!   ([`ErrorKind::AuthFailed`]) is returned to the caller and remembered
//!   for [`AuthLayer::failure_backoff`] (1 s by default): calls in that
//!   window fail at once with the same error; later calls try again.
//! * **Auth disabled.** If the server answers `Authenticate` with
//!   [`ErrorKind::AuthNotEnabled`], calls go without a token; if auth is
//!   enabled later, the first `UserEmpty` rejection triggers a login.
//! * **Secrets never print, and do not linger.** The password and the token
//!   appear in no `Debug` output and no log line, at any level
//!   ([`AuthToken`](etcd_tower_core::AuthToken) redacts itself, and the
//!   token goes to the transport as a sensitive header value; the
//!   messages that carry a password or a token redact it in their `Debug`;
//!   this crate's `Debug` impls are written by hand). The facade's
//!   `tests/secrets.rs` runs the whole stack at TRACE through logins,
//!   expiry, refresh, a restart and watch resume and finds neither. The
//!   password the layer keeps, and the token text of a login's answer, are
//!   wiped from memory when dropped (`zeroize`); the copy a login request
//!   carries is encoded by the transport and dropped, and the token itself
//!   lives on in the header value every call shares (`bytes`, which cannot
//!   be wiped) until the last call that holds it ends.
//!
//! * **Counted.** Every `Authenticate` the layer sends counts once in
//!   `etcd_auth_token_refreshes_total` (through the `metrics` facade, so
//!   with whatever recorder the application installed), by `outcome`
//!   (`ok`, `error`) and `reason`: `no_token` (the first login, or after a
//!   stream reported its token dead), `rejected` (the server refused the
//!   token a call carried) or `expiring` (a JWT replaced ahead of its
//!   `exp`). Calls that share a refresh, or fail on a remembered refusal,
//!   send nothing and count nothing; see
//!   [`AUTH_TOKEN_REFRESHES_TOTAL`](etcd_tower_core::metric_names::AUTH_TOKEN_REFRESHES_TOTAL).
//!
//! The common path (a token at hand, the call succeeds) does not allocate:
//! the future is the inner future plus a little state. Logging in and
//! refreshing are boxed; they happen once per token, not once per call.
//!
//! # Streams
//!
//! Opening a stream (Watch, LeaseKeepAlive, Snapshot, Observe) is a call
//! like any other and carries the current token. The server-streaming ones
//! (Snapshot, Observe) can be sent again and are retried like unary calls.
//! The bidirectional ones (Watch, LeaseKeepAlive) cannot: their outbound
//! messages can be consumed only once. If such an open is rejected for its
//! token, the layer refreshes (single-flight, as above) and returns the
//! rejection; the caller reopens, and the new stream carries the new token.
//! If a stream later *ends* with a token error, the layer marks that token
//! stale, so the next call or open logs in first instead of reusing it.
//!
//! # Watches that survive token expiry
//!
//! This is the failure etcd's official Go client still has. The server
//! checks a watch's permission when the watch is *created* on a stream,
//! with the token the stream was opened with. Once that token has expired,
//! every later create or resume on the stream is rejected, while the
//! watchers already there keep delivering and unary calls (which can log
//! in again) keep working. The rejection is not a gRPC status but a
//! `WatchResponse` (`created` and `canceled`) whose `cancel_reason` text
//! says `permission denied` on etcd 3.5.1 both for an expired token *and*
//! for a genuine denial, and `invalid auth token` on 3.4.22+/3.5.6+. The Go
//! client's attempted fix compared that text; it was reverted, because the
//! text is not a contract and differs across versions.
//!
//! This crate and the watch engine (`etcd-tower-watch`) solve it with
//! structural signals from [`etcd_tower_core::signal`], and no message
//! text at all:
//!
//! 1. **Which token a stream carries, and which one is current.** Every
//!    stream the layer opens has a
//!    [`TokenGeneration`](etcd_tower_core::signal::TokenGeneration) in its
//!    response extensions: the generation of the token it was opened with.
//!    Beside it is the layer's
//!    [`CurrentTokenGeneration`](etcd_tower_core::signal::CurrentTokenGeneration),
//!    a cell that follows every later login, whichever call caused it. When
//!    a unary call has replaced an expired token, the engine sees that its
//!    stream's token is older before it sends a create there, and re-opens
//!    the stream at once with the current token: the create is never
//!    refused, and nothing needs a probe.
//! 2. **Whether that token is still the current one, decided by status
//!    code.** When a create is rejected, the engine sends one probe through
//!    the stack: a count-only `Range` on the watcher's key, with
//!    [`ReportTokenGeneration`](etcd_tower_core::signal::ReportTokenGeneration)
//!    in its request extensions. Unary calls get proper statuses: if the
//!    probe's token has expired, the server answers `Unauthenticated`, this
//!    layer refreshes and retries, and the probe's response reports the
//!    generation it was finally sent with.
//!    * A generation **different** from the stream's means the stream's
//!      token is outdated: the engine reopens the stream (the open carries
//!      the current token) and resumes every watcher from its next
//!      revision. Nothing is lost or repeated.
//!    * `PermissionDenied` on the probe means the user may really not read
//!      that key: that watch alone fails with `PermissionDenied`; the
//!      stream's other watchers are untouched.
//!    * The **same** generation proves less than it seems: simple tokens
//!      live in each member's memory, expire on each member's own clock and
//!      are forgotten by a restart, so the probe may have reached a member
//!      that still knows a token the stream's member has dropped. The
//!      engine then asks for a new token once, with
//!      [`RenewToken`](etcd_tower_core::signal::RenewToken) on a second
//!      probe (this layer logs in again unless it already holds a newer
//!      token), and reopens the stream with it. A member applies the new
//!      token only when it applies the `Authenticate` from the Raft log, so
//!      a lagging member may still refuse it: a rejection on a stream
//!      opened with the renewed token is re-checked on a new stream a
//!      bounded number of times (no new login) before it is reported as
//!      `PermissionDenied`.
//!
//! Each rejection episode causes at most one `Authenticate` (the probe's
//! refresh or the renewal, shared with every other call failing with the
//! same token): one refresh per episode, never a loop. A genuine denial of
//! a key the user may not read costs no `Authenticate` at all, since its
//! probe fails with `PermissionDenied`, which is not a token error.
//!
//! Why never the message text: it is not part of etcd's API, it differs
//! between versions (3.5.1 says `permission denied` for an expired token),
//! and a client that matches it breaks silently when it changes. Status
//! codes and which token a stream was opened with are facts the client
//! controls or the protocol guarantees. (The error *kind* used here comes
//! from core, which names etcd's catalogue entries by gRPC code first and
//! the catalogue's fixed message only among entries sharing a code, the
//! way every official client identifies them.)
//!
//! # Where it goes in a stack
//!
//! Inside the retry layer (and a per-attempt timeout), next to the
//! transport, as in the facade's
//! [layer order](../etcd_tower/index.html#layer-order), the one description
//! of the stack: every attempt the retry layer sends then carries the
//! current token, this layer's refresh-and-send-again happens inside one
//! attempt, and its `Authenticate` calls go straight to the transport.
//!
//! # Certificate (CN) authentication
//!
//! With `--client-cert-auth`, etcd takes the user name from the client
//! certificate's common name and needs no token. Configure the transport's
//! TLS identity ([`TlsOptions::identity`](etcd_tower_core::TlsOptions::identity))
//! and leave this layer out of the stack (`ServiceBuilder::option_layer(None::<AuthLayer>)`
//! in a stack that sometimes has a password): there is nothing for it to
//! do, and without it no stream reports a token generation, which the watch
//! engine reads as "rejections are real denials".
//!
//! # Example
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower_core::EtcdError> {
//! use etcd_tower_auth::AuthLayer;
//! use etcd_tower_core::proto::etcdserverpb::{PutRequest, RangeRequest, RangeResponse};
//! use etcd_tower_core::{EtcdRequest, Transport};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let transport = Transport::builder(["127.0.0.1:2379"]).build()?;
//! let mut client = ServiceBuilder::new()
//!     .layer(AuthLayer::new("root", "s3cret"))
//!     .service(transport);
//!
//! // The first call logs in; the token then goes with every call.
//! let put = PutRequest { key: "k".into(), value: "v".into(), ..Default::default() };
//! client.ready().await?.call(EtcdRequest::new(put)).await?;
//! let get = RangeRequest { key: "k".into(), ..Default::default() };
//! let range = RangeResponse::try_from(client.ready().await?.call(EtcdRequest::new(get)).await?)?;
//! assert_eq!(range.kvs[0].value, "v");
//! # Ok(())
//! # }
//! ```
//!
//! [`ErrorKind::InvalidAuthToken`]: etcd_tower_core::ErrorKind::InvalidAuthToken
//! [`ErrorKind::AuthOldRevision`]: etcd_tower_core::ErrorKind::AuthOldRevision
//! [`ErrorKind::UserEmpty`]: etcd_tower_core::ErrorKind::UserEmpty
//! [`ErrorKind::AuthFailed`]: etcd_tower_core::ErrorKind::AuthFailed
//! [`ErrorKind::AuthNotEnabled`]: etcd_tower_core::ErrorKind::AuthNotEnabled
#![deny(missing_docs)]

pub mod future;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod jwt;
mod layer;
mod service;
mod stream;
mod token;

pub use future::ResponseFuture;
pub use layer::{AuthLayer, DEFAULT_FAILURE_BACKOFF, DEFAULT_JWT_REFRESH_AT};
pub use service::{Auth, CredentialsHandle};

#[cfg(test)]
mod tests;
