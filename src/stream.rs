//! The stream types that carry streaming RPCs through the stack.
//!
//! Streams are boxed: a stream is opened once and then carries many
//! messages, so the one allocation per open is nothing next to the freedom
//! it gives layers to wrap a stream (the namespace layer rewrites keys in
//! both directions, the metrics layer counts messages) without changing its
//! type.

use std::pin::Pin;

use futures_core::Stream;

use crate::error::EtcdError;

/// The outbound messages of a bidirectional RPC (Watch, LeaseKeepAlive).
/// When the stream ends, the client half-closes the RPC.
pub type RequestStream<T> = Pin<Box<dyn Stream<Item = T> + Send + 'static>>;

/// The inbound messages of a streaming RPC. An `Err` item ends the stream:
/// the RPC failed (the error says how) and nothing more will arrive.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, EtcdError>> + Send + 'static>>;
