//! Progress requests on one stream: which member answers them, which
//! request each answer is for, and whose it is.
//!
//! The stream task asks for progress on a timer
//! ([`WatchConfig::progress_interval`](crate::WatchConfig::progress_interval))
//! on streams whose member answers in order (see
//! [`progress_order`](crate::progress_order)), so that a quiet watcher's
//! next revision stays recent; users ask with
//! [`Watcher::request_progress`](crate::Watcher::request_progress) and
//! [`WatchEngine::request_progress`](crate::WatchEngine::request_progress).
//! etcd's answers (`watch_id = -1`) do not say which request they answer.
//!
//! **Which request.** A member handles a stream's requests in order, and a
//! fixed one answers a progress request only once every watcher it has
//! registered is synced. A watcher whose create was sent *after* the
//! request may not have been registered then, so the answer says nothing
//! about it (it may have been produced before the watcher's history was
//! even read). The stream numbers its requests, remembers how many were
//! sent before each create, and takes each answer as the answer to the
//! oldest request not yet answered. A server that merges requests answers
//! fewer than were sent; then an answer is taken for an older request than
//! the one it answers, which only leaves out watchers it could have moved.
//! Requests are never forgotten while unanswered: when too many are, the
//! stream stops matching answers to requests altogether (no answer moves a
//! next revision on it any more).
//!
//! **Whose.** An answer goes to the users while a user request is
//! unanswered (users are served first), is the engine's own (and hidden
//! from users) while only engine requests are, and goes to the users
//! otherwise, as any answer did before the engine asked for its own.
//!
//! **Which member.** A stream's member is the `member_id` of its response
//! headers. One that shows several (etcd's gRPC proxy moving to another
//! member under the same stream) has no single member, and its progress
//! answers may not move any next revision.

use std::collections::VecDeque;

/// The most unanswered requests remembered on one stream.
const MAX_UNANSWERED: usize = 16;

/// How many timer ticks the engine waits for the answer to its own
/// request before it asks again (etcd before 3.5.13 may leave a request
/// unanswered, etcd PR 17557).
const OWN_PATIENCE_TICKS: u8 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Member {
    /// No header with a member id yet.
    Unknown,
    One(u64),
    /// Headers named different members.
    Several,
}

/// Who asks for progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asker {
    /// The engine's timer.
    Engine,
    /// A user, through a watcher or the engine.
    User,
}

/// What a progress answer is, as far as the stream can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The users see it.
    pub(crate) show: bool,
    /// The number (from 1) of the request it answers; `None` when the
    /// stream cannot tell.
    pub(crate) request: Option<u64>,
}

/// One stream's progress requests; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct StreamProgress {
    member: Member,
    /// Requests sent on the stream so far.
    sent: u64,
    /// Numbers of the requests sent and not answered yet, oldest first.
    unanswered: VecDeque<u64>,
    /// A request could not be remembered: answers cannot be matched any
    /// more.
    overflowed: bool,
    /// Engine requests unanswered (for whose answer it is).
    own: usize,
    /// User requests unanswered.
    users: usize,
    /// Who sent the last request (a merged request joins it).
    last: Asker,
    /// Ticks since the engine's own request was sent, while unanswered.
    own_waiting: u8,
}

impl Default for StreamProgress {
    fn default() -> Self {
        StreamProgress {
            member: Member::Unknown,
            sent: 0,
            unanswered: VecDeque::new(),
            overflowed: false,
            own: 0,
            users: 0,
            last: Asker::Engine,
            own_waiting: 0,
        }
    }
}

impl StreamProgress {
    /// A response header named `member_id`; returns it when it is the first
    /// member id the stream shows.
    pub(crate) fn saw_member(&mut self, member_id: u64) -> Option<u64> {
        if member_id == 0 {
            return None;
        }
        match self.member {
            Member::Unknown => {
                self.member = Member::One(member_id);
                Some(member_id)
            }
            Member::One(id) if id != member_id => {
                tracing::debug!(
                    first = id,
                    now = member_id,
                    "the watch stream's headers name another member"
                );
                self.member = Member::Several;
                None
            }
            Member::One(_) | Member::Several => None,
        }
    }

    /// The stream's member, if its headers named exactly one.
    pub(crate) fn member(&self) -> Option<u64> {
        match self.member {
            Member::One(id) => Some(id),
            Member::Unknown | Member::Several => None,
        }
    }

    /// How many requests were sent so far: a create sent now comes after
    /// them.
    pub(crate) fn requests_sent(&self) -> u64 {
        self.sent
    }

