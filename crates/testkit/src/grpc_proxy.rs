//! etcd's own gRPC proxy (`etcd grpc-proxy start`) in front of a cluster.
//!
//! Deployments put etcd's gRPC proxy between clients and the cluster, to
//! coalesce watches, to cache reads, or to confine a tenant to a key prefix
//! with `--namespace`. It is a server of its own, not a pipe: it numbers
//! watches itself, flattens error codes and answers some calls differently
//! from a member, so a client has to be tested through it too. A
//! [`GrpcProxy`] runs it from the cluster's own `etcd` binary, like the
//! kit's members: in its own temp dir (log and data), on a free 127.0.0.1
//! port, spawned so that it dies with the test process, ready only once a
//! request through it was answered by the cluster (polled with a deadline,
//! never a fixed sleep), and killed and removed on drop, also when the test
//! panics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), etcd_tower_testkit::TestkitError> {
//! use etcd_tower_testkit::{binaries, Cluster, GrpcProxy};
//!
//! for bin in binaries() {
//!     let cluster = Cluster::start(&bin).await?;
//!     let proxy = GrpcProxy::builder(&cluster).namespace("tenant/").start().await?;
//!     proxy.etcdctl(&["put", "k", "v"]).await?; // stored as `tenant/k`
//!     // ... point the client under test at proxy.endpoint()
//! }
//! # Ok(()) }
//! ```
//!
//! What the proxy passes on, on etcd 3.4.23, 3.5.1 and 3.5.30 alike:
//!
//! - **Auth tokens**: the proxy forwards each request's `token` metadata, so
//!   password users work through it as they do directly.
//! - **TLS**: in front of a TLS cluster the proxy serves TLS itself, with
//!   the cluster's server certificate, and requires client certificates
//!   signed by the cluster's CA, so a client configured for the cluster
//!   works with the proxy's endpoint unchanged. Towards the cluster the
//!   proxy uses a client certificate of its own (issued by the kit), which
//!   must have **no common name**: the proxy exits at once with `cert has
//!   non empty Common Name` otherwise. A client's certificate common name is
//!   therefore never passed on, so etcd's certificate-based auth does not
//!   work through the proxy (authenticate with a password instead).
//! - **Namespaces**: `--namespace` prefixes the keys of KV, watch and lease
//!   requests, not the names of the Lock and Election services.
//!
//! What it does not: it answers watch creates with ids of its own (0, 1, ...
//! per stream), ignores watch progress requests (no answer at all), and its
//! own `/health` reads without a token, so it reports unhealthy whenever
//! auth is on.
//!
//! Flags: `--endpoints`, `--listen-addr`, `--advertise-client-url`,
//! `--metrics-addr`, `--data-dir`, `--namespace`, `--cacert`/`--cert`/`--key`
//! (towards the cluster) and `--cert-file`/`--key-file`/`--trusted-ca-file`
//! (towards clients) exist on all three versions. etcd 3.5 dials its own
//! `--advertise-client-url` for its `/proxy/health` check and exits after
//! about 5 s when nothing answers there, so the kit always advertises the
//! address the proxy listens on.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use crate::cluster::{Cluster, READY_TIMEOUT, START_ATTEMPTS};
use crate::error::{Result, TestkitError};
use crate::etcdctl::{Ctl, User};
use crate::health;
use crate::ports::free_port;
use crate::spawn::{log_says_port_taken, log_tail, spawn_logged};
use crate::tls::{CertKey, TlsFiles};

/// How a proxy is started; fixed for its whole life.
#[derive(Debug, Clone)]
struct ProxySpec {
    etcd: PathBuf,
    port: u16,
    metrics_port: u16,
    log_path: PathBuf,
    /// Every flag after `grpc-proxy start`.
    args: Vec<OsString>,
    tls: bool,
    /// Whether readiness must be checked with credentials (auth is on).
    auth: bool,
}

/// Configures and starts a [`GrpcProxy`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct GrpcProxyBuilder {
    etcd: PathBuf,
    endpoints: Vec<String>,
    tls: Option<TlsFiles>,
    ctl: Arc<Ctl>,
    auth: bool,
    namespace: Option<String>,
    extra_args: Vec<OsString>,
    ready_timeout: Duration,
}

