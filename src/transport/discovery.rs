//! DNS SRV discovery of a cluster's endpoints (feature `dns-srv`), as
//! etcd's Go client does it (`client/pkg/srv.GetClient`, `etcdctl
//! --discovery-srv`).
//!
//! A fleet that runs etcd behind DNS names publishes where its members
//! listen once, in DNS, and every client finds them there: no endpoint
//! list to copy into each service's configuration and to update when a
//! member moves. The records are those etcd's own documentation asks for:
//!
//! | record | gives |
//! |---|---|
//! | `_etcd-client-ssl._tcp.<domain>` | `https://<target>:<port>` |
//! | `_etcd-client._tcp.<domain>` | `http://<target>:<port>` |
//!
//! With a service name (Go's `--discovery-srv-name`), the records are
//! `_etcd-client-ssl-<name>._tcp.<domain>` and
//! `_etcd-client-<name>._tcp.<domain>`. Both are looked up and, as in Go,
//! both kinds are kept; [`DiscoveryOptions::tls_only`] drops the
//! plaintext ones (what `etcdctl` does unless `--insecure-discovery`).
//! Endpoints come lower priority first, then heavier weight; the targets'
//! names are kept (the transport resolves them when it connects, and an
//! `https://` endpoint checks its certificate against the name).
//!
//! The lookups go through `hickory-resolver`, to the system's name servers
//! (`/etc/resolv.conf`) or to the one set with
//! [`DiscoveryOptions::name_server`] (private DNS, tests).
//!
//! Errors: no record of either kind is [`ErrorKind::NoEndpoints`]; a
//! lookup that failed (no answer, a server failure) while the other found
//! nothing is [`ErrorKind::Connect`]; a domain that is not a DNS name is
//! [`ErrorKind::InvalidEndpoint`]. Nothing is sent to etcd in any case.
//!
//! # Example
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower_core::EtcdError> {
//! use etcd_tower_core::transport::{discover_srv, DiscoveryOptions};
//! use etcd_tower_core::Transport;
//!
//! let endpoints = discover_srv("example.com", DiscoveryOptions::new().tls_only(true)).await?;
//! // e.g. ["https://infra0.example.com:2379", "https://infra1.example.com:2379"]
//! let transport = Transport::builder(&endpoints).build()?;
//! # drop(transport);
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::{Resolver, TokioResolver};

use crate::error::{ErrorKind, EtcdError};

/// How to look up a cluster's SRV records; see the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct DiscoveryOptions {
    name_server: Option<SocketAddr>,
    service_name: Option<String>,
    tls_only: bool,
    timeout: Option<Duration>,
}

impl DiscoveryOptions {
    /// The system's name servers, no service name, both kinds of records.
    pub fn new() -> Self {
        DiscoveryOptions::default()
    }

    /// Asks this name server only (over UDP, and TCP for long answers)
    /// instead of the system's.
    pub fn name_server(mut self, address: SocketAddr) -> Self {
        self.name_server = Some(address);
        self
    }

    /// Looks up `_etcd-client-ssl-<name>._tcp` and `_etcd-client-<name>._tcp`
    /// (Go's `--discovery-srv-name`), for several clusters under one domain.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.service_name = (!name.is_empty()).then_some(name);
        self
    }

    /// Looks up only the `_etcd-client-ssl` records: no `http://`
    /// endpoint is returned. Off by default, as in Go's `GetClient`.
    pub fn tls_only(mut self, on: bool) -> Self {
        self.tls_only = on;
        self
    }

    /// How long one DNS query may wait for its answer (hickory's
    /// default: 5 s, tried twice).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The record names to look up and the scheme each gives: Go's
    /// `GetSRVService`.
    fn services(&self, domain: &str) -> Vec<(&'static str, String)> {
        let suffix = self
            .service_name
            .as_deref()
            .map_or(String::new(), |name| format!("-{name}"));
        let mut services = vec![("https", format!("_etcd-client-ssl{suffix}._tcp.{domain}."))];
        if !self.tls_only {
            services.push(("http", format!("_etcd-client{suffix}._tcp.{domain}.")));
        }
        services
    }

    fn resolver(&self) -> Result<TokioResolver, EtcdError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match self.name_server {
            Some(address) => {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut connection| {
                        connection.port = address.port();
                        connection
                    })
                    .collect();
                let server = NameServerConfig::new(address.ip(), true, connections);
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    provider,
                )
            }
            None => Resolver::builder(provider).map_err(|e| {
                EtcdError::client(
                    ErrorKind::Connect,
                    format!("the system's DNS configuration could not be read: {e}"),
                )
            })?,
        };
        if let Some(timeout) = self.timeout {
            builder.options_mut().timeout = timeout;
        }
        builder.build().map_err(|e| {
            EtcdError::client(
                ErrorKind::Connect,
                format!("the DNS resolver could not be made: {e}"),
            )
        })
    }
}

