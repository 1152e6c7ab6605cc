//! Container probes (liveness, readiness, startup) and lifecycle hook actions: exec,
//! httpGet, tcpSocket, and (probes only) grpc.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use keelson_proto::health::health_check_response::ServingStatus;
use keelson_proto::health::health_client::HealthClient;
use keelson_proto::health::HealthCheckRequest;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::runtime::Runtime;

/// What a probe or hook action runs against.
pub struct Target<'a> {
    pub runtime: &'a dyn Runtime,
    pub container_id: &'a str,
    pub container: &'a Container,
    /// The pod's IP (the default host of httpGet and tcpSocket).
    pub pod_ip: &'a str,
}

/// The result of one probe or action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

fn port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("no port named {name:?} in container {}", container.name)),
    }
}

async fn exec(t: &Target<'_>, a: &ExecAction, timeout: Duration) -> Outcome {
    let command = a.command.clone().unwrap_or_default();
    if command.is_empty() {
        return Outcome::Failure("exec action without a command".into());
    }
    match t.runtime.exec(t.container_id, &command, timeout).await {
        Ok(r) if r.exit_code == 0 => Outcome::Success,
        Ok(r) => Outcome::Failure(format!(
            "command {command:?} exited with {}: {}",
            r.exit_code,
            r.output.trim()
        )),
        Err(e) => Outcome::Failure(e.to_string()),
    }
}

async fn http_get(t: &Target<'_>, a: &HTTPGetAction, timeout: Duration) -> Outcome {
    if a.scheme
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
    {
        return Outcome::Failure(format!(
            "httpGet scheme {:?} is not supported (only HTTP)",
            a.scheme.as_deref().unwrap_or_default()
        ));
    }
    let port = match port(t.container, &a.port) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let host = a.host.as_deref().unwrap_or(t.pod_ip);
    let path = a.path.as_deref().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    let headers = a.http_headers.clone().unwrap_or_default();
    if !headers.iter().any(|h| h.name.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {host}:{port}\r\n"));
    }
    if !headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("user-agent"))
    {
        request.push_str("User-Agent: kube-probe/1.32\r\n");
    }
    for h in &headers {
        request.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    request.push_str("Accept: */*\r\nConnection: close\r\n\r\n");
    let get = async {
        let mut s = TcpStream::connect((host, port)).await?;
        s.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 256];
        // The status line is all a probe needs.
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(timeout, get).await {
        Err(_) => Outcome::Failure(format!(
            "Get \"http://{host}:{port}{path}\": timed out after {timeout:?}"
        )),
        Ok(Err(e)) => Outcome::Failure(format!("Get \"http://{host}:{port}{path}\": {e}")),
        Ok(Ok(head)) => {
            let line = String::from_utf8_lossy(&head);
            let code: Option<u16> = line
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|c| c.parse().ok());
            match code {
                Some(c) if (200..400).contains(&c) => Outcome::Success,
                Some(c) => Outcome::Failure(format!("HTTP probe failed with statuscode: {c}")),
                None => Outcome::Failure(format!(
                    "Get \"http://{host}:{port}{path}\": not an HTTP response"
                )),
            }
        }
    }
}

async fn tcp(t: &Target<'_>, a: &TCPSocketAction, timeout: Duration) -> Outcome {
    let port = match port(t.container, &a.port) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let host = a.host.as_deref().unwrap_or(t.pod_ip);
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
        Err(_) => Outcome::Failure(format!("dial tcp {host}:{port}: i/o timeout")),
    }
}

/// `host:port` with an IPv6 host in brackets.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A grpc probe: one `grpc.health.v1.Health/Check` call in plaintext to the pod IP, as the
/// kubelet makes it. Healthy only when the answer is `SERVING`; the failure messages follow the
/// kubelet's, so `kubectl describe` reads the same.
async fn grpc(t: &Target<'_>, a: &GRPCAction, timeout: Duration) -> Outcome {
    let Ok(port) = u16::try_from(a.port) else {
        return Outcome::Failure(format!("invalid port {}", a.port));
    };
    let service = a.service.clone().unwrap_or_default();
    let addr = authority(t.pod_ip, port);
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => e,
        Err(e) => return Outcome::Failure(format!("invalid address {addr}: {e}")),
    };
    let endpoint = endpoint.connect_timeout(timeout).timeout(timeout);
    let endpoint = match endpoint.user_agent("kube-probe/1.32") {
        Ok(e) => e,
        Err(e) => return Outcome::Failure(e.to_string()),
    };
    // Connecting and the call share the one budget of timeoutSeconds.
    let deadline = tokio::time::Instant::now() + timeout;
    let channel = match tokio::time::timeout_at(deadline, endpoint.connect()).await {
        Err(_) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {addr:?} within {timeout:?}"
            ))
        }
        Ok(Err(e)) => {
            let cause =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), |c| c.to_string());
            return Outcome::Failure(format!(
                "error: failed to connect service at {addr:?}: {cause}"
            ));
        }
        Ok(Ok(c)) => c,
    };
    let mut client = HealthClient::new(channel);
    let call = client.check(HealthCheckRequest { service });
    match tokio::time::timeout_at(deadline, call).await {
        Err(_) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {timeout:?}"
        )),
        Ok(Err(s)) => Outcome::Failure(match s.code() {
            tonic::Code::Unimplemented => format!(
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): {}",
                s.message()
            ),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                format!("timeout: health rpc did not complete within {timeout:?}")
            }
            code => format!(
                "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                s.message()
            ),
        }),
        Ok(Ok(response)) => {
            let status = response.into_inner().status;
            if status == ServingStatus::Serving as i32 {
                Outcome::Success
            } else {
                let name = ServingStatus::try_from(status)
                    .map_or_else(|_| status.to_string(), |s| s.as_str_name().to_string());
                Outcome::Failure(format!("service unhealthy (responded with {name:?})"))
            }
        }
    }
}

