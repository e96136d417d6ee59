//! The namespace layer.

use bytes::Bytes;
use tower_layer::Layer;

use crate::keys::Prefix;
use crate::service::Namespace;

/// Applies [`Namespace`] to a service: every request confined to `prefix`,
/// every answer stripped of it. See the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct NamespaceLayer {
    prefix: Prefix,
}

impl NamespaceLayer {
    /// A layer for the namespace rooted at `prefix` (for example
    /// `"tenant-a/"`). An empty prefix makes a layer that changes nothing.
    pub fn new(prefix: impl Into<Bytes>) -> Self {
        NamespaceLayer {
            prefix: Prefix::new(prefix),
        }
    }

    /// The namespace's prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }
}

impl<S> Layer<S> for NamespaceLayer {
    type Service = Namespace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Namespace::with_prefix(inner, self.prefix.clone())
    }
}
