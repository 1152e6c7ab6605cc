//! The raft type configuration and the payloads that travel through the log.

use std::fmt;
use std::io::Cursor;

use keelson_proto::etcdserverpb as pb;
use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::EtcdError;

/// A member id. The same number is the raft node id and the etcd member ID.
pub type NodeId = u64;

/// What the cluster knows about a member. Learner/voter status lives in the raft membership
/// config, not here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Empty until the member has started and published its attributes ("unstarted").
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name, self.peer_urls.join(","))
    }
}

openraft::declare_raft_types!(
    /// keelson's raft types: our request enum in the log, its response out of the state machine.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Member,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type Vote = openraft::Vote<NodeId>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

/// A protobuf message carried inside a serde structure as its protobuf encoding, so the raft
/// log holds exactly the bytes an etcd client sent.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Pb<T>(pub T);

impl<T: Message> Serialize for Pb<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.encode_to_vec())
    }
}

impl<'de, T: Message + Default> Deserialize<'de> for Pb<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_compat::ByteBuf = Deserialize::deserialize(d)?;
        T::decode(bytes.0.as_slice())
            .map(Pb)
            .map_err(serde::de::Error::custom)
    }
}

mod serde_bytes_compat {
    //! Minimal owned byte buffer that deserializes from serde `bytes` (bincode and JSON alike).
    use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
    use std::fmt;

    pub struct ByteBuf(pub Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element::<u8>()? {
                        out.push(b);
                    }
                    Ok(ByteBuf(out))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }
}

/// Alarm kinds, numbered as etcd's `AlarmType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlarmKind {
    NoSpace,
    Corrupt,
}

impl AlarmKind {
    pub fn to_pb(self) -> i32 {
        match self {
            AlarmKind::NoSpace => pb::AlarmType::Nospace as i32,
            AlarmKind::Corrupt => pb::AlarmType::Corrupt as i32,
        }
    }
    pub fn from_pb(v: i32) -> Option<Self> {
        match pb::AlarmType::try_from(v).ok()? {
            pb::AlarmType::Nospace => Some(AlarmKind::NoSpace),
            pb::AlarmType::Corrupt => Some(AlarmKind::Corrupt),
            pb::AlarmType::None => None,
        }
    }
}

/// One entry of the replicated log. Every mutation of the store is one of these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Put(Pb<pb::PutRequest>),
    DeleteRange(Pb<pb::DeleteRangeRequest>),
    Txn(Pb<pb::TxnRequest>),
    Compact {
        revision: i64,
        physical: bool,
    },
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    /// Raise (`activate = true`) or clear an alarm for a member (member 0 = every member).
    Alarm {
        activate: bool,
        member: NodeId,
        kind: AlarmKind,
    },
    /// Several independent requests proposed as one log entry (one fsync for all of them);
    /// applied one after the other, each with its own revision, exactly as if proposed
    /// separately.
    Batch(Vec<Request>),
    /// A change to users, roles or whether authentication is on.
    Auth(crate::auth::AuthRequest),
}

impl Request {
    /// Requests that can grow the database; refused while a NOSPACE alarm is raised.
    pub fn may_grow(&self) -> bool {
        match self {
            Request::Put(_) | Request::LeaseGrant { .. } => true,
            Request::Txn(t) => quota_cost(&t.0) > 0,
            Request::Batch(reqs) => reqs.iter().any(Request::may_grow),
            _ => false,
        }
    }
}

/// Bytes etcd charges every put against the space quota on top of its key and value.
pub const QUOTA_KV_OVERHEAD: usize = 256;

/// etcd's `costTxn`: the larger of the two branches' put sizes. Only puts directly in a branch
/// count (etcd does not look into nested transactions), so a transaction that only deletes or
/// reads costs nothing and still runs when the NOSPACE alarm is raised — Kubernetes deletes
/// objects that way to free space.
pub fn quota_cost(t: &pb::TxnRequest) -> usize {
    let branch = |ops: &[pb::RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(pb::request_op::Request::RequestPut(p)) => {
                    QUOTA_KV_OVERHEAD + p.key.len() + p.value.len()
                }
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

/// What applying a [`Request`] produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Blank and membership entries.
    None,
    Put(Pb<pb::PutResponse>),
    DeleteRange(Pb<pb::DeleteRangeResponse>),
    Txn(Pb<pb::TxnResponse>),
    Compact {
        revision: i64,
    },
    LeaseGrant {
        id: i64,
        ttl: i64,
        revision: i64,
    },
    LeaseRevoke {
        revision: i64,
    },
    Alarm {
        alarms: Vec<(NodeId, AlarmKind)>,
        revision: i64,
    },
    Error(EtcdError),
    /// One response per request of a [`Request::Batch`], in order.
    Batch(Vec<Response>),
    /// An applied [`Request::Auth`]: the auth revision after it.
    Auth {
        auth_revision: u64,
        revision: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pb_roundtrips_through_bincode_and_json() {
        let req = Request::Put(Pb(pb::PutRequest {
            key: b"k".to_vec(),
            value: vec![0, 1, 2, 255],
            lease: 7,
            ..Default::default()
        }));
        let bin = bincode::serialize(&req).expect("encode");
        let back: Request = bincode::deserialize(&bin).expect("decode");
        assert_eq!(back, req);
        let json = serde_json::to_vec(&req).expect("encode json");
        let back: Request = serde_json::from_slice(&json).expect("decode json");
        assert_eq!(back, req);
    }
}