impl GrpcProxyBuilder {
    /// Prefixes every key with `namespace` (`--namespace`), e.g. `tenant/`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Forwards to these endpoints instead of the cluster's members, e.g.
    /// to a [`Proxy`](crate::Proxy) in front of them for network faults.
    /// They must speak the cluster's scheme (`https` for a TLS cluster).
    pub fn endpoints<S: Into<String>>(mut self, endpoints: impl IntoIterator<Item = S>) -> Self {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Passes an extra flag (after the kit's own, so it overrides them).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// How long `start` waits for the proxy to answer (default 20 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the proxy and waits until a request through it is answered.
    pub async fn start(self) -> Result<GrpcProxy> {
        let client_cert = match &self.tls {
            Some(tls) => Some(tls.issue_anonymous_client_cert("grpc-proxy-client").await?),
            None => None,
        };
        let mut attempt = 1;
        loop {
            let proxy = self.start_once(client_cert.as_ref())?;
            match proxy.wait_ready(self.ready_timeout).await {
                Ok(()) => {
                    tracing::info!(
                        endpoint = %proxy.endpoint(),
                        namespace = ?proxy.namespace,
                        "etcd gRPC proxy ready"
                    );
                    return Ok(proxy);
                }
                Err(e) if attempt < START_ATTEMPTS && log_says_port_taken(&proxy.spec.log_path) => {
                    tracing::warn!(attempt, error = %e, "a port was taken, restarting the gRPC proxy on new ports");
                }
                Err(e) => return Err(e),
            }
            attempt += 1;
        }
    }

    /// Spawns the proxy in a new temp dir on new ports.
    fn start_once(&self, client_cert: Option<&CertKey>) -> Result<GrpcProxy> {
        let dir = tempfile::Builder::new()
            .prefix("etcd-testkit-grpc-proxy-")
            .tempdir()
            .map_err(|e| TestkitError::io("creating the gRPC proxy's temp dir", e))?;
        let proxy = GrpcProxy {
            spec: self.spec(dir.path(), client_cert)?,
            namespace: self.namespace.clone(),
            ctl: Arc::clone(&self.ctl),
            process: Mutex::new(None),
            dir,
        };
        proxy.spawn()?;
        Ok(proxy)
    }

    /// The ports and flags of one start attempt.
    fn spec(&self, dir: &Path, client_cert: Option<&CertKey>) -> Result<ProxySpec> {
        let port = free_port()?;
        let metrics_port = free_port()?;
        let mut args: Vec<OsString> = [
            "grpc-proxy".to_owned(),
            "start".to_owned(),
            format!("--endpoints={}", self.endpoints.join(",")),
            format!("--listen-addr=127.0.0.1:{port}"),
            format!("--advertise-client-url=127.0.0.1:{port}"),
            format!("--metrics-addr=http://127.0.0.1:{metrics_port}"),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        args.push(flag("--data-dir=", &dir.join("data")));
        if let Some(namespace) = &self.namespace {
            args.push(format!("--namespace={namespace}").into());
        }
        if let (Some(tls), Some(client)) = (&self.tls, client_cert) {
            for (name, path) in [
                // Towards the cluster.
                ("--cacert=", tls.ca()),
                ("--cert=", client.cert()),
                ("--key=", client.key()),
                // Towards clients.
                ("--trusted-ca-file=", tls.ca()),
                ("--cert-file=", tls.server().cert()),
                ("--key-file=", tls.server().key()),
            ] {
                args.push(flag(name, path));
            }
        }
        args.extend(self.extra_args.iter().cloned());
        Ok(ProxySpec {
            etcd: self.etcd.clone(),
            port,
            metrics_port,
            log_path: dir.join("grpc-proxy.log"),
            args,
            tls: self.tls.is_some(),
            auth: self.auth,
        })
    }
}

fn flag(name: &str, path: &Path) -> OsString {
    let mut flag = OsString::from(name);
    flag.push(path);
    flag
}

/// etcd's gRPC proxy on 127.0.0.1 in front of a [`Cluster`], killed and
/// deleted on drop. See the [module docs](self).
#[derive(Debug)]
pub struct GrpcProxy {
    spec: ProxySpec,
    namespace: Option<String>,
    ctl: Arc<Ctl>,
    process: Mutex<Option<Child>>,
    // Last, so that it is removed after the process is dead.
    dir: TempDir,
}

impl GrpcProxy {
    /// Configures a proxy in front of every member of `cluster`, with the
    /// cluster's binary, TLS files and (for `etcdctl`) credentials. Start it
    /// after [`Cluster::enable_auth`] if auth is wanted: its readiness check
    /// then goes through it as root.
    pub fn builder(cluster: &Cluster) -> GrpcProxyBuilder {
        GrpcProxyBuilder {
            etcd: cluster.binary().etcd().to_owned(),
            endpoints: cluster.endpoints(),
            tls: cluster.tls().cloned(),
            ctl: Arc::clone(cluster.ctl()),
            auth: cluster.auth_enabled(),
            namespace: None,
            extra_args: Vec::new(),
            ready_timeout: READY_TIMEOUT,
        }
    }

    /// Starts a proxy with no namespace in front of every member of `cluster`.
    pub async fn start(cluster: &Cluster) -> Result<Self> {
        Self::builder(cluster).start().await
    }

    /// The URL clients use, e.g. `http://127.0.0.1:41234` (`https` in front
    /// of a TLS cluster).
    pub fn endpoint(&self) -> String {
        let scheme = if self.spec.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.spec.port)
    }

    /// The socket address of [`endpoint`](Self::endpoint).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.spec.port))
    }

    /// A plain-HTTP URL serving the proxy's `/metrics` and `/health`, also
    /// in front of a TLS cluster.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.metrics_port)
    }

