//! Prefix and range arithmetic: the only place that decides which server
//! keys a namespaced request may touch.
//!
//! etcd names a set of keys with a pair `(key, range_end)`:
//!
//! | `range_end`       | meaning                                   |
//! |-------------------|-------------------------------------------|
//! | empty             | the single key `key`                      |
//! | `\0`              | every key `>= key` ("from key")           |
//! | `\0` and key `\0` | every key                                 |
//! | anything else     | the keys in `[key, range_end)`            |
//!
//! Keys sort as bytes, so the keys that start with a prefix `P` are exactly
//! `[P, end(P))`, where `end(P)` drops `P`'s trailing `0xff` bytes and adds
//! one to the last byte left (`"a/"` → `"a0"`, `"t\xff"` → `"u"`). A prefix
//! made only of `0xff` bytes has no such bound: its keys are all keys
//! `>= P`, which etcd spells with the range end `\0`.
//!
//! [`Prefix::interval`] maps a user's pair into that window, and never
//! out of it: a from-key or all-keys request stops at `end(P)` instead of
//! running to the end of the keyspace, and any other pair stays between
//! `P + key` and `P + range_end`, both of which start with `P`.

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// The range end `\0`: "to the end of the keyspace" (or, with key `\0`,
/// "all keys").
const NUL: &[u8] = b"\0";

/// A namespace's key prefix together with the end of its key range.
///
/// Cheap to clone (one reference count: the layer's future keeps a clone
/// to strip the answer).
///
/// ```
/// use etcd_tower_namespace::Prefix;
///
/// let tenant = Prefix::new("tenant-a/");
/// assert_eq!(tenant.key(b"config"), "tenant-a/config");
/// assert_eq!(tenant.range_end(), "tenant-a0");
/// // "All keys" becomes "all keys of the tenant".
/// let (key, end) = tenant.interval(b"\0", b"\0");
/// assert_eq!((&key[..], &end[..]), (&b"tenant-a/"[..], &b"tenant-a0"[..]));
/// assert_eq!(tenant.strip(&"tenant-a/config".into()).as_deref(), Some(&b"config"[..]));
/// assert_eq!(tenant.strip(&"tenant-b/config".into()), None);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Prefix(Arc<Parts>);

#[derive(PartialEq, Eq, Hash)]
struct Parts {
    prefix: Bytes,
    end: Bytes,
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prefix")
            .field("prefix", &self.0.prefix)
            .field("end", &self.0.end)
            .finish()
    }
}

impl Prefix {
    /// A namespace rooted at `prefix`. An empty prefix is the whole
    /// keyspace (the layer then changes nothing).
    pub fn new(prefix: impl Into<Bytes>) -> Self {
        let prefix = prefix.into();
        let end = prefix_range_end(&prefix);
        Prefix(Arc::new(Parts { prefix, end }))
    }

