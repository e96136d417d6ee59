//! Retry layer for etcd-tower: retries only what is safe to retry.
#![deny(missing_docs)]
