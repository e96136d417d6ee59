//! Cluster membership: list, add (voting or learner), remove, update, promote.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! let client = etcd_tower::Client::connect(["127.0.0.1:2379"]).await?;
//! for member in client.member_list().await?.members {
//!     println!("{:x} {} {:?} learner={}", member.id, member.name, member.client_ur_ls, member.is_learner);
//! }
//! let added = client.member_add_learner(["http://10.0.0.4:2380"]).await?;
//! if let Some(new) = added.member {
//!     // ... start the new member with --initial-cluster-state=existing, then:
//!     client.member_promote(new.id).await?;
//! }
//! # Ok(())
//! # }
//! ```

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::EtcdError;

pub use etcd_tower_core::proto::etcdserverpb::{
    Member, MemberAddResponse, MemberListResponse, MemberPromoteResponse, MemberRemoveResponse,
    MemberUpdateResponse,
};

use crate::client::Client;

fn urls<I, S>(urls: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    urls.into_iter().map(Into::into).collect()
}

/// # Cluster
impl Client {
    /// Every member, as the serving member knows them.
    pub async fn member_list(&self) -> Result<MemberListResponse, EtcdError> {
        self.unary(pb::MemberListRequest {
            linearizable: false,
        })
        .await
    }

    /// Every member, read through consensus (etcd 3.5+; older servers
    /// ignore the flag).
    pub async fn member_list_linearizable(&self) -> Result<MemberListResponse, EtcdError> {
        self.unary(pb::MemberListRequest { linearizable: true })
            .await
    }

    /// Adds a voting member with these peer URLs.
    pub async fn member_add<I, S>(&self, peer_urls: I) -> Result<MemberAddResponse, EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.unary(pb::MemberAddRequest {
            peer_ur_ls: urls(peer_urls),
            is_learner: false,
        })
        .await
    }

    /// Adds a non-voting learner with these peer URLs.
    pub async fn member_add_learner<I, S>(
        &self,
        peer_urls: I,
    ) -> Result<MemberAddResponse, EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.unary(pb::MemberAddRequest {
            peer_ur_ls: urls(peer_urls),
            is_learner: true,
        })
        .await
    }

    /// Removes a member.
    pub async fn member_remove(&self, id: u64) -> Result<MemberRemoveResponse, EtcdError> {
        self.unary(pb::MemberRemoveRequest { id }).await
    }

    /// Changes a member's peer URLs.
    pub async fn member_update<I, S>(
        &self,
        id: u64,
        peer_urls: I,
    ) -> Result<MemberUpdateResponse, EtcdError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.unary(pb::MemberUpdateRequest {
            id,
            peer_ur_ls: urls(peer_urls),
        })
        .await
    }

    /// Promotes a learner that has caught up with the leader to a voting member.
    pub async fn member_promote(&self, id: u64) -> Result<MemberPromoteResponse, EtcdError> {
        self.unary(pb::MemberPromoteRequest { id }).await
    }
}
