//! The kubelet's HTTPS endpoint (the node's `daemonEndpoints.kubeletEndpoint`), which the
//! apiserver proxies `pods/log` to. It serves a self-signed certificate (what a kubelet
//! does without `--tls-cert-file`) and admits only clients whose certificate the cluster CA
//! issued: the apiserver's.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::{KubeletError, Result};
use crate::runtime::{LogOptions, PodInfo, Runtime};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg.into()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// TLS for the endpoint: a self-signed certificate for `names`, clients verified against
/// `ca` (DER certificates of the cluster CA).
pub fn tls_config(ca: &[Vec<u8>], names: &[String]) -> Result<rustls::ServerConfig> {
    let bad = |what: &str| KubeletError::Runtime(format!("kubelet TLS: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    for der in ca {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| bad(&format!("the cluster CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad(
            "no cluster CA to verify the apiserver's client certificate",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| bad(&format!("client verifier: {e}")))?;
    let key = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| bad(&format!("the serving certificate: {e}")))?;
    let cert = CertificateDer::from(key.cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], private)
        .map_err(|e| bad(&format!("serving certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// What the endpoint serves from.
pub struct Endpoint {
    pub node: String,
    pub runtime: Arc<dyn Runtime>,
    pub sampler: Arc<crate::stats::Sampler>,
}

/// Serves the endpoint on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    endpoint: Arc<Endpoint>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet endpoint: accept");
                    continue;
                }
            },
            _ = crate::stopped(&mut stop) => return,
        };
        let acceptor = acceptor.clone();
        let endpoint = Arc::clone(&endpoint);
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "kubelet endpoint: TLS handshake");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let endpoint = Arc::clone(&endpoint);
                async move { Ok::<_, Infallible>(handle(req, endpoint).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(%peer, error = %e, "kubelet endpoint: connection");
            }
        });
    }
}

/// The query parameters of a request, percent-decoded.
fn params(req: &Request<Incoming>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                if let Ok(b) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

async fn handle(req: Request<Incoming>, endpoint: Arc<Endpoint>) -> Response<Body> {
    let runtime = Arc::clone(&endpoint.runtime);
    let path: Vec<String> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    match (
        req.method(),
        path.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        (&Method::GET, ["healthz"]) => text(StatusCode::OK, "ok"),
        (&Method::GET, ["metrics"]) => {
            let mut body = String::new();
            crate::metrics::render(&mut body);
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (&Method::GET, ["stats", "summary"]) => match runtime.list_pods().await {
            Ok(pods) => {
                let body = endpoint.sampler.summary(&endpoint.node, &pods).to_string();
                let mut r = text(StatusCode::OK, body);
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                r
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            match logs(&req, &*runtime, ns, pod, container).await {
                Ok(r) => r,
                Err((status, msg)) => text(status, msg),
            }
        }
        (&Method::GET | &Method::POST, [kind @ ("exec" | "attach"), ns, pod, container]) => {
            let attach = *kind == "attach";
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            match exec(req, runtime, &ns, &pod, &container, attach).await {
                Ok(r) => r,
                Err((status, msg)) => text(status, msg),
            }
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod]) => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            match port_forward(req, runtime, &ns, &pod).await {
                Ok(r) => r,
                Err((status, msg)) => text(status, msg),
            }
        }
        (_, ["run", ..]) => text(
            StatusCode::NOT_IMPLEMENTED,
            "/run is not implemented by keelson's kubelet (use exec)",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            format!("{} not found", req.uri().path()),
        ),
    }
}

/// The channel protocols the exec endpoint speaks, best first.
const EXEC_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The metav1.Status that ends an exec stream (channel 3).
pub fn exec_status(command: &[String], exit: Result<i32>) -> String {
    let v = match exit {
        Ok(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(code) => serde_json::json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}}),
        Err(e) => serde_json::json!({"metadata": {}, "status": "Failure",
            "message": e.to_string(), "reason": "InternalError"}),
    };
    v.to_string()
}

