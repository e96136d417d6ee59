//! The token store every clone of an [`Auth`](crate::Auth) service shares,
//! and the single-flight refresh.
//!
//! The store holds the current token and its *generation*, a number that
//! grows by one with every token obtained. Calls read the token under a
//! short, never contended-for-long `std::sync::Mutex`. A refresh takes a
//! `tokio::sync::Mutex` for its whole duration, so that concurrent refreshes
//! queue behind the first; each says which generation it saw fail, and a
//! refresh that finds a newer generation than the one it saw fail takes that
//! token instead of logging in again. That is how N calls failing with the
//! same expired token cause exactly one `Authenticate`.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use etcd_tower_core::metric_names as names;
use etcd_tower_core::proto::etcdserverpb::{AuthenticateRequest, AuthenticateResponse};
use etcd_tower_core::signal::{CurrentTokenGeneration, TokenGeneration};
use etcd_tower_core::{AuthToken, Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, Sent};
use tokio::time::Instant;
use tower_service::Service;
use zeroize::{Zeroize, Zeroizing};

use crate::jwt;

/// What a call needs from the store: the token to send (none when the
/// server has auth disabled) and its generation.
#[derive(Clone)]
pub(crate) struct Current {
    pub(crate) token: Option<AuthToken>,
    pub(crate) generation: u64,
}

/// What [`Shared::lookup`] found.
pub(crate) enum Lookup {
    /// Send with this token.
    Ready(Current),
    /// Refresh first.
    Refresh {
        /// The generation that was current (0 before the first login).
        seen: u64,
        /// Why.
        why: Why,
    },
}

/// Why a refresh is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    /// There is no usable token: never logged in, or found stale.
    Missing,
    /// The server rejected the token of generation `seen`.
    Rejected,
    /// A JWT nears its `exp`; the old token still works.
    Expiring,
}

/// The user name and password. Never printed; the password is wiped from
/// memory when dropped.
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Tunables, from the layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// At which fraction of a JWT's remaining lifetime to refresh it.
    pub(crate) jwt_refresh_at: f64,
    /// How long a failed login (wrong password) is remembered.
    pub(crate) failure_backoff: Duration,
}

/// The state shared by all clones of one `Auth` service.
pub(crate) struct Shared {
    /// Replaced by `update_credentials`, under the refresh lock.
    credentials: Mutex<Credentials>,
    settings: Settings,
    state: Mutex<TokenState>,
    /// The generation of `state.token`, published to the watch engine
    /// through every stream's response extensions.
    current: CurrentTokenGeneration,
    /// Held for the whole of a refresh: the single flight.
    refresh: tokio::sync::Mutex<()>,
}

struct TokenState {
    /// The generation of `token`: 0 before the first login.
    generation: u64,
    /// The last token obtained; `None` also when the server said auth is
    /// not enabled.
    token: Option<AuthToken>,
    /// Whether `token` may be sent: false before the first login and once a
    /// stream reported it rejected.
    usable: bool,
    /// For a JWT: when to refresh it ahead of its expiry.
    refresh_at: Option<Instant>,
    /// A login the server refused (wrong password), and when.
    failure: Option<(Instant, EtcdError)>,
}

impl TokenState {
    fn current(&self) -> Current {
        Current {
            token: self.token.clone(),
            generation: self.generation,
        }
    }

    fn expiring(&self, now: Instant) -> bool {
        self.refresh_at.is_some_and(|at| now >= at)
    }

    /// As `expiring`, reading the clock only for a token that has a
    /// refresh time (a JWT): a simple token costs no clock read.
    fn expiring_with(&self, now: impl FnOnce() -> Instant) -> bool {
        self.refresh_at.is_some_and(|at| now() >= at)
    }
}

