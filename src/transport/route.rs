//! Where one call goes, when the round-robin choice is not enough.
//!
//! Two things a request can carry in its [`RequestMeta`]:
//!
//! * A [`TargetEndpoint`]: the call goes to that endpoint and nowhere else.
//!   Maintenance is per member (defragment, status, hash, alarms): a
//!   runbook that defragments each member in turn, or compares `HashKV`
//!   across members, must know which member answered. Such a call never
//!   fails over: a member that cannot be reached is an error, not a reason
//!   to ask another one.
//!   A bidirectional stream's response (Watch, LeaseKeepAlive) carries
//!   the `TargetEndpoint` it was opened on in its
//!   [`extensions`](crate::EtcdResponse::extensions), so that a caller can
//!   aim a later call at the stream's member (the watch engine asks that
//!   member for its version).
//! * [`TriedEndpoints`]: the endpoints earlier attempts of the same call
//!   went to. The retry layer gives every call it may repeat one of these;
//!   the transport records each endpoint it sends the call to and, for a
//!   later attempt, prefers one that was not tried. A read whose attempt
//!   timed out on a frozen member (its connection open, nothing answered)
//!   is therefore retried on another member, not on the same one again by
//!   the luck of round-robin.
//!
//! ```
//! use etcd_tower_core::proto::etcdserverpb::StatusRequest;
//! use etcd_tower_core::{EtcdRequest, TargetEndpoint};
//!
//! let mut status = EtcdRequest::new(StatusRequest {});
//! status.meta.endpoint = Some(TargetEndpoint::new("127.0.0.1:2379")?);
//! # Ok::<(), etcd_tower_core::EtcdError>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::endpoint::{parse_endpoint, Endpoint, EndpointSet};
use crate::error::{ErrorKind, EtcdError};
use crate::request::RequestMeta;

/// The one endpoint a call must go to; see the [module docs](self).
///
/// It names an endpoint as the transport was given it (`host:port`,
/// `http://host:port`, `https://host:port`, `unix://path` or
/// `unixs://path`): the address must match, and the scheme too when one is
/// written. A call aimed at an endpoint the transport does not have
/// fails before anything is sent, with
/// [`ErrorKind::InvalidEndpoint`].
#[derive(Clone, PartialEq, Eq)]
pub struct TargetEndpoint {
    endpoint: Arc<Endpoint>,
    /// The endpoint was written with its scheme, which must then match.
    scheme_given: bool,
}

impl TargetEndpoint {
    /// Parses an endpoint as [`Transport::builder`](crate::Transport::builder)
    /// does.
    pub fn new(endpoint: &str) -> Result<Self, EtcdError> {
        let parsed = parse_endpoint(endpoint, "http")?;
        // A socket is always written with its scheme.
        let scheme_given = endpoint.contains("://") || parsed.unix_path().is_some();
        Ok(TargetEndpoint {
            endpoint: Arc::new(parsed),
            scheme_given,
        })
    }

    /// One of the transport's endpoints, scheme included.
    pub(crate) fn of(endpoint: &Endpoint) -> Self {
        TargetEndpoint {
            endpoint: Arc::new(endpoint.clone()),
            scheme_given: true,
        }
    }

    /// The endpoint, parsed.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether `endpoint` (one of the transport's) is this one.
    pub(crate) fn is(&self, endpoint: &Endpoint) -> bool {
        (!self.scheme_given || self.endpoint.is_tls() == endpoint.is_tls())
            && self.endpoint.same_address(endpoint)
    }
}

impl fmt::Debug for TargetEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TargetEndpoint({})", self.endpoint)
    }
}

impl fmt::Display for TargetEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.endpoint.uri().and_then(|uri| uri.authority()) {
            Some(authority) => write!(f, "{}://{authority}", self.endpoint.scheme()),
            None => write!(f, "{}", self.endpoint),
        }
    }
}

/// The endpoints the attempts of one call went to, shared by every copy
/// of the request; see the [module docs](self).
///
/// Endpoints are numbered by their position in the transport; the first 64
/// are tracked (a cluster has 3, 5 or 7 members).
#[derive(Clone, Default)]
pub struct TriedEndpoints {
    bits: Arc<AtomicU64>,
}

