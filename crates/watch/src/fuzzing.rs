//! Entry points for the libFuzzer targets in `fuzz/` (cargo-fuzz), built
//! only under `--cfg fuzzing`; not part of the API.

use std::collections::HashMap;

use etcd_tower_core::proto::etcdserverpb::WatchResponse;
use etcd_tower_core::proto::mvccpb::{Event, KeyValue};

use crate::fragment::{Fragments, TooLarge};

/// `data` as the messages a server sends on one watch stream, two bytes a
/// message: the first says the watch id (0 to 3) and whether the message
/// is a fragment, the second how many events it carries (0 to 15, each of
/// its own revision). Whatever the order, joining never panics, and with
/// a bound of 40 events' bytes: every event comes out once, in order, in
/// a response that was not refused, or went with a response refused as
/// too large; nothing is held past the bound, and once every watcher's
/// last piece came nothing is held at all.
pub fn fragments(data: &[u8]) {
    let limit = 40 * prost::Message::encoded_len(&event(1));
    let mut fragments = Fragments::new(limit);
    let mut next = 1;
    // Per watch id: the revisions of its response so far.
    let mut joining: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut out: Vec<i64> = Vec::new();
    let mut refused: Vec<i64> = Vec::new();
    let mut feed = |fragments: &mut Fragments, id: i64, fragment: bool, events: i64| {
        let revisions: Vec<i64> = (next..next + events).collect();
        next += events;
        joining.entry(id).or_default().extend(&revisions);
        let piece = WatchResponse {
            watch_id: id,
            fragment,
            events: revisions.iter().map(|&r| event(r)).collect(),
            ..Default::default()
        };
        match fragments.push(piece) {
            Ok(Some(whole)) => {
                let got: Vec<i64> = whole
                    .events
                    .iter()
                    .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision))
                    .collect();
                assert_eq!(got, joining.remove(&id).unwrap_or_default(), "watch {id}");
                assert!(!whole.fragment);
                out.extend(got);
            }
            Ok(None) => assert!(fragment && fragments.is_partial(id)),
            Err(TooLarge { watch_id, .. }) => {
                assert_eq!(watch_id, id);
                assert!(!fragments.is_partial(id));
                refused.extend(joining.remove(&id).unwrap_or_default());
            }
        }
    };
    for pair in data.chunks_exact(2) {
        let id = i64::from(pair[0] & 3);
        let fragment = pair[0] & 4 != 0;
        feed(&mut fragments, id, fragment, i64::from(pair[1] & 15));
    }
    for id in 0..4 {
        feed(&mut fragments, id, false, 0);
    }
    assert_eq!(fragments.pending(), 0);
    out.extend(refused);
    out.sort_unstable();
    assert_eq!(out, (1..next).collect::<Vec<i64>>(), "every event once");
}

fn event(revision: i64) -> Event {
    Event {
        kv: Some(KeyValue {
            key: b"k".as_slice().into(),
            mod_revision: revision,
            ..Default::default()
        }),
        ..Default::default()
    }
}
