//! `pods/log` proxied to the pod's kubelet: its node's InternalIP and
//! `daemonEndpoints.kubeletEndpoint.Port`, over HTTPS with the apiserver's kubelet-client
//! certificate (issued by the cluster CA). The kubelet's serving certificate is not
//! verified, as Kubernetes does without `--kubelet-certificate-authority`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use super::{stream_response, Req};
use crate::error::{ApiError, Result, Subject};
use crate::pki::Pki;
use crate::{meta, Api};

/// How long connecting to a kubelet may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts any kubelet serving certificate (kubelets serve self-signed ones); the kubelet
/// authenticates the apiserver, not the other way round.
#[derive(Debug)]
struct AnyKubelet(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyKubelet {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A verifier that accepts any server certificate: for kubelets, and for a joiner's first
/// `GET /cacerts`, whose answer the join token's hash then checks.
pub(crate) fn any_certificate() -> Arc<dyn ServerCertVerifier> {
    Arc::new(AnyKubelet(Arc::new(
        rustls::crypto::ring::default_provider(),
    )))
}

/// The TLS client config the apiserver calls kubelets with.
pub fn client_config(pki: &Pki) -> Result<Arc<rustls::ClientConfig>> {
    let bad = |what: &str| ApiError::internal(format!("kubelet client TLS: {what}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The client certificate follows its files (rotation, renewal near expiry).
    let cert = keelson_store::tls::ReloadingCert::load(
        &pki.dir.join("apiserver-kubelet-client.crt"),
        &pki.dir.join("apiserver-kubelet-client.key"),
    )
    .map_err(|e| bad(&e.to_string()))?;
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyKubelet(provider)))
        .with_client_cert_resolver(cert);
    Ok(Arc::new(cfg))
}

/// The container a `pods/log` request means: the `container` parameter, or the pod's only
/// container.
fn container_of(pod: &Value, req: &Req) -> Result<String> {
    let name = meta::name(pod).unwrap_or("");
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let app = names("containers");
    let init = names("initContainers");
    match req.q("container").filter(|c| !c.is_empty()) {
        Some(c) if app.iter().chain(init.iter()).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if app.len() == 1 => Ok(app[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                app.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// The query the kubelet gets: the log options, checked.
fn log_query(req: &Req) -> Result<String> {
    let mut q = Vec::new();
    for flag in ["follow", "previous", "timestamps"] {
        if req.q_bool(flag)? {
            q.push(format!("{flag}=true"));
        }
    }
    for int in ["sinceSeconds", "tailLines", "limitBytes"] {
        if let Some(v) = req.q(int).filter(|v| !v.is_empty()) {
            let n: i64 = v.parse().map_err(|_| {
                ApiError::bad_request(format!("{int}: invalid value {v:?}: must be an integer"))
            })?;
            if n < 0 || (n == 0 && int != "tailLines") {
                let must = if int == "tailLines" {
                    "non-negative"
                } else {
                    "greater than 0"
                };
                return Err(ApiError::bad_request(format!(
                    "{int}: invalid value {n}: must be {must}"
                )));
            }
            q.push(format!("{int}={n}"));
        }
    }
    if let Some(t) = req.q("sinceTime").filter(|v| !v.is_empty()) {
        if req.q("sinceSeconds").is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::bad_request(
                "at most one of sinceTime or sinceSeconds may be specified",
            ));
        }
        let parsed: jiff::Timestamp = t.parse().map_err(|_| {
            ApiError::bad_request(format!("sinceTime: invalid value {t:?}: must be RFC 3339"))
        })?;
        q.push(format!("sinceTime={parsed}"));
    }
    Ok(q.join("&"))
}

/// The address of the kubelet of `node`: InternalIP (else the first address) and the
/// kubelet endpoint's port.
async fn kubelet_of(api: &Api, node: &str) -> Result<(String, u16)> {
    let def = api
        .registry
        .get("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("no nodes resource"))?;
    let obj = api
        .storage
        .get(&def.key(None, node), None, false)
        .await?
        .map(|s| s.obj)
        .ok_or_else(|| ApiError::NotFound(Subject::new("", "nodes", node)))?;
    let addresses = obj["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ip = addresses
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addresses.first())
        .and_then(|a| a["address"].as_str())
        .map(str::to_string);
    let port = obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0);
    match (ip, port) {
        (Some(ip), Some(port)) => Ok((ip, port)),
        _ => Err(ApiError::Unavailable(format!(
            "the kubelet of node {node} has no endpoint (node status has no address or daemonEndpoints.kubeletEndpoint.Port)"
        ))),
    }
}

/// An HTTP/1.1 connection over TLS to `host:port` (`name` is what the certificate is checked
/// against), its driver spawned with upgrades enabled; each step bounded by `timeout`. The
/// error says which step failed.
pub(crate) async fn connect_http1<B>(
    tls: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> std::result::Result<hyper::client::conn::http1::SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let stream = tokio::time::timeout(
        timeout,
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_string())?
    .map_err(|e| format!("TLS: {e}"))?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "client connection");
        }
    });
    Ok(sender)
}

