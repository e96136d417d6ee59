//! etcd's v3 gRPC API types.
//!
//! Everything here is generated at build time by `build.rs` from the protobuf
//! definitions in `proto/` (compiled in pure Rust with `protox`, then turned
//! into [`prost`] messages and [`tonic`] client stubs). The definitions keep
//! etcd's package, message, field and service names and field numbers, so the
//! types are wire-compatible with any etcd v3 server.
//!
//! Each protobuf package becomes one sibling module, because generated code
//! refers across packages through `super::` paths (for example
//! `super::mvccpb::KeyValue`). Every `bytes` field is a [`bytes::Bytes`], so
//! decoding does not copy keys and values. Only clients are generated: each
//! gRPC service `Foo` is available as `foo_client::FooClient`.

/// Storage types (`mvccpb`): `KeyValue` and watch `Event`s.
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Authentication records (`authpb`): users, roles and permissions.
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// The main etcd v3 API (`etcdserverpb`): the KV, Watch, Lease, Cluster,
/// Maintenance and Auth services with their requests and responses.
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// The distributed lock service (`v3lockpb`).
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// The leader election service (`v3electionpb`).
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}
