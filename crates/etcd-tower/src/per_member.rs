//! Maintenance aimed at members: each member in turn, or the leader.
//!
//! Maintenance RPCs act on the member that serves them: `Defragment`
//! rewrites *that* member's database, `HashKV` and `Status` describe it, and
//! `MoveLeader` works only on the leader. With calls spread round-robin, a
//! plain `client.defragment()` defragments whichever member the call
//! happened to reach. The standard runbooks need more: defragment every
//! member one at a time (each blocks while it runs, so never all at once),
//! compare `HashKV` across members to find a corrupt one, hand leadership
//! over before taking the leader down.
//!
//! The members come from `MemberList`; each is reached at one of its
//! advertised client URLs, which must be among the client's endpoints (a
//! URL the client was not given is not dialled behind the user's back: the
//! call fails with [`ErrorKind::InvalidEndpoint`], naming the member). A
//! call to one member never fails over to another. A runbook stops at the
//! first member that fails, with an error that names it, so that the
//! operator knows where it stopped.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), etcd_tower::EtcdError> {
//! let client = etcd_tower::Client::connect(["127.0.0.1:2379", "127.0.0.1:22379", "127.0.0.1:32379"]).await?;
//! for done in client.defragment_each_member().await? {
//!     println!("defragmented {} at {}", done.member.name, done.endpoint);
//! }
//! let hashes = client.hash_kv_each_member(0).await?;
//! let agree = hashes.windows(2).all(|w| w[0].response.hash == w[1].response.hash);
//! println!("members agree: {agree}");
//! # Ok(())
//! # }
//! ```

use etcd_tower_core::proto::etcdserverpb as pb;
use etcd_tower_core::{
    ErrorKind, EtcdError, EtcdRequest, EtcdResponse, RequestBody, TargetEndpoint,
};

use crate::client::Client;
use crate::cluster::Member;
use crate::maintenance::{DefragmentResponse, HashKvResponse, MoveLeaderResponse, StatusResponse};

/// What one member answered, and where it was reached.
#[derive(Clone, Debug)]
pub struct MemberAnswer<T> {
    /// The member, as `MemberList` described it.
    pub member: Member,
    /// The client URL it was reached at.
    pub endpoint: TargetEndpoint,
    /// Its answer.
    pub response: T,
}

/// How a call is sent: bounded by the client's deadlines, or waiting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Bounded,
    AsLongAsItTakes,
}

/// # Maintenance aimed at members
impl Client {
    /// Defragments every member, one at a time, in `MemberList` order: the
    /// runbook for reclaiming space after a compaction (each member blocks
    /// while its defragmentation runs, so doing them in turn keeps the
    /// cluster serving). Each defragmentation waits as long as it takes (the
    /// client-wide deadlines do not cut it short). Stops at the first member
    /// that fails, with an error naming it.
    pub async fn defragment_each_member(
        &self,
    ) -> Result<Vec<MemberAnswer<DefragmentResponse>>, EtcdError> {
        self.each_member("defragmenting", Wait::AsLongAsItTakes, || {
            pb::DefragmentRequest {}.into()
        })
        .await
    }

    /// Each member's hash of the key-value history up to `revision` (0: each
    /// member's latest; give a revision, e.g. the one a first `hash_kv`
    /// reported, so that members compare the same history). Members whose
    /// hashes differ at the same `compact_revision` disagree: one is
    /// corrupt.
    pub async fn hash_kv_each_member(
        &self,
        revision: i64,
    ) -> Result<Vec<MemberAnswer<HashKvResponse>>, EtcdError> {
        self.each_member("hashing", Wait::Bounded, || {
            pb::HashKvRequest { revision }.into()
        })
        .await
    }

    /// Each member's status (version, database size, raft indexes, its
    /// view of the leader, its alarms' errors).
    pub async fn status_each_member(&self) -> Result<Vec<MemberAnswer<StatusResponse>>, EtcdError> {
        self.each_member("asking the status of", Wait::Bounded, || {
            pb::StatusRequest {}.into()
        })
        .await
    }

