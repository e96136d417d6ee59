//! Maintenance: status, alarms, defragmentation, hashes, snapshots, leader moves.
//!
//! Each of these acts on the member that serves the call; for the runbooks
//! that go member by member, see [`per_member`](crate::per_member).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! let client = etcd_tower::Client::connect(["127.0.0.1:2379"]).await?;
//! let status = client.status().await?;
//! println!("etcd {} db {} bytes, leader {:x}", status.version, status.db_size, status.leader);
//! for alarm in client.alarm_list().await?.alarms {
//!     println!("member {:x}: {:?}", alarm.member_id, alarm.alarm());
//! }
//! client.alarm_disarm(0, etcd_tower::maintenance::AlarmType::None).await?; // every alarm
//! let mut file = tokio::fs::File::create("backup.db").await.map_err(|e| {
//!     etcd_tower::EtcdError::client(etcd_tower::ErrorKind::InvalidRequest, e.to_string())
//! })?;
//! let snapshot = client.snapshot(&mut file).await?; // checksum verified
//! println!("saved {} bytes", snapshot.size());
//! # Ok(())
//! # }
//! ```

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::{Code, ErrorKind, EtcdError, EtcdRequest, RequestBody, ResponseBody, Sent};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use etcd_tower_core::proto::etcdserverpb::downgrade_request::DowngradeAction;
pub use etcd_tower_core::proto::etcdserverpb::{
    AlarmMember, AlarmResponse, AlarmType, DefragmentResponse, DowngradeResponse, HashKvResponse,
    HashResponse, MoveLeaderResponse, StatusResponse,
};

use crate::client::Client;

/// The size of the checksum etcd appends to a snapshot.
const SHA256_LEN: usize = 32;

/// What [`Client::snapshot`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    size: u64,
    sha256: [u8; SHA256_LEN],
    version: String,
}

impl SnapshotInfo {
    /// Bytes of database written, not counting the 32-byte checksum that
    /// follows them.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The database's SHA-256, as the server sent it and the client
    /// verified it.
    pub fn sha256(&self) -> &[u8; SHA256_LEN] {
        &self.sha256
    }

    /// The storage version the server reported (etcd 3.5.? and later;
    /// empty before).
    pub fn version(&self) -> &str {
        &self.version
    }
}

fn io_error(error: std::io::Error) -> EtcdError {
    EtcdError::new(
        ErrorKind::Other,
        Code::Internal,
        format!("writing the snapshot: {error}"),
        Sent::Rejected,
    )
    .with_source(error)
}

fn corrupt(message: String) -> EtcdError {
    EtcdError::new(ErrorKind::Other, Code::DataLoss, message, Sent::Rejected)
}

/// Hashes everything but the last [`SHA256_LEN`] bytes seen, which it keeps
/// back as the candidate checksum.
struct TrailingHash {
    hasher: Sha256,
    tail: Vec<u8>,
    size: u64,
}

impl TrailingHash {
    fn new() -> Self {
        TrailingHash {
            hasher: Sha256::new(),
            tail: Vec::with_capacity(SHA256_LEN * 2),
            size: 0,
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        if chunk.len() >= SHA256_LEN {
            self.hasher.update(&self.tail);
            self.size += self.tail.len() as u64;
            self.tail.clear();
            let (body, tail) = chunk.split_at(chunk.len() - SHA256_LEN);
            self.hasher.update(body);
            self.size += body.len() as u64;
            self.tail.extend_from_slice(tail);
        } else {
            self.tail.extend_from_slice(chunk);
            let extra = self.tail.len().saturating_sub(SHA256_LEN);
            self.hasher.update(&self.tail[..extra]);
            self.size += extra as u64;
            self.tail.drain(..extra);
        }
    }

    fn finish(self) -> Result<(u64, [u8; SHA256_LEN]), EtcdError> {
        let expected: [u8; SHA256_LEN] = self.tail.as_slice().try_into().map_err(|_| {
            corrupt(format!(
                "the snapshot is {} bytes, too short to carry its checksum",
                self.size + self.tail.len() as u64
            ))
        })?;
        let actual: [u8; SHA256_LEN] = self.hasher.finalize().into();
        if actual != expected {
            return Err(corrupt(
                "the snapshot's sha256 does not match the checksum the server appended".into(),
            ));
        }
        Ok((self.size, expected))
    }
}

/// # Maintenance
impl Client {
    /// The serving member's status: version, db size, leader, raft indexes.
    /// For one chosen member use [`Client::at_endpoint`]; for all,
    /// [`Client::status_each_member`].
    pub async fn status(&self) -> Result<StatusResponse, EtcdError> {
        self.unary(pb::StatusRequest {}).await
    }

    /// Every active alarm.
    pub async fn alarm_list(&self) -> Result<AlarmResponse, EtcdError> {
        self.unary(pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Get as i32,
            member_id: 0,
            alarm: AlarmType::None as i32,
        })
        .await
    }

