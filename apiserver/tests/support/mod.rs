//! An in-process apiserver on a one-member store, for tests that need no sockets.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request};
use keelson_apiserver::rest::User;
use keelson_apiserver::server::{handle, Identity};
use keelson_apiserver::{Api, ApiConfig};
use keelson_store::config::{parse_urls, url_string, StoreConfig};
use keelson_store::network::router::Router;
use keelson_store::{NodeOptions, StoreNode};
use serde_json::Value;

pub struct TestApi {
    pub api: Arc<Api>,
    pub node: Arc<StoreNode>,
    _router: Arc<Router>,
    _dir: tempfile::TempDir,
}

/// A response: status code, headers, and the body (JSON if it parses, else a string).
pub struct Resp {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl TestApi {
    pub async fn start() -> TestApi {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ApiConfig)) -> TestApi {
        let dir = tempfile::tempdir().expect("temp dir");
        let router = Router::new();
        let mut c = StoreConfig::default_for("api");
        c.data_dir = dir.path().join("store");
        let peer = parse_urls("test", "http://api.peer.test:2380")
            .expect("url")
            .remove(0);
        let client = parse_urls("test", "http://api.client.test:2379")
            .expect("url")
            .remove(0);
        c.listen_client_urls = vec![client.clone()];
        c.advertise_client_urls = vec![client];
        c.listen_peer_urls = vec![peer.clone()];
        c.initial_advertise_peer_urls = vec![peer.clone()];
        c.initial_cluster = vec![("api".into(), vec![peer.clone()])];
        c.heartbeat_interval = Duration::from_millis(50);
        c.election_timeout = Duration::from_millis(500);
        let node = StoreNode::start(
            c,
            NodeOptions {
                transport: router.transport(0),
            },
        )
        .await
        .expect("store starts");
        router.register(node.id, vec![url_string(&peer)], &node.peer_service());
        let deadline = Instant::now() + Duration::from_secs(20);
        while !node.is_leader() {
            assert!(Instant::now() < deadline, "the member never became leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut cfg = ApiConfig::default();
        cfg.authn.signer = Some(Arc::new(
            keelson_apiserver::auth::token::Signer::from_pem(
                &keelson_apiserver::auth::token::new_key_pem().expect("key"),
            )
            .expect("signer"),
        ));
        tweak(&mut cfg);
        let api = Api::start(Arc::clone(&node), cfg)
            .await
            .expect("apiserver starts");
        api.bootstrap().await.expect("bootstrap");
        let t = TestApi {
            api,
            node,
            _router: router,
            _dir: dir,
        };
        // What the namespace controller would create: pods of `default` need their account.
        let r = t
            .req(
                "POST",
                "/api/v1/namespaces/default/serviceaccounts",
                Some(&serde_json::json!({"metadata": {"name": "default"}})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        t
    }

    pub fn admin() -> User {
        User {
            name: "kubernetes-admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
        }
    }

    /// A request as the admin.
    pub async fn req(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.send(
            method,
            path,
            body.map(|b| b.to_string().into_bytes()),
            "application/json",
            None,
        )
        .await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
        accept: Option<&str>,
    ) -> Resp {
        self.send_as(
            Some(Self::admin()),
            method,
            path,
            body,
            content_type,
            accept,
        )
        .await
    }

    pub async fn send_as(
        &self,
        user: Option<User>,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
        accept: Option<&str>,
    ) -> Resp {
        let accept: Vec<(&str, &str)> = accept.into_iter().map(|a| ("accept", a)).collect();
        self.send_with(user, method, path, body, content_type, &accept)
            .await
    }

    /// A request with extra headers (`authorization`, `impersonate-user`, …).
    pub async fn send_with(
        &self,
        user: Option<User>,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(path)
            .header("content-type", content_type);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b
            .body(Body::from(body.unwrap_or_default()))
            .expect("request");
        req.extensions_mut().insert(Identity(user));
        let resp = handle(Arc::clone(&self.api), req).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body")
            .to_vec();
        let body = serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }
}

impl TestApi {
    /// A GET as `user` whose response is handed back unread: a watch stays open for as long
    /// as the caller keeps it.
    pub async fn open_as(&self, user: User, path: &str) -> axum::response::Response {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        req.extensions_mut().insert(Identity(Some(user)));
        handle(Arc::clone(&self.api), req).await
    }
}

/// Polls `cond` until it holds, panicking with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