    /// The prefix itself.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0.prefix
    }

    /// The end of the prefix's key range: see [`prefix_range_end`].
    pub fn range_end(&self) -> &Bytes {
        &self.0.end
    }

    /// Whether the prefix is empty (the namespace is the whole keyspace).
    pub fn is_empty(&self) -> bool {
        self.0.prefix.is_empty()
    }

    /// Whether a server key belongs to the namespace.
    pub fn contains(&self, server_key: &[u8]) -> bool {
        server_key.starts_with(&self.0.prefix)
    }

    /// The server key for a user key: `prefix + key`.
    pub fn key(&self, key: &[u8]) -> Bytes {
        if self.0.prefix.is_empty() {
            return Bytes::copy_from_slice(key);
        }
        concat(&self.0.prefix, key)
    }

    /// Maps a user's `(key, range_end)` pair to the server's, confined to
    /// the prefix's range (see the [module docs](self)):
    ///
    /// * end empty → `(prefix + key, "")`: one key;
    /// * key `\0` and end `\0` ("all keys") → `(prefix, range_end())`
    ///   (with an empty prefix `("\0", "\0")` again: an empty key is refused
    ///   by etcd);
    /// * end `\0` ("from key") → `(prefix + key, range_end())`;
    /// * otherwise → `(prefix + key, prefix + end)`.
    ///
    /// With an all-`0xff` prefix `range_end()` is itself `\0`, which is
    /// exact there: every key at or after such a prefix starts with it.
    pub fn interval(&self, key: &[u8], range_end: &[u8]) -> (Bytes, Bytes) {
        if range_end.is_empty() {
            (self.key(key), Bytes::new())
        } else if range_end == NUL {
            // With an empty prefix "all keys" stays `("\0", "\0")`: the
            // bare prefix would be an empty key, which etcd refuses.
            let start = if key == NUL && !self.0.prefix.is_empty() {
                self.0.prefix.clone()
            } else {
                self.key(key)
            };
            (start, self.0.end.clone())
        } else {
            (self.key(key), self.key(range_end))
        }
    }

    /// The user key for a server key: the key without the prefix, or
    /// `None` when the key is outside the namespace. Does not copy.
    pub fn strip(&self, server_key: &Bytes) -> Option<Bytes> {
        if self.contains(server_key) {
            Some(server_key.slice(self.0.prefix.len()..))
        } else {
            None
        }
    }
}

/// `a + b` in one allocation, as a `Bytes` that is cheap to clone.
///
/// A `Bytes` made from a `Vec` (or a `BytesMut`) allocates again, to share
/// its buffer, the first time it is cloned, and the transport's encoder
/// clones every key it writes: a key made per call would cost two
/// allocations. Keys of up to 240 bytes (nearly all) are built inside a
/// reference-counted owner instead, so that the clone is a count; longer
/// ones take the `Vec` path.
fn concat(a: &[u8], b: &[u8]) -> Bytes {
    match a.len() + b.len() {
        0..=48 => Inline::<48>::concat(a, b),
        49..=112 => Inline::<112>::concat(a, b),
        113..=240 => Inline::<240>::concat(a, b),
        len => {
            let mut out = Vec::with_capacity(len);
            out.extend_from_slice(a);
            out.extend_from_slice(b);
            Bytes::from(out)
        }
    }
}

/// A short byte string stored inline, for [`Bytes::from_owner`].
struct Inline<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> Inline<N> {
    /// `a + b`; the caller checked that it fits in `N` bytes.
    fn concat(a: &[u8], b: &[u8]) -> Bytes {
        let mut inline = Inline {
            len: a.len() + b.len(),
            bytes: [0; N],
        };
        inline.bytes[..a.len()].copy_from_slice(a);
        inline.bytes[a.len()..inline.len].copy_from_slice(b);
        Bytes::from_owner(inline)
    }
}

impl<const N: usize> AsRef<[u8]> for Inline<N> {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The end of the key range `[prefix, end)` holding exactly the keys that
/// start with `prefix`: the prefix with its trailing `0xff` bytes dropped
/// and its last remaining byte incremented, or `\0` ("no upper bound") when
/// the prefix is empty or made only of `0xff` bytes.
///
/// ```
/// use etcd_tower_namespace::prefix_range_end;
///
/// assert_eq!(prefix_range_end(b"a/"), "a0");
/// assert_eq!(prefix_range_end(b"t\xff"), "u");
/// assert_eq!(prefix_range_end(b"a\xfe\xff\xff"), &b"a\xff"[..]);
/// assert_eq!(prefix_range_end(b"\xff\xff"), "\0");
/// ```
pub fn prefix_range_end(prefix: &[u8]) -> Bytes {
    match prefix.iter().rposition(|&b| b != 0xff) {
        Some(last) => {
            let mut end = BytesMut::from(&prefix[..=last]);
            end[last] += 1;
            end.freeze()
        }
        None => Bytes::from_static(NUL),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    #[test]
    fn range_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_range_end(b"a"), b(b"b"));
        assert_eq!(prefix_range_end(b"a/"), b(b"a0"));
        assert_eq!(prefix_range_end(b"\x00"), b(b"\x01"));
        assert_eq!(prefix_range_end(b"a\xfe"), b(b"a\xff"));
    }

