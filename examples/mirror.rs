//! Mirrors one cluster's prefix into another with
//! [`Syncer`](etcd_tower::mirror::Syncer): a copy at one revision, then
//! every change, applied to the destination as it comes.
//!
//! ```text
//! cargo run --example mirror                  # two throwaway local clusters
//! MIRROR_SOURCE=10.0.0.1:2379 MIRROR_DEST=10.0.1.1:2379 MIRROR_PREFIX=config/ \
//!     cargo run --example mirror              # runs until stopped
//! ```
//!
//! With `MIRROR_SOURCE` unset, it starts two single-member etcd servers (with
//! the test kit), writes to the source while mirroring, cuts the mirror off
//! while the source changes and compacts those changes away (the mirror
//! then copies the prefix again), and checks that the destination ends
//! equal to the source.
//!
//! The destination is never emptied: on a new copy (the first, or one made
//! after compaction) it keeps its keys, notes which keys the copy names, and
//! deletes the others once the copy is complete.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use etcd_tower::mirror::{MirrorChange, MirrorUpdate, Syncer};
use etcd_tower::{Client, CompactOptions, EtcdError, GetOptions, Txn, TxnOp};
use etcd_tower_testkit::Proxy;

/// etcd's default `--max-txn-ops`.
const TXN_OPS: usize = 128;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prefix = std::env::var("MIRROR_PREFIX").unwrap_or_else(|_| "mirror/".into());
    match (std::env::var("MIRROR_SOURCE"), std::env::var("MIRROR_DEST")) {
        (Ok(source), Ok(dest)) => {
            let source = Client::connect(source.split(',')).await?;
            let dest = Client::connect(dest.split(',')).await?;
            let mut syncer = Syncer::new(&source, prefix.as_str());
            let mut applier = Applier::new(dest, prefix);
            loop {
                let update = syncer.next().await?;
                applier.apply(update).await?;
            }
        }
        _ => demo(&prefix).await,
    }
}

/// Applies a syncer's updates to the destination cluster.
struct Applier {
    dest: Client,
    prefix: String,
    /// During a copy: the keys it named so far.
    copied: Option<HashSet<Bytes>>,
    /// The source revision the destination is at.
    revision: i64,
}

impl Applier {
    fn new(dest: Client, prefix: String) -> Applier {
        Applier {
            dest,
            prefix,
            copied: None,
            revision: 0,
        }
    }

    async fn apply(&mut self, update: MirrorUpdate) -> Result<(), EtcdError> {
        match update {
            MirrorUpdate::Reset { reason } => {
                println!("mirror: copying {} ({reason:?})", self.prefix);
                self.copied = Some(HashSet::new());
            }
            MirrorUpdate::Page { kvs, .. } => {
                let copied = self.copied.get_or_insert_with(HashSet::new);
                let mut puts = Vec::with_capacity(kvs.len());
                for kv in kvs {
                    let (key, value) = kv.into_key_value();
                    copied.insert(key.clone());
                    puts.push((key, Some(value)));
                }
                self.write(puts).await?;
            }
            MirrorUpdate::Synced { revision } => {
                // Keys the destination has that the copy did not name were
                // deleted at the source while we could not follow.
                let copied = self.copied.take().unwrap_or_default();
                let held = self
                    .dest
                    .get_with(self.prefix.as_str(), GetOptions::new().prefix().keys_only())
                    .await?;
                let stale: Vec<(Bytes, Option<Bytes>)> = held
                    .into_kvs()
                    .into_iter()
                    .map(|kv| kv.into_key_value().0)
                    .filter(|key| !copied.contains(key))
                    .map(|key| (key, None))
                    .collect();
                println!(
                    "mirror: copied {} keys at revision {revision}, removed {} stale",
                    copied.len(),
                    stale.len()
                );
                self.write(stale).await?;
                self.revision = revision;
            }
            MirrorUpdate::Changes { revision, changes } => {
                let ops = changes
                    .into_iter()
                    .map(|change| match change {
                        MirrorChange::Put(kv) => {
                            let (key, value) = kv.into_key_value();
                            (key, Some(value))
                        }
                        MirrorChange::Delete { key, .. } => (key, None),
                    })
                    .collect();
                self.write(ops).await?;
                self.revision = revision;
            }
        }
        Ok(())
    }

