//! Generates the etcd v3 API types from `proto/`.
//!
//! `protox` parses the `.proto` files in pure Rust, so no system `protoc` is
//! needed; `prost-build` then emits the prost messages into `OUT_DIR`, which
//! `src/proto.rs` includes. No gRPC client stubs are generated: the
//! transport (`src/transport/`) sends every RPC itself, from the table in
//! `src/rpc.rs`.

use std::error::Error;

/// The messages that carry a password or a token: their `Debug` is written
/// by hand in `src/proto/redacted.rs`, so that a request or response logged
/// with `{:?}` (by a user, or by any layer) never prints the secret.
const SECRET_MESSAGES: [&str; 5] = [
    ".etcdserverpb.AuthenticateRequest",
    ".etcdserverpb.AuthenticateResponse",
    ".etcdserverpb.AuthUserAddRequest",
    ".etcdserverpb.AuthUserChangePasswordRequest",
    ".authpb.User",
];

/// The etcd API definitions, relative to the `proto/` include directory.
const PROTOS: [&str; 5] = [
    "kv.proto",
    "auth.proto",
    "rpc.proto",
    "v3lock.proto",
    "v3election.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");

    let files = PROTOS.map(|name| format!("proto/{name}"));
    let fds = protox::compile(&files, ["proto"])?;

    prost_build::Config::new()
        // Decode every `bytes` field as `bytes::Bytes` (zero-copy).
        .bytes(["."])
        .skip_debug(SECRET_MESSAGES)
        .compile_fds(fds)?;

    Ok(())
}