    /// Hands leadership to the member `target_id`, sending the request to
    /// the current leader (the only member that accepts it): the leader is
    /// found from a member's status, and reached at its client URL, which
    /// must be one of the client's endpoints.
    pub async fn move_leader_to(&self, target_id: u64) -> Result<MoveLeaderResponse, EtcdError> {
        let leader_id = self.status().await?.leader;
        if leader_id == 0 {
            return Err(EtcdError::client(
                ErrorKind::NoLeader,
                "the cluster has no leader to hand leadership over from; nothing was sent",
            ));
        }
        let members = self.member_list().await?.members;
        let leader = members
            .into_iter()
            .find(|m| m.id == leader_id)
            .ok_or_else(|| {
                EtcdError::client(
                    ErrorKind::UnexpectedResponse,
                    format!("the leader {leader_id:x} is not in the member list"),
                )
            })?;
        let answer: MemberAnswer<MoveLeaderResponse> = self
            .at_member(&leader, "moving leadership from", Wait::Bounded, || {
                pb::MoveLeaderRequest { target_id }.into()
            })
            .await?;
        Ok(answer.response)
    }

    /// Sends one request to every member in turn; see the [module docs](self).
    async fn each_member<Resp>(
        &self,
        doing: &str,
        wait: Wait,
        body: impl Fn() -> RequestBody,
    ) -> Result<Vec<MemberAnswer<Resp>>, EtcdError>
    where
        Resp: TryFrom<EtcdResponse, Error = EtcdError>,
    {
        let members = self.member_list().await?.members;
        let mut answers = Vec::with_capacity(members.len());
        for member in members {
            answers.push(self.at_member(&member, doing, wait, &body).await?);
        }
        Ok(answers)
    }

    /// Sends one request to `member`, at the first of its client URLs that
    /// is one of the client's endpoints.
    async fn at_member<Resp>(
        &self,
        member: &Member,
        doing: &str,
        wait: Wait,
        body: impl Fn() -> RequestBody,
    ) -> Result<MemberAnswer<Resp>, EtcdError>
    where
        Resp: TryFrom<EtcdResponse, Error = EtcdError>,
    {
        let about = |error: EtcdError, url: &str| {
            let name = if member.name.is_empty() {
                "(not started)"
            } else {
                &member.name
            };
            EtcdError::new(
                error.kind().clone(),
                error.code(),
                format!(
                    "{doing} member {name} ({:x}) at {url}: {}",
                    member.id,
                    error.message()
                ),
                error.sent(),
            )
            .with_source(error)
        };
        let mut last = None;
        for url in &member.client_ur_ls {
            let endpoint = TargetEndpoint::new(url).map_err(|e| about(e, url))?;
            let mut request = EtcdRequest::new(body());
            request.meta.endpoint = Some(endpoint.clone());
            let answer = match wait {
                Wait::Bounded => self.call(request).await,
                Wait::AsLongAsItTakes => self.call_waiting(request).await,
            };
            match answer.and_then(Resp::try_from) {
                Ok(response) => {
                    return Ok(MemberAnswer {
                        member: member.clone(),
                        endpoint,
                        response,
                    })
                }
                // Not one of the client's endpoints: the member may have
                // another URL that is.
                Err(error) if error.kind() == &ErrorKind::InvalidEndpoint => {
                    last = Some(about(error, url));
                }
                Err(error) => return Err(about(error, url)),
            }
        }
        Err(last.unwrap_or_else(|| {
            EtcdError::client(
                ErrorKind::InvalidEndpoint,
                format!(
                    "{doing} member {} ({:x}): it advertises no client URL (not started yet?); nothing was sent",
                    member.name, member.id
                ),
            )
        }))
    }
}
