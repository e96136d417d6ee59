//! Free loopback ports for etcd members.
//!
//! etcd must be told its ports on the command line, so the kit cannot hand it
//! an already bound socket: it asks the kernel for a free port (bind to
//! `127.0.0.1:0`), releases it and passes the number on. Tests in one process
//! run in parallel, so a port handed out once is remembered in a process-wide
//! set and never handed out again; the kernel alone would happily return the
//! same just-released port to two concurrent callers. The remaining race (some
//! other process binding the port before etcd does) is handled by the cluster,
//! which retries a start that failed with "address already in use".

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::error::{Result, TestkitError};

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Returns a free TCP port on 127.0.0.1 that this process has not handed out before.
pub fn free_port() -> Result<u16> {
    for _ in 0..1000 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| TestkitError::io("binding 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestkitError::io("reading a bound port", e))?
            .port();
        drop(listener);
        let fresh = handed_out()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port);
        if fresh {
            return Ok(port);
        }
    }
    Err(TestkitError::InvalidState(
        "no free loopback port left that this process has not used".into(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ports_are_never_repeated() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            assert!(seen.insert(free_port().unwrap()));
        }
    }
}
