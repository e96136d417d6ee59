//! STM transfers under the faults, with the books checked at the end.
//!
//! Bankers move money among [`ACCOUNTS`] accounts with `Client::stm`
//! (alternating serializable snapshot and serializable isolation), each
//! transfer writing its marker in the same txn. However a transfer ended
//! (committed, a typed error, may-have-been-applied), the balances at the
//! end must be exactly the opening ones moved by the markers: no transfer
//! half applied, none applied twice. The accounts live outside the
//! namespace the history checker watches.

use std::sync::Arc;

use etcd_tower::concurrency::{Isolation, StmOptions};
use etcd_tower::{Client, GetOptions};

use crate::model::{Recorder, BANK as PREFIX};
use crate::rng::Rng;

/// How many accounts, each opened with [`OPENING`].
pub const ACCOUNTS: u64 = 8;
const OPENING: i64 = 100;

fn account(i: u64) -> String {
    format!("{PREFIX}acct/{i}")
}

fn number(value: Option<&[u8]>) -> i64 {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// Opens the accounts (before any fault).
pub async fn open(client: &Client) {
    for i in 0..ACCOUNTS {
        client
            .put(account(i), OPENING.to_string())
            .await
            .expect("opening an account before the faults");
    }
}

/// Transfers until the workload stops.
pub async fn banker(client: Client, rec: Arc<Recorder>, id: usize, mut rng: Rng) {
    let mut seq = 0u64;
    while !rec.stopped() {
        seq += 1;
        let from = rng.below(ACCOUNTS);
        let to = (from + 1 + rng.below(ACCOUNTS - 1)) % ACCOUNTS;
        let (from, to) = (account(from), account(to));
        let marker = format!("{PREFIX}done/{id}.{seq}");
        let isolation = if seq.is_multiple_of(2) {
            Isolation::Serializable
        } else {
            Isolation::SerializableSnapshot
        };
        let done = client
            .stm(StmOptions::new().isolation(isolation), |stm| {
                let (from, to, marker) = (from.clone(), to.clone(), marker.clone());
                async move {
                    let a = number(stm.get(from.as_str()).await?.as_deref());
                    let b = number(stm.get(to.as_str()).await?.as_deref());
                    let amount = (a / 3).clamp(0, a.max(0));
                    stm.put(from.as_str(), (a - amount).to_string());
                    stm.put(to.as_str(), (b + amount).to_string());
                    stm.put(marker.as_str(), format!("{from} {to} {amount}"));
                    Ok(())
                }
            })
            .await;
        match done {
            Ok(_) => rec.count("bank: transfer committed"),
            Err(error) => rec.count(&format!("bank: transfer failed ({:?})", error.sent())),
        }
        tokio::time::sleep(rng.ms(5, 25)).await;
    }
}

/// Checks the books once the bankers stopped: every balance is the opening
/// one moved by the markers, and the money adds up.
pub async fn audit(client: &Client, rec: &Recorder) {
    let read = |prefix: String| async move {
        client
            .get_with(prefix, GetOptions::new().prefix())
            .await
            .expect("reading the books after the faults")
    };
    let markers = read(format!("{PREFIX}done/")).await;
    let accounts = read(format!("{PREFIX}acct/")).await;
    let mut expected = vec![OPENING; ACCOUNTS as usize];
    for kv in markers.kvs() {
        let text = String::from_utf8_lossy(kv.value_bytes()).into_owned();
        let index = |key: &str| key.rsplit('/').next().and_then(|i| i.parse::<usize>().ok());
        let parsed = match text.split(' ').collect::<Vec<_>>().as_slice() {
            [from, to, amount] => index(from).zip(index(to)).zip(amount.parse::<i64>().ok()),
            _ => None,
        };
        match parsed {
            Some(((from, to), amount)) if from < expected.len() && to < expected.len() => {
                expected[from] -= amount;
                expected[to] += amount;
            }
            _ => rec.violation("bank", format!("a marker that does not parse: {text}")),
        }
    }
    let balances: Vec<i64> = (0..ACCOUNTS)
        .map(|i| {
            number(
                accounts
                    .kvs()
                    .iter()
                    .find(|kv| kv.key_bytes().as_ref() == account(i).as_bytes())
                    .map(|kv| kv.value_bytes().as_ref()),
            )
        })
        .collect();
    if balances != expected {
        rec.violation(
            "bank",
            format!("the books do not balance: {balances:?}, the markers say {expected:?}"),
        );
    }
    let total: i64 = balances.iter().sum();
    if total != OPENING * ACCOUNTS as i64 {
        rec.violation("bank", format!("money made or lost: {total}"));
    }
    for _ in markers.kvs() {
        rec.count("bank: transfers on the books");
    }
}
