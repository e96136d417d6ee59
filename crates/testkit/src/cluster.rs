//! A real etcd cluster owned by one test.
//!
//! Every test starts its own cluster so tests can run in parallel, inject
//! faults without disturbing each other, and never depend on a server someone
//! left running. A cluster lives in its own temp dir (data, logs, keys,
//! certificates) on free loopback ports, is ready when every member answers
//! `/health` (polled with a deadline, never a fixed sleep), and is torn down
//! on `Drop` — also when the test panics — by killing every member and
//! removing the temp dir.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use crate::binary::EtcdBinary;
use crate::error::{Result, TestkitError};
use crate::etcdctl::{Ctl, User};
use crate::health;
use crate::jwt::JwtKeys;
use crate::member::{Boot, Member, MemberSpec};
use crate::ports::free_port;
use crate::spawn::log_says_port_taken;
use crate::tls::TlsFiles;

/// How long a start or restart may take before it fails.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How many times a start is retried when some other process took one of the
/// ports between the kit choosing it and etcd binding it.
pub(crate) const START_ATTEMPTS: usize = 3;

/// Configures and starts a [`Cluster`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct ClusterBuilder {
    binary: EtcdBinary,
    members: usize,
    auth_token_ttl: Option<u64>,
    jwt_token_ttl: Option<Duration>,
    tls: bool,
    unix_sockets: bool,
    extra_args: Vec<OsString>,
    ready_timeout: Duration,
}

impl ClusterBuilder {
    /// How many members the cluster has (default 1).
    pub fn members(mut self, members: usize) -> Self {
        self.members = members.max(1);
        self
    }

    /// Passes `--auth-token-ttl=<secs>`: how long a simple token stays valid.
    pub fn auth_token_ttl(mut self, secs: u64) -> Self {
        self.auth_token_ttl = Some(secs);
        self
    }

    /// Uses JWT auth tokens (`--auth-token=jwt,...,sign-method=RS256,ttl=..`)
    /// signed with a fresh RSA key pair, valid for `ttl` (whole seconds, at least 1).
    pub fn jwt_token_ttl(mut self, ttl: Duration) -> Self {
        self.jwt_token_ttl = Some(ttl);
        self
    }

    /// Serves clients over HTTPS with a fresh CA and requires client
    /// certificates (`--client-cert-auth`). See [`Cluster::tls`].
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Has every member listen for clients on a Unix socket too, beside its
    /// TCP port: `unix://localhost:<port>` (`unixs://` for a TLS cluster),
    /// the form every etcd version takes (3.5.1 and 3.4 refuse
    /// `unix:///absolute/path`), which names the socket file
    /// `localhost:<port>` in etcd's working directory: the test's, so a
    /// test should first move to a directory of its own (e.g. under
    /// `CARGO_TARGET_TMPDIR`), where a client's `unix://localhost:<port>`
    /// finds it too. The files are removed when the cluster is dropped.
    /// See [`Cluster::unix_endpoints`]; members added later listen on TCP
    /// only.
    pub fn unix_sockets(mut self) -> Self {
        self.unix_sockets = true;
        self
    }

    /// Passes an extra flag to every member (after the kit's own flags, so it
    /// overrides them), e.g. `.arg("--election-timeout=500")`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// How long `start` waits for every member to be healthy (default 20 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts every member and waits until each is healthy.
    pub async fn start(self) -> Result<Cluster> {
        let mut attempt = 1;
        loop {
            let cluster = self.start_once().await?;
            match cluster.wait_ready(self.ready_timeout).await {
                Ok(()) => {
                    tracing::info!(
                        version = %self.binary.version(),
                        members = self.members,
                        endpoints = ?cluster.endpoints(),
                        "etcd cluster ready"
                    );
                    return Ok(cluster);
                }
                Err(e) if attempt < START_ATTEMPTS && cluster.port_clash() => {
                    tracing::warn!(attempt, error = %e, "a port was taken, restarting the cluster on new ports");
                }
                Err(e) => return Err(e),
            }
            attempt += 1;
        }
    }

