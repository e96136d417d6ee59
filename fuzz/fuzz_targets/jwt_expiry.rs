//! A token from the server, read for its expiry (see
//! `etcd_tower_auth::fuzzing::jwt_expiry`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    etcd_tower_auth::fuzzing::jwt_expiry(data);
});
