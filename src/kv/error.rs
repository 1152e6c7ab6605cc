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
    /// The server answered with an error; etcdctl prints the status message.
    #[error("{}", .0.message())]
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
