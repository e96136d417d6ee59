//! Throw-away TLS material for clusters started with `.tls()`.
//!
//! Each TLS cluster gets its own CA, a server certificate valid for
//! `127.0.0.1` and `localhost`, and a client certificate, all generated with
//! the `openssl` command line in the cluster's temp dir. Using the real
//! `openssl` (not a Rust PKI crate) keeps the kit free of TLS dependencies
//! that could mask version conflicts in the client under test, and produces
//! the same PEM files an operator would hand to etcd. Keys are ECDSA P-256,
//! which is fast to generate and accepted by etcd 3.4 and 3.5 and by rustls.
//!
//! etcd with `--client-cert-auth` takes the client certificate's common name
//! as the user name once auth is enabled, so [`TlsFiles::issue_client_cert`]
//! makes a certificate for any common name.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::command;
use crate::error::{Result, TestkitError};

const OPENSSL_TIMEOUT: Duration = Duration::from_secs(30);

/// X.509 extensions of client certificates.
const CLIENT_EXTENSIONS: &str = "extendedKeyUsage=clientAuth\n";

/// The common name of the client certificate every TLS cluster starts with.
pub const DEFAULT_CLIENT_CN: &str = "testkit-client";

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKey {
    cert: PathBuf,
    key: PathBuf,
}

impl CertKey {
    /// The PEM certificate.
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// The PEM private key (PKCS#8, unencrypted).
    pub fn key(&self) -> &Path {
        &self.key
    }
}

/// The CA, server and client certificates of a TLS cluster.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    dir: PathBuf,
    ca: CertKey,
    server: CertKey,
    client: CertKey,
}

impl TlsFiles {
    /// Generates a CA, a server certificate for 127.0.0.1 and a client
    /// certificate with common name [`DEFAULT_CLIENT_CN`] in `dir`.
    ///
    /// Clusters started with `.tls()` call this for their own files; a test
    /// calls it for material no cluster trusts (an unrelated CA, a client
    /// certificate from another CA).
    pub async fn generate(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| TestkitError::io(format!("creating {}", dir.display()), e))?;
        let ca = CertKey {
            cert: dir.join("ca.crt"),
            key: dir.join("ca.key"),
        };
        openssl(&[
            &"req",
            &"-x509",
            &"-new",
            &"-newkey",
            &"ec",
            &"-pkeyopt",
            &"ec_paramgen_curve:prime256v1",
            &"-nodes",
            &"-days",
            &"7",
            &"-subj",
            &"/CN=etcd-testkit-ca",
            &"-addext",
            &"basicConstraints=critical,CA:TRUE",
            &"-addext",
            &"keyUsage=critical,keyCertSign,cRLSign",
            &"-keyout",
            &ca.key,
            &"-out",
            &ca.cert,
        ])
        .await?;
        let server = issue(
            dir,
            &ca,
            "server",
            &common_name_subject("127.0.0.1"),
            "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .await?;
        let client = issue(
            dir,
            &ca,
            "client",
            &common_name_subject(DEFAULT_CLIENT_CN),
            CLIENT_EXTENSIONS,
        )
        .await?;
        Ok(Self {
            dir: dir.to_owned(),
            ca,
            server,
            client,
        })
    }

    /// The CA certificate (PEM) that signed the server and client certificates.
    pub fn ca(&self) -> &Path {
        &self.ca.cert
    }

    /// The server certificate and key etcd serves clients with.
    pub fn server(&self) -> &CertKey {
        &self.server
    }

    /// The client certificate (common name [`DEFAULT_CLIENT_CN`]).
    pub fn client_cert(&self) -> &Path {
        &self.client.cert
    }

    /// The private key of [`client_cert`](Self::client_cert).
    pub fn client_key(&self) -> &Path {
        &self.client.key
    }

    /// Issues a new client certificate with the given common name, signed by
    /// the cluster's CA (for etcd's CN-based authentication).
    pub async fn issue_client_cert(&self, common_name: &str) -> Result<CertKey> {
        let stem: String = common_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        issue(
            &self.dir,
            &self.ca,
            &format!("client-{stem}-{}", serial()),
            &common_name_subject(common_name),
            CLIENT_EXTENSIONS,
        )
        .await
    }

