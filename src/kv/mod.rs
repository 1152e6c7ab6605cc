//! `keelson kv`: an etcd v3 client with etcdctl 3.4's commands, flags, output formats and
//! exit codes. It speaks the plain etcd v3 gRPC API, so it works against keelson and against
//! any etcd.
//!
//! Layout: `client` dials the endpoints from the global flags; `error` maps failures to
//! etcdctl's messages and exit codes; `output` holds the `-w` writers; every command group
//! lives in a module of its own.

mod alarm;
mod check;
pub mod client;
mod compaction;
mod concurrency;
mod defrag;
mod del;
mod elect;
mod endpoint;
pub mod error;
pub(crate) mod get;
mod lease;
mod lock;
mod member;
mod move_leader;
pub mod output;
mod put;
mod snapshot;
mod txn;
mod version;
mod watch;

use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use client::GlobalFlags;

#[derive(Args, Debug)]
pub struct KvArgs {
    #[command(flatten)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    pub command: KvCommand,
}

#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Gets the key or a range of keys.
    Get(get::GetArgs),
    /// Puts the given key into the store.
    Put(put::PutArgs),
    /// Removes the specified key or range of keys [key, range_end).
    Del(del::DelArgs),
    /// Txn processes all the requests in one transaction.
    Txn(txn::TxnArgs),
    /// Watches events stream on keys or prefixes.
    Watch(watch::WatchArgs),
    /// Compacts the event history in etcd.
    Compaction(compaction::CompactionArgs),
    /// Lease related commands.
    Lease(lease::LeaseArgs),
    /// Membership related commands.
    Member(member::MemberArgs),
    /// Endpoint related commands.
    Endpoint(endpoint::EndpointArgs),
    /// Manages etcd node snapshots.
    Snapshot(snapshot::SnapshotArgs),
    /// Defragments the storage of the etcd members with given endpoints.
    Defrag(defrag::DefragArgs),
    /// Alarm related commands.
    Alarm(alarm::AlarmArgs),
    /// Transfers leadership to another etcd cluster member.
    MoveLeader(move_leader::MoveLeaderArgs),
    /// Acquires a named lock.
    Lock(lock::LockArgs),
    /// Observes and participates in leader election.
    Elect(elect::ElectArgs),
    /// Prints the version of keelson kv.
    Version(version::VersionArgs),
    /// Checks the performance of the etcd cluster.
    Check(check::CheckArgs),
}

/// Runs one `keelson kv` command. Errors are printed here the way etcdctl prints them, and
/// the exit code is etcdctl's for that kind of error.
pub async fn run(args: KvArgs) -> anyhow::Result<ExitCode> {
    let KvArgs { global, command } = args;
    let result = match command {
        KvCommand::Get(a) => get::run(&global, a).await,
        KvCommand::Put(a) => put::run(&global, a).await,
        KvCommand::Del(a) => del::run(&global, a).await,
        KvCommand::Txn(a) => txn::run(&global, a).await,
        KvCommand::Watch(a) => watch::run(&global, a).await,
        KvCommand::Compaction(a) => compaction::run(&global, a).await,
        KvCommand::Lease(a) => lease::run(&global, a).await,
        KvCommand::Member(a) => member::run(&global, a).await,
        KvCommand::Endpoint(a) => endpoint::run(&global, a).await,
        KvCommand::Snapshot(a) => snapshot::run(&global, a).await,
        KvCommand::Defrag(a) => defrag::run(&global, a).await,
        KvCommand::Alarm(a) => alarm::run(&global, a).await,
        KvCommand::MoveLeader(a) => move_leader::run(&global, a).await,
        KvCommand::Lock(a) => lock::run(&global, a).await,
        KvCommand::Elect(a) => elect::run(&global, a).await,
        KvCommand::Version(a) => version::run(&global, a).await,
        KvCommand::Check(a) => check::run(&global, a).await,
    };
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(e.exit_code())
        }
    })
}
