//! Runs the scheduler and the controllers, each set under its own leader lease
//! (`kube-scheduler` and `kube-controller-manager` in kube-system, the names Kubernetes uses),
//! so that in a multi-server cluster exactly one instance of each acts. Every term starts
//! from fresh informers: nothing a previous leader cached is trusted.

use std::collections::HashMap;
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
    /// Addresses for LoadBalancer Services (`--service-lb-pool`); None: they stay pending.
    pub service_lb_pool: Option<crate::servicelb::Pool>,
    /// `--cluster-cidr` with `--node-cidr-mask-size`: each Node gets a block of it as its
    /// `spec.podCIDR`. None: nobody assigns them.
    pub cluster_cidr: Option<crate::nodeipam::ClusterCidr>,
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
            service_lb_pool: None,
            cluster_cidr: None,
        }
    }
}

/// The controllers, by the names of the ServiceAccounts they act as in kube-system
/// (Kubernetes' names: their roles are `system:controller:<name>`).
pub const CONTROLLERS: &[&str] = &[
    "replicaset-controller",
    "deployment-controller",
    "generic-garbage-collector",
    "namespace-controller",
    "node-controller",
    "endpoint-controller",
    "statefulset-controller",
    "daemon-set-controller",
    "job-controller",
    "cronjob-controller",
    "service-controller",
];

/// The API clients the manager runs with: its own (leader election, and the informers the
/// controllers share) and, by controller name, the identity each controller acts as, like
/// kube-controller-manager's `--use-service-account-credentials`. A controller without a
/// client of its own uses the manager's.
#[derive(Clone)]
pub struct Clients {
    manager: Client,
    controllers: HashMap<&'static str, Client>,
}

impl Clients {
    /// Every controller with the manager's own client.
    pub fn shared(manager: Client) -> Clients {
        Clients {
            manager,
            controllers: HashMap::new(),
        }
    }

    /// Controller `name` (one of [`CONTROLLERS`]) acts with `client`.
    pub fn with(mut self, name: &'static str, client: Client) -> Clients {
        self.controllers.insert(name, client);
        self
    }

    fn of(&self, name: &str) -> Client {
        debug_assert!(CONTROLLERS.contains(&name), "unknown controller {name}");
        self.controllers.get(name).unwrap_or(&self.manager).clone()
    }
}

impl From<Client> for Clients {
    fn from(c: Client) -> Clients {
        Clients::shared(c)
    }
}

/// Runs everything enabled until `stop` turns true.
pub async fn run(clients: impl Into<Clients>, opts: Options, stop: watch::Receiver<bool>) {
    let clients = clients.into();
    let client = clients.manager.clone();
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
        let opts = opts.clone();
        tasks.push(tokio::spawn(leader::run(
            client.clone(),
            cfg,
            stop.clone(),
            move |lost| controllers(clients.clone(), opts.clone(), lost),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// One leadership term of the controllers.
async fn controllers(clients: Clients, opts: Options, lost: watch::Receiver<bool>) {
    let grace = opts.node_monitor_grace_period;
    let root_ca = opts.root_ca;
    // One pod and one node watch for every controller of this term.
    let shared = Shared::new();
    let c = |name| clients.of(name);
    let rs = ReplicaSetController::new(c("replicaset-controller"), &shared);
    let deploy = DeploymentController::new(c("deployment-controller"), &shared);
    let gc = GarbageCollector::new(c("generic-garbage-collector"));
    let ns = NamespaceController::new(c("namespace-controller"), root_ca);
    let nodes = NodeLifecycle::new(c("node-controller"), grace, &shared);
    let endpoints = EndpointsController::new(c("endpoint-controller"), &shared);
    let sts = StatefulSetController::new(c("statefulset-controller"), &shared);
    let ds = DaemonSetController::new(c("daemon-set-controller"), &shared);
    let job = JobController::new(c("job-controller"), &shared);
    let cron = CronJobController::new(c("cronjob-controller"));
    let lb = opts
        .service_lb_pool
        .map(|pool| crate::servicelb::ServiceLb::new(c("service-controller"), pool));
    let mut all: Vec<tokio::task::JoinHandle<()>> = vec![
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
    if let Some(lb) = lb {
        all.push(tokio::spawn(lb.run(lost.clone())));
    }
    // Kubernetes' node IPAM runs with the node controller's identity.
    if let Some(cidr) = opts.cluster_cidr {
        let ipam = crate::nodeipam::NodeIpam::new(c("node-controller"), cidr, &shared);
        all.push(tokio::spawn(ipam.run(lost.clone())));
    }
    for t in all {
        let _ = t.await;
    }
}
