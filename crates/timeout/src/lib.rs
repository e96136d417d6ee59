//! Timeout layer for etcd-tower: per-request deadlines.
#![deny(missing_docs)]
