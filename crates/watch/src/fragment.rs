//! Joining fragmented watch responses.
//!
//! A watcher created with `fragment = true` lets the server split a response
//! larger than its request limit into several messages with the same
//! `watch_id`, each flagged `fragment = true` except the last. The server
//! sends the pieces of one response back to back; they are joined here into
//! the response the server would have sent whole, so that the rest of the
//! engine (and the user) never sees a partial revision.

use std::collections::HashMap;

use etcd_tower_core::proto::etcdserverpb::WatchResponse;

/// Pieces received so far, by watch id.
#[derive(Debug, Default)]
pub(crate) struct Fragments {
    partial: HashMap<i64, WatchResponse>,
}

impl Fragments {
    /// Takes one message; returns the whole response once its last piece
    /// came (at once for an unfragmented message).
    pub(crate) fn push(&mut self, piece: WatchResponse) -> Option<WatchResponse> {
        if piece.fragment {
            match self.partial.get_mut(&piece.watch_id) {
                Some(head) => head.events.extend(piece.events),
                None => {
                    self.partial.insert(piece.watch_id, piece);
                }
            }
            return None;
        }
        let Some(mut whole) = self.partial.remove(&piece.watch_id) else {
            return Some(piece);
        };
        whole.events.extend(piece.events);
        whole.fragment = false;
        whole.canceled = piece.canceled;
        whole.compact_revision = piece.compact_revision;
        whole.cancel_reason = piece.cancel_reason;
        if piece.header.is_some() {
            whole.header = piece.header;
        }
        Some(whole)
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
    #[cfg(test)]
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
        let whole = fragments.push(piece(1, &[5, 6], false)).unwrap();
        assert_eq!(revs(&whole), [5, 6]);
        assert_eq!(fragments.pending(), 0);
    }

    #[test]
    fn pieces_are_joined_until_the_last() {
        let mut fragments = Fragments::default();
        assert!(fragments.push(piece(1, &[5, 6], true)).is_none());
        assert!(fragments.is_partial(1) && !fragments.is_partial(2));
        assert!(fragments.push(piece(1, &[7], true)).is_none());
        let whole = fragments.push(piece(1, &[8, 9], false)).unwrap();
        assert_eq!(revs(&whole), [5, 6, 7, 8, 9]);
        assert!(!whole.fragment);
        assert!(!fragments.is_partial(1));
        assert_eq!(whole.header.unwrap().revision, 99);
        assert_eq!(fragments.pending(), 0);
    }

    #[test]
    fn watchers_are_joined_separately() {
        let mut fragments = Fragments::default();
        assert!(fragments.push(piece(1, &[5], true)).is_none());
        assert!(fragments.push(piece(2, &[5], true)).is_none());
        let two = fragments.push(piece(2, &[6], false)).unwrap();
        assert_eq!((two.watch_id, revs(&two)), (2, vec![5, 6]));
        let one = fragments.push(piece(1, &[6, 7], false)).unwrap();
        assert_eq!((one.watch_id, revs(&one)), (1, vec![5, 6, 7]));
    }

    #[test]
    fn a_forgotten_watcher_leaves_nothing_behind() {
        let mut fragments = Fragments::default();
        assert!(fragments.push(piece(3, &[5], true)).is_none());
        fragments.forget(3);
        assert_eq!(fragments.pending(), 0);
        let whole = fragments.push(piece(3, &[9], false)).unwrap();
        assert_eq!(revs(&whole), [9]);
    }
}
