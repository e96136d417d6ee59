//! Our locks and elections against Go's (issue 20, item 4): `etcdctl lock`
//! and `etcdctl elect` are Go's `concurrency` package, run here from the
//! `etcdctl` of the server's own version, on the same names as our
//! [`Mutex`], [`Election`], `Client::lock`, `Client::campaign` and
//! `Client::observe`. Each side waits for the other and takes over when
//! the other lets go; the keys are the same (`<name>/<lease in hex>`).
//!
//! Every wait is bounded and event-driven: the server's changes come from
//! a watch, `etcdctl`'s from its stdout lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_tower::concurrency::{Election, Mutex, Session};
use etcd_tower::{Client, GetOptions, KeyValue, Txn, TxnOp};
use etcd_tower_testkit::Cluster;
use futures::StreamExt;
use support::events::{Change, KeyEvents};
use support::{each_version, single};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};
use tokio::time::timeout;

/// How long any one expected thing (a line, an acquisition, an exit) may take.
const WAIT: Duration = Duration::from_secs(5);

/// How long a waiting `etcdctl` must stay silent to count as still waiting
/// (it prints only once it holds the lock or leads).
const STILL_WAITING: Duration = Duration::from_millis(300);

/// An `etcdctl` process of the server's version, running in the
/// background; killed when dropped, even when the test panics.
struct Etcdctl {
    what: String,
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
}

