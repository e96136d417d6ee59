//! Load generator for etcd v3 on etcd-tower.
//!
//! Same command line and result line as the `etcd-client` baseline
//! (`../shared/bench/peer-etcd-client`), so that its `run_matrix.py`
//! runs both side by side (`--rust etcd-tower=PATH`):
//!
//! ```text
//! etcd-tower-bench --endpoints 127.0.0.1:23790 --op put|range|txn|watch \
//!     --clients C --conns M --total N --key-size 32 --val-size 256 --keyspace K \
//!     [--warmup 200] [--threads T] [--prefix bench/] [--no-populate] \
//!     [--stack bare|full|LAYER,..] [--user NAME:PASSWORD] [--count-allocs] [--prometheus]
//! op=put clients=16 conns=1 total=120000 secs=6.8 ops_per_sec=17600 p50_us=815.4 p99_us=3173.8 client_cpu_us_per_op=12.3 errors=0
//! ```
//!
//! * `--conns M`: M independent `Transport`s, each its own HTTP/2
//!   connection; task i uses transport i % M.
//! * `--stack bare` (default): the transport alone. `--stack full`: the
//!   metrics, retry, timeout, auth and namespace layers over it;
//!   `--stack metrics,namespace` (any of `metrics`, `retry`, `timeout`,
//!   `auth`, `namespace`): only those, to tell what each costs. The
//!   namespace is `--prefix`, and the harness then leaves it out of the
//!   keys it sends, so the server sees the same keys in every mode.
//!   Without `--user` the auth layer is left out (said on stderr); with
//!   `--user` the bare stack logs in once and sends that token as is.
//! * `--count-allocs`: counts heap allocations during the timed phase and
//!   appends `allocs_per_op=` (and `alloc_bytes_per_op=`). Timing figures
//!   of such a run include the counting.
//! * `--prometheus`: installs a Prometheus recorder, so the metrics layer
//!   records for real (by default no recorder is installed and its
//!   handles are no-ops).
//! * `--mock`: an in-process stand-in for etcd that answers at once, in
//!   place of the transport (put, range, txn): `--mock --stack full` minus
//!   `--mock` is what the layers cost per call, free of the server's noise.
//!
//! Exit status: 0 without errors (and, for watch, with every event
//! received), 1 otherwise, 2 for a bad command line.

mod alloc;
mod args;
mod cpu;
mod stack;
mod workload;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use etcd_tower_auth::AuthLayer;
use etcd_tower_core::proto::etcdserverpb::{DeleteRangeRequest, RangeRequest};
use etcd_tower_core::{EtcdError, EtcdRequest};
use etcd_tower_watch::{prefix_end, WatchEngine, WatchOptions};
use tower::ServiceExt;

use args::{Args, Layers, Op, StackKind};
use cpu::cpu_us;
use stack::EtcdService;
use workload::Plan;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Fixed-width key: prefix + zero-padded index, exactly `key_size` bytes
/// (longer only if prefix and index cannot fit). The baseline's keys.
fn make_key(prefix: &str, i: usize, key_size: usize) -> Vec<u8> {
    let digits = key_size.saturating_sub(prefix.len()).max(1);
    format!("{prefix}{i:0digits$}").into_bytes()
}

fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    match sorted_ns.len() {
        0 => 0.0,
        n => sorted_ns[((n as f64 * p) as usize).min(n - 1)] as f64 / 1e3,
    }
}

/// Builds the stack `--stack` asks for and runs the benchmark over it.
async fn bench(args: Args) -> Result<bool, String> {
    if args.prometheus {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(etcd_tower_metrics::DURATION_BUCKETS)
            .and_then(|b| b.install_recorder())
            .map_err(|e| e.to_string())?;
    }
    let auth = args
        .user
        .as_ref()
        .map(|(user, password)| AuthLayer::new(user.clone(), password.clone()));
    if matches!(args.stack, StackKind::Layered(layers) if layers.auth) && auth.is_none() {
        eprintln!("--stack with auth but without --user: the auth layer is left out");
    }
    if args.mock {
        let mocks = vec![stack::Mock; args.conns];
        return match args.stack {
            StackKind::Bare => run(args, mocks, "").await,
            StackKind::Layered(layers) => {
                let namespace = namespace(&args, layers);
                let services = mocks
                    .into_iter()
                    .map(|m| stack::layered(m, layers, &namespace, auth.as_ref(), args.timeout))
                    .collect();
                run(args, services, &namespace).await
            }
        };
    }
    let e = |e: EtcdError| e.to_string();
    let transports = stack::transports(&args.endpoints, args.conns).map_err(e)?;
    match (args.stack, &args.user) {
        (StackKind::Bare, None) => run(args, transports, "").await,
        (StackKind::Bare, Some((user, password))) => {
            let token = stack::login(&transports[0], user, password)
                .await
                .map_err(e)?;
            let services = transports
                .into_iter()
                .map(|t| stack::WithToken::new(t, token.clone()))
                .collect();
            run(args, services, "").await
        }
        (StackKind::Layered(layers), _) => {
            let namespace = namespace(&args, layers);
            let services = transports
                .into_iter()
                .map(|t| stack::layered(t, layers, &namespace, auth.as_ref(), args.timeout))
                .collect();
            run(args, services, &namespace).await
        }
    }
}

