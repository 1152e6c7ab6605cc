//! keelson's node agent (`keelson agent`): registers its Node, renews its Lease, and runs the
//! pods bound to it through a container runtime.
//!
//! Runtimes: Podman through its libpod REST API, and a fake one (`--runtime fake`, a
//! "hollow node" like kwok's) whose pods "start" without containers, so one process can be
//! many nodes for scale and controller tests. The same pod workers drive both.

pub mod backoff;
pub mod dns;
pub mod error;
pub mod failover;
pub mod metrics;
pub mod node;
pub mod podman;
pub mod portforward;
pub mod probe;
pub mod proxy;
pub use keelson_proto::quantity;
pub mod runtime;
pub mod server;
pub mod spdy;
pub mod spec;
pub mod stats;
pub mod status;
pub mod worker;
pub mod ws;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::Client;
use tokio::sync::{watch, Semaphore};

pub use error::{KubeletError, Result};
pub use node::NodeSpec;
pub use runtime::{FakeRuntime, Runtime};
pub use worker::NodeContext;

/// Status writes in flight at once, over all the nodes of one process.
pub const STATUS_WRITES_IN_FLIGHT: usize = 64;
/// How often registration is retried while the apiserver does not answer.
const REGISTER_RETRY: Duration = Duration::from_secs(1);

/// How long an orphaned pod (deleted from the API while the kubelet was away) gets to stop.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// How a node runs its pods.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Where pods' volumes are prepared; `None` with the fake runtime.
    pub root_dir: Option<PathBuf>,
    /// How often the runtime is relisted.
    pub relist: Duration,
    /// Whether the node's pressure conditions come from this host (not for fake nodes).
    pub observe_host: bool,
    /// `--cluster-dns` and `--cluster-domain`: the resolver of ClusterFirst pods.
    pub dns: dns::ClusterDns,
}

