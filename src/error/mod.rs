//! One error type for the whole stack.
//!
//! Every layer and the transport fail with [`EtcdError`], which answers the
//! three questions a caller (or a retry policy) asks of a failure:
//!
//! * **Which etcd error was it?** [`ErrorKind`] names every entry of etcd's
//!   error catalogue, plus the client's own (validation, connection).
//! * **What did the server say?** The gRPC [`Code`] and the server's message.
//! * **Was the request sent?** [`Sent`]: never sent (safe to send again),
//!   sent and rejected by the server (not applied), or sent with no answer
//!   (it may have been applied; repeating a write could apply it twice).
//!
//! Code matches on [`EtcdError::kind`] and [`EtcdError::sent`]; people read
//! its `Display`, one sentence that says the same: what happened (with the
//! key and revision when the error knows them), whether the request was
//! sent, and, at the end, the gRPC code and the message as they came, for
//! searching logs and etcd's sources:
//!
//! ```text
//! history before revision 7 has been compacted; refused by the server, not applied (gRPC OutOfRange: etcdserver: mvcc: required revision has been compacted)
//! key "jobs/", revision 3: history before revision 7 has been compacted; refused by the server, not applied (gRPC OutOfRange: ...)
//! the connection broke while the request was in flight; sent, may have been applied (gRPC Unavailable: connection reset)
//! ```
//!
//! The gRPC code is the primary signal. The message only tells apart
//! catalogue entries that share a code (etcd's messages are the stable way
//! every official client names these errors); a message the catalogue does
//! not know maps to [`ErrorKind::Other`], keeping its code. A transport
//! failure is classified from the error's *source* (connection refused,
//! reset, HTTP/2 error), never from its code alone: after a server restart
//! etcd's broken streams fail with `Unknown`, not `Unavailable`.
//!
//! The parts live in files of their own: the kinds and their words
//! (`kind.rs`), etcd's catalogue as one row per entry (`catalogue.rs`), and
//! how a gRPC status is classified (`status.rs`).

mod catalogue;
mod kind;
mod status;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
pub use tonic::Code;

pub use kind::ErrorKind;

use crate::metric_names::code_label;

/// Whether a failed request reached the server, and what that means for
/// sending it again.
///
/// Its `Display` is the words [`EtcdError`]'s `Display` uses: `not sent`,
/// `refused by the server, not applied`, `sent, may have been applied`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sent {
    /// The request never left the client (it failed validation, or no
    /// connection could be made). Sending it again is always safe.
    NotSent,
    /// The server received the request and rejected it before applying
    /// anything.
    Rejected,
    /// The request was sent but its outcome is unknown (the connection
    /// broke, a deadline passed, or the server timed out waiting for
    /// consensus). A write may have been applied.
    MayHaveBeenApplied,
}

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sent::NotSent => "not sent",
            Sent::Rejected => "refused by the server, not applied",
            Sent::MayHaveBeenApplied => "sent, may have been applied",
        })
    }
}

/// The error of every etcd-tower service.
///
/// It is one pointer wide, so `Result<EtcdResponse, EtcdError>` stays small
/// on the hot path, and cheap to clone.
///
/// Its `Display` is a sentence for people (see the [module docs](self));
/// match on [`kind`](Self::kind) and [`sent`](Self::sent) in code, never on
/// the text.
///
/// ```
/// use etcd_tower_core::{Code, ErrorKind, EtcdError, Sent};
///
/// let denied = EtcdError::new(
///     ErrorKind::PermissionDenied,
///     Code::PermissionDenied,
///     "etcdserver: permission denied",
///     Sent::Rejected,
/// )
/// .with_key("bob/k");
/// assert_eq!(
///     denied.to_string(),
///     "key \"bob/k\": permission denied; refused by the server, not applied \
///      (gRPC PermissionDenied: etcdserver: permission denied)"
/// );
/// ```
#[derive(Clone)]
pub struct EtcdError {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    code: Code,
    message: String,
    sent: Sent,
    /// The key the failed request was about, when the code that made the
    /// error knew it.
    key: Option<Bytes>,
    /// The revision the failed request asked for (a read's revision, a
    /// watch's start), when the code that made the error knew it.
    requested_revision: Option<i64>,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl EtcdError {
    /// A new error with every field given.
    pub fn new(kind: ErrorKind, code: Code, message: impl Into<String>, sent: Sent) -> Self {
        EtcdError {
            inner: Box::new(Inner {
                kind,
                code,
                message: message.into(),
                sent,
                key: None,
                requested_revision: None,
                source: None,
            }),
        }
    }

    /// An error the client found before sending anything: a validation
    /// failure or a bad configuration. Its gRPC code is the one etcd uses
    /// for the same mistake (`InvalidArgument` for most).
    pub fn client(kind: ErrorKind, message: impl Into<String>) -> Self {
        let code = match kind {
            ErrorKind::Connect | ErrorKind::Closed => Code::Unavailable,
            ErrorKind::Timeout => Code::DeadlineExceeded,
            ErrorKind::UnexpectedResponse => Code::Internal,
            _ => Code::InvalidArgument,
        };
        EtcdError::new(kind, code, message, Sent::NotSent)
    }

    /// Classifies a gRPC status: a local transport failure by its source,
    /// a server answer by its code and catalogue message.
    pub fn from_status(status: tonic::Status) -> Self {
        let classified = status::classify_status(&status);
        let message = status.message().to_owned();
        EtcdError::new(classified.kind, classified.code, message, classified.sent)
            .with_source(status)
    }

    /// Attaches the error that caused this one.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Arc::new(source));
        self
    }

