//! Watch ids: the ones the engine asks for and the ones the server gives.
//!
//! A create request names the id the client wants, and etcd's members
//! answer with exactly that id. etcd's own gRPC proxy does not: it numbers
//! the watches of each stream itself, from 0 up, and ignores the requested
//! id (a stream that asked for 1 and 2 is answered 0 and 1). The protocol
//! only promises that a stream's creates are answered, so the engine takes
//! every watcher's id **from its create answer**, matched to the oldest
//! create still pending (creates are answered in order), and uses that id
//! for its events and its cancel.
//!
//! That order holds for a member, but a proxy answers some creates at once
//! (a refusal, a watch it joins to one it already runs) and others only
//! when the cluster confirmed them, and it confirms watches that share a
//! range in no particular order. With several creates in flight, an answer
//! from a server that picks its own ids cannot be told apart from the
//! answer to another create, and a mix-up would hand one watcher another's
//! events. So the engine sends creates back to back while the server
//! echoes the ids it asks for, and **one at a time** (the next when the
//! previous is answered, as etcd's Go client always does) once a server has
//! answered with an id of its own. When that first happens with several
//! creates in flight, nothing answered on that stream can be trusted: the
//! stream is re-opened (once per stream task; the mode sticks) and every
//! watcher is created again from its next revision, so nothing is lost or
//! repeated.
//!
//! The engine still asks for ids of its own (from 1, never reused), so a
//! member that echoes them is immune to the etcd 3.5.1 bug where a refused
//! create that asked for no id makes the server drop its healthy watcher 0.
//!
//! An answer that fits no create is a **protocol fault**: a create answer
//! when none is pending, a confirmation without an id, or an id another
//! live watcher of the stream already holds. The stream is re-opened, but
//! only a bounded number of times in a row ([`FAULT_LIMIT`]; the count
//! starts again after a stream worked for the back-off's healthy period):
//! then every watcher of the stream ends with an
//! [`ErrorKind::UnexpectedResponse`](etcd_tower_core::ErrorKind::UnexpectedResponse)
//! error instead of being resumed forever. Events for an id no watcher
//! holds are dropped, not counted: they are the normal tail of a watcher
//! the client has just cancelled (the cancel and the server's events cross
//! on the wire).

use std::collections::VecDeque;
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::WatchResponse;

/// How many protocol faults in a row end a stream's watchers.
pub(crate) const FAULT_LIMIT: u32 = 3;

/// Whose watch ids a stream task's server uses; learned from its answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdMode {
    /// The server echoes the ids the engine asks for (etcd's members):
    /// creates go back to back.
    Echoed,
    /// The server picks its own (etcd's gRPC proxy): one create at a time.
    Assigned,
}

/// What a create answer means, once matched to its create.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The server refused the create for `watcher` that asked for `requested`.
    Refused { requested: i64, watcher: u64 },
    /// The server confirmed the create for `watcher` under watch id `id`.
    Created {
        requested: i64,
        watcher: u64,
        id: i64,
    },
    /// The server turned out to pick its own ids while several creates
    /// were in flight: which create this answers is unknown.
    Ambiguous,
    /// The answer fits no create; the text says why.
    Fault(String),
}

/// The creates a stream has sent and the server has not answered yet, in order.
#[derive(Debug, Default)]
pub(crate) struct PendingCreates {
    queue: VecDeque<(i64, u64)>,
}

impl PendingCreates {
    /// Whether another create may be sent now.
    pub(crate) fn may_send(&self, mode: IdMode) -> bool {
        mode == IdMode::Echoed || self.queue.is_empty()
    }