impl Etcdctl {
    /// Starts `etcdctl args...` against the cluster.
    fn spawn(cluster: &Cluster, args: &[&str]) -> Etcdctl {
        static SPAWNED: AtomicUsize = AtomicUsize::new(0);
        let what = format!("etcdctl {}", args.join(" "));
        let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
        let stderr = cluster.dir().join(format!("etcdctl-{n}.stderr"));
        let mut command = tokio::process::Command::new(cluster.binary().etcdctl());
        // etcdctl refuses a flag that an ETCDCTL_ variable also sets.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCDCTL_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", cluster.endpoints().join(",")))
            .arg("--dial-timeout=2s")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Etcdctl {
            what,
            child,
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The next line it prints, waiting at most [`WAIT`].
    async fn line(&mut self, why: &str) -> String {
        match timeout(WAIT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!(
                "{why}: {} ended its output; stderr: {}",
                self.what,
                self.stderr()
            ),
            Ok(Err(e)) => panic!("{why}: reading {}: {e}", self.what),
            Err(_) => panic!(
                "{why}: {} printed nothing within {WAIT:?}; stderr: {}",
                self.what,
                self.stderr()
            ),
        }
    }

    /// The next two lines: a key and its value, as `etcdctl` shows a
    /// key-value.
    async fn key_value(&mut self, why: &str) -> (String, String) {
        let key = self.line(why).await;
        let value = self.line(why).await;
        (key, value)
    }

    /// Asserts that it prints nothing for [`STILL_WAITING`].
    async fn still_waiting(&mut self, why: &str) {
        if let Ok(line) = timeout(STILL_WAITING, self.stdout.next_line()).await {
            panic!("{why}: {} printed {line:?} while it should wait", self.what);
        }
    }

    /// Sends it SIGINT, on which `lock` unlocks and `elect` resigns (or
    /// stops observing) before exiting.
    async fn interrupt(&self) {
        let pid = self.child.id().expect("etcdctl still running");
        let status = tokio::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill -INT {pid}: {status}");
    }

    /// Waits (at most [`WAIT`]) until it exits, and asserts it succeeded.
    async fn exits_ok(mut self, why: &str) {
        let status = timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{why}: {} did not exit within {WAIT:?}", self.what))
            .unwrap();
        assert!(
            status.success(),
            "{why}: {} exited with {status}; stderr: {}",
            self.what,
            self.stderr()
        );
    }
}

/// The key-value of `key`, read through `plain`.
async fn kv(plain: &Client, key: &str) -> KeyValue {
    let resp = plain.get(key).await.unwrap();
    resp.kvs()
        .first()
        .unwrap_or_else(|| panic!("no key {key}"))
        .clone()
}

/// Asserts that `key`, written by Go, has the layout ours has: the name,
/// `/`, and the key's lease in hex.
async fn assert_go_layout(plain: &Client, name: &str, key: &str) -> KeyValue {
    let found = kv(plain, key).await;
    assert_ne!(found.lease(), 0, "{key} is on a lease");
    assert_eq!(
        key,
        format!("{name}/{:x}", found.lease()),
        "Go's key layout"
    );
    found
}

/// The next change in `changes`, which must be the put of a key under
/// `name/`: its key.
async fn next_put(changes: &mut KeyEvents, name: &str, why: &str) -> String {
    match changes.next(why).await {
        Change::Put(key) if key.starts_with(&format!("{name}/")) => key,
        other => panic!("{why}: expected a put under {name}/, got {other:?}"),
    }
}

/// A key as text.
fn text(key: &[u8]) -> &str {
    std::str::from_utf8(key).unwrap()
}

/// The key our recipes queue with on `session` under `name` (a lease the
/// server chose has a positive ID).
fn our_key(name: &str, session: &Session) -> String {
    format!("{name}/{:x}", session.lease_id())
}

/// Go holds a lock (`etcdctl lock NAME`, until signalled) while our
/// `Mutex` and then `Client::lock` queue behind it; when Go unlocks on
/// SIGINT, ours get the lock in order. Then the reverse: ours hold, and
/// `etcdctl lock` (in both its modes: holding until signalled, and running
/// a command while it holds) waits until ours release.
#[tokio::test]
async fn locks_exclude_go_and_hand_over_both_ways() {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let (cluster, client) = single(&bin).await;
        let label = bin.label();
        let plain = Client::connect(cluster.endpoints()).await.unwrap();

        // Go holds; ours wait.
        let name = "interop/lock-go-first";
        let mut changes = KeyEvents::watch(&plain, &format!("{name}/")).await;
        let mut go = Etcdctl::spawn(&cluster, &["lock", name]);
        let (go_key, value) = go.key_value("Go locks").await;
        assert_eq!(
            value, "",
            "{label}: etcdctl lock shows the empty owner value"
        );
        changes
            .expect(Change::Put(go_key.clone()), "Go locks")
            .await;
        assert_go_layout(&plain, name, &go_key).await;

        let first = Session::with_ttl(&client, 30).await.unwrap();
        let mut mutex = Mutex::new(&first, name);
        assert_eq!(text(mutex.key()), our_key(name, &first));
        let mutex_waits = tokio::spawn(async move {
            mutex.lock().await.unwrap();
            mutex
        });
        changes
            .expect(Change::Put(our_key(name, &first)), "our Mutex queues")
            .await;
        let second = Session::with_ttl(&client, 30).await.unwrap();
        let service_client = client.clone();
        let lease = second.lease_id();
        let service_waits =
            tokio::spawn(async move { service_client.lock(name, lease).await.unwrap() });
        changes
            .expect(Change::Put(our_key(name, &second)), "Client::lock queues")
            .await;
        assert!(!mutex_waits.is_finished() && !service_waits.is_finished());

        go.interrupt().await;
        changes
            .expect(Change::Delete(go_key.clone()), "Go unlocks on SIGINT")
            .await;
        go.exits_ok("Go unlocked").await;
        let mut mutex = timeout(WAIT, mutex_waits)
            .await
            .expect("our Mutex locks once Go unlocked")
            .unwrap();
        let fenced = Txn::new()
            .when([mutex.is_owner()])
            .and_then([TxnOp::put("interop/fenced", "by our Mutex")]);
        assert!(client.txn(fenced).await.unwrap().succeeded());
        assert!(!service_waits.is_finished(), "Client::lock queues behind");
        mutex.unlock().await.unwrap();
        changes
            .expect(Change::Delete(our_key(name, &first)), "our Mutex unlocks")
            .await;
        let held = timeout(WAIT, service_waits)
            .await
            .expect("Client::lock locks once our Mutex unlocked")
            .unwrap();
        assert_eq!(text(&held.key), our_key(name, &second));
        client.unlock(held.key).await.unwrap();
        changes
            .expect(Change::Delete(our_key(name, &second)), "Client::unlock")
            .await;

        // Ours hold (Client::lock); `etcdctl lock NAME` waits.
        let name = "interop/lock-ours-first";
        let mut changes = KeyEvents::watch(&plain, &format!("{name}/")).await;
        let held = client.lock(name, first.lease_id()).await.unwrap();
        changes
            .expect(Change::Put(our_key(name, &first)), "Client::lock locks")
            .await;
        let mut go = Etcdctl::spawn(&cluster, &["lock", name]);
        let go_key = next_put(&mut changes, name, "Go queues").await;
        let go_kv = assert_go_layout(&plain, name, &go_key).await;
        assert!(
            go_kv.create_revision() > kv(&plain, &our_key(name, &first)).await.create_revision()
        );
        go.still_waiting("Go waits behind Client::lock").await;
        client.unlock(held.key).await.unwrap();
        changes
            .expect(Change::Delete(our_key(name, &first)), "Client::unlock")
            .await;
        let (printed, _) = go.key_value("Go locks once we unlocked").await;
        assert_eq!(printed, go_key);
        go.interrupt().await;
        changes
            .expect(Change::Delete(go_key), "Go unlocks on SIGINT")
            .await;
        go.exits_ok("Go unlocked").await;

        // Ours hold (Mutex); `etcdctl lock NAME -- COMMAND` waits, then
        // runs the command while it holds, and unlocks when it ends.
        let name = "interop/lock-ours-first-command";
        let mut changes = KeyEvents::watch(&plain, &format!("{name}/")).await;
        let mut mutex = Mutex::new(&first, name);
        mutex.lock().await.unwrap();
        changes
            .expect(Change::Put(our_key(name, &first)), "our Mutex locks")
            .await;
        let mut go = Etcdctl::spawn(
            &cluster,
            &[
                "lock",
                name,
                "--",
                "sh",
                "-c",
                "echo \"locked $ETCD_LOCK_KEY\"",
            ],
        );
        let go_key = next_put(&mut changes, name, "Go queues").await;
        assert_go_layout(&plain, name, &go_key).await;
        go.still_waiting("Go's command waits behind our Mutex")
            .await;
        mutex.unlock().await.unwrap();
        changes
            .expect(Change::Delete(our_key(name, &first)), "our Mutex unlocks")
            .await;
        assert_eq!(
            go.line("Go runs its command once we unlocked").await,
            format!("locked {go_key}")
        );
        changes
            .expect(Change::Delete(go_key), "Go unlocks after its command")
            .await;
        go.exits_ok("Go's command ended").await;

        assert!(!changes.has_pending().await);
        first.close().await.unwrap();
        second.close().await.unwrap();
        eprintln!(
            "{label}: locks interoperate with Go in {:?}",
            started.elapsed()
        );
    })
    .await;
}

