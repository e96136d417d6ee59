//! Joining fragmented watch responses.
//!
//! A watcher created with `fragment = true` lets the server split a response
//! larger than its request limit into several messages with the same
//! `watch_id`, each flagged `fragment = true` except the last. The server
//! sends the pieces of one response back to back; they are joined here into
//! the response the server would have sent whole, so that the rest of the
//! engine (and the user) never sees a partial revision.
//!
//! Each piece is within the transport's receive limit, but nothing in the
//! protocol bounds how many pieces come: a server (or something pretending
//! to be one) that never sends the last piece would make a joiner without
//! a bound hold everything. The pieces of one response are therefore
//! counted in encoded bytes, and past [`WatchConfig::max_fragmented`]
//! (crate::WatchConfig::max_fragmented) the response is refused as
//! [`TooLarge`] and its pieces dropped.

use std::collections::HashMap;

use etcd_tower_core::proto::etcdserverpb::WatchResponse;
use prost::Message;

/// Pieces received so far, by watch id.
#[derive(Debug)]
pub(crate) struct Fragments {
    partial: HashMap<i64, Partial>,
    /// The most encoded event bytes one joined response may hold.
    limit: usize,
}

/// The pieces of one response joined so far.
#[derive(Debug)]
struct Partial {
    head: WatchResponse,
    /// Encoded bytes of the events joined so far.
    bytes: usize,
}

/// A fragmented response grew past the limit; its pieces were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) watch_id: i64,
    pub(crate) limit: usize,
}

impl Default for Fragments {
    fn default() -> Self {
        Fragments::new(crate::config::DEFAULT_MAX_FRAGMENTED)
    }
}

/// Encoded bytes of a piece's events.
fn event_bytes(piece: &WatchResponse) -> usize {
    piece.events.iter().map(Message::encoded_len).sum()
}