    /// The `--namespace` the proxy prefixes keys with, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The proxy's temp dir (log and data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file the proxy's stdout and stderr go to.
    pub fn log_path(&self) -> &Path {
        &self.spec.log_path
    }

    /// The last `lines` lines of the proxy's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.spec.log_path, lines)
    }

    /// The pid of the running proxy, `None` once it was killed or exited.
    pub fn pid(&self) -> Option<u32> {
        let mut process = self.process();
        let child = process.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
    }

    /// Kills the proxy with `SIGKILL` and waits for it to exit. Does
    /// nothing if it is not running.
    pub fn kill(&self) -> Result<()> {
        let Some(mut child) = self.process().take() else {
            return Ok(());
        };
        let pid = child.id();
        child
            .kill()
            .map_err(|e| TestkitError::io(format!("killing the gRPC proxy (pid {pid})"), e))?;
        child
            .wait()
            .map_err(|e| TestkitError::io(format!("waiting for the gRPC proxy (pid {pid})"), e))?;
        tracing::info!(pid, "killed etcd gRPC proxy (SIGKILL)");
        Ok(())
    }

    /// Kills the proxy if it runs, starts it again on the same port with
    /// the same flags, and waits until it answers.
    pub async fn restart(&self) -> Result<()> {
        self.kill()?;
        self.spawn()?;
        self.wait_ready(READY_TIMEOUT).await
    }

    /// Runs `etcdctl args...` through the proxy (as root once the cluster's
    /// auth is on; TLS files of a TLS cluster) and returns its stdout. Keys
    /// are as the proxy's clients see them: without the namespace.
    pub async fn etcdctl(&self, args: &[&str]) -> Result<String> {
        self.ctl.run(&[self.endpoint()], User::Root, args).await
    }

    /// Like [`etcdctl`](Self::etcdctl), as the given `(user, password)`, or
    /// with no credentials at all for `None`.
    pub async fn etcdctl_as(&self, user: Option<(&str, &str)>, args: &[&str]) -> Result<String> {
        let user = match user {
            Some((name, password)) => User::Named(name, password),
            None => User::Anonymous,
        };
        self.ctl.run(&[self.endpoint()], user, args).await
    }

    fn spawn(&self) -> Result<()> {
        let mut process = self.process();
        if process.is_some() {
            return Err(TestkitError::InvalidState(
                "the gRPC proxy is already running".into(),
            ));
        }
        let child = spawn_logged(
            &self.spec.etcd,
            &self.spec.args,
            &self.spec.log_path,
            "starting grpc-proxy",
        )?;
        tracing::info!(pid = child.id(), endpoint = %self.endpoint(), "started etcd gRPC proxy");
        *process = Some(child);
        Ok(())
    }

    /// Waits until a request through the proxy was answered by the cluster.
    ///
    /// Without auth, the proxy's `/health` (a read through the proxy's own
    /// connection to the cluster, served on the listener clients use, or on
    /// the plain metrics listener in front of a TLS cluster) must say
    /// `"health":"true"`. With auth on, that read carries no token and is
    /// refused, so once `/health` answers at all, `etcdctl endpoint health`
    /// through the proxy's gRPC listener, as root, must succeed.
    async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let health_port = if self.spec.tls {
            self.spec.metrics_port
        } else {
            self.spec.port
        };
        let health_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, health_port));
        loop {
            if let Some(status) = self.exit_status() {
                return Err(TestkitError::GrpcProxyExited {
                    status,
                    logs: self.tail_for_error(),
                });
            }
            let ready = if self.spec.auth {
                health::answers(health_addr).await && self.answers_as_root().await
            } else {
                health::is_healthy(health_addr).await
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: format!("etcd's gRPC proxy at {} to answer", self.endpoint()),
                    waited: timeout,
                    logs: self.tail_for_error(),
                });
            }
            tokio::time::sleep(health::POLL_INTERVAL).await;
        }
    }

    async fn answers_as_root(&self) -> bool {
        self.ctl
            .run(
                &[self.endpoint()],
                User::Root,
                &[
                    "--dial-timeout=1s",
                    "--command-timeout=2s",
                    "endpoint",
                    "health",
                ],
            )
            .await
            .is_ok()
    }

    fn exit_status(&self) -> Option<String> {
        let mut process = self.process();
        match process.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown: {e}")),
        }
    }

    fn tail_for_error(&self) -> String {
        format!(
            "\n--- last lines of the gRPC proxy's log ({}) ---\n{}",
            self.spec.log_path.display(),
            self.log_tail(30)
        )
    }

    fn process(&self) -> MutexGuard<'_, Option<Child>> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for GrpcProxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "etcd-testkit: gRPC proxy at {} in {} at drop during a panic:\n{}",
                self.endpoint(),
                self.dir.path().display(),
                self.log_tail(40)
            );
        }
        if let Err(e) = self.kill() {
            tracing::error!(error = %e, "could not kill the etcd gRPC proxy");
        }
    }
}
