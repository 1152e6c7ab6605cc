//! `keelson proxy`: a client-side load balancer for the Kubernetes API of several servers,
//! like the one k3s runs in its agents. kubectl (and anything else that reads a kubeconfig)
//! knows one server URL; point it at the proxy and the proxy carries each TCP connection to
//! a server that answers, moving to the next one when a server cannot be reached.
//!
//! The proxy passes TLS through untouched: clients still verify the server's certificate
//! (every server's certificate names `127.0.0.1` and `localhost`) and still authenticate to
//! the server itself. It never terminates TLS and never holds credentials.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio::net::{TcpListener, TcpStream};

use crate::store_cmd::{init_logging, shutdown_signal};

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// Where to listen (kubeconfig's `server:` becomes `https://<this>`).
    #[arg(long, default_value = "127.0.0.1:6444")]
    listen: SocketAddr,
    /// The servers' API URLs or host:port, comma-separated (`https://10.0.0.1:6443,…`).
    #[arg(long, value_delimiter = ',', required = true)]
    server: Vec<String>,
    /// How long to wait for one server to accept a connection before trying the next.
    #[arg(long, default_value = "2s", value_parser = crate::kv::client::parse_go_duration)]
    connect_timeout: Duration,
    /// Log level: debug, info, warn or error.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// `https://host:port/…` or `host:port` → `host:port`.
fn host_port(s: &str) -> Result<String> {
    let s = s.trim();
    if s.contains("://") {
        let url = url::Url::parse(s).with_context(|| format!("--server {s:?}"))?;
        let host = url
            .host_str()
            .with_context(|| format!("--server {s:?} has no host"))?;
        let port = url.port_or_known_default().unwrap_or(6443);
        Ok(if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    } else if s.is_empty() {
        anyhow::bail!("--server: an empty entry")
    } else {
        Ok(s.to_string())
    }
}

/// The servers and which one answered last.
struct Upstreams {
    addrs: Vec<String>,
    preferred: AtomicUsize,
    connect_timeout: Duration,
}

impl Upstreams {
    /// A connection to the server that answered last, or to the next one that answers.
    async fn connect(&self) -> Option<(usize, TcpStream)> {
        let first = self.preferred.load(Ordering::Relaxed);
        for k in 0..self.addrs.len() {
            let i = (first + k) % self.addrs.len();
            let addr = &self.addrs[i];
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    if i != first {
                        tracing::info!(server = %addr, "moved to another server");
                        self.preferred.store(i, Ordering::Relaxed);
                    }
                    let _ = s.set_nodelay(true);
                    return Some((i, s));
                }
                Ok(Err(e)) => tracing::warn!(server = %addr, error = %e, "server unreachable"),
                Err(_) => tracing::warn!(server = %addr, "server did not accept in time"),
            }
        }
        None
    }
}

pub async fn run(args: ProxyArgs) -> Result<()> {
    init_logging(&args.log_level)?;
    let addrs = args
        .server
        .iter()
        .map(|s| host_port(s))
        .collect::<Result<Vec<_>>>()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    let local = listener.local_addr()?;
    eprintln!(
        "keelson proxy: forwarding https://{local} to {}; set `server: https://{local}` in the kubeconfig",
        addrs.join(", ")
    );
    let upstreams = Arc::new(Upstreams {
        addrs,
        preferred: AtomicUsize::new(0),
        connect_timeout: args.connect_timeout,
    });
    let accept = async {
        loop {
            let (client, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: keep serving the connections we have.
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let upstreams = upstreams.clone();
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                let Some((i, server)) = upstreams.connect().await else {
                    tracing::warn!(%peer, "no server answered; closing the connection");
                    return;
                };
                let (mut client, mut server) = (client, server);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
                    tracing::debug!(%peer, server = %upstreams.addrs[i], error = %e, "connection ended");
                }
            });
        }
    };
    tokio::select! {
        () = accept => {}
        () = shutdown_signal() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn server_urls_become_host_ports() {
        assert_eq!(
            host_port("https://10.0.0.1:6443").ok().as_deref(),
            Some("10.0.0.1:6443")
        );
        assert_eq!(
            host_port("https://k.example/").ok().as_deref(),
            Some("k.example:443")
        );
        assert_eq!(
            host_port("https://[::1]:6443").ok().as_deref(),
            Some("[::1]:6443")
        );
        assert_eq!(
            host_port("127.0.0.1:7").ok().as_deref(),
            Some("127.0.0.1:7")
        );
        assert!(host_port("").is_err());
        assert!(host_port("https://").is_err());
    }
}