    /// Prepares the temp dir, keys and ports, and spawns every member.
    async fn start_once(&self) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("etcd-testkit-")
            .tempdir()
            .map_err(|e| TestkitError::io("creating the cluster's temp dir", e))?;
        let tls = match self.tls {
            true => Some(TlsFiles::generate(&dir.path().join("tls")).await?),
            false => None,
        };
        let jwt = match self.jwt_token_ttl {
            Some(ttl) => Some(JwtKeys::generate(dir.path(), ttl).await?),
            None => None,
        };
        let ports = (0..self.members)
            .map(|_| Ok((free_port()?, free_port()?, free_port()?)))
            .collect::<Result<Vec<_>>>()?;
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer, _))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "etcd-testkit".into());
        let mut common: Vec<OsString> = vec![
            format!("--initial-cluster={initial_cluster}").into(),
            format!("--initial-cluster-token={token}").into(),
        ];
        if let Some(secs) = self.auth_token_ttl {
            common.push(format!("--auth-token-ttl={secs}").into());
        }
        if let Some(jwt) = &jwt {
            common.push(jwt.auth_token_flag().into());
        }
        if let Some(tls) = &tls {
            for (flag, path) in [
                ("--trusted-ca-file=", tls.ca()),
                ("--cert-file=", tls.server().cert()),
                ("--key-file=", tls.server().key()),
            ] {
                let mut arg = OsString::from(flag);
                arg.push(path);
                common.push(arg);
            }
            common.push("--client-cert-auth".into());
        }
        common.extend(self.extra_args.iter().cloned());

        let ctl = Arc::new(Ctl::new(self.binary.etcdctl().to_owned(), tls.clone()));
        let members = ports
            .into_iter()
            .enumerate()
            .map(|(index, (client_port, peer_port, metrics_port))| {
                let mut common_args = common.clone();
                if self.unix_sockets {
                    // After the member's own `--listen-client-urls`: etcd
                    // takes the last one.
                    let (tcp, unix) = if tls.is_some() {
                        ("https", "unixs")
                    } else {
                        ("http", "unix")
                    };
                    common_args.push(
                        format!(
                            "--listen-client-urls={tcp}://127.0.0.1:{client_port},\
                             {unix}://{}",
                            unix_socket(client_port)
                        )
                        .into(),
                    );
                }
                let spec = MemberSpec {
                    index,
                    etcd: self.binary.etcd().to_owned(),
                    data_dir: dir.path().join(format!("m{index}.etcd")),
                    log_path: dir.path().join(format!("m{index}.log")),
                    client_port,
                    peer_port,
                    metrics_port,
                    tls: tls.is_some(),
                    common_args,
                    multi_member: self.members > 1,
                };
                Member::new(spec, Arc::clone(&ctl))
            })
            .collect();
        let cluster = Cluster {
            binary: self.binary.clone(),
            members,
            ctl,
            tls,
            jwt,
            auth_enabled: false,
            next_index: self.members,
            unix_sockets: self.unix_sockets.then_some(self.members),
            dir,
        };
        for member in &cluster.members {
            member.spawn(Boot::New)?;
        }
        Ok(cluster)
    }
}

/// A running etcd cluster on loopback, killed and deleted on drop.
#[derive(Debug)]
pub struct Cluster {
    binary: EtcdBinary,
    members: Vec<Member>,
    ctl: Arc<Ctl>,
    tls: Option<TlsFiles>,
    jwt: Option<JwtKeys>,
    auth_enabled: bool,
    /// The index the next added member takes (indexes are never reused).
    next_index: usize,
    /// With [`ClusterBuilder::unix_sockets`]: how many members (the first)
    /// listen on a socket.
    unix_sockets: Option<usize>,
    // Last, so that it is removed after the members are dead.
    dir: TempDir,
}

impl Cluster {
    /// Configures a cluster of the given etcd binary (1 member, plain HTTP, no auth).
    pub fn builder(binary: &EtcdBinary) -> ClusterBuilder {
        ClusterBuilder {
            binary: binary.clone(),
            members: 1,
            auth_token_ttl: None,
            jwt_token_ttl: None,
            tls: false,
            unix_sockets: false,
            extra_args: Vec::new(),
            ready_timeout: READY_TIMEOUT,
        }
    }

    /// Starts a default single-member cluster.
    pub async fn start(binary: &EtcdBinary) -> Result<Self> {
        Self::builder(binary).start().await
    }

    /// The etcd binary the cluster runs.
    pub fn binary(&self) -> &EtcdBinary {
        &self.binary
    }