/// The namespace the stack adds (the harness then leaves it out of its
/// keys): `--prefix` when the namespace layer is in, else none.
fn namespace(args: &Args, layers: Layers) -> String {
    if layers.namespace {
        args.prefix.clone()
    } else {
        String::new()
    }
}

/// The benchmark over one kind of stack. `namespace` is the part of the
/// keys the stack adds itself.
async fn run<S: EtcdService>(
    args: Args,
    services: Vec<S>,
    namespace: &str,
) -> Result<bool, String> {
    let e = |e: EtcdError| e.to_string();
    let op = args.op;
    // Server-side keys are the baseline's; the harness sends them without
    // the namespace the stack adds.
    let server_prefix = if op == Op::Watch {
        format!("{}w{}/", args.prefix, std::process::id())
    } else {
        args.prefix.clone()
    };
    let strip = if server_prefix.starts_with(namespace) {
        namespace.len()
    } else {
        0
    };
    let keys = (0..args.keyspace)
        .map(|i| Bytes::from(make_key(&server_prefix, i, args.key_size).split_off(strip)))
        .collect();
    let value: Vec<u8> = (0..args.val_size).map(|i| b'a' + (i % 26) as u8).collect();
    let plan = Arc::new(Plan {
        op,
        keys,
        value: value.into(),
    });
    let watch_prefix = Bytes::from(server_prefix.as_bytes()[strip..].to_vec());

    // Untimed: make every connection live, and populate for range.
    for service in &services {
        let probe = RangeRequest {
            key: "warmup-probe".into(),
            ..Default::default()
        };
        service
            .clone()
            .oneshot(EtcdRequest::new(probe))
            .await
            .map_err(e)?;
    }
    if op == Op::Range && !args.no_populate {
        workload::populate(&plan, &services, args.clients.clamp(1, 64))
            .await
            .map_err(e)?;
    }
    if args.warmup > 0 && op != Op::Watch {
        let warm = workload::run(&plan, &services, args.warmup, args.clients, Instant::now()).await;
        if warm.errors > 0 {
            return Err(format!("{} errors during warmup", warm.errors));
        }
    }

    // Watch: one watcher, confirmed by the server before timing starts.
    let mut watcher = None;
    let engine = (op == Op::Watch).then(|| WatchEngine::new(services[0].clone()));
    if let Some(engine) = &engine {
        watcher = Some(
            engine
                .watch(watch_prefix.clone(), WatchOptions::new().prefix())
                .await
                .map_err(e)?,
        );
    }

    // ---- timed phase ----
    if args.count_allocs {
        alloc::start();
    }
    let (allocs0, bytes0) = alloc::counts();
    let cpu0 = cpu_us();
    let t0 = Instant::now();
    let receiver = watcher.map(|w| tokio::spawn(workload::receive(w, args.total, t0)));
    let outcome = workload::run(&plan, &services, args.total, args.clients, t0).await;
    let ops = outcome.latencies.len();
    let mut latencies = outcome.latencies;
    let mut end = Instant::now();
    let writer_secs = end.duration_since(t0).as_secs_f64();
    let mut events = None;
    if let Some(receiver) = receiver {
        let received = receiver.await.map_err(|e| e.to_string())?;
        events = Some(received.events);
        end = received.last;
        latencies = received.latencies;
    }
    let cpu = cpu_us() - cpu0;
    let (allocs1, bytes1) = alloc::counts();
    alloc::stop();
    // ---- end of timed phase ----

    if op == Op::Watch {
        // The run's keys live under their own prefix: remove them so that
        // runs do not grow the database.
        drop(engine);
        let delete = DeleteRangeRequest {
            range_end: prefix_end(&watch_prefix),
            key: watch_prefix,
            ..Default::default()
        };
        services[0]
            .clone()
            .oneshot(EtcdRequest::new(delete))
            .await
            .map_err(e)?;
    }

    let secs = end.duration_since(t0).as_secs_f64();
    let done = events.unwrap_or(ops);
    latencies.sort_unstable();
    let mut line = format!(
        "op={} clients={} conns={} total={} secs={secs:.3} ops_per_sec={:.0} \
         p50_us={:.1} p99_us={:.1} client_cpu_us_per_op={:.2} errors={}",
        op.name(),
        args.clients,
        args.conns,
        args.total,
        done as f64 / secs,
        percentile_us(&latencies, 0.50),
        percentile_us(&latencies, 0.99),
        cpu / done.max(1) as f64,
        outcome.errors,
    );
    if let Some(got) = events {
        line.push_str(&format!(
            " events={got}/{} writer_ops_per_sec={:.0}",
            args.total,
            ops as f64 / writer_secs
        ));
    }
    if args.count_allocs {
        let per = |x: u64| x as f64 / done.max(1) as f64;
        line.push_str(&format!(
            " allocs_per_op={:.1} alloc_bytes_per_op={:.0}",
            per(allocs1 - allocs0),
            per(bytes1 - bytes0)
        ));
    }
    println!("{line}");
    Ok(outcome.errors == 0 && events.is_none_or(|got| got == args.total))
}

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if args.threads > 0 {
        builder.worker_threads(args.threads);
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