    /// A create asking for id `requested` was sent for `watcher`.
    pub(crate) fn sent(&mut self, requested: i64, watcher: u64) {
        self.queue.push_back((requested, watcher));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Matches a create answer (`created = true`) to the oldest pending
    /// create. `holder` tells which live watcher of the stream holds an id.
    /// Switches `mode` to [`IdMode::Assigned`] on the first id the server
    /// picked itself.
    pub(crate) fn answer(
        &mut self,
        response: &WatchResponse,
        mode: &mut IdMode,
        holder: impl FnOnce(i64) -> Option<u64>,
    ) -> Answer {
        let id = response.watch_id;
        let Some((requested, watcher)) = self.queue.pop_front() else {
            return Answer::Fault(format!(
                "the server answered a watch create that was never sent (watch id {id})"
            ));
        };
        if response.canceled {
            // A refusal carries the requested id, -1 (etcd 3.4.22+, 3.5.6+,
            // the gRPC proxy) or one of the server's: it is the oldest
            // create's either way.
            return Answer::Refused { requested, watcher };
        }
        if id < 0 {
            return Answer::Fault(format!(
                "the server confirmed the watch create that asked for id {requested} without a watch id ({id})"
            ));
        }
        if id != requested && *mode == IdMode::Echoed {
            *mode = IdMode::Assigned;
            if !self.queue.is_empty() {
                return Answer::Ambiguous;
            }
        }
        if let Some(other) = holder(id) {
            return Answer::Fault(format!(
                "the server confirmed the watch create that asked for id {requested} with watch id {id}, which watcher {other} of the same stream already holds"
            ));
        }
        Answer::Created {
            requested,
            watcher,
            id,
        }
    }
}

/// Protocol faults in a row of one stream task.
#[derive(Debug, Default)]
pub(crate) struct FaultCount {
    in_a_row: u32,
}

impl FaultCount {
    /// Counts a fault on a stream that had worked for `healthy_for`
    /// (`None`: it never opened). A stream that worked for `reset_after`
    /// starts the count again. Returns whether the limit is reached (the
    /// count then starts again).
    pub(crate) fn record(&mut self, healthy_for: Option<Duration>, reset_after: Duration) -> bool {
        if healthy_for.is_some_and(|healthy| healthy >= reset_after) {
            self.in_a_row = 0;
        }
        self.in_a_row = self.in_a_row.saturating_add(1);
        if self.in_a_row >= FAULT_LIMIT {
            self.in_a_row = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(id: i64) -> WatchResponse {
        WatchResponse {
            watch_id: id,
            created: true,
            ..Default::default()
        }
    }

    fn refused(id: i64) -> WatchResponse {
        WatchResponse {
            canceled: true,
            ..created(id)
        }
    }

    #[test]
    fn echoed_ids_keep_creates_back_to_back() {
        let mut pending = PendingCreates::default();
        let mut mode = IdMode::Echoed;
        pending.sent(1, 10);
        assert!(pending.may_send(mode));
        pending.sent(2, 20);
        assert_eq!(
            pending.answer(&created(1), &mut mode, |_| None),
            Answer::Created {
                requested: 1,
                watcher: 10,
                id: 1
            }
        );
        assert_eq!(
            pending.answer(&refused(-1), &mut mode, |_| None),
            Answer::Refused {
                requested: 2,
                watcher: 20
            }
        );
        assert_eq!(mode, IdMode::Echoed);
        assert!(pending.is_empty());
    }

    #[test]
    fn an_id_of_the_servers_own_is_adopted_and_creates_go_one_at_a_time() {
        let mut pending = PendingCreates::default();
        let mut mode = IdMode::Echoed;
        pending.sent(1, 10);
        assert_eq!(
            pending.answer(&created(0), &mut mode, |_| None),
            Answer::Created {
                requested: 1,
                watcher: 10,
                id: 0
            }
        );
        assert_eq!(mode, IdMode::Assigned);
        pending.sent(2, 20);
        assert!(!pending.may_send(mode), "one create in flight at a time");
        assert_eq!(
            pending.answer(&created(1), &mut mode, |_| None),
            Answer::Created {
                requested: 2,
                watcher: 20,
                id: 1
            }
        );
        assert!(pending.may_send(mode));
    }

    #[test]
    fn an_id_of_the_servers_own_with_creates_in_flight_is_ambiguous() {
        let mut pending = PendingCreates::default();
        let mut mode = IdMode::Echoed;
        pending.sent(1, 10);
        pending.sent(2, 20);
        assert_eq!(
            pending.answer(&created(0), &mut mode, |_| None),
            Answer::Ambiguous
        );
        assert_eq!(mode, IdMode::Assigned);
    }

    #[test]
    fn misfits_are_faults() {
        let mut mode = IdMode::Assigned;
        let mut pending = PendingCreates::default();
        assert!(matches!(
            pending.answer(&created(0), &mut mode, |_| None),
            Answer::Fault(_)
        ));
        pending.sent(5, 50);
        assert!(matches!(
            pending.answer(&created(0), &mut mode, |id| (id == 0).then_some(40)),
            Answer::Fault(text) if text.contains("watcher 40")
        ));
        pending.sent(6, 60);
        assert!(matches!(
            pending.answer(&created(-1), &mut mode, |_| None),
            Answer::Fault(_)
        ));
    }

    #[test]
    fn faults_in_a_row_reach_the_limit_unless_a_stream_worked_meanwhile() {
        let reset_after = Duration::from_secs(5);
        let mut count = FaultCount::default();
        for _ in 1..FAULT_LIMIT {
            assert!(!count.record(Some(Duration::from_millis(10)), reset_after));
        }
        // A stream that worked for a while: this fault is the first again.
        assert!(!count.record(Some(Duration::from_secs(6)), reset_after));
        for _ in 2..FAULT_LIMIT {
            assert!(!count.record(None, reset_after));
        }
        assert!(count.record(None, reset_after));
        assert!(!count.record(None, reset_after), "starts again");
    }
}
