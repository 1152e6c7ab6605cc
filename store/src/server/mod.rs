//! The etcd v3 gRPC API over a [`StoreNode`], and the process wiring of a member: listeners
//! for client and peer traffic.

pub mod auth;
pub mod cluster;
pub mod election;
mod h2fix;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use keelson_proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use keelson_proto::v3electionpb::election_server::ElectionServer;
use keelson_proto::v3lockpb::lock_server::LockServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::transport::Server;

use crate::config::{StoreConfig, GRPC_OVERHEAD_BYTES};
use crate::error::{Result, StoreError};
use crate::network::grpc::{GrpcTransport, PeerGrpc};
use crate::node::{NodeOptions, StoreNode};

/// Serves the etcd v3 API of `node` on `listener` until `shutdown` resolves; over TLS when
/// `tls` is given.
pub async fn serve_client(
    node: Arc<StoreNode>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let router = client_router(&node);
    let served = match tls {
        None => {
            router
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener)
                        .map(|c| c.map(|s| h2fix::AuthorityFix::new(nodelay(s)))),
                    shutdown,
                )
                .await
        }
        Some(cfg) => {
            router
                .serve_with_incoming_shutdown(
                    crate::tls::incoming(listener, cfg, "client port")
                        .map(|c| c.map(h2fix::AuthorityFix::new)),
                    shutdown,
                )
                .await
        }
    };
    served.map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))
}

/// The etcd v3 services of `node`.
fn client_router(node: &Arc<StoreNode>) -> tonic::transport::server::Router {
    // The gRPC layer admits far more than a request may carry, so that the services can answer
    // oversize requests with etcd's own errors (see `check_size`).
    let max_in = (node.config.max_request_bytes + GRPC_OVERHEAD_BYTES) * 4;
    macro_rules! svc {
        ($server:ident, $svc:expr) => {
            $server::new($svc)
                .max_decoding_message_size(max_in)
                .max_encoding_message_size(usize::MAX)
        };
    }
    Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(svc!(KvServer, kv::KvService::new(node.clone())))
        .add_service(svc!(WatchServer, watch::WatchService::new(node.clone())))
        .add_service(svc!(LeaseServer, lease::LeaseService::new(node.clone())))
        .add_service(svc!(
            ClusterServer,
            cluster::ClusterService::new(node.clone())
        ))
        .add_service(svc!(
            MaintenanceServer,
            maintenance::MaintenanceService::new(node.clone())
        ))
        .add_service(svc!(AuthServer, auth::AuthService::new(node.clone())))
        .add_service(svc!(LockServer, lock::LockService::new(node.clone())))
        .add_service(svc!(
            ElectionServer,
            election::ElectionService::new(node.clone())
        ))
}

/// Turns Nagle's algorithm off on an accepted connection. `Server::tcp_nodelay` only covers
/// listeners tonic binds itself, not `serve_with_incoming`; without this a response written in
/// several pieces waited for the client's delayed ACK (~40 ms per small request).
fn nodelay(s: tokio::net::TcpStream) -> tokio::net::TcpStream {
    if let Err(e) = s.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
    s
}

/// grpc-go's answer to a message over its receive limit, which etcd clients see from etcd for
/// requests beyond `--max-request-bytes` plus 512 KiB. Smaller oversize requests get
/// "request is too large" from the member.
pub(crate) fn check_size<M: prost::Message>(node: &StoreNode, m: &M) -> Result<(), tonic::Status> {
    let limit = node.config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let len = m.encoded_len();
    if len > limit {
        return Err(tonic::Status::resource_exhausted(format!(
            "grpc: received message larger than max ({len} vs. {limit})"
        )));
    }
    Ok(())
}

/// Serves member-to-member traffic of `node` on `listener` until `shutdown` resolves; over
/// TLS when `tls` is given.
pub async fn serve_peer(
    node: Arc<StoreNode>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let router = Server::builder()
        .tcp_nodelay(true)
        .add_service(PeerGrpc::server(node.peer_service(), node.cluster_id));
    let served = match tls {
        None => {
            router
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener).map(|c| c.map(nodelay)),
                    shutdown,
                )
                .await
        }
        Some(cfg) => {
            router
                .serve_with_incoming_shutdown(
                    crate::tls::incoming(listener, cfg, "peer port"),
                    shutdown,
                )
                .await
        }
    };
    served.map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))
}

