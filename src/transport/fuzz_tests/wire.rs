//! The same properties through the real transport: a [`Transport`] calls
//! the test kit's misbehaving HTTP/2 server on 127.0.0.1, which answers
//! every call with scripted DATA chunks, so that the code under test is `receive_unary`
//! and `GrpcStream` themselves rather than the readers in the parent
//! module that follow them.
//!
//! Fewer cases than the pure properties (each is a round trip): 64 in a
//! normal `cargo test`, `PROPTEST_CASES` for more.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use etcd_tower_testkit::{Answer, MisbehavingServer};
use futures::StreamExt;
use proptest::prelude::*;
use prost::Message;
use tower::ServiceExt;

use super::{any_response, frame, watch_response, RawMessage};
use crate::proto::etcdserverpb as pb;
use crate::{EtcdError, EtcdRequest, RequestBody, ResponseBody, Transport};

/// What the server answers to the next call: these DATA chunks, then the
/// trailers `grpc-status: 0`.
type Script = Vec<Bytes>;

/// The test kit's misbehaving server, answering each call with the next
/// script, and a transport to it.
#[derive(Clone)]
struct Server {
    kit: Arc<MisbehavingServer>,
    transport: Transport,
}

impl Server {
    async fn start(max_recv: usize) -> Self {
        let kit = Arc::new(MisbehavingServer::start().await.unwrap());
        let transport = Transport::builder([kit.endpoint()])
            .max_recv_size(max_recv)
            .build()
            .unwrap();
        Server { kit, transport }
    }

    /// A Range call answered with `chunks`: the message, encoded again.
    async fn range(&self, chunks: Script) -> Result<Vec<u8>, EtcdError> {
        self.kit
            .answer_once("/etcdserverpb.KV/Range", Answer::Chunks(chunks));
        let request = EtcdRequest::new(pb::RangeRequest {
            key: "k".into(),
            ..Default::default()
        });
        let response = self.transport.clone().oneshot(request).await?;
        Ok(pb::RangeResponse::try_from(response)?.encode_to_vec())
    }

    /// A Watch answered with `chunks`: the messages received, then the
    /// error that ended the stream, if any.
    async fn watch(&self, chunks: Script) -> (Vec<pb::WatchResponse>, Option<EtcdError>) {
        self.kit
            .answer_once("/etcdserverpb.Watch/Watch", Answer::Chunks(chunks));
        let (_outbound, rx) = futures::channel::mpsc::unbounded::<pb::WatchRequest>();
        let request = EtcdRequest::new(RequestBody::Watch(Box::pin(rx)));
        let mut inbound = match self.transport.clone().oneshot(request).await {
            Ok(response) => match response.body {
                ResponseBody::Watch(inbound) => inbound,
                other => panic!("a {:?} body", other.rpc()),
            },
            Err(e) => return (vec![], Some(e)),
        };
        let mut messages = Vec::new();
        while let Some(message) = inbound.next().await {
            match message {
                Ok(message) => messages.push(message),
                Err(e) => return (messages, Some(e)),
            }
        }
        (messages, None)
    }
}

/// `bytes` cut at `points`, without empty pieces: h2 closes a connection
/// that receives many empty DATA frames (its guard against a DATA flood),
/// which is right but not what these properties are about.
fn cut(bytes: &Bytes, points: &[usize]) -> Vec<Bytes> {
    let mut chunks = super::cut(bytes, points);
    chunks.retain(|chunk| !chunk.is_empty());
    chunks
}

fn config() -> ProptestConfig {
    let mut config = super::config();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

/// Runs `f` on a runtime with one server (and one connection) for all
/// cases, each case within 5 s.
fn with_server<F>(max_recv: usize, f: impl Fn(Server) -> F) -> impl Fn() -> F::Output
where
    F: std::future::Future,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(Server::start(max_recv));
    move || {
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), f(server.clone()))
                .await
                .expect("the call hung")
        })
    }
}

