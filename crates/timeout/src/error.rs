//! The error a passed deadline becomes.

use std::time::Duration;

use etcd_tower_core::{Code, ErrorKind, EtcdError, Rpc, Sent};

use crate::Scope;

/// Where the call was when its deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The deadline had passed before the call was made: nothing was sent.
    BeforeCall,
    /// Waiting for a unary answer, or for a stream to open.
    Answer,
    /// The stream was open; its first message had not come.
    FirstMessage,
}

/// A deadline error: kind [`ErrorKind::Timeout`], code `DeadlineExceeded`.
///
/// Once the call was made the outcome is unknown, so the error says
/// [`Sent::MayHaveBeenApplied`], read-only RPCs included: for a read it
/// only means "sent, no answer", which is harmless, and one rule is easier
/// to reason about than two.
pub(crate) fn elapsed(rpc: Rpc, timeout: Duration, scope: Scope, stage: Stage) -> EtcdError {
    let deadline = match scope {
        Scope::Call => "deadline",
        Scope::Attempt => "per-attempt deadline",
    };
    let (message, sent) = match stage {
        Stage::BeforeCall => (
            format!("the {timeout:?} {deadline} had passed before the {rpc} call was made; nothing was sent"),
            Sent::NotSent,
        ),
        Stage::Answer if rpc.is_streaming() => (
            format!("the {timeout:?} {deadline} passed before the {rpc} stream opened"),
            Sent::MayHaveBeenApplied,
        ),
        Stage::Answer => (
            format!("the {timeout:?} {deadline} passed before the {rpc} call was answered"),
            Sent::MayHaveBeenApplied,
        ),
        Stage::FirstMessage => (
            format!("the {timeout:?} {deadline} passed before the first message of the {rpc} stream"),
            Sent::MayHaveBeenApplied,
        ),
    };
    EtcdError::new(ErrorKind::Timeout, Code::DeadlineExceeded, message, sent)
}
