//! etcd's v3 gRPC API types.
//!
//! Everything here is generated at build time by `build.rs` from the protobuf
//! definitions in `proto/` (compiled in pure Rust with `protox`, then turned
//! into [`prost`] messages). The definitions keep
//! etcd's package, message, field and service names and field numbers, so the
//! types are wire-compatible with any etcd v3 server.
//!
//! Each protobuf package becomes one sibling module, because generated code
//! refers across packages through `super::` paths (for example
//! `super::mvccpb::KeyValue`). Every `bytes` field is a [`bytes::Bytes`], so
//! decoding does not copy keys and values. Only messages are generated, no
//! gRPC stubs: the [transport](crate::transport) sends each RPC of the
//! [table](crate::rpc) itself.
//!
//! The messages that carry a password or a token (`AuthenticateRequest`,
//! `AuthenticateResponse`, `AuthUserAddRequest`,
//! `AuthUserChangePasswordRequest`, `authpb::User`) print the secret as
//! `<redacted>` in their `Debug` output.

mod redacted;

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
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
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
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
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
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
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
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
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
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}