    /// Replaces the server certificate with one that expired in 2020 (same
    /// key, names and CA). etcd reads its certificate files at every
    /// handshake, so connections made from then on meet the expired
    /// certificate; the cluster need not restart. The new file is renamed
    /// into place, so a handshake never reads half of it.
    pub async fn expire_server_cert(&self) -> Result<()> {
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text)
                .map_err(|e| TestkitError::io(format!("writing {}", path.display()), e))
        };
        let config = self.dir.join("expired-ca.cnf");
        let database = self.dir.join("expired-ca.index");
        write(&database, "")?;
        let serial_file = self.dir.join("expired-ca.serial");
        // An even number of hex digits, as `openssl ca` wants.
        write(&serial_file, &format!("{:016x}\n", serial()))?;
        write(
            &config,
            &format!(
                "[ca]\ndefault_ca = testkit\n\
                 [testkit]\ndatabase = {}\nserial = {}\nnew_certs_dir = {}\n\
                 default_md = sha256\n\
                 policy = any\nunique_subject = no\n\
                 [any]\ncommonName = optional\n",
                database.display(),
                serial_file.display(),
                self.dir.display()
            ),
        )?;
        let expired = self.dir.join("server-expired.crt");
        openssl(&[
            &"ca",
            &"-batch",
            &"-notext",
            &"-config",
            &config,
            &"-cert",
            &self.ca.cert,
            &"-keyfile",
            &self.ca.key,
            &"-in",
            &self.dir.join("server.csr"),
            &"-extfile",
            &self.dir.join("server.ext"),
            &"-startdate",
            &"20200101000000Z",
            &"-enddate",
            &"20200102000000Z",
            &"-out",
            &expired,
        ])
        .await?;
        std::fs::rename(&expired, &self.server.cert)
            .map_err(|e| TestkitError::io(format!("replacing {}", self.server.cert.display()), e))
    }

    /// Issues a client certificate *without* a common name, for etcd's gRPC
    /// proxy: it refuses a certificate with one towards the cluster (with
    /// `--client-cert-auth` and auth on, the server would take that name as
    /// the user of every request the proxy forwards).
    pub(crate) async fn issue_anonymous_client_cert(&self, stem: &str) -> Result<CertKey> {
        issue(
            &self.dir,
            &self.ca,
            &format!("{stem}-{}", serial()),
            "/O=etcd-testkit",
            CLIENT_EXTENSIONS,
        )
        .await
    }
}

/// An `openssl -subj` naming only a common name.
fn common_name_subject(common_name: &str) -> String {
    format!("/CN={}", common_name.replace('/', "\\/"))
}

/// Makes a key and a certificate for `subject` (an `openssl -subj`) in `dir`
/// signed by `ca`, with the given extensions.
async fn issue(
    dir: &Path,
    ca: &CertKey,
    stem: &str,
    subject: &str,
    extensions: &str,
) -> Result<CertKey> {
    let issued = CertKey {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    let csr = dir.join(format!("{stem}.csr"));
    let ext = dir.join(format!("{stem}.ext"));
    let extensions = format!(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{extensions}"
    );
    std::fs::write(&ext, extensions)
        .map_err(|e| TestkitError::io(format!("writing {}", ext.display()), e))?;
    openssl(&[
        &"req",
        &"-new",
        &"-newkey",
        &"ec",
        &"-pkeyopt",
        &"ec_paramgen_curve:prime256v1",
        &"-nodes",
        &"-subj",
        &subject,
        &"-keyout",
        &issued.key,
        &"-out",
        &csr,
    ])
    .await?;
    let serial = serial().to_string();
    openssl(&[
        &"x509",
        &"-req",
        &"-in",
        &csr,
        &"-CA",
        &ca.cert,
        &"-CAkey",
        &ca.key,
        &"-set_serial",
        &serial,
        &"-days",
        &"7",
        &"-extfile",
        &ext,
        &"-out",
        &issued.cert,
    ])
    .await?;
    Ok(issued)
}

/// Runs `openssl args...`.
pub(crate) async fn openssl(args: &[&(dyn AsRef<std::ffi::OsStr> + Sync)]) -> Result<()> {
    command::run(Path::new("openssl"), args, &[], OPENSSL_TIMEOUT)
        .await
        .map(drop)
}

/// A certificate serial number unique within this process (and very likely
/// across processes, as it starts from the clock).
fn serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1);
    let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