/// Go leads (`etcdctl elect NAME go-1`) and our observers (`Election::observe`,
/// `Client::observe`) and Go's (`etcdctl elect -l`) all see it; our
/// `Election` campaigns behind it and leads once Go resigns on SIGINT, and
/// every observer sees that and a later proclamation. Then the reverse:
/// ours lead, `etcdctl elect` waits until ours resign, and then leads
/// ahead of a later `Client::campaign`.
#[tokio::test]
async fn elections_exclude_go_and_hand_over_both_ways() {
    each_version(30, |bin| async move {
        let started = Instant::now();
        let (cluster, client) = single(&bin).await;
        let label = bin.label();
        let plain = Client::connect(cluster.endpoints()).await.unwrap();
        let session = Session::with_ttl(&client, 30).await.unwrap();

        // Go leads; ours observe and campaign.
        let name = "interop/elect-go-first";
        let mut changes = KeyEvents::watch(&plain, &format!("{name}/")).await;
        let observer = Election::new(&session, name);
        let mut recipe_sees = observer.observe();
        let mut go_sees = Etcdctl::spawn(&cluster, &["elect", "-l", name]);
        let mut go = Etcdctl::spawn(&cluster, &["elect", name, "go-1"]);
        let (go_key, value) = go.key_value("Go is elected").await;
        assert_eq!(value, "go-1");
        changes
            .expect(Change::Put(go_key.clone()), "Go campaigns")
            .await;
        assert_go_layout(&plain, name, &go_key).await;
        let seen = next_leader(&mut recipe_sees, "Election::observe sees Go").await;
        assert_eq!(
            (seen.key_str().unwrap(), seen.value()),
            (go_key.as_str(), &b"go-1"[..])
        );
        let mut service_sees = client.observe(name).await.unwrap();
        let seen = next_leader(&mut service_sees, "Client::observe sees Go").await;
        assert_eq!(
            (seen.key_str().unwrap(), seen.value()),
            (go_key.as_str(), &b"go-1"[..])
        );
        assert_eq!(observer.leader().await.unwrap().value(), b"go-1");
        assert_eq!(client.leader(name).await.unwrap().value(), b"go-1");
        assert_eq!(
            go_sees.key_value("etcdctl elect -l sees Go").await,
            (go_key.clone(), "go-1".to_owned())
        );

        let mut election = Election::new(&session, name);
        let campaign = tokio::spawn(async move {
            election.campaign("rust-1").await.unwrap();
            election
        });
        let ours = our_key(name, &session);
        changes
            .expect(Change::Put(ours.clone()), "our Election campaigns")
            .await;
        assert!(!campaign.is_finished());
        go.interrupt().await;
        changes
            .expect(Change::Delete(go_key.clone()), "Go resigns on SIGINT")
            .await;
        go.exits_ok("Go resigned").await;
        let mut election = timeout(WAIT, campaign)
            .await
            .expect("our Election leads once Go resigned")
            .unwrap();
        assert_eq!(election.key().map(text), Some(ours.as_str()));
        for value in ["rust-1", "rust-2"] {
            if value == "rust-2" {
                election.proclaim(value).await.unwrap();
                changes
                    .expect(Change::Put(ours.clone()), "our Election proclaims")
                    .await;
            }
            let why = format!("every observer sees {value}");
            let seen = next_leader(&mut recipe_sees, &why).await;
            assert_eq!(
                (seen.key_str().unwrap(), seen.value()),
                (ours.as_str(), value.as_bytes())
            );
            let seen = next_leader(&mut service_sees, &why).await;
            assert_eq!(
                (seen.key_str().unwrap(), seen.value()),
                (ours.as_str(), value.as_bytes())
            );
            assert_eq!(
                go_sees.key_value(&why).await,
                (ours.clone(), value.to_owned())
            );
        }
        election.resign().await.unwrap();
        changes
            .expect(Change::Delete(ours.clone()), "our Election resigns")
            .await;
        go_sees.interrupt().await;
        go_sees.exits_ok("etcdctl elect -l stops").await;
        drop((recipe_sees, service_sees));

        // Ours lead; `etcdctl elect` waits, then leads ahead of a later
        // Client::campaign.
        let name = "interop/elect-ours-first";
        let mut changes = KeyEvents::watch(&plain, &format!("{name}/")).await;
        let mut election = Election::new(&session, name);
        election.campaign("rust-lead").await.unwrap();
        let ours = our_key(name, &session);
        changes
            .expect(Change::Put(ours.clone()), "our Election leads")
            .await;
        let mut go = Etcdctl::spawn(&cluster, &["elect", name, "go-2"]);
        let go_key = next_put(&mut changes, name, "Go campaigns").await;
        assert_go_layout(&plain, name, &go_key).await;
        go.still_waiting("Go waits behind our Election").await;
        let later = Session::with_ttl(&client, 30).await.unwrap();
        let service_client = client.clone();
        let lease = later.lease_id();
        let service_campaign = tokio::spawn(async move {
            service_client
                .campaign(name, "service", lease)
                .await
                .unwrap()
        });
        changes
            .expect(
                Change::Put(our_key(name, &later)),
                "Client::campaign queues",
            )
            .await;
        election.resign().await.unwrap();
        changes
            .expect(Change::Delete(ours), "our Election resigns")
            .await;
        assert_eq!(
            go.key_value("Go leads once we resigned").await,
            (go_key.clone(), "go-2".to_owned())
        );
        let observer = Election::new(&later, name);
        assert_eq!(observer.leader().await.unwrap().value(), b"go-2");
        assert_eq!(client.leader(name).await.unwrap().value(), b"go-2");
        let seen = next_leader(&mut observer.observe(), "Election::observe sees Go").await;
        assert_eq!(seen.key_str().unwrap(), go_key);
        assert!(
            !service_campaign.is_finished(),
            "Client::campaign waits behind Go"
        );
        go.interrupt().await;
        changes
            .expect(Change::Delete(go_key), "Go resigns on SIGINT")
            .await;
        go.exits_ok("Go resigned").await;
        let leader = timeout(WAIT, service_campaign)
            .await
            .expect("Client::campaign leads once Go resigned")
            .unwrap();
        assert_eq!(text(&leader.key), our_key(name, &later));
        assert_eq!(client.leader(name).await.unwrap().value(), b"service");
        client.resign(&leader).await.unwrap();
        changes
            .expect(Change::Delete(our_key(name, &later)), "Client::resign")
            .await;

        assert!(!changes.has_pending().await);
        let left = plain
            .get_with("interop/", GetOptions::new().prefix().count_only())
            .await
            .unwrap();
        assert_eq!(left.count(), 0, "{label}: no candidate left");
        later.close().await.unwrap();
        session.close().await.unwrap();
        eprintln!(
            "{label}: elections interoperate with Go in {:?}",
            started.elapsed()
        );
    })
    .await;
}