/// Runs one probe once.
pub async fn run(t: &Target<'_>, p: &Probe) -> Outcome {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1).unsigned_abs().into());
    if let Some(a) = &p.exec {
        exec(t, a, timeout).await
    } else if let Some(a) = &p.http_get {
        http_get(t, a, timeout).await
    } else if let Some(a) = &p.tcp_socket {
        tcp(t, a, timeout).await
    } else if let Some(a) = &p.grpc {
        grpc(t, a, timeout).await
    } else {
        Outcome::Failure("probe without an action".into())
    }
}

/// Runs a lifecycle hook (postStart, preStop) bounded by `timeout`.
pub async fn hook(
    t: &Target<'_>,
    h: &k8s_openapi::api::core::v1::LifecycleHandler,
    timeout: Duration,
) -> Outcome {
    if let Some(a) = &h.exec {
        exec(t, a, timeout).await
    } else if let Some(a) = &h.http_get {
        http_get(t, a, timeout).await
    } else if let Some(a) = &h.tcp_socket {
        tcp(t, a, timeout).await
    } else if let Some(s) = &h.sleep {
        let d = Duration::from_secs(s.seconds.max(0).unsigned_abs());
        tokio::time::sleep(d.min(timeout)).await;
        Outcome::Success
    } else {
        Outcome::Failure("hook without an action".into())
    }
}

/// The state of one probe of one container instance.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// The probe's current verdict (liveness and startup start out passing/failing as the
    /// kubelet's do: liveness success, readiness and startup failure).
    pub ok: bool,
    successes: i32,
    failures: i32,
    next: Option<Timestamp>,
    pub last_failure: Option<String>,
}

impl Tracker {
    pub fn new(initially_ok: bool) -> Tracker {
        Tracker {
            ok: initially_ok,
            successes: 0,
            failures: 0,
            next: None,
            last_failure: None,
        }
    }

    /// Failures in a row.
    pub fn failures(&self) -> i32 {
        self.failures
    }

    /// Whether the probe is due at `now` for a container that started at `started`.
    pub fn due(&self, p: &Probe, started: Timestamp, now: Timestamp) -> bool {
        let first = started
            .checked_add(jiff::SignedDuration::from_secs(
                p.initial_delay_seconds.unwrap_or(0).into(),
            ))
            .unwrap_or(started);
        now >= self.next.unwrap_or(first)
    }

