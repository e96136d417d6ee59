//! Next-revision bookkeeping: from which revision a watcher resumes.
//!
//! A watcher that is re-created (after its stream broke, or after it was
//! cancelled for lagging) must continue exactly where it stopped: from its
//! *next revision*, the first revision it has not yet been given. Resuming
//! earlier would repeat events; later would lose them. The rules:
//!
//! * An event delivered to the watcher's buffer moves the next revision past
//!   its `mod_revision`.
//! * A watcher created at "now" (no start revision) learns its next revision
//!   from the header of its `created` response: the server starts it after
//!   that revision. A watcher created *at an explicit revision* must not do
//!   this: its created header is the store's current revision, and the
//!   historical events between its start and that revision are still to
//!   come. Every re-create asks for an explicit revision, so only the very
//!   first create of a "now" watcher takes its revision from the header.
//! * A per-watcher progress notification (`watch_id` = the watcher's id, no
//!   events) moves the next revision past its header revision: etcd sends
//!   those only to *synced* watchers, through the same channel as their
//!   events, so every earlier event was already sent. This is safe on every
//!   version, so every create asks for them (`progress_notify = true` on
//!   the wire, whatever the user asked; only a user who asked sees them).
//!   The server sends them every `--experimental-watch-progress-notify-interval`
//!   (10 minutes by default) to watchers without an event in that time.
//! * A broadcast progress response (`watch_id = -1`, the answer to a
//!   progress request) moves it only when all of these hold
//!   ([`NextRevision::on_broadcast_progress`]):
//!   - the stream's member answers progress requests in order with its
//!     events ([`BroadcastOrder::InOrder`]: etcd 3.4.24+, 3.5.8+, 3.6; see
//!     [`progress_order`](crate::progress_order)). Older servers answer at
//!     once with the store's revision, even while some watchers are still
//!     catching up, so the answer may overtake events (etcd issue 15220);
//!   - the watcher's create was sent before the progress request the answer
//!     is for (else [`AtBroadcast::CreatedAfterRequest`]): a member handles
//!     a stream's requests in order and waits, before it answers, only for
//!     the watchers it has registered; a watcher created later may still
//!     have history to send below the answer's revision. Which request an
//!     answer is for is told in
//!     [`progress_requests`](crate::progress_requests);
//!   - the watcher's `created` answer was received before the progress
//!     answer ([`AtBroadcast::Confirmed`]). A fixed server holds the answer
//!     back until every watcher of the stream is synced, but not behind a
//!     watcher whose `created` answer it has not sent yet: it buffers that
//!     watcher's events until then, not the progress answer;
//!   - the watcher is not lagging (a lagging watcher discarded a response,
//!     [`AtBroadcast::Lagging`]) and has no fragment of a response pending.
//!
//!   The engine's own progress requests go only to members known to be in
//!   order (the stream task's timer), so on older servers quiet watchers
//!   rely on the per-watcher notifications above, which every create asks
//!   for.
//! * No rule moves it backwards: a watcher created at a future revision
//!   keeps it.
//! * Defensively, an event below the next revision is dropped: it was
//!   already delivered.

use etcd_tower_core::proto::mvccpb::Event;

/// Whether a stream's member answers a progress request only after every
/// event up to its revision was sent (etcd PR 15237).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BroadcastOrder {
    /// Answers in order with the events: etcd 3.4.24+, 3.5.8+, 3.6.
    InOrder,
    /// May answer ahead of events (older servers), or the member or its
    /// version is not known.
    MayOvertake,
}

/// Where a watcher stands when a broadcast progress answer arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AtBroadcast {
    /// Its `created` answer has not been received (never sent, being
    /// created, refused): the server does not hold progress behind it.
    Unconfirmed,
    /// Its `created` answer was received, but its create was sent after
    /// the progress request this answers (or the stream cannot tell which
    /// request it answers).
    CreatedAfterRequest,
    /// Created on the server before the progress request this answers,
    /// its `created` answer received.
    Confirmed {
        /// Part of a fragmented response was received, not its end.
        partial_fragment: bool,
    },
    /// Cancelled for lagging: it discarded a response.
    Lagging,
}

/// The revision a watcher resumes from; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NextRevision {
    /// The first revision not yet delivered; 0 while a watcher created at
    /// "now" has not learned it yet.
    next: i64,
}

impl NextRevision {
    /// Bookkeeping for a watcher asked to start at `start_revision`
    /// (0 = "now").
    pub(crate) fn new(start_revision: i64) -> Self {
        NextRevision {
            next: start_revision.max(0),
        }
    }

    /// The `start_revision` to send in a create: the next revision, or 0
    /// ("now") for a watcher that was never confirmed.
    pub(crate) fn resume_from(&self) -> i64 {
        self.next
    }

    /// The server confirmed a create; `header_revision` is its header's
    /// revision. Only a watcher created at "now" learns from it.
    pub(crate) fn on_created(&mut self, header_revision: i64) {
        if self.next == 0 && header_revision > 0 {
            self.next = header_revision.saturating_add(1);
        }
    }

    /// Drops the events below the next revision (already delivered).
    /// Events without a key-value (never sent by etcd) are kept.
    pub(crate) fn retain_new(&self, events: &mut Vec<Event>) {
        if self.next > 0 {
            let next = self.next;
            events.retain(|e| e.kv.as_ref().is_none_or(|kv| kv.mod_revision >= next));
        }
    }

