//! A lock or campaign dropped while it waits leaves nothing behind on the
//! server: for the server's lock and election services (`Client::lock`,
//! `Client::campaign`) and for the client-side recipes (`Mutex::lock`,
//! `Election::campaign`), given up by `tokio::time::timeout` and by
//! `select!`. Checked by reading the server itself (a watch and gets
//! through a client that runs no recipe, `etcdctl get`), not through the
//! recipe's own state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use etcd_tower::concurrency::{Election, Mutex, Session};
use etcd_tower::election::LeaderKey;
use etcd_tower::{Client, EtcdError, GetOptions, SortOrder, SortTarget};
use etcd_tower_testkit::Cluster;
use support::events::{Change, KeyEvents};
use support::{each_version, single};
use tokio::time::timeout;

/// How long the `timeout` waiter waits before giving up: long enough for
/// its key to be written first, so that it is dropped mid-wait.
const PATIENCE: Duration = Duration::from_millis(400);

/// The four ways to wait for a lock or for leadership.
#[derive(Clone, Copy, Debug)]
enum Recipe {
    /// `Client::lock`: etcd's lock service waits on the server.
    LockService,
    /// `Client::campaign`: etcd's election service waits on the server.
    ElectionService,
    /// `concurrency::Mutex::lock`: the wait runs in the client.
    Mutex,
    /// `concurrency::Election::campaign`: the wait runs in the client.
    Election,
}

/// How the waiter gives up.
#[derive(Clone, Copy, Debug)]
enum GiveUp {
    /// `tokio::time::timeout` expires while it is queued.
    Timeout,
    /// Another branch of a `select!` wins once its key is on the server.
    Select,
}

/// One contender for one lock or election, on a session of its own.
struct Contender {
    recipe: Recipe,
    name: String,
    session: Session,
    mutex: Mutex,
    election: Election,
    leader: Option<LeaderKey>,
}

impl Contender {
    async fn new(client: &Client, recipe: Recipe, name: &str) -> Contender {
        let session = Session::with_ttl(client, 30).await.unwrap();
        Contender {
            recipe,
            name: name.to_owned(),
            mutex: Mutex::new(&session, name),
            election: Election::new(&session, name),
            session,
            leader: None,
        }
    }

    fn lease(&self) -> i64 {
        self.session.lease_id()
    }

    /// The key this contender queues with: `<name>/<lease in hex>` (Go's
    /// `concurrency` layout, which the server's services use too).
    fn key(&self) -> String {
        format!("{}/{:x}", self.name, self.lease())
    }

    /// Waits for the lock or for leadership.
    async fn acquire(&mut self) -> Result<(), EtcdError> {
        let client = self.session.client().clone();
        match self.recipe {
            Recipe::LockService => {
                let held = client.lock(self.name.as_str(), self.lease()).await?;
                assert_eq!(&held.key[..], self.key().as_bytes(), "the lock's owner key");
            }
            Recipe::ElectionService => {
                let leader = client
                    .campaign(self.name.as_str(), "v", self.lease())
                    .await?;
                assert_eq!(&leader.key[..], self.key().as_bytes(), "the leader key");
                self.leader = Some(leader);
            }
            Recipe::Mutex => self.mutex.lock().await?,
            Recipe::Election => self.election.campaign("v").await?,
        }
        Ok(())
    }

    /// Gives the lock or leadership up.
    async fn release(&mut self) {
        let client = self.session.client().clone();
        match self.recipe {
            Recipe::LockService => {
                client.unlock(self.key()).await.unwrap();
            }
            Recipe::ElectionService => {
                client.resign(self.leader.as_ref().unwrap()).await.unwrap();
            }
            Recipe::Mutex => self.mutex.unlock().await.unwrap(),
            Recipe::Election => self.election.resign().await.unwrap(),
        }
    }
}

/// The keys under `prefix` with their leases, oldest first, read through
/// `plain`.
async fn keys_under(plain: &Client, prefix: &str) -> Vec<(String, i64)> {
    let resp = plain
        .get_with(
            prefix,
            GetOptions::new()
                .prefix()
                .sort(SortTarget::Create, SortOrder::Ascend),
        )
        .await
        .unwrap();
    resp.kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_owned(), kv.lease()))
        .collect()
}

