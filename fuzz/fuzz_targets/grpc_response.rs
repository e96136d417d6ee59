//! A gRPC response body from the server: decoded as every response type,
//! and read as a stream however it is cut (see
//! `etcd_tower_core::transport::fuzzing::grpc_response`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    etcd_tower_core::transport::fuzzing::grpc_response(data);
});
