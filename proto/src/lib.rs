//! The etcd v3 gRPC wire protocol, as prost messages and tonic services, plus
//! keelson's internal member-to-member protocol, and the standard gRPC health
//! checking protocol (for the kubelet's grpc probes).
//!
//! The `.proto` sources under `proto/` were written for keelson from etcd's
//! documented wire format (etcd 3.5): package, message, field and method names
//! and field numbers match etcd exactly, so stock etcd clients (`etcdctl`, the
//! `etcd-client` crate, client-go) can talk to a keelson server.
//!
//! Each protobuf package is a top-level module here, so the `super::mvccpb`
//! style paths that prost emits for cross-package references resolve.

pub mod quantity;

/// `mvccpb`: key-value records and watch events.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// `authpb`: users, roles and permissions.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// `etcdserverpb`: the KV, Watch, Lease, Cluster, Maintenance and Auth services.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// `v3lockpb`: the Lock service.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// `v3electionpb`: the Election service.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// `keelson.peer`: keelson's internal member-to-member protocol (not etcd).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod peer {
    tonic::include_proto!("keelson.peer");
}

/// `grpc.health.v1`: the standard gRPC health checking protocol, which the kubelet's grpc
/// container probes speak.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod health {
    tonic::include_proto!("grpc.health.v1");
}