/// Sends `req` to the kubelet at `ip:port` (a connection of its own, which may be upgraded).
async fn send(
    tls: &Arc<rustls::ClientConfig>,
    ip: &str,
    port: u16,
    req: hyper::Request<http_body_util::Empty<bytes::Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>> {
    let unavailable = |what: String| ApiError::Unavailable(format!("kubelet {ip}:{port}: {what}"));
    let name = ServerName::try_from(ip.to_string())
        .map_err(|e| unavailable(format!("server name: {e}")))?;
    let mut sender = connect_http1(Arc::clone(tls), name, ip, port, CONNECT_TIMEOUT)
        .await
        .map_err(unavailable)?;
    tokio::time::timeout(CONNECT_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| unavailable("no response".into()))?
        .map_err(|e| unavailable(format!("request: {e}")))
}

/// `GET pods/{name}/log`.
pub async fn log(api: &Api, pod: &Value, req: &Req) -> Result<Response> {
    let name = meta::name(pod).unwrap_or("");
    let ns = meta::namespace(pod).unwrap_or("default");
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let container = container_of(pod, req)?;
    let query = log_query(req)?;
    let Some(tls) = api.config.kubelet_client.as_ref() else {
        return Err(ApiError::Unavailable(
            "this apiserver has no kubelet client certificate".into(),
        ));
    };
    let (ip, port) = kubelet_of(api, node).await?;
    let path = format!("/containerLogs/{ns}/{name}/{container}?{query}");
    let request = hyper::Request::get(path)
        .header("host", format!("{ip}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(format!("kubelet request: {e}")))?;
    let resp = send(tls, &ip, port, request).await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let msg = String::from_utf8_lossy(&body).trim().to_string();
        return Err(match status.as_u16() {
            400 | 404 => ApiError::bad_request(msg),
            _ => ApiError::Unavailable(format!("kubelet {ip}:{port}: {status}: {msg}")),
        });
    }
    let body = http_body_util::BodyStream::new(resp.into_body()).filter_map(|frame| async move {
        match frame {
            Ok(f) => f.into_data().ok().map(Ok),
            Err(e) => Some(Err(std::io::Error::other(e.to_string()))),
        }
    });
    let mut r = stream_response("text/plain", body);
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}

/// The headers of a WebSocket handshake passed between client and kubelet.
const HANDSHAKE: [&str; 5] = [
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "sec-websocket-extensions",
];

/// The stream protocol a SPDY upgrade negotiates (`portforward.k8s.io`).
const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// `pods/{name}/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`): the
/// handshake is passed to the pod's kubelet, and once both sides have switched protocols
/// the two connections are spliced together.
pub async fn exec(api: &Api, pod: &Value, req: &Req) -> Result<Response> {
    upgraded(api, pod, req, "exec").await
}

/// `pods/{name}/attach`: like exec, to the container's main process.
pub async fn attach(api: &Api, pod: &Value, req: &Req) -> Result<Response> {
    upgraded(api, pod, req, "attach").await
}

/// `pods/{name}/portforward`: kubectl's SPDY/3.1 upgrade, or SPDY in a WebSocket
/// (`SPDY/3.1+portforward.k8s.io`), passed to the pod's kubelet and spliced like exec.
pub async fn port_forward(api: &Api, pod: &Value, req: &Req) -> Result<Response> {
    upgraded(api, pod, req, "portforward").await
}

async fn upgraded(api: &Api, pod: &Value, req: &Req, kind: &'static str) -> Result<Response> {
    let name = meta::name(pod).unwrap_or("");
    let ns = meta::namespace(pod).unwrap_or("default");
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let upgrade = req.header("upgrade").unwrap_or("").to_string();
    let websocket = upgrade.eq_ignore_ascii_case("websocket");
    let spdy = kind == "portforward" && upgrade.eq_ignore_ascii_case("SPDY/3.1");
    if !websocket && !spdy {
        return Err(ApiError::bad_request(if kind == "portforward" {
            "Upgrade request required: portforward is served over SPDY/3.1 or WebSocket (SPDY/3.1+portforward.k8s.io)".to_string()
        } else {
            format!("Upgrade request required: {kind} is served over WebSocket (v5.channel.k8s.io); SPDY is not supported")
        }));
    }
    let path = if kind == "portforward" {
        format!("/portForward/{ns}/{name}")
    } else {
        let container = container_of(pod, req)?;
        format!("/{kind}/{ns}/{name}/{container}?{}", req.raw_query)
    };
    let Some(tls) = api.config.kubelet_client.as_ref() else {
        return Err(ApiError::Unavailable(
            "this apiserver has no kubelet client certificate".into(),
        ));
    };
    let client_upgrade = req
        .upgrade
        .lock()
        .take()
        .ok_or_else(|| ApiError::bad_request("this connection cannot be upgraded (HTTP/2?)"))?;
    let (ip, port) = kubelet_of(api, node).await?;
    let mut request = hyper::Request::get(path)
        .header("host", format!("{ip}:{port}"))
        .header("connection", "Upgrade")
        .header("upgrade", upgrade.as_str());
    for h in HANDSHAKE {
        if let Some(v) = req.headers.get(h) {
            request = request.header(h, v.clone());
        }
    }
    for v in req.headers.get_all(STREAM_PROTOCOL) {
        request = request.header(STREAM_PROTOCOL, v.clone());
    }
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(format!("kubelet request: {e}")))?;
    let mut resp = send(tls, &ip, port, request).await?;
    let status = resp.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let msg = String::from_utf8_lossy(&body).trim().to_string();
        return Err(match status.as_u16() {
            400 | 404 => ApiError::bad_request(msg),
            _ => ApiError::Unavailable(format!("kubelet {ip}:{port}: {status}: {msg}")),
        });
    }
    let mut out = Response::new(axum::body::Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for h in ["upgrade", "connection", STREAM_PROTOCOL]
        .into_iter()
        .chain(HANDSHAKE)
    {
        if let Some(v) = resp.headers().get(h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    let kubelet_upgrade = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (client, kubelet) = match tokio::join!(client_upgrade, kubelet_upgrade) {
            (Ok(c), Ok(k)) => (c, k),
            (c, k) => {
                tracing::debug!(client = ?c.err(), kubelet = ?k.err(), kind, "upgrade failed");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut kubelet = hyper_util::rt::TokioIo::new(kubelet);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
            tracing::debug!(error = %e, kind, "upgraded stream");
        }
    });
    Ok(out)
}

/// `GET path` on the kubelet of `node`, its JSON answer (the Summary API).
pub async fn get_json(api: &Api, node: &str, path: &str) -> Result<Value> {
    let Some(tls) = api.config.kubelet_client.as_ref() else {
        return Err(ApiError::Unavailable(
            "this apiserver has no kubelet client certificate".into(),
        ));
    };
    let (ip, port) = kubelet_of(api, node).await?;
    let request = hyper::Request::get(path)
        .header("host", format!("{ip}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(format!("kubelet request: {e}")))?;
    let resp = send(tls, &ip, port, request).await?;
    let status = resp.status();
    let body = tokio::time::timeout(CONNECT_TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| ApiError::Unavailable(format!("kubelet {ip}:{port}: {path} timed out")))?
        .map_err(|e| ApiError::Unavailable(format!("kubelet {ip}:{port}: {e}")))?
        .to_bytes();
    if !status.is_success() {
        return Err(ApiError::Unavailable(format!(
            "kubelet {ip}:{port}: {path}: {status}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::Unavailable(format!("kubelet {ip}:{port}: {path}: {e}")))
}