    /// Writes puts (`Some` value) and deletes (`None`) to the destination,
    /// in order, up to `TXN_OPS` per transaction, and a new transaction
    /// where a key repeats (etcd refuses a txn that writes a key twice).
    async fn write(&self, writes: Vec<(Bytes, Option<Bytes>)>) -> Result<(), EtcdError> {
        let mut chunk: Vec<TxnOp> = Vec::new();
        let mut keys: HashSet<Bytes> = HashSet::new();
        for (key, value) in writes {
            if chunk.len() == TXN_OPS || keys.contains(&key) {
                self.dest.txn(Txn::new().and_then(chunk)).await?;
                chunk = Vec::new();
                keys.clear();
            }
            keys.insert(key.clone());
            chunk.push(match value {
                Some(value) => TxnOp::put(key, value),
                None => TxnOp::delete(key),
            });
        }
        if !chunk.is_empty() {
            self.dest.txn(Txn::new().and_then(chunk)).await?;
        }
        Ok(())
    }
}

/// Two throwaway clusters: writes while mirroring, then a compaction the
/// mirror cannot follow, and a check that both sides end the same.
async fn demo(prefix: &str) -> Result<(), Box<dyn std::error::Error>> {
    let binary = etcd_tower_testkit::binaries()
        .into_iter()
        .next()
        .ok_or("no etcd binary: run scripts/install-etcd.sh")?;
    let source_cluster = etcd_tower_testkit::Cluster::start(&binary).await?;
    let dest_cluster = etcd_tower_testkit::Cluster::start(&binary).await?;
    println!(
        "started two throwaway {}: source {}, destination {}",
        binary.label(),
        source_cluster.endpoints().join(","),
        dest_cluster.endpoints().join(",")
    );
    let source = Client::connect(source_cluster.endpoints()).await?;
    let dest = Client::connect(dest_cluster.endpoints()).await?;
    // The mirror reads the source through a proxy, to lose the connection
    // on purpose.
    let proxy = Proxy::start(source_cluster.member(0).client_addr()).await?;
    let mirrored = Client::connect([proxy.endpoint()]).await?;
    for i in 0..1_500 {
        source
            .put(format!("{prefix}{i:04}"), format!("v{i}"))
            .await?;
    }
    // A key the destination has and the source does not: the copy removes it.
    dest.put(format!("{prefix}stale"), "gone").await?;

    let mut syncer = Syncer::new(&mirrored, prefix);
    let mut applier = Applier::new(dest.clone(), prefix.to_owned());
    let mut target = source.put(format!("{prefix}last"), "1").await?.revision();
    for round in 0..3 {
        // Follow the source up to `target`.
        while applier.revision < target {
            let update = tokio::time::timeout(Duration::from_secs(20), syncer.next()).await??;
            applier.apply(update).await?;
        }
        // Changes: updates and deletes. In the second round the mirror is
        // cut off from the source while they are made, and the source
        // compacts them away before it can read them.
        if round == 1 {
            proxy.reject_new(true);
            proxy.cut();
        }
        for i in 0..50 {
            source
                .put(format!("{prefix}{:04}", i * 7), format!("round {round}"))
                .await?;
            source
                .delete(format!("{prefix}{:04}", i * 7 + 1 + round))
                .await?;
        }
        target = source
            .put(format!("{prefix}last"), "again")
            .await?
            .revision();
        if round == 1 {
            source
                .compact_with(target, CompactOptions::new().physical())
                .await?;
            proxy.reject_new(false);
            println!("compacted the source at {target} behind the mirror's back");
        }
    }
    while applier.revision < target {
        let update = tokio::time::timeout(Duration::from_secs(20), syncer.next()).await??;
        applier.apply(update).await?;
    }

    let get = GetOptions::new().prefix();
    let at_source = source.get_with(prefix, get.clone()).await?.into_kvs();
    let at_dest = dest.get_with(prefix, get).await?.into_kvs();
    let pairs = |kvs: Vec<etcd_tower::KeyValue>| -> Vec<(Bytes, Bytes)> {
        kvs.into_iter().map(|kv| kv.into_key_value()).collect()
    };
    let (at_source, at_dest) = (pairs(at_source), pairs(at_dest));
    if at_source != at_dest {
        return Err(format!(
            "the destination ({} keys) differs from the source ({} keys)",
            at_dest.len(),
            at_source.len()
        )
        .into());
    }
    println!(
        "the destination holds the source's {} keys under {prefix}",
        at_source.len()
    );
    Ok(())
}
