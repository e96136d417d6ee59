//! etcd-tower: a typed etcd v3 client assembled from tower layers.
#![deny(missing_docs)]
