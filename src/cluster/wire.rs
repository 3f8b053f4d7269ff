//! What crosses the wire between nodes, in one place so that a change to
//! the protocol is one diff: the one remotable message type ([`PeerMsg`])
//! and the JSON bodies it carries, with their conversions from and to the
//! actors crate's types. Session actors' own messages never leave a node.

use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};
use sessiond_actors::{Fetched, LinkError, Served, Status, User, UserId, UserState};

/// Messages between nodes. The only cluster (remotable) message type: the
/// session actors' messages stay local.
#[derive(RactorClusterMessage)]
pub(crate) enum PeerMsg {
    /// Answers a JSON [`PingReply`]: this node's name and the cluster
    /// addresses it knows, so peers find each other through any one node.
    #[rpc]
    Ping(String, RpcReplyPort<String>),
    /// A JSON [`ResolveRequest`]; answers a JSON [`ResolveReply`].
    #[rpc]
    Resolve(String, RpcReplyPort<String>),
    /// A JSON [`InvalidateRequest`]; answers once done.
    #[rpc]
    Invalidate(String, RpcReplyPort<String>),
    /// Drop every cached record (sent by the named peer).
    FlushAll(String),
    /// A JSON [`LeaveNotice`]: the sender is shutting down; answered once
    /// this node has dropped it from its view.
    #[rpc]
    Leave(String, RpcReplyPort<String>),
}

#[derive(Serialize, Deserialize)]
pub(crate) struct PingReply {
    pub name: String,
    pub addrs: Vec<String>,
    /// The answering process (a restart under the same name is another);
    /// 0 from an older node.
    #[serde(default)]
    pub instance: u64,
    /// The answering node is leaving: keep it out of the view.
    #[serde(default)]
    pub leaving: bool,
}