    /// Every member's client URL, e.g. `["http://127.0.0.1:41234"]`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// With [`ClusterBuilder::unix_sockets`], the Unix socket URL of each
    /// member the cluster started with (`unix://localhost:41234`,
    /// `unixs://` on a TLS cluster), in index order; else empty.
    pub fn unix_endpoints(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "unixs" } else { "unix" };
        self.unix_socket_members()
            .map(|member| format!("{scheme}://{}", unix_socket(member.spec().client_port)))
            .collect()
    }

    fn unix_socket_members(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|member| member.index() < self.unix_sockets.unwrap_or(0))
    }

    /// The member at `index`.
    ///
    /// # Panics
    ///
    /// If `index >= member_count()`, like slice indexing.
    pub fn member(&self, index: usize) -> &Member {
        &self.members[index]
    }

    /// All members, in index order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// How many members the cluster has.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The cluster's temp dir (data, logs, keys, certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The TLS files of a cluster built with `.tls()`.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The JWT key pair of a cluster built with `.jwt_token_ttl(..)`.
    pub fn jwt(&self) -> Option<&JwtKeys> {
        self.jwt.as_ref()
    }

    /// How the kit runs `etcdctl` against this cluster (shared with the
    /// [`GrpcProxy`](crate::GrpcProxy)s in front of it, so that they see
    /// the root credentials once auth is enabled).
    pub(crate) fn ctl(&self) -> &Arc<Ctl> {
        &self.ctl
    }

    /// Whether [`enable_auth`](Self::enable_auth) was called.
    pub fn auth_enabled(&self) -> bool {
        self.auth_enabled
    }

    /// The last 40 lines of every member's log, with headers.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                format!(
                    "--- {} ({}) ---\n{}\n",
                    m.name(),
                    m.log_path().display(),
                    m.log_tail(40)
                )
            })
            .collect()
    }

    /// Runs `etcdctl args...` against every endpoint and returns its stdout.
    ///
    /// Adds `--endpoints`, TLS flags on TLS clusters and `--user root:<pw>`
    /// once auth is enabled, unless `args` gives that flag itself (so
    /// `&["--endpoints", &proxy.endpoint(), "get", "k"]` goes through a proxy).
    pub async fn etcdctl(&self, args: &[&str]) -> Result<String> {
        self.ctl.run(&self.endpoints(), User::Root, args).await
    }

    /// Like [`etcdctl`](Self::etcdctl), as the given `(user, password)`, or
    /// with no credentials at all for `None`.
    pub async fn etcdctl_as(&self, user: Option<(&str, &str)>, args: &[&str]) -> Result<String> {
        let user = match user {
            Some((name, password)) => User::Named(name, password),
            None => User::Anonymous,
        };
        self.ctl.run(&self.endpoints(), user, args).await
    }

    /// Creates `user` with `password` and a role `<user>-role` that may read
    /// and write every key under `prefix`, and grants it to the user. Before
    /// or after [`enable_auth`](Self::enable_auth).
    pub async fn add_user(&self, user: &str, password: &str, prefix: &str) -> Result<()> {
        let role = format!("{user}-role");
        self.etcdctl(&["user", "add", &format!("{user}:{password}")])
            .await?;
        self.etcdctl(&["role", "add", &role]).await?;
        self.etcdctl(&[
            "role",
            "grant-permission",
            &role,
            "--prefix=true",
            "readwrite",
            prefix,
        ])
        .await?;
        self.etcdctl(&["user", "grant-role", user, &role]).await?;
        Ok(())
    }

    /// Creates the `root` user with `root_password` and the `root` role, and
    /// enables authentication. Later [`etcdctl`](Self::etcdctl) calls (and the
    /// members' own) authenticate as root.
    pub async fn enable_auth(&mut self, root_password: &str) -> Result<()> {
        let root = format!("root:{root_password}");
        self.etcdctl(&["user", "add", &root]).await?;
        // The root role may be implicit, depending on the version.
        match self.etcdctl(&["role", "add", "root"]).await {
            Err(TestkitError::Command { stderr, .. }) if stderr.contains("already exists") => {}
            other => {
                other?;
            }
        }
        self.etcdctl(&["user", "grant-role", "root", "root"])
            .await?;
        self.etcdctl(&["auth", "enable"]).await?;
        self.ctl.set_root(root_password);
        self.auth_enabled = true;
        tracing::info!("enabled etcd auth");
        Ok(())
    }

    /// Waits until a majority of the running members agree on a leader, and
    /// returns its index.
    pub async fn leader_index(&self) -> Result<usize> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(leader) = self.current_leader().await {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: "the members to agree on a leader".into(),
                    waited: READY_TIMEOUT,
                    logs: format!("\n{}", self.logs()),
                });
            }
            tokio::time::sleep(health::POLL_INTERVAL).await;
        }
    }

    /// Makes member `to` the leader (`etcdctl move-leader`) and waits until it is.
    pub async fn move_leader(&self, to: usize) -> Result<()> {
        let from = self.leader_index().await?;
        if from == to {
            return Ok(());
        }
        let target = format!("{:x}", self.member(to).member_id().await?);
        self.member(from).etcdctl(&["move-leader", &target]).await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.current_leader().await != Some(to) {
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: format!("member m{to} to become leader"),
                    waited: READY_TIMEOUT,
                    logs: format!("\n{}", self.logs()),
                });
            }
            tokio::time::sleep(health::POLL_INTERVAL).await;
        }
        tracing::info!(from, to, "moved etcd leader");
        Ok(())
    }

    /// Adds a member on new ports to the running cluster, as an operator
    /// replacing a machine does: `etcdctl member add`, then the new member
    /// starts with `--initial-cluster-state existing` and joins. Returns
    /// its position in [`members`](Self::members) once it is healthy. Its
    /// name is `m<n>`, `n` never used before in this cluster.
    pub async fn add_member(&mut self) -> Result<usize> {
        let mut attempt = 1;
        loop {
            match self.try_add_member().await {
                Ok(member) => {
                    self.members.push(member);
                    return Ok(self.members.len() - 1);
                }
                // A port picked for it was taken meanwhile by another
                // process: take the member out again, and try new ports.
                Err((error, Some((member, id)))) if attempt < START_ATTEMPTS => {
                    if !log_says_port_taken(member.log_path()) {
                        return Err(error);
                    }
                    tracing::warn!(attempt, %error, "a port was taken; adding the member on new ports");
                    if let Err(error) = member.kill() {
                        tracing::debug!(%error, "the failed member is gone already");
                    }
                    self.reconfigure(&["member", "remove", &id]).await?;
                }
                Err((error, _)) => return Err(error),
            }
            attempt += 1;
        }
    }

    /// One attempt of [`add_member`](Self::add_member). A failure after
    /// the member was added to the cluster comes with it and its id.
    async fn try_add_member(
        &mut self,
    ) -> std::result::Result<Member, (TestkitError, Option<(Member, String)>)> {
        let template = self
            .members
            .first()
            .map(|member| member.spec().clone())
            .ok_or_else(|| {
                (
                    TestkitError::InvalidState("the cluster has no member".into()),
                    None,
                )
            })?;
        let index = self.next_index;
        self.next_index += 1;
        let ports = (|| Ok((free_port()?, free_port()?, free_port()?)))();
        let (client_port, peer_port, metrics_port) = ports.map_err(|e| (e, None))?;
        let name = format!("m{index}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let added = self
            .reconfigure(&["member", "add", &name, &format!("--peer-urls={peer_url}")])
            .await
            .map_err(|e| (e, None))?;
        // "Member 8e9e05c52164694d added to cluster ...": the new id, in hex.
        let id = added
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let initial_cluster = self
            .members
            .iter()
            .map(|member| format!("{}={}", member.name(), member.peer_url()))
            .chain([format!("{name}={peer_url}")])
            .collect::<Vec<_>>()
            .join(",");
        let mut common_args: Vec<OsString> = template
            .common_args
            .iter()
            .filter(|arg| !arg.to_string_lossy().starts_with("--initial-cluster="))
            .cloned()
            .collect();
        common_args.push(format!("--initial-cluster={initial_cluster}").into());
        let spec = MemberSpec {
            index,
            data_dir: self.dir.path().join(format!("{name}.etcd")),
            log_path: self.dir.path().join(format!("{name}.log")),
            client_port,
            peer_port,
            metrics_port,
            common_args,
            multi_member: true,
            ..template
        };
        let member = Member::new(spec, Arc::clone(&self.ctl));
        if let Err(error) = member.spawn(Boot::Existing) {
            return Err((error, Some((member, id))));
        }
        if let Err(error) = member.wait_healthy(READY_TIMEOUT).await {
            return Err((error, Some((member, id))));
        }
        tracing::info!(member = %name, client_url = %member.client_url(), "etcd member added");
        Ok(member)
    }

    /// Removes the member at `position` from the cluster (`etcdctl member
    /// remove`, through the other members) and kills its process; it no
    /// longer appears in [`members`](Self::members) or
    /// [`endpoints`](Self::endpoints), so later positions shift down.
    pub async fn remove_member(&mut self, position: usize) -> Result<()> {
        let member = self.members.get(position).ok_or_else(|| {
            TestkitError::InvalidState(format!("the cluster has no member at {position}"))
        })?;
        let id = format!("{:x}", member.member_id().await?);
        let others: Vec<String> = self
            .members
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != position)
            .map(|(_, member)| member.client_url())
            .collect();
        let endpoints = format!("--endpoints={}", others.join(","));
        self.reconfigure(&[&endpoints, "member", "remove", &id])
            .await?;
        let member = self.members.remove(position);
        // A removed member shuts itself down; it may be gone already.
        if let Err(error) = member.kill() {
            tracing::debug!(member = %member.name(), %error, "removed etcd member already gone");
        }
        tracing::info!(member = %member.name(), "etcd member removed");
        Ok(())
    }

    /// Runs a membership change with `etcdctl`. etcd refuses one until
    /// every member has been connected for its health interval (5 s) with
    /// `unhealthy cluster`, so a cluster just started or just changed is
    /// asked again until it takes it, within [`READY_TIMEOUT`].
    async fn reconfigure(&self, args: &[&str]) -> Result<String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.etcdctl(args).await {
                Err(error)
                    if error.to_string().contains("unhealthy cluster")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(health::POLL_INTERVAL).await;
                }
                done => return done,
            }
        }
    }

    /// Waits until every running, not stopped member is healthy.
    pub async fn wait_healthy(&self) -> Result<()> {
        for member in &self.members {
            if member.is_running() && !member.is_stopped() {
                member.wait_healthy(READY_TIMEOUT).await?;
            }
        }
        Ok(())
    }

    /// The leader a majority of the responding members agree on, if any.
    async fn current_leader(&self) -> Option<usize> {
        let mut statuses = Vec::new();
        for (index, member) in self.members.iter().enumerate() {
            if member.is_running() && !member.is_stopped() {
                if let Ok(status) = member.status().await {
                    statuses.push((index, status));
                }
            }
        }
        let (leader, leader_status) = statuses
            .iter()
            .find(|(_, status)| status.member_id == status.leader)?;
        let agree = statuses
            .iter()
            .filter(|(_, status)| status.leader == leader_status.member_id)
            .count();
        (agree > self.members.len() / 2).then_some(*leader)
    }

    /// Waits until every member is healthy, failing fast if one exits.
    async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for member in &self.members {
                if let Some(status) = member.exit_status() {
                    return Err(TestkitError::MemberExited {
                        member: member.name(),
                        status,
                        logs: format!("\n{}", self.logs()),
                    });
                }
            }
            let mut ready = true;
            for member in &self.members {
                ready = ready && member.probe_health().await;
            }
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: format!("{} etcd member(s) to be healthy", self.members.len()),
                    waited: timeout,
                    logs: format!("\n{}", self.logs()),
                });
            }
            tokio::time::sleep(health::POLL_INTERVAL).await;
        }
    }

    /// Whether a member failed because one of its ports was taken.
    fn port_clash(&self) -> bool {
        self.members
            .iter()
            .any(|m| log_says_port_taken(m.log_path()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Shown by the test harness only for the failing test: the quickest
            // way to see why etcd misbehaved.
            eprintln!(
                "etcd-testkit: {} cluster in {} at drop during a panic:\n{}",
                self.binary.label(),
                self.dir.path().display(),
                self.logs()
            );
        }
        for member in &self.members {
            if let Err(e) = member.kill() {
                tracing::error!(member = %member.name(), error = %e, "could not kill etcd member");
            }
        }
        for member in self.unix_socket_members() {
            // A killed etcd leaves its socket file behind.
            let _ = std::fs::remove_file(unix_socket(member.spec().client_port));
        }
        tracing::debug!(dir = %self.dir.path().display(), "removing etcd cluster dir");
    }
}

/// The Unix socket (relative to the working directory) a member whose
/// client port is `port` listens on with [`ClusterBuilder::unix_sockets`].
fn unix_socket(port: u16) -> String {
    format!("localhost:{port}")
}