impl Fragments {
    /// A joiner that refuses a response whose events pass `limit` encoded
    /// bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Fragments {
            partial: HashMap::new(),
            limit,
        }
    }

    /// Takes one message; returns the whole response once its last piece
    /// came (at once for an unfragmented message), or [`TooLarge`] once
    /// the pieces of one response pass the limit (they are dropped, and
    /// later pieces of that response start a new one).
    pub(crate) fn push(&mut self, piece: WatchResponse) -> Result<Option<WatchResponse>, TooLarge> {
        let id = piece.watch_id;
        let Some(mut partial) = self.partial.remove(&id) else {
            if !piece.fragment {
                return Ok(Some(piece));
            }
            let bytes = event_bytes(&piece);
            return self.keep(Partial { head: piece, bytes });
        };
        partial.bytes = partial.bytes.saturating_add(event_bytes(&piece));
        if partial.bytes > self.limit {
            return Err(TooLarge {
                watch_id: id,
                limit: self.limit,
            });
        }
        if piece.fragment {
            partial.head.events.extend(piece.events);
            return self.keep(partial);
        }
        let mut whole = partial.head;
        whole.events.extend(piece.events);
        whole.fragment = false;
        whole.canceled = piece.canceled;
        whole.compact_revision = piece.compact_revision;
        whole.cancel_reason = piece.cancel_reason;
        if piece.header.is_some() {
            whole.header = piece.header;
        }
        Ok(Some(whole))
    }

    /// Keeps a response's pieces for the next, if they are within the
    /// limit.
    fn keep(&mut self, partial: Partial) -> Result<Option<WatchResponse>, TooLarge> {
        if partial.bytes > self.limit {
            return Err(TooLarge {
                watch_id: partial.head.watch_id,
                limit: self.limit,
            });
        }
        self.partial.insert(partial.head.watch_id, partial);
        Ok(None)
    }

    /// Forgets the pieces of a watcher that went away.
    pub(crate) fn forget(&mut self, watch_id: i64) {
        self.partial.remove(&watch_id);
    }

    /// Whether part of a response for `watch_id` came, not its end.
    pub(crate) fn is_partial(&self, watch_id: i64) -> bool {
        self.partial.contains_key(&watch_id)
    }

    /// How many responses are partly received.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn pending(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use etcd_tower_core::proto::etcdserverpb::ResponseHeader;
    use etcd_tower_core::proto::mvccpb::{Event, KeyValue};

    fn piece(id: i64, revs: &[i64], fragment: bool) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                revision: 99,
                ..Default::default()
            }),
            watch_id: id,
            fragment,
            events: revs
                .iter()
                .map(|&r| Event {
                    kv: Some(KeyValue {
                        mod_revision: r,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn revs(response: &WatchResponse) -> Vec<i64> {
        response
            .events
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect()
    }

    #[test]
    fn an_unfragmented_response_passes_through() {
        let mut fragments = Fragments::default();
        let whole = fragments.push(piece(1, &[5, 6], false)).unwrap().unwrap();
        assert_eq!(revs(&whole), [5, 6]);
        assert_eq!(fragments.pending(), 0);
    }

    #[test]
    fn pieces_are_joined_until_the_last() {
        let mut fragments = Fragments::default();
        assert!(fragments.push(piece(1, &[5, 6], true)).unwrap().is_none());
        assert!(fragments.is_partial(1) && !fragments.is_partial(2));
        assert!(fragments.push(piece(1, &[7], true)).unwrap().is_none());
        let whole = fragments.push(piece(1, &[8, 9], false)).unwrap().unwrap();
        assert_eq!(revs(&whole), [5, 6, 7, 8, 9]);
        assert!(!whole.fragment);
        assert!(!fragments.is_partial(1));
        assert_eq!(whole.header.unwrap().revision, 99);
        assert_eq!(fragments.pending(), 0);
    }

    #[test]
    fn watchers_are_joined_separately() {
        let mut fragments = Fragments::default();
        assert!(fragments.push(piece(1, &[5], true)).unwrap().is_none());
        assert!(fragments.push(piece(2, &[5], true)).unwrap().is_none());
        let two = fragments.push(piece(2, &[6], false)).unwrap().unwrap();
        assert_eq!((two.watch_id, revs(&two)), (2, vec![5, 6]));
        let one = fragments.push(piece(1, &[6, 7], false)).unwrap().unwrap();
        assert_eq!((one.watch_id, revs(&one)), (1, vec![5, 6, 7]));
    }

    /// Feeds `pieces`, returning each whole response's (watch id, revisions).
    fn join_all(fragments: &mut Fragments, pieces: Vec<WatchResponse>) -> Vec<(i64, Vec<i64>)> {
        pieces
            .into_iter()
            .filter_map(|piece| fragments.push(piece).unwrap())
            .map(|whole| {
                assert!(!whole.fragment, "a joined response still says fragment");
                (whole.watch_id, revs(&whole))
            })
            .collect()
    }

    proptest::proptest! {
        /// Each watcher's response cut anywhere into pieces (empty ones
        /// too), the watchers' pieces interleaved in any order (each
        /// watcher's own in order): every response comes out once, whole,
        /// in order, and nothing is left behind.
        #[test]
        fn any_cut_and_interleaving_joins_back(
            responses in proptest::collection::vec(
                (
                    proptest::collection::vec(1i64..1_000, 0..24),
                    proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..6),
                ),
                1..5,
            ),
            order in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..64),
        ) {
            let mut queues: Vec<std::collections::VecDeque<WatchResponse>> = responses
                .iter()
                .enumerate()
                .map(|(id, (revisions, cuts))| {
                    let mut at: Vec<usize> = cuts.iter().map(|cut| cut.index(revisions.len() + 1)).collect();
                    at.push(revisions.len());
                    at.sort_unstable();
                    let mut start = 0;
                    let last = at.len() - 1;
                    at.iter()
                        .enumerate()
                        .map(|(i, &end)| {
                            let piece = piece(id as i64, &revisions[start..end], i != last);
                            start = end;
                            piece
                        })
                        .collect()
                })
                .collect();
            let mut pieces = Vec::new();
            let mut picks = order.iter();
            loop {
                let open: Vec<usize> = (0..queues.len()).filter(|&q| !queues[q].is_empty()).collect();
                if open.is_empty() {
                    break;
                }
                let q = picks.next().map_or(open[0], |pick| open[pick.index(open.len())]);
                pieces.extend(queues[q].pop_front());
            }
            let mut fragments = Fragments::default();
            let mut wholes = join_all(&mut fragments, pieces);
            wholes.sort_by_key(|(id, _)| *id);
            let expected: Vec<(i64, Vec<i64>)> = responses
                .into_iter()
                .enumerate()
                .map(|(id, (revisions, _))| (id as i64, revisions))
                .collect();
            proptest::prop_assert_eq!(wholes, expected);
            proptest::prop_assert_eq!(fragments.pending(), 0);
        }

        /// Any sequence of pieces at all (what a misbehaving server might
        /// send) joins without a panic and loses no event: once every
        /// watcher's response is ended, every event came out once.
        #[test]
        fn any_sequence_of_pieces_loses_no_event(
            sent in proptest::collection::vec((0i64..3, proptest::prelude::any::<bool>(), 0usize..5), 0..64),
        ) {
            let mut fragments = Fragments::default();
            let mut next = 1;
            let mut pieces: Vec<WatchResponse> = sent
                .into_iter()
                .map(|(id, fragment, events)| {
                    let revisions: Vec<i64> = (next..next + events as i64).collect();
                    next += events as i64;
                    piece(id, &revisions, fragment)
                })
                .collect();
            pieces.extend((0..3).map(|id| piece(id, &[], false)));
            let mut out: Vec<i64> = join_all(&mut fragments, pieces)
                .into_iter()
                .flat_map(|(_, revisions)| revisions)
                .collect();
            out.sort_unstable();
            proptest::prop_assert_eq!(out, (1..next).collect::<Vec<i64>>());
            proptest::prop_assert_eq!(fragments.pending(), 0);
        }
    }

    #[test]
    fn pieces_past_the_limit_are_refused_and_dropped() {
        let one_event = event_bytes(&piece(1, &[5], true));
        let mut fragments = Fragments::new(3 * one_event);
        assert_eq!(fragments.push(piece(1, &[5, 6], true)), Ok(None));
        assert_eq!(fragments.push(piece(2, &[5], true)), Ok(None));
        // A third event fits, a fourth does not, whether or not its
        // piece is the last.
        assert_eq!(fragments.push(piece(1, &[7], true)), Ok(None));
        assert_eq!(
            fragments.push(piece(1, &[8], false)),
            Err(TooLarge {
                watch_id: 1,
                limit: 3 * one_event
            })
        );
        assert!(!fragments.is_partial(1) && fragments.is_partial(2));
        // One piece over the limit on its own.
        assert_eq!(
            fragments.push(piece(3, &[1, 2, 3, 4], true)).map(|_| ()),
            Err(TooLarge {
                watch_id: 3,
                limit: 3 * one_event
            })
        );
        assert!(!fragments.is_partial(3));
        // An unfragmented response of any size passes (the transport's
        // receive limit bounds it), and the other watcher's pieces join.
        assert!(fragments
            .push(piece(4, &[1, 2, 3, 4, 5], false))
            .unwrap()
            .is_some());
        let two = fragments.push(piece(2, &[6], false)).unwrap().unwrap();
        assert_eq!(revs(&two), [5, 6]);
    }

    #[test]
    fn a_forgotten_watcher_leaves_nothing_behind() {
        let mut fragments = Fragments::default();
        assert!(fragments.push(piece(3, &[5], true)).unwrap().is_none());
        fragments.forget(3);
        assert_eq!(fragments.pending(), 0);
        let whole = fragments.push(piece(3, &[9], false)).unwrap().unwrap();
        assert_eq!(revs(&whole), [9]);
    }
}