/// The runtime's disk usage, logged and dropped on error.
async fn disk_usage(runtime: &dyn Runtime) -> Option<(u64, u64)> {
    match runtime.disk_usage().await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "disk usage");
            None
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone), holding no borrow of it after.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs one node until `stop`: registers it (retrying while the apiserver is not there),
/// then renews its Lease every 10 s, reports its status every 5 minutes, and runs its pods.
pub async fn run_node(
    client: Client,
    spec: NodeSpec,
    options: NodeOptions,
    runtime: Arc<dyn Runtime>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut transitions = node::Transitions::new();
    let observe = |disk| {
        if options.observe_host {
            node::observe(disk)
        } else {
            node::Pressure::default()
        }
    };
    let mut pressure = observe(runtime.disk_usage().await.ok().flatten());
    loop {
        match node::register(&client, &spec, pressure, &mut transitions).await {
            Ok(()) => break,
            Err(e) => tracing::warn!(node = %spec.name, error = %e, "registering; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(REGISTER_RETRY) => {}
            _ = stopped(&mut stop) => return Ok(()),
        }
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let uid = nodes
        .get(&spec.name)
        .await
        .map_err(|e| KubeletError::api(format!("reading node {}", spec.name), e))?
        .metadata
        .uid;
    if let Err(e) = node::renew_lease(&client, &spec.name, uid.as_deref()).await {
        tracing::warn!(node = %spec.name, error = %e, "first lease");
    }
    tracing::info!(node = %spec.name, "registered");
    let pods = tokio::spawn(sync_pods(
        client.clone(),
        spec.clone(),
        options.clone(),
        Arc::clone(&runtime),
        slots,
        stop.clone(),
    ));
    let mut lease = tokio::time::interval(node::LEASE_RENEW);
    let mut status = tokio::time::interval(node::STATUS_REPORT);
    lease.tick().await;
    status.tick().await;
    loop {
        tokio::select! {
            _ = lease.tick() => {
                if let Err(e) = node::renew_lease(&client, &spec.name, uid.as_deref()).await {
                    tracing::warn!(node = %spec.name, error = %e, "lease renewal");
                }
                // Status is written when a condition changes, and at least every 5 minutes.
                let now = observe(disk_usage(&*runtime).await);
                if now != pressure {
                    tracing::info!(node = %spec.name, ?now, "node pressure changed");
                    pressure = now;
                    if let Err(e) = node::report_status(&client, &spec, pressure, &mut transitions).await {
                        tracing::warn!(node = %spec.name, error = %e, "node status");
                    }
                }
            }
            _ = status.tick() => {
                if let Err(e) = node::report_status(&client, &spec, pressure, &mut transitions).await {
                    tracing::warn!(node = %spec.name, error = %e, "node status");
                }
            }
            _ = stopped(&mut stop) => break,
        }
    }
    let _ = pods.await;
    Ok(())
}

/// Watches the pods bound to the node and runs one worker per pod; relists the runtime
/// every `relist` period for the workers (the kubelet's PLEG) and removes what the runtime has
/// that the API no longer does.
async fn sync_pods(
    client: Client,
    spec: NodeSpec,
    options: NodeOptions,
    runtime: Arc<dyn Runtime>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let node = spec.name.clone();
    let (relist_tx, relist_rx) = watch::channel(Arc::new(worker::Relist {
        started: std::time::Instant::now(),
        pods: HashMap::new(),
    }));
    let ctx = Arc::new(worker::NodeContext {
        client: client.clone(),
        runtime: Arc::clone(&runtime),
        node: node.clone(),
        host_ip: spec.address.clone(),
        root_dir: options.root_dir.clone(),
        allocatable: spec.capacity.clone(),
        slots,
        relist: relist_rx,
        tokens: Default::default(),
        dns: options.dns.clone(),
        // The host's resolver, for Default pods with a dnsConfig and the search domains of
        // ClusterFirst ones (read once, as the kubelet's --resolv-conf).
        host_resolv: std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| dns::Resolv::parse(&t))
            .unwrap_or_default(),
    });
    // What the runtime has before the first pod arrives: adopted, not restarted.
    relist_once(&*runtime, &relist_tx).await;
    let all: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher::watcher(all, config).default_backoff().boxed();
    let mut workers: HashMap<String, watch::Sender<worker::Update>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut listed = false;
    let mut removing: HashSet<String> = HashSet::new();
    let mut relist = tokio::time::interval(options.relist);
    relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = stream.next() => {
                let pod = match ev {
                    None => break,
                    Some(Ok(Event::Apply(p))) => p,
                    Some(Ok(Event::InitApply(p))) => {
                        seen.insert(p.metadata.uid.clone().unwrap_or_default());
                        p
                    }
                    Some(Ok(Event::Init)) => {
                        seen.clear();
                        continue;
                    }
                    Some(Ok(Event::InitDone)) => {
                        // Pods deleted while the watch was away.
                        let gone: Vec<String> = workers.keys().filter(|u| !seen.contains(*u)).cloned().collect();
                        for uid in gone {
                            if let Some(tx) = workers.remove(&uid) {
                                let _ = tx.send(worker::Update::Gone);
                            }
                        }
                        listed = true;
                        continue;
                    }
                    Some(Ok(Event::Delete(p))) => {
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        match workers.remove(&uid) {
                            Some(tx) => {
                                let _ = tx.send(worker::Update::Gone);
                            }
                            None => {
                                let runtime = Arc::clone(&runtime);
                                let root = options.root_dir.clone();
                                tasks.spawn(async move {
                                    if let Err(e) = runtime.remove_pod(&uid, Duration::ZERO).await {
                                        tracing::warn!(error = %e, "removing a deleted pod");
                                    }
                                    worker::remove_pod_dir(root.as_deref(), &uid);
                                });
                            }
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(node = %node, error = %e, "pod watch; retrying");
                        continue;
                    }
                };
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let pod = Arc::new(pod);
                if let Some(tx) = workers.get(&uid) {
                    if tx.send(worker::Update::Pod(Arc::clone(&pod))).is_ok() {
                        continue;
                    }
                    // The worker has ended (it finished the pod's termination).
                    if pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                }
                let (tx, rx) = watch::channel(worker::Update::Pod(Arc::clone(&pod)));
                workers.insert(uid, tx);
                tasks.spawn(worker::run(Arc::clone(&ctx), pod, rx, stop.clone()));
            }
            _ = relist.tick() => {
                let pods = relist_once(&*runtime, &relist_tx).await;
                if !listed {
                    continue;
                }
                // Pods the runtime has that no worker owns: deleted while we were away.
                for uid in pods {
                    if workers.contains_key(&uid) || !removing.insert(uid.clone()) {
                        continue;
                    }
                    tracing::info!(node = %node, pod_uid = %uid, "removing a pod the API no longer has");
                    let runtime = Arc::clone(&runtime);
                    let root = options.root_dir.clone();
                    tasks.spawn(async move {
                        if let Err(e) = runtime.remove_pod(&uid, ORPHAN_GRACE).await {
                            tracing::warn!(error = %e, "removing an orphaned pod");
                        }
                        worker::remove_pod_dir(root.as_deref(), &uid);
                    });
                }
                removing.retain(|u| relist_tx.borrow().pods.contains_key(u));
                workers.retain(|_, tx| !tx.is_closed());
            }
            Some(_) = tasks.join_next() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    // Workers see `stop` themselves; wait for them to finish what they are doing.
    while tasks.join_next().await.is_some() {}
}

/// Lists the runtime's pods into `tx`; returns their uids.
async fn relist_once(
    runtime: &dyn Runtime,
    tx: &watch::Sender<Arc<worker::Relist>>,
) -> Vec<String> {
    let started = std::time::Instant::now();
    match runtime.list_pods().await {
        Ok(pods) => {
            let map: HashMap<String, runtime::PodInfo> =
                pods.into_iter().map(|p| (p.uid.clone(), p)).collect();
            let uids = map.keys().cloned().collect();
            tx.send_if_modified(|old| {
                if old.pods == map {
                    false
                } else {
                    *old = Arc::new(worker::Relist { started, pods: map });
                    true
                }
            });
            uids
        }
        Err(e) => {
            tracing::warn!(error = %e, "listing the runtime's pods");
            Vec::new()
        }
    }
}
