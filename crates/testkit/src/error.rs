//! The kit's one error type.
//!
//! Every failure carries enough context to debug a red CI run without
//! re-running it: the command line that failed with its stderr, or the tail
//! of each etcd member's log when a cluster did not become ready.

use std::path::PathBuf;
use std::time::Duration;

/// Why a test kit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// An etcd or etcdctl binary is not where the kit looks for it.
    #[error("{what} not found at {}: run scripts/install-etcd.sh (or set {env})", path.display())]
    MissingBinary {
        /// Which binary was looked for.
        what: String,
        /// Where it was looked for.
        path: PathBuf,
        /// The environment variable that overrides that location.
        env: String,
    },

    /// An operating system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What the kit was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A helper command (`etcdctl`, `openssl`, `etcd --version`) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for copy-pasting into a shell.
        command: String,
        /// How it exited.
        status: String,
        /// Its standard output.
        stdout: String,
        /// Its standard error.
        stderr: String,
    },

    /// Something did not happen before its deadline.
    #[error("timed out after {waited:?} waiting for {what}{logs}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the kit waited.
        waited: Duration,
        /// The tail of every member's log (may be empty).
        logs: String,
    },

    /// An etcd member exited while the kit was waiting for it to be ready.
    #[error("etcd member {member} exited during start-up ({status}){logs}")]
    MemberExited {
        /// The member's name.
        member: String,
        /// How it exited.
        status: String,
        /// The tail of every member's log.
        logs: String,
    },

    /// etcd's gRPC proxy exited while the kit was waiting for it to be ready.
    #[error("etcd's gRPC proxy exited during start-up ({status}){logs}")]
    GrpcProxyExited {
        /// How it exited.
        status: String,
        /// The tail of the proxy's log.
        logs: String,
    },

    /// A command's output was not what the kit expected.
    #[error("unexpected output from {what}: {detail}")]
    Parse {
        /// Which command or endpoint answered.
        what: String,
        /// What was wrong with it.
        detail: String,
    },

    /// The operation does not apply in the current state (e.g. `stop()` on a
    /// killed member).
    #[error("{0}")]
    InvalidState(String),
}

impl TestkitError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Shorthand for results of the test kit.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
