//! Metrics layer for etcd-tower through the metrics facade.
#![deny(missing_docs)]
