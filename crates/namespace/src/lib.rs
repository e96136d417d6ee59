//! Namespace layer for etcd-tower: transparent key-prefix isolation.
#![deny(missing_docs)]
