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

#[tokio::test]
async fn concurrent_transfers_keep_the_total() {
    const ACCOUNTS: usize = 5;
    const WORKERS: usize = 3;
    const TRANSFERS: usize = 10;
    each_version(90, |bin| async move {
        let (_cluster, client) = single(&bin).await;
        for isolation in [
            Isolation::SerializableSnapshot,
            Isolation::Serializable,
            Isolation::RepeatableReads,
        ] {
            let prefix = format!("bank-{isolation:?}/");
            for account in 0..ACCOUNTS {
                client
                    .put(format!("{prefix}{account}"), "100")
                    .await
                    .unwrap();
            }
            let attempts = Arc::new(AtomicU32::new(0));
            let mut workers = Vec::new();
            for worker in 0..WORKERS {
                let (client, prefix, attempts) = (client.clone(), prefix.clone(), attempts.clone());
                workers.push(tokio::spawn(async move {
                    for transfer in 0..TRANSFERS {
                        let from = format!("{prefix}{}", (worker + transfer) % ACCOUNTS);
                        let to = format!("{prefix}{}", (worker + 2 * transfer + 1) % ACCOUNTS);
                        if from == to {
                            continue;
                        }
                        let options = StmOptions::new().isolation(isolation);
                        let done = client
                            .stm(options, |stm| {
                                let (from, to) = (from.clone(), to.clone());
                                async move {
                                    let a = number(stm.get(from.as_str()).await?);
                                    let b = number(stm.get(to.as_str()).await?);
                                    let amount = a / 2;
                                    stm.put(from.as_str(), (a - amount).to_string());
                                    stm.put(to.as_str(), (b + amount).to_string());
                                    Ok(())
                                }
                            })
                            .await
                            .unwrap();
                        attempts.fetch_add(done.attempts, Ordering::Relaxed);
                    }
                }));
            }
            for worker in workers {
                worker.await.unwrap();
            }
            let mut total = 0;
            for account in 0..ACCOUNTS {
                total += number(value(&client, &format!("{prefix}{account}")).await);
            }
            assert_eq!(total, 100 * ACCOUNTS as i64, "{isolation:?}");
            eprintln!(
                "stm {}: {isolation:?}: {} attempts for the transfers",
                bin.label(),
                attempts.load(Ordering::Relaxed)
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
