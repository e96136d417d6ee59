//! Secrets never leak: the whole stack runs with every `tracing` event
//! captured at TRACE (ours, h2's, everyone's) through a login, token
//! expiry and refresh, a new watch on a stream whose token expired, a
//! member restart with watch resume, and a refused login; then no log
//! line, no `Debug` and no `Display` output may contain the password, the
//! wrong password tried, or any token the client sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use etcd_tower::layers::{AuthLayer, MetricsLayer, RetryLayer, TimeoutLayer};
use etcd_tower::tower::util::MapRequestLayer;
use etcd_tower::tower::ServiceBuilder;
use etcd_tower::watch::{WatchOptions, Watcher};
use etcd_tower::{Client, EtcdRequest, StreamExt, Transport};
use etcd_tower_testkit::{binaries, Cluster, EtcdBinary};
use tokio::time::timeout;
use tracing_subscriber::fmt::MakeWriter;

const PASSWORD: &str = "pw-0f1e2d3c4b5a";
const WRONG_PASSWORD: &str = "wrong-9a8b7c6d5e4f";

/// Every byte every `tracing` event of the test binary wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The binary's one subscriber: everything, at TRACE, into memory.
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

/// The tokens the stack sent, seen below the auth layer.
type Sent = Arc<Mutex<BTreeSet<String>>>;

/// The facade's stack, in its order, with a recorder of every token sent
/// between the auth layer and the transport.
fn client(endpoints: Vec<String>, password: &str, sent: &Sent) -> Client {
    let transport = Transport::builder(endpoints).build().unwrap();
    let sent = sent.clone();
    let record = MapRequestLayer::new(move |request: EtcdRequest| {
        if let Some(token) = &request.meta.token {
            sent.lock().unwrap().insert(token.expose().to_owned());
        }
        request
    });
    let stack = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .layer(TimeoutLayer::new(Duration::from_secs(10)))
        .layer(RetryLayer::new())
        .layer(AuthLayer::new("root", password))
        .layer(record)
        .service(transport);
    Client::from_service(stack)
}

async fn next_event(watcher: &mut Watcher) -> String {
    loop {
        let batch = timeout(Duration::from_secs(15), watcher.next())
            .await
            .expect("no event within 15 s")
            .expect("the watch ended")
            .expect("the watch failed");
        if let Some(event) = batch.events().first() {
            let kv = event.kv.as_ref().unwrap();
            return String::from_utf8_lossy(&kv.key).into_owned();
        }
    }
}

/// One run over a cluster with short-lived tokens; returns every text the
/// user could print: `Debug` and `Display` of the client, the watchers,
/// the errors.
async fn run(cluster: &Cluster, sent: &Sent) -> Vec<String> {
    let mut printed = Vec::new();
    let client = client(cluster.endpoints(), PASSWORD, sent);
    client.put("k", "1").await.unwrap();
    let mut watcher = client
        .watch("w/", WatchOptions::new().prefix())
        .await
        .unwrap();
    client.put("w/1", "v").await.unwrap();
    assert_eq!(next_event(&mut watcher).await, "w/1");

    // Outlive the token: the next call refreshes it, and a new watch goes
    // to a stream whose token expired.
    tokio::time::sleep(Duration::from_secs(4)).await;
    client.put("w/2", "v").await.unwrap();
    assert_eq!(next_event(&mut watcher).await, "w/2");
    let mut second = client.watch("v", WatchOptions::new()).await.unwrap();

    // A restart forgets every token; both watchers resume.
    cluster.member(0).kill().unwrap();
    cluster.member(0).restart().await.unwrap();
    client.put("w/3", "v").await.unwrap();
    client.put("v", "v").await.unwrap();
    assert_eq!(next_event(&mut watcher).await, "w/3");
    assert_eq!(next_event(&mut second).await, "v");

    // A refused login: its error must not repeat the password tried.
    let wrong = self::client(cluster.endpoints(), WRONG_PASSWORD, sent);
    let refused = wrong.get("k").await.unwrap_err();
    printed.push(format!("{refused} {refused:?}"));
    printed.push(format!("{client:?} {wrong:?} {watcher:?} {second:?}"));
    printed.push(format!(
        "{:?}",
        AuthLayer::new("root", PASSWORD).failure_backoff(Duration::from_secs(1))
    ));
    printed.push(format!(
        "{:?}",
        Client::builder(cluster.endpoints()).user("root", PASSWORD)
    ));
    printed
}

async fn start(bin: &EtcdBinary, jwt: bool) -> Cluster {
    let builder = Cluster::builder(bin);
    let builder = if jwt {
        builder.jwt_token_ttl(Duration::from_secs(2))
    } else {
        builder.auth_token_ttl(2)
    };
    let mut cluster = builder.start().await.unwrap();
    cluster.enable_auth(PASSWORD).await.unwrap();
    cluster
}

#[tokio::test]
async fn no_password_or_token_in_any_log_line_debug_or_display() {
    let logs = captured();
    let sent: Sent = Sent::default();
    // On the newest etcd, with simple tokens and with JWTs. What the client
    // logs depends on what it does (login, refresh, reopen, resume), which
    // the other suites show is the same on every version; once per token
    // type keeps this binary at about 14 s of the CI budget.
    let bin = binaries().into_iter().next().unwrap();
    let mut printed = Vec::new();
    timeout(Duration::from_secs(120), async {
        for jwt in [false, true] {
            let cluster = start(&bin, jwt).await;
            printed.extend(run(&cluster, &sent).await);
        }
    })
    .await
    .expect("the run did not finish within 120 s");

    let text = logs.text();
    // The capture really saw TRACE output of the whole stack.
    assert!(text.contains("TRACE"), "nothing at TRACE was captured");
    assert!(text.contains(" h2::"), "h2's events were not captured");
    let sent = sent.lock().unwrap();
    // At least a login and a refresh after the expiry per cluster (a JWT
    // may outlive the restart).
    assert!(sent.len() >= 4, "only {} tokens were sent", sent.len());
    let mut secrets: Vec<&str> = vec![PASSWORD, WRONG_PASSWORD];
    secrets.extend(sent.iter().map(String::as_str));
    if let Some(leak) = leak(&text, &printed, &secrets) {
        panic!("{leak}");
    }
    eprintln!(
        "{} bytes of TRACE logs, {} tokens, {} printed outputs: no secret in any",
        text.len(),
        sent.len(),
        printed.len()
    );

    // The check itself: a token logged on purpose, as a careless `trace!`
    // anywhere in the stack would, is found.
    let token = sent.iter().next().unwrap();
    tracing::trace!(token = token.as_str(), "logged on purpose");
    assert!(
        leak(&logs.text(), &printed, &secrets).is_some(),
        "a token logged on purpose went unnoticed"
    );
}

/// Where the first of `secrets` shows up in the logs or a printed output.
fn leak(logs: &str, printed: &[String], secrets: &[&str]) -> Option<String> {
    secrets.iter().find_map(|secret| {
        if logs.contains(secret) {
            return Some(format!("a secret of {} bytes is in the logs", secret.len()));
        }
        printed
            .iter()
            .find(|output| output.contains(secret))
            .map(|output| format!("a secret is printed in {output}"))
    })
}