/// A running member process: its node and the addresses it serves.
pub struct Running {
    pub node: Arc<StoreNode>,
    pub client_addrs: Vec<SocketAddr>,
    pub peer_addrs: Vec<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
}

impl Running {
    /// Waits until a server task ends (normally at shutdown); returns its error if it failed.
    pub async fn wait(self) -> Result<()> {
        let (r, _, rest) = futures::future::select_all(self.tasks).await;
        for t in rest {
            t.abort();
        }
        match r {
            Ok(r) => r,
            Err(e) => Err(StoreError::Io(std::io::Error::other(e.to_string()))),
        }
    }
}

/// Binds every URL; `https` ones come with `tls`.
async fn bind_all(
    what: &str,
    urls: &[url::Url],
    tls: Option<&Arc<rustls::ServerConfig>>,
) -> Result<Vec<(TcpListener, Option<Arc<rustls::ServerConfig>>)>> {
    let mut out = Vec::new();
    for u in urls {
        let host = u.host_str().unwrap_or("127.0.0.1");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = u.port_or_known_default().unwrap_or(0);
        let l = TcpListener::bind((host, port))
            .await
            .map_err(|e| StoreError::config(format!("{what}: cannot listen on {u}: {e}")))?;
        let tls = if u.scheme() == "https" {
            Some(Arc::clone(tls.ok_or_else(|| {
                StoreError::config(format!("{what}: {u} needs TLS certificates"))
            })?))
        } else {
            None
        };
        out.push((l, tls));
    }
    Ok(out)
}

/// Starts a member as a process does: binds the client and peer URLs (failing fast if one is
/// taken), opens or bootstraps the member, and serves until the node shuts down.
pub async fn run_member(config: StoreConfig) -> Result<Running> {
    config.validate()?;
    // Certificates are read before anything binds, so a bad file fails the start cleanly.
    let client_tls = match &config.client_tls {
        Some(f) => Some(crate::tls::server_config(f, &[b"h2"])?),
        None => None,
    };
    let peer_tls = match &config.peer_tls {
        Some(f) => Some(crate::tls::server_config(f, &[b"h2"])?),
        None => None,
    };
    let peer_client = match &config.peer_tls {
        Some(f) if f.trusted_ca_file.is_some() || has_https_peer(&config) => {
            Some(crate::tls::PeerClientTls::new(f)?)
        }
        _ => None,
    };
    let client = bind_all(
        "--listen-client-urls",
        &config.listen_client_urls,
        client_tls.as_ref(),
    )
    .await?;
    let peer = bind_all(
        "--listen-peer-urls",
        &config.listen_peer_urls,
        peer_tls.as_ref(),
    )
    .await?;
    let node = StoreNode::start(
        config,
        NodeOptions {
            transport: GrpcTransport::new(peer_client),
        },
    )
    .await?;
    let mut tasks = Vec::new();
    let mut client_addrs = Vec::new();
    let mut peer_addrs = Vec::new();
    let stop = |node: &Arc<StoreNode>| {
        let mut rx = node.shutdown_signal();
        async move {
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    };
    for (l, tls) in peer {
        peer_addrs.push(l.local_addr()?);
        tasks.push(tokio::spawn(serve_peer(node.clone(), l, tls, stop(&node))));
    }
    for (l, tls) in client {
        client_addrs.push(l.local_addr()?);
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            // Like etcd, serve clients once this member is part of a working cluster and has
            // published itself; until then connections wait in the listen backlog.
            tokio::select! {
                _ = node.wait_published() => {}
                _ = stop(&node) => return Ok(()),
            }
            let shutdown = stop(&node);
            serve_client(node, l, tls, shutdown).await
        }));
    }
    Ok(Running {
        node,
        client_addrs,
        peer_addrs,
        tasks,
    })
}

/// Whether this member talks TLS to any peer: its own or a founding member's URL is https.
fn has_https_peer(config: &StoreConfig) -> bool {
    config
        .initial_advertise_peer_urls
        .iter()
        .chain(config.initial_cluster.iter().flat_map(|(_, u)| u.iter()))
        .any(|u| u.scheme() == "https")
}
