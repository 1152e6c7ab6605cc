//! Service names and the full gRPC path of every method, as the generated
//! clients send them. etcd clients address methods by these exact paths.

use std::sync::{Arc, Mutex};

use keelson_proto::{etcdserverpb as pb, peer, v3electionpb, v3lockpb};
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Context, Poll, Service, StdError};
use tonic::{Response, Status, Streaming};

/// A transport that records each request's path and then fails it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Service<http::Request<Body>> for Recorder {
    type Response = http::Response<Body>;
    type Error = StdError;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        self.0.lock().unwrap().push(req.uri().path().to_owned());
        Box::pin(async { Err("recorder: no server behind this transport".into()) })
    }
}

/// Compile-time check that a call is server-streaming.
fn streams<T>(_: &Result<Response<Streaming<T>>, Status>) {}

/// A request stream with nothing in it, for client-streaming calls.
fn none<T: Send + 'static>() -> tokio_stream::Iter<std::vec::IntoIter<T>> {
    tokio_stream::iter(Vec::new())
}

#[test]
fn service_names() {
    assert_eq!(pb::kv_server::SERVICE_NAME, "etcdserverpb.KV");
    assert_eq!(pb::watch_server::SERVICE_NAME, "etcdserverpb.Watch");
    assert_eq!(pb::lease_server::SERVICE_NAME, "etcdserverpb.Lease");
    assert_eq!(pb::cluster_server::SERVICE_NAME, "etcdserverpb.Cluster");
    assert_eq!(
        pb::maintenance_server::SERVICE_NAME,
        "etcdserverpb.Maintenance"
    );
    assert_eq!(pb::auth_server::SERVICE_NAME, "etcdserverpb.Auth");
    assert_eq!(v3lockpb::lock_server::SERVICE_NAME, "v3lockpb.Lock");
    assert_eq!(
        v3electionpb::election_server::SERVICE_NAME,
        "v3electionpb.Election"
    );
    assert_eq!(peer::peer_server::SERVICE_NAME, "keelson.peer.Peer");
}

#[tokio::test]
async fn kv_watch_lease_paths() {
    let rec = Recorder::default();

    let mut kv = pb::kv_client::KvClient::new(rec.clone());
    let _ = kv.range(pb::RangeRequest::default()).await;
    let _ = kv.put(pb::PutRequest::default()).await;
    let _ = kv.delete_range(pb::DeleteRangeRequest::default()).await;
    let _ = kv.txn(pb::TxnRequest::default()).await;
    let _ = kv.compact(pb::CompactionRequest::default()).await;
    assert_eq!(
        rec.take(),
        [
            "/etcdserverpb.KV/Range",
            "/etcdserverpb.KV/Put",
            "/etcdserverpb.KV/DeleteRange",
            "/etcdserverpb.KV/Txn",
            "/etcdserverpb.KV/Compact",
        ]
    );

    let mut watch = pb::watch_client::WatchClient::new(rec.clone());
    let r = watch.watch(none::<pb::WatchRequest>()).await;
    streams::<pb::WatchResponse>(&r);
    assert_eq!(rec.take(), ["/etcdserverpb.Watch/Watch"]);

    let mut lease = pb::lease_client::LeaseClient::new(rec.clone());
    let _ = lease.lease_grant(pb::LeaseGrantRequest::default()).await;
    let _ = lease.lease_revoke(pb::LeaseRevokeRequest::default()).await;
    let r = lease
        .lease_keep_alive(none::<pb::LeaseKeepAliveRequest>())
        .await;
    streams::<pb::LeaseKeepAliveResponse>(&r);
    let _ = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest::default())
        .await;
    let _ = lease.lease_leases(pb::LeaseLeasesRequest::default()).await;
    assert_eq!(
        rec.take(),
        [
            "/etcdserverpb.Lease/LeaseGrant",
            "/etcdserverpb.Lease/LeaseRevoke",
            "/etcdserverpb.Lease/LeaseKeepAlive",
            "/etcdserverpb.Lease/LeaseTimeToLive",
            "/etcdserverpb.Lease/LeaseLeases",
        ]
    );
}

#[tokio::test]
async fn cluster_maintenance_paths() {
    let rec = Recorder::default();

    let mut cluster = pb::cluster_client::ClusterClient::new(rec.clone());
    let _ = cluster.member_add(pb::MemberAddRequest::default()).await;
    let _ = cluster
        .member_remove(pb::MemberRemoveRequest::default())
        .await;
    let _ = cluster
        .member_update(pb::MemberUpdateRequest::default())
        .await;
    let _ = cluster.member_list(pb::MemberListRequest::default()).await;
    let _ = cluster
        .member_promote(pb::MemberPromoteRequest::default())
        .await;
    assert_eq!(
        rec.take(),
        [
            "/etcdserverpb.Cluster/MemberAdd",
            "/etcdserverpb.Cluster/MemberRemove",
            "/etcdserverpb.Cluster/MemberUpdate",
            "/etcdserverpb.Cluster/MemberList",
            "/etcdserverpb.Cluster/MemberPromote",
        ]
    );

    let mut m = pb::maintenance_client::MaintenanceClient::new(rec.clone());
    let _ = m.alarm(pb::AlarmRequest::default()).await;
    let _ = m.status(pb::StatusRequest::default()).await;
    let _ = m.defragment(pb::DefragmentRequest::default()).await;
    let _ = m.hash(pb::HashRequest::default()).await;
    let _ = m.hash_kv(pb::HashKvRequest::default()).await;
    let r = m.snapshot(pb::SnapshotRequest::default()).await;
    streams::<pb::SnapshotResponse>(&r);
    let _ = m.move_leader(pb::MoveLeaderRequest::default()).await;
    let _ = m.downgrade(pb::DowngradeRequest::default()).await;
    assert_eq!(
        rec.take(),
        [
            "/etcdserverpb.Maintenance/Alarm",
            "/etcdserverpb.Maintenance/Status",
            "/etcdserverpb.Maintenance/Defragment",
            "/etcdserverpb.Maintenance/Hash",
            "/etcdserverpb.Maintenance/HashKV",
            "/etcdserverpb.Maintenance/Snapshot",
            "/etcdserverpb.Maintenance/MoveLeader",
            "/etcdserverpb.Maintenance/Downgrade",
        ]
    );
}

