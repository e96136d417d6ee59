//! [`Metadata`]: extra gRPC headers a call carries, checked before they
//! can reach the wire.
//!
//! A proxy in front of etcd may want a header of its own (a tenant, a
//! route), and tracing wants its context propagated (`traceparent`). The
//! transport writes a request's [`RequestMeta::metadata`](crate::RequestMeta)
//! as HTTP/2 headers after its own. What it must not let through is a
//! header that changes the call's meaning or smuggles another one in:
//!
//! * names are lower-case ASCII letters, digits, `-`, `_` and `.` (gRPC's
//!   rule), so no pseudo-header (`:path`) and no upper case;
//! * the names gRPC and HTTP/2 own are refused: `grpc-*`, `content-type`,
//!   `te`, `host`, and the connection-level `connection`, `keep-alive`,
//!   `proxy-connection`, `transfer-encoding`, `upgrade`;
//! * the names the stack sets itself are refused: `token` and
//!   `authorization` (the auth layer's), `hasleader` (require-leader);
//! * binary metadata (`-bin` names) is not supported;
//! * values are visible ASCII and spaces: no CR or LF, so no header
//!   injection.
//!
//! A refused name or value is an [`ErrorKind::InvalidMetadata`] naming it,
//! before anything is sent.
//!
//! ```
//! use etcd_tower_core::{ErrorKind, Metadata};
//!
//! let mut metadata = Metadata::new();
//! metadata.insert("x-tenant", "blue")?;
//! metadata.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
//! let refused = metadata.insert("token", "forged").unwrap_err();
//! assert_eq!(refused.kind(), &ErrorKind::InvalidMetadata);
//! # Ok::<(), etcd_tower_core::EtcdError>(())
//! ```

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{ErrorKind, EtcdError};

/// Names no caller may set: gRPC's and HTTP/2's own, and those the stack
/// writes itself.
const RESERVED: &[&str] = &[
    "content-type",
    "te",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "token",
    "authorization",
    "hasleader",
];

/// Extra gRPC headers for a call; see the [module docs](self).
///
/// Most calls carry none, so an empty one is a null pointer: every
/// request pays 8 bytes for it, not a `HeaderMap`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    headers: Option<Box<HeaderMap>>,
}

impl Metadata {
    /// No metadata.
    pub fn new() -> Self {
        Metadata::default()
    }

    /// Adds `name: value` (a name may repeat: each value is sent). Fails
    /// with [`ErrorKind::InvalidMetadata`] for a name or value the
    /// [module docs](self) refuse.
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), EtcdError> {
        let name = check_name(name)?;
        let value = HeaderValue::from_str(value)
            .ok()
            .filter(|value| value.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)))
            .ok_or_else(|| {
                invalid(format!(
                    "the value of metadata {name} must be visible ASCII and spaces: {value:?}"
                ))
            })?;
        self.headers
            .get_or_insert_with(Box::default)
            .append(name, value);
        Ok(())
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.headers
            .as_ref()
            .is_none_or(|headers| headers.is_empty())
    }

    /// Every name and value, in the order they were added per name.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().flat_map(|headers| headers.iter())
    }

    /// Adds every header of `other` (checked when it was built).
    pub fn extend(&mut self, other: &Metadata) {
        for (name, value) in other.iter() {
            self.headers
                .get_or_insert_with(Box::default)
                .append(name.clone(), value.clone());
        }
    }

    /// Writes the metadata into a request's headers.
    pub(crate) fn write_to(&self, headers: &mut HeaderMap) {
        for (name, value) in self.iter() {
            headers.append(name.clone(), value.clone());
        }
    }
}

impl fmt::Debug for Metadata {
    /// Names only: a value may be a credential of the proxy it is for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.headers.iter().flat_map(|headers| headers.keys()))
            .finish()
    }
}

fn check_name(name: &str) -> Result<HeaderName, EtcdError> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b);
    if name.is_empty() || !name.bytes().all(allowed) {
        return Err(invalid(format!(
            "metadata name {name:?} must be lower-case ASCII letters, digits, '-', '_' or '.'"
        )));
    }
    if name.starts_with("grpc-") || RESERVED.contains(&name) {
        return Err(invalid(format!(
            "metadata name {name:?} is reserved for gRPC, HTTP/2 or the client itself"
        )));
    }
    if name.ends_with("-bin") {
        return Err(invalid(format!(
            "metadata name {name:?} is binary metadata, which is not supported"
        )));
    }
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(format!("metadata name {name:?} is not a valid header name")))
}

fn invalid(message: String) -> EtcdError {
    EtcdError::client(ErrorKind::InvalidMetadata, message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn good_names_and_values_are_kept_in_order() {
        let mut metadata = Metadata::new();
        metadata.insert("x-a", "1").unwrap();
        metadata.insert("x-a", "2").unwrap();
        metadata.insert("trace.id_9", "with spaces ok").unwrap();
        let pairs: Vec<_> = metadata
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [("x-a", "1"), ("x-a", "2"), ("trace.id_9", "with spaces ok")]
        );
        assert_eq!(format!("{metadata:?}"), r#"{"x-a", "trace.id_9"}"#);
    }

    #[test]
    fn reserved_malformed_and_injected_are_refused_naming_the_bad_part() {
        for name in [
            "",
            "X-Upper",
            ":path",
            "has space",
            "new\nline",
            "grpc-timeout",
            "content-type",
            "te",
            "token",
            "authorization",
            "hasleader",
            "connection",
            "trace-bin",
        ] {
            let error = Metadata::new().insert(name, "v").unwrap_err();
            assert_eq!(error.kind(), &ErrorKind::InvalidMetadata, "{name:?}");
            assert_eq!(error.sent(), crate::Sent::NotSent);
            assert!(error.to_string().contains(&format!("{name:?}")), "{error}");
        }
        for value in ["a\r\nx-injected: 1", "tab\there", "é", "\u{7f}"] {
            let error = Metadata::new().insert("x-ok", value).unwrap_err();
            assert_eq!(error.kind(), &ErrorKind::InvalidMetadata, "{value:?}");
            assert!(error.to_string().contains("x-ok"), "{error}");
        }
    }
}
