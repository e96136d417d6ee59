//! Metric handles, resolved once per RPC and layer.
//!
//! Building a metric key (name plus labels) and looking it up in the
//! recorder costs far more than bumping the counter it names. The layer
//! therefore keeps a table with one slot per [`Rpc`], filled the first time
//! that RPC goes through the layer, and every later call only touches the
//! handles. With no recorder installed the handles are no-ops and a call
//! costs a few branches (see the crate docs for measurements).
//!
//! Outcome series whose labels vary per call (an error's `code` and `kind`)
//! are resolved when they happen: failures are rare next to successes, and
//! caching every `(rpc, code, kind)` would cost more memory than it saves.

use std::sync::{Arc, Once, OnceLock};

use etcd_tower_core::metric_names::{
    self as names, code_label, error_kind_label, service_label, KIND_NONE, LABEL_CODE, LABEL_KIND,
    LABEL_RPC, LABEL_SERVICE,
};
use etcd_tower_core::{Code, EtcdError, Rpc, RpcShape};
use metrics::{Counter, Gauge, Histogram};

/// The per-layer table: one lazily filled slot per RPC.
pub(crate) struct Table {
    slots: Box<[OnceLock<Arc<RpcHandles>>]>,
    described: Once,
}

impl Table {
    pub(crate) fn new() -> Self {
        Table {
            slots: Rpc::ALL.iter().map(|_| OnceLock::new()).collect(),
            described: Once::new(),
        }
    }

    /// The handles of `rpc`, resolved with the recorder in effect the first
    /// time `rpc` is seen by this table.
    pub(crate) fn get(&self, rpc: Rpc) -> Arc<RpcHandles> {
        // `Rpc` is a field-less enum listed in `Rpc::ALL` in declaration
        // order, so its discriminant is its index (a unit test checks it).
        match self.slots.get(rpc as usize) {
            Some(slot) => slot.get_or_init(|| self.resolve(rpc)).clone(),
            None => self.resolve(rpc),
        }
    }

    fn resolve(&self, rpc: Rpc) -> Arc<RpcHandles> {
        self.described.call_once(crate::describe);
        Arc::new(RpcHandles::resolve(rpc))
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resolved = self.slots.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("Table")
            .field("resolved_rpcs", &resolved)
            .finish_non_exhaustive()
    }
}

/// The handles one RPC records with.
pub(crate) struct RpcHandles {
    pub(crate) rpc: Rpc,
    pub(crate) started: Counter,
    pub(crate) succeeded: Counter,
    pub(crate) in_flight: Gauge,
    pub(crate) duration: Histogram,
    /// Present for streaming RPCs only.
    pub(crate) stream: Option<StreamHandles>,
}

/// The handles of a streaming RPC.
pub(crate) struct StreamHandles {
    pub(crate) sent: Counter,
    pub(crate) received: Counter,
    pub(crate) open: Gauge,
    /// Watch events received; a no-op handle for other streams.
    pub(crate) events: Counter,
}

impl RpcHandles {
    fn resolve(rpc: Rpc) -> Self {
        let service = service_label(rpc);
        let name = rpc.name();
        let stream = (rpc.shape() != RpcShape::Unary).then(|| StreamHandles {
            sent: metrics::counter!(names::CLIENT_STREAM_MESSAGES_SENT_TOTAL, LABEL_SERVICE => service, LABEL_RPC => name),
            received: metrics::counter!(names::CLIENT_STREAM_MESSAGES_RECEIVED_TOTAL, LABEL_SERVICE => service, LABEL_RPC => name),
            open: metrics::gauge!(names::CLIENT_STREAMS_OPEN, LABEL_SERVICE => service, LABEL_RPC => name),
            events: if rpc == Rpc::Watch {
                metrics::counter!(names::CLIENT_WATCH_EVENTS_RECEIVED_TOTAL)
            } else {
                Counter::noop()
            },
        });
        RpcHandles {
            rpc,
            started: metrics::counter!(names::CLIENT_REQUESTS_STARTED_TOTAL, LABEL_SERVICE => service, LABEL_RPC => name),
            succeeded: metrics::counter!(
                names::CLIENT_REQUESTS_TOTAL,
                LABEL_SERVICE => service,
                LABEL_RPC => name,
                LABEL_CODE => code_label(Code::Ok),
                LABEL_KIND => KIND_NONE
            ),
            in_flight: metrics::gauge!(names::CLIENT_REQUESTS_IN_FLIGHT, LABEL_SERVICE => service, LABEL_RPC => name),
            duration: metrics::histogram!(names::CLIENT_REQUEST_DURATION_SECONDS, LABEL_SERVICE => service, LABEL_RPC => name),
            stream,
        }
    }

    /// Counts a finished call that failed.
    pub(crate) fn failed(&self, error: &EtcdError) {
        self.outcome(
            names::CLIENT_REQUESTS_TOTAL,
            code_label(error.code()),
            error_kind_label(error.kind()),
        );
    }

    /// Counts a call whose future was dropped before it finished.
    pub(crate) fn dropped(&self) {
        self.outcome(names::CLIENT_REQUESTS_TOTAL, DROPPED_CODE, DROPPED_KIND);
    }

    /// Counts a stream that ended: `None` for a clean end by the server.
    pub(crate) fn stream_closed(&self, error: Option<&EtcdError>) {
        let (code, kind) = match error {
            None => (code_label(Code::Ok), KIND_NONE),
            Some(error) => (code_label(error.code()), error_kind_label(error.kind())),
        };
        self.outcome(names::CLIENT_STREAMS_CLOSED_TOTAL, code, kind);
    }

    /// Counts a stream the client dropped before it ended.
    pub(crate) fn stream_dropped(&self) {
        self.outcome(
            names::CLIENT_STREAMS_CLOSED_TOTAL,
            DROPPED_CODE,
            DROPPED_KIND,
        );
    }

    fn outcome(&self, metric: &'static str, code: &'static str, kind: &'static str) {
        metrics::counter!(
            metric,
            LABEL_SERVICE => service_label(self.rpc),
            LABEL_RPC => self.rpc.name(),
            LABEL_CODE => code,
            LABEL_KIND => kind
        )
        .increment(1);
    }
}

/// The `code` of a call or stream the client dropped: what gRPC reports
/// for a cancelled call.
const DROPPED_CODE: &str = code_label(Code::Cancelled);
/// The `kind` of a call or stream the client dropped.
const DROPPED_KIND: &str = error_kind_label(&etcd_tower_core::ErrorKind::Canceled);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_discriminants_are_catalogue_indexes() {
        for (index, rpc) in Rpc::ALL.iter().enumerate() {
            assert_eq!(*rpc as usize, index, "{rpc}");
        }
    }
}
