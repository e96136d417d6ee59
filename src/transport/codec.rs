//! gRPC message framing: a 1-byte compression flag, a 4-byte big-endian
//! length, then the protobuf message.
//!
//! A request is encoded once, framed, into [`Bytes`], before the first
//! attempt. Checking the send limit needs its size anyway, and a framed
//! request can be offered to the next endpoint when a connection could not
//! be made, for the price of a reference count instead of a deep clone of
//! the message. Responses are decoded from the received `Bytes` in place:
//! prost slices `bytes` fields (keys, values) out of the received frame
//! without copying them.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{ErrorKind, EtcdError};
use crate::rpc::Rpc;

/// Bytes before each message.
pub(crate) const PREFIX_LEN: usize = 5;

/// Encodes and frames one request message, refusing it when it is over
/// the send limit.
pub(crate) fn encode<M: prost::Message>(
    rpc: Rpc,
    message: &M,
    limit: usize,
) -> Result<Bytes, EtcdError> {
    let len = message.encoded_len();
    if len > limit {
        return Err(EtcdError::client(
            ErrorKind::RequestTooLarge,
            format!("{rpc} request is {len} bytes; the send limit is {limit}"),
        ));
    }
    let framed_len = u32::try_from(len).map_err(|_| {
        EtcdError::client(
            ErrorKind::RequestTooLarge,
            format!("{rpc} request is {len} bytes"),
        )
    })?;
    let mut buf = BytesMut::with_capacity(PREFIX_LEN + len);
    buf.put_u8(0);
    buf.put_u32(framed_len);
    message.encode_raw(&mut buf);
    Ok(buf.freeze())
}

/// A received frame that cannot be decoded, as a gRPC status (the form
/// tonic reported these in, so that they classify the same way).
pub(crate) fn bad_frame(message: impl Into<String>) -> tonic::Status {
    tonic::Status::internal(message.into())
}

/// The length of the message at the head of `buf`, once its prefix has
/// arrived: `Ok(None)` while fewer than 5 bytes are there.
pub(crate) fn message_len(buf: &[u8], max_recv: usize) -> Result<Option<usize>, tonic::Status> {
    let Some(prefix) = buf.get(..PREFIX_LEN) else {
        return Ok(None);
    };
    if prefix[0] != 0 {
        return Err(bad_frame(
            "received a compressed message, but no compression was negotiated",
        ));
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > max_recv {
        return Err(tonic::Status::out_of_range(format!(
            "Error, decoded message length too large: found {len} bytes, the limit is: {max_recv} bytes"
        )));
    }
    Ok(Some(len))
}

/// Takes one whole message off the front of `buf`, if it is all there.
pub(crate) fn split_message(
    buf: &mut BytesMut,
    max_recv: usize,
) -> Result<Option<Bytes>, tonic::Status> {
    let Some(len) = whole_message_len(buf, max_recv)? else {
        return Ok(None);
    };
    buf.advance(PREFIX_LEN);
    Ok(Some(buf.split_to(len).freeze()))
}

/// The length of the message at the head of `buf`, once all of it is there.
fn whole_message_len(buf: &[u8], max_recv: usize) -> Result<Option<usize>, tonic::Status> {
    Ok(message_len(buf, max_recv)?.filter(|len| buf.len() >= PREFIX_LEN + len))
}

/// [`split_message`] for bytes that are not joined from several chunks:
/// the message is a slice of them, not a copy.
pub(crate) fn split_bytes(
    buf: &mut Bytes,
    max_recv: usize,
) -> Result<Option<Bytes>, tonic::Status> {
    let Some(len) = whole_message_len(buf, max_recv)? else {
        return Ok(None);
    };
    let message = buf.slice(PREFIX_LEN..PREFIX_LEN + len);
    buf.advance(PREFIX_LEN + len);
    Ok(Some(message))
}

/// Decodes one message.
pub(crate) fn decode<M: prost::Message + Default>(bytes: Bytes) -> Result<M, tonic::Status> {
    M::decode(bytes).map_err(|e| bad_frame(format!("failed to decode the response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::PutRequest;

    /// A small put and its gRPC frame.
    fn framed_put() -> (PutRequest, Bytes) {
        let put = PutRequest {
            key: "k".into(),
            value: "v".into(),
            ..Default::default()
        };
        let framed = encode(Rpc::Put, &put, 1024).unwrap();
        (put, framed)
    }

    #[test]
    fn a_framed_message_splits_back() {
        let (put, framed) = framed_put();
        assert_eq!(framed.len(), PREFIX_LEN + prost::Message::encoded_len(&put));
        // Split across two reads, and followed by the start of another.
        let mut buf = BytesMut::from(&framed[..3]);
        assert!(split_message(&mut buf, 1024).unwrap().is_none());
        buf.extend_from_slice(&framed[3..]);
        buf.extend_from_slice(&framed[..2]);
        let message = split_message(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(decode::<PutRequest>(message).unwrap(), put);
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn whole_messages_slice_out_of_a_chunk() {
        let (put, framed) = framed_put();
        let mut chunk = BytesMut::new();
        chunk.extend_from_slice(&framed);
        chunk.extend_from_slice(&framed);
        chunk.extend_from_slice(&framed[..3]);
        let mut chunk = chunk.freeze();
        for _ in 0..2 {
            let message = split_bytes(&mut chunk, 1024).unwrap().unwrap();
            assert_eq!(decode::<PutRequest>(message).unwrap(), put);
        }
        assert!(split_bytes(&mut chunk, 1024).unwrap().is_none());
        assert_eq!(&chunk[..], &framed[..3], "the partial message is left");
        let err = split_bytes(&mut framed.clone(), 3).unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange);
    }

    #[test]
    fn limits_and_compression_are_enforced() {
        let put = PutRequest {
            key: "k".into(),
            value: vec![0; 100].into(),
            ..Default::default()
        };
        let err = encode(Rpc::Put, &put, 10).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::RequestTooLarge);
        let framed = encode(Rpc::Put, &put, 1024).unwrap();
        let err = split_message(&mut BytesMut::from(&framed[..]), 10).unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange);
        let mut compressed = BytesMut::from(&framed[..]);
        compressed[0] = 1;
        assert!(split_message(&mut compressed, 1024).is_err());
    }
}
