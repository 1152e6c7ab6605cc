//! The workload controllers inside `keelson server`: StatefulSet, DaemonSet, Job and CronJob,
//! on fake nodes with the kubelet stand-in of `harness/`.

#[path = "../common/mod.rs"]
mod common;
mod daemonset;
#[allow(dead_code)]
#[path = "../harness/mod.rs"]
mod harness;
mod job;
mod statefulset;
