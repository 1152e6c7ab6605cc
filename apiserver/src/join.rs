//! Joining a cluster with a token, as k3s does it.
//!
//! A new cluster's first server writes `<data-dir>/token`:
//! `K10<SHA-256 of the CA certificate PEM>::server:<secret>`. A server or agent started with
//! `--server https://<any-server>:6443 --token <token>`
//! 1. fetches `GET /cacerts` without trusting the server yet, and refuses a CA whose SHA-256
//!    is not the token's (so nobody in the middle can pose as the cluster);
//! 2. calls `POST /v1-keelson/join/server` (or `/agent`) over TLS verified against that CA,
//!    the secret as its bearer token.
//!
//! A server join is answered with the CA certificate and key and the store's members, the new
//! server added among them as a learner (it promotes itself once it has caught up); an agent
//! join with a client certificate for `system:node:<name>` in `system:nodes`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use http_body_util::BodyExt as _;
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::{ApiError, Result};
use crate::pki::{self, Pki};
use crate::Api;

/// The token's file in the data dir.
pub const TOKEN_FILE: &str = "token";
/// Where a server's CA certificate is served to anyone.
pub const CACERTS_PATH: &str = "/cacerts";
/// A new server joins here.
pub const SERVER_JOIN_PATH: &str = "/v1-keelson/join/server";
/// A new agent joins here.
pub const AGENT_JOIN_PATH: &str = "/v1-keelson/join/agent";
const PREFIX: &str = "K10";
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 1 << 20;

/// A cluster's join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The SHA-256 of the cluster CA's certificate PEM, lower-case hex.
    pub ca_hash: String,
    secret: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl JoinToken {
    /// Parses `K10<hash>::server:<secret>`.
    pub fn parse(s: &str) -> Result<JoinToken> {
        let bad = || {
            ApiError::bad_request(
                "the join token is malformed: it looks like K10<CA hash>::server:<secret> \
                 (the first server prints it and writes it to <data-dir>/token)",
            )
        };
        let rest = s.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
        let (hash, credentials) = rest.split_once("::").ok_or_else(bad)?;
        let secret = credentials.strip_prefix("server:").ok_or_else(bad)?;
        let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        let printable = secret.bytes().all(|b| b.is_ascii_graphic());
        if !hex || secret.is_empty() || !printable {
            return Err(bad());
        }
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }

    /// The token as a user passes it to `--token`.
    pub fn render(&self) -> String {
        format!("{PREFIX}{}::server:{}", self.ca_hash, self.secret)
    }

    /// Whether `presented` is this token's secret (compared in constant time).
    fn admits(&self, presented: &str) -> bool {
        let (a, b) = (self.secret.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The SHA-256 of a CA certificate PEM, as a token carries it.
pub fn ca_hash(ca_pem: &str) -> String {
    format!("{:x}", sha2::Sha256::digest(ca_pem.as_bytes()))
}

/// The cluster's join token from `<data_dir>/token`, created with a fresh random secret when
/// there is none. A token naming another CA (the CA was replaced) keeps its secret and takes
/// the current CA's hash.
pub fn ensure_token(data_dir: &Path, pki: &Pki) -> Result<JoinToken> {
    let path = data_dir.join(TOKEN_FILE);
    let hash = ca_hash(&pki.ca_cert);
    let secret = match pki::read(&path)? {
        Some(s) => {
            let t = JoinToken::parse(&s)
                .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
            if t.ca_hash == hash {
                return Ok(t);
            }
            t.secret
        }
        None => {
            let mut bytes = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let t = JoinToken {
        ca_hash: hash,
        secret,
    };
    write_token(data_dir, &t)?;
    Ok(t)
}

/// Writes `token` to `<data_dir>/token` (0600), so that this server admits joiners too.
pub fn write_token(data_dir: &Path, token: &JoinToken) -> Result<()> {
    pki::write_private(&data_dir.join(TOKEN_FILE), &format!("{}\n", token.render()))
}

/// What a server admits joiners with.
#[derive(Clone, Debug)]
pub struct JoinConfig {
    pub token: JoinToken,
    pub pki: Pki,
}

/// A new server's request to join.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerJoinRequest {
    /// Its member name (`--name`).
    pub name: String,
    /// Its peer URLs (`--initial-advertise-peer-urls`).
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
}

/// A store member as a joiner needs to know it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinMember {
    pub name: String,
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
}

/// The answer to a server join.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerJoin {
    pub ca_cert: String,
    pub ca_key: String,
    /// The key ServiceAccount tokens are signed with (absent from servers before it existed).
    #[serde(default)]
    pub service_account_key: Option<String>,
    /// The store's CA (`pki/etcd/ca.crt`), which signs the members' peer certificates.
    #[serde(default)]
    pub etcd_ca_cert: Option<String>,
    #[serde(default)]
    pub etcd_ca_key: Option<String>,
    /// The cluster's `--initial-cluster-token`.
    pub cluster_token: String,
    /// The new member's ID, hex.
    #[serde(rename = "memberID")]
    pub member_id: String,
    /// Every member, the new one included.
    pub members: Vec<JoinMember>,
}

impl std::fmt::Debug for ServerJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerJoin")
            .field("member_id", &self.member_id)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

/// A new agent's request to join.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentJoinRequest {
    pub node_name: String,
}

/// The answer to an agent join: the CA and the node's client certificate.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentJoin {
    pub ca_cert: String,
    pub cert: String,
    pub key: String,
}

