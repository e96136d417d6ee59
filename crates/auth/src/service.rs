//! The [`Auth`] service.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use etcd_tower_core::signal::{RenewToken, ReportTokenGeneration, TokenGeneration};
use etcd_tower_core::{EtcdError, EtcdRequest, EtcdResponse, Rpc};
use tokio::time::Instant;
use tower_service::Service;

use crate::future::{refresh_then_send, Attempt, ResponseFuture, Spare};
use crate::layer::AuthLayer;
use crate::token::{Credentials, Lookup, Shared};

/// Logs in to etcd with a user name and password and sends the token with
/// every call and every stream it opens; see the [crate docs](crate).
///
/// Clones share one token store: one `Authenticate` serves them all.
pub struct Auth<S> {
    inner: S,
    shared: Arc<Shared>,
    /// What the calls' futures keep for a refresh and a second try: the
    /// token store and a clone of `inner`, made at the first call or clone
    /// and shared with clones (again after `get_mut`), so that a call costs
    /// a reference count rather than a clone of the inner service.
    spare: OnceLock<Arc<Spare<S>>>,
}

impl<S> Auth<S> {
    /// Wraps `inner`, logging in as `user` with `password` (default
    /// settings; [`AuthLayer`] has the others).
    pub fn new(inner: S, user: impl Into<String>, password: impl Into<String>) -> Self {
        AuthLayer::new(user, password).wrap(inner)
    }

    pub(crate) fn from_parts(inner: S, credentials: Credentials, layer: &AuthLayer) -> Self {
        Auth {
            inner,
            shared: Arc::new(Shared::new(credentials, layer.settings())),
            spare: OnceLock::new(),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. Later calls' second tries (after a
    /// refresh) go to clones of the service as changed.
    pub fn get_mut(&mut self) -> &mut S {
        self.spare = OnceLock::new();
        &mut self.inner
    }

    /// Consumes the layer, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The generation of the current token: 0 before the first login, then
    /// one more with each token obtained.
    pub fn token_generation(&self) -> TokenGeneration {
        TokenGeneration(self.shared.generation())
    }

    /// A handle that changes the user this service (and its clones) logs
    /// in as, at run time; see [`CredentialsHandle`].
    pub fn credentials(&self) -> CredentialsHandle {
        CredentialsHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Changes the user and password of a live [`Auth`] service and its
/// clones (etcd-client's `update_user`).
///
/// After [`update`](Self::update) returns, every call logs in as the new
/// user first, then carries its token; calls already sent finish with
/// the token they carry. A watch stream the watch engine opens after the
/// change carries the new token, and before creating a watch on an older
/// stream the engine re-opens that stream with the new token, resuming its
/// watchers from their next revision (nothing lost). Watchers on a stream
/// opened before the change keep that stream, and the identity it was
/// opened with, until it is re-opened.
#[derive(Clone)]
pub struct CredentialsHandle {
    shared: Arc<Shared>,
}

impl CredentialsHandle {
    /// Logs in as `user` with `password` from now on. Waits for a login
    /// under way to end first, so that no token of the old user is taken
    /// up after this returns.
    pub async fn update(&self, user: impl Into<String>, password: impl Into<String>) {
        let credentials = Credentials {
            user: user.into(),
            password: zeroize::Zeroizing::new(password.into()),
        };
        self.shared.update_credentials(credentials).await;
    }

    /// The user calls log in as.
    pub fn user(&self) -> String {
        self.shared.user()
    }
}

impl fmt::Debug for CredentialsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsHandle")
            .field("user", &self.shared.user())
            .finish_non_exhaustive()
    }
}

impl<S: Clone> Auth<S> {
    fn spare(&self) -> &Arc<Spare<S>> {
        self.spare.get_or_init(|| {
            Arc::new(Spare {
                shared: Arc::clone(&self.shared),
                service: Mutex::new(self.inner.clone()),
            })
        })
    }
}

impl<S: Clone> Clone for Auth<S> {
    fn clone(&self) -> Self {
        Auth {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            spare: OnceLock::from(Arc::clone(self.spare())),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .field("user", &self.shared.user())
            .field("token_generation", &self.shared.generation())
            .finish_non_exhaustive()
    }
}

impl<S> Service<EtcdRequest> for Auth<S>
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = EtcdResponse;
    type Error = EtcdError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EtcdError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: EtcdRequest) -> ResponseFuture<S> {
        let rpc = request.rpc();
        if rpc == Rpc::Authenticate {
            // A login of the caller's own: no token, no refresh.
            return ResponseFuture::sent(self.inner.call(request), None);
        }
        if let Some(RenewToken(TokenGeneration(stale))) = request.meta.extensions.get() {
            // The caller saw this generation's token refused on a stream:
            // log in again first (a no-op when a newer token is held).
            self.shared.mark_stale(*stale);
        }
        let report = rpc.is_streaming()
            || request
                .meta
                .extensions
                .get::<ReportTokenGeneration>()
                .is_some();
        match self.shared.lookup(Instant::now) {
            Lookup::Ready(current) => {
                let attempt = Attempt {
                    spare: Arc::clone(self.spare()),
                    retry: request.try_clone(),
                    generation: current.generation,
                    report,
                };
                request.meta.token = current.token;
                ResponseFuture::sent(self.inner.call(request), Some(attempt))
            }
            Lookup::Refresh { seen, why } => {
                // Release what `poll_ready` reserved in the inner service
                // (a connection slot, a concurrency permit): the login may
                // take a while and needs a slot of its own. The slow path
                // polls its own clone ready.
                let fresh = self.inner.clone();
                drop(std::mem::replace(&mut self.inner, fresh));
                ResponseFuture::slow(Box::pin(refresh_then_send(
                    Arc::clone(&self.shared),
                    self.inner.clone(),
                    request,
                    seen,
                    why,
                    report,
                )))
            }
        }
    }
}