/// Looks up the cluster's SRV records under `domain` and returns its
/// endpoints (`https://host:port`, `http://host:port`), ready for
/// [`Transport::builder`](super::Transport::builder); see the
/// [module docs](self) for the records and the errors.
pub async fn discover_srv(
    domain: &str,
    options: DiscoveryOptions,
) -> Result<Vec<String>, EtcdError> {
    let domain = domain.trim().trim_end_matches('.');
    if domain.is_empty() || Name::from_ascii(format!("{domain}.")).is_err() {
        return Err(EtcdError::client(
            ErrorKind::InvalidEndpoint,
            format!("the discovery domain {domain:?} is not a DNS name"),
        ));
    }
    let resolver = options.resolver()?;
    let mut endpoints = Vec::new();
    let mut empty = Vec::new();
    let mut failed = Vec::new();
    for (scheme, name) in options.services(domain) {
        match resolver.srv_lookup(name.as_str()).await {
            Ok(lookup) => {
                let targets = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::SRV(srv) => Some(SrvTarget {
                            priority: srv.priority,
                            weight: srv.weight,
                            port: srv.port,
                            target: srv.target.to_ascii(),
                        }),
                        _ => None,
                    })
                    .collect();
                let found = srv_endpoints(scheme, targets);
                if found.is_empty() {
                    empty.push(name);
                }
                endpoints.extend(found);
            }
            Err(error) if error.is_no_records_found() => empty.push(name),
            Err(error) => failed.push(format!("{name}: {error}")),
        }
    }
    tracing::debug!(domain, ?endpoints, ?empty, ?failed, "etcd SRV discovery");
    if !endpoints.is_empty() {
        return Ok(endpoints);
    }
    Err(match failed.is_empty() {
        true => EtcdError::client(
            ErrorKind::NoEndpoints,
            format!(
                "DNS has no etcd SRV record for {}: no endpoint was discovered",
                empty.join(" or ")
            ),
        ),
        false => EtcdError::client(
            ErrorKind::Connect,
            format!(
                "the DNS lookup of the etcd SRV records failed ({}), and found nothing else",
                failed.join("; ")
            ),
        ),
    })
}

/// One SRV record's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SrvTarget {
    priority: u16,
    weight: u16,
    port: u16,
    target: String,
}

/// The endpoints of SRV records that give `scheme`: lower priority first,
/// then heavier weight; without the names' final dot; duplicates once;
/// a target of `.` ("no such service here", RFC 2782) or port 0 skipped.
fn srv_endpoints(scheme: &str, mut targets: Vec<SrvTarget>) -> Vec<String> {
    targets.sort_by(|a, b| {
        (a.priority, std::cmp::Reverse(a.weight)).cmp(&(b.priority, std::cmp::Reverse(b.weight)))
    });
    let mut endpoints: Vec<String> = Vec::with_capacity(targets.len());
    for target in targets {
        let host = target.target.trim_end_matches('.');
        if host.is_empty() || target.port == 0 {
            continue;
        }
        let endpoint = format!("{scheme}://{host}:{}", target.port);
        if !endpoints.contains(&endpoint) {
            endpoints.push(endpoint);
        }
    }
    endpoints
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            port,
            target: target.to_owned(),
        }
    }

    #[test]
    fn records_become_endpoints_by_priority_then_weight() {
        let endpoints = srv_endpoints(
            "https",
            vec![
                srv(10, 0, 2379, "infra2.example.com."),
                srv(0, 10, 2379, "infra1.example.com."),
                srv(0, 50, 2379, "infra0.example.com."),
                srv(0, 10, 2379, "infra1.example.com."),
                srv(0, 0, 2379, "."),
                srv(0, 0, 0, "infra3.example.com."),
            ],
        );
        assert_eq!(
            endpoints,
            [
                "https://infra0.example.com:2379",
                "https://infra1.example.com:2379",
                "https://infra2.example.com:2379",
            ]
        );
        assert_eq!(
            srv_endpoints("http", vec![srv(0, 0, 22379, "localhost")]),
            ["http://localhost:22379"]
        );
        assert!(srv_endpoints("http", Vec::new()).is_empty());
    }

    #[test]
    fn services_are_gos_names() {
        let plain = DiscoveryOptions::new();
        assert_eq!(
            plain.services("example.com"),
            [
                ("https", "_etcd-client-ssl._tcp.example.com.".to_owned()),
                ("http", "_etcd-client._tcp.example.com.".to_owned()),
            ]
        );
        let named = DiscoveryOptions::new().service_name("prod").tls_only(true);
        assert_eq!(
            named.services("example.com"),
            [(
                "https",
                "_etcd-client-ssl-prod._tcp.example.com.".to_owned()
            )]
        );
    }

    #[tokio::test]
    async fn a_domain_that_is_no_dns_name_is_a_typed_error() {
        for bad in ["", " . ", "a..b", &"x".repeat(64)] {
            let error = discover_srv(bad, DiscoveryOptions::new())
                .await
                .unwrap_err();
            assert_eq!(
                error.kind(),
                &ErrorKind::InvalidEndpoint,
                "{bad:?}: {error}"
            );
        }
    }
}
