//! The request every service of the stack takes.

use std::fmt;

use http::HeaderValue;

use crate::error::{ErrorKind, EtcdError};
use crate::rpc::{RequestBody, Rpc};
use crate::transport::{TargetEndpoint, TriedEndpoints};

/// One call to etcd: which RPC with what payload ([`RequestBody`]), and the
/// per-call metadata layers set on the way down ([`RequestMeta`]).
///
/// ```
/// use etcd_tower_core::{proto::etcdserverpb::RangeRequest, EtcdRequest, Rpc};
///
/// let request = EtcdRequest::new(RangeRequest { key: "k".into(), ..Default::default() });
/// assert_eq!(request.rpc(), Rpc::Range);
/// assert!(request.rpc().is_read_only());
/// ```
pub struct EtcdRequest {
    /// The RPC and its payload.
    pub body: RequestBody,
    /// Metadata sent with the call and hints for layers.
    pub meta: RequestMeta,
}

impl EtcdRequest {
    /// A request with empty metadata.
    pub fn new(body: impl Into<RequestBody>) -> Self {
        EtcdRequest {
            body: body.into(),
            meta: RequestMeta::default(),
        }
    }

    /// Which RPC this request calls.
    pub fn rpc(&self) -> Rpc {
        self.body.rpc()
    }

    /// A copy of the request for a retry, or `None` for a bidirectional
    /// stream (its outbound messages can be consumed only once).
    pub fn try_clone(&self) -> Option<Self> {
        Some(EtcdRequest {
            body: self.body.try_clone()?,
            meta: self.meta.clone(),
        })
    }
}

impl From<RequestBody> for EtcdRequest {
    fn from(body: RequestBody) -> Self {
        EtcdRequest::new(body)
    }
}

impl fmt::Debug for EtcdRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdRequest")
            .field("body", &self.body)
            .field("meta", &self.meta)
            .finish()
    }
}

/// Per-call metadata. The transport sends `token` as gRPC metadata `token`
/// and `require_leader` as `hasleader: true`, and routes the call by
/// `endpoint` and `tried` (see [`transport::route`](crate::transport::route));
/// `extensions` carry typed values between layers and are never sent.
#[derive(Clone, Default)]
pub struct RequestMeta {
    /// The auth token to send (set by the auth layer).
    pub token: Option<AuthToken>,
    /// Ask the member to refuse the call (or cancel the stream) while it
    /// has no leader.
    pub require_leader: bool,
    /// The one endpoint this call must go to (no failover); `None`: the
    /// transport chooses.
    pub endpoint: Option<TargetEndpoint>,
    /// The endpoints earlier attempts of this call went to, so that a
    /// retry prefers another (set by the retry layer).
    pub tried: Option<TriedEndpoints>,
    /// Extra gRPC headers the transport sends after its own (see
    /// [`Metadata`](crate::Metadata) for what is refused).
    pub metadata: crate::Metadata,
    /// Typed values for layers (for example a per-call deadline).
    pub extensions: http::Extensions,
}

impl fmt::Debug for RequestMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMeta")
            .field("token", &self.token)
            .field("require_leader", &self.require_leader)
            .field("endpoint", &self.endpoint)
            .field("tried", &self.tried)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// An etcd auth token, ready to send. It never prints: its `Debug` output
/// is `AuthToken(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken {
    value: HeaderValue,
}

impl AuthToken {
    /// Wraps a token as the server issued it. Fails if the token is not
    /// valid as gRPC ASCII metadata.
    pub fn new(token: &str) -> Result<Self, EtcdError> {
        let mut value = HeaderValue::from_str(token).map_err(|_| {
            EtcdError::client(
                ErrorKind::InvalidRequest,
                "the auth token is not valid ASCII metadata",
            )
        })?;
        value.set_sensitive(true);
        Ok(AuthToken { value })
    }

    /// The token as metadata, for the transport.
    pub fn header_value(&self) -> &HeaderValue {
        &self.value
    }

    /// The token's text. Handle with care: it is a credential.
    pub fn expose(&self) -> &str {
        // `new` accepted only visible ASCII, so this cannot fail.
        self.value.to_str().unwrap_or_default()
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::PutRequest;

    #[test]
    fn tokens_never_print() {
        let mut request = EtcdRequest::new(PutRequest::default());
        request.meta.token = Some(AuthToken::new("secret.42").unwrap());
        let printed = format!("{request:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn passwords_never_print() {
        use crate::proto::etcdserverpb::AuthenticateRequest;
        let request = EtcdRequest::new(AuthenticateRequest {
            name: "root".into(),
            password: "hunter2".into(),
        });
        let printed = format!("{request:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn a_token_must_be_ascii_metadata() {
        assert!(AuthToken::new("bad\ntoken").is_err());
        assert_eq!(AuthToken::new("abc.1").unwrap().expose(), "abc.1");
    }
}
