//! The transport against a server that answers wrong on purpose (the test
//! kit's `MisbehavingServer`): garbage, lying length prefixes, a message of
//! another type, no trailers, stream resets, GOAWAYs, silence. Each gives a
//! typed error that says whether the request may have been applied, none
//! hangs past its deadline, none grows memory, and the next call on the
//! same transport succeeds. A watch whose stream gets a GOAWAY resumes
//! from the revision after the last event it delivered; a fragmented watch
//! response that never ends is refused at the engine's bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::proto::mvccpb;
use etcd_tower_core::{
    ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, Sent, Transport,
};
use etcd_tower_testkit::{Answer, MisbehavingServer};
use etcd_tower_timeout::TimeoutLayer;
use futures::StreamExt;
use h2::Reason;
use prost::Message;
use tower::{Layer, ServiceExt};

const RANGE: &str = "/etcdserverpb.KV/Range";
const PUT: &str = "/etcdserverpb.KV/Put";
const WATCH: &str = "/etcdserverpb.Watch/Watch";
const STATUS: &str = "/etcdserverpb.Maintenance/Status";

fn header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        cluster_id: 1,
        member_id: 2,
        revision,
        raft_term: 3,
    })
}

/// A good Range answer: one key at revision 7.
fn good_range() -> Bytes {
    pb::RangeResponse {
        header: header(7),
        kvs: vec![mvccpb::KeyValue {
            key: "k".into(),
            value: "good".into(),
            mod_revision: 7,
            create_revision: 7,
            version: 1,
            ..Default::default()
        }],
        count: 1,
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

async fn call(
    transport: &Transport,
    body: impl Into<RequestBody>,
) -> Result<EtcdResponse, EtcdError> {
    transport.clone().oneshot(EtcdRequest::new(body)).await
}

fn range() -> pb::RangeRequest {
    pb::RangeRequest {
        key: "k".into(),
        ..Default::default()
    }
}

fn put() -> pb::PutRequest {
    pb::PutRequest {
        key: "k".into(),
        value: "v".into(),
        ..Default::default()
    }
}

/// After a misbehaving answer, the same transport's next Range succeeds.
async fn recovers(server: &MisbehavingServer, transport: &Transport, case: &str) {
    server.answer(RANGE, Answer::Messages(vec![good_range()]));
    let answer = tokio::time::timeout(Duration::from_secs(10), call(transport, range()))
        .await
        .unwrap_or_else(|_| panic!("{case}: the next call hung"))
        .unwrap_or_else(|e| panic!("{case}: the next call failed: {e}"));
    let answer = pb::RangeResponse::try_from(answer).unwrap();
    assert_eq!(answer.kvs[0].value, "good", "{case}");
}

/// One case: what Range and Put get for `answer`, checked against the
/// expected kind; a Put's `Sent` is `sent` (a Range is a read: whatever
/// it says, nothing changed).
async fn case(
    server: &MisbehavingServer,
    transport: &Transport,
    name: &str,
    answer: Answer,
    kind: fn(&ErrorKind) -> bool,
    sent: Sent,
) {
    for (path, is_put) in [(RANGE, false), (PUT, true)] {
        server.answer(path, answer.clone());
        let result = tokio::time::timeout(Duration::from_secs(10), async {
            if is_put {
                call(transport, put()).await
            } else {
                call(transport, range()).await
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name} ({path}): the call hung"));
        let error = match result {
            Ok(response) => panic!("{name} ({path}): expected an error, got {response:?}"),
            Err(error) => error,
        };
        assert!(kind(error.kind()), "{name} ({path}): wrong kind: {error}");
        let text = error.to_string();
        assert!(!text.is_empty() && text.len() < 1_000, "{name}: {text}");
        if is_put {
            assert_eq!(error.sent(), sent, "{name} ({path}): {error}");
        }
        recovers(server, transport, name).await;
    }
}

fn unexpected(kind: &ErrorKind) -> bool {
    matches!(kind, ErrorKind::UnexpectedResponse)
}

fn lost(kind: &ErrorKind) -> bool {
    matches!(kind, ErrorKind::ConnectionLost)
}

#[tokio::test]
async fn every_wrong_answer_is_a_typed_error_and_the_next_call_succeeds() {
    let server = MisbehavingServer::start().await.unwrap();
    let transport = Transport::builder([server.endpoint()])
        .max_recv_size(4 << 20)
        .build()
        .unwrap();
    recovers(&server, &transport, "a good answer").await;

    // Bytes that are not a gRPC frame (the first byte is not a
    // compression flag).
    case(
        &server,
        &transport,
        "unframed garbage",
        Answer::Chunks(vec![Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n")]),
        unexpected,
        Sent::MayHaveBeenApplied,
    )
    .await;
    // A frame whose content is not protobuf.
    case(
        &server,
        &transport,
        "framed garbage",
        Answer::Messages(vec![Bytes::from_static(&[0xff; 16])]),
        unexpected,
        Sent::MayHaveBeenApplied,
    )
    .await;
    // A message of another type: field 1 (the header, a message) sent as
    // a number, as in a message whose field 1 is an integer.
    case(
        &server,
        &transport,
        "a message of another type",
        Answer::Messages(vec![Bytes::from_static(&[0x08, 0x96, 0x01])]),
        unexpected,
        Sent::MayHaveBeenApplied,
    )
    .await;
    // A length prefix of almost 4 GiB: refused from the prefix, before any
    // buffering (max_recv_size is 4 MiB).
    case(
        &server,
        &transport,
        "a 4 GiB length prefix",
        Answer::LyingLength {
            claimed: u32::MAX,
            sent: 16,
        },
        |kind| matches!(kind, ErrorKind::ResponseTooLarge),
        Sent::MayHaveBeenApplied,
    )
    .await;
    // A truncated message: the prefix claims more than comes.
    case(
        &server,
        &transport,
        "a truncated message",
        Answer::LyingLength {
            claimed: 100,
            sent: 10,
        },
        unexpected,
        Sent::MayHaveBeenApplied,
    )
    .await;
    // Two messages where a unary call takes one.
    case(
        &server,
        &transport,
        "two messages for a unary call",
        Answer::Messages(vec![good_range(), good_range()]),
        unexpected,
        Sent::MayHaveBeenApplied,
    )
    .await;
    // A message and no status.
    case(
        &server,
        &transport,
        "no trailers",
        Answer::NoTrailers(good_range()),
        |kind| !matches!(kind, ErrorKind::Connect),
        Sent::MayHaveBeenApplied,
    )
    .await;
    // A status with no message, as a real error is sent.
    case(
        &server,
        &transport,
        "a trailers-only error",
        Answer::Status {
            code: 3, // InvalidArgument, as etcd sends it
            message: "etcdserver: request is too large".into(),
        },
        |kind| matches!(kind, ErrorKind::RequestTooLarge),
        Sent::Rejected,
    )
    .await;
    // The stream is reset after the server accepted it.
    case(
        &server,
        &transport,
        "a stream reset",
        Answer::Reset(Reason::INTERNAL_ERROR),
        lost,
        Sent::MayHaveBeenApplied,
    )
    .await;
    // REFUSED_STREAM: HTTP/2's word for "not processed at all".
    case(
        &server,
        &transport,
        "a refused stream",
        Answer::Reset(Reason::REFUSED_STREAM),
        |kind| matches!(kind, ErrorKind::ConnectionLost | ErrorKind::Connect),
        Sent::NotSent,
    )
    .await;
    // A GOAWAY after the server accepted the stream: it may have been
    // applied.
    case(
        &server,
        &transport,
        "a GOAWAY mid-call",
        Answer::GoAway,
        lost,
        Sent::MayHaveBeenApplied,
    )
    .await;
    assert!(
        server.connections() >= 3,
        "each GOAWAY made a new connection"
    );
}

#[tokio::test]
async fn silence_ends_at_the_deadline_and_the_stream_is_reset() {
    let server = MisbehavingServer::start().await.unwrap();
    let transport = Transport::builder([server.endpoint()]).build().unwrap();
    server.answer(RANGE, Answer::Silence);
    let timed = TimeoutLayer::new(Duration::from_millis(300)).layer(transport.clone());
    let started = tokio::time::Instant::now();
    let error = tokio::time::timeout(
        Duration::from_secs(5),
        timed.oneshot(EtcdRequest::new(range())),
    )
    .await
    .expect("the deadline ends the call")
    .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Timeout), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
    recovers(&server, &transport, "after silence").await;
}

/// Resident memory, in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn wrong_answers_do_not_grow_memory() {
    let server = MisbehavingServer::start().await.unwrap();
    let transport = Transport::builder([server.endpoint()])
        .max_recv_size(4 << 20)
        .build()
        .unwrap();
    let answers = [
        Answer::LyingLength {
            claimed: u32::MAX,
            sent: 64,
        },
        Answer::LyingLength {
            claimed: 3 << 20,
            sent: 1 << 16,
        },
        Answer::Reset(Reason::INTERNAL_ERROR),
        Answer::Messages(vec![Bytes::from_static(&[0xff; 64])]),
    ];
    let round = || async {
        for answer in &answers {
            server.answer(RANGE, answer.clone());
            for _ in 0..50 {
                assert!(call(&transport, range()).await.is_err());
            }
        }
    };
    round().await; // warm up: connections, buffers, allocator pools
    let before = rss_kib();
    for _ in 0..4 {
        round().await;
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 16 << 10,
        "800 wrong answers grew memory by {grown} KiB"
    );
    recovers(&server, &transport, "after 1,000 wrong answers").await;
}

fn watch_created(revision: i64) -> Bytes {
    pb::WatchResponse {
        header: header(revision),
        watch_id: 0,
        created: true,
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

fn watch_event(revision: i64) -> Bytes {
    pb::WatchResponse {
        header: header(revision),
        watch_id: 0,
        events: vec![mvccpb::Event {
            r#type: mvccpb::event::EventType::Put as i32,
            kv: Some(mvccpb::KeyValue {
                key: "w".into(),
                value: format!("at {revision}").into(),
                mod_revision: revision,
                create_revision: 5,
                version: revision - 4,
                ..Default::default()
            }),
            prev_kv: None,
        }],
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

/// The create requests of every watch stream the server saw.
fn creates(server: &MisbehavingServer) -> Vec<pb::WatchCreateRequest> {
    server
        .received()
        .into_iter()
        .filter(|r| r.path == WATCH)
        .flat_map(|r| r.messages)
        .filter_map(|m| match pb::WatchRequest::decode(m).ok()?.request_union? {
            pb::watch_request::RequestUnion::CreateRequest(create) => Some(create),
            _ => None,
        })
        .collect()
}

/// A server for the watch engine: it answers the engine's version check
/// (`Status`) as etcd 3.5.30.
async fn watch_server() -> MisbehavingServer {
    let server = MisbehavingServer::start().await.unwrap();
    server.answer(
        STATUS,
        Answer::Messages(vec![pb::StatusResponse {
            header: header(12),
            version: "3.5.30".into(),
            ..Default::default()
        }
        .encode_to_vec()
        .into()]),
    );
    server
}

#[tokio::test]
async fn a_goaway_mid_watch_resumes_after_the_last_event() {
    let server = watch_server().await;
    server.answer(RANGE, Answer::Messages(vec![good_range()]));
    // The first stream: created at 10, an event at 11; a GOAWAY once
    // the watcher has it.
    server.answer_once(
        WATCH,
        Answer::MessagesThenOpen(vec![watch_created(10), watch_event(11)]),
    );
    // Every later stream: created, then the event at 12, then open.
    server.answer(
        WATCH,
        Answer::MessagesThenOpen(vec![watch_created(12), watch_event(12)]),
    );
    let transport = Transport::builder([server.endpoint()]).build().unwrap();
    let engine = etcd_tower_watch::WatchEngine::new(transport);
    let mut watcher = engine
        .watch(
            "w",
            etcd_tower_watch::WatchOptions::new().start_revision(11),
        )
        .await
        .unwrap();
    let mut revisions = Vec::new();
    while revisions.len() < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(15), watcher.next())
            .await
            .unwrap_or_else(|_| {
                let creates: Vec<_> = creates(&server);
                panic!("the watch did not resume after the GOAWAY: got {revisions:?}, creates {creates:?}")
            })
            .expect("the watch goes on")
            .unwrap();
        revisions.extend(
            batch
                .events()
                .iter()
                .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision)),
        );
        if revisions == [11] {
            server.go_away();
        }
    }
    assert_eq!(revisions, [11, 12], "each event once, in order");
    let starts: Vec<i64> = creates(&server).iter().map(|c| c.start_revision).collect();
    assert_eq!(starts.first(), Some(&11));
    assert_eq!(
        starts.get(1),
        Some(&12),
        "resumed after the last event: {starts:?}"
    );
    assert!(server.connections() >= 2);
}

/// A piece of a fragmented watch response: one event of 64 KiB.
fn watch_fragment(revision: i64, last: bool) -> Bytes {
    let mut piece = pb::WatchResponse::decode(watch_event(revision)).unwrap();
    piece.fragment = !last;
    if let Some(kv) = piece.events[0].kv.as_mut() {
        kv.value = vec![b'x'; 64 << 10].into();
    }
    piece.encode_to_vec().into()
}

#[tokio::test]
async fn a_fragmented_watch_response_past_the_limit_ends_the_watcher_typed() {
    let server = watch_server().await;
    // Created, then pieces of one response that never ends: 48 pieces of
    // 64 KiB (3 MiB) against a limit of 1 MiB.
    let mut messages = vec![watch_created(10)];
    messages.extend((0..48).map(|_| watch_fragment(11, false)));
    server.answer(WATCH, Answer::MessagesThenOpen(messages));
    let transport = Transport::builder([server.endpoint()]).build().unwrap();
    let config = etcd_tower_watch::WatchConfig::default().max_fragmented(1 << 20);
    let engine = etcd_tower_watch::WatchEngine::with_config(transport, config);
    let mut watcher = engine
        .watch(
            "w",
            etcd_tower_watch::WatchOptions::new()
                .start_revision(11)
                .fragment(),
        )
        .await
        .unwrap();
    // A second watcher keeps the stream open once the first ends (its
    // create is never answered: the script answers one create a stream).
    let other = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .watch("v", etcd_tower_watch::WatchOptions::new())
                .await
        })
    };
    let error = tokio::time::timeout(Duration::from_secs(15), watcher.next())
        .await
        .expect("the watcher ended within 15 s")
        .expect("an error, not the end of the stream")
        .expect_err("no partial revision is delivered");
    assert_eq!(error.kind(), &ErrorKind::ResponseTooLarge, "{error}");
    assert!(error.to_string().contains("1048576 bytes"), "{error}");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .unwrap()
            .is_none(),
        "the watcher ends after its error"
    );
    // The watcher was cancelled on the server, not resumed (the cancel
    // reaches the server after the error reaches the watcher).
    let cancels = || {
        server
            .received()
            .into_iter()
            .filter(|r| r.path == WATCH)
            .flat_map(|r| r.messages)
            .filter(|m| {
                matches!(
                    pb::WatchRequest::decode(m.clone())
                        .ok()
                        .and_then(|r| r.request_union),
                    Some(pb::watch_request::RequestUnion::CancelRequest(_))
                )
            })
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cancels() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cancels(), 1, "the watcher was cancelled on the server");
    assert_eq!(
        &creates(&server)[0].key[..],
        b"w",
        "the first create was the watcher's"
    );
    other.abort();
}
