//! The fault injectors: one for members (kill/restart, SIGSTOP/SIGCONT,
//! leader moves, compactions), one for the network between the client and
//! the members (the kit's proxies: cut, black-hole, refuse new
//! connections), and one that changes the workload client's endpoints at
//! run time (`Transport::set_endpoints`). Member faults run one at a time and every downed member
//! is back before the next, so the cluster never loses two members at
//! once; network faults only touch client connections, never peer traffic,
//! so they cannot cost quorum either.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_tower::{Client, GetOptions, Transport};
use etcd_tower_testkit::{Cluster, Proxy};

use crate::model::{lock, KvState, Recorder, Snapshot, NS};
use crate::rng::Rng;

/// When the injectors stop: a deadline and a fault budget.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub until: Instant,
    pub max_faults: u64,
}

impl Budget {
    pub fn done(&self, rec: &Recorder) -> bool {
        Instant::now() >= self.until || rec.fault_total() >= self.max_faults || rec.stopped()
    }
}

/// Restarts killed members, thaws frozen ones, and waits for health.
pub async fn heal_members(cluster: &Cluster, rec: &Recorder) {
    for m in cluster.members() {
        if m.is_stopped() {
            if let Err(e) = m.cont() {
                rec.count(&format!("harness: cont failed: {e}"));
            }
        }
        if !m.is_running() {
            for attempt in 0..3 {
                match m.restart().await {
                    Ok(()) => break,
                    Err(e) => rec.count(&format!("harness: restart attempt {attempt} failed: {e}")),
                }
            }
        }
    }
    if let Err(e) = cluster.wait_healthy().await {
        rec.count(&format!("harness: wait_healthy failed: {e}"));
    }
}

pub async fn member_faults(
    cluster: Arc<Cluster>,
    raw: Client,
    rec: Arc<Recorder>,
    budget: Budget,
    mut rng: Rng,
) {
    let n = cluster.member_count() as u64;
    while !budget.done(&rec) {
        tokio::time::sleep(rng.ms(150, 600)).await;
        if budget.done(&rec) {
            break;
        }
        let i = rng.below(n) as usize;
        let member = cluster.member(i);
        match rng.below(100) {
            0..=21 => {
                rec.fault("kill+restart member");
                if let Err(e) = member.kill() {
                    rec.count(&format!("harness: kill failed: {e}"));
                }
                tokio::time::sleep(rng.ms(200, 1500)).await;
                heal_members(&cluster, &rec).await;
                rec.note(format!("m{i} restarted"));
            }
            22..=43 => {
                rec.fault("SIGSTOP+SIGCONT member");
                if let Err(e) = member.stop() {
                    rec.count(&format!("harness: stop failed: {e}"));
                }
                tokio::time::sleep(rng.ms(200, 2000)).await;
                heal_members(&cluster, &rec).await;
                rec.note(format!("m{i} continued"));
            }
            44..=59 => {
                rec.fault("move leader");
                match tokio::time::timeout(Duration::from_secs(25), cluster.move_leader(i)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => rec.count(&format!(
                        "move leader failed: {}",
                        first_line(&e.to_string())
                    )),
                    Err(_) => rec.count("move leader timed out"),
                }
            }
            _ => compact(&raw, &rec, &mut rng).await,
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(120).collect()
}

/// Compacts behind the historian: reads the namespace at the chosen
/// revision first (the checks compare it with the history), then compacts.
async fn compact(raw: &Client, rec: &Recorder, rng: &mut Rng) {
    let delivered = rec.historian_rev.load(Ordering::Relaxed);
    let last = lock(&rec.compactions).last().copied().unwrap_or(0);
    let at = delivered - rng.below(40) as i64;
    if at <= last + 1 {
        rec.count("compaction skipped (nothing new)");
        return;
    }
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        raw.get_with(NS, GetOptions::new().prefix().revision(at)),
    )
    .await;
    let snapshot = match read {
        Ok(Ok(resp)) => Snapshot {
            rev: at,
            kvs: resp
                .kvs()
                .iter()
                .map(|kv| {
                    (
                        kv.key_bytes().clone(),
                        KvState {
                            value: kv.value_bytes().clone(),
                            mod_rev: kv.mod_revision(),
                            create_rev: kv.create_revision(),
                            version: kv.version(),
                            lease: kv.lease(),
                        },
                    )
                })
                .collect(),
        },
        _ => {
            rec.count("compaction skipped (snapshot read failed)");
            return;
        }
    };
    lock(&rec.snapshots).push(snapshot);
    rec.fault("compact behind watchers");
    lock(&rec.compactions).push(at);
    match tokio::time::timeout(Duration::from_secs(10), raw.compact(at)).await {
        Ok(Ok(_)) => rec.count("compaction acknowledged"),
        _ => rec.count("compaction outcome unknown or failed"),
    }
}

pub async fn network_faults(
    proxies: Arc<Vec<Proxy>>,
    rec: Arc<Recorder>,
    budget: Budget,
    mut rng: Rng,
) {
    while !budget.done(&rec) {
        tokio::time::sleep(rng.ms(200, 900)).await;
        if budget.done(&rec) {
            break;
        }
        let i = rng.below(proxies.len() as u64) as usize;
        let proxy = &proxies[i];
        match rng.below(100) {
            0..=34 => {
                rec.fault("cut connections");
                proxy.cut();
            }
            35..=44 => {
                rec.fault("cut all connections");
                for p in proxies.iter() {
                    p.cut();
                }
            }
            45..=84 => {
                rec.fault("black-hole connections");
                proxy.blackhole(true);
                tokio::time::sleep(rng.ms(300, 2500)).await;
                proxy.blackhole(false);
                rec.note(format!("proxy {i} black-hole lifted"));
            }
            _ => {
                rec.fault("refuse new connections");
                proxy.reject_new(true);
                proxy.cut();
                tokio::time::sleep(rng.ms(300, 1500)).await;
                proxy.reject_new(false);
                rec.note(format!("proxy {i} accepts again"));
            }
        }
    }
    for p in proxies.iter() {
        p.blackhole(false);
        p.reject_new(false);
    }
}

/// Changes the workload client's endpoints while it runs: a random member
/// leaves the set (the rest in a random order) for a while, then every
/// member is back. Calls in flight finish where they are; watches on the
/// member that left move to another with nothing lost or repeated (the
/// history checker's business).
pub async fn endpoint_faults(
    transport: Transport,
    endpoints: Vec<String>,
    rec: Arc<Recorder>,
    budget: Budget,
    mut rng: Rng,
) {
    while !budget.done(&rec) {
        tokio::time::sleep(rng.ms(1000, 4000)).await;
        if budget.done(&rec) {
            break;
        }
        let mut subset = endpoints.clone();
        subset.remove(rng.below(subset.len() as u64) as usize);
        if rng.percent(50) {
            subset.reverse();
        }
        rec.fault("endpoints: a member left");
        if let Err(e) = transport.set_endpoints(&subset) {
            rec.violation(
                "endpoints",
                format!("set_endpoints({subset:?}) failed: {e}"),
            );
        }
        tokio::time::sleep(rng.ms(500, 3000)).await;
        if let Err(e) = transport.set_endpoints(&endpoints) {
            rec.violation(
                "endpoints",
                format!("set_endpoints({endpoints:?}) failed: {e}"),
            );
        }
        rec.note("endpoints: every member back".into());
    }
    if let Err(e) = transport.set_endpoints(&endpoints) {
        rec.violation(
            "endpoints",
            format!("set_endpoints({endpoints:?}) failed: {e}"),
        );
    }
}
