//! `etcd-tower-lease-bench` (see `../src/lease_bench.rs`) written with the
//! `etcd-client` crate's API: same command line, same result line.
//!
//! `etcd-client` has no keeper: `lease_keep_alive` opens one stream per
//! lease, and the user renews on it. So each lease gets what a user of that
//! API writes: a task that renews every TTL/3 on the lease's own stream and
//! marks the lease lost when an answer says TTL <= 0 or the stream fails.
//!
//! Build: `cargo build --release` here (needs `protoc`, from Debian's
//! `protobuf-compiler`).

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};

struct Args {
    endpoints: Vec<String>,
    leases: usize,
    ttl: i64,
    secs: u64,
}

const USAGE: &str = "usage: peer-lease-etcd-client --endpoints HOST:PORT[,..] \
[--leases N=10000] [--ttl SECONDS=10] [--secs SECONDS=60]";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        endpoints: vec!["127.0.0.1:2379".into()],
        leases: 10_000,
        ttl: 10,
        secs: 60,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}\n{USAGE}");
        match flag.as_str() {
            "--endpoints" => args.endpoints = value.split(',').map(str::to_owned).collect(),
            "--leases" => args.leases = value.parse().map_err(bad)?,
            "--ttl" => args.ttl = value.parse().map_err(bad)?,
            "--secs" => args.secs = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn cpu_us() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Opens the lease's stream and renews on it every TTL/3 until it fails.
async fn keep(mut client: Client, id: i64, ttl: i64, lost: Arc<AtomicUsize>) {
    let result: Result<(), etcd_client::Error> = async {
        // `lease_keep_alive` sends the first renewal and reads its answer
        // itself, so each round sends and then reads.
        let (mut keeper, mut answers) = client.lease_keep_alive(id).await?;
        loop {
            tokio::time::sleep(Duration::from_secs(ttl as u64) / 3).await;
            keeper.keep_alive().await?;
            match answers.message().await? {
                Some(answer) if answer.ttl() > 0 => {}
                _ => return Ok(()),
            }
        }
    }
    .await;
    let _ = result;
    lost.fetch_add(1, Ordering::Relaxed);
}

async fn run(args: Args) -> Result<usize, etcd_client::Error> {
    let client = Client::connect(&args.endpoints, None).await?;
    let lost = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let ids: Vec<i64> = stream::iter(0..args.leases)
        .map(|_| {
            let mut client = client.clone();
            async move { client.lease_grant(args.ttl, None).await.map(|g| g.id()) }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let tasks: Vec<_> = ids
        .iter()
        .map(|&id| tokio::spawn(keep(client.clone(), id, args.ttl, Arc::clone(&lost))))
        .collect();
    let grant_secs = started.elapsed().as_secs_f64();
    println!("ready leases={} grant_secs={grant_secs:.1}", args.leases);
    let _ = std::io::stdout().flush();

    let cpu_before = cpu_us();
    let kept_since = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    let cpu_ms = (cpu_us() - cpu_before) / 1000.0;
    let elapsed = kept_since.elapsed().as_secs_f64();
    let rss = rss_mib();

    let expired = stream::iter(ids.clone())
        .map(|id| {
            let mut client = client.clone();
            async move {
                client
                    .lease_time_to_live(id, None)
                    .await
                    .map(|left| left.ttl() <= 0)
            }
        })
        .buffer_unordered(64)
        .try_fold(0, |n, gone| async move { Ok(n + usize::from(gone)) })
        .await?;
    let lost = lost.load(Ordering::Relaxed).max(expired);
    println!(
        "leases={} ttl={} secs={} grant_secs={grant_secs:.1} cpu_ms_per_sec={:.1} rss_mib={rss:.1} lost={lost}",
        args.leases,
        args.ttl,
        args.secs,
        cpu_ms / elapsed
    );
    for task in tasks {
        task.abort();
    }
    stream::iter(ids)
        .map(|id| {
            let mut client = client.clone();
            async move { client.lease_revoke(id).await }
        })
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
    Ok(lost)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
