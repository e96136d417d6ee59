//! The response every service of the stack returns.

use std::fmt;

use crate::rpc::{ResponseBody, Rpc};

/// The answer to one [`EtcdRequest`](crate::EtcdRequest): the RPC's response
/// message, or for a streaming RPC the stream of messages received.
///
/// Unary responses convert into their message with `TryFrom`:
///
/// ```
/// use etcd_tower_core::{proto::etcdserverpb::PutResponse, EtcdResponse, ResponseBody};
///
/// let response = EtcdResponse::new(ResponseBody::Put(PutResponse::default()));
/// let put = PutResponse::try_from(response).expect("a put response");
/// assert!(put.prev_kv.is_none());
/// ```
pub struct EtcdResponse {
    /// The RPC's answer.
    pub body: ResponseBody,
    /// Typed values layers attach on the way up (for example which auth
    /// token a stream was opened with). Never sent or received.
    pub extensions: http::Extensions,
}

impl EtcdResponse {
    /// A response with no extensions.
    pub fn new(body: ResponseBody) -> Self {
        EtcdResponse {
            body,
            extensions: http::Extensions::new(),
        }
    }

    /// Which RPC this answers.
    pub fn rpc(&self) -> Rpc {
        self.body.rpc()
    }
}

impl From<ResponseBody> for EtcdResponse {
    fn from(body: ResponseBody) -> Self {
        EtcdResponse::new(body)
    }
}

impl fmt::Debug for EtcdResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdResponse")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}