/// `GET /cacerts`: the cluster CA, to anyone (it is public; the token proves it genuine).
pub fn cacerts(api: &Api) -> Response {
    match &api.config.join {
        Some(j) => {
            let mut r = (StatusCode::OK, j.pki.ca_cert.clone()).into_response();
            r.headers_mut().insert(
                "content-type",
                axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        None => ApiError::NoSuchResource.into_response(),
    }
}

/// `POST /v1-keelson/join/…`.
pub async fn route(
    api: &Api,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    match join(api, method, path, headers, body).await {
        Ok(v) => crate::rest::respond(StatusCode::OK, crate::codec::Output::Json, &v, &[]),
        Err(e) => {
            tracing::warn!(%path, error = %e, "join refused");
            e.into_response()
        }
    }
}

async fn join(
    api: &Api,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Value> {
    let Some(config) = &api.config.join else {
        return Err(ApiError::NoSuchResource);
    };
    if path != SERVER_JOIN_PATH && path != AGENT_JOIN_PATH {
        return Err(ApiError::NoSuchResource);
    }
    if method != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !config.token.admits(presented.trim()) {
        return Err(ApiError::Unauthorized);
    }
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge("the join request is too large".into()))?;
    if path == SERVER_JOIN_PATH {
        let req: ServerJoinRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the join request: {e}")))?;
        let reply = join_server(api, config, req).await?;
        serde_json::to_value(&reply).map_err(internal)
    } else {
        let req: AgentJoinRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the join request: {e}")))?;
        let name = req.node_name;
        let problems = crate::validation::dns1123_subdomain(&name);
        if !problems.is_empty() {
            return Err(ApiError::bad_request(format!(
                "nodeName {name:?} is not a valid node name: {}",
                problems.join("; ")
            )));
        }
        let (cert, key) = config
            .pki
            .issue_client(&format!("system:node:{name}"), &["system:nodes"])?;
        tracing::info!(node = %name, "issued an agent its client certificate");
        serde_json::to_value(AgentJoin {
            ca_cert: config.pki.ca_cert.clone(),
            cert,
            key,
        })
        .map_err(internal)
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

async fn join_server(api: &Api, config: &JoinConfig, req: ServerJoinRequest) -> Result<ServerJoin> {
    let name = req.name.trim().to_string();
    if name.is_empty() || name.contains([',', '=']) || name.chars().any(char::is_whitespace) {
        return Err(ApiError::bad_request(format!(
            "member name {name:?}: it must be non-empty, without spaces, ',' or '='"
        )));
    }
    let mut urls = Vec::new();
    for u in &req.peer_urls {
        let parsed = keelson_store::config::parse_urls("peer URL", u)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        urls.extend(parsed.iter().map(keelson_store::config::url_string));
    }
    if urls.is_empty() {
        return Err(ApiError::bad_request("the join request has no peer URLs"));
    }
    let node = api.storage.node();
    node.linearize().await?;
    let members = node.member_list();
    let same_urls = members
        .iter()
        .find(|m| m.peer_ur_ls.iter().any(|u| urls.contains(u)));
    let id = match same_urls {
        // A retry of this join (the joiner stopped after it was added): answer again.
        Some(m) if m.name.is_empty() || m.name == name => m.id,
        Some(m) => {
            return Err(ApiError::Conflict {
                subject: crate::error::Subject::new("", "members", &name),
                message: format!(
                    "peer URLs {} are member {:?}'s ({:x})",
                    urls.join(","),
                    m.name,
                    m.id
                ),
                causes: Vec::new(),
            })
        }
        None => {
            if let Some(m) = members.iter().find(|m| m.name == name) {
                return Err(ApiError::Conflict {
                    subject: crate::error::Subject::new("", "members", &name),
                    message: format!(
                        "a member named {name:?} ({:x}) exists already; remove it first \
                         (`keelson kv member remove {:x}`) to replace it",
                        m.id, m.id
                    ),
                    causes: Vec::new(),
                });
            }
            node.member_add(urls.clone(), true).await?.id
        }
    };
    tracing::info!(member = %format!("{id:x}"), %name, peer_urls = %urls.join(","), "a server joins as a learner");
    let members = node
        .member_list()
        .into_iter()
        .map(|m| JoinMember {
            name: if m.id == id { name.clone() } else { m.name },
            peer_urls: m.peer_ur_ls,
        })
        .collect();
    let ca_key = pki::read(&config.pki.dir.join("ca.key"))?
        .ok_or_else(|| ApiError::internal("the CA key is missing"))?;
    let etcd_dir = config.pki.dir.join(pki::ETCD_DIR);
    Ok(ServerJoin {
        ca_cert: config.pki.ca_cert.clone(),
        ca_key,
        etcd_ca_cert: pki::read(&etcd_dir.join("ca.crt"))?,
        etcd_ca_key: pki::read(&etcd_dir.join("ca.key"))?,
        service_account_key: Some(config.pki.service_account_key.clone()),
        cluster_token: node.config.initial_cluster_token.clone(),
        member_id: format!("{id:x}"),
        members,
    })
}

// ------------------------------------------------------------------ the joiner's side

/// Where a `--server` URL points.
struct ServerAddr {
    host: String,
    name: ServerName<'static>,
    port: u16,
    url: String,
}

fn server_addr(server: &str) -> Result<ServerAddr> {
    let bad = |why: &str| ApiError::bad_request(format!("--server {server:?}: {why}"));
    let url = url::Url::parse(server).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(bad("it must be an https:// URL"));
    }
    let (host, name) = match url.host() {
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), ServerName::IpAddress(ip.into())),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), ServerName::IpAddress(ip.into())),
        Some(url::Host::Domain(d)) => (
            d.to_string(),
            ServerName::try_from(d.to_string()).map_err(|e| bad(&e.to_string()))?,
        ),
        None => return Err(bad("it has no host")),
    };
    let port = url.port_or_known_default().unwrap_or(6443);
    Ok(ServerAddr {
        host,
        name,
        port,
        url: server.trim_end_matches('/').to_string(),
    })
}

