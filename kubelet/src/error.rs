//! The kubelet's one error type.

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("invalid {flag}: {message}")]
    InvalidFlag { flag: &'static str, message: String },
    #[error("container runtime: {0}")]
    Runtime(String),
}

impl KubeletError {
    pub fn api(what: impl Into<String>, source: kube::Error) -> KubeletError {
        KubeletError::Api {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = KubeletError> = std::result::Result<T, E>;
