//! RSA key pairs for clusters started with `.jwt_token_ttl(..)`.
//!
//! etcd's JWT token provider signs tokens with a private key and verifies them
//! with the public one; both come from files. The kit makes a fresh RS256 pair
//! with `openssl` in the cluster's temp dir, so no key is ever shared between
//! tests or checked into the repository.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Result;
use crate::tls::openssl;

/// The key pair and token lifetime of a JWT cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtKeys {
    private_key: PathBuf,
    public_key: PathBuf,
    ttl: Duration,
}

impl JwtKeys {
    /// Generates a 2048-bit RSA key pair in `dir`.
    pub(crate) async fn generate(dir: &Path, ttl: Duration) -> Result<Self> {
        let private_key = dir.join("jwt.key");
        let public_key = dir.join("jwt.pub");
        openssl(&[&"genrsa", &"-out", &private_key, &"2048"]).await?;
        openssl(&[
            &"rsa",
            &"-in",
            &private_key,
            &"-pubout",
            &"-out",
            &public_key,
        ])
        .await?;
        Ok(Self {
            private_key,
            public_key,
            ttl,
        })
    }

    /// The PEM private key etcd signs tokens with.
    pub fn private_key(&self) -> &Path {
        &self.private_key
    }

    /// The PEM public key etcd verifies tokens with.
    pub fn public_key(&self) -> &Path {
        &self.public_key
    }

    /// How long a token stays valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The value of etcd's `--auth-token` flag.
    pub(crate) fn auth_token_flag(&self) -> String {
        format!(
            "--auth-token=jwt,pub-key={},priv-key={},sign-method=RS256,ttl={}s",
            self.public_key.display(),
            self.private_key.display(),
            self.ttl.as_secs().max(1)
        )
    }
}
