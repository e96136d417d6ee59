//! Entry points for the libFuzzer targets in `fuzz/` (cargo-fuzz), built
//! only under `--cfg fuzzing`; not part of the API.
//!
//! Each takes the fuzzer's bytes and panics on any broken property, which
//! is what libFuzzer reports as a finding.

use bytes::Bytes;

use super::fuzz_support::{assert_typed, decode_as, read_stream};
use crate::rpc::Rpc;

/// `data` as a gRPC response body, with no header of the fuzzer's own (a
/// real frame from `tests/corpus/grpc/` is a valid input as it is):
///
/// * `data` itself, unframed, decoded as the response type of every RPC:
///   a clean round trip or a typed decode error;
/// * `data` read as the inbound side of a streaming call, whole, in chunks
///   of a size taken from the data, and byte by byte (up to 4 KiB), with
///   no limit and with a limit of half its length: the same messages (or
///   a failure) every way it is cut, none over the limit, nothing held
///   beyond what arrived; every message decoded as every response type.
pub fn grpc_response(data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    for &rpc in Rpc::ALL {
        assert_typed(decode_as(rpc, data.clone()));
    }
    let step = 1 + data.iter().map(|&b| usize::from(b)).sum::<usize>() % 13;
    for max_recv in [usize::MAX, data.len() / 2] {
        let whole = read_stream(std::slice::from_ref(&data), max_recv);
        let mut cuts = vec![chunks(&data, step)];
        if data.len() <= 4096 {
            cuts.push(chunks(&data, 1));
        }
        for chunked in cuts {
            let read = read_stream(&chunked, max_recv);
            match (&whole, &read) {
                (Ok(whole), Ok(read)) => {
                    assert_eq!(whole, read, "cut differently, read differently")
                }
                (Err(_), Err(_)) => {}
                (whole, read) => panic!("whole: {whole:?}; in chunks of {step}: {read:?}"),
            }
        }
        if let Ok(messages) = whole {
            for message in messages {
                for &rpc in Rpc::ALL {
                    assert_typed(decode_as(rpc, message.clone()));
                }
            }
        }
    }
}

/// `data` in chunks of `step` bytes (the last one shorter).
fn chunks(data: &Bytes, step: usize) -> Vec<Bytes> {
    (0..data.len())
        .step_by(step)
        .map(|start| data.slice(start..data.len().min(start + step)))
        .collect()
}
