//! Property tests ("fuzzing" with proptest) of everything the transport
//! parses from the network: the gRPC message framing in `codec.rs` and the
//! protobuf decoding of every response type in the RPC table.
//!
//! They run in every `cargo test` with a modest number of cases (a few
//! hundred each, well under a second apiece) and for as long as wanted with
//! proptest's own variable; the libFuzzer target `grpc_response` (`fuzz/`,
//! through [`fuzzing`](super::fuzzing) and the readers of
//! [`fuzz_support`](super::fuzz_support) these tests share) searches the
//! same ground by coverage:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p etcd-tower-core --lib transport::fuzz_tests
//! ```
//!
//! What is checked:
//!
//! * arbitrary bytes, and mutations of real frames, decoded as every
//!   response type of the table give `Ok` or a typed `Status`, never a
//!   panic, and whatever decodes re-encodes and decodes back equal;
//! * arbitrary byte streams cut into arbitrary chunks, read the way a
//!   streaming call reads them ([`StreamReader`] follows
//!   `GrpcStream::poll_next` in `call.rs` step by step) or the way a unary
//!   call does ([`read_unary`] follows `receive_unary`), never panic, never
//!   yield a message over `max_recv`, and never hold more than what arrived;
//! * valid frames of several response types survive any cut into chunks;
//! * a length prefix over `max_recv` (4 GiB against 1 MiB) is refused with
//!   `OutOfRange` before anything of that size is allocated: a counting
//!   allocator for this test binary records the largest single allocation
//!   made on the test's thread;
//! * a frame with the compressed flag set is refused, whatever follows;
//! * the seed corpus in `tests/corpus/grpc/` (real-shaped responses, one
//!   frame per file, named `<Rpc>.<what>.bin`) decodes as its RPC's
//!   response, and each file survives every cut into two chunks and every
//!   type. The files named `<Rpc>.etcd-<version>.*` are the exact bytes a
//!   real etcd sent (see [`capture`] to capture them again); the others
//!   are written by `ETCD_TOWER_WRITE_CORPUS=1` from [`corpus_messages`]
//!   for shapes a capture does not easily give;
//! * and, in [`wire`], the same through the real `Transport` against an
//!   in-process HTTP/2 server that answers with scripted DATA chunks:
//!   valid answers however cut, garbage (typed error, no hang, and the
//!   next call still works), a 4 GiB prefix against 1 MiB.
//!
//! A unary call reads the length prefix as soon as it is in and refuses a
//! claim over `max_recv` (or more bytes than claimed) before it buffers the
//! rest (`receive_unary` in `call.rs`); [`wire`] checks it through the
//! real transport.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use prost::Message;

use super::codec::{self, PREFIX_LEN};
use super::fuzz_support::{
    assert_typed, cut, decode_as, frame, read_stream, read_unary, with_response_type, StreamReader,
};
use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;
use crate::proto::{v3electionpb as election, v3lockpb as lock};
use crate::rpc::Rpc;

mod capture;
mod wire;

/// Cases per property in a normal `cargo test`; `PROPTEST_CASES` overrides.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(CASES);
    if let Some(cases) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.cases = cases;
    }
    // No persisted failure files inside src/: a failure prints its input.
    config.failure_persistence = None;
    config
}

// ----- Watching allocations -----

/// The system allocator, recording the largest single allocation (or
/// reallocation) made on a thread while that thread watches.
struct PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = WATCHING.try_with(|watching| {
        if watching.get() {
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(size)));
        }
    });
}

// The crate denies `unsafe`; this test-only allocator is its one exception:
// the only way to see that no buffer of a claimed size is reserved.
// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping
// touches only const-initialised thread-locals, which do not allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the largest single allocation it
/// made on this thread.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.with(|peak| peak.set(0));
    WATCHING.with(|watching| watching.set(true));
    let out = f();
    WATCHING.with(|watching| watching.set(false));
    (out, PEAK.with(Cell::get))
}