#[test]
fn valid_answers_in_any_chunks_come_back_whole() {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let strategy = (
        super::range_response(),
        proptest::collection::vec(watch_response(), 0..4),
        proptest::collection::vec(any::<usize>(), 0..8),
    );
    let case = Arc::new(Mutex::new(None));
    let run = {
        let case = case.clone();
        with_server(usize::MAX, move |server| {
            let case: (pb::RangeResponse, Vec<pb::WatchResponse>, Vec<usize>) =
                case.lock().unwrap().take().unwrap();
            async move {
                let (range, watches, points) = case;
                let framed = frame(&range);
                let got = server.range(cut(&framed, &points)).await.unwrap();
                assert_eq!(got, range.encode_to_vec());
                let mut stream = BytesMut::new();
                for w in &watches {
                    stream.extend_from_slice(&frame(w));
                }
                let (got, error) = server.watch(cut(&stream.freeze(), &points)).await;
                assert!(error.is_none(), "{error:?}");
                assert_eq!(got, watches);
            }
        })
    };
    runner
        .run(&strategy, |value| {
            *case.lock().unwrap() = Some(value);
            run();
            Ok(())
        })
        .unwrap();
}

#[test]
fn garbage_answers_fail_typed_and_the_connection_recovers() {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let strategy = (
        prop_oneof![
            // Random bytes.
            proptest::collection::vec(any::<u8>(), 0..96).prop_map(Bytes::from),
            // A valid answer with its frame damaged.
            (
                any_response(),
                proptest::collection::vec(super::mutation(), 1..4)
            )
                .prop_map(|((_, m), mutations)| super::mutate(&frame(&RawMessage(m)), &mutations)),
        ],
        proptest::collection::vec(any::<usize>(), 0..6),
    );
    let case = Arc::new(Mutex::new(None));
    let run = {
        let case = case.clone();
        with_server(1 << 10, move |server| {
            let case: (Bytes, Vec<usize>) = case.lock().unwrap().take().unwrap();
            async move {
                let (garbage, points) = case;
                // Ok or a typed error, never a panic or a hang.
                if let Err(e) = server.range(cut(&garbage, &points)).await {
                    assert!(!format!("{e}").is_empty());
                }
                let _ = server.watch(cut(&garbage, &points)).await;
                // The next good answer still gets through.
                let good = pb::RangeResponse {
                    count: 1,
                    ..Default::default()
                };
                let got = server.range(vec![frame(&good)]).await.unwrap();
                assert_eq!(got, good.encode_to_vec());
            }
        })
    };
    runner
        .run(&strategy, |value| {
            *case.lock().unwrap() = Some(value);
            run();
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_answer_over_max_recv_is_refused_on_the_wire() {
    let run = with_server(1 << 20, |server| async move {
        // A header claiming 4 GiB and a little of the message.
        let mut claim = vec![0u8];
        claim.extend_from_slice(&u32::MAX.to_be_bytes());
        claim.extend_from_slice(&[0; 100]);
        let claim = Bytes::from(claim);
        let err = server.range(vec![claim.clone()]).await.unwrap_err();
        assert_eq!(*err.kind(), crate::ErrorKind::ResponseTooLarge, "{err:?}");
        let (messages, err) = server.watch(vec![claim]).await;
        assert!(messages.is_empty());
        let err = err.expect("refused");
        assert_eq!(*err.kind(), crate::ErrorKind::ResponseTooLarge, "{err:?}");
    });
    run();
}

/// A unary answer whose prefix claims more than `max_recv`, followed by
/// much more data than `max_recv`: the call should stop reading once the
/// prefix is there.
#[test]
fn a_unary_answer_over_max_recv_is_refused_before_buffering_it() {
    let run = with_server(1 << 20, |server| async move {
        let mut chunks = vec![Bytes::from(vec![0, 0xff, 0xff, 0xff, 0xff])];
        chunks.extend(std::iter::repeat_n(Bytes::from(vec![0; 16 * 1024]), 512));
        let (err, peak) = super::peak_allocation_async(server.range(chunks)).await;
        assert_eq!(*err.unwrap_err().kind(), crate::ErrorKind::ResponseTooLarge);
        assert!(
            peak < 2 << 20,
            "buffered {peak} bytes of an answer refused at 1 MiB"
        );
    });
    run();
}
