//! What making a connection to an endpoint takes, kept for the life of
//! the transport: the endpoints given at build time and those set later
//! (see [`reconfigure`](super::reconfigure)) are parsed, checked and
//! connected by the same rules.

#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use super::connection::{Connection, Keepalive};
use super::connector::Connector;
use super::endpoint::parse_endpoint;
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
        let uris = self.parse(endpoints)?;
        self.connect(uris)
    }

    /// Parses the endpoints. A client given TLS settings never speaks
    /// plaintext: a scheme-less endpoint is `https://`, and an `http://`
    /// one is refused.
    pub(crate) fn parse<S: AsRef<str>>(&self, endpoints: &[S]) -> Result<Vec<Uri>, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::client(
                ErrorKind::NoEndpoints,
                "no etcd endpoint was given",
            ));
        }
        let default_scheme = if self.tls.is_some() { "https" } else { "http" };
        let uris = endpoints
            .iter()
            .map(|text| parse_endpoint(text.as_ref(), default_scheme))
            .collect::<Result<Vec<_>, _>>()?;
        if self.tls.is_some() {
            if let Some(plain) = uris.iter().find(|uri| uri.scheme_str() == Some("http")) {
                return Err(EtcdError::client(
                    ErrorKind::InvalidEndpoint,
                    format!(
                        "endpoint {plain} is plaintext, but TLS settings were given and a client \
                         with TLS settings never speaks plaintext: write it as https:// \
                         (or without a scheme), or drop the TLS settings"
                    ),
                ));
            }
        }
        Ok(uris)
    }

    /// A lazy connection to each endpoint.
    pub(crate) fn connect(&self, uris: Vec<Uri>) -> Result<Vec<Connection>, EtcdError> {
        let tls = TlsFor::new(self.tls.as_ref(), &uris)?;
        let mut connections = Vec::with_capacity(uris.len());
        for uri in uris {
            let connector = Connector::new(self.connect_timeout, tls.connect(&uri)?);
            connections.push(Connection::new(uri, connector, self.keepalive));
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
    fn new(options: Option<&TlsOptions>, uris: &[Uri]) -> Result<Self, EtcdError> {
        let needs_tls = uris.iter().any(|uri| uri.scheme_str() == Some("https"));
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
                    "an https:// endpoint or TLS settings were given",
                ));
            }
            Ok(TlsFor {})
        }
    }

    /// How to open TLS to `uri`: only for `https://` endpoints.
    fn connect(&self, uri: &Uri) -> Result<Option<super::tls::TlsConnect>, EtcdError> {
        #[cfg(feature = "tls")]
        if let (Some((options, config)), Some("https")) = (&self.shared, uri.scheme_str()) {
            return options
                .connect_to(config, uri.host().unwrap_or_default())
                .map(Some);
        }
        let _ = uri;
        Ok(None)
    }
}
