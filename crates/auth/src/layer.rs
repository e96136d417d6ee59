//! The [`AuthLayer`].

use std::fmt;
use std::time::Duration;

use tower_layer::Layer;
use zeroize::Zeroizing;

use crate::service::Auth;
use crate::token::{Credentials, Settings};

/// Applies [`Auth`] to a service: log in as a user, send the token with
/// every call and stream, refresh it when it expires.
///
/// Each service the layer builds has its own token store, shared by that
/// service's clones. The password never appears in `Debug` output, and
/// every copy the layer and its services hold is wiped from memory when it
/// is dropped ([`zeroize`](https://docs.rs/zeroize)).
///
/// ```
/// use std::time::Duration;
/// use etcd_tower_auth::AuthLayer;
///
/// let layer = AuthLayer::new("root", "s3cret")
///     .jwt_refresh_at(0.75)
///     .failure_backoff(Duration::from_secs(2));
/// assert!(!format!("{layer:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct AuthLayer {
    user: String,
    password: Zeroizing<String>,
    settings: Settings,
}

/// At which fraction of a JWT's remaining lifetime it is refreshed, by default.
pub const DEFAULT_JWT_REFRESH_AT: f64 = 0.8;

/// How long a refused login (wrong password) is remembered, by default.
pub const DEFAULT_FAILURE_BACKOFF: Duration = Duration::from_secs(1);

impl AuthLayer {
    /// Logs in as `user` with `password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        AuthLayer {
            user: user.into(),
            password: Zeroizing::new(password.into()),
            settings: Settings {
                jwt_refresh_at: DEFAULT_JWT_REFRESH_AT,
                failure_backoff: DEFAULT_FAILURE_BACKOFF,
            },
        }
    }

    /// For JWT tokens: refresh once this fraction of the token's remaining
    /// lifetime (from when it was obtained to its `exp`) has passed, so
    /// that calls rarely meet an expired token. Clamped to `0.1..=0.95`.
    /// Default [`DEFAULT_JWT_REFRESH_AT`]. Simple tokens, whose lifetime
    /// the client cannot know, are refreshed only when rejected.
    pub fn jwt_refresh_at(mut self, fraction: f64) -> Self {
        self.settings.jwt_refresh_at = if fraction.is_nan() {
            DEFAULT_JWT_REFRESH_AT
        } else {
            fraction.clamp(0.1, 0.95)
        };
        self
    }

    /// How long a login the server refused (a wrong password) is
    /// remembered: calls in that window fail at once with the same error
    /// instead of sending another `Authenticate` (a Raft write). Default
    /// [`DEFAULT_FAILURE_BACKOFF`].
    pub fn failure_backoff(mut self, backoff: Duration) -> Self {
        self.settings.failure_backoff = backoff;
        self
    }

    pub(crate) fn settings(&self) -> Settings {
        self.settings
    }

    pub(crate) fn wrap<S>(&self, inner: S) -> Auth<S> {
        let credentials = Credentials {
            user: self.user.clone(),
            password: self.password.clone(),
        };
        Auth::from_parts(inner, credentials, self)
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        self.wrap(inner)
    }
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("jwt_refresh_at", &self.settings.jwt_refresh_at)
            .field("failure_backoff", &self.settings.failure_backoff)
            .finish()
    }
}
