//! Watch engine for etcd-tower: many watchers on one stream, resumed across faults.
#![deny(missing_docs)]
