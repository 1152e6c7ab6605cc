//! Runs the scheduler and the controllers, each set under its own leader lease
//! (`kube-scheduler` and `kube-controller-manager` in kube-system, the names Kubernetes uses),
//! so that in a multi-server cluster exactly one instance of each acts. Every term starts
//! from fresh informers: nothing a previous leader cached is trusted.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use crate::cronjob::CronJobController;
use crate::daemonset::DaemonSetController;
use crate::deployment::DeploymentController;
use crate::endpoints::EndpointsController;
use crate::gc::GarbageCollector;
use crate::informer::Shared;
use crate::job::JobController;
use crate::leader::{self, LeaderConfig};
use crate::namespace::NamespaceController;
use crate::nodelifecycle::NodeLifecycle;
use crate::replicaset::ReplicaSetController;
use crate::scheduler::Scheduler;
use crate::statefulset::StatefulSetController;

/// What to run, and how to elect.
#[derive(Clone, Debug)]
pub struct Options {
    pub scheduler: bool,
    pub controllers: bool,
    /// Leader lease duration (renew deadline and retry period scale with it).
    pub lease_duration: Duration,
    pub identity: String,
    /// How long a node may be silent before it is marked `Ready=Unknown`.
    pub node_monitor_grace_period: Duration,
    /// The cluster CA (PEM) published as `kube-root-ca.crt` in every namespace.
    pub root_ca: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            scheduler: true,
            controllers: true,
            lease_duration: Duration::from_secs(15),
            identity: leader::default_identity(),
            node_monitor_grace_period: Duration::from_secs(50),
            root_ca: None,
        }
    }
}

/// Runs everything enabled until `stop` turns true.
pub async fn run(client: Client, opts: Options, stop: watch::Receiver<bool>) {
    let mut tasks = Vec::new();
    if opts.scheduler {
        let cfg = LeaderConfig::new("kube-scheduler", opts.identity.clone())
            .with_lease_duration(opts.lease_duration);
        let c = client.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(leader::run(
            client.clone(),
            cfg,
            stop,
            move |lost| {
                let sched = Scheduler::new(c.clone());
                async move { sched.run(lost).await }
            },
        )));
    }
    if opts.controllers {
        let cfg = LeaderConfig::new("kube-controller-manager", opts.identity.clone())
            .with_lease_duration(opts.lease_duration);
        let c = client.clone();
        let grace = opts.node_monitor_grace_period;
        let root_ca = opts.root_ca.clone();
        tasks.push(tokio::spawn(leader::run(
            client.clone(),
            cfg,
            stop.clone(),
            move |lost| controllers(c.clone(), grace, root_ca.clone(), lost),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// One leadership term of the controllers.
async fn controllers(
    client: Client,
    grace: Duration,
    root_ca: Option<String>,
    lost: watch::Receiver<bool>,
) {
    // One pod and one node watch for every controller of this term.
    let shared = Shared::new();
    let rs = ReplicaSetController::new(client.clone(), &shared);
    let deploy = DeploymentController::new(client.clone(), &shared);
    let gc = GarbageCollector::new(client.clone());
    let ns = NamespaceController::new(client.clone(), root_ca);
    let nodes = NodeLifecycle::new(client.clone(), grace, &shared);
    let endpoints = EndpointsController::new(client.clone(), &shared);
    let sts = StatefulSetController::new(client.clone(), &shared);
    let ds = DaemonSetController::new(client.clone(), &shared);
    let job = JobController::new(client.clone(), &shared);
    let cron = CronJobController::new(client.clone());
    let all: Vec<tokio::task::JoinHandle<()>> = vec![
        tokio::spawn(Arc::clone(&rs).run(lost.clone())),
        tokio::spawn(Arc::clone(&deploy).run(lost.clone())),
        tokio::spawn(Arc::clone(&gc).run(lost.clone())),
        tokio::spawn(Arc::clone(&ns).run(lost.clone())),
        tokio::spawn(Arc::clone(&nodes).run(lost.clone())),
        tokio::spawn(Arc::clone(&endpoints).run(lost.clone())),
        tokio::spawn(Arc::clone(&sts).run(lost.clone())),
        tokio::spawn(Arc::clone(&ds).run(lost.clone())),
        tokio::spawn(Arc::clone(&job).run(lost.clone())),
        tokio::spawn(Arc::clone(&cron).run(lost.clone())),
    ];
    for t in all {
        let _ = t.await;
    }
}
