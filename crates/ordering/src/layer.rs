//! The layer that builds [`Ordering`] services.

use tower_layer::Layer;

use crate::highest::HighestRevision;
use crate::{OnViolation, Ordering};

/// Keeps serializable reads from going back in revision; see the
/// [crate docs](crate).
///
/// Every service the layer builds, and every clone of the layer, shares
/// one highest revision: build a client's stacks from one layer (or its
/// clones) so that a write through one stack sets the floor for the reads
/// through another. [`on_violation`](Self::on_violation) keeps the shared
/// revision, so one client can have a retrying stack and a strict one.
#[derive(Clone, Debug, Default)]
pub struct OrderingLayer {
    highest: HighestRevision,
    policy: OnViolation,
}

impl OrderingLayer {
    /// A layer with the default policy ([`OnViolation::Retry`] with
    /// [`DEFAULT_ATTEMPTS`](crate::DEFAULT_ATTEMPTS)) and nothing seen yet.
    pub fn new() -> Self {
        OrderingLayer::default()
    }

    /// The same layer (sharing its highest revision) with another policy.
    pub fn on_violation(self, policy: OnViolation) -> Self {
        OrderingLayer { policy, ..self }
    }

    /// The policy.
    pub fn policy(&self) -> OnViolation {
        self.policy
    }

    /// The highest header revision seen so far through this layer's
    /// services; 0 before the first answer.
    pub fn highest_revision(&self) -> i64 {
        self.highest.get()
    }
}

impl<S> Layer<S> for OrderingLayer {
    type Service = Ordering<S>;

    fn layer(&self, inner: S) -> Ordering<S> {
        Ordering::from_parts(inner, self.highest.clone(), self.policy)
    }
}
