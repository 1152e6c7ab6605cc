//! `etcdserverpb.Maintenance`.

use std::pin::Pin;
use std::sync::Arc;

use keelson_proto::etcdserverpb::{
    self as pb, alarm_request::AlarmAction, maintenance_server::Maintenance,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::auth::admin;
use crate::node::StoreNode;
use crate::types::AlarmKind;

/// Bytes per `Snapshot` stream message (etcd sends 32 KiB).
const SNAPSHOT_CHUNK: usize = 32 * 1024;

pub struct MaintenanceService {
    node: Arc<StoreNode>,
}

impl MaintenanceService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        MaintenanceService { node }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = SnapshotStream;

    async fn alarm(
        &self,
        r: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        admin(&self.node, &r)?;
        let r = r.into_inner();
        let action = AlarmAction::try_from(r.action)
            .map_err(|_| Status::invalid_argument("etcdserver: unknown alarm action"))?;
        let alarms = match action {
            AlarmAction::Get => {
                let all = self.node.alarms();
                match AlarmKind::from_pb(r.alarm) {
                    None => all,
                    Some(k) => all.into_iter().filter(|a| a.alarm == k.to_pb()).collect(),
                }
            }
            AlarmAction::Activate | AlarmAction::Deactivate => match AlarmKind::from_pb(r.alarm) {
                None => Vec::new(),
                Some(kind) => {
                    self.node
                        .alarm_set(action == AlarmAction::Activate, r.member_id, kind)
                        .await?
                }
            },
        };
        // etcd answers alarm requests without a header.
        Ok(Response::new(pb::AlarmResponse {
            header: None,
            alarms,
        }))
    }

    async fn status(
        &self,
        _r: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.node.status()))
    }

    async fn defragment(
        &self,
        r: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        admin(&self.node, &r)?;
        self.node.defragment().await?;
        // Like etcd: no header.
        Ok(Response::new(pb::DefragmentResponse { header: None }))
    }

    async fn hash(
        &self,
        r: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        admin(&self.node, &r)?;
        let hash = self.node.hash()?;
        Ok(Response::new(pb::HashResponse {
            header: Some(self.node.header(0)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        r: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        admin(&self.node, &r)?;
        Ok(Response::new(self.node.hash_kv(r.into_inner().revision)?))
    }

    async fn snapshot(
        &self,
        r: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        admin(&self.node, &r)?;
        let data = self.node.snapshot().await?;
        let header = self.node.header(0);
        let total = data.len();
        let stream = async_stream::stream! {
            let mut sent = 0usize;
            for chunk in data.chunks(SNAPSHOT_CHUNK) {
                sent += chunk.len();
                yield Ok(pb::SnapshotResponse {
                    header: Some(header),
                    remaining_bytes: (total - sent) as u64,
                    blob: chunk.to_vec(),
                });
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn move_leader(
        &self,
        r: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        admin(&self.node, &r)?;
        self.node.move_leader(r.into_inner().target_id).await?;
        Ok(Response::new(pb::MoveLeaderResponse { header: None }))
    }

    async fn downgrade(
        &self,
        _r: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "keelson does not implement cluster downgrade (Maintenance.Downgrade)",
        ))
    }
}
