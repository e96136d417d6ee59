//! [`EndpointManager`]: one service's endpoints in etcd, Go's
//! `endpoints.Manager` for a target.
//!
//! Every endpoint of the service `target` lives under the key prefix
//! `<target>/`, so a Go service registered with Go's manager for the same
//! target is listed, watched and balanced over here, and one registered
//! here is found by Go's manager and its gRPC resolver.

use etcd_tower::{Client, Compare, CompareOp, ErrorKind, EtcdError, PutOptions, Txn, TxnOp};

use crate::discover::EndpointDiscover;
use crate::endpoint::Endpoint;
use crate::registration::{RegisterOptions, Registration};
use crate::updates::{self, EndpointList, EndpointUpdates};

/// One service's endpoints; see the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
pub struct EndpointManager {
    client: Client,
    target: String,
    prefix: String,
}

impl EndpointManager {
    /// The endpoints of the service `target`. Fails with
    /// [`ErrorKind::InvalidRequest`] for an empty target, as Go's
    /// `NewManager` does.
    pub fn new(client: &Client, target: impl Into<String>) -> Result<Self, EtcdError> {
        let target = target.into();
        if target.is_empty() {
            return Err(EtcdError::client(
                ErrorKind::InvalidRequest,
                "an endpoint manager needs a target (the service's name) that is not empty",
            ));
        }
        Ok(EndpointManager {
            client: client.clone(),
            prefix: format!("{target}/"),
            target,
        })
    }

    /// The service's name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The client the manager calls.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The conventional key of the endpoint at `addr`: `<target>/<addr>`,
    /// as Go's examples and resolver tests write it.
    pub fn key_for(&self, addr: &str) -> String {
        format!("{}{addr}", self.prefix)
    }

    /// Refuses a key outside `<target>/`, as Go's `Update` does.
    pub(crate) fn check_key(&self, key: &str) -> Result<(), EtcdError> {
        if key.len() > self.prefix.len() && key.starts_with(&self.prefix) {
            return Ok(());
        }
        Err(EtcdError::client(
            ErrorKind::InvalidRequest,
            format!(
                "an endpoint key must start with '{}' and name something after it, not '{key}'",
                self.prefix
            ),
        ))
    }

    /// Registers `endpoint` under a lease of its own that is kept alive
    /// until the returned [`Registration`] is closed or dropped; see
    /// [`Registration`] for what each does, and [`RegisterOptions`] for the
    /// key and TTL.
    ///
    /// **Cancel-safe**: dropped before it has answered, it leaves neither
    /// the key nor the lease behind.
    pub async fn register(
        &self,
        endpoint: Endpoint,
        options: RegisterOptions,
    ) -> Result<Registration, EtcdError> {
        Registration::start(self, endpoint, options).await
    }

    /// Writes `endpoint` under `key` (in `<target>/`) with the put's
    /// `options` (a lease of yours, say): Go's `AddEndpoint`. Nothing keeps
    /// it alive or removes it; [`register`](Self::register) does.
    pub async fn add_endpoint(
        &self,
        key: &str,
        endpoint: &Endpoint,
        options: PutOptions,
    ) -> Result<(), EtcdError> {
        self.check_key(key)?;
        self.client
            .put_with(key, endpoint.to_json(), options)
            .await
            .map(drop)
    }

    /// Deletes the endpoint `key` (in `<target>/`): Go's `DeleteEndpoint`.
    pub async fn delete_endpoint(&self, key: &str) -> Result<(), EtcdError> {
        self.check_key(key)?;
        self.client.delete(key).await.map(drop)
    }

    /// Deletes `key` if it still belongs to the lease `lease_id`: a
    /// registration removes its own key, never a newer registration's.
    pub(crate) async fn delete_if_leased(&self, key: &str, lease_id: i64) -> Result<(), EtcdError> {
        let own = Txn::new()
            .when([Compare::lease(key, CompareOp::Equal, lease_id)])
            .and_then([TxnOp::delete(key)]);
        self.client.txn(own).await.map(drop)
    }

    /// Every endpoint of the service now: Go's `List`. Values Go's manager
    /// cannot read are left out (with a warning), as Go leaves them out.
    pub async fn list(&self) -> Result<EndpointList, EtcdError> {
        updates::list(&self.client, &self.prefix).await
    }

    /// The endpoints, then their changes: Go's `NewWatchChannel`.
    pub async fn watch(&self) -> Result<EndpointUpdates, EtcdError> {
        EndpointUpdates::start(&self.client, &self.prefix).await
    }

    /// A [`tower::discover::Discover`] of the service's instances, each
    /// made a service by `make_service`; see [`EndpointDiscover`].
    pub async fn discover<S, F>(&self, make_service: F) -> Result<EndpointDiscover<S>, EtcdError>
    where
        F: FnMut(&Endpoint) -> S + Send + 'static,
    {
        EndpointDiscover::start(self, Box::new(make_service)).await
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}
