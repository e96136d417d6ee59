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
//!   events, so every earlier event was already sent.
//! * A broadcast progress response (`watch_id = -1`, the answer to a
//!   progress request) does **not** move it: etcd 3.4 and 3.5 before the fix
//!   of etcd issue 15220 answer it at once with the store's revision, even
//!   while some watchers are still catching up, so it may overtake events.
//! * Defensively, an event below the next revision is dropped: it was
//!   already delivered.

use etcd_tower_core::proto::mvccpb::Event;

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
