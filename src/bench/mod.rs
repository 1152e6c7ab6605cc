//! `keelson bench`: load generators for etcd v3 endpoints, and a side-by-side
//! comparison with etcd.
//!
//! - `keelson bench kv <workload>`: etcd `tools/benchmark`-style workloads
//!   (put, range, txn-put, txn-mixed, watch, watch-latency, lease-keepalive)
//!   against any etcd v3 endpoint, reported like etcd's benchmark or as JSON.
//! - `keelson bench compare-etcd`: starts a 3-member etcd and a 3-member
//!   keelson on loopback and measures both with the same workloads.
//! - `keelson bench api`: pods through the Kubernetes API of a 3-member
//!   `keelson server` cluster, judged against the Kubernetes SLOs.
//! - `keelson bench density`: fake nodes and pods through one `keelson server`: scheduler
//!   throughput and pod startup latency.
//! - `keelson bench pod-start`: real pods on Podman through `keelson agent`, against raw
//!   Podman measured in the same run.
//! - `keelson bench failover`: kill -9 the leader of a 3-member etcd and a 3-member keelson,
//!   time until a surviving member acknowledges a put.

mod api;
mod compare;
mod density;
mod engine;
mod error;
mod failover;
mod kv;
mod podstart;
mod report;
mod servers;
mod util;

use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use error::BenchError;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Load-generate against any etcd v3 endpoint (etcd's `benchmark` workloads and flags).
    Kv(kv::KvBenchArgs),
    /// Start a 3-member etcd 3.4 and a 3-member keelson on loopback and compare them.
    CompareEtcd(compare::CompareArgs),
    /// Pods through the Kubernetes API of a 3-member `keelson server` cluster, against the SLOs.
    Api(api::ApiArgs),
    /// Fake nodes and pods through one `keelson server`: scheduler throughput, pod startup.
    Density(density::DensityArgs),
    /// Real busybox pods on Podman via `kubectl apply` and `keelson agent`, against raw Podman.
    PodStart(podstart::PodStartArgs),
    /// Kill -9 the leader of a 3-member etcd 3.4 and a 3-member keelson, time until writes resume.
    Failover(failover::FailoverArgs),
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Kv(args) => {
            let output = args.common.output;
            let report = tokio::select! {
                r = kv::run(args) => r?,
                _ = shutdown_signal() => return Err(BenchError::Interrupted.into()),
            };
            kv::print(&report, output);
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Api(args) => {
            tokio::select! {
                r = api::run(args) => r?,
                _ = shutdown_signal() => return Err(BenchError::Interrupted.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Density(args) => {
            tokio::select! {
                r = density::run(args) => r?,
                _ = shutdown_signal() => return Err(BenchError::Interrupted.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::PodStart(args) => {
            // Dropping the bench future stops the agent and server it started (by PID) and
            // removes its Podman pods.
            tokio::select! {
                r = podstart::run(args) => r?,
                _ = shutdown_signal() => return Err(BenchError::Interrupted.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Failover(args) => {
            // Dropping the benchmark future kills every member it started (by PID).
            tokio::select! {
                r = failover::run(args) => r?,
                _ = shutdown_signal() => return Err(BenchError::Interrupted.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::CompareEtcd(args) => {
            // Dropping the comparison future kills every member it started (by PID).
            tokio::select! {
                r = compare::run(args) => r?,
                _ = shutdown_signal() => return Err(BenchError::Interrupted.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
