//! Which members answer progress requests in order with their events.
//!
//! A progress request (`WatchProgressRequest`) is answered with
//! `watch_id = -1` and a revision. Whether that answer may move the next
//! revision of a stream's watchers (see [`revision`](crate::revision))
//! depends on the server's version: before etcd PR 15237 (etcd issue
//! 15220) a member answers at once, through its control channel, with the
//! store's revision, and the answer may overtake events still on their way
//! to watchers that are catching up. From etcd 3.4.24 and 3.5.8 on (and in
//! 3.6) the answer goes through the watch channel, once every watcher of the
//! stream is synced.
//!
//! The engine learns a member's version once per member id (not per stream:
//! streams come and go with faults), cached in the engine's shared state,
//! with a `Maintenance/Status` call through the service stack, aimed at the
//! endpoint the stream was opened on (the transport says which, as a
//! [`TargetEndpoint`] in the stream's response; without it, round-robin
//! may send the call elsewhere, and a third of the time on three members
//! every attempt would miss):
//!
//! * the answer's header names the stream's member: its `version` decides,
//!   by [`IN_ORDER_SINCE`];
//! * the answer names another member (a proxy, or a transport that sent the
//!   call elsewhere): that says nothing about the stream's member; asked
//!   again, at most [`ATTEMPTS`] times;
//! * the call fails with `PermissionDenied`: etcd 3.5.28+ (and 3.6) refuse
//!   `Status` to users who are not root, and every server that does is
//!   newer than the fix;
//! * any other failure: asked again, at most [`ATTEMPTS`] times.
//!
//! Whatever is not decided after that is [`BroadcastOrder::MayOvertake`]:
//! unknown counts as unsafe. Only codes and structure are read, never an
//! error's message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use etcd_tower_core::proto::etcdserverpb::{StatusRequest, StatusResponse};
use etcd_tower_core::{Code, EtcdError, EtcdRequest, EtcdResponse, TargetEndpoint};
use tower::{Service, ServiceExt};

use crate::revision::BroadcastOrder;

/// The first release of each minor line of etcd 3 whose members answer
/// progress requests in order (etcd PR 15237); minor lines after the last
/// one have it from their start, those before the first never do.
pub(crate) const IN_ORDER_SINCE: [(u64, u64); 2] = [(4, 24), (5, 8)];

/// How many `Status` calls decide one member, at most.
pub(crate) const ATTEMPTS: u32 = 3;

/// The pause after the first failed attempt; doubled after each.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What a `version` string (`"3.5.8"`, `"3.4.23"`) says. A pre-release
/// (`"3.5.8-rc.0"`) counts as the release before it; anything that does not
/// parse may overtake.
pub(crate) fn order_of_version(version: &str) -> BroadcastOrder {
    let mut parts = version.trim().splitn(3, '.');
    let number = |part: Option<&str>| part.and_then(|p| p.parse::<u64>().ok());
    let (Some(major), Some(minor)) = (number(parts.next()), number(parts.next())) else {
        return BroadcastOrder::MayOvertake;
    };
    let patch_text = parts.next().unwrap_or("");
    let digits = patch_text.len()
        - patch_text
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    let Ok(patch) = patch_text[..digits].parse::<u64>() else {
        return BroadcastOrder::MayOvertake;
    };
    let pre_release = digits < patch_text.len();
    let newest_line = IN_ORDER_SINCE.last().map_or(0, |(minor, _)| *minor);
    let in_order = match major {
        0..=2 => false,
        3 if minor > newest_line => true,
        3 => IN_ORDER_SINCE
            .iter()
            .find(|(line, _)| *line == minor)
            .is_some_and(|(_, since)| patch > *since || (patch == *since && !pre_release)),
        _ => true,
    };
    if in_order {
        BroadcastOrder::InOrder
    } else {
        BroadcastOrder::MayOvertake
    }
}

/// What one `Status` attempt found out about the member it was meant for.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Decided(BroadcastOrder),
    /// Answered by another member, or failed: ask again.
    Undecided,
}

fn judge(member_id: u64, result: Result<EtcdResponse, EtcdError>) -> Attempt {
    match result.and_then(StatusResponse::try_from) {
        Ok(status) if status.header.as_ref().map(|h| h.member_id) == Some(member_id) => {
            Attempt::Decided(order_of_version(&status.version))
        }
        Ok(_) => Attempt::Undecided,
        Err(error) if error.code() == Code::PermissionDenied => {
            Attempt::Decided(BroadcastOrder::InOrder)
        }
        Err(_) => Attempt::Undecided,
    }
}

/// Asks `service` for the version of member `member_id`, at `endpoint`
/// when known, at most [`ATTEMPTS`] times, each bounded by `timeout`.
pub(crate) async fn check<S>(
    mut service: S,
    member_id: u64,
    endpoint: Option<TargetEndpoint>,
    timeout: Duration,
) -> BroadcastOrder
where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError>,
{
    let mut pause = RETRY_PAUSE;
    for attempt in 1..=ATTEMPTS {
        let call = async {
            ServiceExt::<EtcdRequest>::ready(&mut service).await?;
            let mut status = EtcdRequest::new(StatusRequest {});
            status.meta.endpoint = endpoint.clone();
            Service::call(&mut service, status).await
        };
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(member_id, attempt, "the member's Status timed out");
                continue;
            }
        };
        if let Attempt::Decided(order) = judge(member_id, result) {
            return order;
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
        }
    }
    BroadcastOrder::MayOvertake
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Checking,
    Decided(BroadcastOrder),
}

