//! Telling a stale stream token from a real permission denial.
//!
//! etcd checks a watch's permission when the watch is *created*, with the
//! token its stream was opened with. Once that token expires, every new
//! create or resume on the stream is refused with the same response as a
//! real denial (`created`, `canceled`, `compact_revision = 0`): on etcd
//! 3.5.1 even the `cancel_reason` text is the same. So the response alone
//! cannot tell "open a new stream with a fresh token" from "you may not
//! watch this".
//!
//! The probe asks a question whose answer *is* structured: a unary,
//! count-only, serializable `Range` over the refused watcher's range, sent
//! through the same service stack with [`ReportTokenGeneration`] in its
//! extensions. The auth layer refreshes an expired token on unary calls and
//! reports which token generation the call finally used.
//!
//! * The probe fails with `PermissionDenied`: the user may not read the
//!   range: a real denial.
//! * The probe succeeds with a token generation different from the stream's:
//!   the stream's token is stale; re-open the stream and resume.
//! * The probe succeeds with the same generation: that proves less than it
//!   seems. Simple tokens live in each member's memory, expire on each
//!   member's own clock and are forgotten by a restart, so the probe may
//!   have reached a member that still knows a token the stream's member has
//!   dropped. The first time this happens to a watcher, the engine probes
//!   again with [`RenewToken`] (the auth layer logs in again, once, unless
//!   it already holds a newer token) and re-opens the stream with the new
//!   token. A member applies the new token when it applies the
//!   `Authenticate` from the Raft log, so a member that lags (just
//!   restarted, or resumed after a freeze) may still refuse it: if the
//!   watcher is refused again and the probe again reads with the stream's
//!   generation, the engine re-opens the stream (with back-off, no new
//!   login) up to [`RECHECKS`] times before it reports a real denial.
//! * No auth layer (both generations `None`): nothing to renew; the same
//!   re-checks, then a real denial.
//! * Any other failure: unknown, treated as a stream fault (re-open with
//!   back-off, which re-creates the watcher and asks again if refused).
//!
//! No message text is read anywhere: server messages are not a contract
//! (etcd changed them between 3.5.1 and 3.5.6), and a client that matches
//! them breaks silently when they change.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb::RangeRequest;
use etcd_tower_core::signal::{RenewToken, ReportTokenGeneration, TokenGeneration};
use etcd_tower_core::{Code, ErrorKind, EtcdError, EtcdRequest, EtcdResponse, Sent};
use tower::{Service, ServiceExt};

/// How many times a watcher refused again after its token was renewed is
/// re-created on a fresh stream (no new login) before the refusal is taken
/// as a real denial.
pub(crate) const RECHECKS: u8 = 2;

/// What a probe found.
#[derive(Debug)]
pub(crate) enum ProbeOutcome {
    /// The range may be read; the call used this token generation.
    Readable(Option<TokenGeneration>),
    /// The range may not be read.
    Denied(EtcdError),
    /// The probe could not tell.
    Failed(EtcdError),
}

/// The verdict for the refused watcher, given the generation its stream
/// was opened with.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The stream's token is stale: re-open and resume.
    StaleToken,
    /// The probe used the stream's own token: ask for a new token (probe
    /// again with [`RenewToken`] of this generation), then re-open.
    Renew(TokenGeneration),
    /// A real denial: end the watcher with this error.
    Denied(EtcdError),
    /// The range reads with the stream's own (already renewed) token: a
    /// denial, unless the stream's member lags; re-check on a new stream
    /// while re-checks are left, then deny.
    Unconfirmed,
    /// Unknown: treat as a stream fault.
    Fault(EtcdError),
}

impl ProbeOutcome {
    /// `may_renew`: whether this watcher has not yet had its token renewed
    /// in this refusal episode (at most one renewal per episode).
    pub(crate) fn verdict(
        self,
        stream_generation: Option<TokenGeneration>,
        may_renew: bool,
    ) -> Verdict {
        match self {
            ProbeOutcome::Readable(generation) if generation != stream_generation => {
                Verdict::StaleToken
            }
            ProbeOutcome::Readable(Some(generation)) if may_renew => Verdict::Renew(generation),
            ProbeOutcome::Readable(_) => Verdict::Unconfirmed,
            ProbeOutcome::Denied(error) => Verdict::Denied(error),
            ProbeOutcome::Failed(error) => Verdict::Fault(error),
        }
    }
}

/// The error a watcher ends with when the server refused it and the probe
/// says the refusal stands.
pub(crate) fn denied() -> EtcdError {
    EtcdError::new(
        ErrorKind::PermissionDenied,
        Code::PermissionDenied,
        "etcdserver: permission denied (the server refused the watch and a read of its range \
         with a valid token confirmed it)",
        Sent::Rejected,
    )
}

/// A probe under way.
pub(crate) type ProbeFuture = Pin<Box<dyn Future<Output = ProbeOutcome> + Send>>;

/// Starts a probe of `[key, range_end)` through `service`; with `renew`,
/// the auth layer first replaces the token of that generation.
pub(crate) fn probe<S>(
    mut service: S,
    key: Bytes,
    range_end: Bytes,
    renew: Option<TokenGeneration>,
    timeout: Duration,
) -> ProbeFuture
where
    S: tower::Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Send + 'static,
    S::Future: Send,
{
    let mut request = EtcdRequest::new(RangeRequest {
        key,
        range_end,
        limit: 1,
        count_only: true,
        serializable: true,
        ..Default::default()
    });
    request.meta.extensions.insert(ReportTokenGeneration);
    if let Some(generation) = renew {
        request.meta.extensions.insert(RenewToken(generation));
    }
    Box::pin(async move {
        let call = async {
            ServiceExt::<EtcdRequest>::ready(&mut service).await?;
            Service::call(&mut service, request).await
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => ProbeOutcome::Failed(EtcdError::client(
                ErrorKind::Timeout,
                "the watch permission probe timed out",
            )),
            Ok(Err(error)) if *error.kind() == ErrorKind::PermissionDenied => {
                ProbeOutcome::Denied(error)
            }
            Ok(Err(error)) => ProbeOutcome::Failed(error),
            Ok(Ok(response)) => {
                ProbeOutcome::Readable(response.extensions.get::<TokenGeneration>().copied())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_structure_only() {
        let g = |n| Some(TokenGeneration(n));
        assert!(matches!(
            ProbeOutcome::Readable(g(2)).verdict(g(1), true),
            Verdict::StaleToken
        ));
        // The stream's own token worked elsewhere: renew once...
        assert!(matches!(
            ProbeOutcome::Readable(g(1)).verdict(g(1), true),
            Verdict::Renew(TokenGeneration(1))
        ));
        // ...and after that it is unconfirmed (re-checked, then denied).
        assert!(matches!(
            ProbeOutcome::Readable(g(1)).verdict(g(1), false),
            Verdict::Unconfirmed
        ));
        assert!(matches!(
            ProbeOutcome::Readable(None).verdict(None, true),
            Verdict::Unconfirmed
        ));
        assert!(matches!(
            ProbeOutcome::Denied(denied()).verdict(g(1), true),
            Verdict::Denied(_)
        ));
        let unavailable = EtcdError::client(ErrorKind::Connect, "down");
        assert!(matches!(
            ProbeOutcome::Failed(unavailable).verdict(g(1), true),
            Verdict::Fault(_)
        ));
    }
}
