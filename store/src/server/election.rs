//! `v3electionpb.Election`: leader election on leases (etcd's election service).
//!
//! etcd's `clientv3/concurrency` Election recipe on the member API: a candidate is a key
//! `name/<lease in hex>` holding its value, attached to its lease; the oldest candidate (lowest
//! create revision) under `name/` is the leader. Shared pieces and the error conventions are in
//! [`super::lock`].

use std::pin::Pin;
use std::sync::Arc;

use keelson_proto::etcdserverpb::{self as epb, ResponseHeader};
use keelson_proto::v3electionpb::{self as pb, election_server::Election};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::auth::on_prefix;
use super::check_size;
use super::lock::{
    acquire, client_status, create_revision_is, election_prefix, first_created, get_key, header_of,
    is_delete, prefix_end, put_op, range_kvs, range_op, session_key, session_lease, wait_deletes,
    HubWatch, Undo,
};
use crate::auth::Access;
use crate::node::StoreNode;
use crate::watch::WatchFilter;

/// `concurrency.ErrElectionNotLeader`.
const ERR_NOT_LEADER: &str = "election: not leader";
/// `concurrency.ErrElectionNoLeader`.
const ERR_NO_LEADER: &str = "election: no leader";
/// `v3election.ErrMissingLeaderKey`.
const ERR_MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

pub struct ElectionService {
    node: Arc<StoreNode>,
}

impl ElectionService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        ElectionService { node }
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::LeaderResponse, Status>> + Send>>;

/// `Election.Proclaim`: sets the leader key's value, provided the key is still the one created
/// at `rev`.
async fn proclaim(
    node: &StoreNode,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: Vec<u8>,
) -> Result<ResponseHeader, Status> {
    let resp = node
        .txn(epb::TxnRequest {
            compare: vec![create_revision_is(key, rev)],
            success: vec![put_op(key, value, lease)],
            failure: Vec::new(),
        })
        .await
        .map_err(client_status)?;
    if !resp.succeeded {
        return Err(Status::unknown(ERR_NOT_LEADER));
    }
    Ok(header_of(node, resp.header))
}

#[tonic::async_trait]
impl Election for ElectionService {
    type ObserveStream = ObserveStream;

    async fn campaign(
        &self,
        r: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        on_prefix(&self.node, &r, &r.get_ref().name, Access::Write)?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        let node = &self.node;
        let lease = session_lease(node, r.lease).await?;
        let prefix = election_prefix(r.name.clone());
        let key = session_key(&prefix, lease);

        // Enter the race (or find our candidacy from an earlier campaign on this lease).
        let txn = epb::TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![put_op(&key, r.value.clone(), lease)],
            failure: vec![range_op(get_key(&key))],
        };
        let (resp, mut cleanup) = acquire(node, txn, &key).await?;
        let header = header_of(node, resp.header);
        let mut rev = header.revision;
        if !resp.succeeded {
            let kv = range_kvs(&resp, 0).first().ok_or_else(|| {
                Status::internal("election: existing key missing from its txn response")
            })?;
            rev = kv.create_revision;
            let differs = kv.value != r.value;
            cleanup.set(Undo::resign(key.clone(), rev));
            if differs {
                if let Err(e) = proclaim(node, &key, rev, lease, r.value.clone()).await {
                    cleanup.run().await;
                    return Err(e);
                }
            }
        }

