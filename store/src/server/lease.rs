//! `etcdserverpb.Lease`.

use std::pin::Pin;
use std::sync::Arc;

use keelson_proto::etcdserverpb::{self as pb, lease_server::Lease};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{authenticated, authorize};

use crate::auth::Access;
use crate::node::StoreNode;

pub struct LeaseService {
    node: Arc<StoreNode>,
}

impl LeaseService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        LeaseService { node }
    }
}

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_grant(
        &self,
        r: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        authenticated(&self.node, &r)?;
        let r = r.into_inner();
        Ok(Response::new(self.node.lease_grant(r.id, r.ttl).await?))
    }

    async fn lease_revoke(
        &self,
        r: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        // Revoking deletes the lease's keys: the caller must be allowed to write each.
        authorize(&self.node, &r, |st, u| {
            st.leases.get(&r.get_ref().id).is_none_or(|l| {
                l.keys
                    .iter()
                    .all(|k| st.auth.permitted(u, Access::Write, k, &[]))
            })
        })?;
        Ok(Response::new(
            self.node.lease_revoke(r.into_inner().id).await?,
        ))
    }

    async fn lease_keep_alive(
        &self,
        r: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        authenticated(&self.node, &r)?;
        let mut inbound = r.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let node = self.node.clone();
        tokio::spawn(async move {
            loop {
                let req = match inbound.message().await {
                    Ok(Some(req)) => req,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "keep-alive stream ended");
                        return;
                    }
                };
                let out = match node.lease_keep_alive(req.id).await {
                    Ok(ttl) => Ok(pb::LeaseKeepAliveResponse {
                        header: Some(node.header(0)),
                        id: req.id,
                        ttl,
                    }),
                    Err(e) => Err(Status::from(e)),
                };
                let failed = out.is_err();
                if tx.send(out).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        r: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        authenticated(&self.node, &r)?;
        let r = r.into_inner();
        Ok(Response::new(
            self.node.lease_time_to_live(r.id, r.keys).await?,
        ))
    }

    async fn lease_leases(
        &self,
        r: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        authenticated(&self.node, &r)?;
        Ok(Response::new(self.node.lease_leases()))
    }
}
