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

/// Core's one computation of a prefix's range end, shared by every crate.
pub use etcd_tower_core::range::prefix_end;
