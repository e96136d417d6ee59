//! What the property tests (`fuzz_tests`) and the libFuzzer targets
//! (`fuzz/`, through [`fuzzing`](super::fuzzing)) share: the inbound
//! reading of a streaming call step by step as `call.rs` drives the codec,
//! and the decoding of a message as the response type of any RPC.
//!
//! Compiled only for tests and under `--cfg fuzzing` (set by cargo-fuzz).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use prost::Message;

use super::codec;
use crate::proto::etcdserverpb as pb;
use crate::proto::{v3electionpb as election, v3lockpb as lock};
use crate::rpc::Rpc;

/// The inbound side of a streaming call, step for step as
/// `GrpcStream::poll_next` (call.rs) drives `codec::split_bytes` and
/// `codec::split_message`, with the h2 body replaced by pushed chunks.
pub(crate) struct StreamReader {
    chunk: Bytes,
    buf: BytesMut,
    max_recv: usize,
    /// Bytes pushed so far, to bound what the reader may hold.
    received: usize,
}

impl StreamReader {
    pub(crate) fn new(max_recv: usize) -> Self {
        StreamReader {
            chunk: Bytes::new(),
            buf: BytesMut::new(),
            max_recv,
            received: 0,
        }
    }

    /// The next whole message, if one is there; otherwise keeps the start
    /// of the next one for the next chunk (the `Reading::Data` arm).
    pub(crate) fn next_message(&mut self) -> Result<Option<Bytes>, tonic::Status> {
        let split = if self.buf.is_empty() {
            codec::split_bytes(&mut self.chunk, self.max_recv)
        } else {
            codec::split_message(&mut self.buf, self.max_recv)
        };
        if let Some(message) = split? {
            return Ok(Some(message));
        }
        if !self.chunk.is_empty() {
            self.buf.extend_from_slice(&self.chunk);
            self.chunk.clear();
        }
        Ok(None)
    }

