//! One etcd member process and the faults a test can inject into it.
//!
//! A member is a real `etcd` process with its own ports and data directory in
//! the cluster's temp dir. The process can be killed (`SIGKILL`, a crash),
//! restarted with the same data, flags and ports (recovery), or frozen with
//! `SIGSTOP` and thawed with `SIGCONT` (a hung server: its sockets stay open
//! but nothing answers). The kit always signals the `etcd` process itself,
//! never a wrapper shell. Output goes to a log file next to the data so that
//! a failure can be read after the fact.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::error::{Result, TestkitError};
use crate::etcdctl::{parse_status, Ctl, User};
use crate::health;
use crate::spawn::{log_tail, spawn_logged};

/// Whether a start is the cluster's first (bootstrap) or a later restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Boot {
    /// `--initial-cluster-state new`.
    New,
    /// `--initial-cluster-state existing`.
    Existing,
}

/// How a member is started; fixed for its whole life.
#[derive(Debug, Clone)]
pub(crate) struct MemberSpec {
    pub(crate) index: usize,
    pub(crate) etcd: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) log_path: PathBuf,
    pub(crate) client_port: u16,
    pub(crate) peer_port: u16,
    pub(crate) metrics_port: u16,
    pub(crate) tls: bool,
    /// Flags shared by every member: initial cluster, auth, TLS, extra.
    pub(crate) common_args: Vec<OsString>,
    /// Whether a restart passes `--initial-cluster-state existing`.
    pub(crate) multi_member: bool,
}

/// One etcd member of a [`Cluster`](crate::Cluster).
#[derive(Debug)]
pub struct Member {
    spec: MemberSpec,
    ctl: Arc<Ctl>,
    process: Mutex<Option<Child>>,
    stopped: AtomicBool,
}

impl Member {
    /// How the member is started.
    pub(crate) fn spec(&self) -> &MemberSpec {
        &self.spec
    }

    pub(crate) fn new(spec: MemberSpec, ctl: Arc<Ctl>) -> Self {
        Self {
            spec,
            ctl,
            process: Mutex::new(None),
            stopped: AtomicBool::new(false),
        }
    }

    /// The member's position in the cluster, from 0.
    pub fn index(&self) -> usize {
        self.spec.index
    }

    /// The member's etcd name (`m0`, `m1`, ...).
    pub fn name(&self) -> String {
        format!("m{}", self.spec.index)
    }