/// The keys under `prefix` as `etcdctl get --prefix --keys-only` lists them.
async fn etcdctl_keys(cluster: &Cluster, prefix: &str) -> Vec<String> {
    let out = cluster
        .etcdctl(&["get", "--prefix", "--keys-only", prefix])
        .await
        .unwrap();
    out.lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every lease on the server.
async fn leases(plain: &Client) -> BTreeSet<i64> {
    let resp = plain.lease_leases().await.unwrap();
    resp.leases.iter().map(|lease| lease.id).collect()
}

/// One round: a holder holds, a waiter queues behind it and gives up
/// mid-wait, then a later waiter queues and gets the lock (or leadership)
/// when the holder releases it.
async fn drop_mid_wait(
    cluster: &Cluster,
    client: &Client,
    plain: &Client,
    recipe: Recipe,
    give_up: GiveUp,
) {
    let label = format!("{} {recipe:?} {give_up:?}", cluster.binary().label());
    let name = format!("dropped/{recipe:?}-{give_up:?}").to_lowercase();
    let prefix = format!("{name}/");
    let mut changes = KeyEvents::watch(plain, &prefix).await;

    let mut holder = Contender::new(client, recipe, &name).await;
    holder.acquire().await.unwrap();
    changes
        .expect(Change::Put(holder.key()), &format!("{label}: holder"))
        .await;

    let mut waiter = Contender::new(client, recipe, &name).await;
    let leases_before = leases(plain).await;
    let what = format!("{label}: the waiter queues");
    match give_up {
        GiveUp::Timeout => {
            let waited = timeout(PATIENCE, waiter.acquire()).await;
            assert!(waited.is_err(), "{label}: the waiter got {waited:?}");
            // Its key was written before the timeout dropped the wait.
            changes.expect(Change::Put(waiter.key()), &what).await;
        }
        GiveUp::Select => {
            let waiter_key = waiter.key();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let waiting = tokio::spawn(async move {
                tokio::select! {
                    won = waiter.acquire() => panic!("the waiter got {won:?}"),
                    _ = stopped => {}
                }
                waiter
            });
            changes.expect(Change::Put(waiter_key.clone()), &what).await;
            stop.send(()).unwrap();
            waiter = timeout(Duration::from_secs(5), waiting)
                .await
                .expect("the select! returns")
                .unwrap();
        }
    }
    // The dropped wait's key is removed, by the waiter (not by its lease).
    changes
        .expect(
            Change::Delete(waiter.key()),
            &format!("{label}: the dropped waiter's key is removed"),
        )
        .await;
    assert_eq!(
        keys_under(plain, &prefix).await,
        [(holder.key(), holder.lease())],
        "{label}: only the holder's key is left"
    );
    let waiter_lease = plain
        .lease_time_to_live_with_keys(waiter.lease())
        .await
        .unwrap();
    assert!(
        waiter_lease.ttl > 0 && waiter_lease.keys.is_empty(),
        "{label}: the waiter's own lease lives on with no key: {waiter_lease:?}"
    );
    // The wait made no lease of its own (none to revoke, none leaked).
    assert_eq!(leases(plain).await, leases_before, "{label}: leases");
    assert!(
        !changes.has_pending().await,
        "{label}: nothing else changed"
    );

    // A later waiter gets the lock when the holder releases it.
    let mut later = Contender::new(client, recipe, &name).await;
    let later_key = later.key();
    let later_task = tokio::spawn(async move {
        later.acquire().await.unwrap();
        later
    });
    changes
        .expect(
            Change::Put(later_key.clone()),
            &format!("{label}: the later waiter queues"),
        )
        .await;
    assert!(!later_task.is_finished(), "{label}: the holder still holds");
    let released = Instant::now();
    holder.release().await;
    changes
        .expect(Change::Delete(holder.key()), &format!("{label}: release"))
        .await;
    let mut later = timeout(Duration::from_secs(5), later_task)
        .await
        .unwrap_or_else(|_| panic!("{label}: the later waiter acquires after the release"))
        .unwrap();
    let handover = released.elapsed();
    assert_eq!(
        etcdctl_keys(cluster, &prefix).await,
        std::slice::from_ref(&later_key),
        "{label}: etcdctl sees only the new owner"
    );
    later.release().await;
    changes
        .expect(Change::Delete(later_key), &format!("{label}: last release"))
        .await;
    assert!(
        etcdctl_keys(cluster, &prefix).await.is_empty(),
        "{label}: no key left"
    );
    for contender in [holder, waiter, later] {
        contender.session.close().await.unwrap();
    }
    eprintln!("{label}: dropped waiter left nothing; handover took {handover:?}");
}

/// Both ways of giving up, on every version, on one cluster each.
async fn each_way_on_each_version(recipe: Recipe) {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let (cluster, client) = single(&bin).await;
        // Reads the server directly: this client runs no recipe.
        let plain = Client::connect(cluster.endpoints()).await.unwrap();
        for give_up in [GiveUp::Timeout, GiveUp::Select] {
            drop_mid_wait(&cluster, &client, &plain, recipe, give_up).await;
        }
        assert!(leases(&plain).await.is_empty(), "every session closed");
        eprintln!(
            "{} {recipe:?}: both rounds in {:?}",
            bin.label(),
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn a_dropped_lock_service_wait_leaves_nothing() {
    each_way_on_each_version(Recipe::LockService).await;
}

#[tokio::test]
async fn a_dropped_election_service_campaign_leaves_nothing() {
    each_way_on_each_version(Recipe::ElectionService).await;
}

#[tokio::test]
async fn a_dropped_mutex_lock_leaves_nothing() {
    each_way_on_each_version(Recipe::Mutex).await;
}

#[tokio::test]
async fn a_dropped_election_campaign_leaves_nothing() {
    each_way_on_each_version(Recipe::Election).await;
}

/// How many service waits [`service_waits_dropped_as_they_queue`] drops.
const RACE_ROUNDS: usize = 100;

/// Drops `RACE_ROUNDS` waits of a server-side recipe the moment their key
/// shows up in a watch, and fails on the first whose key is not removed
/// within 2 s. Without the client's own withdrawal about 1 in 100 such keys
/// stays (etcd's recipe returns the cancelled put's error without cleaning
/// up): a check that catches that regression in most runs, and never fails
/// without it.
async fn service_waits_dropped_as_they_queue(recipe: Recipe) {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let label = format!("{} {recipe:?}", bin.label());
        let (cluster, client) = single(&bin).await;
        let plain = Client::connect(cluster.endpoints()).await.unwrap();
        let name = format!("raced/{recipe:?}").to_lowercase();
        let mut changes = KeyEvents::watch(&plain, &format!("{name}/")).await;
        let mut holder = Contender::new(&client, recipe, &name).await;
        holder.acquire().await.unwrap();
        changes.expect(Change::Put(holder.key()), &label).await;
        for round in 0..RACE_ROUNDS {
            let mut waiter = Contender::new(&client, recipe, &name).await;
            let key = waiter.key();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let waiting = tokio::spawn(async move {
                tokio::select! {
                    won = waiter.acquire() => panic!("the waiter got {won:?}"),
                    _ = stopped => {}
                }
                waiter
            });
            changes.expect(Change::Put(key.clone()), &label).await;
            stop.send(()).unwrap();
            let waiter = waiting.await.unwrap();
            let removed = timeout(Duration::from_secs(2), changes.next(&label))
                .await
                .unwrap_or_else(|_| {
                    panic!("{label}: round {round}: the dropped wait left its key {key}")
                });
            assert_eq!(removed, Change::Delete(key), "{label}: round {round}");
            waiter.session.close().await.unwrap();
        }
        holder.release().await;
        holder.session.close().await.unwrap();
        eprintln!(
            "{label}: {RACE_ROUNDS} waits dropped as they queued, no key left, in {:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn lock_service_waits_dropped_as_they_queue_leave_no_key() {
    service_waits_dropped_as_they_queue(Recipe::LockService).await;
}

#[tokio::test]
async fn election_service_waits_dropped_as_they_queue_leave_no_key() {
    service_waits_dropped_as_they_queue(Recipe::ElectionService).await;
}