#[tokio::test]
async fn auth_paths() {
    let rec = Recorder::default();
    let mut a = pb::auth_client::AuthClient::new(rec.clone());
    let _ = a.auth_enable(pb::AuthEnableRequest::default()).await;
    let _ = a.auth_disable(pb::AuthDisableRequest::default()).await;
    let _ = a.auth_status(pb::AuthStatusRequest::default()).await;
    let _ = a.authenticate(pb::AuthenticateRequest::default()).await;
    let _ = a.user_add(pb::AuthUserAddRequest::default()).await;
    let _ = a.user_get(pb::AuthUserGetRequest::default()).await;
    let _ = a.user_list(pb::AuthUserListRequest::default()).await;
    let _ = a.user_delete(pb::AuthUserDeleteRequest::default()).await;
    let _ = a
        .user_change_password(pb::AuthUserChangePasswordRequest::default())
        .await;
    let _ = a
        .user_grant_role(pb::AuthUserGrantRoleRequest::default())
        .await;
    let _ = a
        .user_revoke_role(pb::AuthUserRevokeRoleRequest::default())
        .await;
    let _ = a.role_add(pb::AuthRoleAddRequest::default()).await;
    let _ = a.role_get(pb::AuthRoleGetRequest::default()).await;
    let _ = a.role_list(pb::AuthRoleListRequest::default()).await;
    let _ = a.role_delete(pb::AuthRoleDeleteRequest::default()).await;
    let _ = a
        .role_grant_permission(pb::AuthRoleGrantPermissionRequest::default())
        .await;
    let _ = a
        .role_revoke_permission(pb::AuthRoleRevokePermissionRequest::default())
        .await;
    assert_eq!(
        rec.take(),
        [
            "/etcdserverpb.Auth/AuthEnable",
            "/etcdserverpb.Auth/AuthDisable",
            "/etcdserverpb.Auth/AuthStatus",
            "/etcdserverpb.Auth/Authenticate",
            "/etcdserverpb.Auth/UserAdd",
            "/etcdserverpb.Auth/UserGet",
            "/etcdserverpb.Auth/UserList",
            "/etcdserverpb.Auth/UserDelete",
            "/etcdserverpb.Auth/UserChangePassword",
            "/etcdserverpb.Auth/UserGrantRole",
            "/etcdserverpb.Auth/UserRevokeRole",
            "/etcdserverpb.Auth/RoleAdd",
            "/etcdserverpb.Auth/RoleGet",
            "/etcdserverpb.Auth/RoleList",
            "/etcdserverpb.Auth/RoleDelete",
            "/etcdserverpb.Auth/RoleGrantPermission",
            "/etcdserverpb.Auth/RoleRevokePermission",
        ]
    );
}

#[tokio::test]
async fn lock_election_peer_paths() {
    let rec = Recorder::default();

    let mut lock = v3lockpb::lock_client::LockClient::new(rec.clone());
    let _ = lock.lock(v3lockpb::LockRequest::default()).await;
    let _ = lock.unlock(v3lockpb::UnlockRequest::default()).await;
    assert_eq!(rec.take(), ["/v3lockpb.Lock/Lock", "/v3lockpb.Lock/Unlock"]);

    let mut e = v3electionpb::election_client::ElectionClient::new(rec.clone());
    let _ = e.campaign(v3electionpb::CampaignRequest::default()).await;
    let _ = e.proclaim(v3electionpb::ProclaimRequest::default()).await;
    let _ = e.leader(v3electionpb::LeaderRequest::default()).await;
    let r = e.observe(v3electionpb::LeaderRequest::default()).await;
    streams::<v3electionpb::LeaderResponse>(&r);
    let _ = e.resign(v3electionpb::ResignRequest::default()).await;
    assert_eq!(
        rec.take(),
        [
            "/v3electionpb.Election/Campaign",
            "/v3electionpb.Election/Proclaim",
            "/v3electionpb.Election/Leader",
            "/v3electionpb.Election/Observe",
            "/v3electionpb.Election/Resign",
        ]
    );

    let mut p = peer::peer_client::PeerClient::new(rec.clone());
    let _ = p.call(peer::PeerRequest::default()).await;
    assert_eq!(rec.take(), ["/keelson.peer.Peer/Call"]);
}
