//! The timed work: `clients` tasks pulling operations from a shared
//! counter, and the watcher that receives what the writers put.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use etcd_tower_core::proto::etcdserverpb::{
    request_op, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
};
use etcd_tower_core::{EtcdError, EtcdRequest, RequestBody};
use etcd_tower_watch::Watcher;
use futures_util::StreamExt;
use tower::ServiceExt;

use crate::args::Op;
use crate::stack::EtcdService;

/// What every worker reads.
pub struct Plan {
    pub op: Op,
    /// Keys as the harness sends them (without the namespace the full
    /// stack adds, so the server sees the same keys in both modes).
    pub keys: Vec<Bytes>,
    pub value: Bytes,
}

/// xorshift64*: a cheap per-task generator, so the harness costs little.
struct Rng(u64);

impl Rng {
    fn new(task: usize) -> Self {
        Rng(0x9E37_79B9_7F4A_7C15 ^ ((task as u64 + 1).wrapping_mul(0x1000_0000_01B3)))
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

/// The body of one operation.
fn body(plan: &Plan, key: Bytes, started: Instant, t0: Instant) -> RequestBody {
    match plan.op {
        Op::Put => PutRequest {
            key,
            value: plan.value.clone(),
            ..Default::default()
        }
        .into(),
        Op::Range => RangeRequest {
            key,
            ..Default::default()
        }
        .into(),
        Op::Txn => TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key,
                    value: plan.value.clone(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        }
        .into(),
        Op::Watch => {
            // The value carries the send time (ns since t0): the watcher
            // measures delivery latency from it.
            let sent = started.duration_since(t0).as_nanos() as u64;
            let mut value = BytesMut::with_capacity(plan.value.len());
            value.put_u64_le(sent);
            value.put_slice(&plan.value[8..]);
            PutRequest {
                key,
                value: value.freeze(),
                ..Default::default()
            }
            .into()
        }
    }
}

/// One call through the stack; `Ok(false)` when the answer is wrong (a
/// get that found no key).
async fn one<S: EtcdService>(
    service: &mut S,
    op: Op,
    body: RequestBody,
) -> Result<bool, EtcdError> {
    let response = service.ready().await?.call(EtcdRequest::new(body)).await?;
    Ok(match op {
        Op::Range => RangeResponse::try_from(response)?.kvs.len() == 1,
        _ => true,
    })
}

/// Latencies (ns) of the operations that succeeded, and the error count.
pub struct Outcome {
    pub latencies: Vec<u64>,
    pub errors: usize,
}

/// Runs `n` operations with `clients` tasks over `services` (task `i`
/// uses service `i % services.len()`).
pub async fn run<S: EtcdService>(
    plan: &Arc<Plan>,
    services: &[S],
    n: usize,
    clients: usize,
    t0: Instant,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(clients);
    for task in 0..clients {
        let plan = plan.clone();
        let next = next.clone();
        let mut service = services[task % services.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(task);
            let mut latencies = Vec::with_capacity(n / clients + 1);
            let mut errors = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let key = plan.keys[rng.below(plan.keys.len())].clone();
                let started = Instant::now();
                let body = body(&plan, key, started, t0);
                match one(&mut service, plan.op, body).await {
                    Ok(true) => latencies.push(started.elapsed().as_nanos() as u64),
                    Ok(false) => errors += 1,
                    Err(error) => {
                        if errors == 0 {
                            eprintln!("first error: {error}");
                        }
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut outcome = Outcome {
        latencies: Vec::with_capacity(n),
        errors: 0,
    };
    for task in tasks {
        match task.await {
            Ok((latencies, errors)) => {
                outcome.latencies.extend(latencies);
                outcome.errors += errors;
            }
            Err(panic) => {
                eprintln!("worker failed: {panic}");
                outcome.errors += 1;
            }
        }
    }
    outcome
}

/// Writes every key of the keyspace once (untimed), for `range`.
pub async fn populate<S: EtcdService>(
    plan: &Arc<Plan>,
    services: &[S],
    concurrency: usize,
) -> Result<(), EtcdError> {
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency {
        let plan = plan.clone();
        let mut service = services[task % services.len()].clone();
        tasks.push(tokio::spawn(async move {
            for key in plan.keys.iter().skip(task).step_by(concurrency) {
                let put = PutRequest {
                    key: key.clone(),
                    value: plan.value.clone(),
                    ..Default::default()
                };
                service.ready().await?.call(EtcdRequest::new(put)).await?;
            }
            Ok::<_, EtcdError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| EtcdError::client(etcd_tower_core::ErrorKind::Closed, e.to_string()))??;
    }
    Ok(())
}

/// What the watcher received.
pub struct Received {
    pub events: usize,
    /// put issued -> event received, ns.
    pub latencies: Vec<u64>,
    /// When the last event arrived.
    pub last: Instant,
}

/// How long the watcher waits without an event before giving up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Receives until `total` events came, the stream failed, or nothing came
/// for 10 s.
///
/// One idle timer for the whole run, pushed back only when it fires (to 10 s
/// after the last event), rather than a `timeout` per `next()`, which
/// registers and cancels a timer-wheel entry for every batch: the harness
/// should cost the receiver as little as possible.
pub async fn receive(mut watcher: Watcher, total: usize, t0: Instant) -> Received {
    let mut received = Received {
        events: 0,
        latencies: Vec::with_capacity(total),
        last: t0,
    };
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(idle);
    while received.events < total {
        let next = tokio::select! {
            biased;
            next = watcher.next() => next,
            () = idle.as_mut() => {
                let deadline = tokio::time::Instant::from_std(received.last) + IDLE_TIMEOUT;
                if deadline <= tokio::time::Instant::now() {
                    break;
                }
                idle.as_mut().reset(deadline);
                continue;
            }
        };
        let batch = match next {
            Some(Ok(batch)) => batch,
            Some(Err(error)) => {
                eprintln!("watch failed: {error}");
                break;
            }
            None => break,
        };
        let now = Instant::now();
        let now_ns = now.duration_since(t0).as_nanos() as u64;
        for event in batch.events() {
            if let Some(sent) = event
                .kv
                .as_ref()
                .and_then(|kv| kv.value.get(..8))
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
            {
                received
                    .latencies
                    .push(now_ns.saturating_sub(u64::from_le_bytes(sent)));
            }
            received.events += 1;
        }
        received.last = now;
    }
    received
}
