//! Key ranges: [`prefix_end`] and [`Span`], the one place the client's
//! requests (get, delete, watch, permissions) turn "every key under this
//! prefix" or "every key from here on" into etcd's `key`/`range_end` pair.
//!
//! etcd has no prefix or from-key request: it takes a half-open range
//! `[key, range_end)`, with `range_end = "\0"` meaning "no upper bound".
//! Getting that end wrong (forgetting the all-0xff case, or sending an
//! empty prefix as an empty key) silently watches or deletes the wrong
//! keys, so every crate computes it here.
//!
//! ```
//! use bytes::Bytes;
//! use etcd_tower_core::range::{prefix_end, Span};
//!
//! assert_eq!(prefix_end(b"config/"), Bytes::from_static(b"config0"));
//! let (key, end) = Span::Prefix.resolve(Bytes::from_static(b""));
//! assert_eq!((&key[..], &end[..]), (&b"\0"[..], &b"\0"[..])); // every key
//! ```

use bytes::Bytes;

/// The end of the range of every key that starts with `prefix`: the prefix
/// with its last byte below 0xff incremented (and what follows dropped), or
/// `"\0"` (every key from the prefix on) for an empty or all-0xff prefix.
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(b"\0")
}

/// Which keys a request covers beyond its key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Span {
    /// Only the key.
    #[default]
    Key,
    /// Every key that starts with the key.
    Prefix,
    /// Every key from the key on.
    FromKey,
    /// `[key, end)`.
    End(Bytes),
}

impl Span {
    /// The key and range end to send. An empty key with a prefix or
    /// from-key span means every key (in a namespace: every key of the
    /// namespace), sent as etcd spells it: key `"\0"`, end `"\0"`, as
    /// Go's `clientv3.WithPrefix` does.
    pub fn resolve(&self, key: Bytes) -> (Bytes, Bytes) {
        if key.is_empty() && matches!(self, Span::Prefix | Span::FromKey) {
            let all = Bytes::from_static(b"\0");
            return (all.clone(), all);
        }
        let end = self.range_end(&key);
        (key, end)
    }

    /// The range end for `key` (empty: the key alone).
    pub fn range_end(&self, key: &[u8]) -> Bytes {
        match self {
            Span::Key => Bytes::new(),
            Span::Prefix => prefix_end(key),
            Span::FromKey => Bytes::from_static(b"\0"),
            Span::End(end) => end.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a"), "b");
        assert_eq!(prefix_end(b"a/"), "a0");
        assert_eq!(prefix_end(b"a\xff"), "b");
        assert_eq!(prefix_end(b"\xff\xff"), "\0");
        assert_eq!(prefix_end(b""), "\0");
    }

    #[test]
    fn empty_prefix_and_from_key_mean_every_key() {
        for span in [Span::Prefix, Span::FromKey] {
            assert_eq!(
                span.resolve(Bytes::new()),
                (Bytes::from("\0"), Bytes::from("\0"))
            );
        }
        assert_eq!(
            Span::Key.resolve(Bytes::new()),
            (Bytes::new(), Bytes::new())
        );
        assert_eq!(
            Span::End(Bytes::from("z")).resolve(Bytes::from("a")),
            (Bytes::from("a"), Bytes::from("z"))
        );
    }
}