/// The next leader an observer stream yields, within [`WAIT`].
async fn next_leader<S>(stream: &mut S, why: &str) -> KeyValue
where
    S: futures::Stream<Item = Result<KeyValue, etcd_tower::EtcdError>> + Unpin,
{
    timeout(WAIT, stream.next())
        .await
        .unwrap_or_else(|_| panic!("{why}: nothing within {WAIT:?}"))
        .unwrap_or_else(|| panic!("{why}: the observer ended"))
        .unwrap_or_else(|e| panic!("{why}: the observer failed: {e}"))
}

/// etcd grants negative lease IDs when asked to, and Go writes them with
/// `%x` as `-` and the hex of the magnitude. Our recipes name their keys
/// the same way, so a `Mutex` on such a lease and etcd's lock service (Go's
/// recipe, on the server) on the same lease share one key.
#[tokio::test]
async fn a_negative_lease_id_names_the_key_as_go_does() {
    each_version(20, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let label = bin.label();
        let id = -0x2a;
        client.lease_grant_with_id(30, id).await.unwrap();
        let session = Session::from_lease(&client, id).await.unwrap();
        let name = "interop/negative";
        let mut mutex = Mutex::new(&session, name);
        assert_eq!(text(mutex.key()), "interop/negative/-2a", "{label}");
        mutex.lock().await.unwrap();
        // The server's recipe finds the key ours made: the lease holds it.
        let held = timeout(WAIT, client.lock(name, id))
            .await
            .expect("the lock service sees the lease's own key")
            .unwrap();
        assert_eq!(text(&held.key), text(mutex.key()), "{label}");
        let mut election = Election::new(&session, "interop/negative-election");
        election.campaign("ours").await.unwrap();
        let leader = timeout(
            WAIT,
            client.campaign("interop/negative-election", "ours", id),
        )
        .await
        .expect("the election service sees the lease's own key")
        .unwrap();
        assert_eq!(Some(text(&leader.key)), election.key().map(text), "{label}");
        assert_eq!(text(&leader.key), "interop/negative-election/-2a");
        mutex.unlock().await.unwrap();
        election.resign().await.unwrap();
        session.close().await.unwrap();
    })
    .await;
}
