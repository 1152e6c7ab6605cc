//! Errors of `keelson kv`, with etcdctl's exit codes.

use thiserror::Error;

/// etcdctl's exit codes (`etcdctl/ctlv3/command/error.go`).
pub mod exit {
    pub const ERROR: u8 = 1;
    pub const BAD_CONNECTION: u8 = 2;
    pub const INVALID_INPUT: u8 = 3;
    pub const BAD_FEATURE: u8 = 4;
    pub const INTERRUPTED: u8 = 5;
    pub const IO: u8 = 6;
    pub const BAD_ARGS: u8 = 128;
}

/// Everything a `keelson kv` command can fail with. `Display` is the text etcdctl prints
/// after `Error: `.
#[derive(Debug, Error)]
pub enum KvError {
    /// A general failure (etcdctl's `ExitError`).
    #[error("{0}")]
    Failed(String),
    /// The server answered with an error. etcd's own errors print as their message
    /// ("etcdserver: ..."), anything else in grpc-go's "rpc error: code = ... desc = ..." form,
    /// as etcdctl does.
    #[error("{}", grpc_text(.0))]
    Grpc(#[from] tonic::Status),
    /// Could not reach the endpoints within `--dial-timeout`.
    #[error("{0}")]
    BadConnection(String),
    /// Malformed input read from stdin or a file (e.g. a txn request).
    #[error("{0}")]
    InvalidInput(String),
    /// A flag value or feature that is not supported.
    #[error("{0}")]
    Unsupported(String),
    /// Reading or writing a local file failed.
    #[error("{0}")]
    Io(String),
    /// Wrong positional arguments.
    #[error("{0}")]
    BadArgs(String),
    /// Interrupted by a signal.
    #[error("{0}")]
    Interrupted(String),
}

impl KvError {
    pub fn exit_code(&self) -> u8 {
        match self {
            KvError::Failed(_) | KvError::Grpc(_) => exit::ERROR,
            KvError::BadConnection(_) => exit::BAD_CONNECTION,
            KvError::InvalidInput(_) => exit::INVALID_INPUT,
            KvError::Unsupported(_) => exit::BAD_FEATURE,
            KvError::Io(_) => exit::IO,
            KvError::BadArgs(_) => exit::BAD_ARGS,
            KvError::Interrupted(_) => exit::INTERRUPTED,
        }
    }
}

impl From<std::io::Error> for KvError {
    fn from(e: std::io::Error) -> Self {
        KvError::Io(e.to_string())
    }
}

/// What etcdctl prints for a gRPC error.
pub fn grpc_text(s: &tonic::Status) -> String {
    let msg = s.message();
    if msg.starts_with("etcdserver: ") || msg.starts_with("mvcc: ") {
        return msg.to_string();
    }
    format!("rpc error: code = {} desc = {}", go_code(s.code()), msg)
}

/// grpc-go's names of the status codes.
pub fn go_code(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}