/// The order of every member the engine has asked about, by member id;
/// shared by the engine's stream tasks.
#[derive(Debug, Default)]
pub(crate) struct MemberOrders {
    members: Mutex<HashMap<u64, Known>>,
}

impl MemberOrders {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Known>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What is known of `member_id`: [`BroadcastOrder::MayOvertake`] until
    /// its check has decided otherwise.
    pub(crate) fn order(&self, member_id: u64) -> BroadcastOrder {
        match self.lock().get(&member_id) {
            Some(Known::Decided(order)) => *order,
            Some(Known::Checking) | None => BroadcastOrder::MayOvertake,
        }
    }

    /// Whether the caller should check `member_id`: `true` once per member
    /// id, for the first caller.
    pub(crate) fn claim(&self, member_id: u64) -> bool {
        let mut members = self.lock();
        if members.contains_key(&member_id) {
            return false;
        }
        members.insert(member_id, Known::Checking);
        true
    }

    /// Records a check's result.
    pub(crate) fn decide(&self, member_id: u64, order: BroadcastOrder) {
        self.lock().insert(member_id, Known::Decided(order));
    }
}

/// Checks `member_id` in the background and records the result in
/// `orders`, unless it was checked already (or is being checked).
pub(crate) fn spawn_check<S>(
    orders: Arc<MemberOrders>,
    service: S,
    member_id: u64,
    endpoint: Option<TargetEndpoint>,
    timeout: Duration,
) where
    S: Service<EtcdRequest, Response = EtcdResponse, Error = EtcdError> + Send + 'static,
    S::Future: Send,
{
    if member_id == 0 || !orders.claim(member_id) {
        return;
    }
    tokio::spawn(async move {
        let order = check(service, member_id, endpoint, timeout).await;
        tracing::debug!(
            member_id,
            ?order,
            "how the watch stream's member answers progress requests"
        );
        orders.decide(member_id, order);
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use etcd_tower_core::proto::etcdserverpb::ResponseHeader;
    use etcd_tower_core::{ErrorKind, ResponseBody, Sent};
    use BroadcastOrder::*;

    #[test]
    fn versions_with_the_fix() {
        for (version, order) in [
            ("3.5.8", InOrder),
            ("3.5.30", InOrder),
            ("3.5.7", MayOvertake),
            ("3.5.1", MayOvertake),
            ("3.5.8-rc.0", MayOvertake),
            ("3.5.9-rc.0", InOrder),
            ("3.4.24", InOrder),
            ("3.4.23", MayOvertake),
            ("3.3.27", MayOvertake),
            ("3.6.0", InOrder),
            ("3.6.0-alpha.0", InOrder),
            ("3.7.1", InOrder),
            ("4.0.0", InOrder),
            ("2.3.8", MayOvertake),
            ("", MayOvertake),
            ("3", MayOvertake),
            ("3.5", MayOvertake),
            ("3.x.9", MayOvertake),
            ("not a version", MayOvertake),
        ] {
            assert_eq!(order_of_version(version), order, "{version:?}");
        }
    }

    fn status(member_id: u64, version: &str) -> Result<EtcdResponse, EtcdError> {
        Ok(EtcdResponse::new(ResponseBody::Status(StatusResponse {
            header: Some(ResponseHeader {
                member_id,
                ..Default::default()
            }),
            version: version.into(),
            ..Default::default()
        })))
    }

    #[test]
    fn only_the_streams_member_or_a_refusal_decides() {
        assert_eq!(judge(7, status(7, "3.5.8")), Attempt::Decided(InOrder));
        assert_eq!(judge(7, status(7, "3.5.1")), Attempt::Decided(MayOvertake));
        // Another member answered: nothing learned about member 7.
        assert_eq!(judge(7, status(8, "3.5.30")), Attempt::Undecided);
        let denied = EtcdError::new(
            ErrorKind::PermissionDenied,
            Code::PermissionDenied,
            "any text",
            Sent::Rejected,
        );
        assert_eq!(judge(7, Err(denied)), Attempt::Decided(InOrder));
        let down = EtcdError::client(ErrorKind::Connect, "down");
        assert_eq!(judge(7, Err(down)), Attempt::Undecided);
    }

    #[test]
    fn each_member_is_claimed_once() {
        let orders = MemberOrders::default();
        assert_eq!(orders.order(7), MayOvertake);
        assert!(orders.claim(7));
        assert!(!orders.claim(7));
        assert_eq!(orders.order(7), MayOvertake, "unknown while checking");
        orders.decide(7, InOrder);
        assert_eq!(orders.order(7), InOrder);
        assert!(!orders.claim(7));
        assert!(orders.claim(8));
    }
}
