//! Leases at scale: one client keeps `--leases` leases alive for
//! `--secs` seconds, and says what it cost and how many were lost.
//!
//! The same command line and result line as
//! `peer-lease-etcd-client/` (the `etcd-client` crate doing the same with
//! its API), so that `lease_matrix.py` runs both side by side:
//!
//! ```text
//! etcd-tower-lease-bench --endpoints 127.0.0.1:23790 --leases 10000 --ttl 10 --secs 60
//! ready leases=10000 grant_secs=2.1
//! leases=10000 ttl=10 secs=60 grant_secs=2.1 cpu_ms_per_sec=41.0 rss_mib=38.2 lost=0
//! ```
//!
//! After the grants (64 at a time) it prints `ready` and keeps the leases
//! for `--secs`; CPU (getrusage, user + system) and the resident set are
//! taken over that phase only. A lease is lost when its keeper says so or
//! the server's `TimeToLive` for it is not positive at the end. Every lease
//! is revoked before exiting. Exit status 0 when none was lost.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod cpu;

use cpu::cpu_us;
use etcd_tower::{Client, LeaseKeeper};
use futures_util::stream::{self, StreamExt, TryStreamExt};

/// The command line.
struct Args {
    endpoints: Vec<String>,
    leases: usize,
    ttl: i64,
    secs: u64,
}

const USAGE: &str = "usage: etcd-tower-lease-bench --endpoints HOST:PORT[,..] \
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

/// The resident set, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn run(args: Args) -> Result<usize, etcd_tower::EtcdError> {
    let client = Client::connect(&args.endpoints).await?;
    let started = Instant::now();
    let keepers: Vec<LeaseKeeper> = stream::iter(0..args.leases)
        .map(|_| LeaseKeeper::grant(&client, args.ttl))
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let grant_secs = started.elapsed().as_secs_f64();
    println!("ready leases={} grant_secs={grant_secs:.1}", args.leases);
    let _ = std::io::stdout().flush();

    let cpu_before = cpu_us();
    let kept_since = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    let cpu_ms = (cpu_us() - cpu_before) / 1000.0;
    let elapsed = kept_since.elapsed().as_secs_f64();
    let rss = rss_mib();

    let mut lost = keepers.iter().filter(|keeper| !keeper.is_alive()).count();
    let ids: Vec<i64> = keepers.iter().map(LeaseKeeper::id).collect();
    let expired = stream::iter(ids)
        .map(|id| {
            let client = client.clone();
            async move {
                client
                    .lease_time_to_live(id)
                    .await
                    .map(|left| left.ttl <= 0)
            }
        })
        .buffer_unordered(64)
        .try_fold(0, |n, gone| async move { Ok(n + usize::from(gone)) })
        .await?;
    lost = lost.max(expired);
    println!(
        "leases={} ttl={} secs={} grant_secs={grant_secs:.1} cpu_ms_per_sec={:.1} rss_mib={rss:.1} lost={lost}",
        args.leases,
        args.ttl,
        args.secs,
        cpu_ms / elapsed
    );
    stream::iter(keepers)
        .map(LeaseKeeper::revoke)
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
