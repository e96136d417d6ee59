//! The checks, run once at the end against the server's own history.
//!
//! # Linearizability, per key, with etcd's revisions
//!
//! etcd orders every write by one global revision, and every response
//! carries the store revision it was served at. That turns the general
//! (NP-hard) linearizability check into a linear one, as in etcd's own
//! robustness tests:
//!
//! 1. **Register check.** Each acknowledged write has its revision (an
//!    unknown-outcome write that was applied has the revision the history
//!    shows). Each acknowledged read of key K at header revision H must
//!    return exactly the history's state of K at H: the value and
//!    `mod_revision` of the latest write of K at or below H, or nothing
//!    if the latest was a delete. Txn answers are checked the same way:
//!    a txn that succeeded at R had its comparisons true at R-1, one that
//!    failed had them false at H, and its `else` read must match the
//!    state at H. A delete that deleted nothing must find the key absent.
//! 2. **Real-time order.** If operation A completed before operation B
//!    started (client-side instants, so the intervals over-approximate the
//!    true ones), then rev(A) ≤ rev(B), and rev(A) < rev(B) when B is a
//!    write that created a revision (it was applied after A's state
//!    existed). An applied unknown-outcome write has no completion time:
//!    it only ever plays B. Checked in O(n log n) with a sweep over
//!    operations sorted by completion.
//!
//! Together, these mean there is a total order (the revision order, ties
//! broken reads-after-writes) that respects real time and in which every
//! read returns the latest write: the history is linearizable.
//!
//! # Writes: nothing lost, nothing doubled, nothing invented
//!
//! Every written value is unique in the run. An acknowledged put is in the
//! history exactly once, at its key and acknowledged revision; an
//! acknowledged txn's puts all at its revision; a write that "may have
//! been applied" is there once or not at all (a txn all or nothing, in one
//! revision); a write that certainly failed is absent; and every put event
//! in the history belongs to an operation the workload issued (mutex queue
//! keys, whose values are empty, excepted).
//!
//! # Watches, mutex
//!
//! See `check_segments` and `check_mutex`.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bytes::Bytes;

use crate::history::{HEvent, History};
use crate::model::{
    raw, Cmp, Detail, Ev, Found, Hold, KvState, Op, OpKind, Outcome, SegEnd, Segment, Snapshot,
    BANK, NS,
};
use crate::workload::fence_number;

/// One broken guarantee, with a minimal trace.
#[derive(Clone, Debug)]
pub struct Violation {
    pub kind: String,
    pub detail: String,
}

/// Everything the checks need.
#[derive(Debug)]
pub struct Input<'a> {
    pub history: &'a History,
    pub final_rev: i64,
    pub ops: &'a [Op],
    pub segments: &'a [Segment],
    pub holds: &'a [Hold],
    pub snapshots: &'a [Snapshot],
    pub compactions: &'a [i64],
    pub t0: Instant,
    pub timeline: &'a [(Instant, String)],
}

/// What was checked, and what failed.
#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub stats: BTreeMap<&'static str, u64>,
}

impl Report {
    fn fail(&mut self, kind: &str, detail: String) {
        self.violations.push(Violation {
            kind: kind.to_owned(),
            detail,
        });
    }

    fn stat(&mut self, what: &'static str, n: u64) {
        *self.stats.entry(what).or_default() += n;
    }
}

/// The last revision the history covers: everything above it is left
/// unchecked (a truncated history is itself reported as a violation, and
/// must not drown it in consequences).
fn covered(input: &Input<'_>) -> i64 {
    input
        .history
        .events
        .last()
        .map_or(1, |e| e.rev)
        .min(input.final_rev)
}

fn op_rev(op: &Op) -> i64 {
    match &op.outcome {
        Outcome::Ok { rev, .. } => *rev,
        _ => 0,
    }
}

