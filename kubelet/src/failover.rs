//! One API client over several apiservers, failing over between them without a load
//! balancer: each request goes to the server that answered last; when it cannot be reached
//! (connection refused or reset, TLS or connect failure), the same request goes to the next
//! one, and that one becomes the current server.
//!
//! Only requests that never reached a server are retried, so a retried write was not applied
//! twice. A watch whose server dies ends with an error; its next request fails over like any
//! other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use kube::client::Body;

/// The servers and which one is current.
struct Inner {
    /// Swapped whole by [`Failover::replace`]; a request in flight keeps the set it began with.
    servers: parking_lot::RwLock<Arc<Vec<(String, kube::Client)>>>,
    current: AtomicUsize,
}

/// A [`tower::Service`] over the clients of several servers; see the module docs.
#[derive(Clone)]
pub struct Failover {
    inner: Arc<Inner>,
}

impl Failover {
    /// `servers`: each server's URL (for logs) and a client of it alone. None when empty.
    pub fn new(servers: Vec<(String, kube::Client)>) -> Option<Failover> {
        if servers.is_empty() {
            return None;
        }
        Some(Failover {
            inner: Arc::new(Inner {
                servers: parking_lot::RwLock::new(Arc::new(servers)),
                current: AtomicUsize::new(0),
            }),
        })
    }

    /// Sends the next requests with `servers` instead (new credentials, say: a renewed client
    /// certificate), in the same order; requests in flight finish with the clients they
    /// began with. An empty list changes nothing.
    pub fn replace(&self, servers: Vec<(String, kube::Client)>) {
        if servers.is_empty() {
            return;
        }
        *self.inner.servers.write() = Arc::new(servers);
    }

    /// A kube client whose requests fail over between the servers.
    pub fn client(self, default_namespace: &str) -> kube::Client {
        kube::Client::new(self, default_namespace)
    }
}

/// Whether `e` means the request never reached a server.
fn unreachable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
}

fn copy(parts: &http::request::Parts, body: &bytes::Bytes) -> Request<Body> {
    let mut r = Request::new(Body::from(body.clone()));
    *r.method_mut() = parts.method.clone();
    *r.uri_mut() = parts.uri.clone();
    *r.version_mut() = parts.version;
    *r.headers_mut() = parts.headers.clone();
    r
}

impl tower::Service<Request<Body>> for Failover {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // Request bodies are small (objects, patches); kept whole so a retry can resend.
            let body = body.collect().await?.to_bytes();
            let servers = Arc::clone(&inner.servers.read());
            let n = servers.len();
            let first = inner.current.load(Ordering::Relaxed) % n;
            let mut last = None;
            for i in 0..n {
                let at = (first + i) % n;
                let (url, client) = &servers[at];
                match client.send(copy(&parts, &body)).await {
                    Ok(response) => {
                        if at != first {
                            inner.current.store(at, Ordering::Relaxed);
                            tracing::warn!(server = %url, "failed over to another apiserver");
                        }
                        return Ok(response);
                    }
                    Err(e) if unreachable(&e) => {
                        tracing::debug!(server = %url, error = %e, "apiserver unreachable");
                        last = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                kube::Error::Service("no apiserver to send the request to".into())
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn client_of(url: &str) -> kube::Client {
        let config = kube::Config::new(url.parse().expect("url"));
        kube::Client::try_from(config).expect("client")
    }

    /// An HTTP server on loopback that answers every request with `body`, counting them.
    async fn server(body: &'static str) -> (String, Arc<AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut got = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        if got.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn requests_go_to_the_first_server_that_answers_and_stay_there() {
        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let (live, hits) = server(r#"{"major":"1","minor":"32","gitVersion":"v1.32.0"}"#).await;
        let f = Failover::new(vec![
            (dead.clone(), client_of(&dead)),
            (live.clone(), client_of(&live)),
        ])
        .expect("servers");
        let c = f.clone().client("default");
        let v = c
            .apiserver_version()
            .await
            .expect("version through the live server");
        assert_eq!(v.git_version, "v1.32.0");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(
            f.inner.current.load(Ordering::Relaxed),
            1,
            "the live one is current"
        );
        c.apiserver_version().await.expect("again");
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        // Every server down: the transport error comes back.
        let all_dead = Failover::new(vec![(dead.clone(), client_of(&dead))])
            .expect("servers")
            .client("default");
        let e = all_dead
            .apiserver_version()
            .await
            .expect_err("nothing answers");
        assert!(unreachable(&e), "{e:?}");
        assert!(Failover::new(Vec::new()).is_none());
    }

    #[tokio::test]
    async fn replaced_servers_take_the_next_requests() {
        let (old, old_hits) = server(r#"{"major":"1","minor":"32","gitVersion":"v1.32.0"}"#).await;
        let (new, new_hits) = server(r#"{"major":"1","minor":"32","gitVersion":"v1.32.1"}"#).await;
        let f = Failover::new(vec![(old.clone(), client_of(&old))]).expect("servers");
        let c = f.clone().client("default");
        assert_eq!(
            c.apiserver_version().await.expect("old").git_version,
            "v1.32.0"
        );
        f.replace(Vec::new());
        assert_eq!(
            c.apiserver_version().await.expect("still old").git_version,
            "v1.32.0"
        );
        f.replace(vec![(new.clone(), client_of(&new))]);
        assert_eq!(
            c.apiserver_version().await.expect("new").git_version,
            "v1.32.1"
        );
        assert_eq!(
            (
                old_hits.load(Ordering::SeqCst),
                new_hits.load(Ordering::SeqCst)
            ),
            (2, 1)
        );
    }
}
