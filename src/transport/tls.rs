//! TLS settings for `https://` and `unixs://` endpoints, turned into a
//! rustls client configuration (ring provider, ALPN `h2`).
//!
//! A client given TLS settings never speaks plaintext: an endpoint written
//! without a scheme is taken as `https://` (as Go's client does), and an
//! `http://` endpoint beside TLS settings is refused when the transport is
//! built. Without the `tls` feature the settings still exist (so that code
//! which sets them compiles either way), but a transport that would need
//! them is refused with [`ErrorKind::InvalidTls`].
//!
//! With no CA given, the roots trusted are the system's (feature
//! `tls-native-roots`, on by default), the Mozilla roots compiled in
//! (`tls-webpki-roots`), or both when both features are on.

#[cfg(feature = "tls")]
use std::sync::Arc;

#[cfg(feature = "tls")]
use super::connector::Socket;
#[cfg(feature = "tls")]
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
#[cfg(feature = "tls")]
use tokio_rustls::rustls::pki_types::pem::PemObject;
#[cfg(feature = "tls")]
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
#[cfg(feature = "tls")]
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::error::{ErrorKind, EtcdError};

/// TLS settings: which CA to trust and, for client-certificate auth, the
/// client's certificate and key (PEM).
#[derive(Clone, Default)]
pub struct TlsOptions {
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    domain_name: Option<String>,
    /// The user's own rustls configuration, used instead of the above.
    #[cfg(feature = "tls")]
    rustls: Option<Arc<ClientConfig>>,
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

    /// Trusts the CA in the PEM file at `path`. Fails with
    /// [`ErrorKind::InvalidTls`] naming the file if it cannot be read or
    /// holds no certificate.
    pub fn ca_file(self, path: impl AsRef<std::path::Path>) -> Result<Self, EtcdError> {
        let path = path.as_ref();
        let pem = read_pem(path, "CA certificate")?;
        #[cfg(feature = "tls")]
        {
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("the CA file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(invalid(format!(
                    "the CA file {} holds no PEM certificate",
                    path.display()
                )));
            }
        }
        Ok(self.ca_certificate(pem))
    }

    /// Presents the client certificate and key in the PEM files at
    /// `cert` and `key`. Fails with [`ErrorKind::InvalidTls`] naming the
    /// file that cannot be read or holds no certificate or key.
    pub fn identity_files(
        self,
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<Self, EtcdError> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let cert_pem = read_pem(cert, "client certificate")?;
        let key_pem = read_pem(key, "client key")?;
        #[cfg(feature = "tls")]
        {
            let chain = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    invalid(format!(
                        "the client certificate file {}: {e}",
                        cert.display()
                    ))
                })?;
            if chain.is_empty() {
                return Err(invalid(format!(
                    "the client certificate file {} holds no PEM certificate",
                    cert.display()
                )));
            }
            PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| invalid(format!("the client key file {}: {e}", key.display())))?;
        }
        Ok(self.identity(cert_pem, key_pem))
    }

    /// Uses this rustls configuration as it is (a custom certificate
    /// verifier, pinned certificates, a client identity from a hardware
    /// key), instead of [`ca_certificate`](Self::ca_certificate) and
    /// [`identity`](Self::identity). The transport only sets its ALPN to
    /// `h2`, which gRPC needs. Build it with the same rustls as this crate,
    /// re-exported as [`transport::rustls`](crate::transport::rustls).
    #[cfg(feature = "tls")]
    pub fn rustls_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.rustls = Some(config);
        self
    }

    /// Checks the server's certificate against this name instead of the
    /// endpoint's host (for a `unixs://` socket: instead of the socket's
    /// file name without its `:port`).
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    /// How to open TLS to an endpoint whose host is `host`, with the
    /// shared configuration `config` (made once by [`Self::client_config`]).
    #[cfg(feature = "tls")]
    pub(crate) fn connect_to(
        &self,
        config: &Arc<ClientConfig>,
        host: &str,
    ) -> Result<TlsConnect, EtcdError> {
        Ok(TlsConnect {
            config: config.clone(),
            name: self.server_name(host)?,
        })
    }

    /// The name the server's certificate must carry for an endpoint whose
    /// host is `host`.
    #[cfg(feature = "tls")]
    fn server_name(&self, host: &str) -> Result<ServerName<'static>, EtcdError> {
        let name = self.domain_name.as_deref().unwrap_or(host);
        // `Uri::host` keeps the brackets of an IPv6 address.
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned())
            .map_err(|e| invalid(format!("server name {name:?}: {e}")))
    }

    /// The rustls configuration: the CA if one was given, else the
    /// roots the features choose; the client identity if one was given.
    #[cfg(feature = "tls")]
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, EtcdError> {
        if let Some(user) = &self.rustls {
            let mut config = ClientConfig::clone(user);
            config.alpn_protocols = vec![b"h2".to_vec()];
            return Ok(Arc::new(config));
        }
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
                add_default_roots(&mut roots);
                if roots.is_empty() {
                    return Err(invalid(NO_ROOTS.into()));
                }
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

/// Why a configuration without a CA has nothing to trust.
#[cfg(feature = "tls")]
const NO_ROOTS: &str = if cfg!(any(
    feature = "tls-native-roots",
    feature = "tls-webpki-roots"
)) {
    "no root certificate was found: give the CA with TlsOptions::ca_certificate"
} else {
    "no CA was given, and neither the tls-native-roots nor the tls-webpki-roots feature is on: \
     give the CA with TlsOptions::ca_certificate"
};

/// The roots trusted when no CA is given, as the features choose.
#[cfg(feature = "tls")]
fn add_default_roots(roots: &mut RootCertStore) {
    #[cfg(feature = "tls-native-roots")]
    {
        let native = rustls_native_certs::load_native_certs();
        if !native.errors.is_empty() {
            tracing::debug!(errors = ?native.errors, "errors loading the system's certificates");
        }
        roots.add_parsable_certificates(native.certs);
    }
    #[cfg(feature = "tls-webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let _ = roots;
}

/// Why a transport that needs TLS cannot be built without the `tls`
/// feature.
#[cfg(not(feature = "tls"))]
pub(crate) fn tls_unavailable(why: &str) -> EtcdError {
    invalid(format!(
        "{why}, but etcd-tower-core was built without its `tls` feature: enable it"
    ))
}

/// How to open TLS to one endpoint: the shared rustls configuration and
/// the name the server's certificate must carry.
#[cfg(feature = "tls")]
#[derive(Clone)]
pub(crate) struct TlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

/// Without the `tls` feature no endpoint can need TLS: the type has no
/// value.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
pub(crate) enum TlsConnect {}

#[cfg(feature = "tls")]
impl TlsConnect {
    /// The TLS handshake over a connected socket.
    pub(crate) async fn handshake(
        &self,
        socket: Socket,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<Socket>> {
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.name.clone(), socket)
            .await
    }
}

#[cfg(feature = "tls")]
impl std::fmt::Debug for TlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnect")
            .field("server_name", &self.name)
            .finish()
    }
}

fn invalid(message: String) -> EtcdError {
    EtcdError::client(ErrorKind::InvalidTls, message)
}

/// Reads a PEM file, failing with an error that names it.
fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|e| invalid(format!("the {what} file {}: {e}", path.display())))
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca_pem.is_some())
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .field("domain_name", &self.domain_name)
            .finish_non_exhaustive()
    }
}
