//! [`MetricsLayer`]: applies [`Metrics`] to a service.

use std::sync::Arc;

use tower_layer::Layer;

use crate::handles::Table;
use crate::Metrics;

/// Records metrics for every call through the services it builds; see the
/// [crate docs](crate).
///
/// Every service a layer builds (and every clone of those) shares one table
/// of metric handles, resolved per RPC on first use with the recorder in
/// effect then.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    table: Arc<Table>,
}

impl MetricsLayer {
    /// A layer with its own table of handles.
    pub fn new() -> Self {
        MetricsLayer {
            table: Arc::new(Table::new()),
        }
    }
}

impl Default for MetricsLayer {
    fn default() -> Self {
        MetricsLayer::new()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics::with_table(inner, self.table.clone())
    }
}