pub fn check_all(input: &Input<'_>) -> Report {
    let covered = covered(input);
    let ops: Vec<Op> = input
        .ops
        .iter()
        .filter(|op| op_rev(op) <= covered)
        .cloned()
        .collect();
    let segments: Vec<Segment> = input
        .segments
        .iter()
        .cloned()
        .map(|mut s| {
            if covered < input.final_rev {
                s.events.retain(|e| e.rev <= covered);
                if matches!(s.end, SegEnd::Open) {
                    s.end = SegEnd::Dropped;
                }
            }
            s
        })
        .collect();
    let holds: Vec<Hold> = input
        .holds
        .iter()
        .filter(|h| h.acquired_rev <= covered)
        .cloned()
        .collect();
    let snapshots: Vec<Snapshot> = input
        .snapshots
        .iter()
        .filter(|s| s.rev <= covered)
        .cloned()
        .collect();
    let input = &Input {
        ops: &ops,
        segments: &segments,
        holds: &holds,
        snapshots: &snapshots,
        ..*input
    };
    let mut report = Report::default();
    if covered < input.final_rev {
        report.stat(
            "revisions NOT covered by the history (unchecked)",
            (input.final_rev - covered) as u64,
        );
    }
    check_history(input, &mut report);
    check_writes_and_reads(input, &mut report);
    check_realtime(input, &mut report);
    check_segments(input, &mut report);
    check_mutex(input, &mut report);
    report
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show_state(s: Option<&KvState>) -> String {
    match s {
        None => "absent".into(),
        Some(s) => format!(
            "{}@mod{} (create {}, v{}, lease {:x})",
            show(&s.value),
            s.mod_rev,
            s.create_rev,
            s.version,
            s.lease
        ),
    }
}

fn show_found(f: &Found) -> String {
    match f {
        None => "absent".into(),
        Some((v, m)) => format!("{}@mod{m}", show(v)),
    }
}

fn secs(t0: Instant, t: Instant) -> String {
    format!("+{:.3}s", t.saturating_duration_since(t0).as_secs_f64())
}

fn describe_op(input: &Input<'_>, op: &Op) -> String {
    let what = match &op.kind {
        OpKind::Put { key, value, lease } => {
            format!("put {}={} lease {lease:x}", show(key), show(value))
        }
        OpKind::Delete { key } => format!("delete {}", show(key)),
        OpKind::Get { key } => format!("get {}", show(key)),
        OpKind::Txn {
            compares,
            puts,
            else_get,
        } => format!(
            "txn if {:?} then {} else get {}",
            compares
                .iter()
                .map(|c| match c {
                    Cmp::ModRev(k, r) => format!("mod({})=={r}", show(k)),
                    Cmp::CreateRev(k, r) => format!("create({})=={r}", show(k)),
                })
                .collect::<Vec<_>>(),
            puts.iter()
                .map(|(k, v)| format!("put {}={}", show(k), show(v)))
                .collect::<Vec<_>>()
                .join(", "),
            show(else_get)
        ),
    };
    let outcome = match &op.outcome {
        Outcome::Ok { rev, detail } => match detail {
            Detail::Put => format!("ok @{rev}"),
            Detail::Deleted(n) => format!("ok @{rev}, deleted {n}"),
            Detail::Got(f) => format!("ok @{rev}: {}", show_found(f)),
            Detail::Txn { succeeded, got } => {
                format!(
                    "ok @{rev}, succeeded {succeeded}, else-get {}",
                    show_found(got)
                )
            }
        },
        Outcome::Unknown(e) => format!("unknown: {e}"),
        Outcome::Failed(e) => format!("failed: {e}"),
    };
    format!(
        "[{}..{}] {} {what} -> {outcome}",
        secs(input.t0, op.start),
        secs(input.t0, op.end),
        op.who
    )
}

/// The faults around an interval, for a trace.
fn faults_near(input: &Input<'_>, from: Instant, to: Instant) -> String {
    let from = from
        .checked_sub(std::time::Duration::from_secs(3))
        .unwrap_or(from);
    let near: Vec<String> = input
        .timeline
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(t, what)| format!("{} {what}", secs(input.t0, *t)))
        .collect();
    if near.is_empty() {
        "no fault in the 3 s before".into()
    } else {
        format!("faults: {}", near.join("; "))
    }
}