    #[test]
    fn range_end_drops_the_0xff_tail() {
        // Not "u\0" (what etcd's Go namespace computes): "u" itself is
        // outside the prefix "t\xff" and "u" < "u\0".
        assert_eq!(prefix_range_end(b"t\xff"), b(b"u"));
        assert_eq!(prefix_range_end(b"t\xff\xff\xff"), b(b"u"));
        assert_eq!(prefix_range_end(b"a\xfe\xff"), b(b"a\xff"));
    }

    #[test]
    fn an_all_0xff_or_empty_prefix_has_no_upper_bound() {
        assert_eq!(prefix_range_end(b"\xff"), b(b"\0"));
        assert_eq!(prefix_range_end(b"\xff\xff\xff"), b(b"\0"));
        assert_eq!(prefix_range_end(b""), b(b"\0"));
    }

    /// The defining property: `k` starts with `p` iff `p <= k < end(p)`
    /// (with end `\0` meaning no upper bound).
    #[test]
    fn the_range_is_exactly_the_keys_with_the_prefix() {
        let alphabet = [0x00u8, 0x01, b'a', b'b', 0xfe, 0xff];
        let mut words: Vec<Vec<u8>> = vec![vec![]];
        for _ in 0..3 {
            let longer: Vec<Vec<u8>> = words
                .iter()
                .filter(|w| w.len() == words.last().map_or(0, Vec::len))
                .flat_map(|w| {
                    alphabet.iter().map(move |&c| {
                        let mut w = w.clone();
                        w.push(c);
                        w
                    })
                })
                .collect();
            words.extend(longer);
        }
        for p in words.iter().filter(|w| !w.is_empty()) {
            let end = prefix_range_end(p);
            for k in &words {
                let in_range = k >= p && (&end[..] == NUL || k.as_slice() < &end[..]);
                assert_eq!(
                    k.starts_with(p),
                    in_range,
                    "prefix {p:?} key {k:?} end {end:?}"
                );
            }
        }
    }

    #[test]
    fn keys_of_every_size_class_are_the_concatenation() {
        let p = Prefix::new("pre/");
        for n in [0, 1, 43, 44, 45, 108, 109, 236, 237, 300] {
            let key = vec![b'k'; n];
            let server = p.key(&key);
            let mut expected = b"pre/".to_vec();
            expected.extend_from_slice(&key);
            assert_eq!(&server[..], &expected[..], "{n}");
            let copy = server.clone();
            drop(server);
            assert_eq!(&copy[..], &expected[..], "{n}");
            assert_eq!(p.strip(&copy).as_deref(), Some(&key[..]), "{n}");
        }
    }

    #[test]
    fn single_keys_get_the_prefix() {
        let p = Prefix::new("a/");
        assert_eq!(p.interval(b"k", b""), (b(b"a/k"), b(b"")));
        assert_eq!(p.interval(b"\0", b""), (b(b"a/\0"), b(b"")));
    }

    #[test]
    fn ranges_stay_inside_the_prefix() {
        let p = Prefix::new("a/");
        assert_eq!(p.interval(b"k", b"m"), (b(b"a/k"), b(b"a/m")));
        // From key: up to the end of the prefix, not of the keyspace.
        assert_eq!(p.interval(b"k", b"\0"), (b(b"a/k"), b(b"a0")));
        // All keys: the whole prefix.
        assert_eq!(p.interval(b"\0", b"\0"), (b(b"a/"), b(b"a0")));
        // A user end of "\0\0" is an ordinary end.
        assert_eq!(p.interval(b"k", b"\0\0"), (b(b"a/k"), b(b"a/\0\0")));
    }

