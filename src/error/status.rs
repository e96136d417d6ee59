//! What a gRPC status says: a failure of the client's own connection, told
//! by the error's *source*, or the server's answer, told by its code and
//! catalogue message.
//!
//! A status the client built from a local error carries that error as its
//! source; one decoded from the server's trailers has none. The code alone
//! cannot tell them apart: after a server restart etcd's broken streams
//! fail with `Unknown`, not `Unavailable`.

use std::error::Error as StdError;

use super::catalogue::{catalogue_kind, server_sent};
use super::{Code, ErrorKind, Sent};

/// What a status says: its kind, its code and whether it was sent.
pub(super) struct Classified {
    pub(super) kind: ErrorKind,
    pub(super) code: Code,
    pub(super) sent: Sent,
}

/// Classifies a gRPC status: a local transport failure by its source,
/// a server answer by its code and catalogue message.
pub(super) fn classify_status(status: &tonic::Status) -> Classified {
    match transport_failure(status) {
        Some(TransportFailure::NotConnected) => Classified {
            kind: ErrorKind::Connect,
            code: Code::Unavailable,
            sent: Sent::NotSent,
        },
        Some(TransportFailure::Broken) => Classified {
            kind: ErrorKind::ConnectionLost,
            code: Code::Unavailable,
            sent: Sent::MayHaveBeenApplied,
        },
        None => {
            let kind = catalogue_kind(status.code(), status.message());
            let sent = server_sent(&kind, status.code());
            Classified {
                kind,
                code: status.code(),
                sent,
            }
        }
    }
}

/// What a local transport failure says about delivery.
#[derive(Debug, PartialEq, Eq)]
enum TransportFailure {
    /// No connection existed: the request was not sent.
    NotConnected,
    /// The connection failed while the request could have been in flight.
    Broken,
}

/// A status built by the client from a local error carries that error as
/// its source; one decoded from the server's trailers has none.
fn transport_failure(status: &tonic::Status) -> Option<TransportFailure> {
    let first = StdError::source(status)?;
    let mut next: Option<&(dyn StdError + 'static)> = Some(first);
    while let Some(err) = next {
        if is_connect_failure(err) {
            return Some(TransportFailure::NotConnected);
        }
        next = err.source();
    }
    Some(TransportFailure::Broken)
}

/// Whether an error in a source chain says that no connection was made.
fn is_connect_failure(err: &(dyn StdError + 'static)) -> bool {
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as Io;
        return matches!(
            io.kind(),
            Io::ConnectionRefused
                | Io::AddrNotAvailable
                | Io::HostUnreachable
                | Io::NetworkUnreachable
                // Only connecting has an I/O deadline; a stalled connection
                // is found by HTTP/2 keepalive, which is an h2 error.
                | Io::TimedOut
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::EtcdError;
    use super::*;

    #[test]
    fn local_failures_are_classified_by_source() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = tonic::Status::from_error(Box::new(refused));
        let e = EtcdError::from_status(status);
        assert_eq!(e.kind(), &ErrorKind::Connect);
        assert_eq!(e.sent(), Sent::NotSent);

        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = EtcdError::from_status(tonic::Status::from_error(Box::new(reset)));
        assert_eq!(e.kind(), &ErrorKind::ConnectionLost);
        assert_eq!(e.sent(), Sent::MayHaveBeenApplied);
    }
}
