//! The one error type of the bench layer.

use std::path::PathBuf;

/// Everything that can make `keelson bench` fail (as opposed to individual
/// requests failing, which are counted in the report).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    #[error("invalid endpoint {endpoint:?}: {source}")]
    Endpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot connect to {endpoint}: timed out")]
    ConnectTimeout { endpoint: String },
    #[error("{context}: {status}")]
    Rpc {
        context: String,
        #[source]
        status: tonic::Status,
    },
    #[error("no leader found among {0}")]
    NoLeader(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} did not happen within {secs:.1} s{detail}")]
    Timeout {
        what: String,
        secs: f64,
        detail: String,
    },
    #[error("{member} exited unexpectedly ({status}); last log lines:\n{log}")]
    MemberExited {
        member: String,
        status: String,
        log: String,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn rpc(context: impl Into<String>, status: tonic::Status) -> Self {
        BenchError::Rpc {
            context: context.into(),
            status,
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