    #[test]
    fn a_0xff_ending_prefix_ends_at_the_next_byte() {
        let p = Prefix::new(&b"t\xff"[..]);
        assert_eq!(p.range_end(), &b(b"u"));
        assert_eq!(p.interval(b"\0", b"\0"), (b(b"t\xff"), b(b"u")));
        assert_eq!(p.interval(b"k", b"\0"), (b(b"t\xffk"), b(b"u")));
    }

    #[test]
    fn an_all_0xff_prefix_runs_to_the_end_of_the_keyspace() {
        let p = Prefix::new(&b"\xff\xff"[..]);
        assert_eq!(p.interval(b"\0", b"\0"), (b(b"\xff\xff"), b(b"\0")));
        assert_eq!(p.interval(b"k", b"\0"), (b(b"\xff\xffk"), b(b"\0")));
        // The server reads (prefix, "\0") as "from key", never as "all
        // keys": the start key begins with 0xff, so it cannot be "\0".
        assert_ne!(p.interval(b"\0", b"\0").0, b(b"\0"));
    }

    #[test]
    fn strip_removes_the_prefix_or_refuses() {
        let p = Prefix::new("a/");
        assert_eq!(p.strip(&b(b"a/k")), Some(b(b"k")));
        assert_eq!(p.strip(&b(b"a/")), Some(b(b"")));
        assert_eq!(p.strip(&b(b"a")), None);
        assert_eq!(p.strip(&b(b"a0")), None);
        assert_eq!(p.strip(&b(b"b/k")), None);
    }

    #[test]
    fn nested_prefixes_compose() {
        // An outer layer "a/" above an inner layer "b/" is the prefix "b/a/".
        let (outer, inner, both) = (Prefix::new("a/"), Prefix::new("b/"), Prefix::new("b/a/"));
        for (key, end) in [
            (&b"k"[..], &b""[..]),
            (b"k", b"m"),
            (b"k", b"\0"),
            (b"\0", b"\0"),
        ] {
            let (k1, e1) = outer.interval(key, end);
            assert_eq!(
                inner.interval(&k1, &e1),
                both.interval(key, end),
                "{key:?} {end:?}"
            );
        }
        let (outer, inner, both) = (
            Prefix::new(&b"\xff"[..]),
            Prefix::new("b/"),
            Prefix::new(&b"b/\xff"[..]),
        );
        for (key, end) in [(&b"k"[..], &b"\0"[..]), (b"\0", b"\0")] {
            let (k1, e1) = outer.interval(key, end);
            assert_eq!(
                inner.interval(&k1, &e1),
                both.interval(key, end),
                "{key:?} {end:?}"
            );
        }
    }

    /// etcd's reading of a `(key, range_end)` pair, for the property below.
    fn selects(key: &[u8], range_end: &[u8], candidate: &[u8]) -> bool {
        match range_end {
            [] => candidate == key,
            [0] if key == [0] => true,
            [0] => candidate >= key,
            _ => key <= candidate && candidate < range_end,
        }
    }

