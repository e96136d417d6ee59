//! Which etcd server binaries the tests run against.
//!
//! The client must work with every etcd version it supports, so every
//! server-dependent test loops over [`binaries()`] and runs once per version.
//! A missing binary is an error, never a skip: a test that silently stops
//! covering a server version is worse than a red build. The versions are
//! etcd 3.5.30 (the latest 3.5), etcd 3.5.1 and etcd 3.4.23, installed by
//! `scripts/install-etcd.sh` into `<repo>/.etcd/v3.5.30/`, `<repo>/.etcd/v3.5/`
//! and `<repo>/.etcd/v3.4/`; the `ETCD_BIN`, `ETCD3530_BIN`, `ETCD35_BIN`,
//! `ETCD34_BIN` and `ETCDCTL_BIN` environment variables point the kit
//! elsewhere. Two of the versions are 3.5s, so tell them apart by
//! [`EtcdBinary::version`] or [`EtcdBinary::label`], not by
//! [`EtcdBinary::major_minor`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Result, TestkitError};

/// An etcd server binary, the `etcdctl` that goes with it and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdBinary {
    etcd: PathBuf,
    etcdctl: PathBuf,
    version: String,
}

impl EtcdBinary {
    /// Describes the binaries at the given paths, asking `etcd --version` for the version.
    pub fn new(etcd: impl Into<PathBuf>, etcdctl: impl Into<PathBuf>) -> Result<Self> {
        let etcd = etcd.into();
        let etcdctl = etcdctl.into();
        let version = server_version(&etcd)?;
        Ok(Self {
            etcd,
            etcdctl,
            version,
        })
    }

    /// Path of the `etcd` server binary.
    pub fn etcd(&self) -> &Path {
        &self.etcd
    }

    /// Path of the `etcdctl` binary.
    pub fn etcdctl(&self) -> &Path {
        &self.etcdctl
    }

    /// The full server version, e.g. `3.5.30` or `3.5.1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `(major, minor)` of the server version, e.g. `(3, 4)`, to branch on
    /// behaviour that differs between versions. etcd 3.5.30 and 3.5.1 both
    /// give `(3, 5)`; compare [`version`](Self::version) to tell them apart.
    pub fn major_minor(&self) -> (u32, u32) {
        let mut parts = self.version.split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// A human-readable label for test output, with the full version, e.g.
    /// `etcd 3.5.30` or `etcd 3.5.1`: distinct for every binary of
    /// [`binaries()`].
    pub fn label(&self) -> String {
        format!("etcd {}", self.version)
    }
}

impl fmt::Display for EtcdBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "etcd {} ({})", self.version, self.etcd.display())
    }
}

/// The root of the repository, where `.etcd/` lives.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The etcd binaries every server-dependent test must run against, newest first.
///
/// # Panics
///
/// When a binary is missing or does not run, with a message that says how to
/// install it: a test must not silently skip a server version. Use
/// [`try_binaries`] to handle that case yourself.
pub fn binaries() -> Vec<EtcdBinary> {
    match try_binaries() {
        Ok(binaries) => binaries,
        Err(e) => panic!("etcd-tower-testkit: {e}"),
    }
}

/// Like [`binaries`], but returns the error instead of panicking.
///
/// With `ETCD_BIN` set, only that binary (its `etcdctl` from `ETCDCTL_BIN`, or
/// next to it). Otherwise three, newest first, each with the `etcdctl` next
/// to it:
///
/// | version | variable       | default                     |
/// |---------|----------------|-----------------------------|
/// | 3.5.30  | `ETCD3530_BIN` | `<repo>/.etcd/v3.5.30/etcd` |
/// | 3.5.1   | `ETCD35_BIN`   | `<repo>/.etcd/v3.5/etcd`    |
/// | 3.4.23  | `ETCD34_BIN`   | `<repo>/.etcd/v3.4/etcd`    |
pub fn try_binaries() -> Result<Vec<EtcdBinary>> {
    if let Some(etcd) = std::env::var_os("ETCD_BIN") {
        let etcd = PathBuf::from(etcd);
        let etcdctl = match std::env::var_os("ETCDCTL_BIN") {
            Some(path) => (PathBuf::from(path), "ETCDCTL_BIN"),
            None => (sibling_etcdctl(&etcd), "ETCD_BIN"),
        };
        return Ok(vec![locate((etcd, "ETCD_BIN"), etcdctl)?]);
    }
    let root = repo_root().join(".etcd");
    [
        ("ETCD3530_BIN", "v3.5.30"),
        ("ETCD35_BIN", "v3.5"),
        ("ETCD34_BIN", "v3.4"),
    ]
    .into_iter()
    .map(|(env, dir)| {
        let etcd = std::env::var_os(env)
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(dir).join("etcd"));
        let etcdctl = sibling_etcdctl(&etcd);
        locate((etcd, env), (etcdctl, env))
    })
    .collect()
}

fn sibling_etcdctl(etcd: &Path) -> PathBuf {
    etcd.with_file_name("etcdctl")
}

fn locate(etcd: (PathBuf, &str), etcdctl: (PathBuf, &str)) -> Result<EtcdBinary> {
    for ((path, env), what) in [(&etcd, "etcd"), (&etcdctl, "etcdctl")] {
        if !path.is_file() {
            return Err(TestkitError::MissingBinary {
                what: what.into(),
                path: path.clone(),
                env: (*env).into(),
            });
        }
    }
    EtcdBinary::new(etcd.0, etcdctl.0)
}

/// Runs `etcd --version` and extracts the version from its first line
/// (`etcd Version: 3.5.1`).
fn server_version(etcd: &Path) -> Result<String> {
    let command = format!("{} --version", etcd.display());
    let output = Command::new(etcd)
        .arg("--version")
        .output()
        .map_err(|e| TestkitError::io(format!("running {command}"), e))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(TestkitError::Command {
            command,
            status: output.status.to_string(),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| TestkitError::Parse {
            what: command,
            detail: format!("no `etcd Version:` line in {stdout:?}"),
        })
}