    /// Replaces what is known about delivery (used by layers that know
    /// better, e.g. a timeout that fired before the request was sent).
    pub fn with_sent(mut self, sent: Sent) -> Self {
        self.inner.sent = sent;
        self
    }

    /// Names the key the failed request was about, for people to read in
    /// `Display` (the watch engine knows a rejected watch's key; the server
    /// never says).
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.inner.key = Some(key.into());
        self
    }

    /// Names the revision the failed request asked for (a read at a
    /// revision, a watch from one), for people to read in `Display`.
    pub fn with_requested_revision(mut self, revision: i64) -> Self {
        self.inner.requested_revision = Some(revision);
        self
    }

    /// Which error it was.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.inner.code
    }

    /// The server's message as it was sent (etcd prefixes its own with
    /// `etcdserver: `), or the client's description.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Whether the request reached the server.
    pub fn sent(&self) -> Sent {
        self.inner.sent
    }

    /// The key the failed request was about, when it was named
    /// ([`with_key`](Self::with_key)).
    pub fn key(&self) -> Option<&Bytes> {
        self.inner.key.as_ref()
    }

    /// The revision the failed request asked for, when it was named
    /// ([`with_requested_revision`](Self::with_requested_revision)).
    pub fn requested_revision(&self) -> Option<i64> {
        self.inner.requested_revision
    }

    /// The compaction revision, for a [`ErrorKind::Compacted`] error that
    /// carries one.
    pub fn compact_revision(&self) -> Option<i64> {
        match self.inner.kind {
            ErrorKind::Compacted { compact_revision } => compact_revision,
            _ => None,
        }
    }

    /// Whether the request certainly was not applied, so that sending it
    /// again cannot apply it twice.
    pub fn is_not_applied(&self) -> bool {
        self.inner.sent != Sent::MayHaveBeenApplied
    }
}

impl fmt::Debug for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("EtcdError");
        debug
            .field("kind", &self.inner.kind)
            .field("code", &self.inner.code)
            .field("message", &self.inner.message)
            .field("sent", &self.inner.sent);
        if let Some(key) = &self.inner.key {
            debug.field("key", key);
        }
        if let Some(revision) = &self.inner.requested_revision {
            debug.field("requested_revision", revision);
        }
        debug.finish()
    }
}

impl fmt::Display for EtcdError {
    /// `[key "K", revision R: ]what happened; whether it was sent (gRPC
    /// CODE: message)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        match (&inner.key, inner.requested_revision) {
            (Some(key), Some(revision)) => {
                write!(f, "key {}, revision {revision}: ", QuotedKey(key))?
            }
            (Some(key), None) => write!(f, "key {}: ", QuotedKey(key))?,
            (None, Some(revision)) => write!(f, "revision {revision}: ")?,
            (None, None) => {}
        }
        write!(
            f,
            "{}; {} (gRPC {}",
            inner.kind,
            inner.sent,
            code_label(inner.code)
        )?;
        if !inner.message.is_empty() {
            write!(f, ": {}", inner.message)?;
        }
        f.write_str(")")
    }
}

/// A key in double quotes, bytes outside printable ASCII escaped (`\xff`),
/// cut after [`QuotedKey::MAX`] bytes: keys are bytes, and a log line is no
/// place for a megabyte of them.
struct QuotedKey<'a>(&'a [u8]);

impl QuotedKey<'_> {
    const MAX: usize = 128;
}

impl fmt::Display for QuotedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(Self::MAX)];
        write!(f, "\"{}\"", shown.escape_ascii())?;
        if shown.len() < self.0.len() {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl StdError for EtcdError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<tonic::Status> for EtcdError {
    fn from(status: tonic::Status) -> Self {
        EtcdError::from_status(status)
    }
}

#[cfg(test)]
mod tests;