/// One request to a server; the status and the body.
async fn call(
    server: &ServerAddr,
    tls: Arc<rustls::ClientConfig>,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> Result<(StatusCode, bytes::Bytes)> {
    let unavailable = |what: String| ApiError::Unavailable(format!("{}: {what}", server.url));
    let exchange = async {
        let mut sender = crate::rest::kubelet::connect_http1(
            tls,
            server.name.clone(),
            &server.host,
            server.port,
            TIMEOUT,
        )
        .await
        .map_err(unavailable)?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{}:{}", server.host, server.port))
            .header("content-type", "application/json");
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(internal)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(format!("request: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unavailable(format!("response: {e}")))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| unavailable(format!("no answer within {TIMEOUT:?}")))?
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Fetches the cluster CA from `server` and checks it against the token.
pub async fn fetch_ca(server: &str, token: &JoinToken) -> Result<String> {
    let addr = server_addr(server)?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(internal)?
        .dangerous()
        .with_custom_certificate_verifier(crate::rest::kubelet::any_certificate())
        .with_no_client_auth();
    let (status, body) = call(
        &addr,
        Arc::new(tls),
        Method::GET,
        CACERTS_PATH,
        None,
        Vec::new(),
    )
    .await?;
    if status != StatusCode::OK {
        return Err(ApiError::Unavailable(format!(
            "{}: GET {CACERTS_PATH} answered {status}: is it a keelson server?",
            addr.url
        )));
    }
    let pem = String::from_utf8_lossy(&body).into_owned();
    if ca_hash(&pem) != token.ca_hash {
        return Err(ApiError::bad_request(format!(
            "the CA of {} does not match the join token's hash: the token is for another \
             cluster, or something between us poses as the server",
            addr.url
        )));
    }
    Ok(pem)
}

/// A TLS client config trusting only `ca_pem`.
fn trusting(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    let der = pki::pem_der(ca_pem).ok_or_else(|| ApiError::internal("the CA is not PEM"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .map_err(internal)?;
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(internal)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

async fn post<T: Serialize, R: serde::de::DeserializeOwned>(
    server: &str,
    token: &JoinToken,
    path: &str,
    request: &T,
) -> Result<R> {
    let ca = fetch_ca(server, token).await?;
    let addr = server_addr(server)?;
    let body = serde_json::to_vec(request).map_err(internal)?;
    let (status, reply) = call(
        &addr,
        trusting(&ca)?,
        Method::POST,
        path,
        Some(&token.secret),
        body,
    )
    .await?;
    if status == StatusCode::UNAUTHORIZED {
        return Err(ApiError::bad_request(format!(
            "{} refused the join token (401 Unauthorized): check --token",
            addr.url
        )));
    }
    if status != StatusCode::OK {
        let message = serde_json::from_slice::<serde_json::Value>(&reply)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&reply).into_owned());
        let e = format!("{} refused the join ({status}): {message}", addr.url);
        return Err(if status.is_server_error() {
            ApiError::Unavailable(e)
        } else {
            ApiError::bad_request(e)
        });
    }
    serde_json::from_slice(&reply)
        .map_err(|e| ApiError::internal(format!("{}: the join reply: {e}", addr.url)))
}

/// Joins a server to the cluster `server` belongs to.
pub async fn join_as_server(
    server: &str,
    token: &JoinToken,
    request: &ServerJoinRequest,
) -> Result<ServerJoin> {
    post(server, token, SERVER_JOIN_PATH, request).await
}

/// Joins an agent (a worker node) to the cluster `server` belongs to.
pub async fn join_as_agent(server: &str, token: &JoinToken, node_name: &str) -> Result<AgentJoin> {
    post(
        server,
        token,
        AGENT_JOIN_PATH,
        &AgentJoinRequest {
            node_name: node_name.to_string(),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_render_and_admit_only_their_secret() {
        let hash = "ab".repeat(32);
        let t = JoinToken::parse(&format!("K10{hash}::server:s3cret\n")).expect("token");
        assert_eq!(t.ca_hash, hash);
        assert_eq!(t.render(), format!("K10{hash}::server:s3cret"));
        assert!(t.admits("s3cret"));
        assert!(!t.admits("s3cre"));
        assert!(!t.admits("s3creT"));
        assert!(!t.admits(""));
        assert!(
            !format!("{t:?}").contains("s3cret"),
            "Debug hides the secret"
        );
        for bad in [
            "",
            "s3cret",
            &format!("K10{hash}::agent:s3cret"),
            &format!("K10{hash}:server:s3cret"),
            &format!("K10{}::server:s3cret", "ab".repeat(31)),
            &format!("K10{}::server:s3cret", "zz".repeat(32)),
            &format!("K10{hash}::server:"),
        ] {
            let e = JoinToken::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("malformed"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_token_is_made_once_and_follows_the_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::ensure(dir.path(), &pki::default_sans(&[])).expect("pki");
        let t = ensure_token(dir.path(), &pki).expect("token");
        assert_eq!(t.ca_hash, ca_hash(&pki.ca_cert));
        assert_eq!(ensure_token(dir.path(), &pki).expect("again"), t);
        let on_disk = std::fs::read_to_string(dir.path().join(TOKEN_FILE)).expect("file");
        assert_eq!(on_disk.trim(), t.render());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Another CA: the secret stays, the hash follows.
        let other = tempfile::tempdir().expect("tempdir");
        let mut pki2 = Pki::ensure(other.path(), &pki::default_sans(&[])).expect("pki");
        pki2.dir = pki.dir.clone();
        let t2 = ensure_token(dir.path(), &pki2).expect("token");
        assert_eq!(t2.secret, t.secret);
        assert_eq!(t2.ca_hash, ca_hash(&pki2.ca_cert));
    }
}
