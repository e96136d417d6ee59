//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod etcd;
pub mod mock;
pub mod token_stack;