impl Shared {
    pub(crate) fn new(credentials: Credentials, settings: Settings) -> Self {
        Shared {
            credentials: Mutex::new(credentials),
            settings,
            state: Mutex::new(TokenState {
                generation: 0,
                token: None,
                usable: false,
                refresh_at: None,
                failure: None,
            }),
            current: CurrentTokenGeneration::default(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TokenState> {
        // A panic while holding the lock cannot leave the state half
        // written (every update is a few plain assignments).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token to send now, or why a refresh must come first. `now` is
    /// called only when the token has an expiry to check.
    pub(crate) fn lookup(&self, now: impl FnOnce() -> Instant) -> Lookup {
        let state = self.lock();
        if !state.usable {
            return Lookup::Refresh {
                seen: state.generation,
                why: Why::Missing,
            };
        }
        if state.expiring_with(now) {
            return Lookup::Refresh {
                seen: state.generation,
                why: Why::Expiring,
            };
        }
        Lookup::Ready(state.current())
    }

    /// The current generation (0 before the first login).
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The cell that follows the current generation (see
    /// [`CurrentTokenGeneration`]).
    pub(crate) fn current_generation(&self) -> &CurrentTokenGeneration {
        &self.current
    }

    /// A stream opened with `generation` failed with a token error: the
    /// next call logs in again (unless a newer token came meanwhile).
    pub(crate) fn mark_stale(&self, generation: u64) {
        let mut state = self.lock();
        if state.generation == generation && state.usable {
            tracing::debug!(generation, "etcd auth token reported stale by a stream");
            state.usable = false;
        }
    }

    /// The user name (for `Debug` and logs).
    pub(crate) fn user(&self) -> String {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .user
            .clone()
    }

    /// Logs in as another user from now on: waits for a login under way
    /// to end, swaps the credentials, and makes the next call log in
    /// with them (a login they failed is forgotten too). Calls already
    /// sent finish with the token they carry.
    pub(crate) async fn update_credentials(&self, credentials: Credentials) {
        let _single_flight = self.refresh.lock().await;
        let user = credentials.user.clone();
        *self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = credentials;
        let mut state = self.lock();
        // A generation of its own for "the old user's token is retired":
        // the watch engine, seeing it newer than a stream's, re-opens that
        // stream (logging in as the new user) before its next create.
        state.generation += 1;
        state.token = None;
        state.usable = false;
        state.failure = None;
        state.refresh_at = None;
        self.current.advance(TokenGeneration(state.generation));
        tracing::debug!(%user, "etcd credentials replaced; the next call logs in with them");
    }

    /// Makes sure a token newer than generation `seen` exists, logging in
    /// (once, for all concurrent callers) if none does. `inner` carries the
    /// `Authenticate` call, without a token.
    pub(crate) async fn refresh<S>(
        &self,
        inner: S,
        seen: u64,
        why: Why,
    ) -> Result<Current, EtcdError>
    where
        S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
    {
        let _single_flight = self.refresh.lock().await;
        {
            let mut state = self.lock();
            if state.usable
                && (state.generation != seen
                    || (why == Why::Expiring && !state.expiring(Instant::now())))
            {
                // Someone else refreshed while we waited.
                return Ok(state.current());
            }
            if let Some((at, error)) = &state.failure {
                if at.elapsed() < self.settings.failure_backoff {
                    if why == Why::Expiring && state.usable {
                        // The old JWT still works: use it until the backoff ends.
                        state.refresh_at = Some(*at + self.settings.failure_backoff);
                        return Ok(state.current());
                    }
                    return Err(error.clone());
                }
            }
        }
        tracing::debug!(
            user = %self.user(),
            generation = seen,
            ?why,
            "authenticating to etcd"
        );
        let result = self.authenticate(inner).await;
        count_refresh(why, result.is_ok());
        let mut state = self.lock();
        match result {
            Ok(token) => {
                state.generation += 1;
                state.refresh_at = token.as_ref().and_then(|t| self.plan_refresh(t));
                state.token = token;
                state.usable = true;
                state.failure = None;
                self.current.advance(TokenGeneration(state.generation));
                tracing::debug!(
                    generation = state.generation,
                    jwt = state.refresh_at.is_some(),
                    "obtained an etcd auth token"
                );
                Ok(state.current())
            }
            Err(error) => {
                if is_lasting_refusal(&error) {
                    tracing::warn!(user = %self.user(), %error, "etcd refused the credentials");
                    // A wrong password stays wrong for a while: don't ask
                    // again (a Raft write each time) on every call.
                    state.failure = Some((Instant::now(), error.clone()));
                } else {
                    // Not a verdict on the credentials: the login got no
                    // answer (no connection, a timeout, no leader). The
                    // caller gets the error itself, with its kind.
                    tracing::debug!(user = %self.user(), %error, "etcd login did not complete");
                }
                if why == Why::Rejected && state.generation == seen {
                    // The server said this token is dead: later calls log
                    // in first rather than send it again.
                    state.usable = false;
                }
                if why == Why::Expiring && state.usable && state.generation == seen {
                    // The old JWT is still valid: keep using it, try again later.
                    state.refresh_at = Some(Instant::now() + self.settings.failure_backoff);
                    return Ok(state.current());
                }
                Err(error)
            }
        }
    }

    /// When to refresh `token` ahead of time: for a JWT, at a fraction of
    /// its remaining lifetime; never for a simple token.
    fn plan_refresh(&self, token: &AuthToken) -> Option<Instant> {
        let exp = jwt::expiry(token.expose())?;
        let delay = jwt::refresh_delay(exp, SystemTime::now(), self.settings.jwt_refresh_at)?;
        Some(Instant::now() + delay)
    }

    /// One `Authenticate` call through `inner`. `Ok(None)` when the server
    /// has authentication disabled: calls then go without a token.
    async fn authenticate<S>(&self, mut inner: S) -> Result<Option<AuthToken>, EtcdError>
    where
        S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
    {
        // The request's copy of the password is the transport's once sent
        // (it encodes and drops it); the copies this layer keeps are wiped.
        let request = {
            let credentials = self
                .credentials
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            EtcdRequest::new(AuthenticateRequest {
                name: credentials.user.clone(),
                password: credentials.password.to_string(),
            })
        };
        poll_fn(|cx| inner.poll_ready(cx)).await?;
        match inner.call(request).await {
            Ok(response) => {
                let mut response = AuthenticateResponse::try_from(response)?;
                let token = AuthToken::new(&response.token).map(Some);
                response.token.zeroize();
                token
            }
            Err(error) if *error.kind() == ErrorKind::AuthNotEnabled => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Shared")
            .field("user", &self.user())
            .field("generation", &state.generation)
            .field("usable", &state.usable)
            .field("jwt", &state.refresh_at.is_some())
            .finish_non_exhaustive()
    }
}

/// Counts one `Authenticate` the layer sent, in
/// [`AUTH_TOKEN_REFRESHES_TOTAL`](names::AUTH_TOKEN_REFRESHES_TOTAL) by
/// `outcome` and `reason`. Refreshes that found a newer token, or a refusal
/// still remembered, sent nothing and are not counted.
fn count_refresh(why: Why, obtained: bool) {
    let outcome = if obtained {
        names::OUTCOME_OK
    } else {
        names::OUTCOME_ERROR
    };
    let reason = match why {
        Why::Missing => names::REFRESH_NO_TOKEN,
        Why::Rejected => names::REFRESH_REJECTED,
        Why::Expiring => names::REFRESH_EXPIRING,
    };
    metrics::counter!(
        names::AUTH_TOKEN_REFRESHES_TOTAL,
        names::LABEL_OUTCOME => outcome,
        names::LABEL_REASON => reason,
    )
    .increment(1);
}

/// Whether a failed login is an answer that asking again right away would
/// not change (wrong password, unknown user), rather than a transient
/// failure (no leader, connection lost).
fn is_lasting_refusal(error: &EtcdError) -> bool {
    error.sent() == Sent::Rejected
        && matches!(
            error.code(),
            Code::InvalidArgument | Code::FailedPrecondition | Code::PermissionDenied
        )
}

/// Whether an error says the token (not the user's permissions) was the
/// problem, so that a new token and a second try can help. The server
/// rejects these before applying anything. Decided by kind, which core
/// derives from the gRPC code and etcd's error catalogue.
pub(crate) fn is_token_error(error: &EtcdError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::InvalidAuthToken | ErrorKind::AuthOldRevision | ErrorKind::UserEmpty
    )
}