    /// A request by `asker` went out.
    pub(crate) fn sent(&mut self, asker: Asker) {
        self.sent = self.sent.saturating_add(1);
        if self.unanswered.len() < MAX_UNANSWERED {
            self.unanswered.push_back(self.sent);
        } else if !self.overflowed {
            tracing::debug!("too many progress requests unanswered; no longer matching answers");
            self.overflowed = true;
        }
        match asker {
            Asker::Engine => {
                self.own = self.own.saturating_add(1);
                self.own_waiting = 0;
            }
            Asker::User => self.users = self.users.saturating_add(1),
        }
        self.last = asker;
    }

    /// A request by `asker` joined the one still queued (the last sent).
    pub(crate) fn merged(&mut self, asker: Asker) {
        if asker == Asker::User && self.last == Asker::Engine && self.own > 0 {
            self.own -= 1;
            self.users = self.users.saturating_add(1);
            self.last = Asker::User;
        }
    }

    /// The engine's timer fired; returns whether to send a request of its
    /// own: not while its last one waits for an answer (for a while), nor
    /// while too many are unanswered.
    pub(crate) fn engine_may_ask(&mut self) -> bool {
        if self.overflowed || self.unanswered.len() >= MAX_UNANSWERED {
            return false;
        }
        if self.own == 0 {
            return true;
        }
        self.own_waiting = self.own_waiting.saturating_add(1);
        self.own_waiting >= OWN_PATIENCE_TICKS
    }

    /// An answer came.
    pub(crate) fn answered(&mut self) -> Answer {
        let show = if self.users > 0 {
            self.users -= 1;
            true
        } else if self.own > 0 {
            self.own -= 1;
            false
        } else {
            true
        };
        let request = self.unanswered.pop_front().filter(|_| !self.overflowed);
        Answer { show, request }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_own_answers_are_hidden_and_users_are_served_first() {
        let mut progress = StreamProgress::default();
        progress.sent(Asker::Engine);
        assert!(!progress.answered().show, "the engine's own");
        progress.sent(Asker::Engine);
        progress.sent(Asker::User);
        assert!(progress.answered().show, "the user's first");
        assert!(!progress.answered().show);
        // An answer nobody is known to have asked for is shown, as before.
        assert!(progress.answered().show);
        // A user request merged into a queued engine one is the user's.
        progress.sent(Asker::Engine);
        progress.merged(Asker::User);
        assert!(progress.answered().show);
        progress.sent(Asker::User);
        progress.merged(Asker::Engine);
        assert!(progress.answered().show);
        progress.sent(Asker::Engine);
        assert!(!progress.answered().show, "nothing left over");
    }

    #[test]
    fn answers_are_taken_for_the_oldest_request_unanswered() {
        let mut progress = StreamProgress::default();
        assert_eq!(progress.requests_sent(), 0);
        progress.sent(Asker::Engine);
        progress.sent(Asker::User);
        assert_eq!(progress.requests_sent(), 2);
        assert_eq!(progress.answered().request, Some(1));
        assert_eq!(progress.answered().request, Some(2));
        assert_eq!(progress.answered().request, None, "unasked");
        progress.sent(Asker::Engine);
        assert_eq!(progress.answered().request, Some(3));
    }

    #[test]
    fn too_many_unanswered_requests_stop_the_matching() {
        let mut progress = StreamProgress::default();
        for _ in 0..MAX_UNANSWERED {
            progress.sent(Asker::User);
        }
        assert!(!progress.engine_may_ask(), "the engine waits");
        progress.sent(Asker::User);
        assert_eq!(progress.answered().request, None, "cannot tell any more");
        assert!(!progress.engine_may_ask());
    }

    #[test]
    fn the_engine_asks_again_only_after_a_while_without_an_answer() {
        let mut progress = StreamProgress::default();
        assert!(progress.engine_may_ask());
        progress.sent(Asker::Engine);
        for _ in 1..OWN_PATIENCE_TICKS {
            assert!(!progress.engine_may_ask());
        }
        assert!(progress.engine_may_ask(), "unanswered for too long");
        progress.sent(Asker::Engine);
        assert!(!progress.engine_may_ask());
        progress.answered();
        progress.answered();
        assert!(progress.engine_may_ask());
    }

    #[test]
    fn one_member_or_none() {
        let mut progress = StreamProgress::default();
        assert_eq!(progress.saw_member(0), None);
        assert_eq!(progress.member(), None);
        assert_eq!(progress.saw_member(7), Some(7));
        assert_eq!(progress.saw_member(7), None);
        assert_eq!(progress.member(), Some(7));
        assert_eq!(progress.saw_member(8), None);
        assert_eq!(progress.member(), None, "several members: none");
        assert_eq!(progress.saw_member(7), None);
        assert_eq!(progress.member(), None);
    }
}