/// `message` decoded as the response type of `rpc` and encoded again.
fn reencoded(rpc: Rpc, message: Bytes) -> Vec<u8> {
    fn reencode<M: Message + Default>(message: Bytes) -> Vec<u8> {
        codec::decode::<M>(message).unwrap().encode_to_vec()
    }
    with_response_type!(rpc, reencode(message))
}

// ----- Random messages -----

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::new()),
        Just(Bytes::from_static(b"\0")),
        Just(Bytes::from_static(b"\xff")),
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from),
    ]
}

fn header() -> impl Strategy<Value = Option<pb::ResponseHeader>> {
    proptest::option::of(
        (any::<u64>(), any::<u64>(), any::<i64>(), any::<u64>()).prop_map(
            |(cluster_id, member_id, revision, raft_term)| pb::ResponseHeader {
                cluster_id,
                member_id,
                revision,
                raft_term,
            },
        ),
    )
}

fn key_value() -> impl Strategy<Value = mvccpb::KeyValue> {
    (
        bytes(24),
        bytes(64),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(key, value, create_revision, mod_revision, version, lease)| mvccpb::KeyValue {
                key,
                create_revision,
                mod_revision,
                version,
                value,
                lease,
            },
        )
}

fn range_response() -> impl Strategy<Value = pb::RangeResponse> {
    (
        header(),
        proptest::collection::vec(key_value(), 0..5),
        any::<bool>(),
        any::<i64>(),
    )
        .prop_map(|(header, kvs, more, count)| pb::RangeResponse {
            header,
            kvs,
            more,
            count,
        })
}

fn put_response() -> impl Strategy<Value = pb::PutResponse> {
    (header(), proptest::option::of(key_value()))
        .prop_map(|(header, prev_kv)| pb::PutResponse { header, prev_kv })
}

fn delete_response() -> impl Strategy<Value = pb::DeleteRangeResponse> {
    (
        header(),
        any::<i64>(),
        proptest::collection::vec(key_value(), 0..3),
    )
        .prop_map(|(header, deleted, prev_kvs)| pb::DeleteRangeResponse {
            header,
            deleted,
            prev_kvs,
        })
}

fn txn_response() -> impl Strategy<Value = pb::TxnResponse> {
    use pb::response_op::Response as R;
    let leaf = prop_oneof![
        range_response().prop_map(R::ResponseRange),
        put_response().prop_map(R::ResponsePut),
        delete_response().prop_map(R::ResponseDeleteRange),
    ]
    .prop_map(|response| pb::ResponseOp {
        response: Some(response),
    });
    // Nested transactions, two levels deep.
    let op = leaf.prop_recursive(2, 12, 4, |inner| {
        (
            header(),
            any::<bool>(),
            proptest::collection::vec(inner, 0..4),
        )
            .prop_map(|(header, succeeded, responses)| pb::ResponseOp {
                response: Some(R::ResponseTxn(pb::TxnResponse {
                    header,
                    succeeded,
                    responses,
                })),
            })
    });
    (header(), any::<bool>(), proptest::collection::vec(op, 0..4)).prop_map(
        |(header, succeeded, responses)| pb::TxnResponse {
            header,
            succeeded,
            responses,
        },
    )
}

fn watch_response() -> impl Strategy<Value = pb::WatchResponse> {
    let event = (
        0..2i32,
        proptest::option::of(key_value()),
        proptest::option::of(key_value()),
    )
        .prop_map(|(r#type, kv, prev_kv)| mvccpb::Event {
            r#type,
            kv,
            prev_kv,
        });
    (
        header(),
        any::<i64>(),
        any::<[bool; 3]>(),
        any::<i64>(),
        "[a-z ]{0,16}",
        proptest::collection::vec(event, 0..5),
    )
        .prop_map(
            |(
                header,
                watch_id,
                [created, canceled, fragment],
                compact_revision,
                cancel_reason,
                events,
            )| {
                pb::WatchResponse {
                    header,
                    watch_id,
                    created,
                    canceled,
                    compact_revision,
                    cancel_reason,
                    fragment,
                    events,
                }
            },
        )
}