/// The history of one key around a revision.
fn key_history(input: &Input<'_>, key: &[u8], around: i64) -> String {
    let events: Vec<&HEvent> = input
        .history
        .events
        .iter()
        .filter(|e| &e.key[..] == key)
        .collect();
    let at = events.partition_point(|e| e.rev < around);
    let lo = at.saturating_sub(3);
    let hi = (at + 3).min(events.len());
    events[lo..hi]
        .iter()
        .map(|e| {
            if e.put {
                format!("@{} put {}", e.rev, show(&e.kv.value))
            } else {
                format!("@{} delete", e.rev)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn op_trace(input: &Input<'_>, op: &Op, key: &[u8], rev: i64) -> String {
    format!(
        "{}\n      history of {} near @{rev}: {}\n      {}",
        describe_op(input, op),
        show(key),
        key_history(input, key, rev),
        faults_near(input, op.start, op.end)
    )
}

/// The historian's record: gap-free, consistent, inside the namespace,
/// and equal to every snapshot the server gave.
fn check_history(input: &Input<'_>, report: &mut Report) {
    let h = input.history;
    report.stat("history events", h.events.len() as u64);
    let mut prev_rev = 1;
    let mut keys_in_rev: Vec<&Bytes> = Vec::new();
    let mut state: HashMap<&Bytes, &KvState> = HashMap::new();
    for e in &h.events {
        if e.rev == prev_rev + 1 {
            keys_in_rev.clear();
        } else if e.rev != prev_rev {
            report.fail(
                "historian-gap",
                format!("the history jumps from revision {prev_rev} to {} (lost, repeated or reordered events)", e.rev),
            );
            keys_in_rev.clear();
        }
        if keys_in_rev.contains(&&e.key) {
            report.fail(
                "historian-duplicate",
                format!("key {} appears twice in revision {}", show(&e.key), e.rev),
            );
        }
        keys_in_rev.push(&e.key);
        prev_rev = e.rev;
        // The bank's accounts are written outside the namespace on purpose.
        if !e.key.starts_with(NS.as_bytes()) && !e.key.starts_with(BANK.as_bytes()) {
            report.fail(
                "namespace-escape",
                format!(
                    "key {} outside the namespace was written at @{}",
                    show(&e.key),
                    e.rev
                ),
            );
        }
        let before = state.get(&e.key).copied();
        if e.put {
            let ok = e.kv.mod_rev == e.rev
                && match before {
                    None => e.kv.create_rev == e.rev && e.kv.version == 1,
                    Some(b) => e.kv.create_rev == b.create_rev && e.kv.version == b.version + 1,
                };
            if !ok {
                report.fail(
                    "historian-inconsistent",
                    format!(
                        "put of {} at @{}: {} after {}",
                        show(&e.key),
                        e.rev,
                        show_state(Some(&e.kv)),
                        show_state(before)
                    ),
                );
            }
            state.insert(&e.key, &e.kv);
        } else {
            if before.is_none() {
                report.fail(
                    "historian-inconsistent",
                    format!("delete of absent key {} at @{}", show(&e.key), e.rev),
                );
            }
            state.remove(&e.key);
        }
    }
    if prev_rev != input.final_rev {
        report.fail(
            "historian-gap",
            format!(
                "the history ends at revision {prev_rev}, the store is at {}",
                input.final_rev
            ),
        );
    }
    for snap in input.snapshots {
        report.stat("snapshots compared", 1);
        let mut from_history: BTreeMap<&Bytes, &KvState> = BTreeMap::new();
        // Snapshots are reads of the namespace.
        for key in h.keys().filter(|key| key.starts_with(NS.as_bytes())) {
            if let Some(s) = h.state_at(key, snap.rev) {
                from_history.insert(key, s);
            }
        }
        let server: BTreeMap<&Bytes, &KvState> = snap.kvs.iter().collect();
        if from_history != server {
            let mut diffs = Vec::new();
            for key in from_history.keys().chain(server.keys()) {
                let (a, b) = (from_history.get(key).copied(), server.get(key).copied());
                if a != b && diffs.len() < 5 {
                    diffs.push(format!(
                        "{}: history {} vs server {}",
                        show(key),
                        show_state(a),
                        show_state(b)
                    ));
                }
            }
            diffs.dedup();
            report.fail(
                "history-vs-server",
                format!("state at @{} differs: {}", snap.rev, diffs.join("; ")),
            );
        }
    }
}

fn compares_hold(h: &History, compares: &[Cmp], rev: i64) -> bool {
    compares.iter().all(|c| match c {
        Cmp::ModRev(k, r) => h.state_at(k, rev).map_or(0, |s| s.mod_rev) == *r,
        Cmp::CreateRev(k, r) => h.state_at(k, rev).map_or(0, |s| s.create_rev) == *r,
    })
}

fn found_at(h: &History, key: &[u8], rev: i64) -> Found {
    h.state_at(key, rev).map(|s| (s.value.clone(), s.mod_rev))
}

fn check_writes_and_reads(input: &Input<'_>, report: &mut Report) {
    let h = input.history;
    let mut owner: HashMap<&Bytes, usize> = HashMap::new();
    for (i, op) in input.ops.iter().enumerate() {
        report.stat("operations checked", 1);
        for (_, v) in op_values(op) {
            if owner.insert(v, i).is_some() {
                report.fail(
                    "harness",
                    format!("value {} written twice by the workload", show(v)),
                );
            }
        }
    }
    // Every put event belongs to an issued operation (the bank's are
    // checked by its own audit).
    for e in &h.events {
        if !e.put || e.key.starts_with(&raw("lock/")) || e.key.starts_with(BANK.as_bytes()) {
            continue;
        }
        match owner.get(&e.kv.value) {
            None => report.fail(
                "phantom-write",
                format!(
                    "@{} put {}={} was never issued by the workload",
                    e.rev,
                    show(&e.key),
                    show(&e.kv.value)
                ),
            ),
            Some(&i) if matches!(input.ops[i].outcome, Outcome::Failed(_)) => report.fail(
                "failed-write-applied",
                format!(
                    "a write reported as certainly not applied is in the history at @{}:\n    {}",
                    e.rev,
                    op_trace(input, &input.ops[i], &e.key, e.rev)
                ),
            ),
            Some(_) => {}
        }
    }
    for op in input.ops {
        let events_of = |v: &Bytes| -> Vec<&HEvent> {
            h.by_value
                .get(v)
                .map(|ix| ix.iter().map(|&i| &h.events[i]).collect())
                .unwrap_or_default()
        };
        match (&op.kind, &op.outcome) {
            (OpKind::Put { key, value, lease }, Outcome::Ok { rev, .. }) => {
                report.stat("acknowledged writes", 1);
                let found = events_of(value);
                let ok = found.len() == 1
                    && found[0].key == *key
                    && found[0].rev == *rev
                    && found[0].kv.lease == *lease;
                if !ok {
                    report.fail(
                        "acknowledged-write",
                        format!(
                            "an acknowledged put is in the history {} time(s) (expected once, at @{rev}): found at {:?}\n    {}",
                            found.len(),
                            found.iter().map(|e| e.rev).collect::<Vec<_>>(),
                            op_trace(input, op, key, *rev)
                        ),
                    );
                }
            }
            (
                OpKind::Txn {
                    compares,
                    puts,
                    else_get,
                },
                Outcome::Ok {
                    rev,
                    detail: Detail::Txn { succeeded, got },
                },
            ) => {
                report.stat("acknowledged writes", 1);
                if *succeeded {
                    for (key, value) in puts {
                        let found = events_of(value);
                        if !(found.len() == 1 && found[0].key == *key && found[0].rev == *rev) {
                            report.fail(
                                "acknowledged-write",
                                format!(
                                    "a put of an acknowledged txn is in the history {} time(s) (expected once at @{rev}): found at {:?}\n    {}",
                                    found.len(),
                                    found.iter().map(|e| e.rev).collect::<Vec<_>>(),
                                    op_trace(input, op, key, *rev)
                                ),
                            );
                        }
                    }
                    if !compares_hold(h, compares, rev - 1) {
                        report.fail(
                            "txn-semantics",
                            format!(
                                "a txn succeeded at @{rev} but its comparisons were false at @{}\n    {}",
                                rev - 1,
                                op_trace(input, op, &puts[0].0, *rev)
                            ),
                        );
                    }
                } else {
                    for (key, value) in puts {
                        if !events_of(value).is_empty() {
                            report.fail(
                                "failed-write-applied",
                                format!(
                                    "a txn answered 'not succeeded' has its put in the history\n    {}",
                                    op_trace(input, op, key, *rev)
                                ),
                            );
                        }
                    }
                    if compares_hold(h, compares, *rev) {
                        report.fail(
                            "txn-semantics",
                            format!(
                                "a txn failed at @{rev} but its comparisons held there\n    {}",
                                op_trace(input, op, else_get, *rev)
                            ),
                        );
                    }
                    report.stat("reads checked", 1);
                    let expected = found_at(h, else_get, *rev);
                    if &expected != got {
                        report.fail(
                            "stale-or-wrong-read",
                            format!(
                                "a txn's else-branch read {} at @{rev}, the history has {}\n    {}",
                                show_found(got),
                                show_found(&expected),
                                op_trace(input, op, else_get, *rev)
                            ),
                        );
                    }
                }
            }
            (OpKind::Put { .. } | OpKind::Txn { .. }, Outcome::Unknown(_)) => {
                report.stat("may-have-been-applied writes", 1);
                let values = op_values(op);
                let found: Vec<Vec<&HEvent>> = values.iter().map(|(_, v)| events_of(v)).collect();
                let counts: Vec<usize> = found.iter().map(Vec::len).collect();
                let all_once_same_rev = counts.iter().all(|&c| c == 1)
                    && found.iter().all(|f| f[0].rev == found[0][0].rev)
                    && values.iter().zip(&found).all(|((k, _), f)| f[0].key == **k);
                let none = counts.iter().all(|&c| c == 0);
                if all_once_same_rev {
                    report.stat("may-have-been-applied writes found applied", 1);
                    if let OpKind::Txn { compares, .. } = &op.kind {
                        let rev = found[0][0].rev;
                        if !compares_hold(h, compares, rev - 1) {
                            report.fail(
                                "txn-semantics",
                                format!(
                                    "an unknown-outcome txn applied at @{rev} with its comparisons false\n    {}",
                                    op_trace(input, op, values[0].0, rev)
                                ),
                            );
                        }
                    }
                } else if !none {
                    report.fail(
                        "unknown-write",
                        format!(
                            "a may-have-been-applied write is in the history partly or more than once (counts {counts:?})\n    {}",
                            op_trace(input, op, values[0].0, found.iter().flatten().map(|e| e.rev).next().unwrap_or(0))
                        ),
                    );
                }
            }
            (
                OpKind::Delete { key },
                Outcome::Ok {
                    rev,
                    detail: Detail::Deleted(n),
                },
            ) => {
                report.stat("acknowledged deletes", 1);
                let deleted_here = h
                    .events
                    .get(first_event_at(h, *rev)..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|e| e.rev == *rev)
                    .any(|e| e.key == *key && !e.put);
                let ok = if *n > 0 {
                    deleted_here
                } else {
                    h.state_at(key, *rev).is_none()
                };
                if !ok {
                    report.fail(
                        "acknowledged-delete",
                        format!(
                            "a delete answered 'deleted {n}' at @{rev} disagrees with the history\n    {}",
                            op_trace(input, op, key, *rev)
                        ),
                    );
                }
            }
            (
                OpKind::Get { key },
                Outcome::Ok {
                    rev,
                    detail: Detail::Got(got),
                },
            ) => {
                report.stat("reads checked", 1);
                let expected = found_at(h, key, *rev);
                if &expected != got {
                    report.fail(
                        "stale-or-wrong-read",
                        format!(
                            "a linearizable get returned {} at @{rev}, the history has {}\n    {}",
                            show_found(got),
                            show_found(&expected),
                            op_trace(input, op, key, *rev)
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

fn op_values(op: &Op) -> Vec<(&Bytes, &Bytes)> {
    match &op.kind {
        OpKind::Put { key, value, .. } => vec![(key, value)],
        OpKind::Txn { puts, .. } => puts.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    }
}

fn first_event_at(h: &History, rev: i64) -> usize {
    h.events.partition_point(|e| e.rev < rev)
}

/// One operation placed in revision order for the real-time check.
struct Point {
    start: Instant,
    end: Option<Instant>,
    rev: i64,
    creates: bool,
    op: usize,
}

fn check_realtime(input: &Input<'_>, report: &mut Report) {
    let h = input.history;
    let mut points = Vec::new();
    for (i, op) in input.ops.iter().enumerate() {
        let point = |end, rev, creates| Point {
            start: op.start,
            end,
            rev,
            creates,
            op: i,
        };
        match (&op.kind, &op.outcome) {
            (_, Outcome::Ok { rev, detail }) => {
                let creates = match detail {
                    Detail::Put => true,
                    Detail::Deleted(n) => *n > 0,
                    Detail::Txn { succeeded, .. } => *succeeded,
                    Detail::Got(_) => false,
                };
                points.push(point(Some(op.end), *rev, creates));
            }
            (_, Outcome::Unknown(_)) => {
                if let Some((_, v)) = op_values(op).first() {
                    if let Some(&e) = h.by_value.get(*v).and_then(|ix| ix.first()) {
                        points.push(point(None, h.events[e].rev, true));
                    }
                }
            }
            _ => {}
        }
    }
    report.stat("real-time pairs swept (ops)", points.len() as u64);
    let mut by_end: Vec<&Point> = points.iter().filter(|p| p.end.is_some()).collect();
    by_end.sort_by_key(|p| p.end);
    let mut by_start: Vec<&Point> = points.iter().collect();
    by_start.sort_by_key(|p| p.start);
    let mut j = 0;
    let mut best: Option<&Point> = None;
    let mut reported = 0;
    for b in by_start {
        while j < by_end.len() && by_end[j].end.is_some_and(|e| e < b.start) {
            if best.is_none_or(|x| by_end[j].rev > x.rev) {
                best = Some(by_end[j]);
            }
            j += 1;
        }
        let Some(a) = best else { continue };
        let bad = a.rev > b.rev || (b.creates && a.rev == b.rev);
        if bad && reported < 20 {
            reported += 1;
            let (oa, ob) = (&input.ops[a.op], &input.ops[b.op]);
            report.fail(
                "real-time-order",
                format!(
                    "an operation at @{} completed before one at @{} started\n    A {}\n    B {}\n      {}",
                    a.rev,
                    b.rev,
                    describe_op(input, oa),
                    describe_op(input, ob),
                    faults_near(input, oa.start, ob.end)
                ),
            );
        }
    }
}

/// Watches: each segment's events must be exactly the history's events in
/// its range from its start revision up to its last delivered revision (up
/// to the final revision for watchers open at the end): ordered, unique,
/// gap-free. A segment may end only with a compaction error whose
/// revision is one the run compacted at and lies above the revision the
/// watcher needed next.
fn check_segments(input: &Input<'_>, report: &mut Report) {
    let h = input.history;
    for seg in input.segments {
        report.stat("watch segments", 1);
        report.stat("watch events checked", seg.events.len() as u64);
        let upto = match seg.end {
            SegEnd::Open => input.final_rev,
            _ => seg.events.last().map_or(seg.start_rev - 1, |e| e.rev),
        };
        let expected: Vec<Ev> = h.events[first_event_at(h, seg.start_rev)..]
            .iter()
            .take_while(|e| e.rev <= upto)
            .filter(|e| seg.range.contains(&e.key))
            .map(|e| Ev {
                rev: e.rev,
                key: e.key.clone(),
                put: e.put,
                value: if e.put {
                    e.kv.value.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        let got: Vec<Ev> = seg
            .events
            .iter()
            .map(|e| Ev {
                value: if e.put { e.value.clone() } else { Bytes::new() },
                ..e.clone()
            })
            .collect();
        if got != expected {
            let i = got
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(expected.len()));
            let show_ev = |e: Option<&Ev>| match e {
                None => "nothing".to_owned(),
                Some(e) => format!(
                    "@{} {} {}{}",
                    e.rev,
                    if e.put { "put" } else { "delete" },
                    show(&e.key),
                    if e.put {
                        format!("={}", show(&e.value))
                    } else {
                        String::new()
                    }
                ),
            };
            report.fail(
                "watch-events",
                format!(
                    "{} watching {}..{} from @{} ({:?}): got {} events, history has {} up to @{upto}; first difference at #{i}: got {}, expected {}",
                    seg.who,
                    show(&seg.range.start),
                    show(&seg.range.end),
                    seg.start_rev,
                    seg.end,
                    got.len(),
                    expected.len(),
                    show_ev(got.get(i)),
                    show_ev(expected.get(i)),
                ),
            );
        }
        match &seg.end {
            SegEnd::Compacted(c) => {
                report.stat("watch compaction errors", 1);
                let needed = seg.next_rev();
                if !(needed < *c && input.compactions.contains(c)) {
                    report.fail(
                        "watch-compaction",
                        format!(
                            "{} got a compaction error at @{c} while it needed @{needed} (compactions: {:?})",
                            seg.who,
                            &input.compactions[input.compactions.len().saturating_sub(5)..]
                        ),
                    );
                }
            }
            SegEnd::Error(e) => report.fail(
                "watch-ended",
                format!("{} from @{} ended with: {e}", seg.who, seg.start_rev),
            ),
            SegEnd::Open | SegEnd::Dropped => {}
        }
    }
}

/// The mutex: at the revision each lock was reported held, the holder's
/// key existed with its create revision and was the oldest key in the
/// lock's queue; holds ordered by that revision never overlap (each starts
/// at or after the previous holder's key was deleted); and the fencing
/// counter, incremented read-modify-write under the lock, went 1, 2, 3, ...
/// without a lost or repeated increment.
fn check_mutex(input: &Input<'_>, report: &mut Report) {
    let h = input.history;
    let lock_prefix = raw("lock/");
    let lock_keys: Vec<&Bytes> = h.keys().filter(|k| k.starts_with(&lock_prefix)).collect();
    let mut intervals = Vec::new();
    for hold in input.holds {
        report.stat("mutex holds", 1);
        let at = hold.acquired_rev;
        let mine = h.state_at(&hold.lock_key, at);
        let oldest = lock_keys
            .iter()
            .filter_map(|k| h.state_at(k, at).map(|s| (s.create_rev, *k)))
            .min();
        let ok = mine.is_some_and(|s| s.create_rev == hold.create_rev)
            && oldest.is_some_and(|(c, _)| c == hold.create_rev);
        if !ok {
            report.fail(
                "mutex-two-holders",
                format!(
                    "{} was told it holds the lock at @{at} with key {} created @{}, but there its key is {} and the oldest waiter is {:?}",
                    hold.who,
                    show(&hold.lock_key),
                    hold.create_rev,
                    show_state(mine),
                    oldest.map(|(c, k)| format!("{} created @{c}", show(k)))
                ),
            );
        }
        let released = h.events[first_event_at(h, at + 1)..]
            .iter()
            .find(|e| e.key == hold.lock_key && !e.put)
            .map_or(i64::MAX, |e| e.rev);
        intervals.push((at, released, hold));
    }
    intervals.sort_by_key(|(a, _, _)| *a);
    for pair in intervals.windows(2) {
        let ((_, released, a), (at, _, b)) = (&pair[0], &pair[1]);
        if at < released {
            report.fail(
                "mutex-two-holders",
                format!(
                    "{} held the lock from @{} until @{released}, {} acquired it at @{at}",
                    a.who, a.acquired_rev, b.who
                ),
            );
        }
    }
    let fence = raw("fence");
    let mut last = 0u64;
    for e in h.events.iter().filter(|e| e.key == fence && e.put) {
        report.stat("fence increments", 1);
        let n = fence_number(&e.kv.value).unwrap_or(0);
        if n != last + 1 {
            report.fail(
                "mutex-fence",
                format!(
                    "the fencing counter went from {last} to {n} at @{} ({}): an increment was lost or repeated",
                    e.rev,
                    show(&e.kv.value)
                ),
            );
        }
        last = n;
    }
}