impl TriedEndpoints {
    /// None tried yet.
    pub fn new() -> Self {
        TriedEndpoints::default()
    }

    /// How many endpoints were tried.
    pub fn count(&self) -> u32 {
        self.bits().count_ones()
    }

    pub(crate) fn bits(&self) -> u64 {
        self.bits.load(Ordering::Relaxed)
    }

    pub(crate) fn contains(&self, index: usize) -> bool {
        self.bits() & bit(index) != 0
    }

    pub(crate) fn record(&self, index: usize) {
        self.bits.fetch_or(bit(index), Ordering::Relaxed);
    }
}

impl fmt::Debug for TriedEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TriedEndpoints({:#b})", self.bits())
    }
}

/// Where the transport sends a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Choice {
    /// The endpoint's index.
    pub(super) index: usize,
    /// Whether the call may go to another endpoint when nothing could be
    /// sent to this one.
    pub(super) failover: bool,
}

/// Where a call goes: its [`TargetEndpoint`] if it has one; else the
/// endpoint `poll_ready` reserved, unless an earlier attempt of the call
/// went there and another endpoint was not tried yet. Records the choice
/// in the call's [`TriedEndpoints`].
pub(super) fn choose(
    endpoints: &EndpointSet,
    reserved: usize,
    meta: &RequestMeta,
) -> Result<Choice, EtcdError> {
    if let Some(target) = &meta.endpoint {
        let index = (0..endpoints.len())
            .find(|&i| target.is(endpoints.slot(i).endpoint()))
            .ok_or_else(|| {
                let known: Vec<String> = (0..endpoints.len())
                    .map(|i| endpoints.slot(i).endpoint().to_string())
                    .collect();
                EtcdError::client(
                    ErrorKind::InvalidEndpoint,
                    format!(
                        "the call is aimed at {target}, which is not one of the client's endpoints ({}); nothing was sent",
                        known.join(", ")
                    ),
                )
            })?;
        return Ok(Choice {
            index,
            failover: false,
        });
    }
    let index = match &meta.tried {
        Some(tried) if tried.contains(reserved) => {
            endpoints.pick_untried(tried.bits()).unwrap_or(reserved)
        }
        _ => reserved,
    };
    if let Some(tried) = &meta.tried {
        tried.record(index);
    }
    Ok(Choice {
        index,
        failover: true,
    })
}

/// The bit of endpoint `index`; 0 beyond the 64th.
pub(crate) fn bit(index: usize) -> u64 {
    u32::try_from(index)
        .ok()
        .and_then(|i| 1u64.checked_shl(i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_matches_its_endpoint_with_or_without_scheme() {
        let target = TargetEndpoint::new("127.0.0.1:2379").unwrap();
        assert!(target.is(&parse_endpoint("http://127.0.0.1:2379", "http").unwrap()));
        assert!(target.is(&parse_endpoint("https://127.0.0.1:2379", "http").unwrap()));
        assert!(!target.is(&parse_endpoint("127.0.0.1:2380", "http").unwrap()));
        let plain = TargetEndpoint::new("http://127.0.0.1:2379").unwrap();
        assert!(!plain.is(&parse_endpoint("127.0.0.1:2379", "https").unwrap()));
        assert_eq!(target.to_string(), "http://127.0.0.1:2379");
        assert!(TargetEndpoint::new("nowhere").is_err());
        #[cfg(unix)]
        {
            let socket = TargetEndpoint::new("unix:///run/etcd.sock").unwrap();
            assert!(socket.is(&parse_endpoint("unix:///run/etcd.sock", "https").unwrap()));
            assert!(!socket.is(&parse_endpoint("unixs:///run/etcd.sock", "http").unwrap()));
            assert!(!socket.is(&parse_endpoint("unix:///run/other.sock", "http").unwrap()));
            assert_eq!(socket.to_string(), "unix:///run/etcd.sock");
        }
    }

    #[test]
    fn copies_share_what_was_tried() {
        let tried = TriedEndpoints::new();
        let copy = tried.clone();
        copy.record(2);
        copy.record(70);
        assert!(tried.contains(2) && !tried.contains(0));
        assert_eq!(tried.count(), 1);
    }
}
