//! keelson's scheduler and controllers.
//!
//! Every component here is an ordinary API client (kube-rs): it watches, lists and writes
//! through the apiserver like kubectl does, never through the store. Decisions are pure
//! functions over a snapshot of the objects (`scheduler::decide::schedule`,
//! `deployment::plan`), so most of the logic is tested without a server; a thin async
//! layer applies them.

pub mod assigned;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod informer;
pub mod job;
pub mod labels;
pub mod leader;
pub mod manager;
pub mod metrics;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod queue;
pub mod replicaset;
pub mod resources;
pub mod scheduler;
pub mod servicelb;
pub mod statefulset;

pub use error::{Error, Result};
