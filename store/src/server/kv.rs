//! `etcdserverpb.KV`.

use std::sync::Arc;

use keelson_proto::etcdserverpb::{self as pb, kv_server::Kv};
use tonic::{Request, Response, Status};

use super::auth::{authenticated, authorize, txn_permitted};
use super::check_size;
use crate::auth::Access;
use crate::node::StoreNode;

pub struct KvService {
    node: Arc<StoreNode>,
}

impl KvService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        KvService { node }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        r: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        authorize(&self.node, &r, |st, u| {
            let q = r.get_ref();
            st.auth.permitted(u, Access::Read, &q.key, &q.range_end)
        })?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        Ok(Response::new(self.node.range(r).await?))
    }

    async fn put(&self, r: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        authorize(&self.node, &r, |st, u| {
            let q = r.get_ref();
            st.auth.permitted(u, Access::Write, &q.key, &[])
                && (!q.prev_kv || st.auth.permitted(u, Access::Read, &q.key, &[]))
        })?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        Ok(Response::new(self.node.put(r).await?))
    }

    async fn delete_range(
        &self,
        r: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        authorize(&self.node, &r, |st, u| {
            let q = r.get_ref();
            st.auth.permitted(u, Access::Write, &q.key, &q.range_end)
                && (!q.prev_kv || st.auth.permitted(u, Access::Read, &q.key, &q.range_end))
        })?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        Ok(Response::new(self.node.delete_range(r).await?))
    }

    async fn txn(&self, r: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        authorize(&self.node, &r, |st, u| {
            txn_permitted(&st.auth, u, r.get_ref())
        })?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        Ok(Response::new(self.node.txn(r).await?))
    }

    async fn compact(
        &self,
        r: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        // etcd 3.4 lets any authenticated user compact.
        authenticated(&self.node, &r)?;
        let r = r.into_inner();
        Ok(Response::new(
            self.node.compact(r.revision, r.physical).await?,
        ))
    }
}
