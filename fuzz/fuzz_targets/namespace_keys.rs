//! The namespace layer's key and range rewriting, on any prefix (empty,
//! `\xff`s), key and range end.
//!
//! The first byte splits the rest into the prefix, the key and the range
//! end. Checked: a key maps into the namespace and strips back to itself;
//! a range maps to one inside the prefix's range (`\0` "from key" and "all
//! keys" included), never an empty start key unless the prefix and key
//! are empty, and a server key outside the prefix is never stripped.
#![no_main]

use bytes::Bytes;
use etcd_tower_namespace::Prefix;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let prefix_len = usize::from(split & 0x0f).min(rest.len());
    let (prefix, rest) = rest.split_at(prefix_len);
    let key_len = usize::from(split >> 4).min(rest.len());
    let (key, range_end) = rest.split_at(key_len);
    let ns = Prefix::new(Bytes::copy_from_slice(prefix));

    let server_key = ns.key(key);
    assert!(ns.contains(&server_key));
    assert_eq!(ns.strip(&server_key).as_deref(), Some(key));

    let (start, end) = ns.interval(key, range_end);
    assert!(ns.contains(&start), "start {start:?} outside {ns:?}");
    if range_end.is_empty() {
        assert!(end.is_empty());
        assert_eq!(start, server_key);
    } else if !prefix.is_empty() {
        // The end is within the prefix's range: at most its range end
        // (an all-0xff prefix's range end is `\0`, "to the end").
        let limit = ns.range_end();
        assert!(
            limit.as_ref() == b"\0" || (end.as_ref() <= limit.as_ref() && end != b"\0"[..]),
            "end {end:?} past {limit:?}"
        );
    }
    if !prefix.is_empty() {
        // A key just outside is not the namespace's.
        let mut outside = prefix.to_vec();
        let last = outside.len() - 1;
        outside[last] = outside[last].wrapping_add(1);
        if !outside.starts_with(prefix) {
            assert_eq!(ns.strip(&Bytes::from(outside)), None);
        }
    }
});
