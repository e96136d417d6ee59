//! Test kit for etcd-tower: real etcd servers, fault injection and a TCP
//! proxy for tests.
//!
//! Mocks cannot tell us how a client behaves when etcd crashes, hangs, loses
//! its leader or sits behind a broken network, so every integration test
//! starts its *own* real etcd servers with this kit: on free 127.0.0.1 ports,
//! in its own temp dir, torn down on drop even when the test panics (and
//! killed by the kernel if the test process itself dies). Every
//! server-dependent test runs once per supported etcd version:
//!
//! ```no_run
//! # async fn demo() -> Result<(), etcd_tower_testkit::TestkitError> {
//! use etcd_tower_testkit::{binaries, Cluster, Proxy};
//!
//! for bin in binaries() {
//!     let cluster = Cluster::builder(&bin).members(3).start().await?;
//!     let leader = cluster.leader_index().await?;
//!     let proxy = Proxy::start(cluster.member(leader).client_addr()).await?;
//!     // ... point the client under test at proxy.endpoint(), then:
//!     proxy.blackhole(true);
//!     cluster.member(leader).kill()?;
//! }
//! # Ok(()) }
//! ```
//!
//! [`DnsServer`] is an authoritative DNS server for a test zone (SRV and A
//! records), for tests of DNS discovery that must not touch the machine's
//! resolver.
//!
//! [`GrpcProxy`] runs etcd's own gRPC proxy (`etcd grpc-proxy start`, with
//! or without `--namespace`) in front of a cluster, the same way, so that
//! every test can also go through it.
//!
//! [`MisbehavingServer`] is the one server here that is not etcd: an HTTP/2
//! server (h2's server side) that answers each gRPC method wrong on
//! purpose (garbage, lying length prefixes, resets, GOAWAYs, no status,
//! silence), for tests of what the client does with input no real etcd
//! sends.
//!
//! The kit depends on no other etcd-tower crate: it drives etcd through
//! processes, signals, TCP and the `etcdctl` binary, so it cannot share a bug
//! with the code it tests. The binaries come from `scripts/install-etcd.sh`.
#![deny(missing_docs)]

mod binary;
mod cluster;
mod command;
pub mod dns;
mod error;
mod etcdctl;
pub mod grpc_proxy;
mod h2_server;
mod health;
mod jwt;
mod member;
mod ports;
mod proxy;
mod spawn;
mod tls;

pub use binary::{binaries, repo_root, try_binaries, EtcdBinary};
pub use cluster::{Cluster, ClusterBuilder};
pub use dns::{DnsServer, DnsServerBuilder};
pub use error::{Result, TestkitError};
pub use grpc_proxy::{GrpcProxy, GrpcProxyBuilder};
pub use h2_server::{frame, Answer, MisbehavingServer, Received};
pub use jwt::JwtKeys;
pub use member::Member;
pub use ports::free_port;
pub use proxy::Proxy;
pub use tls::{CertKey, TlsFiles, DEFAULT_CLIENT_CN};
