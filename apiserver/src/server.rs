//! HTTPS serving: TLS with optional client certificates (the identity of a request), HTTP/1.1
//! and HTTP/2, and the routing of every path the apiserver answers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use serde_json::json;
use tokio::net::TcpListener;

use crate::auth::{self, review};
use crate::codec::{self, Output};
use crate::error::{ApiError, Result};
use crate::pki::{self, Pki};
use crate::rest::{self, User};
use crate::{discovery, Api};

/// The address a connection came from (the audit log's `sourceIPs`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The user of a connection's client certificate (None: no certificate).
#[derive(Clone, Debug, Default)]
pub struct Identity(pub Option<User>);

/// The TLS configuration: our serving certificate; client certificates signed by the cluster
/// CA are verified when offered, and requests without one are anonymous.
pub fn tls_config(pki: &Pki) -> Result<rustls::ServerConfig> {
    let bad = |what: &str| ApiError::internal(format!("TLS setup: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    let ca = pki::pem_der(&pki.ca_cert).ok_or_else(|| bad("the CA certificate is not PEM"))?;
    roots
        .add(CertificateDer::from(ca))
        .map_err(|e| bad(&format!("the CA certificate: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()
            .map_err(|e| bad(&format!("client verifier: {e}")))?;
    // The serving certificate follows its files, so a rotated or renewed one is presented
    // from the next handshake on.
    let cert = keelson_store::tls::ReloadingCert::load(
        &pki.dir.join("apiserver.crt"),
        &pki.dir.join("apiserver.key"),
    )
    .map_err(|e| bad(&format!("serving certificate: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// How long a client may take to send a request's headers (HTTP/1.1), from the connection's
/// start or the end of its previous request: Kubernetes' `ReadHeaderTimeout`.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(32);

/// How long a connection may go without a request in flight before it is closed (HTTP/2
/// with GOAWAY, HTTP/1.1 like a keep-alive timeout). For HTTP/2, where a request becomes
/// visible only once its headers are complete, this is what cuts off a client that opens
/// a connection and never finishes a request: the HTTP/2 counterpart of the header timeout.
pub const IDLE_TIMEOUT: Duration = HEADER_READ_TIMEOUT;

/// A response body that keeps `guard` until the body is dropped: sent in full, or its client
/// gone. Size and end-of-stream pass through, so a body's `content-length` is kept.
pub struct Holding<G> {
    body: Body,
    _guard: G,
}

impl<G> Holding<G> {
    pub fn new(body: Body, guard: G) -> Holding<G> {
        Holding {
            body,
            _guard: guard,
        }
    }
}

impl<G: Unpin> http_body::Body for Holding<G> {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Self::Data>, Self::Error>>>
    {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The requests of one connection in flight (headers received, response body not yet
/// dropped), and when the last one ended.
#[derive(Default)]
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    /// Milliseconds from `since` to the end of the last request.
    last_end_ms: std::sync::atomic::AtomicU64,
}

/// One request of a connection in flight, ended when dropped.
struct InFlight {
    activity: Arc<Activity>,
    since: tokio::time::Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.last_end_ms.store(ms, Ordering::Release);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn begin(self: &Arc<Self>, since: tokio::time::Instant) -> InFlight {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlight {
            activity: Arc::clone(self),
            since,
        }
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    async fn idle_for(&self, since: tokio::time::Instant, timeout: Duration) {
        use std::sync::atomic::Ordering;
        loop {
            let last = since + Duration::from_millis(self.last_end_ms.load(Ordering::Acquire));
            let idle_at = last + timeout;
            if self.in_flight.load(Ordering::Acquire) == 0 && tokio::time::Instant::now() >= idle_at
            {
                return;
            }
            // Busy: look again in a while; idle: when the timeout would be up.
            let next = if self.in_flight.load(Ordering::Acquire) > 0 {
                tokio::time::Instant::now() + timeout
            } else {
                idle_at
            };
            tokio::time::sleep_until(next).await;
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    api: Arc<Api>,
    listener: TcpListener,
    tls: rustls::ServerConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = Arc::clone(&api);
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| pki::identity(c.as_ref()))
                .map(|(name, groups)| User {
                    name,
                    uid: String::new(),
                    groups,
                });
            let identity = Identity(user);
            let since = tokio::time::Instant::now();
            let activity = Arc::new(Activity::default());
            let requests = Arc::clone(&activity);
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                let api = Arc::clone(&api);
                let in_flight = requests.begin(since);
                req.extensions_mut().insert(identity.clone());
                req.extensions_mut().insert(PeerAddr(peer));
                async move {
                    let req = req.map(Body::new);
                    let resp = handle(api, req).await;
                    Ok::<_, std::convert::Infallible>(
                        resp.map(|body| Holding::new(body, in_flight)),
                    )
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // A client that trickles its request headers (slowloris) is cut off.
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            // HTTP/2: Kubernetes' 1000 streams a connection, and pings that find a peer gone
            // silent (its watches would otherwise hold their slots until a write fails).
            builder
                .http2()
                .timer(hyper_util::rt::TokioTimer::new())
                .max_concurrent_streams(1000)
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(20));
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            tokio::pin!(conn);
            let stopping = tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                    false
                }
                _ = conn_shutdown.wait_for(|s| *s) => true,
                _ = activity.idle_for(since, IDLE_TIMEOUT) => {
                    tracing::debug!(%peer, "closing an idle connection");
                    true
                }
            };
            if stopping {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
            }
        });
    }
}

fn json_response(code: StatusCode, v: &serde_json::Value) -> Response {
    rest::respond(code, Output::Json, v, &[])
}

fn text(code: StatusCode, s: &'static str) -> Response {
    let mut r = (code, s).into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Routes one request. Also the entry point of in-process tests (`tower::ServiceExt::oneshot`).
pub async fn handle(api: Arc<Api>, req: Request<Body>) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let started = std::time::Instant::now();
    let kind = crate::prom::classify(
        method.as_str(),
        uri.path(),
        uri.query(),
        req.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
    );
    let metrics = Arc::clone(&api.requests);
    let in_flight = metrics.start(&kind);
    let resp = route(api, req, kind.long_running()).await;
    metrics.record(&kind, resp.status().as_u16(), started.elapsed());
    // A streamed answer stays in flight until its body ends.
    let resp = if kind.long_running() {
        resp.map(|b| Body::new(crate::prom::Guarded::new(b, in_flight)))
    } else {
        drop(in_flight);
        resp
    };
    tracing::debug!(%method, %uri, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

async fn route(api: Arc<Api>, req: Request<Body>, long_running: bool) -> Response {
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let path = parts.uri.path().to_string();
    let identity = parts
        .extensions
        .get::<Identity>()
        .cloned()
        .unwrap_or_default();
    let method = parts.method.clone();
    // Joining a cluster: the CA to anyone, the rest to holders of the join token.
    if path == crate::join::CACERTS_PATH && method == Method::GET {
        return crate::join::cacerts(&api);
    }
    if path.starts_with("/v1-keelson/") {
        return crate::join::route(&api, &method, &path, &parts.headers, body).await;
    }
    // Health endpoints answer anonymous callers (load balancers, probes), like Kubernetes'
    // public health paths; everything else needs a client certificate.
    let public = matches!(path.as_str(), "/healthz" | "/livez" | "/readyz")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/");
    if public {
        return health(&api, &path, parts.uri.query()).await;
    }
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let user = match auth::authenticate(&api, identity.0, authorization) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // The authenticated user, kept for the audit log only when impersonation replaces it.
    let original = parts
        .headers
        .contains_key("impersonate-user")
        .then(|| user.clone());
    let user = match auth::impersonate(&api, user, &parts.headers) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let info = auth::request_info(&method, &path, parts.uri.query());
    let audit_id = crate::meta::new_uid();
    let record = api.config.audit.as_ref().and_then(|a| {
        let peer = parts
            .extensions
            .get::<PeerAddr>()
            .map(|p| p.0.ip().to_string());
        let agent = parts
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok());
        a.begin(
            original.as_ref().unwrap_or(&user),
            original.is_some().then_some(&user),
            &info,
            &parts.uri.to_string(),
            peer,
            agent,
            &audit_id,
        )
    });
    let content_type = record.as_ref().and_then(|_| {
        parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let mut read = None;
    let mut resp = authorized(
        Arc::clone(&api),
        Authorized {
            parts,
            body,
            upgrade,
            path,
            method,
            user,
            info,
            long_running,
        },
        &mut read,
    )
    .await;
    if let (Some(a), Some(rec)) = (api.config.audit.as_ref(), record.as_ref()) {
        let code = resp.status().as_u16();
        let request = read.as_deref().map(|b| (b, content_type.as_deref()));
        if crate::audit::Auditor::wants_response(rec) && !long_running {
            let (rp, b) = resp.into_parts();
            let bytes = axum::body::to_bytes(b, 64 << 20).await.unwrap_or_default();
            a.end(rec, code, false, request, Some(&bytes));
            resp = Response::from_parts(rp, Body::from(bytes));
        } else {
            a.end(rec, code, long_running, request, None);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&audit_id) {
        resp.headers_mut().insert("audit-id", v);
    }
    resp
}

/// A request past authentication.
struct Authorized {
    parts: axum::http::request::Parts,
    body: Body,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    path: String,
    method: Method,
    user: User,
    info: auth::RequestInfo,
    long_running: bool,
}

/// Serves an authenticated request: the in-flight limit, authorization, then the routes.
/// `read` gets the request body (for the audit log).
async fn authorized(api: Arc<Api>, req: Authorized, read: &mut Option<bytes::Bytes>) -> Response {
    let Authorized {
        parts,
        body,
        upgrade,
        path,
        method,
        user,
        info,
        long_running,
    } = req;
    // Max-in-flight, after authentication (the admin group is exempt) and before
    // authorization, where Kubernetes has it.
    let _slot = if long_running || user.groups.iter().any(|g| g == crate::pki::ADMIN_GROUP) {
        None
    } else {
        let m = crate::limits::mutating(&method);
        let limit = if m {
            api.config.max_mutating_requests_inflight
        } else {
            api.config.max_requests_inflight
        };
        match api.inflight.acquire(m, limit) {
            Some(slot) => Some(slot),
            None => return crate::limits::too_many(),
        }
    };
    if let Err(e) = api.authz.authorize(&user, &info) {
        return e.into_response();
    }
    // The per-user watch limit, once the watch is allowed; the slot lives as long as the
    // response body streams.
    let watch_slot =
        if info.verb == "watch" && !user.groups.iter().any(|g| g == crate::pki::ADMIN_GROUP) {
            let limit = api.config.max_watches_per_user;
            match api.watches.acquire(&user.name, limit) {
                Some(slot) => Some(slot),
                None => return crate::limits::too_many_watches(&user.name, limit),
            }
        } else {
            None
        };
    let body = match axum::body::to_bytes(body, codec::MAX_BODY_BYTES + 1).await {
        Ok(b) if b.len() > codec::MAX_BODY_BYTES => return codec::too_large().into_response(),
        Ok(b) => {
            *read = Some(b.clone());
            b
        }
        Err(_) => return codec::too_large().into_response(),
    };
    let accept = parts
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let get = method == Method::GET;
    let discovery_reply = |v: Option<serde_json::Value>| match v {
        Some(v) => json_response(StatusCode::OK, &v),
        None => ApiError::NoSuchResource.into_response(),
    };
    let resp = match segs.as_slice() {
        ["version"] if get => json_response(StatusCode::OK, &discovery::version_info()),
        ["metrics"] if get => {
            let mut r = (StatusCode::OK, crate::prom::render(&api)).into_response();
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        ["api"] if get => match discovery::wants_aggregated(accept.as_deref()) {
            Some(v) => aggregated(discovery::aggregated(&api, true, v), v),
            None => json_response(
                StatusCode::OK,
                &discovery::api_versions(&api.config.advertise),
            ),
        },
        ["apis"] if get => match discovery::wants_aggregated(accept.as_deref()) {
            Some(v) => aggregated(discovery::aggregated(&api, false, v), v),
            None => json_response(StatusCode::OK, &discovery::api_group_list(&api)),
        },
        ["api", v] if get => discovery_reply(discovery::resource_list(&api, "", v)),
        ["apis", crate::metrics::GROUP] if get => {
            json_response(StatusCode::OK, &crate::metrics::api_group())
        }
        ["apis", crate::metrics::GROUP, crate::metrics::VERSION] if get => {
            json_response(StatusCode::OK, &crate::metrics::resource_list())
        }
        ["apis", g] if get && review::serves(g) => discovery_reply(review::api_group(g)),
        ["apis", g, "v1"] if get && review::serves(g) => {
            json_response(StatusCode::OK, &review::resource_list(g))
        }
        ["apis", g] if get => discovery_reply(discovery::api_group(&api, g)),
        ["apis", g, v] if get => discovery_reply(discovery::resource_list(&api, g, v)),
        // OpenAPI v2 is served as an empty document (no paths, no definitions): clients that
        // still ask for it (kubectl's field-validation probe for kinds missing from v3) learn
        // that it describes nothing, and use v3 for everything else.
        ["openapi", "v2"] if get => openapi_v2(accept.as_deref()),
        ["openapi", "v3"] if get => {
            let docs = api.openapi.docs(&api);
            json_response(StatusCode::OK, &crate::openapi::index(&docs))
        }
        ["openapi", "v3", rest @ ..] if get => {
            let docs = api.openapi.docs(&api);
            match docs.docs.get(&rest.join("/")) {
                Some((_, bytes)) => {
                    let mut r = (StatusCode::OK, bytes.clone()).into_response();
                    r.headers_mut()
                        .insert("content-type", HeaderValue::from_static("application/json"));
                    r
                }
                None => ApiError::NoSuchResource.into_response(),
            }
        }
        ["api", v, rest @ ..] => {
            if !api.registry.serves("", v) {
                return ApiError::NoSuchResource.into_response();
            }
            let incoming = rest::Incoming {
                method,
                query: parts.uri.query(),
                headers: parts.headers,
                body,
                upgrade,
            };
            rest::serve(Arc::clone(&api), "", v, rest, incoming, user).await
        }
        ["apis", crate::metrics::GROUP, crate::metrics::VERSION, rest @ ..] => {
            let req = rest::Req {
                method,
                query: rest::parse_query(parts.uri.query()),
                raw_query: parts.uri.query().unwrap_or("").to_string(),
                headers: parts.headers,
                body,
                user,
                upgrade: parking_lot::Mutex::new(None),
            };
            match crate::metrics::serve(&api, rest, &req).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            }
        }
        ["apis", g, v, rest @ ..] if review::serves(g) => {
            let req = rest::Req {
                method: method.clone(),
                query: rest::parse_query(parts.uri.query()),
                raw_query: parts.uri.query().unwrap_or("").to_string(),
                headers: parts.headers,
                body,
                user: user.clone(),
                upgrade: parking_lot::Mutex::new(None),
            };
            review::serve(&api, g, v, rest, &method, &req, &user)
                .unwrap_or_else(|| ApiError::NoSuchResource.into_response())
        }
        ["apis", g, v, rest @ ..] => {
            if !api.registry.serves(g, v) {
                return ApiError::NoSuchResource.into_response();
            }
            let incoming = rest::Incoming {
                method,
                query: parts.uri.query(),
                headers: parts.headers,
                body,
                upgrade,
            };
            rest::serve(Arc::clone(&api), g, v, rest, incoming, user).await
        }
        _ if !get
            && matches!(
                segs.first(),
                Some(&"api") | Some(&"apis") | Some(&"version")
            ) =>
        {
            ApiError::MethodNotAllowed.into_response()
        }
        _ => ApiError::NoSuchResource.into_response(),
    };
    match watch_slot {
        // The slot is dropped with the body: when the watch ends or its client goes away.
        Some(slot) => resp.map(|body| Body::new(Holding::new(body, slot))),
        None => resp,
    }
}

fn openapi_v2(accept: Option<&str>) -> Response {
    const PB: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    if accept.is_some_and(|a| a.contains(PB)) {
        // The protobuf encoding of an empty openapi_v2.Document is zero bytes.
        let mut r = (StatusCode::OK, Vec::<u8>::new()).into_response();
        // Kubernetes labels this body application/octet-stream (the `@` in the requested media
        // type is not a valid MIME token).
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        return r;
    }
    let doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": discovery::KUBE_GIT_VERSION},
        "paths": {},
        "definitions": {},
    });
    json_response(StatusCode::OK, &doc)
}

fn aggregated(v: serde_json::Value, version: &str) -> Response {
    let mut r = json_response(StatusCode::OK, &v);
    if let Ok(h) = HeaderValue::from_str(&discovery::aggregated_content_type(version)) {
        r.headers_mut().insert("content-type", h);
    }
    r
}

/// `/healthz`, `/livez`, `/readyz` the way Kubernetes answers them: `ok`, or with
/// `?verbose` (or on failure) one `[+]check ok` / `[-]check failed: why` line per check and a
/// verdict; `/readyz/<check>` runs one check, `?exclude=<check>` skips one.
async fn health(api: &Api, path: &str, query: Option<&str>) -> Response {
    let mut parts = path.trim_matches('/').splitn(2, '/');
    let endpoint = parts.next().unwrap_or("healthz");
    let only = parts.next().filter(|s| !s.is_empty());
    let pairs: Vec<(String, String)> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let verbose = pairs.iter().any(|(k, _)| k == "verbose");
    let excluded: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    // livez does not depend on the store: a server cut off from its quorum is alive (and
    // must not be restarted for it), only not ready.
    let names: &[&str] = match endpoint {
        "livez" => &["ping", "log"],
        _ => &["ping", "log", "etcd", "etcd-readiness", "shutdown"],
    };
    if let Some(one) = only {
        if !names.contains(&one) {
            return text(StatusCode::NOT_FOUND, "404 page not found");
        }
    }
    let node = api.storage.node();
    let mut lines = Vec::new();
    let mut failed = false;
    for name in names.iter().copied() {
        if only.is_some_and(|o| o != name) || excluded.contains(&name) {
            continue;
        }
        let result: Result<(), String> = match name {
            "etcd" => {
                let read =
                    tokio::time::timeout(Duration::from_secs(2), api.storage.current_revision())
                        .await;
                match read {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("the store did not answer a linearizable read: {e}")),
                    Err(_) => Err("the store has no quorum (a linearizable read timed out)".into()),
                }
            }
            "etcd-readiness" => match node.leader() {
                Some(l) if l == node.id => Ok(()),
                Some(_) if node.status().is_learner => {
                    Err("the store member is a learner, still catching up".into())
                }
                Some(_) => Ok(()),
                None => Err("the store member knows no leader".into()),
            },
            "shutdown" if *node.shutdown_signal().borrow() => {
                Err("the server is shutting down".into())
            }
            _ => Ok(()),
        };
        match result {
            Ok(()) => lines.push(format!("[+]{name} ok")),
            Err(why) => {
                failed = true;
                lines.push(format!("[-]{name} failed: {why}"));
            }
        }
    }
    let code = if failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let body = if !failed && !verbose {
        "ok".to_string()
    } else {
        let verdict = if failed { "failed" } else { "passed" };
        format!("{}\n{endpoint} check {verdict}\n", lines.join("\n"))
    };
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_no_request_in_flight() {
        let timeout = Duration::from_secs(32);
        let since = Instant::now();
        let a = Arc::new(Activity::default());
        // A new connection without a request is idle `timeout` after it opened.
        a.idle_for(since, timeout).await;
        let t = since.elapsed();
        assert!(
            t >= timeout && t < timeout + Duration::from_secs(1),
            "{t:?}"
        );
        // A request in flight (a watch) keeps it open however long it lasts.
        let watch = a.begin(since);
        let two = a.begin(since);
        drop(two);
        assert!(
            tokio::time::timeout(Duration::from_secs(600), a.idle_for(since, timeout))
                .await
                .is_err(),
            "idle with a request in flight"
        );
        // Idle `timeout` after the last one ends.
        drop(watch);
        let ended = Instant::now();
        a.idle_for(since, timeout).await;
        let t = ended.elapsed();
        assert!(
            t >= timeout && t < timeout + Duration::from_secs(1),
            "{t:?}"
        );
    }
}
