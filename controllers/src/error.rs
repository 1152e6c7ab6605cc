//! The controllers' one error type.

/// What a controller or the scheduler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed.
    #[error("apiserver request failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object the controller works on is not what it expects.
    #[error("invalid object {object}: {reason}")]
    Invalid { object: String, reason: String },
    /// Leadership was lost while acting.
    #[error("lost the leader lease")]
    LostLease,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `e` is an API error status with this HTTP code.
pub fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
