//! `etcdserverpb.Cluster`: membership on top of openraft's membership changes.

use std::sync::Arc;

use keelson_proto::etcdserverpb::{self as pb, cluster_server::Cluster};
use tonic::{Request, Response, Status};

use super::auth::{admin, authenticated};
use crate::node::StoreNode;

pub struct ClusterService {
    node: Arc<StoreNode>,
}

impl ClusterService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        ClusterService { node }
    }

    /// etcd's cluster responses carry no revision.
    fn header(&self) -> pb::ResponseHeader {
        pb::ResponseHeader {
            revision: 0,
            ..self.node.header(0)
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        r: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        admin(&self.node, &r)?;
        let r = r.into_inner();
        let member = self.node.member_add(r.peer_ur_ls, r.is_learner).await?;
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(self.header()),
            member: Some(member),
            members: self.node.member_list(),
        }))
    }

    async fn member_remove(
        &self,
        r: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        admin(&self.node, &r)?;
        self.node.member_remove(r.into_inner().id).await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(self.header()),
            members: self.node.member_list(),
        }))
    }

    async fn member_update(
        &self,
        r: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        admin(&self.node, &r)?;
        let r = r.into_inner();
        self.node.member_update(r.id, r.peer_ur_ls).await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: Some(self.header()),
            members: self.node.member_list(),
        }))
    }

    async fn member_list(
        &self,
        r: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        authenticated(&self.node, &r)?;
        if r.into_inner().linearizable {
            self.node.linearize().await?;
        }
        Ok(Response::new(pb::MemberListResponse {
            header: Some(self.header()),
            members: self.node.member_list(),
        }))
    }

    async fn member_promote(
        &self,
        r: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        admin(&self.node, &r)?;
        self.node.member_promote(r.into_inner().id).await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: Some(self.header()),
            members: self.node.member_list(),
        }))
    }
}
