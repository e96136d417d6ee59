//! A gRPC codec whose request side is already encoded.
//!
//! The transport encodes a unary request once, into [`Bytes`], before the
//! first attempt. Checking the send limit needs its size anyway, and an
//! encoded request can be offered to the next endpoint when a connection
//! could not be made, for the price of a reference count instead of a deep
//! clone of the message.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::ProstDecoder;

/// Sends pre-encoded bytes, decodes responses of type `U` with prost.
#[derive(Debug)]
pub(crate) struct PreEncodedCodec<U>(PhantomData<fn() -> U>);

impl<U> Default for PreEncodedCodec<U> {
    fn default() -> Self {
        PreEncodedCodec(PhantomData)
    }
}

impl<U> Codec for PreEncodedCodec<U>
where
    U: prost::Message + Default + Send + 'static,
{
    type Encode = Bytes;
    type Decode = U;
    type Encoder = BytesEncoder;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// Copies already-encoded bytes into the frame.
#[derive(Debug)]
pub(crate) struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}
