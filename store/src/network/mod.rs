//! Member-to-member traffic.
//!
//! Everything members say to each other is a [`PeerRequest`]: the three raft RPCs and the
//! leader-only operations a follower forwards ([`Forward`]). It travels through a
//! [`PeerTransport`]: gRPC between processes ([`grpc::GrpcTransport`]), or an in-process
//! [`router::Router`] whose fault switches let tests cut, drop and delay traffic between chosen
//! members. openraft's network traits are implemented once, on top of the transport.

pub mod grpc;
pub mod router;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::error::EtcdError;
use crate::types::{Member, NodeId, Request, Response, TypeConfig};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A change of the cluster's membership, run on the leader.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum MembershipOp {
    /// Add a member (as a learner, or as a voter right away).
    Add {
        id: NodeId,
        member: Member,
        learner: bool,
    },
    Remove {
        id: NodeId,
    },
    /// New peer URLs (etcd's MemberUpdate), or a member publishing its name and client URLs.
    Update {
        id: NodeId,
        member: Member,
    },
    Promote {
        id: NodeId,
    },
}

/// Operations only the leader can do, forwarded by followers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Forward {
    /// A mutating request to propose.
    Write(Request),
    /// Confirm leadership and return the log index a linearizable read must wait for.
    ReadIndex,
    LeaseKeepAlive {
        id: i64,
    },
    LeaseTimeToLive {
        id: i64,
    },
    Membership(MembershipOp),
    /// A member joining with `--initial-cluster-state existing` asks who it is.
    Join {
        peer_urls: Vec<String>,
    },
    /// Leadership transfer: the target campaigns until it leads (or `millis` pass).
    TimeoutNow {
        millis: u64,
    },
    /// Leadership transfer: other voters hold off their own elections for `millis`.
    PauseElection {
        millis: u64,
    },
}

/// What a forwarded operation returned.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ForwardReply {
    /// The state machine's answer and the log index of the entry that carried the request.
    Write(Response, u64),
    ReadIndex(Option<u64>),
    KeepAlive {
        ttl: i64,
    },
    TimeToLive {
        ttl: i64,
        granted_ttl: i64,
        keys: Vec<Vec<u8>>,
    },
    /// The membership change is committed in the entry at this log index.
    Membership {
        index: u64,
    },
    Joined {
        cluster_id: u64,
        member_id: NodeId,
    },
    Done,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Forward(Forward),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerReply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Forward(Result<ForwardReply, EtcdError>),
}

/// Where a peer call goes: a known member, or (while joining) just URLs.
#[derive(Clone, Debug)]
pub struct Target {
    pub id: Option<NodeId>,
    pub urls: Vec<String>,
}

impl Target {
    pub fn member(id: NodeId, m: &Member) -> Self {
        Target {
            id: Some(id),
            urls: m.peer_urls.clone(),
        }
    }
}

/// Why a peer call failed before it got an answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    /// Could not reach the member (refused, partitioned, unknown address).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The call went out but no answer came in time: it may or may not have taken effect.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Other(String),
}

/// Carries peer requests from one member to others.
pub trait PeerTransport: Send + Sync + 'static {
    fn call(
        &self,
        target: Target,
        req: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<PeerReply, NetError>>;

    /// Tells the transport who is sending, once the member knows (a joining member learns its
    /// id from the cluster).
    fn set_identity(&self, _cluster_id: u64, _member_id: NodeId) {}
}

/// The receiving side: a member answering peer requests.
pub trait PeerService: Send + Sync + 'static {
    fn handle(&self, from: NodeId, req: PeerRequest) -> BoxFuture<'static, PeerReply>;
}

/// openraft's network factory over a [`PeerTransport`].
#[derive(Clone)]
pub struct Network {
    transport: Arc<dyn PeerTransport>,
}

impl Network {
    pub fn new(transport: Arc<dyn PeerTransport>) -> Self {
        Network { transport }
    }
}

pub struct Connection {
    transport: Arc<dyn PeerTransport>,
    target: NodeId,
    member: Member,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Connection {
        Connection {
            transport: self.transport.clone(),
            target,
            member: node.clone(),
        }
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, Member, RaftError<NodeId, E>>;

impl Connection {
    async fn send(&self, req: PeerRequest, opt: &RPCOption) -> Result<PeerReply, NetError> {
        self.transport
            .call(
                Target::member(self.target, &self.member),
                req,
                opt.hard_ttl(),
            )
            .await
    }

    fn net_err<E: std::error::Error>(&self, e: NetError) -> RPCError<NodeId, Member, E> {
        match e {
            NetError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
            _ => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, Member, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.member.clone(),
            e,
        ))
    }
}

fn unexpected(reply: &PeerReply) -> NetError {
    NetError::Other(format!("unexpected peer reply: {reply:?}"))
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        match self.send(PeerRequest::AppendEntries(rpc), &option).await {
            Ok(PeerReply::AppendEntries(r)) => r.map_err(|e| self.remote(e)),
            Ok(other) => Err(self.net_err(unexpected(&other))),
            Err(e) => Err(self.net_err(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self.send(PeerRequest::InstallSnapshot(rpc), &option).await {
            Ok(PeerReply::InstallSnapshot(r)) => r.map_err(|e| self.remote(e)),
            Ok(other) => Err(self.net_err(unexpected(&other))),
            Err(e) => Err(self.net_err(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self.send(PeerRequest::Vote(rpc), &option).await {
            Ok(PeerReply::Vote(r)) => r.map_err(|e| self.remote(e)),
            Ok(other) => Err(self.net_err(unexpected(&other))),
            Err(e) => Err(self.net_err(e)),
        }
    }
}

/// Encodes a peer message for the wire.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, NetError> {
    bincode::serialize(v).map_err(|e| NetError::Other(format!("encoding peer message: {e}")))
}

/// Decodes a peer message from the wire. The format is `bincode::serialize`'s; the limit
/// bounds what any length prefix may claim by the message's own size (bincode's slice reader
/// checks byte strings already; the limit covers every other sequence too).
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, NetError> {
    use bincode::Options as _;
    bincode::options()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(b.len() as u64)
        .deserialize(b)
        .map_err(|e| NetError::Other(format!("decoding peer message: {e}")))
}
