//! Software transactional memory: read and write keys in a closure, and
//! commit it as one txn, retried when another writer got in between; Go's
//! `concurrency.NewSTM`, with its four isolation levels.
//!
//! A txn must name its compares up front; most updates (move money from
//! one account to another, bump a counter, rename a key) first need to
//! read what they change. The STM runs the closure against a read set it
//! fetches on demand and a write set it buffers, then commits the writes
//! in one txn guarded by compares on what was read (and, for
//! [`Isolation::SerializableSnapshot`], on what is written). If a compare
//! fails, someone changed a key the closure depended on: the closure runs
//! again on fresh reads, up to [`StmOptions::max_attempts`] times (Go
//! retries forever; a bound and [`ErrorKind::TxnConflict`] let a caller
//! give up), and nothing of a failed attempt is applied.
//!
//! The closure may run more than once: keep side effects outside it. It
//! gets an [`Stm`] handle of its own for each run (a handle kept from an
//! earlier run reads and writes nothing of the later ones), and its
//! future may be sent to another task, so `Client::stm` can run inside
//! `tokio::spawn`.
//!
//! | [`Isolation`] | reads | the commit fails if |
//! |---|---|---|
//! | `SerializableSnapshot` (default) | one snapshot: every read at the revision of the first | a key read, or a key written, changed after the snapshot |
//! | `Serializable` | one snapshot, as above | a key read changed |
//! | `RepeatableReads` | each key read once, at the latest revision then | a key read changed |
//! | `ReadCommitted` | each key read once, at the latest revision then | never (the writes just apply) |
//!
//! The compares, the snapshot reads (`serializable` reads at the first
//! read's revision) and the prefetch of a conflicting attempt's reads in
//! the txn's `else` branch are those of Go's `client/v3/concurrency/stm.go`
//! (etcd 3.5), so a Go and a Rust STM on the same keys exclude each other
//! as two Go ones do.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! use etcd_tower::concurrency::StmOptions;
//! use etcd_tower::Client;
//!
//! fn balance(value: Option<impl AsRef<[u8]>>) -> i64 {
//!     let text = value.map(|v| String::from_utf8_lossy(v.as_ref()).into_owned());
//!     text.and_then(|t| t.parse().ok()).unwrap_or(0)
//! }
//!
//! let client = Client::connect(["127.0.0.1:2379"]).await?;
//! // Move 10 from account a to account b, whoever else is moving money.
//! let moved = client
//!     .stm(StmOptions::new().prefetch(["accounts/a", "accounts/b"]), |stm| async move {
//!         let a = balance(stm.get("accounts/a").await?);
//!         let b = balance(stm.get("accounts/b").await?);
//!         stm.put("accounts/a", (a - 10).to_string());
//!         stm.put("accounts/b", (b + 10).to_string());
//!         Ok(a - 10)
//!     })
//!     .await?;
//! println!("a holds {} after {} attempt(s)", moved.value, moved.attempts);
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use etcd_tower_core::{Code, ErrorKind, EtcdError, Sent};

use crate::bytes::IntoBytes;
use crate::client::Client;
use crate::kv::{GetOptions, GetResponse, PutOptions};
use crate::txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

/// How an [`Stm`]'s reads are isolated from other writers; see the
/// [module docs](self) for what each level checks at commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// Reads from one snapshot; the commit fails if a key read or written
    /// changed since (Go's default, `SerializableSnapshot`).
    #[default]
    SerializableSnapshot,
    /// Reads from one snapshot; the commit fails if a key read changed.
    Serializable,
    /// Each key read once; the commit fails if a key read changed.
    RepeatableReads,
    /// Each key read once; the commit never fails.
    ReadCommitted,
}

impl Isolation {
    /// Whether reads come from one snapshot.
    fn snapshot(self) -> bool {
        matches!(
            self,
            Isolation::SerializableSnapshot | Isolation::Serializable
        )
    }
}

/// How [`Client::stm`] runs: the [`Isolation`], keys to read before the
/// first attempt, and how many attempts it may take.
#[derive(Clone, Debug)]
pub struct StmOptions {
    isolation: Isolation,
    prefetch: Vec<Bytes>,
    max_attempts: u32,
}

