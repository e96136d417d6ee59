//! A watch stream's pieces in any order, joined under a bound (see
//! `etcd_tower_watch::fuzzing::fragments`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    etcd_tower_watch::fuzzing::fragments(data);
});