        // Wait for every earlier candidate to go. If the request is abandoned meanwhile the
        // candidacy resigns (the armed clean-up); if the wait fails it is left in place, as etcd
        // does.
        let waited = wait_deletes(node, &prefix, rev - 1).await;
        cleanup.disarm();
        waited?;
        Ok(Response::new(pb::CampaignResponse {
            header: Some(header),
            leader: Some(pb::LeaderKey {
                name: r.name,
                key,
                rev,
                lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        r: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        on_prefix(
            &self.node,
            &r,
            leader_name(&r.get_ref().leader),
            Access::Write,
        )?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        let leader = r
            .leader
            .ok_or_else(|| Status::unknown(ERR_MISSING_LEADER_KEY))?;
        let lease = session_lease(&self.node, leader.lease).await?;
        let header = proclaim(&self.node, &leader.key, leader.rev, lease, r.value).await?;
        Ok(Response::new(pb::ProclaimResponse {
            header: Some(header),
        }))
    }

    async fn leader(
        &self,
        r: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        on_prefix(&self.node, &r, &r.get_ref().name, Access::Read)?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        let prefix = election_prefix(r.name);
        let resp = self
            .node
            .range(first_created(&prefix))
            .await
            .map_err(client_status)?;
        let header = header_of(&self.node, resp.header);
        let kv = resp
            .kvs
            .into_iter()
            .next()
            .ok_or_else(|| Status::unknown(ERR_NO_LEADER))?;
        Ok(Response::new(pb::LeaderResponse {
            header: Some(header),
            kv: Some(kv),
        }))
    }

    async fn observe(
        &self,
        r: Request<pb::LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        on_prefix(&self.node, &r, &r.get_ref().name, Access::Read)?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        Ok(Response::new(Box::pin(observe(
            self.node.clone(),
            election_prefix(r.name),
        ))))
    }

    async fn resign(
        &self,
        r: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        on_prefix(
            &self.node,
            &r,
            leader_name(&r.get_ref().leader),
            Access::Write,
        )?;
        let r = r.into_inner();
        check_size(&self.node, &r)?;
        let leader = r
            .leader
            .ok_or_else(|| Status::unknown(ERR_MISSING_LEADER_KEY))?;
        // Not being the leader (any more) is no error: the guarded delete just does nothing.
        let header = Undo::resign(leader.key, leader.rev)
            .run(&self.node)
            .await
            .map_err(client_status)?;
        Ok(Response::new(pb::ResignResponse {
            header: Some(header),
        }))
    }
}

/// etcd's `Election.observe`: the current leader, then every new value of the leader key and,
/// once it is deleted, the next leader; a stream that ends quietly when the store fails it (as
/// etcd's does), with "server stopped" when the member shuts down, and whenever the client goes
/// away (dropping the stream closes its watches).
fn observe(
    node: Arc<StoreNode>,
    prefix: Vec<u8>,
) -> impl Stream<Item = Result<pb::LeaderResponse, Status>> + Send {
    use super::lock::WatchEnd;

    async_stream::stream! {
        loop {
            let Ok(resp) = node.range(first_created(&prefix)).await else {
                return;
            };
            let header = header_of(&node, resp.header);
            let (header, kv) = match resp.kvs.into_iter().next() {
                Some(kv) => (header, kv),
                None => {
                    // No leader: wait for the first candidate to appear.
                    let filter = WatchFilter {
                        key: prefix.clone(),
                        range_end: prefix_end(&prefix),
                        no_put: false,
                        no_delete: true,
                    };
                    let Ok(mut w) = HubWatch::open(&node, filter, header.revision) else {
                        return;
                    };
                    let kv = loop {
                        match w.next().await {
                            Ok((_, events)) => {
                                if let Some(kv) = events.into_iter().find(|e| !is_delete(e)).and_then(|e| e.kv) {
                                    break kv;
                                }
                            }
                            Err(WatchEnd::Stopped) => {
                                yield Err(crate::error::EtcdError::Stopped.into());
                                return;
                            }
                            Err(_) => return,
                        }
                    };
                    (node.header(kv.mod_revision), kv)
                }
            };
            let key = kv.key.clone();
            yield Ok(pb::LeaderResponse { header: Some(header), kv: Some(kv) });

            // Follow the leader key until it is deleted.
            let filter = WatchFilter {
                key,
                range_end: Vec::new(),
                no_put: false,
                no_delete: false,
            };
            let Ok(mut w) = HubWatch::open(&node, filter, header.revision + 1) else {
                return;
            };
            'follow: loop {
                match w.next().await {
                    Ok((revision, events)) => {
                        for ev in events {
                            if is_delete(&ev) {
                                break 'follow;
                            }
                            yield Ok(pb::LeaderResponse { header: Some(node.header(revision)), kv: ev.kv });
                        }
                    }
                    Err(WatchEnd::Stopped) => {
                        yield Err(crate::error::EtcdError::Stopped.into());
                        return;
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

/// The election a leader key belongs to (empty without one: the request fails further on).
fn leader_name(leader: &Option<pb::LeaderKey>) -> &[u8] {
    leader
        .as_ref()
        .map(|l| l.name.as_slice())
        .unwrap_or_default()
}