    fn bytes_from(
        alphabet: &'static [u8],
        len: std::ops::Range<usize>,
    ) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::sample::select(alphabet), len)
    }

    proptest! {
        /// For every prefix, user pair and server key: the server selects
        /// the key exactly when it is in the namespace and the user's pair
        /// selects its stripped form. Nothing outside the prefix, nothing
        /// missing inside it.
        #[test]
        fn the_server_selects_exactly_the_users_keys_inside_the_prefix(
            prefix in bytes_from(&[0x00, b'a', 0xfe, 0xff], 1..4),
            key in bytes_from(&[0x00, b'a', b'b', 0xff], 1..4),
            end in prop_oneof![
                Just(vec![]),
                Just(vec![0]),
                bytes_from(&[0x00, b'a', b'b', 0xff], 1..4),
            ],
            all in any::<bool>(),
            candidate in bytes_from(&[0x00, b'a', b'b', 0xfe, 0xff], 0..7),
        ) {
            let (key, end) = if all { (vec![0], vec![0]) } else { (key, end) };
            let p = Prefix::new(prefix.clone());
            let (server_key, server_end) = p.interval(&key, &end);
            let expected = candidate.starts_with(&prefix)
                && selects(&key, &end, &candidate[prefix.len()..]);
            prop_assert_eq!(
                selects(&server_key, &server_end, &candidate),
                expected,
                "prefix {:?} user ({:?}, {:?}) server ({:?}, {:?}) candidate {:?}",
                prefix, key, end, server_key, server_end, candidate
            );
        }
    }

    // ----- Over every byte, every prefix shape (issue 23: fuzzing) -----
    //
    // The properties below widen the one above to all 256 byte values and
    // to the prefixes at the edges: empty, all-0xff, ending in 0xff. They
    // run `CASES` cases in a normal `cargo test` (well under a second);
    // `PROPTEST_CASES=100000 cargo test -p etcd-tower-namespace --lib keys`
    // runs longer.

    const CASES: u32 = 256;

    fn config() -> ProptestConfig {
        let mut config = ProptestConfig::with_cases(CASES);
        if let Some(cases) = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.cases = cases;
        }
        config.failure_persistence = None;
        config
    }

    /// Prefixes of every shape, the edges most often.
    fn any_prefix() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            1 => Just(vec![]),
            1 => (1..4usize).prop_map(|n| vec![0xff; n]),
            2 => (proptest::collection::vec(any::<u8>(), 1..4), 1..3usize).prop_map(|(mut p, n)| {
                p.extend(std::iter::repeat_n(0xff, n));
                p
            }),
            2 => bytes_from(&[0x00, 0x01, b'a', 0xfe, 0xff], 1..4),
            2 => proptest::collection::vec(any::<u8>(), 1..6),
        ]
    }

    /// User keys and ends: any bytes, with the special ends often.
    fn any_key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            bytes_from(&[0x00, 0x01, b'a', 0xfe, 0xff], 1..4),
            proptest::collection::vec(any::<u8>(), 1..4),
        ]
    }

    fn any_end() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            1 => Just(vec![]),
            1 => Just(vec![0]),
            1 => Just(vec![0, 0]),
            3 => any_key(),
        ]
    }

    /// Server keys near the edges of `prefix`'s range: around the prefix
    /// itself, its range end, and its own prefixes, each followed by a
    /// short tail.
    fn candidate_near(prefix: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let end = prefix_range_end(&prefix).to_vec();
        let mut stems = vec![prefix.clone(), end, vec![]];
        for cut in 0..prefix.len() {
            stems.push(prefix[..cut].to_vec());
            let mut bumped = prefix[..=cut].to_vec();
            bumped[cut] = bumped[cut].wrapping_add(1);
            stems.push(bumped);
            let mut lowered = prefix[..=cut].to_vec();
            lowered[cut] = lowered[cut].wrapping_sub(1);
            stems.push(lowered);
        }
        (
            proptest::sample::select(stems),
            prop_oneof![
                bytes_from(&[0x00, 0x01, b'a', 0xfe, 0xff], 0..4),
                proptest::collection::vec(any::<u8>(), 0..4),
            ],
        )
            .prop_map(|(mut stem, tail)| {
                stem.extend(tail);
                stem
            })
    }

    fn prefix_and_candidate() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        any_prefix().prop_flat_map(|p| (Just(p.clone()), candidate_near(p)))
    }

    proptest! {
        #![proptest_config(config())]

        /// `prefix_range_end`'s defining property over every byte:
        /// `k` starts with `p` iff `p <= k < end(p)` (end `\0`: unbounded).
        #[test]
        fn the_range_end_bounds_exactly_the_prefixed_keys(
            (prefix, candidate) in prefix_and_candidate(),
        ) {
            let end = prefix_range_end(&prefix);
            let in_range = candidate >= prefix && (&end[..] == NUL || candidate[..] < end[..]);
            prop_assert_eq!(candidate.starts_with(&prefix), in_range, "end {:?}", end);
            // The end is `\0` exactly when nothing bounds the prefix.
            prop_assert_eq!(&end[..] == NUL, prefix.iter().all(|&b| b == 0xff));
        }

        /// The rewritten pair selects exactly the intersection of the
        /// user's selection (moved under the prefix) with the prefix's
        /// range, for every prefix shape; and it is a pair etcd accepts:
        /// the server key is never empty (etcd refuses an empty key).
        #[test]
        fn the_rewritten_range_is_the_users_range_inside_the_prefix(
            (prefix, candidate) in prefix_and_candidate(),
            key in any_key(),
            end in any_end(),
            all in any::<bool>(),
        ) {
            let (key, end) = if all { (vec![0], vec![0]) } else { (key, end) };
            let p = Prefix::new(prefix.clone());
            let (server_key, server_end) = p.interval(&key, &end);
            prop_assert!(!server_key.is_empty(), "user ({:?}, {:?})", key, end);
            let expected = candidate.starts_with(&prefix)
                && selects(&key, &end, &candidate[prefix.len()..]);
            prop_assert_eq!(
                selects(&server_key, &server_end, &candidate),
                expected,
                "user ({:?}, {:?}) server ({:?}, {:?})",
                key, end, server_key, server_end
            );
        }

        /// Stripping undoes prefixing, and refuses every key outside.
        #[test]
        fn stripping_gives_back_the_users_key(
            (prefix, server_key) in prefix_and_candidate(),
            key in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let p = Prefix::new(prefix.clone());
            let prefixed = p.key(&key);
            prop_assert_eq!(&prefixed[..prefix.len()], &prefix[..]);
            let stripped = p.strip(&prefixed);
            prop_assert_eq!(stripped.as_deref(), Some(&key[..]));
            let server_key = Bytes::from(server_key);
            match p.strip(&server_key) {
                Some(user) => {
                    prop_assert!(server_key.starts_with(&prefix));
                    prop_assert_eq!(p.key(&user), server_key);
                }
                None => prop_assert!(!server_key.starts_with(&prefix)),
            }
        }

        /// Two nested namespaces select what their joined prefix selects.
        #[test]
        fn nested_prefixes_select_what_the_joined_prefix_selects(
            (outer, candidate) in prefix_and_candidate(),
            inner in any_prefix(),
            key in any_key(),
            end in any_end(),
            all in any::<bool>(),
        ) {
            let (key, end) = if all { (vec![0], vec![0]) } else { (key, end) };
            let joined = [&inner[..], &outer[..]].concat();
            let candidate = [&inner[..], &candidate[..]].concat();
            let (k1, e1) = Prefix::new(outer).interval(&key, &end);
            let (k2, e2) = Prefix::new(inner).interval(&k1, &e1);
            let (kj, ej) = Prefix::new(joined).interval(&key, &end);
            prop_assert_eq!(
                selects(&k2, &e2, &candidate),
                selects(&kj, &ej, &candidate),
                "nested ({:?}, {:?}) joined ({:?}, {:?})", k2, e2, kj, ej
            );
        }
    }

    /// Found by the property above: with an empty prefix, "all keys" must
    /// stay `("\0", "\0")`; `("", "\0")` is an empty key etcd refuses.
    #[test]
    fn an_empty_prefix_keeps_all_keys_as_all_keys() {
        let p = Prefix::new("");
        assert_eq!(p.interval(b"\0", b"\0"), (b(b"\0"), b(b"\0")));
        assert_eq!(p.interval(b"k", b"\0"), (b(b"k"), b(b"\0")));
        assert_eq!(p.interval(b"k", b"m"), (b(b"k"), b(b"m")));
    }
}
