//! Global flags and the connection to the etcd v3 endpoints.

use std::future::Future;
use std::time::Duration;

use clap::Args;
use keelson_proto::etcdserverpb::{
    auth_client::AuthClient, cluster_client::ClusterClient, kv_client::KvClient,
    lease_client::LeaseClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
    AuthenticateRequest,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::error::KvError;
use super::output::OutputFormat;

const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";

/// etcdctl's global flags. Like cobra's persistent flags they may appear before or after the
/// command.
#[derive(Args, Debug, Clone)]
pub struct GlobalFlags {
    /// gRPC endpoints [env: KEELSON_ENDPOINTS, ETCDCTL_ENDPOINTS] [default: 127.0.0.1:2379]
    #[arg(long, global = true, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Dial timeout for client connections.
    #[arg(long, global = true, default_value = "2s", env = "ETCDCTL_DIAL_TIMEOUT",
          value_parser = parse_go_duration)]
    pub dial_timeout: Duration,
    /// Timeout for short running commands (excluding dial timeout).
    #[arg(long, global = true, default_value = "5s", env = "ETCDCTL_COMMAND_TIMEOUT",
          value_parser = parse_go_duration)]
    pub command_timeout: Duration,
    /// Keepalive time for client connections.
    #[arg(long, global = true, default_value = "2s", env = "ETCDCTL_KEEPALIVE_TIME",
          value_parser = parse_go_duration)]
    pub keepalive_time: Duration,
    /// Keepalive timeout for client connections.
    #[arg(long, global = true, default_value = "6s", env = "ETCDCTL_KEEPALIVE_TIMEOUT",
          value_parser = parse_go_duration)]
    pub keepalive_timeout: Duration,
    /// Verify certificates of TLS-enabled secure servers using this CA bundle.
    #[arg(long, global = true, env = "ETCDCTL_CACERT")]
    pub cacert: Option<String>,
    /// Identify secure client using this TLS certificate file.
    #[arg(long, global = true, env = "ETCDCTL_CERT")]
    pub cert: Option<String>,
    /// Identify secure client using this TLS key file.
    #[arg(long, global = true, env = "ETCDCTL_KEY")]
    pub key: Option<String>,
    /// Skip server certificate verification (not supported yet).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Username[:password] for authentication.
    #[arg(long, global = true, env = "ETCDCTL_USER")]
    pub user: Option<String>,
    /// Password for authentication (if --user has none).
    #[arg(long, global = true, env = "ETCDCTL_PASSWORD")]
    pub password: Option<String>,
    /// Print byte strings as hex encoded strings.
    #[arg(long, global = true, env = "ETCDCTL_HEX")]
    pub hex: bool,
    /// Set the output format (fields, json, protobuf, simple, table).
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        default_value = "simple",
        env = "ETCDCTL_WRITE_OUT"
    )]
    pub write_out: String,
    /// Enable client-side debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
}

/// Parses a Go `time.Duration` string ("2s", "500ms", "1m30s", "1.5h"); a bare number is
/// seconds, as etcdctl's flags accept.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        if n >= 0.0 && n.is_finite() {
            return Ok(Duration::from_secs_f64(n));
        }
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(format!("time: invalid duration {s:?}"));
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        let num: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("time: invalid duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("time: unknown unit in duration {s:?}")),
        };
        total += num * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

impl GlobalFlags {
    /// The endpoints: `--endpoints`, else `KEELSON_ENDPOINTS`, else `ETCDCTL_ENDPOINTS`, else
    /// 127.0.0.1:2379.
    pub fn endpoint_list(&self) -> Vec<String> {
        if !self.endpoints.is_empty() {
            return self.endpoints.clone();
        }
        for var in ["KEELSON_ENDPOINTS", "ETCDCTL_ENDPOINTS"] {
            if let Ok(v) = std::env::var(var) {
                let list: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if !list.is_empty() {
                    return list;
                }
            }
        }
        vec![DEFAULT_ENDPOINT.to_string()]
    }

