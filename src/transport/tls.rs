//! TLS settings for `https://` endpoints, turned into a rustls client
//! configuration (ring provider, ALPN `h2`).

use std::sync::Arc;

use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::error::{ErrorKind, EtcdError};

/// TLS settings: which CA to trust and, for client-certificate auth, the
/// client's certificate and key (PEM).
#[derive(Clone, Default)]
pub struct TlsOptions {
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    domain_name: Option<String>,
}

impl TlsOptions {
    /// Trusts the system's roots, no client certificate.
    pub fn new() -> Self {
        TlsOptions::default()
    }

    /// Trusts this CA (PEM) instead of the system's roots.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM). With
    /// `--client-cert-auth`, etcd takes the certificate's CN as the user.
    pub fn identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Checks the server's certificate against this name instead of the
    /// endpoint's host.
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    /// The name the server's certificate must carry for an endpoint whose
    /// host is `host`.
    pub(crate) fn server_name(&self, host: &str) -> Result<ServerName<'static>, EtcdError> {
        let name = self.domain_name.as_deref().unwrap_or(host);
        // `Uri::host` keeps the brackets of an IPv6 address.
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned())
            .map_err(|e| invalid(format!("server name {name:?}: {e}")))
    }

    /// The rustls configuration: the CA if one was given, else the
    /// system's roots; the client identity if one was given.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, EtcdError> {
        let provider = CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(crypto::ring::default_provider()));
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                let certs = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(format!("CA certificate: {e}")))?;
                if certs.is_empty() {
                    return Err(invalid("no certificate in the CA PEM".into()));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| invalid(format!("CA certificate: {e}")))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                if !native.errors.is_empty() {
                    tracing::debug!(errors = ?native.errors, "errors loading the system's certificates");
                }
                if native.certs.is_empty() {
                    return Err(invalid("no system root certificates found".into()));
                }
                roots.add_parsable_certificates(native.certs);
            }
        }
        let builder = builder.with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(format!("client certificate: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| invalid(format!("client key: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid(format!("client identity: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

fn invalid(message: String) -> EtcdError {
    EtcdError::client(ErrorKind::InvalidTls, message)
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca_pem.is_some())
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .field("domain_name", &self.domain_name)
            .finish()
    }
}
