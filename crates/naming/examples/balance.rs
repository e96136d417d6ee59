//! Three HTTP servers registered under one service, and a p2c balancer
//! over them fed by etcd, while one instance leaves and comes back under
//! load.
//!
//! ```text
//! cargo run -p etcd-tower-naming --example balance            # a throwaway etcd
//! ETCD_ENDPOINTS=127.0.0.1:2379 cargo run -p etcd-tower-naming --example balance
//! ```
//!
//! With `ETCD_ENDPOINTS` unset, the example starts a single-member etcd
//! (with the test kit, from `scripts/install-etcd.sh`) on free loopback
//! ports in a temp dir and removes it at the end.
//!
//! What happens:
//!
//! 1. three hyper servers on free ports, each answering with its name,
//!    each registered under the service `hello` (a lease each, kept alive);
//! 2. a `tower::balance::p2c::Balance` over hyper clients, one per
//!    instance, fed by [`EndpointManager::discover`]; eight workers send
//!    requests through it;
//! 3. `instance-1` leaves: it deregisters, and keeps serving until no
//!    request has reached it for 300 ms (the balancer has seen it go), and
//!    500 ms more, counting the requests it still receives (none);
//! 4. it comes back on a new port and registers again; requests reach it
//!    again;
//! 5. the requests per instance and phase (when they were sent) are
//!    printed. The run fails (non-zero exit) if an instance got no
//!    request, if `instance-1`'s server received one while it was away, or
//!    if a request failed outside the time it was leaving.
//!
//! `crates/naming/tests/balance_example.rs` runs [`run`] on every etcd
//! version of the test kit, so CI runs this example.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use etcd_tower::Client;
use etcd_tower_naming::{Endpoint, EndpointManager, RegisterOptions, Registration};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::util::MapRequestLayer;
use tower::{BoxError, Layer, Service, ServiceExt};

/// The service's name in etcd.
const SERVICE: &str = "hello";
/// The instance that leaves and comes back.
const LEAVER: &str = "instance-1";
/// How many requests are in flight at once.
const WORKERS: usize = 8;

/// The phases of the run, as the requests sent in them are counted.
const PHASES: [&str; 4] = ["all three", "leaving", "away", "back"];
const ALL: usize = 0;
const LEAVING: usize = 1;
const AWAY: usize = 2;
const BACK: usize = 3;

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // Keep the throwaway server alive until the end of main.
    let (endpoints, _server) = match std::env::var("ETCD_ENDPOINTS") {
        Ok(list) => (list.split(',').map(|e| e.trim().to_owned()).collect(), None),
        Err(_) => {
            let binary = etcd_tower_testkit::binaries()
                .into_iter()
                .next()
                .ok_or("no etcd binary: run scripts/install-etcd.sh")?;
            let cluster = etcd_tower_testkit::Cluster::start(&binary).await?;
            println!(
                "started a throwaway {} at {:?}",
                binary.label(),
                cluster.endpoints()
            );
            (cluster.endpoints(), Some(cluster))
        }
    };
    let report = run(&endpoints).await?;
    print!("{report}");
    report.check()?;
    Ok(())
}

/// What a run counted.
#[derive(Debug, Default)]
pub struct Report {
    /// Requests answered, by phase and instance.
    pub answered: [BTreeMap<String, usize>; 4],
    /// Requests failed, by phase.
    pub failed: [usize; 4],
    /// Requests the leaver's server received while it was away: after the
    /// balancer had stopped sending to it, before it stopped serving.
    pub sent_away: usize,
    /// From the deregistration until the balancer stopped sending to the
    /// instance.
    pub leave_took: Duration,
    /// From the registration again until the first request reached it.
    pub join_took: Duration,
}

impl Report {
    /// Every instance answered, the leaver not while away, and no request
    /// failed outside its leaving.
    pub fn check(&self) -> Result<(), String> {
        let mut total: BTreeMap<&str, usize> = BTreeMap::new();
        for counts in &self.answered {
            for (instance, n) in counts {
                *total.entry(instance).or_default() += n;
            }
        }
        for i in 0..3 {
            let name = format!("instance-{i}");
            if total.get(name.as_str()).copied().unwrap_or(0) == 0 {
                return Err(format!("{name} got no request"));
            }
        }
        if self.sent_away > 0 {
            return Err(format!(
                "{LEAVER} got {} requests while it was away",
                self.sent_away
            ));
        }
        if !self.answered[BACK].contains_key(LEAVER) {
            return Err(format!("{LEAVER} got no request once back"));
        }
        let outside = self.failed[ALL] + self.failed[AWAY] + self.failed[BACK];
        if outside > 0 {
            return Err(format!("{outside} requests failed outside the leave"));
        }
        Ok(())
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10} {:>10}",
            "requests", PHASES[0], PHASES[1], PHASES[2], PHASES[3]
        )?;
        for i in 0..3 {
            let name = format!("instance-{i}");
            write!(f, "{name:<12}")?;
            for counts in &self.answered {
                write!(f, " {:>10}", counts.get(&name).copied().unwrap_or(0))?;
            }
            writeln!(f)?;
        }
        write!(f, "{:<12}", "failed")?;
        for failed in &self.failed {
            write!(f, " {failed:>10}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{LEAVER} left the balancer {:?} after deregistering, its server got {} requests while away, \
             and it was sent requests again {:?} after it began to register anew",
            self.leave_took, self.sent_away, self.join_took
        )
    }
}

