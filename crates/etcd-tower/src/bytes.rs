//! Keys and values as the client takes them.

use bytes::Bytes;

/// Anything the client accepts as a key or a value: string and byte types,
/// borrowed or owned. Owned [`Bytes`], `Vec<u8>` and `String` are taken
/// without copying; borrowed data is copied once.
///
/// ```
/// use etcd_tower::IntoBytes;
///
/// let name = String::from("config/a");
/// assert_eq!(name.as_str().into_bytes(), "config/a");
/// assert_eq!(b"raw".into_bytes(), "raw");
/// ```
pub trait IntoBytes {
    /// Converts into [`Bytes`].
    fn into_bytes(self) -> Bytes;
}

impl IntoBytes for Bytes {
    fn into_bytes(self) -> Bytes {
        self
    }
}

impl IntoBytes for &Bytes {
    fn into_bytes(self) -> Bytes {
        self.clone()
    }
}

impl IntoBytes for Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for &Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoBytes for String {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for &String {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoBytes for &str {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoBytes for &[u8] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoBytes for &[u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoBytes for [u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

impl IntoBytes for std::borrow::Cow<'_, str> {
    fn into_bytes(self) -> Bytes {
        match self {
            std::borrow::Cow::Borrowed(s) => IntoBytes::into_bytes(s),
            std::borrow::Cow::Owned(s) => IntoBytes::into_bytes(s),
        }
    }
}

/// The end of the range of every key that starts with `prefix`: the prefix
/// with its last byte below 0xff incremented, or `\0` (every key) for an
/// empty or all-0xff prefix.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a"), "b");
        assert_eq!(prefix_end(b"a\xff"), "b");
        assert_eq!(prefix_end(b"\xff\xff"), "\0");
        assert_eq!(prefix_end(b""), "\0");
    }
}
