//! [`CallOptions`]: what one handle's calls carry beyond the builder's
//! defaults.

use std::time::Duration;

use etcd_tower_core::{EtcdRequest, Metadata, TargetEndpoint};
use etcd_tower_timeout::{AttemptTimeout, CallTimeout};

/// Per-call settings: deadlines, require-leader, one endpoint, metadata.
///
/// The builder sets deadlines for every call; a runbook step or a single
/// slow request needs its own, and per-member maintenance needs to say
/// which member. Options travel in the request's metadata, so every layer
/// of the stack reads them: the whole-call `TimeoutLayer` a [`CallTimeout`],
/// the per-attempt one an [`AttemptTimeout`], the transport the endpoint,
/// the require-leader flag and the extra headers. A value a request already carries wins over the
/// handle's options.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), etcd_tower::EtcdError> {
/// use std::time::Duration;
/// use etcd_tower::{CallOptions, Client};
///
/// let client = Client::builder(["127.0.0.1:2379", "127.0.0.1:22379"])
///     .timeout(Duration::from_secs(3))
///     .attempt_timeout(Duration::from_secs(1))
///     .connect()
///     .await?;
/// // This handle's calls may take 30 s, and need a leader.
/// let patient = client.with_options(CallOptions::new().timeout(Duration::from_secs(30)).require_leader());
/// patient.get("config").await?;
/// // Status of one member, whatever the round-robin would have picked.
/// let status = client.at_endpoint("127.0.0.1:22379")?.status().await?;
/// println!("member {:x} is at raft index {}", status.header.map_or(0, |h| h.member_id), status.raft_index);
/// # Ok(())
/// # }
/// ```
///
/// The options apply to the calls made through the handle (the typed
/// methods and [`Client::call`](crate::Client::call)), not to the shared
/// watch engine's streams, which every handle shares, nor to calls made
/// through `tower::Service::call` on the client, which go to the stack as
/// they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "options do nothing until given to `Client::with_options`"]
pub struct CallOptions {
    timeout: Option<CallTimeout>,
    attempt_timeout: Option<AttemptTimeout>,
    require_leader: bool,
    endpoint: Option<TargetEndpoint>,
    metadata: Metadata,
}

impl CallOptions {
    /// No options: the builder's defaults.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// A deadline for the whole call, retries included, in place of the
    /// builder's [`timeout`](crate::ClientBuilder::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(CallTimeout(timeout));
        self
    }

    /// No deadline at all, neither for the whole call nor for each attempt.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Some(CallTimeout::NONE);
        self.attempt_timeout = Some(AttemptTimeout::NONE);
        self
    }

    /// A deadline for each attempt, in place of the builder's
    /// [`attempt_timeout`](crate::ClientBuilder::attempt_timeout). It takes
    /// effect only on a client built with an attempt timeout (that is where
    /// the per-attempt layer is).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(AttemptTimeout(timeout));
        self
    }

    /// Asks the member to refuse the call while it has no leader, as
    /// [`ClientBuilder::require_leader`](crate::ClientBuilder::require_leader)
    /// does for every call.
    pub fn require_leader(mut self) -> Self {
        self.require_leader = true;
        self
    }

    /// Sends the calls to this endpoint only, with no failover; it must be
    /// one of the client's endpoints, or the call fails before anything is
    /// sent with [`ErrorKind::InvalidEndpoint`](crate::ErrorKind::InvalidEndpoint).
    pub fn endpoint(mut self, endpoint: TargetEndpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Extra gRPC headers for the calls (checked when `metadata` was
    /// built, see [`Metadata`]), sent after those the request carries and
    /// before the builder's [`metadata`](crate::ClientBuilder::metadata):
    /// a trace context for one handle, say.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// The endpoint the calls go to, if one was set.
    pub fn target(&self) -> Option<&TargetEndpoint> {
        self.endpoint.as_ref()
    }

    /// Puts the options into `request`, leaving what it already carries.
    pub(crate) fn apply(&self, request: &mut EtcdRequest) {
        let meta = &mut request.meta;
        if let Some(timeout) = self.timeout {
            if meta.extensions.get::<CallTimeout>().is_none() {
                meta.extensions.insert(timeout);
            }
        }
        if let Some(timeout) = self.attempt_timeout {
            if meta.extensions.get::<AttemptTimeout>().is_none() {
                meta.extensions.insert(timeout);
            }
        }
        meta.require_leader |= self.require_leader;
        if meta.endpoint.is_none() {
            meta.endpoint.clone_from(&self.endpoint);
        }
        meta.metadata.extend(&self.metadata);
    }

    /// As [`apply`](Self::apply), for a call that waits by design (a lock,
    /// a campaign): without a deadline of its own, it gets none.
    pub(crate) fn apply_waiting(&self, request: &mut EtcdRequest) {
        self.apply(request);
        let extensions = &mut request.meta.extensions;
        if extensions.get::<CallTimeout>().is_none() {
            extensions.insert(CallTimeout::NONE);
        }
        if extensions.get::<AttemptTimeout>().is_none() {
            extensions.insert(AttemptTimeout::NONE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_tower_core::proto::etcdserverpb::RangeRequest;

    #[test]
    fn what_a_request_carries_wins() {
        let mut request = EtcdRequest::new(RangeRequest::default());
        request
            .meta
            .extensions
            .insert(CallTimeout(Duration::from_secs(9)));
        CallOptions::new()
            .timeout(Duration::from_secs(1))
            .attempt_timeout(Duration::from_millis(300))
            .require_leader()
            .apply(&mut request);
        assert_eq!(
            CallTimeout::of(&request),
            Some(CallTimeout(Duration::from_secs(9)))
        );
        assert_eq!(
            AttemptTimeout::of(&request),
            Some(AttemptTimeout(Duration::from_millis(300)))
        );
        assert!(request.meta.require_leader);
        assert!(request.meta.endpoint.is_none());
    }

    #[test]
    fn a_waiting_call_has_no_deadline_unless_given_one() {
        let mut request = EtcdRequest::new(RangeRequest::default());
        CallOptions::new().apply_waiting(&mut request);
        assert!(CallTimeout::of(&request).is_some_and(CallTimeout::is_none));
        assert!(AttemptTimeout::of(&request).is_some_and(AttemptTimeout::is_none));

        let mut request = EtcdRequest::new(RangeRequest::default());
        CallOptions::new()
            .timeout(Duration::from_secs(2))
            .apply_waiting(&mut request);
        assert_eq!(
            CallTimeout::of(&request),
            Some(CallTimeout(Duration::from_secs(2)))
        );
        assert!(AttemptTimeout::of(&request).is_some_and(AttemptTimeout::is_none));
    }
}