    pub fn output(&self) -> Result<OutputFormat, KvError> {
        OutputFormat::parse(&self.write_out)
    }

    fn tls_wanted(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// The URL tonic dials for one endpoint (etcdctl accepts `host:port` without a scheme).
    pub fn endpoint_url(&self, endpoint: &str) -> String {
        if endpoint.contains("://") {
            endpoint.to_string()
        } else if self.tls_wanted() {
            format!("https://{endpoint}")
        } else {
            format!("http://{endpoint}")
        }
    }

    fn check_unsupported(&self) -> Result<(), KvError> {
        if self.password.is_some() && self.user.is_none() {
            return Err(KvError::BadArgs("--password needs --user".into()));
        }
        if self.insecure_skip_tls_verify {
            return Err(KvError::Unsupported(
                "--insecure-skip-tls-verify is not supported by keelson kv yet".into(),
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(KvError::BadArgs(
                "--cert and --key must be given together".into(),
            ));
        }
        Ok(())
    }

    fn tls_config(&self) -> Result<Option<ClientTlsConfig>, KvError> {
        if !self.tls_wanted() {
            return Ok(None);
        }
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &self.cacert {
            let pem = std::fs::read(ca).map_err(|e| KvError::Io(format!("{ca}: {e}")))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            let c = std::fs::read(cert).map_err(|e| KvError::Io(format!("{cert}: {e}")))?;
            let k = std::fs::read(key).map_err(|e| KvError::Io(format!("{key}: {e}")))?;
            tls = tls.identity(Identity::from_pem(c, k));
        }
        Ok(Some(tls))
    }

    fn endpoint(&self, endpoint: &str) -> Result<Endpoint, KvError> {
        let url = self.endpoint_url(endpoint);
        let mut ep = Endpoint::from_shared(url.clone())
            .map_err(|e| KvError::BadArgs(format!("invalid endpoint {endpoint:?}: {e}")))?
            .connect_timeout(self.dial_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(self.keepalive_time)
            .keep_alive_timeout(self.keepalive_timeout)
            .keep_alive_while_idle(true);
        if let Some(tls) = self.tls_config()? {
            ep = ep
                .tls_config(tls)
                .map_err(|e| KvError::BadConnection(format!("TLS setup for {url}: {e}")))?;
        }
        Ok(ep)
    }

    /// Connects to the endpoints (requests are balanced over those that answer); fails with
    /// etcdctl's "context deadline exceeded" (exit 2) when none answers within
    /// `--dial-timeout`.
    pub async fn connect(&self) -> Result<Clients, KvError> {
        self.connect_to(&self.endpoint_list()).await
    }

    /// Connects to exactly one endpoint.
    pub async fn connect_one(&self, endpoint: &str) -> Result<Clients, KvError> {
        self.connect_to(&[endpoint.to_string()]).await
    }

    async fn connect_to(&self, endpoints: &[String]) -> Result<Clients, KvError> {
        self.check_unsupported()?;
        let eps = endpoints
            .iter()
            .map(|e| self.endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        let channel = if eps.len() == 1 {
            let ep = eps.into_iter().next().ok_or_else(no_endpoints)?;
            match tokio::time::timeout(self.dial_timeout, ep.connect()).await {
                Ok(Ok(ch)) => ch,
                Ok(Err(_)) | Err(_) => {
                    return Err(KvError::BadConnection("context deadline exceeded".into()))
                }
            }
        } else if eps.is_empty() {
            return Err(no_endpoints());
        } else {
            // Dial all; keep those that answer, like the Go client's balancer does.
            let dials = eps.iter().cloned().map(|ep| async move {
                let ok = matches!(
                    tokio::time::timeout(self.dial_timeout, ep.connect()).await,
                    Ok(Ok(_))
                );
                (ep, ok)
            });
            let live: Vec<Endpoint> = futures::future::join_all(dials)
                .await
                .into_iter()
                .filter_map(|(ep, ok)| ok.then_some(ep))
                .collect();
            if live.is_empty() {
                return Err(KvError::BadConnection("context deadline exceeded".into()));
            }
            Channel::balance_list(live.into_iter())
        };
        let token = match self.credentials()? {
            None => None,
            Some((name, password)) => {
                let mut auth = AuthClient::new(channel.clone());
                let reply = tokio::time::timeout(
                    self.command_timeout,
                    auth.authenticate(AuthenticateRequest { name, password }),
                )
                .await
                .map_err(|_| KvError::Failed("context deadline exceeded".into()))?;
                match reply {
                    Ok(r) => Some(r.into_inner().token.parse().map_err(|_| {
                        KvError::Failed("the server answered a token that is not ASCII".into())
                    })?),
                    // Like clientv3: a server without authentication is used without a token.
                    Err(s)
                        if s.code() == tonic::Code::FailedPrecondition
                            && s.message().contains("authentication is not enabled") =>
                    {
                        None
                    }
                    Err(s) => return Err(KvError::Grpc(s)),
                }
            }
        };
        Ok(Clients {
            channel,
            command_timeout: self.command_timeout,
            token: Token(token),
        })
    }

    /// `--user name[:password]` and `--password`: (name, password).
    fn credentials(&self) -> Result<Option<(String, String)>, KvError> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let (name, inline) = match user.split_once(':') {
            Some((n, p)) => (n.to_string(), Some(p.to_string())),
            None => (user.clone(), None),
        };
        let password = inline.or_else(|| self.password.clone()).ok_or_else(|| {
            KvError::BadArgs(
                "no password: give --user <name>:<password> or --password (keelson kv does not prompt)"
                    .into(),
            )
        })?;
        Ok(Some((name, password)))
    }
}

/// Adds the `Authenticate` token (gRPC metadata `token`, as etcd clients send it) to every
/// request.
#[derive(Clone, Debug, Default)]
pub struct Token(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            r.metadata_mut().insert("token", t.clone());
        }
        Ok(r)
    }
}

/// A channel whose requests carry the token.
pub type Chan = InterceptedService<Channel, Token>;

fn no_endpoints() -> KvError {
    KvError::BadArgs("no endpoints given".into())
}

/// gRPC clients over one connection (or a balanced set of connections).
#[derive(Clone)]
pub struct Clients {
    pub channel: Channel,
    pub command_timeout: Duration,
    /// The `--user`'s token, when one was given.
    pub token: Token,
}

impl Clients {
    fn chan(&self) -> Chan {
        InterceptedService::new(self.channel.clone(), self.token.clone())
    }
    pub fn kv(&self) -> KvClient<Chan> {
        KvClient::new(self.chan()).max_decoding_message_size(usize::MAX)
    }
    pub fn watch(&self) -> WatchClient<Chan> {
        WatchClient::new(self.chan()).max_decoding_message_size(usize::MAX)
    }
    pub fn lease(&self) -> LeaseClient<Chan> {
        LeaseClient::new(self.chan())
    }
    pub fn cluster(&self) -> ClusterClient<Chan> {
        ClusterClient::new(self.chan())
    }
    pub fn maintenance(&self) -> MaintenanceClient<Chan> {
        MaintenanceClient::new(self.chan()).max_decoding_message_size(usize::MAX)
    }
    /// Runs one short request under `--command-timeout` ("context deadline exceeded" when it
    /// runs out, as etcdctl says).
    pub async fn timed<T, F>(&self, fut: F) -> Result<T, KvError>
    where
        F: Future<Output = Result<T, tonic::Status>>,
    {
        match tokio::time::timeout(self.command_timeout, fut).await {
            Ok(r) => r.map_err(KvError::Grpc),
            Err(_) => Err(KvError::Failed("context deadline exceeded".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_go_duration("3x").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
    }
}