fn keep_alive_response() -> impl Strategy<Value = pb::LeaseKeepAliveResponse> {
    (header(), any::<i64>(), any::<i64>())
        .prop_map(|(header, id, ttl)| pb::LeaseKeepAliveResponse { header, id, ttl })
}

/// A random response of one of the types above, with its RPC and its
/// encoding (unframed).
fn any_response() -> impl Strategy<Value = (Rpc, Bytes)> {
    fn encoded<M: Message>(rpc: Rpc) -> impl Fn(M) -> (Rpc, Bytes) {
        move |m| (rpc, Bytes::from(m.encode_to_vec()))
    }
    prop_oneof![
        range_response().prop_map(encoded(Rpc::Range)),
        put_response().prop_map(encoded(Rpc::Put)),
        delete_response().prop_map(encoded(Rpc::DeleteRange)),
        txn_response().prop_map(encoded(Rpc::Txn)),
        watch_response().prop_map(encoded(Rpc::Watch)),
        keep_alive_response().prop_map(encoded(Rpc::LeaseKeepAlive)),
    ]
}

/// A mutation of a valid encoding: bytes flipped, inserted, or cut off.
#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &[u8], mutations: &[Mutation]) -> Bytes {
    let mut bytes = bytes.to_vec();
    for m in mutations {
        let n = bytes.len();
        match *m {
            Mutation::Set(i, b) if n > 0 => bytes[i % n] = b,
            Mutation::Set(..) => {}
            Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
        }
    }
    Bytes::from(bytes)
}