    /// Records one result; returns true when the verdict changed.
    pub fn record(&mut self, p: &Probe, outcome: &Outcome, now: Timestamp) -> bool {
        let period = i64::from(p.period_seconds.unwrap_or(10).max(1));
        self.next = now
            .checked_add(jiff::SignedDuration::from_secs(period))
            .ok();
        let before = self.ok;
        match outcome {
            Outcome::Success => {
                self.failures = 0;
                self.successes += 1;
                self.last_failure = None;
                if self.successes >= p.success_threshold.unwrap_or(1).max(1) {
                    self.ok = true;
                }
            }
            Outcome::Failure(why) => {
                self.successes = 0;
                self.failures += 1;
                self.last_failure = Some(why.clone());
                if self.failures >= p.failure_threshold.unwrap_or(3).max(1) {
                    self.ok = false;
                }
            }
        }
        before != self.ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).expect("probe")
    }

    #[test]
    fn thresholds_and_timing() {
        let p = probe(json!({"periodSeconds": 2, "initialDelaySeconds": 5,
                             "failureThreshold": 2, "successThreshold": 2}));
        let t0 = Timestamp::UNIX_EPOCH;
        let at = |s: i64| Timestamp::from_second(s).expect("time");
        let mut t = Tracker::new(false);
        assert!(!t.due(&p, t0, at(4)));
        assert!(t.due(&p, t0, at(5)));
        assert!(
            !t.record(&p, &Outcome::Success, at(5)),
            "one success of two"
        );
        assert!(!t.due(&p, t0, at(6)));
        assert!(t.due(&p, t0, at(7)));
        assert!(t.record(&p, &Outcome::Success, at(7)));
        assert!(t.ok);
        assert!(!t.record(&p, &Outcome::Failure("x".into()), at(9)));
        assert!(t.ok, "one failure of two");
        assert!(t.record(&p, &Outcome::Failure("y".into()), at(11)));
        assert!(!t.ok);
        assert_eq!(t.last_failure.as_deref(), Some("y"));
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let rt = crate::runtime::FakeRuntime::new(Duration::ZERO, 1);
        let c: Container = serde_json::from_value(json!({"name": "c",
            "ports": [{"name": "web", "containerPort": port}]}))
        .expect("container");
        let t = Target {
            runtime: &rt,
            container_id: "x",
            container: &c,
            pod_ip: "127.0.0.1",
        };
        let p = probe(json!({"httpGet": {"port": "web", "path": "healthz"}}));
        assert_eq!(run(&t, &p).await, Outcome::Success);
        let second = run(&t, &p).await;
        assert!(
            matches!(&second, Outcome::Failure(m) if m.contains("503")),
            "{second:?}"
        );
        server.await.expect("server");
        // Nothing listens any more.
        let p = probe(json!({"tcpSocket": {"port": port}}));
        assert!(matches!(run(&t, &p).await, Outcome::Failure(_)));
        let p = probe(json!({"httpGet": {"port": "nope"}}));
        assert!(matches!(run(&t, &p).await, Outcome::Failure(m) if m.contains("nope")));
    }

    /// A standard health server: "" serves, "down" does not, "slow" answers after the probe
    /// gave up, anything else is unknown (NOT_FOUND, as grpc-go's health server answers).
    struct Health;

    #[tonic::async_trait]
    impl keelson_proto::health::health_server::Health for Health {
        async fn check(
            &self,
            request: tonic::Request<HealthCheckRequest>,
        ) -> Result<tonic::Response<keelson_proto::health::HealthCheckResponse>, tonic::Status>
        {
            let status = match request.into_inner().service.as_str() {
                "" => ServingStatus::Serving,
                "down" => ServingStatus::NotServing,
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    ServingStatus::Serving
                }
                _ => return Err(tonic::Status::not_found("unknown service")),
            };
            Ok(tonic::Response::new(
                keelson_proto::health::HealthCheckResponse {
                    status: status as i32,
                },
            ))
        }
    }

    #[tokio::test]
    async fn grpc_probes_against_a_local_health_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(keelson_proto::health::health_server::HealthServer::new(
                    Health,
                ))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        let rt = crate::runtime::FakeRuntime::new(Duration::ZERO, 1);
        let c: Container = serde_json::from_value(json!({"name": "c"})).expect("container");
        let t = Target {
            runtime: &rt,
            container_id: "x",
            container: &c,
            pod_ip: "127.0.0.1",
        };
        let check = |service: Option<&str>| {
            let mut grpc = json!({"port": port});
            if let Some(s) = service {
                grpc["service"] = json!(s);
            }
            probe(json!({"grpc": grpc, "timeoutSeconds": 1}))
        };

        assert_eq!(run(&t, &check(None)).await, Outcome::Success);
        assert_eq!(run(&t, &check(Some(""))).await, Outcome::Success);
        let down = run(&t, &check(Some("down"))).await;
        assert_eq!(
            down,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let unknown = run(&t, &check(Some("nope"))).await;
        assert!(
            matches!(&unknown, Outcome::Failure(m) if m.contains("NotFound") && m.contains("unknown service")),
            "{unknown:?}"
        );
        let started = std::time::Instant::now();
        let slow = run(&t, &check(Some("slow"))).await;
        assert!(
            matches!(&slow, Outcome::Failure(m) if m.starts_with("timeout: health rpc did not complete")),
            "{slow:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the probe gave up after its timeout, not the server's 30 s"
        );

        let _ = stop.send(());
        server.await.expect("join").expect("serve");

        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed_port = closed.local_addr().expect("addr").port();
        drop(closed);
        let refused = run(&t, &probe(json!({"grpc": {"port": closed_port}}))).await;
        assert!(
            matches!(&refused, Outcome::Failure(m) if m.contains("failed to connect service")),
            "{refused:?}"
        );
        let bad = probe(json!({"grpc": {"port": 70000}}));
        assert!(matches!(run(&t, &bad).await, Outcome::Failure(m) if m.contains("invalid port")));
    }
}
