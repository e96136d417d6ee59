//! Authentication layer for etcd-tower: login, token on every call and stream, refresh on expiry.
#![deny(missing_docs)]
