//! Errors of the store layer.
//!
//! [`EtcdError`] is the protocol-level error: exactly the conditions etcd reports, with etcd's
//! texts and gRPC codes, so etcdctl and etcd client libraries recognise them. It is a plain value
//! (serializable) because it travels through the raft log's responses and the peer RPC.
//! [`StoreError`] is this layer's error type: an `EtcdError` or an infrastructure failure.

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

/// An error etcd clients know, with etcd's exact message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EtcdError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: member ID already exist")]
    MemberExist,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    #[error("etcdserver: watcher ID already in use")]
    WatcherIdInUse,
    #[error("etcdserver: {0}")]
    InvalidArgument(String),
    #[error("etcdserver: {0}")]
    Internal(String),
    // Authentication (appended: the variants travel between members by index).
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
}

impl EtcdError {
    /// The gRPC code etcd uses for this error.
    pub fn code(&self) -> Code {
        use EtcdError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | InvalidSortOption | MemberBadUrls | RequestTooLarge | InvalidArgument(_)
            | UserEmpty | RoleEmpty | AuthFailed | InvalidAuthMgmt => Code::InvalidArgument,
            PermissionDenied => Code::PermissionDenied,
            InvalidAuthToken => Code::Unauthenticated,
            UserAlreadyExist | UserNotFound | RoleAlreadyExist | RoleNotFound | RoleNotGranted
            | PermissionNotGranted | AuthNotEnabled | RootUserNotExist | RootRoleNotExist => {
                Code::FailedPrecondition
            }
            Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            NoSpace => Code::ResourceExhausted,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            LeaseExist
            | MemberExist
            | PeerUrlExist
            | MemberNotLearner
            | LearnerNotReady
            | MemberNotEnoughStarted
            | NotLeader
            | BadLeaderTransferee
            | WatcherIdInUse => Code::FailedPrecondition,
            NoLeader
            | LeaderChanged
            | Timeout
            | LeaderTransferTimeout
            | Stopped
            | Unhealthy
            | NotSupportedForLearner => Code::Unavailable,
            Internal(_) => Code::Internal,
        }
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

/// The store layer's error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("storage: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("storage: corrupt record: {0}")]
    Corrupt(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("peer {target}: {message}")]
    Peer { target: u64, message: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    pub fn config(msg: impl Into<String>) -> Self {
        StoreError::Config(msg.into())
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        match e {
            StoreError::Etcd(e) => e.into(),
            StoreError::Peer { .. } | StoreError::Raft(_) => {
                tracing::debug!(error = %e, "request failed");
                Status::unavailable(e.to_string())
            }
            other => Status::internal(other.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
