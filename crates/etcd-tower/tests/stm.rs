//! Software transactions (`Client::stm`) on every etcd version of the kit:
//! concurrent transfers keep their total at every isolation level that
//! guards reads, a conflict runs the closure again on fresh reads and the
//! bound on attempts is a typed error, and each level reads what it says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use etcd_tower::concurrency::{Isolation, StmOptions};
use etcd_tower::{Client, ErrorKind, Sent};
use support::{each_version, single};

fn number(value: Option<impl AsRef<[u8]>>) -> i64 {
    value
        .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

async fn value(client: &Client, key: &str) -> Option<String> {
    let found = client.get(key).await.unwrap();
    found
        .kvs()
        .first()
        .map(|kv| kv.value_str().unwrap().to_owned())
}

/// Random transfers among 20 accounts by 8 tasks under each isolation level
/// that promises serializability, with a follower killed mid-run: every
/// transfer also writes its marker (`done/<id>` = the amount) in the same
/// txn, so the balances must be exactly 100 each plus the markers' moves,
/// whatever failed: no transfer lost its other half, none was applied
/// twice. `STM_TRANSFERS` sets the total (default 1,000 per level: about
/// 3 s a level).
#[tokio::test]
async fn concurrent_transfers_keep_the_books() {
    const ACCOUNTS: usize = 20;
    const WORKERS: usize = 8;
    let transfers: usize = std::env::var("STM_TRANSFERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    each_version(240, |bin| async move {
        let cluster = etcd_tower_testkit::Cluster::builder(&bin)
            .members(3)
            .start()
            .await
            .unwrap();
        let leader = cluster.leader_index().await.unwrap();
        let client = Client::connect(cluster.endpoints()).await.unwrap();
        for isolation in [
            Isolation::SerializableSnapshot,
            Isolation::Serializable,
            Isolation::RepeatableReads,
        ] {
            let prefix = format!("bank-{isolation:?}/");
            for account in 0..ACCOUNTS {
                client
                    .put(format!("{prefix}{account:02}"), "100")
                    .await
                    .unwrap();
            }
            let started = tokio::time::Instant::now();
            let next = Arc::new(AtomicU32::new(0));
            let (attempts, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
            let mut workers = Vec::new();
            for worker in 0..WORKERS {
                let (client, prefix) = (client.clone(), prefix.clone());
                let (next, attempts, failed) = (next.clone(), attempts.clone(), failed.clone());
                workers.push(tokio::spawn(async move {
                    let mut seed = 0x9e37_79b9_u64.wrapping_mul(worker as u64 + 1);
                    loop {
                        let id = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if id >= transfers {
                            return;
                        }
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let from = (seed % ACCOUNTS as u64) as usize;
                        let to = (from + 1 + (seed >> 8) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                        let (from, to) = (format!("{prefix}{from:02}"), format!("{prefix}{to:02}"));
                        let marker = format!("{prefix}done/{id:05}");
                        let options = StmOptions::new().isolation(isolation);
                        let done = client
                            .stm(options, |stm| {
                                let (from, to, marker) = (from.clone(), to.clone(), marker.clone());
                                async move {
                                    let a = number(stm.get(from.as_str()).await?);
                                    let b = number(stm.get(to.as_str()).await?);
                                    let amount = (a / 3).max(1).min(a);
                                    stm.put(from.as_str(), (a - amount).to_string());
                                    stm.put(to.as_str(), (b + amount).to_string());
                                    stm.put(marker.as_str(), format!("{from} {to} {amount}"));
                                    Ok(())
                                }
                            })
                            .await;
                        match done {
                            Ok(done) => {
                                attempts.fetch_add(done.attempts, Ordering::Relaxed);
                            }
                            // A member died under the commit: the marker
                            // says whether it was applied.
                            Err(error) => {
                                eprintln!(
                                    "stm transfer {id} failed: {error} ({:?}, {:?})",
                                    error.kind(),
                                    error.sent()
                                );
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }));
            }
            // A follower dies mid-run, in every level's run; it is back
            // before the next.
            while next.load(Ordering::Relaxed) < (transfers / 2) as u32 {
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let follower = (leader + 1) % 3;
            cluster.member(follower).kill().unwrap();
            for worker in workers {
                worker.await.unwrap();
            }
            cluster.member(follower).restart().await.unwrap();
            // The books: 100 each, plus what the markers moved.
            let mut expected = [100i64; ACCOUNTS];
            let markers = client
                .get_with(
                    format!("{prefix}done/"),
                    etcd_tower::GetOptions::new().prefix(),
                )
                .await
                .unwrap();
            for kv in markers.kvs() {
                let text = kv.value_str().unwrap();
                let mut parts = text.split(' ');
                let (from, to, amount) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                let index = |key: &str| key[prefix.len()..].parse::<usize>().unwrap();
                let amount: i64 = amount.parse().unwrap();
                expected[index(from)] -= amount;
                expected[index(to)] += amount;
            }
            for (account, expected) in expected.iter().enumerate() {
                let balance = number(value(&client, &format!("{prefix}{account:02}")).await);
                assert_eq!(balance, *expected, "{isolation:?}: account {account}");
            }
            let failed = failed.load(Ordering::Relaxed) as usize;
            assert!(
                markers.kvs().len() + failed >= transfers,
                "{isolation:?}: a transfer vanished"
            );
            eprintln!(
                "stm {}: {isolation:?}: {transfers} transfers, {} committed, {failed} failed \
                 (a member died), {} attempts, {:?}",
                bin.label(),
                markers.kvs().len(),
                attempts.load(Ordering::Relaxed),
                started.elapsed()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_conflict_runs_the_closure_again_and_the_bound_is_a_typed_error() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let other = client.clone();
        client.put("c/seen", "0").await.unwrap();

        // Another writer changes the key read, once: the second run commits
        // on the fresh value.
        let runs = &AtomicU32::new(0);
        let other = &other;
        let done = client
            .stm(StmOptions::new(), |stm| async move {
                let seen = number(stm.get("c/seen").await?);
                if runs.fetch_add(1, Ordering::Relaxed) == 0 {
                    other.put("c/seen", "5").await?;
                }
                stm.put("c/copy", seen.to_string());
                Ok(seen)
            })
            .await
            .unwrap();
        assert_eq!((done.value, done.attempts), (5, 2));
        assert_eq!(value(&client, "c/copy").await.as_deref(), Some("5"));

        // Every run conflicts: after the bound, a typed error, and nothing
        // of any run was written.
        let runs = &AtomicU32::new(0);
        let error = client
            .stm(StmOptions::new().max_attempts(3), |stm| async move {
                let seen = number(stm.get("c/seen").await?);
                let n = runs.fetch_add(1, Ordering::Relaxed);
                other.put("c/seen", (100 + n).to_string()).await?;
                stm.put("c/never", seen.to_string());
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::TxnConflict, "{error}");
        assert_eq!(error.sent(), Sent::Rejected, "{error}");
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(value(&client, "c/never").await, None);

        // ReadCommitted does not guard reads: the same interference commits
        // at once.
        let done = client
            .stm(
                StmOptions::new().isolation(Isolation::ReadCommitted),
                |stm| async move {
                    let seen = number(stm.get("c/seen").await?);
                    other.put("c/seen", "7").await?;
                    stm.put("c/read-committed", seen.to_string());
                    Ok(())
                },
            )
            .await
            .unwrap();
        assert_eq!(done.attempts, 1);

        // An error from the closure ends it with nothing written.
        let error = client
            .stm(StmOptions::new(), |stm| async move {
                stm.put("c/aborted", "x");
                Err::<(), _>(etcd_tower::EtcdError::client(
                    ErrorKind::InvalidRequest,
                    "changed my mind",
                ))
            })
            .await
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::InvalidRequest);
        assert_eq!(value(&client, "c/aborted").await, None);
    })
    .await;
}

#[tokio::test]
async fn each_level_reads_what_it_says() {
    each_version(60, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        let other = client.clone();
        for (isolation, sees_the_later_write) in [
            (Isolation::SerializableSnapshot, false),
            (Isolation::Serializable, false),
            (Isolation::RepeatableReads, true),
            (Isolation::ReadCommitted, true),
        ] {
            let (a, b) = (&format!("r-{isolation:?}/a"), &format!("r-{isolation:?}/b"));
            client.put(a.as_str(), "a1").await.unwrap();
            client.put(b.as_str(), "b1").await.unwrap();
            let runs = &AtomicU32::new(0);
            let other = &other;
            let done = client
                .stm(StmOptions::new().isolation(isolation), |stm| async move {
                    let first = stm.get(a.as_str()).await?;
                    if runs.fetch_add(1, Ordering::Relaxed) == 0 {
                        // Written after this run's first read.
                        other.put(b.as_str(), "b2").await?;
                    }
                    let second = stm.get(b.as_str()).await?;
                    // A key read twice is read once.
                    assert_eq!(stm.get(b.as_str()).await?, second);
                    // The transaction sees its own writes.
                    stm.put(a.as_str(), "mine");
                    assert_eq!(stm.get(a.as_str()).await?.as_deref(), Some(&b"mine"[..]));
                    Ok((first, second))
                })
                .await
                .unwrap();
            let (first, second) = done.value;
            assert_eq!(first.as_deref(), Some(&b"a1"[..]), "{isolation:?}");
            if sees_the_later_write {
                assert_eq!(second.as_deref(), Some(&b"b2"[..]), "{isolation:?}");
                assert_eq!(done.attempts, 1, "{isolation:?}");
            } else {
                // The snapshot hid b2 on the first run, whose commit then
                // failed; the second run read b2 from a new snapshot.
                assert_eq!(second.as_deref(), Some(&b"b2"[..]), "{isolation:?}");
                assert_eq!(done.attempts, 2, "{isolation:?}");
            }
            assert_eq!(value(&client, a).await.as_deref(), Some("mine"));
        }
    })
    .await;
}