/// One small HTTP server answering `name`; stops when dropped.
struct HelloServer {
    addr: SocketAddr,
    /// Requests received.
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HelloServer {
    async fn start(name: String) -> Result<HelloServer, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let answer = format!("{name} {addr}");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            // Dropped with the task: the connections stop with the server.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (answer, counter) = (answer.clone(), counter.clone());
                connections.spawn(async move {
                    let hello = hyper::service::service_fn(move |_request| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let body = Full::new(Bytes::from(answer.clone()));
                        async move { Ok::<_, Infallible>(Response::new(body)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), hello)
                        .await;
                });
                // Reap the finished ones.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(HelloServer { addr, hits, task })
    }
}

impl Drop for HelloServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the scenario against the etcd at `endpoints`; see the module docs.
pub async fn run(endpoints: &[String]) -> Result<Report, BoxError> {
    let client = Client::connect(endpoints).await?;
    let manager = EndpointManager::new(&client, SERVICE)?;

    // Three instances, each registered with its address and name.
    let register = |server: &HelloServer, name: &str| {
        let endpoint = Endpoint::new(server.addr.to_string())
            .with_metadata(serde_json::json!({ "name": name }));
        manager.register(endpoint, RegisterOptions::new().ttl(5))
    };
    let mut servers = Vec::new();
    let mut registrations: Vec<Option<Registration>> = Vec::new();
    for i in 0..3 {
        let name = format!("instance-{i}");
        let server = HelloServer::start(name.clone()).await?;
        registrations.push(Some(register(&server, &name).await?));
        servers.push(server);
    }

    // The balancer: a hyper client per instance, aimed at its address.
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let instances = manager
        .discover(move |endpoint| {
            let authority = endpoint.addr.clone();
            MapRequestLayer::new(move |mut request: Request<Empty<Bytes>>| {
                let path = request.uri().path().to_owned();
                if let Ok(uri) = Uri::builder()
                    .scheme("http")
                    .authority(authority.as_str())
                    .path_and_query(path)
                    .build()
                {
                    *request.uri_mut() = uri;
                }
                request
            })
            .layer(http.clone())
        })
        .await?;
    let balance = Balance::new(PendingRequestsDiscover::new(
        instances,
        CompleteOnResponse::default(),
    ));
    // Shared by the workers.
    let balance = Buffer::new(balance, 64);

    let phase = Arc::new(AtomicUsize::new(ALL));
    let stop = Arc::new(AtomicBool::new(false));
    let report = Arc::new(Mutex::new(Report::default()));
    let mut workers = JoinSet::new();
    for _ in 0..WORKERS {
        let (mut balance, phase, stop, report) =
            (balance.clone(), phase.clone(), stop.clone(), report.clone());
        workers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let at = phase.load(Ordering::SeqCst);
                let answer = async {
                    let request = Request::get("http://hello/").body(Empty::new())?;
                    let response = balance.ready().await?.call(request).await?;
                    let body = response.into_body().collect().await?.to_bytes();
                    Ok::<_, BoxError>(String::from_utf8_lossy(&body).into_owned())
                };
                let answer = answer.await;
                let mut report = report
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                match answer {
                    Ok(answer) => {
                        let name = answer.split(' ').next().unwrap_or_default().to_owned();
                        *report.answered[at].entry(name).or_default() += 1
                    }
                    Err(_) => report.failed[at] += 1,
                }
            }
        });
    }
    let answered_by = |instance: &str| -> usize {
        let report = report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        report
            .answered
            .iter()
            .map(|counts| counts.get(instance).copied().unwrap_or(0))
            .sum()
    };

    sleep(Duration::from_secs(1)).await;

    // The leaver deregisters, serves until the balancer stops sending to
    // it (no request for 300 ms), then stops.
    phase.store(LEAVING, Ordering::SeqCst);
    let left = Instant::now();
    if let Some(registration) = registrations[1].take() {
        registration.close().await?;
    }
    let give_up = left + Duration::from_secs(10);
    let (mut seen, mut quiet_since) = (answered_by(LEAVER), Instant::now());
    while quiet_since.elapsed() < Duration::from_millis(300) {
        if Instant::now() > give_up {
            return Err(format!("{LEAVER} still got requests 10 s after deregistering").into());
        }
        sleep(Duration::from_millis(20)).await;
        let now = answered_by(LEAVER);
        if now != seen {
            (seen, quiet_since) = (now, Instant::now());
        }
    }
    let leave_took = quiet_since - left;
    phase.store(AWAY, Ordering::SeqCst);
    // Away: the old server still serves, and must get nothing.
    let hits = servers[1].hits.load(Ordering::SeqCst);
    sleep(Duration::from_millis(500)).await;
    let sent_away = servers[1].hits.load(Ordering::SeqCst) - hits;
    servers[1] = HelloServer::start(LEAVER.to_owned()).await?;

    // Back, on a new port. (A request sent while away may wait in the
    // buffer until the instance is back, and is counted as away.)
    let before = answered_by(LEAVER);
    phase.store(BACK, Ordering::SeqCst);
    let joined = Instant::now();
    registrations[1] = Some(register(&servers[1], LEAVER).await?);
    while answered_by(LEAVER) == before {
        if joined.elapsed() > Duration::from_secs(10) {
            return Err(format!("{LEAVER} got no request 10 s after registering again").into());
        }
        sleep(Duration::from_millis(5)).await;
    }
    let join_took = joined.elapsed();
    sleep(Duration::from_secs(1)).await;

    stop.store(true, Ordering::Relaxed);
    while let Some(done) = workers.join_next().await {
        done?;
    }
    for registration in registrations.into_iter().flatten() {
        registration.close().await?;
    }
    drop(servers);
    let mut report = std::mem::take(
        &mut *report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    report.sent_away = sent_away;
    report.leave_took = leave_took;
    report.join_took = join_took;
    Ok(report)
}
