//! Peer traffic over gRPC (`keelson.peer.Peer/Call`), between member processes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keelson_proto::peer::{
    peer_client::PeerClient,
    peer_server::{Peer, PeerServer},
    PeerReply as WireReply, PeerRequest as WireRequest,
};
use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request as TRequest, Response as TResponse, Status};

use super::{
    decode, encode, BoxFuture, NetError, PeerReply, PeerRequest, PeerService, PeerTransport, Target,
};
use crate::tls::PeerClientTls;
use crate::types::NodeId;

/// Largest peer message (log batches, snapshot chunks).
pub const MAX_PEER_MESSAGE: usize = 256 << 20;

/// Sends peer requests to other member processes, one lazily connected channel per URL.
pub struct GrpcTransport {
    cluster_id: AtomicU64,
    from: AtomicU64,
    /// Channels by URL, with the generation of the client certificate they were made with.
    channels: Mutex<HashMap<String, (Channel, u64)>>,
    /// TLS towards `https` peer URLs.
    tls: Option<PeerClientTls>,
}

impl GrpcTransport {
    pub fn new(tls: Option<PeerClientTls>) -> Arc<Self> {
        Arc::new(GrpcTransport {
            cluster_id: AtomicU64::new(0),
            from: AtomicU64::new(0),
            channels: Mutex::new(HashMap::new()),
            tls,
        })
    }

    fn channel(&self, url: &str) -> Result<Channel, NetError> {
        let https = url.starts_with("https://");
        let generation = match (&self.tls, https) {
            (Some(t), true) => t.generation(),
            _ => 0,
        };
        let mut chans = self.channels.lock();
        if let Some((c, g)) = chans.get(url) {
            // A renewed certificate makes new connections, so they present it.
            if *g == generation {
                return Ok(c.clone());
            }
        }
        let mut ep = Endpoint::from_shared(url.to_string())
            .map_err(|e| NetError::Unreachable(format!("bad peer URL {url}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        if https {
            let tls = self.tls.as_ref().ok_or_else(|| {
                NetError::Unreachable(format!(
                    "peer URL {url} is https, and this member has no peer TLS \
                     (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file)"
                ))
            })?;
            let (cfg, _) = tls
                .config()
                .map_err(|e| NetError::Unreachable(format!("peer TLS for {url}: {e}")))?;
            ep = ep
                .tls_config(cfg)
                .map_err(|e| NetError::Unreachable(format!("peer TLS for {url}: {e}")))?;
        }
        let c = ep.connect_lazy();
        chans.insert(url.to_string(), (c.clone(), generation));
        Ok(c)
    }
}

impl PeerTransport for GrpcTransport {
    fn call(
        &self,
        target: Target,
        req: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<PeerReply, NetError>> {
        let cluster_id = self.cluster_id.load(Ordering::Relaxed);
        let from = self.from.load(Ordering::Relaxed);
        let channels: Vec<Result<Channel, NetError>> =
            target.urls.iter().map(|u| self.channel(u)).collect();
        Box::pin(async move {
            let payload = encode(&req)?;
            let mut last = NetError::Unreachable(format!("member {:?} has no peer URL", target.id));
            let mut payload = Some(payload);
            let n = channels.len();
            for (i, ch) in channels.into_iter().enumerate() {
                let ch = match ch {
                    Ok(c) => c,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
                let mut client = PeerClient::new(ch)
                    .max_decoding_message_size(MAX_PEER_MESSAGE)
                    .max_encoding_message_size(MAX_PEER_MESSAGE);
                let mut r = TRequest::new(WireRequest {
                    cluster_id,
                    from,
                    to: target.id.unwrap_or(0),
                    // Log batches are large: copy only when another URL may still need it.
                    payload: if i + 1 == n {
                        payload.take().unwrap_or_default()
                    } else {
                        payload.clone().unwrap_or_default()
                    },
                });
                r.set_timeout(timeout);
                match tokio::time::timeout(timeout, client.call(r)).await {
                    Ok(Ok(resp)) => return decode(&resp.into_inner().payload),
                    Ok(Err(s)) => {
                        last = match s.code() {
                            tonic::Code::Unavailable | tonic::Code::Unknown => {
                                NetError::Unreachable(s.message().to_string())
                            }
                            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                                NetError::Timeout(timeout)
                            }
                            _ => NetError::Other(s.message().to_string()),
                        };
                        if !matches!(last, NetError::Unreachable(_)) {
                            return Err(last);
                        }
                    }
                    Err(_) => return Err(NetError::Timeout(timeout)),
                }
            }
            Err(last)
        })
    }

    fn set_identity(&self, cluster_id: u64, member_id: NodeId) {
        self.cluster_id.store(cluster_id, Ordering::Relaxed);
        self.from.store(member_id, Ordering::Relaxed);
    }
}

/// The gRPC face of a member's [`PeerService`].
pub struct PeerGrpc {
    service: Arc<dyn PeerService>,
    cluster_id: u64,
}

impl PeerGrpc {
    pub fn server(service: Arc<dyn PeerService>, cluster_id: u64) -> PeerServer<PeerGrpc> {
        PeerServer::new(PeerGrpc {
            service,
            cluster_id,
        })
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE)
    }
}

#[tonic::async_trait]
impl Peer for PeerGrpc {
    async fn call(&self, request: TRequest<WireRequest>) -> Result<TResponse<WireReply>, Status> {
        let r = request.into_inner();
        // Cluster id 0 is a member that has not joined yet (it only asks to join).
        if r.cluster_id != 0 && r.cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "request from cluster {:x} sent to a member of cluster {:x}",
                r.cluster_id, self.cluster_id
            )));
        }
        let req: PeerRequest =
            decode(&r.payload).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if r.cluster_id == 0 && !matches!(req, PeerRequest::Forward(super::Forward::Join { .. })) {
            return Err(Status::failed_precondition(
                "peer request without a cluster id",
            ));
        }
        let reply = self.service.handle(r.from, req).await;
        let payload = encode(&reply).map_err(|e| Status::internal(e.to_string()))?;
        Ok(TResponse::new(WireReply { payload }))
    }
}
