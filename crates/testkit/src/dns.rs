//! An authoritative DNS server for one test zone, on 127.0.0.1.
//!
//! etcd clients can find a cluster through DNS SRV records
//! (`_etcd-client._tcp.<domain>`, `_etcd-client-ssl._tcp.<domain>`). To
//! test that against real DNS, without touching the machine's resolver,
//! a test starts its own server for a zone of its own, on a free port
//! (UDP and TCP, the same number), with the records it needs, and points
//! the client's resolver at [`DnsServer::address`]. The server is
//! `hickory-server`'s in-memory authority; it stops when dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), etcd_tower_testkit::TestkitError> {
//! use std::net::Ipv4Addr;
//! use etcd_tower_testkit::DnsServer;
//!
//! let dns = DnsServer::builder("etcd.test")
//!     .srv("_etcd-client._tcp", "localhost.", 2379)
//!     .a("m0", Ipv4Addr::LOCALHOST)
//!     .start()
//!     .await?;
//! // ... resolve `_etcd-client._tcp.etcd.test.` through dns.address()
//! # Ok(()) }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

use crate::error::{Result, TestkitError};

/// The records' time to live: short, as a test's zone changes with it.
const TTL: u32 = 5;

/// How many times [`DnsServerBuilder::start`] looks for a port free on both
/// UDP and TCP.
const BIND_ATTEMPTS: usize = 20;

/// Configures a [`DnsServer`]: its zone and records.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct DnsServerBuilder {
    zone: String,
    records: Vec<(String, Entry)>,
}

#[derive(Debug, Clone)]
enum Entry {
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    A(Ipv4Addr),
}

impl DnsServerBuilder {
    /// An SRV record at `name` (relative to the zone unless it ends with
    /// `.`), pointing at `target:port` (`target` likewise relative unless
    /// it ends with `.`, e.g. `localhost.`), priority and weight 0.
    pub fn srv(self, name: &str, target: &str, port: u16) -> Self {
        self.srv_weighted(name, 0, 0, target, port)
    }

    /// An SRV record with a priority and a weight; see [`srv`](Self::srv).
    pub fn srv_weighted(
        mut self,
        name: &str,
        priority: u16,
        weight: u16,
        target: &str,
        port: u16,
    ) -> Self {
        let entry = Entry::Srv {
            priority,
            weight,
            port,
            target: target.to_owned(),
        };
        self.records.push((name.to_owned(), entry));
        self
    }

    /// An A record at `name` (relative to the zone unless it ends with `.`).
    pub fn a(mut self, name: &str, address: Ipv4Addr) -> Self {
        self.records.push((name.to_owned(), Entry::A(address)));
        self
    }

    /// Serves the zone on a free 127.0.0.1 port, over UDP and TCP.
    pub async fn start(self) -> Result<DnsServer> {
        let origin = absolute(&self.zone, &Name::root())?;
        let mut zone: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let serial = 1;
        let soa = SOA::new(
            absolute("ns", &origin)?,
            absolute("hostmaster", &origin)?,
            serial,
            3600,
            600,
            86400,
            TTL,
        );
        let mut records = vec![Record::from_rdata(origin.clone(), TTL, RData::SOA(soa))];
        for (name, entry) in &self.records {
            let name = absolute(name, &origin)?;
            let data = match entry {
                Entry::Srv {
                    priority,
                    weight,
                    port,
                    target,
                } => RData::SRV(SRV::new(
                    *priority,
                    *weight,
                    *port,
                    absolute(target, &origin)?,
                )),
                Entry::A(address) => RData::A(A(*address)),
            };
            records.push(Record::from_rdata(name, TTL, data));
        }
        for record in records {
            if !zone.upsert_mut(record.clone(), serial) {
                return Err(TestkitError::InvalidState(format!(
                    "the test DNS zone {origin} refused the record {record}"
                )));
            }
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let (udp, tcp) = bind_pair().await?;
        let address = udp
            .local_addr()
            .map_err(|e| TestkitError::io("reading the DNS server's address", e))?;
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        tracing::info!(%address, zone = %origin, records = self.records.len(), "test DNS server started");
        Ok(DnsServer {
            address,
            zone: origin.to_ascii(),
            server,
        })
    }
}

/// `name` as an absolute name: as is when it ends with `.`, else under
/// `origin`.
fn absolute(name: &str, origin: &Name) -> Result<Name> {
    let invalid = |e: &dyn std::fmt::Display| {
        TestkitError::InvalidState(format!("{name:?} is not a DNS name: {e}"))
    };
    let parsed = Name::from_ascii(name).map_err(|e| invalid(&e))?;
    if parsed.is_fqdn() {
        return Ok(parsed);
    }
    let mut joined = parsed.append_domain(origin).map_err(|e| invalid(&e))?;
    joined.set_fqdn(true);
    Ok(joined)
}

/// A UDP socket and a TCP listener on the same free 127.0.0.1 port.
async fn bind_pair() -> Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| TestkitError::io("binding a UDP socket on 127.0.0.1", e))?;
        let address = udp
            .local_addr()
            .map_err(|e| TestkitError::io("reading a bound UDP port", e))?;
        match TcpListener::bind(address).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last = Some(error),
        }
    }
    Err(TestkitError::io(
        "finding a 127.0.0.1 port free on both UDP and TCP",
        last.unwrap_or_else(|| std::io::Error::other("no attempt was made")),
    ))
}

/// A running authoritative DNS server for one zone; stops when dropped.
pub struct DnsServer {
    address: SocketAddr,
    zone: String,
    server: Server<Catalog>,
}

impl DnsServer {
    /// Configures a server for `zone` (e.g. `etcd.test`), with its SOA
    /// record and no other.
    pub fn builder(zone: &str) -> DnsServerBuilder {
        DnsServerBuilder {
            zone: zone.to_owned(),
            records: Vec::new(),
        }
    }

    /// Where it listens: UDP and TCP on this address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The zone it serves, as an absolute name (`etcd.test.`).
    pub fn zone(&self) -> &str {
        &self.zone
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Cancelling stops the listeners; dropping the server aborts their
        // tasks.
        self.server.shutdown_token().cancel();
    }
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("address", &self.address)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_relative_to_the_zone_unless_absolute() {
        let origin = absolute("etcd.test", &Name::root()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(origin.to_ascii(), "etcd.test.");
        let srv = absolute("_etcd-client._tcp", &origin).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(srv.to_ascii(), "_etcd-client._tcp.etcd.test.");
        let target = absolute("localhost.", &origin).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target.to_ascii(), "localhost.");
    }
}