    /// The events were handed to the watcher's consumer.
    pub(crate) fn on_delivered(&mut self, events: &[Event]) {
        let last = events
            .iter()
            .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision))
            .max();
        if let Some(last) = last {
            self.next = self.next.max(last.saturating_add(1));
        }
    }

    /// A per-watcher progress notification at `header_revision`.
    pub(crate) fn on_progress(&mut self, header_revision: i64) {
        if self.next > 0 {
            self.next = self.next.max(header_revision.saturating_add(1));
        }
    }

    /// A broadcast progress answer (`watch_id = -1`) at `header_revision`,
    /// from a member that answers in `order`, reaching a watcher that
    /// stands `at`; returns whether it moved the next revision's floor
    /// (see the [module docs](self)).
    pub(crate) fn on_broadcast_progress(
        &mut self,
        header_revision: i64,
        order: BroadcastOrder,
        at: AtBroadcast,
    ) -> bool {
        let safe = order == BroadcastOrder::InOrder
            && at
                == AtBroadcast::Confirmed {
                    partial_fragment: false,
                };
        if safe {
            self.on_progress(header_revision);
        }
        safe
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use etcd_tower_core::proto::mvccpb::KeyValue;

    fn event(rev: i64) -> Event {
        Event {
            kv: Some(KeyValue {
                key: "k".into(),
                mod_revision: rev,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn revs(events: &[Event]) -> Vec<i64> {
        events
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect()
    }

    #[test]
    fn a_watcher_at_now_learns_its_revision_from_the_created_header() {
        let mut next = NextRevision::new(0);
        assert_eq!(next.resume_from(), 0, "unconfirmed: still 'now'");
        next.on_created(41);
        assert_eq!(next.resume_from(), 42);
        // A later create (a resume) never moves it back or forward.
        next.on_created(100);
        assert_eq!(next.resume_from(), 42);
    }

    #[test]
    fn a_historical_watcher_ignores_the_created_header() {
        let mut next = NextRevision::new(5);
        next.on_created(100);
        assert_eq!(next.resume_from(), 5, "events 5..=100 are still to come");
    }

    #[test]
    fn delivered_events_move_it_past_their_mod_revision() {
        let mut next = NextRevision::new(5);
        next.on_delivered(&[event(5), event(7), event(7)]);
        assert_eq!(next.resume_from(), 8);
        next.on_delivered(&[]);
        assert_eq!(next.resume_from(), 8);
    }

    #[test]
    fn old_events_are_dropped() {
        let mut next = NextRevision::new(5);
        next.on_delivered(&[event(5), event(6)]);
        let mut events = vec![event(5), event(6), event(7), event(8)];
        next.retain_new(&mut events);
        assert_eq!(revs(&events), [7, 8]);
        // Nothing to drop before the revision is known.
        let fresh = NextRevision::new(0);
        let mut events = vec![event(1)];
        fresh.retain_new(&mut events);
        assert_eq!(revs(&events), [1]);
    }

    #[test]
    fn progress_moves_it_forward_only() {
        let mut next = NextRevision::new(10);
        next.on_progress(20);
        assert_eq!(next.resume_from(), 21);
        next.on_progress(15);
        assert_eq!(next.resume_from(), 21);
        next.on_delivered(&[event(30)]);
        next.on_progress(25);
        assert_eq!(next.resume_from(), 31);
    }

    #[test]
    fn a_broadcast_progress_moves_only_confirmed_watchers_of_an_in_order_member() {
        use AtBroadcast::*;
        use BroadcastOrder::*;
        let confirmed = Confirmed {
            partial_fragment: false,
        };
        // An in-order member, a confirmed watcher: moved.
        let mut next = NextRevision::new(10);
        assert!(next.on_broadcast_progress(20, InOrder, confirmed));
        assert_eq!(next.resume_from(), 21);
        // Being created (its created answer not received yet), created
        // after the request this answers, lagging, or in the middle of a
        // fragmented response: not moved.
        for at in [
            Unconfirmed,
            CreatedAfterRequest,
            Lagging,
            Confirmed {
                partial_fragment: true,
            },
        ] {
            let mut next = NextRevision::new(10);
            assert!(!next.on_broadcast_progress(20, InOrder, at), "{at:?}");
            assert_eq!(next.resume_from(), 10, "{at:?}");
        }
        // A member that may answer ahead of events (or is not known):
        // nobody moves.
        let mut next = NextRevision::new(10);
        assert!(!next.on_broadcast_progress(20, MayOvertake, confirmed));
        assert_eq!(next.resume_from(), 10);
        // A watcher created at a future revision never moves back.
        let mut next = NextRevision::new(100);
        next.on_broadcast_progress(20, InOrder, confirmed);
        assert_eq!(next.resume_from(), 100);
    }

    #[test]
    fn a_resume_repeats_nothing_and_loses_nothing() {
        // The history of a range, one event per revision 3..=12.
        let history: Vec<Event> = (3..=12).map(event).collect();
        let mut next = NextRevision::new(3);
        let mut seen = Vec::new();
        // First stream delivers 3..=6, then breaks; the server had already
        // sent 7 and 8 which were lost on the wire.
        let mut batch = history[0..4].to_vec();
        next.retain_new(&mut batch);
        next.on_delivered(&batch);
        seen.extend(revs(&batch));
        // The resume asks from the next revision; a server that (wrongly)
        // repeats from 5 is filtered.
        assert_eq!(next.resume_from(), 7);
        let mut batch = history[2..].to_vec();
        next.retain_new(&mut batch);
        next.on_delivered(&batch);
        seen.extend(revs(&batch));
        assert_eq!(seen, (3..=12).collect::<Vec<_>>());
    }
}