// ----- The properties -----

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes as every response type: `Ok` (and a clean round
    /// trip) or a typed decode error.
    #[test]
    fn arbitrary_bytes_decode_as_every_response_type_or_fail_typed(
        message in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let message = Bytes::from(message);
        for &rpc in Rpc::ALL {
            assert_typed(decode_as(rpc, message.clone()));
        }
    }

    /// Valid responses with bytes flipped, inserted or cut off, as every
    /// response type: reaches deeper into the decoders than random bytes.
    #[test]
    fn mutated_responses_decode_or_fail_typed(
        (_, message) in any_response(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let message = mutate(&message, &mutations);
        for &rpc in Rpc::ALL {
            assert_typed(decode_as(rpc, message.clone()));
        }
    }

    /// Arbitrary bytes in arbitrary chunks, read as a stream and as a
    /// unary body, under a small and an unbounded limit: no panic, no
    /// message over the limit, nothing held beyond what arrived.
    #[test]
    fn arbitrary_chunks_never_panic(
        stream in proptest::collection::vec(any::<u8>(), 0..512),
        points in proptest::collection::vec(any::<usize>(), 0..8),
        max_recv in prop_oneof![0..64usize, Just(usize::MAX)],
    ) {
        let chunks = cut(&Bytes::from(stream), &points);
        if let Ok(messages) = read_stream(&chunks, max_recv) {
            for message in messages {
                assert_typed(decode_as(Rpc::Watch, message));
            }
        }
        if let Ok(message) = read_unary(&chunks, max_recv) {
            prop_assert!(message.len() <= max_recv);
            assert_typed(decode_as(Rpc::Range, message));
        }
    }

    /// Valid frames of several response types, back to back, cut into
    /// arbitrary chunks: the stream reads back exactly those messages, and
    /// each frame alone, however cut, is a whole unary response.
    #[test]
    fn valid_frames_survive_any_split(
        responses in proptest::collection::vec(any_response(), 1..5),
        points in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut stream = BytesMut::new();
        for (_, message) in &responses {
            stream.extend_from_slice(&frame(&RawMessage(message.clone())));
        }
        let stream = stream.freeze();
        let largest = responses.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
        let read = read_stream(&cut(&stream, &points), largest).unwrap();
        prop_assert_eq!(read.len(), responses.len());
        for ((rpc, sent), received) in responses.iter().zip(read) {
            prop_assert_eq!(&received, sent);
            decode_as(*rpc, received).unwrap();
        }
        let (rpc, first) = &responses[0];
        let framed = frame(&RawMessage(first.clone()));
        let unary = read_unary(&cut(&framed, &points), first.len()).unwrap();
        prop_assert_eq!(&unary, first);
        decode_as(*rpc, unary).unwrap();
        // One byte less allowed: refused, as a stream and as a unary body.
        if !first.is_empty() {
            let over = read_unary(&cut(&framed, &points), first.len() - 1).unwrap_err();
            prop_assert_eq!(over.code(), tonic::Code::OutOfRange);
        }
    }

    /// A prefix claiming more than `max_recv` is refused, with nothing
    /// taken off the buffer, whatever follows it.
    #[test]
    fn a_length_over_the_limit_is_refused_whatever_follows(
        max_recv in 0..(1usize << 20),
        excess in 1..=u32::MAX,
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let claimed = u32::try_from(max_recv).unwrap().saturating_add(excess);
        prop_assume!(claimed as usize > max_recv);
        let mut framed = BytesMut::new();
        framed.extend_from_slice(&[0]);
        framed.extend_from_slice(&claimed.to_be_bytes());
        framed.extend_from_slice(&rest);
        let before = framed.clone();
        let err = codec::split_message(&mut framed, max_recv).unwrap_err();
        prop_assert_eq!(err.code(), tonic::Code::OutOfRange);
        prop_assert_eq!(&framed, &before);
        let mut framed = before.clone().freeze();
        let err = codec::split_bytes(&mut framed, max_recv).unwrap_err();
        prop_assert_eq!(err.code(), tonic::Code::OutOfRange);
        prop_assert_eq!(framed.len(), before.len());
    }

    /// A set compressed flag is refused, whatever length and bytes follow.
    #[test]
    fn a_compressed_frame_is_refused(
        flag in 1..=u8::MAX,
        len in any::<u32>(),
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut framed = vec![flag];
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&rest);
        let framed = Bytes::from(framed);
        let err = codec::message_len(&framed, usize::MAX).unwrap_err();
        prop_assert_eq!(err.code(), tonic::Code::Internal);
        prop_assert!(err.message().contains("compressed"));
        prop_assert!(read_stream(std::slice::from_ref(&framed), usize::MAX).is_err());
        prop_assert!(read_unary(&[framed], usize::MAX).is_err());
    }
}

/// An already encoded message, framed as is.
#[derive(Clone, Debug, Default, PartialEq)]
struct RawMessage(Bytes);

