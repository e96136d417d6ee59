//! Running short-lived helper programs (`etcdctl`, `openssl`) with a deadline.
//!
//! A helper that hangs (say, `etcdctl` against a stopped member) must fail the
//! test with a useful message instead of hanging it, and must not be left
//! running afterwards: each run is bounded by a time-out and the process is
//! killed when the run is abandoned. `ETCDCTL_*` variables of the test's own
//! environment are not passed on, as `etcdctl` refuses a flag that an
//! environment variable also sets.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::error::{Result, TestkitError};

/// Runs `program args...` with extra environment `envs`, returning its stdout
/// when it exits successfully within `timeout`.
pub(crate) async fn run<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Result<String> {
    let command_line = std::iter::once(program.as_os_str())
        .chain(args.iter().map(AsRef::as_ref))
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = tokio::process::Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(key);
        }
    }
    let child = command
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| TestkitError::io(format!("spawning `{command_line}`"), e))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => {
            output.map_err(|e| TestkitError::io(format!("running `{command_line}`"), e))?
        }
        Err(_) => {
            return Err(TestkitError::Timeout {
                what: format!("`{command_line}` to finish"),
                waited: timeout,
                logs: String::new(),
            })
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(TestkitError::Command {
            command: command_line,
            status: output.status.to_string(),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned(),
        })
    }
}
