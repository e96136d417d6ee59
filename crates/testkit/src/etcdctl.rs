//! Driving a cluster with the real `etcdctl`.
//!
//! Set-up steps (users, auth, leader moves) and checks in the kit's own tests
//! go through the `etcdctl` that ships with the server under test, never
//! through the etcd-tower client: the kit must stay independent of the code
//! it is used to test. This module adds what every call needs: the
//! endpoints, the TLS files of a TLS cluster, the root credentials once auth
//! is on, `ETCDCTL_API=3` and bounded time-outs.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::command;
use crate::error::{Result, TestkitError};
use crate::tls::TlsFiles;

/// How long one `etcdctl` process may run in total.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Whose credentials an `etcdctl` call carries.
#[derive(Debug, Clone, Copy)]
pub(crate) enum User<'a> {
    /// The root user once [`Ctl::set_root`] was called, nobody before.
    Root,
    /// No `--user`, even when auth is on.
    Anonymous,
    /// This user and password.
    Named(&'a str, &'a str),
}

/// What `etcdctl` needs to talk to one cluster.
#[derive(Debug)]
pub(crate) struct Ctl {
    etcdctl: PathBuf,
    tls: Option<TlsFiles>,
    root: Mutex<Option<(String, String)>>,
}

impl Ctl {
    pub(crate) fn new(etcdctl: PathBuf, tls: Option<TlsFiles>) -> Self {
        Self {
            etcdctl,
            tls,
            root: Mutex::new(None),
        }
    }

    /// Makes [`User::Root`] calls authenticate as `root:<password>`.
    pub(crate) fn set_root(&self, password: &str) {
        *self.root.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(("root".to_owned(), password.to_owned()));
    }

    /// Runs `etcdctl args...` against `endpoints` and returns its stdout.
    ///
    /// Flags the caller already gives in `args` (`--endpoints`, `--user`,
    /// `--cert`, `--command-timeout`, `--dial-timeout`) are not added again.
    pub(crate) async fn run(
        &self,
        endpoints: &[String],
        user: User<'_>,
        args: &[&str],
    ) -> Result<String> {
        let has = |flag: &str| {
            args.iter()
                .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
        };
        let mut full: Vec<String> = Vec::new();
        if !has("--endpoints") {
            full.push(format!("--endpoints={}", endpoints.join(",")));
        }
        if !has("--dial-timeout") {
            full.push("--dial-timeout=2s".into());
        }
        if !has("--command-timeout") {
            full.push("--command-timeout=5s".into());
        }
        if let (Some(tls), false) = (&self.tls, has("--cert")) {
            full.push(format!("--cacert={}", tls.ca().display()));
            full.push(format!("--cert={}", tls.client_cert().display()));
            full.push(format!("--key={}", tls.client_key().display()));
        }
        if !has("--user") {
            let credentials = match user {
                User::Root => self
                    .root
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .map(|(user, password)| format!("{user}:{password}")),
                User::Anonymous => None,
                User::Named(user, password) => Some(format!("{user}:{password}")),
            };
            if let Some(credentials) = credentials {
                full.push(format!("--user={credentials}"));
            }
        }
        full.extend(args.iter().map(|a| (*a).to_owned()));
        command::run(
            &self.etcdctl,
            &full,
            &[("ETCDCTL_API", "3")],
            PROCESS_TIMEOUT,
        )
        .await
    }
}

/// What `etcdctl endpoint status -w json` says about one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndpointStatus {
    pub(crate) member_id: u64,
    pub(crate) leader: u64,
}

/// Parses the output of `etcdctl endpoint status -w json` for one endpoint.
pub(crate) fn parse_status(json: &str) -> Result<EndpointStatus> {
    let parse_error = |detail: String| TestkitError::Parse {
        what: "etcdctl endpoint status -w json".into(),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| parse_error(format!("{e}: {json}")))?;
    let status = value
        .get(0)
        .and_then(|endpoint| endpoint.get("Status"))
        .ok_or_else(|| parse_error(format!("no [0].Status in {json}")))?;
    let member_id = status
        .get("header")
        .and_then(|h| h.get("member_id"))
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| parse_error(format!("no Status.header.member_id in {json}")))?;
    let leader = status
        .get("leader")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| parse_error(format!("no Status.leader in {json}")))?;
    Ok(EndpointStatus { member_id, leader })
}
