//! Compiles the etcd v3, gRPC health and keelson peer protocols with the pure-Rust `protox`
//! compiler (no `protoc` needed), then generates prost messages and tonic
//! clients and servers from the resulting descriptor set.

use std::path::Path;

/// Every file compiled, relative to `proto/`. Imports resolve from there too,
/// so `import "etcd/api/mvccpb/kv.proto"` works as it does in etcd.
const FILES: &[&str] = &[
    "etcd/api/mvccpb/kv.proto",
    "etcd/api/authpb/auth.proto",
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
    "keelson/peer.proto",
    "grpc/health/v1/health.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    println!("cargo:rerun-if-changed=proto");
    for file in FILES {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }

    let fds = protox::compile(FILES, [root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