impl Message for RawMessage {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        _: u32,
        _: prost::encoding::WireType,
        _: &mut impl bytes::Buf,
        _: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        unreachable!("only encoded")
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

// ----- 4 GiB against 1 MiB -----

const MIB: usize = 1 << 20;

/// A frame header claiming `len` bytes, and `body` bytes of it.
fn claiming(len: u32, body: usize) -> Bytes {
    let mut framed = vec![0, 0, 0, 0, 0];
    framed[1..].copy_from_slice(&len.to_be_bytes());
    framed.resize(PREFIX_LEN + body, 7);
    Bytes::from(framed)
}

/// [`peak_allocation`] of a future, polled on this thread (a
/// current-thread runtime).
async fn peak_allocation_async<F: std::future::Future>(f: F) -> (F::Output, usize) {
    PEAK.with(|peak| peak.set(0));
    WATCHING.with(|watching| watching.set(true));
    let out = f.await;
    WATCHING.with(|watching| watching.set(false));
    (out, PEAK.with(Cell::get))
}

#[test]
fn a_4_gib_prefix_is_refused_before_allocating() {
    let claimed = u32::MAX; // 4 GiB - 1, the most a prefix can claim
    let header = claiming(claimed, 100);
    let (results, peak) = peak_allocation(|| {
        let len = codec::message_len(&header, MIB);
        let split = codec::split_message(&mut BytesMut::from(&header[..]), MIB);
        let sliced = codec::split_bytes(&mut header.clone(), MIB);
        // The header alone, then the rest, as a stream: refused at once.
        let stream = read_stream(&[header.slice(..3), header.slice(3..)], MIB);
        let unary = read_unary(&[header.slice(..3), header.slice(3..)], MIB);
        (len, split, sliced, stream, unary)
    });
    let (len, split, sliced, stream, unary) = results;
    for err in [
        len.unwrap_err(),
        split.unwrap_err(),
        sliced.unwrap_err(),
        stream.unwrap_err(),
        unary.unwrap_err(),
    ] {
        assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
        assert!(err.message().contains("4294967295"), "{err:?}");
    }
    assert!(
        peak < 64 * 1024,
        "the largest allocation was {peak} bytes, for a refused 4 GiB claim"
    );
}

/// Without a limit (the builder's default is `usize::MAX`) the claim is
/// accepted, but a stream still holds only what has arrived: nothing is
/// reserved for the claimed length.
#[test]
fn an_unlimited_reader_holds_only_what_arrived() {
    let header = claiming(u32::MAX, 3000);
    let (held, peak) = peak_allocation(|| {
        let mut reader = StreamReader::new(usize::MAX);
        for chunk in cut(&header, &[1000, 2000]) {
            assert!(reader.next_message().unwrap().is_none());
            reader.push(chunk);
        }
        assert!(reader.next_message().unwrap().is_none());
        assert!(
            reader.finish().is_err(),
            "the stream ended inside a message"
        );
        reader.held()
    });
    assert!(held <= 2 * header.len() + 64, "{held}");
    assert!(peak < 64 * 1024, "{peak}");
}

#[test]
fn the_peak_allocation_tracker_sees_large_allocations() {
    let (_, peak) = peak_allocation(|| BytesMut::with_capacity(MIB));
    assert!(peak >= MIB, "{peak}");
}

// ----- The seed corpus -----

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/grpc")
}

