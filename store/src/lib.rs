//! keelson's replicated, etcd v3 compatible key-value store.
//!
//! A member ([`node::StoreNode`]) runs openraft over RocksDB: the raft log and an MVCC state
//! machine with etcd's exact semantics share one database. The etcd v3 gRPC API
//! ([`server`]) is a thin layer over the member's Rust API, which the apiserver also uses
//! in-process.

pub mod auth;
pub mod config;
pub mod error;
pub mod fuzz;
pub mod lease;
pub mod metrics;
pub mod mvcc;
pub mod network;
pub mod node;
pub mod restore;
pub mod storage;
pub mod tls;
mod transfer;
pub mod types;
pub mod watch;

pub use config::StoreConfig;
pub use error::{EtcdError, StoreError};
pub use node::{NodeOptions, StoreNode};
pub mod server;