    /// Disarms alarms: `member_id` 0 means every member, and
    /// [`AlarmType::None`] every type. The server disarms only an exact
    /// (member, type) pair and matches nothing for member 0, so the active
    /// alarms are listed and each one that matches is disarmed, as Go's
    /// client does. The answer lists the alarms disarmed. A NOSPACE alarm
    /// comes back at once if the database is still over its quota: compact
    /// and defragment first (see [`Client::defragment_each_member`]).
    pub async fn alarm_disarm(
        &self,
        member_id: u64,
        alarm: AlarmType,
    ) -> Result<AlarmResponse, EtcdError> {
        let active = self.alarm_list().await?;
        let mut disarmed = AlarmResponse {
            header: active.header,
            alarms: Vec::new(),
        };
        let matching = active.alarms.into_iter().filter(|a| {
            (member_id == 0 || a.member_id == member_id)
                && (alarm == AlarmType::None || a.alarm() == alarm)
        });
        for active in matching {
            let answer: AlarmResponse = self
                .unary(pb::AlarmRequest {
                    action: pb::alarm_request::AlarmAction::Deactivate as i32,
                    member_id: active.member_id,
                    alarm: active.alarm,
                })
                .await?;
            disarmed.header = answer.header;
            disarmed.alarms.push(active);
        }
        Ok(disarmed)
    }

    /// Defragments the serving member's backend, giving freed space back to
    /// the file system. The member blocks while it runs, which can take
    /// minutes for a large database: the call waits as long as it takes (the
    /// client-wide deadlines do not cut it short). Which member serves it
    /// is the round-robin's choice: aim it with [`Client::at_endpoint`], or
    /// use [`Client::defragment_each_member`].
    pub async fn defragment(&self) -> Result<DefragmentResponse, EtcdError> {
        self.unary_waiting(pb::DefragmentRequest {}).await
    }

    /// A hash of the serving member's whole backend (for testing).
    pub async fn hash(&self) -> Result<HashResponse, EtcdError> {
        self.unary(pb::HashRequest {}).await
    }

    /// A hash of the key-value history up to `revision` (0: latest), which
    /// members must agree on: the way to check for corruption.
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, EtcdError> {
        self.unary(pb::HashKvRequest { revision }).await
    }

    /// Hands leadership to another member. Only the leader accepts it: send
    /// it there with [`Client::at_endpoint`], or use
    /// [`Client::move_leader_to`], which finds the leader.
    pub async fn move_leader(&self, target_id: u64) -> Result<MoveLeaderResponse, EtcdError> {
        self.unary(pb::MoveLeaderRequest { target_id }).await
    }

    /// Validates, enables or cancels a cluster downgrade (etcd 3.5+; older
    /// servers answer `Unimplemented`).
    pub async fn downgrade(
        &self,
        action: DowngradeAction,
        version: impl Into<String>,
    ) -> Result<DowngradeResponse, EtcdError> {
        self.unary(pb::DowngradeRequest {
            action: action as i32,
            version: version.into(),
        })
        .await
    }

    /// Streams a snapshot of the serving member's backend into `writer`,
    /// exactly as etcd sends it: the database followed by its 32-byte
    /// SHA-256, which is what `etcdutl snapshot restore` expects. The
    /// checksum is verified as the bytes pass; a mismatch fails the call
    /// (with code `DataLoss`) after the bytes were written, so discard the
    /// output then.
    pub async fn snapshot<W>(&self, writer: &mut W) -> Result<SnapshotInfo, EtcdError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let response = self
            .call(EtcdRequest::new(RequestBody::Snapshot(
                pb::SnapshotRequest {},
            )))
            .await?;
        let mut stream = match response.body {
            ResponseBody::Snapshot(stream) => stream,
            other => {
                return Err(EtcdError::client(
                    ErrorKind::UnexpectedResponse,
                    format!("expected a Snapshot stream, got {}", other.rpc()),
                ))
            }
        };
        let mut hash = TrailingHash::new();
        let mut version = String::new();
        while let Some(message) = stream.next().await {
            let message = message?;
            if !message.version.is_empty() {
                version = message.version;
            }
            hash.update(&message.blob);
            writer.write_all(&message.blob).await.map_err(io_error)?;
        }
        writer.flush().await.map_err(io_error)?;
        let (size, sha256) = hash.finish()?;
        Ok(SnapshotInfo {
            size,
            sha256,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(chunks: &[&[u8]]) -> Result<u64, EtcdError> {
        let mut hash = TrailingHash::new();
        for chunk in chunks {
            hash.update(chunk);
        }
        hash.finish().map(|(size, _)| size)
    }

    #[test]
    fn the_trailing_checksum_is_verified_whatever_the_chunking() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let sum: [u8; 32] = Sha256::digest(&data).into();
        let mut all = data.clone();
        all.extend_from_slice(&sum);
        assert_eq!(check(&[&all]).unwrap(), 1000);
        for split in [1, 5, 31, 32, 33, 500, 999, 1000, 1001, 1020] {
            let (a, b) = all.split_at(split);
            assert_eq!(check(&[a, b]).unwrap(), 1000, "split at {split}");
        }
        let tiny: Vec<&[u8]> = all.chunks(7).collect();
        assert_eq!(check(&tiny).unwrap(), 1000);

        all[10] ^= 1;
        assert_eq!(check(&[&all]).unwrap_err().code(), Code::DataLoss);
        assert!(check(&[b"short"]).is_err());
    }
}