/// "I am leaving": sent by a node that is shutting down to every peer.
#[derive(Serialize, Deserialize)]
pub(crate) struct LeaveNotice {
    pub name: String,
    pub instance: u64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ResolveRequest {
    #[serde(with = "crate::ids")]
    pub user_id: UserId,
    pub force: bool,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireUser {
    #[serde(with = "crate::ids")]
    pub id: UserId,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub version: i64,
    pub tokens_valid_after_ms: i64,
    /// Absent from an older node's answer: 0, as before epochs existed.
    #[serde(default)]
    pub session_epoch: i64,
    pub revoked_sids: Vec<String>,
    /// The record changes by itself this long after the owner read it
    /// (`UserState::changes_in_ms`); absent when it does not, and from an
    /// older node's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_in_ms: Option<u32>,
    /// What the owner's store read beside the record (Better Auth's rows);
    /// absent when none, and from an older node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<String>,
}

/// `lease_ms`: the answering node's lease length (its `--lease`), so the
/// asking node holds off a near copy for as long as the owner's lease may
/// still hide an invalidation it has not applied; absent from an older
/// node's answer.
#[derive(Serialize, Deserialize)]
pub(crate) enum ResolveReply {
    Found {
        user: WireUser,
        hit: bool,
        age_ms: u64,
        #[serde(default)]
        lease_ms: Option<u64>,
    },
    Missing {
        hit: bool,
        age_ms: u64,
        #[serde(default)]
        lease_ms: Option<u64>,
    },
    Failed(String),
}

#[derive(Serialize, Deserialize)]
pub(crate) struct InvalidateRequest {
    #[serde(with = "crate::ids")]
    pub user_id: UserId,
    pub min_version: Option<i64>,
}

/// The answer to an [`InvalidateRequest`]: the invalidation is applied,
/// and this is the answering node's freshness lease, if it holds one.
#[derive(Serialize, Deserialize)]
pub(crate) struct InvalidateReply {
    pub lease: Option<i64>,
}

impl ResolveReply {
    pub(crate) fn from_served(s: &Served) -> ResolveReply {
        let age_ms = s.age.as_millis() as u64;
        let lease_ms = s
            .owner_lease
            .map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
        match &s.fetched {
            Fetched::Missing => ResolveReply::Missing {
                hit: s.hit,
                age_ms,
                lease_ms,
            },
            Fetched::Found(u) => ResolveReply::Found {
                user: WireUser {
                    id: u.user.id.clone(),
                    email: u.user.email.clone(),
                    role: u.user.role.to_string(),
                    active: u.user.status == Status::Active,
                    version: u.version,
                    tokens_valid_after_ms: u.tokens_valid_after_ms,
                    session_epoch: u.session_epoch,
                    revoked_sids: u.revoked_sids.clone(),
                    changes_in_ms: u.changes_in_ms,
                    attached: u.attached.as_deref().map(str::to_owned),
                },
                hit: s.hit,
                age_ms,
                lease_ms,
            },
        }
    }

    /// The answer as served, if it is about `asked`: a peer that answers
    /// for another user (a bug, a mix-up of replies, a hostile node) is
    /// treated as a failed forward, and the caller serves locally.
    pub(crate) fn into_served(self, asked: &UserId) -> Result<Served, LinkError> {
        match self {
            ResolveReply::Found { user, .. } if user.id != *asked => Err(LinkError::Remote(
                format!("answer for user {} to a lookup of user {asked}", user.id),
            )),
            ResolveReply::Missing {
                hit,
                age_ms,
                lease_ms,
            } => Ok(Served {
                fetched: Fetched::Missing,
                hit,
                age: Duration::from_millis(age_ms),
                node: None,
                near: false,
                owner_lease: lease_ms.map(Duration::from_millis),
            }),
            ResolveReply::Found {
                user,
                hit,
                age_ms,
                lease_ms,
            } => Ok(Served {
                fetched: Fetched::Found(Arc::new(UserState {
                    user: User {
                        id: user.id,
                        email: user.email,
                        role: user.role.into(),
                        status: if user.active {
                            Status::Active
                        } else {
                            Status::Deactivated
                        },
                    },
                    version: user.version,
                    tokens_valid_after_ms: user.tokens_valid_after_ms,
                    session_epoch: user.session_epoch,
                    revoked_sids: user.revoked_sids,
                    changes_in_ms: user.changes_in_ms,
                    attached: user.attached.map(Arc::from),
                })),
                hit,
                age: Duration::from_millis(age_ms),
                node: None,
                near: false,
                owner_lease: lease_ms.map(Duration::from_millis),
            }),
            ResolveReply::Failed(e) => Err(LinkError::Remote(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(id: i64) -> ResolveReply {
        ResolveReply::Found {
            user: WireUser {
                id: UserId::from(id),
                email: format!("u{id}@example.test"),
                role: "user".into(),
                active: true,
                version: 1,
                tokens_valid_after_ms: 0,
                session_epoch: 0,
                revoked_sids: Vec::new(),
                changes_in_ms: None,
                attached: None,
            },
            hit: true,
            age_ms: 0,
            lease_ms: Some(8000),
        }
    }

    #[test]
    fn the_owners_lease_length_crosses_the_wire() {
        let served = found(7).into_served(&UserId::from(7)).expect("served");
        assert_eq!(served.owner_lease, Some(Duration::from_millis(8000)));
        let text = serde_json::to_string(&ResolveReply::from_served(&served)).expect("json");
        assert!(text.contains("\"lease_ms\":8000"), "{text}");
        // An older node's answer has no lease length: not told.
        let old = r#"{"Missing":{"hit":false,"age_ms":3}}"#;
        let old: ResolveReply = serde_json::from_str(old).expect("parses");
        assert_eq!(
            old.into_served(&UserId::from(7))
                .expect("served")
                .owner_lease,
            None
        );
    }

    #[test]
    fn an_answer_for_the_user_asked_about_is_served() {
        let served = found(7).into_served(&UserId::from(7)).expect("served");
        match served.fetched {
            Fetched::Found(u) => assert_eq!(u.user.id, 7),
            Fetched::Missing => panic!("found expected"),
        }
    }

    #[test]
    fn an_answer_for_another_user_is_a_failed_forward() {
        match found(8).into_served(&UserId::from(7)) {
            Err(LinkError::Remote(m)) => assert!(m.contains('8') && m.contains('7'), "{m}"),
            Err(e) => panic!("a remote failure expected, got {e:?}"),
            Ok(_) => panic!("an answer for user 8 was accepted for user 7"),
        }
    }

    /// Text ids cross the wire as strings; a request naming an id longer
    /// than any valid id is refused when read, not looked up.
    #[test]
    fn text_ids_cross_the_wire_and_are_bounded() {
        let id = UserId::parse("Zx9kQ2mN7pL4vR8sT1wY3uE6iO0aB5cD").unwrap_or(UserId::from(0));
        let text = serde_json::to_string(&ResolveRequest {
            user_id: id.clone(),
            force: false,
        })
        .unwrap_or_default();
        assert_eq!(
            text,
            r#"{"user_id":"Zx9kQ2mN7pL4vR8sT1wY3uE6iO0aB5cD","force":false}"#
        );
        let back: Option<ResolveRequest> = serde_json::from_str(&text).ok();
        assert_eq!(back.map(|r| r.user_id), Some(id));
        let long = format!(r#"{{"user_id":"{}","force":false}}"#, "a".repeat(129));
        assert!(serde_json::from_str::<ResolveRequest>(&long).is_err());
        let old = serde_json::from_str::<InvalidateRequest>(r#"{"user_id":12,"min_version":3}"#);
        assert_eq!(old.ok().map(|r| r.user_id), Some(UserId::from(12)));
    }
}