/// `kubectl exec` over WebSocket: the command's stdout and stderr as channels 1 and 2, then
/// its Status on channel 3.
async fn exec(
    mut req: Request<Incoming>,
    runtime: Arc<dyn Runtime>,
    ns: &str,
    pod: &str,
    container: &str,
    attach: bool,
) -> std::result::Result<Response<Body>, (StatusCode, String)> {
    let bad = |m: &str| (StatusCode::BAD_REQUEST, m.to_string());
    let ps = params(&req);
    let command: Vec<String> = ps
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() && !attach {
        return Err(bad("you must specify at least 1 command"));
    }
    let flag = |k: &str| {
        ps.iter()
            .any(|(n, v)| n == k && matches!(v.as_str(), "1" | "true"))
    };
    let want_stdin = flag("stdin");
    let tty = flag("tty");
    let header = |h: &str| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if !header("upgrade").eq_ignore_ascii_case("websocket") {
        return Err(bad("exec needs a WebSocket upgrade (v4.channel.k8s.io or v5.channel.k8s.io); SPDY is not supported"));
    }
    let offered = header("sec-websocket-protocol");
    let protocol = EXEC_PROTOCOLS
        .into_iter()
        .find(|p| offered.split(',').any(|o| o.trim() == *p))
        .ok_or_else(|| bad(&format!("none of the offered protocols {offered:?} is supported (want one of {EXEC_PROTOCOLS:?})")))?;
    let key = header("sec-websocket-key");
    if key.is_empty() {
        return Err(bad("missing Sec-WebSocket-Key"));
    }
    let info = find(&*runtime, ns, pod).await?;
    let id = info
        .latest(container, false)
        .filter(|c| c.state.is_running())
        .map(|c| c.id.clone())
        .ok_or_else(|| bad(&format!("container {container} is not running")))?;
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(io) => TokioIo::new(io),
            Err(e) => {
                tracing::debug!(error = %e, "exec: upgrade");
                return;
            }
        };
        let (rd, wr) = tokio::io::split(io);
        let action = if attach { None } else { Some(command) };
        exec_session(rd, wr, runtime, id, action, tty, want_stdin).await;
    });
    Ok(switching_protocols(
        "websocket",
        Some((&key, protocol)),
        None,
    ))
}

/// `kubectl port-forward`: a SPDY/3.1 upgrade (`X-Stream-Protocol-Version:
/// portforward.k8s.io`) or a WebSocket carrying SPDY (`SPDY/3.1+portforward.k8s.io`).
async fn port_forward(
    mut req: Request<Incoming>,
    runtime: Arc<dyn Runtime>,
    ns: &str,
    pod: &str,
) -> std::result::Result<Response<Body>, (StatusCode, String)> {
    use crate::portforward::{PROTOCOL, TUNNEL_PROTOCOL};
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let offers = |name: &str| -> Vec<String> {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .collect()
    };
    let upgrade = offers("upgrade");
    let websocket = upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket"));
    let spdy = upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1"));
    if websocket
        && !offers("sec-websocket-protocol")
            .iter()
            .any(|p| p == TUNNEL_PROTOCOL)
    {
        return Err(bad(format!(
            "port-forward over WebSocket needs the subprotocol {TUNNEL_PROTOCOL}"
        )));
    }
    if spdy
        && !offers("x-stream-protocol-version")
            .iter()
            .any(|p| p == PROTOCOL)
    {
        return Err(bad(format!(
            "port-forward over SPDY needs X-Stream-Protocol-Version: {PROTOCOL}"
        )));
    }
    if !websocket && !spdy {
        return Err(bad(format!(
            "port-forward needs an upgrade to SPDY/3.1 ({PROTOCOL}) or to WebSocket ({TUNNEL_PROTOCOL})"
        )));
    }
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if websocket && key.is_empty() {
        return Err(bad("missing Sec-WebSocket-Key".into()));
    }
    let info = find(&*runtime, ns, pod).await?;
    if info.sandbox.is_none() {
        return Err(bad(format!("pod {ns}/{pod} has no running sandbox")));
    }
    let target = crate::portforward::Target {
        namespace: ns.to_string(),
        name: pod.to_string(),
        uid: info.uid.clone(),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(io) => TokioIo::new(io),
            Err(e) => {
                tracing::debug!(error = %e, "port-forward: upgrade");
                return;
            }
        };
        if websocket {
            let tunnel = crate::portforward::websocket_tunnel(io);
            crate::portforward::serve(tunnel, runtime, target).await;
        } else {
            crate::portforward::serve(io, runtime, target).await;
        }
    });
    Ok(if websocket {
        switching_protocols("websocket", Some((&key, TUNNEL_PROTOCOL)), None)
    } else {
        switching_protocols("SPDY/3.1", None, Some(PROTOCOL))
    })
}

/// The `101 Switching Protocols` answer to an upgrade to `upgrade`: for a WebSocket, its
/// accept key and subprotocol; for SPDY, the negotiated `X-Stream-Protocol-Version`.
fn switching_protocols(
    upgrade: &'static str,
    websocket: Option<(&str, &'static str)>,
    stream_protocol: Option<&'static str>,
) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static(upgrade),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Some((key, protocol)) = websocket {
        if let Ok(v) = http::HeaderValue::from_str(&crate::ws::accept_key(key)) {
            h.insert("sec-websocket-accept", v);
        }
        h.insert(
            "sec-websocket-protocol",
            http::HeaderValue::from_static(protocol),
        );
    }
    if let Some(p) = stream_protocol {
        h.insert(
            "x-stream-protocol-version",
            http::HeaderValue::from_static(p),
        );
    }
    r
}

