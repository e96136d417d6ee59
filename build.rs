//! Generates the etcd v3 API types and tonic client stubs from `proto/`.
//!
//! `protox` parses the `.proto` files in pure Rust, so no system `protoc` is
//! needed; `tonic-prost-build` then emits prost messages and tonic clients into
//! `OUT_DIR`, which `src/proto.rs` includes.

use std::error::Error;

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

    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        // Decode every `bytes` field as `bytes::Bytes` (zero-copy).
        .bytes(".")
        .compile_fds(fds)?;

    Ok(())
}