impl Default for StmOptions {
    fn default() -> Self {
        StmOptions {
            isolation: Isolation::default(),
            prefetch: Vec::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// Attempts a transaction may take by default before it fails with
/// [`ErrorKind::TxnConflict`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 32;

impl StmOptions {
    /// `SerializableSnapshot`, no prefetch, [`DEFAULT_MAX_ATTEMPTS`].
    pub fn new() -> Self {
        StmOptions::default()
    }

    /// The isolation level.
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Reads these keys in one round trip before the first attempt (Go's
    /// `WithPrefetch`).
    pub fn prefetch<K: IntoBytes>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        self.prefetch = keys.into_iter().map(IntoBytes::into_bytes).collect();
        self
    }

    /// How many times the closure may run before the transaction fails
    /// with [`ErrorKind::TxnConflict`] (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
}

/// A committed [`Client::stm`] transaction.
#[derive(Clone, Debug)]
pub struct StmCommit<T> {
    /// What the closure returned on the attempt that committed.
    pub value: T,
    /// The revision of the commit.
    pub revision: i64,
    /// How many times the closure ran.
    pub attempts: u32,
}

/// A write buffered until the commit.
#[derive(Clone, Debug)]
enum Write {
    Put(Bytes, PutOptions),
    Delete,
}

/// What one run of the closure has read and written.
#[derive(Debug, Default)]
struct Attempt {
    /// Every key read, with the answer it was read from.
    reads: HashMap<Bytes, GetResponse>,
    /// Every key written, in key order (the order of the commit's ops).
    writes: BTreeMap<Bytes, Write>,
    /// Answers read ahead (the prefetch, or a conflicting run's `else`
    /// branch), taken by the first reads of their keys.
    prefetched: HashMap<Bytes, GetResponse>,
    /// The snapshot revision reads are made at, once the first is made.
    snapshot: Option<i64>,
}

/// The keys one run of a [`Client::stm`] closure reads and writes: a
/// cheap handle, given to the closure by value for each run.
#[derive(Clone, Debug)]
pub struct Stm {
    client: Client,
    isolation: Isolation,
    attempt: Arc<Mutex<Attempt>>,
}

impl Stm {
    fn attempt(&self) -> MutexGuard<'_, Attempt> {
        self.attempt.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key's value as this transaction sees it: its own write if it
    /// wrote the key, else the value read (`None` for a key that does not
    /// exist, or that it deleted).
    pub async fn get(&self, key: impl IntoBytes) -> Result<Option<Bytes>, EtcdError> {
        let key = key.into_bytes();
        match self.attempt().writes.get(&key) {
            Some(Write::Put(value, _)) => return Ok(Some(value.clone())),
            Some(Write::Delete) => return Ok(None),
            None => {}
        }
        let read = self.read(key).await?;
        Ok(read.kvs().first().map(|kv| kv.value_bytes().clone()))
    }

    /// The key's mod revision as read (0 for a key that does not exist).
    /// Writes of this transaction do not change it.
    pub async fn rev(&self, key: impl IntoBytes) -> Result<i64, EtcdError> {
        let read = self.read(key.into_bytes()).await?;
        Ok(read.kvs().first().map_or(0, |kv| kv.mod_revision()))
    }

    /// Writes the key at the commit.
    pub fn put(&self, key: impl IntoBytes, value: impl IntoBytes) {
        self.put_with(key, value, PutOptions::new());
    }

    /// Writes the key at the commit, with options (a lease).
    pub fn put_with(&self, key: impl IntoBytes, value: impl IntoBytes, options: PutOptions) {
        self.attempt()
            .writes
            .insert(key.into_bytes(), Write::Put(value.into_bytes(), options));
    }

    /// Deletes the key at the commit.
    pub fn delete(&self, key: impl IntoBytes) {
        self.attempt()
            .writes
            .insert(key.into_bytes(), Write::Delete);
    }

    /// The key's answer: read once per run, from the prefetch if it was
    /// read ahead, at the snapshot for the snapshot levels.
    async fn read(&self, key: Bytes) -> Result<GetResponse, EtcdError> {
        let snapshot = {
            let mut attempt = self.attempt();
            if let Some(read) = attempt.reads.get(&key) {
                return Ok(read.clone());
            }
            match attempt.prefetched.remove(&key) {
                Some(answer) => return Ok(self.remember(&mut attempt, key, answer)),
                None => attempt.snapshot,
            }
        };
        let answer = match snapshot {
            // A snapshot read is served by the member it reaches, without
            // consensus; a member that has not applied the snapshot's
            // revision yet refuses it, and the read goes through consensus
            // instead, which waits for it.
            Some(revision) => {
                let serializable = GetOptions::new().revision(revision).serializable();
                match self.client.get_with(key.clone(), serializable).await {
                    Err(error) if error.kind() == &ErrorKind::FutureRevision => {
                        let options = GetOptions::new().revision(revision);
                        self.client.get_with(key.clone(), options).await?
                    }
                    answer => answer?,
                }
            }
            None => self.client.get_with(key.clone(), GetOptions::new()).await?,
        };
        let mut attempt = self.attempt();
        // Two reads of one key raced: the first answer stays.
        if let Some(read) = attempt.reads.get(&key) {
            return Ok(read.clone());
        }
        Ok(self.remember(&mut attempt, key, answer))
    }

    /// Adds a read to the read set; the first read of a snapshot level
    /// fixes the transaction's base revision.
    fn remember(&self, attempt: &mut Attempt, key: Bytes, answer: GetResponse) -> GetResponse {
        if self.isolation.snapshot() && attempt.snapshot.is_none() {
            attempt.snapshot = Some(answer.revision());
        }
        attempt.reads.insert(key, answer.clone());
        answer
    }
}

impl Attempt {
    /// The compares that guard the commit.
    fn conflicts(&self, isolation: Isolation) -> Vec<Compare> {
        let read_compares = || {
            self.reads.iter().map(|(key, answer)| {
                let revision = answer.kvs().first().map_or(0, |kv| kv.mod_revision());
                Compare::mod_revision(key.clone(), CompareOp::Equal, revision)
            })
        };
        match isolation {
            Isolation::ReadCommitted => Vec::new(),
            Isolation::RepeatableReads | Isolation::Serializable => read_compares().collect(),
            Isolation::SerializableSnapshot => {
                let mut compares: Vec<Compare> = read_compares().collect();
                // Nothing written may have changed since the first read.
                if let Some(first) = self.reads.values().map(GetResponse::revision).min() {
                    compares.extend(
                        self.writes.keys().map(|key| {
                            Compare::mod_revision(key.clone(), CompareOp::Less, first + 1)
                        }),
                    );
                }
                compares
            }
        }
    }

    /// The commit's txn, and the keys its `else` branch reads again (for
    /// the next run, should a compare fail).
    fn txn(&self, isolation: Isolation) -> (Txn, Vec<Bytes>) {
        let ops = self.writes.iter().map(|(key, write)| match write {
            Write::Put(value, options) => {
                TxnOp::put_with(key.clone(), value.clone(), options.clone())
            }
            Write::Delete => TxnOp::delete(key.clone()),
        });
        let txn = Txn::new().when(self.conflicts(isolation)).and_then(ops);
        if isolation == Isolation::ReadCommitted {
            return (txn, Vec::new());
        }
        let reread: Vec<Bytes> = self.reads.keys().cloned().collect();
        let txn = txn.or_else(reread.iter().cloned().map(TxnOp::get));
        (txn, reread)
    }
}

/// Pairs keys with the answers of the gets a txn ran for them.
fn answers(keys: Vec<Bytes>, ops: Vec<TxnOpResponse>) -> HashMap<Bytes, GetResponse> {
    keys.into_iter()
        .zip(ops)
        .filter_map(|(key, op)| match op {
            TxnOpResponse::Get(get) => Some((key, get)),
            _ => None,
        })
        .collect()
}

/// # Software transactional memory
impl Client {
    /// Runs `apply` as one transaction: its reads through [`Stm::get`] and
    /// [`Stm::rev`], its writes through [`Stm::put`] and [`Stm::delete`],
    /// committed together, and run again when another writer conflicted
    /// (see the [module docs](crate::concurrency::stm)). An error from
    /// `apply` ends the transaction with nothing written; running out of
    /// attempts fails with [`ErrorKind::TxnConflict`] (code `Aborted`,
    /// [`Sent::Rejected`]: no attempt was applied).
    pub async fn stm<T, F, Fut>(
        &self,
        options: StmOptions,
        mut apply: F,
    ) -> Result<StmCommit<T>, EtcdError>
    where
        F: FnMut(Stm) -> Fut,
        Fut: Future<Output = Result<T, EtcdError>>,
    {
        let mut prefetched = HashMap::new();
        if !options.prefetch.is_empty() {
            let reads = Txn::new().and_then(options.prefetch.iter().cloned().map(TxnOp::get));
            let answer = self.txn(reads).await?;
            prefetched = answers(options.prefetch, answer.into_op_responses());
        }
        for run in 1..=options.max_attempts {
            let stm = Stm {
                client: self.clone(),
                isolation: options.isolation,
                attempt: Arc::new(Mutex::new(Attempt {
                    prefetched: std::mem::take(&mut prefetched),
                    ..Attempt::default()
                })),
            };
            let value = apply(stm.clone()).await?;
            let (txn, reread) = stm.attempt().txn(options.isolation);
            let answer = self.txn(txn).await?;
            if answer.succeeded() {
                return Ok(StmCommit {
                    value,
                    revision: answer.revision(),
                    attempts: run,
                });
            }
            prefetched = answers(reread, answer.into_op_responses());
            tracing::debug!(run, "STM transaction conflicted; running it again");
        }
        Err(EtcdError::new(
            ErrorKind::TxnConflict,
            Code::Aborted,
            format!(
                "the transaction conflicted with other writers on each of its {} attempts",
                options.max_attempts
            ),
            Sent::Rejected,
        ))
    }
}