/// The seed corpus: responses shaped like real etcd 3.5 answers (a
/// cluster's ids and terms, keys under a prefix, a txn mixing every kind of
/// op, watch creation, events and fragments, a compaction cancel).
fn corpus_messages() -> Vec<(Rpc, &'static str, Vec<u8>)> {
    let header = Some(pb::ResponseHeader {
        cluster_id: 14_841_639_068_965_178_418,
        member_id: 10_276_657_743_932_975_437,
        revision: 42,
        raft_term: 2,
    });
    let kv = |key: &'static str, value: &'static str, rev: i64| mvccpb::KeyValue {
        key: key.into(),
        create_revision: rev - 1,
        mod_revision: rev,
        version: 2,
        value: value.into(),
        lease: 0,
    };
    let range = pb::RangeResponse {
        header,
        kvs: vec![
            kv("app/a", "1", 40),
            kv("app/b", "22", 41),
            kv("app/\u{7f}", "", 42),
        ],
        more: true,
        count: 7,
    };
    let put = pb::PutResponse {
        header,
        prev_kv: Some(kv("app/a", "0", 39)),
    };
    let txn = pb::TxnResponse {
        header,
        succeeded: true,
        responses: vec![
            pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponseRange(range.clone())),
            },
            pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponsePut(put.clone())),
            },
            pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponseDeleteRange(
                    pb::DeleteRangeResponse {
                        header,
                        deleted: 1,
                        prev_kvs: vec![kv("app/c", "x", 30)],
                    },
                )),
            },
            pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponseTxn(pb::TxnResponse {
                    header,
                    succeeded: false,
                    responses: vec![],
                })),
            },
        ],
    };
    let event = |r#type, key, value, rev| mvccpb::Event {
        r#type,
        kv: Some(kv(key, value, rev)),
        prev_kv: None,
    };
    let watch_created = pb::WatchResponse {
        header,
        watch_id: 0,
        created: true,
        ..Default::default()
    };
    let watch_events = pb::WatchResponse {
        header,
        watch_id: 3,
        events: vec![event(0, "app/a", "1", 40), event(1, "app/b", "", 41)],
        ..Default::default()
    };
    let watch_fragment = pb::WatchResponse {
        fragment: true,
        ..watch_events.clone()
    };
    let watch_compacted = pb::WatchResponse {
        header,
        watch_id: 3,
        canceled: true,
        compact_revision: 17,
        cancel_reason: "mvcc: required revision has been compacted".into(),
        ..Default::default()
    };
    let keep_alive = pb::LeaseKeepAliveResponse {
        header,
        id: 7_587_862_078_235_512_837,
        ttl: 60,
    };
    let grant = pb::LeaseGrantResponse {
        header,
        id: 7_587_862_078_235_512_837,
        ttl: 60,
        error: String::new(),
    };
    vec![
        (Rpc::Range, "kvs", range.encode_to_vec()),
        (
            Rpc::Range,
            "empty",
            pb::RangeResponse {
                header,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (Rpc::Put, "prev-kv", put.encode_to_vec()),
        (Rpc::Txn, "mixed", txn.encode_to_vec()),
        (Rpc::Watch, "created", watch_created.encode_to_vec()),
        (Rpc::Watch, "events", watch_events.encode_to_vec()),
        (Rpc::Watch, "fragment", watch_fragment.encode_to_vec()),
        (Rpc::Watch, "compacted", watch_compacted.encode_to_vec()),
        (Rpc::LeaseKeepAlive, "ttl", keep_alive.encode_to_vec()),
        (Rpc::LeaseGrant, "ttl", grant.encode_to_vec()),
    ]
}

/// Every corpus file: its RPC (from its name) and its bytes.
fn corpus() -> Vec<(Rpc, String, Bytes)> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus/grpc")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let rpc_name = name.split('.').next().unwrap();
            let rpc = *Rpc::ALL
                .iter()
                .find(|rpc| rpc.name() == rpc_name)
                .unwrap_or_else(|| panic!("{name}: no RPC called {rpc_name}"));
            (rpc, name, Bytes::from(std::fs::read(&path).unwrap()))
        })
        .collect()
}

#[test]
fn the_corpus_decodes_and_survives_every_split() {
    if std::env::var_os("ETCD_TOWER_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(corpus_dir()).unwrap();
        for (rpc, what, message) in corpus_messages() {
            let path = corpus_dir().join(format!("{}.{what}.bin", rpc.name()));
            std::fs::write(path, frame(&RawMessage(message.into()))).unwrap();
        }
    }
    let corpus = corpus();
    assert!(
        corpus.len() >= corpus_messages().len(),
        "the corpus is missing"
    );
    for (rpc, name, framed) in corpus {
        let message = read_unary(std::slice::from_ref(&framed), usize::MAX)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        decode_as(rpc, message.clone()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        for at in 0..=framed.len() {
            let chunks = [framed.slice(..at), framed.slice(at..)];
            assert_eq!(
                read_stream(&chunks, usize::MAX).unwrap(),
                std::slice::from_ref(&message),
                "{name}"
            );
            assert_eq!(read_unary(&chunks, usize::MAX).unwrap(), message, "{name}");
        }
        for &other in Rpc::ALL {
            assert_typed(decode_as(other, message.clone()));
        }
        // Every truncation of the frame is refused as a unary body.
        for at in 0..framed.len() {
            assert!(
                read_unary(&[framed.slice(..at)], usize::MAX).is_err(),
                "{name} at {at}"
            );
        }
    }
}
