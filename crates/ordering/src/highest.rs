//! The highest revision the client has seen, shared by every copy of the
//! layer's services.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The highest header revision seen in any answer through one
/// [`OrderingLayer`](crate::OrderingLayer): shared by every service the
/// layer builds and by their clones, so that one client has one view of
/// how far the cluster has come.
#[derive(Clone, Debug, Default)]
pub(crate) struct HighestRevision {
    revision: Arc<AtomicI64>,
}

impl HighestRevision {
    /// The highest revision seen so far; 0 before any answer.
    pub(crate) fn get(&self) -> i64 {
        // Relaxed: the value is the only data it guards, and a call that
        // reads a slightly older one only checks against a lower floor,
        // as if it had started a moment earlier.
        self.revision.load(Ordering::Relaxed)
    }

    /// Raises the highest revision to `revision` if it is higher.
    pub(crate) fn observe(&self, revision: i64) {
        self.revision.fetch_max(revision, Ordering::Relaxed);
    }
}