    /// The URL clients use, e.g. `http://127.0.0.1:41234` (`https` for TLS clusters).
    pub fn client_url(&self) -> String {
        let scheme = if self.spec.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.spec.client_port)
    }

    /// The socket address of [`client_url`](Self::client_url), e.g. to point a [`Proxy`](crate::Proxy) at.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.spec.client_port))
    }

    /// The URL other members reach this one at (always plain HTTP).
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.peer_port)
    }

    /// A plain-HTTP URL serving `/metrics` and `/health`, also on TLS clusters.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.metrics_port)
    }

    /// The member's Prometheus metrics (`GET /metrics` on
    /// [`metrics_url`](Self::metrics_url)), in the text exposition format.
    pub async fn metrics(&self) -> Result<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.spec.metrics_port));
        let response = health::get(addr, "/metrics")
            .await
            .map_err(|e| TestkitError::io(format!("reading the metrics of {}", self.name()), e))?;
        Ok(response)
    }

    /// The sum of every sample of the metric `name` whose labels contain
    /// `label` (for example `grpc_method="LeaseKeepAlive"`); 0 when none.
    pub async fn metric_sum(&self, name: &str, label: &str) -> Result<f64> {
        let metrics = self.metrics().await?;
        Ok(metrics
            .lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with('{'))
            .filter(|line| line.contains(label))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// The member's data directory (kept across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.spec.data_dir
    }

    /// The file the member's stdout and stderr go to (appended across restarts).
    pub fn log_path(&self) -> &Path {
        &self.spec.log_path
    }

    /// The last `lines` lines of the member's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.spec.log_path, lines)
    }

    /// The pid of the running etcd process, `None` once it was killed or exited.
    pub fn pid(&self) -> Option<u32> {
        let mut process = self.process();
        let child = process.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
    }

    /// Whether the process is running (possibly stopped by [`stop`](Self::stop)).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Kills the process with `SIGKILL` and waits for it to exit: a crash.
    /// Does nothing if it is not running.
    pub fn kill(&self) -> Result<()> {
        let Some(mut child) = self.process().take() else {
            return Ok(());
        };
        let pid = child.id();
        child
            .kill()
            .map_err(|e| TestkitError::io(format!("killing {} (pid {pid})", self.name()), e))?;
        child
            .wait()
            .map_err(|e| TestkitError::io(format!("waiting for {} (pid {pid})", self.name()), e))?;
        self.stopped.store(false, Ordering::Relaxed);
        tracing::info!(member = %self.name(), pid, "killed etcd member (SIGKILL)");
        Ok(())
    }

    /// Freezes the process with `SIGSTOP`: its sockets stay open, nothing
    /// answers. Returns once every thread of the process is stopped (the
    /// signal is asynchronous: on a loaded machine a request sent right
    /// after it could otherwise still be answered).
    pub fn stop(&self) -> Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.stopped.store(true, Ordering::Relaxed);
        if let Some(pid) = self.pid() {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while !all_threads_stopped(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// Resumes a process frozen by [`stop`](Self::stop) with `SIGCONT`.
    pub fn cont(&self) -> Result<()> {
        self.signal(Signal::SIGCONT)?;
        self.stopped.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the process is frozen by [`stop`](Self::stop).
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Kills the process if it runs, starts it again with the same data
    /// directory, flags and ports, and waits until it is healthy.
    pub async fn restart(&self) -> Result<()> {
        self.kill()?;
        let boot = if self.spec.multi_member {
            Boot::Existing
        } else {
            Boot::New
        };
        self.spawn(boot)?;
        self.wait_healthy(crate::cluster::READY_TIMEOUT).await
    }

    /// Waits until the member answers `/health` with `"health":"true"`.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(TestkitError::MemberExited {
                    member: self.name(),
                    status,
                    logs: self.tail_for_error(),
                });
            }
            if self.probe_health().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: format!("etcd member {} to be healthy", self.name()),
                    waited: timeout,
                    logs: self.tail_for_error(),
                });
            }
            tokio::time::sleep(health::POLL_INTERVAL).await;
        }
    }

    /// The member's raft id, from `etcdctl endpoint status`.
    pub async fn member_id(&self) -> Result<u64> {
        Ok(self.status().await?.member_id)
    }

    /// Whether this member believes it is the raft leader.
    pub async fn is_leader(&self) -> Result<bool> {
        let status = self.status().await?;
        Ok(status.member_id == status.leader)
    }

    /// Runs `etcdctl` against this member only (as root once auth is on).
    pub async fn etcdctl(&self, args: &[&str]) -> Result<String> {
        self.ctl.run(&[self.client_url()], User::Root, args).await
    }

    pub(crate) async fn status(&self) -> Result<crate::etcdctl::EndpointStatus> {
        let json = self
            .ctl
            .run(
                &[self.client_url()],
                User::Root,
                &[
                    "--dial-timeout=1s",
                    "--command-timeout=2s",
                    "endpoint",
                    "status",
                    "-w",
                    "json",
                ],
            )
            .await?;
        parse_status(&json)
    }

    /// Whether `/health` says healthy right now. TLS members are probed on
    /// their plain-HTTP metrics listener, which serves the same `/health`.
    pub(crate) async fn probe_health(&self) -> bool {
        let port = if self.spec.tls {
            self.spec.metrics_port
        } else {
            self.spec.client_port
        };
        health::is_healthy(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await
    }

    /// How the process exited, if it was started and has exited on its own.
    pub(crate) fn exit_status(&self) -> Option<String> {
        let mut process = self.process();
        match process.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown: {e}")),
        }
    }

    /// Starts the etcd process (which must not be running).
    pub(crate) fn spawn(&self, boot: Boot) -> Result<()> {
        let mut process = self.process();
        if process.is_some() {
            return Err(TestkitError::InvalidState(format!(
                "etcd member {} is already running",
                self.name()
            )));
        }
        let args = self.args(boot);
        let marker = format!("starting {} {boot:?}", self.name());
        let child = spawn_logged(&self.spec.etcd, &args, &self.spec.log_path, &marker)?;
        tracing::info!(
            member = %self.name(),
            pid = child.id(),
            client_url = %self.client_url(),
            ?boot,
            "started etcd member"
        );
        *process = Some(child);
        self.stopped.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn args(&self, boot: Boot) -> Vec<OsString> {
        let spec = &self.spec;
        let client_url = self.client_url();
        let peer_url = self.peer_url();
        let state = match boot {
            Boot::New => "new",
            Boot::Existing => "existing",
        };
        let mut args: Vec<OsString> = [
            format!("--name={}", self.name()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--listen-metrics-urls={}", self.metrics_url()),
            format!("--initial-cluster-state={state}"),
            // 3.4 defaults to the deprecated capnslog logger; zap on both
            // versions gives the same structured log format.
            "--logger=zap".to_owned(),
            "--log-outputs=stderr".to_owned(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let mut data_dir = OsString::from("--data-dir=");
        data_dir.push(&spec.data_dir);
        args.push(data_dir);
        args.extend(spec.common_args.iter().cloned());
        args
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        let pid = self.pid().ok_or_else(|| {
            TestkitError::InvalidState(format!("etcd member {} is not running", self.name()))
        })?;
        let raw = i32::try_from(pid)
            .map_err(|_| TestkitError::InvalidState(format!("pid {pid} out of range")))?;
        signal::kill(Pid::from_raw(raw), sig).map_err(|e| {
            TestkitError::io(
                format!("sending {sig} to {} (pid {pid})", self.name()),
                e.into(),
            )
        })?;
        tracing::info!(member = %self.name(), pid, signal = %sig, "signalled etcd member");
        Ok(())
    }

    fn tail_for_error(&self) -> String {
        format!(
            "\n--- last lines of {} ({}) ---\n{}",
            self.name(),
            self.spec.log_path.display(),
            self.log_tail(30)
        )
    }

    fn process(&self) -> MutexGuard<'_, Option<Child>> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether every thread of process `pid` is in the stopped state (`T`),
/// read from `/proc/<pid>/task/*/stat`; `true` where `/proc` cannot tell.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|stat| {
                // The state follows the command name, which is in parentheses.
                let after = stat.rsplit_once(')')?.1;
                after
                    .split_whitespace()
                    .next()
                    .map(|state| state == "T" || state == "t")
            })
            .unwrap_or(true)
    })
}