/// One exec over an upgraded connection: client frames feed stdin (channel 0), resizes
/// (channel 4) and the v5 close signal (channel 255); the command's output goes out on
/// channels 1 and 2, its Status on 3.
async fn exec_session<R, W>(
    mut rd: R,
    wr: W,
    runtime: Arc<dyn Runtime>,
    id: String,
    command: Option<Vec<String>>,
    tty: bool,
    want_stdin: bool,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use crate::ws::{read_frame, write_frame, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG};
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let (stdin_tx, stdin_rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let (resize_tx, mut resize_rx) = tokio::sync::mpsc::unbounded_channel::<(u16, u16)>();
    let reader = {
        let wr = Arc::clone(&wr);
        tokio::spawn(async move {
            let mut stdin = Some(stdin_tx);
            while let Ok(Some((op, payload))) = read_frame(&mut rd).await {
                match op {
                    OP_CLOSE => break,
                    OP_PING => {
                        let _ = write_frame(&mut *wr.lock().await, OP_PONG, &payload).await;
                    }
                    OP_BINARY if !payload.is_empty() => match payload[0] {
                        0 => {
                            if let Some(tx) = &stdin {
                                if tx
                                    .send(Bytes::copy_from_slice(&payload[1..]))
                                    .await
                                    .is_err()
                                {
                                    stdin = None;
                                }
                            }
                        }
                        4 => {
                            let size: serde_json::Value =
                                serde_json::from_slice(&payload[1..]).unwrap_or_default();
                            let w = size["Width"].as_u64().and_then(|v| u16::try_from(v).ok());
                            let h = size["Height"].as_u64().and_then(|v| u16::try_from(v).ok());
                            if let (Some(w), Some(h)) = (w, h) {
                                let _ = resize_tx.send((w, h));
                            }
                        }
                        // v5: the client closed a stream; stdin's end is the command's EOF.
                        255 if payload.get(1) == Some(&0) => stdin = None,
                        _ => {}
                    },
                    _ => {}
                }
            }
        })
    };
    let stdin = want_stdin.then_some(stdin_rx);
    let opened = match &command {
        Some(command) => {
            let request = crate::runtime::ExecRequest {
                command: command.clone(),
                tty,
                stdin,
            };
            runtime.exec_stream(&id, request).await
        }
        None => runtime.attach(&id, tty, stdin).await,
    };
    let command = command.unwrap_or_default();
    let exit = match opened {
        Ok(mut s) => {
            if let Some(resize) = s.resize.take() {
                tokio::spawn(async move {
                    while let Some(size) = resize_rx.recv().await {
                        if resize.send(size).is_err() {
                            return;
                        }
                    }
                });
            }
            let mut failed = None;
            while let Some(chunk) = s.output.next().await {
                match chunk {
                    Ok((stream, data)) => {
                        let mut msg = Vec::with_capacity(data.len() + 1);
                        msg.push(stream);
                        msg.extend_from_slice(&data);
                        if write_frame(&mut *wr.lock().await, OP_BINARY, &msg)
                            .await
                            .is_err()
                        {
                            reader.abort();
                            return;
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                Some(e) => Err(e),
                None => s.exit_code.await,
            }
        }
        Err(e) => Err(e),
    };
    let mut status = vec![3u8];
    status.extend_from_slice(exec_status(&command, exit).as_bytes());
    let mut w = wr.lock().await;
    let _ = write_frame(&mut *w, OP_BINARY, &status).await;
    let _ = write_frame(&mut *w, OP_CLOSE, &1000u16.to_be_bytes()).await;
    reader.abort();
}

/// Parses the `pods/log` options Kubernetes passes on.
pub fn log_options(
    params: &[(String, String)],
    now: Timestamp,
) -> std::result::Result<(LogOptions, bool, Option<u64>), String> {
    let mut o = LogOptions::default();
    let mut previous = false;
    let mut limit = None;
    let flag = |v: &str| matches!(v, "" | "true" | "1");
    for (k, v) in params {
        match k.as_str() {
            "follow" => o.follow = flag(v),
            "timestamps" => o.timestamps = flag(v),
            "previous" => previous = flag(v),
            "tailLines" => {
                o.tail_lines = Some(v.parse().map_err(|_| format!("invalid tailLines {v:?}"))?)
            }
            "limitBytes" => {
                limit = Some(v.parse().map_err(|_| format!("invalid limitBytes {v:?}"))?)
            }
            "sinceSeconds" => {
                let s: i64 = v
                    .parse()
                    .map_err(|_| format!("invalid sinceSeconds {v:?}"))?;
                o.since = Some(now - jiff::SignedDuration::from_secs(s.max(0)));
            }
            "sinceTime" => {
                o.since = Some(v.parse().map_err(|_| format!("invalid sinceTime {v:?}"))?)
            }
            _ => {}
        }
    }
    Ok((o, previous, limit))
}

/// The pod of this name the runtime has (the newest one when a name was reused).
async fn find(
    runtime: &dyn Runtime,
    ns: &str,
    name: &str,
) -> std::result::Result<PodInfo, (StatusCode, String)> {
    let pods = runtime
        .list_pods()
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    pods.into_iter()
        .filter(|p| p.namespace == ns && p.name == name)
        .max_by_key(|p| p.sandbox.as_ref().map(|s| s.created_at))
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("pod {ns}/{name} is not running on this node"),
            )
        })
}

async fn logs(
    req: &Request<Incoming>,
    runtime: &dyn Runtime,
    ns: &str,
    pod: &str,
    container: &str,
) -> std::result::Result<Response<Body>, (StatusCode, String)> {
    let (options, previous, limit) =
        log_options(&params(req), Timestamp::now()).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
    let info = find(runtime, ns, pod).await?;
    let init = info.latest(container, false).is_none();
    let instance = if previous {
        info.previous(container, init).ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
            )
        })?
    } else {
        info.latest(container, init).ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"),
            )
        })?
    };
    let stream = runtime
        .logs(&instance.id, &options)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let stream = stream.map(|chunk| {
        chunk
            .map(Frame::data)
            .map_err(|e| std::io::Error::other(e.to_string()))
    });
    let stream = limit_bytes(stream, limit);
    let mut r = Response::new(UnsyncBoxBody::new(StreamBody::new(stream)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(r)
}

/// Ends `stream` after `limit` bytes of data.
fn limit_bytes<S>(
    stream: S,
    limit: Option<u64>,
) -> futures::stream::BoxStream<'static, std::result::Result<Frame<Bytes>, std::io::Error>>
where
    S: futures::Stream<Item = std::result::Result<Frame<Bytes>, std::io::Error>> + Send + 'static,
{
    let Some(limit) = limit else {
        return stream.boxed();
    };
    stream
        .scan(limit, |left, item| {
            if *left == 0 {
                return futures::future::ready(None);
            }
            let item = item.map(|frame| match frame.into_data() {
                Ok(mut data) => {
                    let n = (data.len() as u64).min(*left);
                    data.truncate(usize::try_from(n).unwrap_or(usize::MAX));
                    *left -= n;
                    Frame::data(data)
                }
                Err(f) => f,
            });
            futures::future::ready(Some(item))
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn exec_status_carries_the_exit_code() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        let v: serde_json::Value = serde_json::from_str(&exec_status(&cmd, Ok(3))).expect("json");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let ok: serde_json::Value = serde_json::from_str(&exec_status(&cmd, Ok(0))).expect("json");
        assert_eq!(ok["status"], "Success");
    }

    #[test]
    fn log_options_from_the_query() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().expect("time");
        let (o, previous, limit) = log_options(
            &p(&[
                ("follow", "true"),
                ("tailLines", "5"),
                ("sinceSeconds", "60"),
                ("previous", "true"),
                ("limitBytes", "10"),
                ("timestamps", "true"),
            ]),
            now,
        )
        .expect("options");
        assert!(o.follow && o.timestamps && previous);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(limit, Some(10));
        assert_eq!(o.since, Some("2026-01-01T00:00:00Z".parse().expect("time")));
        assert!(log_options(&p(&[("tailLines", "x")]), now).is_err());
        let (o, _, _) =
            log_options(&p(&[("sinceTime", "2025-01-01T00:00:00Z")]), now).expect("since");
        assert_eq!(o.since, Some("2025-01-01T00:00:00Z".parse().expect("time")));
    }

    #[tokio::test]
    async fn limit_bytes_cuts_the_stream() {
        let chunks = vec![
            Ok(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"world"))),
        ];
        let s = limit_bytes(futures::stream::iter(chunks), Some(8));
        let got: Vec<u8> = s
            .filter_map(|f| async move { f.ok().and_then(|f| f.into_data().ok()) })
            .collect::<Vec<_>>()
            .await
            .concat();
        assert_eq!(got, b"hello wo");
    }
}
