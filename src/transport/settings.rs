//! What making a connection to an endpoint takes, kept for the life of
//! the transport: the endpoints given at build time and those set later
//! (see [`reconfigure`](super::reconfigure)) are parsed, checked and
//! connected by the same rules.

#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use super::connection::{Connection, Keepalive};
use super::connector::Connector;
use super::endpoint::{parse_endpoint, Endpoint};
use super::tls::TlsOptions;
use crate::error::{ErrorKind, EtcdError};

/// The builder's connection settings.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) keepalive: Option<Keepalive>,
    pub(crate) tls: Option<TlsOptions>,
}

impl ConnectionSettings {
    /// Parses the endpoints (scheme rules in [`Self::parse`]) and makes a
    /// lazy connection for each.
    pub(crate) fn connections<S: AsRef<str>>(
        &self,
        endpoints: &[S],
    ) -> Result<Vec<Connection>, EtcdError> {
        let parsed = self.parse(endpoints)?;
        self.connect(parsed)
    }

    /// Parses the endpoints. A client given TLS settings never speaks
    /// plaintext: a scheme-less endpoint is `https://`, and an `http://`
    /// or `unix://` one is refused.
    pub(crate) fn parse<S: AsRef<str>>(&self, endpoints: &[S]) -> Result<Vec<Endpoint>, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::client(
                ErrorKind::NoEndpoints,
                "no etcd endpoint was given",
            ));
        }
        let default_scheme = if self.tls.is_some() { "https" } else { "http" };
        let parsed = endpoints
            .iter()
            .map(|text| parse_endpoint(text.as_ref(), default_scheme))
            .collect::<Result<Vec<_>, _>>()?;
        if self.tls.is_some() {
            if let Some(plain) = parsed.iter().find(|endpoint| !endpoint.is_tls()) {
                let secure = match plain.unix_path() {
                    Some(_) => "unixs://",
                    None => "https:// (or without a scheme)",
                };
                return Err(EtcdError::client(
                    ErrorKind::InvalidEndpoint,
                    format!(
                        "endpoint {plain} is plaintext, but TLS settings were given and a client \
                         with TLS settings never speaks plaintext: write it as {secure}, or drop \
                         the TLS settings"
                    ),
                ));
            }
        }
        Ok(parsed)
    }

    /// A lazy connection to each endpoint.
    pub(crate) fn connect(&self, endpoints: Vec<Endpoint>) -> Result<Vec<Connection>, EtcdError> {
        let tls = TlsFor::new(self.tls.as_ref(), &endpoints)?;
        let mut connections = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let connector = Connector::new(self.connect_timeout, tls.connect(&endpoint)?);
            connections.push(Connection::new(endpoint, connector, self.keepalive));
        }
        Ok(connections)
    }
}

/// The TLS configuration of a transport's endpoints, made once, and only if
/// an endpoint needs it (loading the system's roots reads files).
struct TlsFor {
    #[cfg(feature = "tls")]
    shared: Option<(TlsOptions, Arc<tokio_rustls::rustls::ClientConfig>)>,
}

impl TlsFor {
    fn new(options: Option<&TlsOptions>, endpoints: &[Endpoint]) -> Result<Self, EtcdError> {
        let needs_tls = endpoints.iter().any(Endpoint::is_tls);
        #[cfg(feature = "tls")]
        {
            let shared = match needs_tls {
                false => None,
                true => {
                    let options = options.cloned().unwrap_or_default();
                    let config = options.client_config()?;
                    Some((options, config))
                }
            };
            Ok(TlsFor { shared })
        }
        #[cfg(not(feature = "tls"))]
        {
            if needs_tls || options.is_some() {
                return Err(super::tls::tls_unavailable(
                    "an https:// or unixs:// endpoint, or TLS settings, were given",
                ));
            }
            Ok(TlsFor {})
        }
    }

    /// How to open TLS to `endpoint`: only for `https://` and `unixs://`
    /// endpoints.
    fn connect(&self, endpoint: &Endpoint) -> Result<Option<super::tls::TlsConnect>, EtcdError> {
        #[cfg(feature = "tls")]
        if let (Some((options, config)), true) = (&self.shared, endpoint.is_tls()) {
            return options.connect_to(config, &endpoint.tls_host()).map(Some);
        }
        let _ = endpoint;
        Ok(None)
    }
}
