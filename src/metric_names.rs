//! The names of every metric etcd-tower emits, in one place.
//!
//! Layers and the watch engine emit through the `metrics` facade under
//! these names, so that dashboards need one list.
