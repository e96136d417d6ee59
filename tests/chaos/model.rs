//! What the run records: client operations with their real-time interval
//! and outcome, watcher segments, mutex holds, faults, compactions and the
//! server snapshots the checks compare the history with.
//!
//! Every key is recorded as the server stores it (with the namespace
//! prefix), so that records and the raw history compare directly.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use etcd_tower::{EtcdError, Sent};

/// The namespace of the workload client.
pub const NS: &str = "chaos/";
/// Where the bank (`bank.rs`) keeps its accounts: outside [`NS`], written
/// by a client without the namespace.
pub const BANK: &str = "/chaos-bank/";

/// The server key of a namespaced key.
pub fn raw(key: &str) -> Bytes {
    Bytes::from(format!("{NS}{key}"))
}

/// `[start, end)` in server keys; an empty end means the single key `start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Bytes,
    pub end: Bytes,
}

impl KeyRange {
    pub fn contains(&self, key: &[u8]) -> bool {
        if self.end.is_empty() {
            key == &self.start[..]
        } else {
            key >= &self.start[..] && key < &self.end[..]
        }
    }
}

/// A comparison of a txn, as the checker models it.
#[derive(Clone, Debug)]
pub enum Cmp {
    /// `mod_revision(key) == rev` (0: the key does not exist).
    ModRev(Bytes, i64),
    /// `create_revision(key) == rev` (0: the key does not exist).
    CreateRev(Bytes, i64),
}

/// What an operation asked for.
#[derive(Clone, Debug)]
pub enum OpKind {
    Put {
        key: Bytes,
        value: Bytes,
        lease: i64,
    },
    Delete {
        key: Bytes,
    },
    /// `if compares then puts else get(else_get)`.
    Txn {
        compares: Vec<Cmp>,
        puts: Vec<(Bytes, Bytes)>,
        else_get: Bytes,
    },
    /// A linearizable get of one key.
    Get {
        key: Bytes,
    },
}

impl OpKind {
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Put { .. } => "put",
            OpKind::Delete { .. } => "delete",
            OpKind::Txn { .. } => "txn",
            OpKind::Get { .. } => "get",
        }
    }
}

/// `(value, mod_revision)` of a key a read found, `None` when absent.
pub type Found = Option<(Bytes, i64)>;

/// What the server answered, beyond the header's revision.
#[derive(Clone, Debug)]
pub enum Detail {
    Put,
    Deleted(i64),
    Txn { succeeded: bool, got: Found },
    Got(Found),
}

/// How an operation ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Acknowledged, with the response header's revision.
    Ok { rev: i64, detail: Detail },
    /// Failed after it may have reached the server (`MayHaveBeenApplied`,
    /// or cancelled by the harness's own deadline).
    Unknown(String),
    /// Failed and certainly not applied (`NotSent` or `Rejected`).
    Failed(String),
}

impl Outcome {
    pub fn of_error(error: &EtcdError) -> Outcome {
        match error.sent() {
            Sent::MayHaveBeenApplied => Outcome::Unknown(error.to_string()),
            Sent::NotSent | Sent::Rejected => Outcome::Failed(error.to_string()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Unknown(_) => "unknown",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// One client operation.
#[derive(Clone, Debug)]
pub struct Op {
    pub who: String,
    pub kind: OpKind,
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
}

/// One event as a watcher (or the historian) delivered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    pub rev: i64,
    pub key: Bytes,
    pub put: bool,
    pub value: Bytes,
}

/// How a watcher segment ended.
#[derive(Clone, Debug)]
pub enum SegEnd {
    /// Still running when the run ended (drained to the final revision).
    Open,
    /// Dropped by the workload (a cancel).
    Dropped,
    /// Ended with a typed compaction error carrying this revision.
    Compacted(i64),
    /// Ended with another error, or the stream ended without one.
    Error(String),
}

/// The life of one `Watcher`, from its start revision.
#[derive(Clone, Debug)]
pub struct Segment {
    pub who: String,
    pub range: KeyRange,
    pub start_rev: i64,
    pub events: Vec<Ev>,
    pub end: SegEnd,
}

impl Segment {
    /// The revision the watcher needs next.
    pub fn next_rev(&self) -> i64 {
        self.events.last().map_or(self.start_rev, |e| e.rev + 1)
    }
}

/// A mutex acquisition: the lock key, its create revision (the fencing
/// token) and the revision the client reported the lock held at.
#[derive(Clone, Debug)]
pub struct Hold {
    pub who: String,
    pub lock_key: Bytes,
    pub create_rev: i64,
    pub acquired_rev: i64,
}

/// Server state of the namespace read at one revision (a compaction
/// point, or the end): `key -> (value, mod, create, version, lease)`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub rev: i64,
    pub kvs: BTreeMap<Bytes, KvState>,
}

/// One key's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvState {
    pub value: Bytes,
    pub mod_rev: i64,
    pub create_rev: i64,
    pub version: i64,
    pub lease: i64,
}

/// Everything the run records, shared by every task.
#[derive(Debug, Default)]
pub struct Recorder {
    pub ops: Mutex<Vec<Op>>,
    pub segments: Mutex<Vec<Segment>>,
    pub holds: Mutex<Vec<Hold>>,
    pub snapshots: Mutex<Vec<Snapshot>>,
    /// Compaction revisions asked for (acknowledged or not).
    pub compactions: Mutex<Vec<i64>>,
    pub faults: Mutex<BTreeMap<String, u64>>,
    /// When each fault started and ended, for traces.
    pub timeline: Mutex<Vec<(Instant, String)>>,
    /// Other things worth counting (leases lost, sessions renewed, ...).
    pub counters: Mutex<BTreeMap<String, u64>>,
    /// Problems found while running (a task panicked, a lease lied, ...).
    pub live_violations: Mutex<Vec<(String, String)>>,
    /// The historian's last delivered revision: compactions stay at or below it.
    pub historian_rev: AtomicI64,
    pub stop: AtomicBool,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn op(&self, op: Op) {
        lock(&self.ops).push(op);
    }

    pub fn fault(&self, kind: &str) {
        *lock(&self.faults).entry(kind.to_owned()).or_default() += 1;
        self.note(kind.to_owned());
    }

    pub fn note(&self, what: String) {
        lock(&self.timeline).push((Instant::now(), what));
    }

    pub fn count(&self, what: &str) {
        *lock(&self.counters).entry(what.to_owned()).or_default() += 1;
    }

    pub fn violation(&self, kind: &str, detail: String) {
        lock(&self.live_violations).push((kind.to_owned(), detail));
    }

    pub fn fault_total(&self) -> u64 {
        lock(&self.faults).values().sum()
    }
}