    /// One DATA chunk arrives.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.received += chunk.len();
        if self.buf.is_empty() {
            self.chunk = chunk;
        } else {
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// The stream ended (the `Reading::Trailers` arm, trailers being OK).
    pub(crate) fn finish(&self) -> Result<(), tonic::Status> {
        if !self.buf.is_empty() || !self.chunk.is_empty() {
            return Err(codec::bad_frame("the stream ended inside a message"));
        }
        Ok(())
    }

    /// Bytes held, which must never exceed what arrived (with `BytesMut`'s
    /// growth allowance).
    pub(crate) fn held(&self) -> usize {
        self.buf.capacity() + self.chunk.len()
    }
}

/// Reads a whole stream of chunks: the messages, or the first error (a
/// streaming call ends at its first error). Checks on the way that no
/// message is over the limit and that the reader holds no more than twice
/// what arrived.
pub(crate) fn read_stream(chunks: &[Bytes], max_recv: usize) -> Result<Vec<Bytes>, tonic::Status> {
    let mut reader = StreamReader::new(max_recv);
    let mut messages = Vec::new();
    let mut drain = |reader: &mut StreamReader| -> Result<(), tonic::Status> {
        while let Some(message) = reader.next_message()? {
            assert!(message.len() <= max_recv, "a message over the limit");
            messages.push(message);
        }
        assert!(
            reader.held() <= 2 * reader.received + 64,
            "holding {} bytes after receiving {}",
            reader.held(),
            reader.received
        );
        Ok(())
    };
    for chunk in chunks {
        drain(&mut reader)?;
        reader.push(chunk.clone());
    }
    drain(&mut reader)?;
    reader.finish()?;
    Ok(messages)
}

/// The body of a unary call, as `receive_unary` (call.rs) reads it: the
/// chunks joined, then exactly one whole message.
#[cfg(test)]
pub(crate) fn read_unary(chunks: &[Bytes], max_recv: usize) -> Result<Bytes, tonic::Status> {
    use super::codec::PREFIX_LEN;
    let received = match chunks {
        [] => return Err(tonic::Status::internal("Missing response message.")),
        [one] => one.clone(),
        [head, rest @ ..] => {
            let mut joined = BytesMut::with_capacity(head.len() + rest[0].len());
            joined.extend_from_slice(head);
            for chunk in rest {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    };
    let len = codec::message_len(&received, max_recv)?.unwrap_or(usize::MAX);
    if received.len() != PREFIX_LEN.saturating_add(len) {
        return Err(codec::bad_frame(
            "a unary response must be one whole message",
        ));
    }
    Ok(received.slice(PREFIX_LEN..))
}

/// `bytes` cut at the given points (taken modulo its length, any order).
#[cfg(test)]
pub(crate) fn cut(bytes: &Bytes, points: &[usize]) -> Vec<Bytes> {
    let mut points: Vec<usize> = points
        .iter()
        .map(|p| {
            if bytes.is_empty() {
                0
            } else {
                p % (bytes.len() + 1)
            }
        })
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for point in points {
        chunks.push(bytes.slice(start..point));
        start = point;
    }
    chunks.push(bytes.slice(start..));
    chunks
}

pub(crate) fn frame<M: Message>(message: &M) -> Bytes {
    codec::encode(Rpc::Range, message, usize::MAX).unwrap()
}

// ----- Every response type -----

/// Decodes `message` as `M`; when it decodes, checks that the message
/// survives framing and decoding again unchanged (prost drops unknown
/// fields, so the second decode must equal the first).
pub(crate) fn decode_and_round_trip<M>(message: Bytes) -> Result<(), tonic::Status>
where
    M: Message + Default + PartialEq + std::fmt::Debug,
{
    let decoded: M = codec::decode(message)?;
    let mut framed = frame(&decoded);
    let again = codec::split_bytes(&mut framed, usize::MAX)
        .unwrap()
        .expect("a whole frame");
    assert!(framed.is_empty());
    assert_eq!(codec::decode::<M>(again).unwrap(), decoded);
    Ok(())
}

/// Calls `$f::<Response>(args)` with the response type of `$rpc`. The
/// match is exhaustive, so an RPC added to the table does not compile here
/// until its response type is fuzzed too.
macro_rules! with_response_type {
    ($rpc:expr, $f:ident($($arg:expr),*)) => {
        match $rpc {
            Rpc::Range => $f::<pb::RangeResponse>($($arg),*),
            Rpc::Put => $f::<pb::PutResponse>($($arg),*),
            Rpc::DeleteRange => $f::<pb::DeleteRangeResponse>($($arg),*),
            Rpc::Txn => $f::<pb::TxnResponse>($($arg),*),
            Rpc::Compact => $f::<pb::CompactionResponse>($($arg),*),
            Rpc::Watch => $f::<pb::WatchResponse>($($arg),*),
            Rpc::LeaseGrant => $f::<pb::LeaseGrantResponse>($($arg),*),
            Rpc::LeaseRevoke => $f::<pb::LeaseRevokeResponse>($($arg),*),
            Rpc::LeaseKeepAlive => $f::<pb::LeaseKeepAliveResponse>($($arg),*),
            Rpc::LeaseTimeToLive => $f::<pb::LeaseTimeToLiveResponse>($($arg),*),
            Rpc::LeaseLeases => $f::<pb::LeaseLeasesResponse>($($arg),*),
            Rpc::AuthEnable => $f::<pb::AuthEnableResponse>($($arg),*),
            Rpc::AuthDisable => $f::<pb::AuthDisableResponse>($($arg),*),
            Rpc::AuthStatus => $f::<pb::AuthStatusResponse>($($arg),*),
            Rpc::Authenticate => $f::<pb::AuthenticateResponse>($($arg),*),
            Rpc::UserAdd => $f::<pb::AuthUserAddResponse>($($arg),*),
            Rpc::UserGet => $f::<pb::AuthUserGetResponse>($($arg),*),
            Rpc::UserList => $f::<pb::AuthUserListResponse>($($arg),*),
            Rpc::UserDelete => $f::<pb::AuthUserDeleteResponse>($($arg),*),
            Rpc::UserChangePassword => $f::<pb::AuthUserChangePasswordResponse>($($arg),*),
            Rpc::UserGrantRole => $f::<pb::AuthUserGrantRoleResponse>($($arg),*),
            Rpc::UserRevokeRole => $f::<pb::AuthUserRevokeRoleResponse>($($arg),*),
            Rpc::RoleAdd => $f::<pb::AuthRoleAddResponse>($($arg),*),
            Rpc::RoleGet => $f::<pb::AuthRoleGetResponse>($($arg),*),
            Rpc::RoleList => $f::<pb::AuthRoleListResponse>($($arg),*),
            Rpc::RoleDelete => $f::<pb::AuthRoleDeleteResponse>($($arg),*),
            Rpc::RoleGrantPermission => $f::<pb::AuthRoleGrantPermissionResponse>($($arg),*),
            Rpc::RoleRevokePermission => $f::<pb::AuthRoleRevokePermissionResponse>($($arg),*),
            Rpc::MemberAdd => $f::<pb::MemberAddResponse>($($arg),*),
            Rpc::MemberRemove => $f::<pb::MemberRemoveResponse>($($arg),*),
            Rpc::MemberUpdate => $f::<pb::MemberUpdateResponse>($($arg),*),
            Rpc::MemberList => $f::<pb::MemberListResponse>($($arg),*),
            Rpc::MemberPromote => $f::<pb::MemberPromoteResponse>($($arg),*),
            Rpc::Alarm => $f::<pb::AlarmResponse>($($arg),*),
            Rpc::Status => $f::<pb::StatusResponse>($($arg),*),
            Rpc::Defragment => $f::<pb::DefragmentResponse>($($arg),*),
            Rpc::Hash => $f::<pb::HashResponse>($($arg),*),
            Rpc::HashKv => $f::<pb::HashKvResponse>($($arg),*),
            Rpc::Snapshot => $f::<pb::SnapshotResponse>($($arg),*),
            Rpc::MoveLeader => $f::<pb::MoveLeaderResponse>($($arg),*),
            Rpc::Downgrade => $f::<pb::DowngradeResponse>($($arg),*),
            Rpc::Lock => $f::<lock::LockResponse>($($arg),*),
            Rpc::Unlock => $f::<lock::UnlockResponse>($($arg),*),
            Rpc::Campaign => $f::<election::CampaignResponse>($($arg),*),
            Rpc::Proclaim => $f::<election::ProclaimResponse>($($arg),*),
            Rpc::Leader => $f::<election::LeaderResponse>($($arg),*),
            Rpc::Observe => $f::<election::LeaderResponse>($($arg),*),
            Rpc::Resign => $f::<election::ResignResponse>($($arg),*),
        }
    };
}

#[cfg(test)]
pub(crate) use with_response_type;

/// [`decode_and_round_trip`] as the response type of `rpc`.
pub(crate) fn decode_as(rpc: Rpc, message: Bytes) -> Result<(), tonic::Status> {
    with_response_type!(rpc, decode_and_round_trip(message))
}

/// A decode failure must be the transport's typed one.
pub(crate) fn assert_typed(result: Result<(), tonic::Status>) {
    if let Err(status) = result {
        assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
        assert!(
            status.message().starts_with("failed to decode"),
            "{status:?}"
        );
    }
}
