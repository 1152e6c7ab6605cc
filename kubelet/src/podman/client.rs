//! A minimal client of Podman's libpod REST API over its unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::error::{KubeletError, Result};

/// The API version prefix of every path (Podman 4.0 and later).
const API: &str = "/v4.0.0/libpod";
/// The bound of an ordinary request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The bound of an image pull.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(300);
/// The most of an error body quoted in an error message.
const ERROR_QUOTE: usize = 500;

/// A libpod API client; cheap to clone (one connection per request).
#[derive(Clone, Debug)]
pub struct PodmanClient {
    socket: PathBuf,
}

/// A finished response: its status and whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            KubeletError::Runtime(format!(
                "{what}: unexpected answer ({e}): {}",
                quote(&self.body)
            ))
        })
    }
}

/// The first part of a body, as text, for error messages.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(ERROR_QUOTE) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Podman's error text out of a `{"cause","message","response"}` or `{"error"}` body.
pub fn error_text(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "error", "cause"] {
            if let Some(s) = v.get(key).and_then(|m| m.as_str()) {
                if !s.is_empty() {
                    return s.to_string();
                }
            }
        }
    }
    quote(body)
}

/// `s` percent-encoded for a query string or a path segment.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `filters` query value selecting by every one of `labels` (`key=value`).
pub fn label_filter(labels: &[String]) -> String {
    encode(&serde_json::json!({ "label": labels }).to_string())
}

impl PodmanClient {
    pub fn new(socket: impl Into<PathBuf>) -> PodmanClient {
        PodmanClient {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request and returns its response head and streaming body, unbounded in
    /// time: callers bound it.
    pub async fn send(
        &self,
        method: &Method,
        path: &str,
        body: Option<(Bytes, &str)>,
    ) -> Result<hyper::Response<Incoming>> {
        self.send_inner(method, path, body, false).await
    }

    /// Like `send`, asking Podman to hijack the connection (`Upgrade: tcp`): a 101 answer's
    /// connection then carries the stream both ways (`hyper::upgrade::on`).
    pub async fn send_upgrade(
        &self,
        method: &Method,
        path: &str,
        body: Option<(Bytes, &str)>,
    ) -> Result<hyper::Response<Incoming>> {
        self.send_inner(method, path, body, true).await
    }

    async fn send_inner(
        &self,
        method: &Method,
        path: &str,
        body: Option<(Bytes, &str)>,
        upgrade: bool,
    ) -> Result<hyper::Response<Incoming>> {
        let endpoint = format!("{method} {path}");
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            KubeletError::Runtime(format!(
                "{endpoint}: connecting to {}: {e}",
                self.socket.display()
            ))
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| KubeletError::Runtime(format!("{endpoint}: handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "podman connection");
            }
        });
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{API}{path}"))
            .header(http::header::HOST, "podman");
        if upgrade {
            req = req
                .header(http::header::CONNECTION, "Upgrade")
                .header(http::header::UPGRADE, "tcp");
        }
        let body = match body {
            Some((bytes, content_type)) => {
                req = req.header(http::header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(body))
            .map_err(|e| KubeletError::Runtime(format!("{endpoint}: building request: {e}")))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| KubeletError::Runtime(format!("{endpoint}: {e}")))
    }

    /// Sends one request and reads its whole body, all within `timeout`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &str)>,
        timeout: Duration,
    ) -> Result<Reply> {
        let exchange = async {
            let resp = self.send(&method, path, body).await?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| KubeletError::Runtime(format!("{method} {path}: reading body: {e}")))?
                .to_bytes();
            Ok(Reply { status, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(reply) => reply,
            Err(_) => Err(KubeletError::Runtime(format!(
                "{method} {path}: no answer from podman within {timeout:?}"
            ))),
        }
    }

    /// Like `request`, with the body streamed to `sink` as it comes.
    pub async fn request_streaming(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &str)>,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<StatusCode> {
        let resp = self.send(&method, path, body).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut error_body = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                KubeletError::Runtime(format!("{method} {path}: reading body: {e}"))
            })?;
            if let Ok(data) = frame.into_data() {
                if status.is_success() {
                    sink(&data);
                } else if error_body.len() < 64 * 1024 {
                    error_body.extend_from_slice(&data);
                }
            }
        }
        if !status.is_success() {
            return Err(status_error(&method, path, status, &error_body));
        }
        Ok(status)
    }

    /// A request that must succeed (2xx) with a JSON body, within `DEFAULT_TIMEOUT`.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let reply = self
            .call(method.clone(), path, body, DEFAULT_TIMEOUT)
            .await?;
        ok(&method, path, &reply)?;
        reply.json(&format!("{method} {path}"))
    }

    /// A request with an optional JSON body; the status is the caller's to judge.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<Reply> {
        let body = body.map(|v| (Bytes::from(v.to_string()), "application/json"));
        self.request(method, path, body, timeout).await
    }

    /// Whether the service answers `GET /_ping`.
    pub async fn ping(&self, timeout: Duration) -> Result<()> {
        let reply = self.request(Method::GET, "/_ping", None, timeout).await?;
        ok(&Method::GET, "/_ping", &reply)
    }

    /// Podman's version (`4.3.1`).
    pub async fn version(&self) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Version {
            #[serde(rename = "Version")]
            version: String,
        }
        let v: Version = self.json(Method::GET, "/version", None).await?;
        Ok(v.version)
    }

    /// Imports a root file system tarball as the image `reference`; returns its id.
    pub async fn import_image(&self, tar: Vec<u8>, reference: &str) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Imported {
            #[serde(rename = "Id")]
            id: String,
        }
        let path = format!("/images/import?reference={}", encode(reference));
        let reply = self
            .request(
                Method::POST,
                &path,
                Some((Bytes::from(tar), "application/x-tar")),
                PULL_TIMEOUT,
            )
            .await?;
        ok(&Method::POST, &path, &reply)?;
        let imported: Imported = reply.json(&format!("POST {path}"))?;
        Ok(imported.id)
    }
}

/// The error of a response with a failing status.
pub fn status_error(method: &Method, path: &str, status: StatusCode, body: &[u8]) -> KubeletError {
    KubeletError::Runtime(format!(
        "{method} {path}: {}: {}",
        status.as_u16(),
        error_text(body)
    ))
}

/// `Ok` for a 2xx reply, else its error.
pub fn ok(method: &Method, path: &str, reply: &Reply) -> Result<()> {
    if reply.status.is_success() {
        Ok(())
    } else {
        Err(status_error(method, path, reply.status, &reply.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_references_and_filters() {
        assert_eq!(encode("localhost/busybox:1"), "localhost%2Fbusybox%3A1");
        assert_eq!(
            label_filter(&["a.b=c".to_string()]),
            "%7B%22label%22%3A%5B%22a.b%3Dc%22%5D%7D"
        );
    }

    #[test]
    fn error_text_prefers_podmans_message() {
        let body = br#"{"cause":"no such pod","message":"no pod with name or ID x found: no such pod","response":404}"#;
        assert_eq!(
            error_text(body),
            "no pod with name or ID x found: no such pod"
        );
        assert_eq!(error_text(br#"{"error":"pull failed"}"#), "pull failed");
        assert_eq!(error_text(b"plain"), "plain");
    }
}
