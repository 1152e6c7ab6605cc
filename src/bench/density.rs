//! `keelson bench density`: the scheduler and the pod start path under load.
//!
//! It starts one `keelson server` (store, apiserver, scheduler and controllers in one process;
//! or uses `--kubeconfig`), registers N fake nodes from this process and plays their kubelets:
//! every node renews its Lease in `kube-node-lease` every 10 s, and a pod bound to one of them
//! is marked Running and Ready at once (a fake runtime that starts containers instantly). Then,
//! as ClusterLoader2's density test does, two phases:
//!
//! 1. **Saturation**: M pods (plain pods from `--clients` concurrent creators, or one
//!    Deployment of M replicas) as fast as the cluster takes them. Reported: scheduling
//!    throughput (pods bound per second, over the whole phase and the best 1-s window) and
//!    each pod's created → bound and created → Running latency.
//! 2. **Latency**: `--latency-pods` more pods created one at a time at `--latency-qps` into
//!    the full cluster. Reported: pod startup latency p50/p90/p99 (created → Running), the
//!    number the Kubernetes pod startup SLO (p99 ≤ 5 s) is about.
//!
//! "Created" is the moment just before this process sends the create (for Deployment pods,
//! which this process does not create, the moment its watch first sees the pod); "bound" and
//! "Running" are the moments its watch sees `spec.nodeName` set and `status.phase: Running`.
//! One watch serves all fake kubelets (N real kubelets would hold N watches with a
//! `spec.nodeName` field selector each; that per-watcher filtering cost is not measured).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::Client;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{watch as tokio_watch, Semaphore};

use super::error::{BenchError, Result};
use super::kv::{run_workload, Common, OutputFormat, PutArgs, Workload};
use super::report::Report;
use super::servers::{ensure_namespace, server_binary, wait_serving, ServerCluster};
use super::util::parse_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadKind {
    /// Plain pods, created by this process.
    Pods,
    /// One Deployment of M replicas (the ReplicaSet controller creates the pods).
    Deployment,
}

#[derive(Args, Debug)]
pub struct DensityArgs {
    /// Use this kubeconfig instead of starting a `keelson server`.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The etcd v3 endpoint of the store, for the raw put baseline (with --kubeconfig).
    #[arg(long)]
    pub store_endpoint: Option<String>,
    /// Raw store puts (pod-sized values, `--clients` clients) measured before the phases as
    /// this run's reference for how fast the machine writes (0 skips).
    #[arg(long, default_value_t = 10000)]
    pub baseline_puts: usize,
    /// Fake nodes to register.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Pods of the saturation phase.
    #[arg(long, default_value_t = 3000)]
    pub pods: usize,
    /// What creates the saturation pods.
    #[arg(long, value_enum, default_value = "pods")]
    pub workload: WorkloadKind,
    /// Concurrent pod creators (workload `pods`).
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Pods of the latency phase (0 skips it).
    #[arg(long, default_value_t = 100)]
    pub latency_pods: usize,
    /// Creation rate of the latency phase, pods per second.
    #[arg(long, default_value_t = 10.0)]
    pub latency_qps: f64,
    /// Status writes the fake kubelets have in flight at once.
    #[arg(long, default_value_t = 64)]
    pub kubelet_concurrency: usize,
    /// `pods` allocatable of each fake node.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// The `keelson` binary to run as `keelson server` [default: this executable].
    #[arg(long)]
    pub keelson: Option<PathBuf>,
    /// Where the server's data dir and log go [default: a new dir under /var/tmp].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Keep the data dir and log.
    #[arg(long)]
    pub keep: bool,
    /// How long the server may take to start serving.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub start_timeout: Duration,
    /// After the phases, leave the cluster idle this long (the fake nodes still renew their
    /// leases) and measure the server's steady-state RSS and CPU over that window (0 skips).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub idle: Duration,
    /// How long each phase may take before the bench gives up.
    #[arg(long, default_value = "900s", value_parser = parse_duration)]
    pub phase_timeout: Duration,
    /// Output format.
    #[arg(short = 'w', long = "output", value_enum, default_value = "simple")]
    pub output: OutputFormat,
}

const NAMESPACE: &str = "density";
const NODE_PREFIX: &str = "fake-node-";
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The kubelet's lease renewal interval.
const LEASE_RENEW: Duration = Duration::from_secs(10);
const FIELD_MANAGER: &str = "keelson-bench-density";
/// The Kubernetes pod startup SLO (p99, stateless pods, image pull excluded).
const SLO_STARTUP_MS: f64 = 5000.0;
/// This project's goals for the benchmark.
const GOAL_PODS_PER_S: f64 = 700.0;
const GOAL_STARTUP_P99_MS: f64 = 1000.0;

/// When one pod was created, seen bound and seen Running.
#[derive(Clone, Copy, Debug, Default)]
struct Times {
    created: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
}

/// What the watch has seen, by pod name.
#[derive(Default)]
struct Seen {
    pods: HashMap<String, Times>,
    bound: usize,
    running: usize,
}

impl Seen {
    fn created(&mut self, name: &str, at: Instant) {
        self.pods.entry(name.to_string()).or_default().created = Some(at);
    }
}

fn progress(msg: &str) {
    eprintln!("keelson bench density: {msg}");
}

fn node_name(i: usize) -> String {
    format!("{NODE_PREFIX}{i:05}")
}

fn pod_spec() -> PodSpec {
    PodSpec {
        containers: vec![Container {
            name: "pause".into(),
            image: Some("localhost/pause:latest".into()),
            resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
                requests: Some(
                    [
                        ("cpu".to_string(), quantity("10m")),
                        ("memory".to_string(), quantity("20Mi")),
                    ]
                    .into(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn quantity(s: &str) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    k8s_openapi::apimachinery::pkg::api::resource::Quantity(s.to_string())
}

fn labels(group: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("app".to_string(), "density".to_string()),
        ("group".to_string(), group.to_string()),
    ]
    .into()
}

fn plain_pod(name: &str, group: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels(group)),
            ..Default::default()
        },
        spec: Some(pod_spec()),
        ..Default::default()
    }
}

/// Registers `n` Ready nodes (three zones) and gives each a Lease.
async fn register_nodes(client: &Client, n: usize, max_pods: u32) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let api = api.clone();
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<(), BenchError>(());
                    }
                    let name = node_name(i);
                    let node = Node {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            labels: Some(
                                [
                                    ("kubernetes.io/hostname".to_string(), name.clone()),
                                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                                    (
                                        "topology.kubernetes.io/zone".to_string(),
                                        format!("zone-{}", i % 3),
                                    ),
                                ]
                                .into(),
                            ),
                            ..Default::default()
                        },
                        ..Default::default()
                    };
                    match api.create(&PostParams::default(), &node).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => {
                            return Err(BenchError::Failed(format!("creating node {name}: {e}")))
                        }
                    }
                    let now = k8s_openapi::jiff::Timestamp::now().to_string();
                    let status = json!({"status": {
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": max_pods.to_string()},
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": max_pods.to_string()},
                        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                        "message": "fake kubelet is ready",
                                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
                        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                      {"type": "Hostname", "address": name}],
                        "nodeInfo": {"kubeletVersion": "keelson-fake", "containerRuntimeVersion": "fake://0",
                                     "operatingSystem": "linux", "architecture": "amd64",
                                     "kernelVersion": "", "osImage": "", "kubeProxyVersion": "",
                                     "machineID": "", "systemUUID": "", "bootID": ""},
                    }});
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                        .await
                        .map_err(|e| BenchError::Failed(format!("node {name} status: {e}")))?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await
            .map_err(|e| BenchError::Failed(format!("node registration task: {e}")))??;
    }
    renew_leases(client, n).await
}

/// Renews every fake node's Lease once (16 at a time).
async fn renew_leases(client: &Client, n: usize) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let results: Vec<std::result::Result<Lease, kube::Error>> =
        futures::stream::iter((0..n).map(|i| {
            let api = api.clone();
            async move {
                let name = node_name(i);
                let lease = json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                             "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now())},
                });
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&lease),
                )
                .await
            }
        }))
        .buffer_unordered(16)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        return Err(BenchError::Failed(format!(
            "{failed} of {n} node leases could not be renewed"
        )));
    }
    Ok(())
}

/// The fake kubelets and the observer: one watch over the bench namespace's pods.
fn start_watch(
    client: Client,
    seen: Arc<Mutex<Seen>>,
    concurrency: usize,
    stop: tokio_watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut started: std::collections::HashSet<String> = Default::default();
        let mut stream = watcher::watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut stop = stop;
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                _ = stop.wait_for(|s| *s) => return,
            };
            let Some(ev) = ev else { return };
            let pod = match ev {
                Ok(Event::Apply(p)) | Ok(Event::InitApply(p)) => p,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "density watch error");
                    continue;
                }
            };
            let now = Instant::now();
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty());
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            {
                let mut s = seen.lock();
                let t = s.pods.entry(name.clone()).or_default();
                t.created.get_or_insert(now);
                let newly_bound = node.is_some() && t.bound.is_none();
                if newly_bound {
                    t.bound = Some(now);
                }
                let newly_running = running && t.running.is_none();
                if newly_running {
                    t.running = Some(now);
                }
                if newly_bound {
                    s.bound += 1;
                }
                if newly_running {
                    s.running += 1;
                }
            }
            let Some(node) = node.filter(|n| n.starts_with(NODE_PREFIX)) else {
                continue;
            };
            let api = api.clone();
            if pod.metadata.deletion_timestamp.is_some() {
                tokio::spawn(async move {
                    let _ = api
                        .delete(&name, &DeleteParams::default().grace_period(0))
                        .await;
                });
                continue;
            }
            if running || !started.insert(name.clone()) {
                continue;
            }
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            tokio::spawn(async move {
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let status = json!({"status": {
                    "phase": "Running",
                    "hostIP": "127.0.0.1",
                    "podIP": pod_ip(&name),
                    "startTime": now,
                    "qosClass": "Burstable",
                    "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    ],
                    "containerStatuses": [{"name": "pause", "image": "localhost/pause:latest",
                        "imageID": "", "ready": true, "started": true, "restartCount": 0,
                        "state": {"running": {"startedAt": now}}}],
                }});
                if let Err(e) = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                {
                    tracing::warn!(pod = %name, node = %node, error = %e, "fake kubelet status write failed");
                }
                drop(slot);
            });
        }
    })
}

/// A pod IP derived from the pod's name (unique enough for the bench: nothing routes it).
fn pod_ip(name: &str) -> String {
    let h = name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!(
        "10.{}.{}.{}",
        64 + (h >> 16) % 64,
        (h >> 8) & 0xff,
        (h & 0xfe) + 1
    )
}

/// Renews the fake nodes' Leases every 10 s until `stop`.
fn start_heartbeats(
    client: Client,
    n: usize,
    stop: tokio_watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stop = stop;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(LEASE_RENEW) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = renew_leases(&client, n).await {
                tracing::warn!(error = %e, "fake node heartbeat");
            }
        }
    })
}

/// Waits until `done(seen)` or the deadline, printing progress every 5 s.
async fn wait_phase(
    seen: &Arc<Mutex<Seen>>,
    cluster: &mut Option<ServerCluster>,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Seen) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    loop {
        {
            let s = seen.lock();
            if done(&s) {
                return Ok(());
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                progress(&format!("{what}: {} bound, {} running", s.bound, s.running));
                last_report = Instant::now();
            }
        }
        if let Some(c) = cluster.as_mut() {
            c.check_alive()?;
        }
        if Instant::now() >= deadline {
            let s = seen.lock();
            return Err(BenchError::Timeout {
                what: what.to_string(),
                secs: timeout.as_secs_f64(),
                detail: format!(" ({} bound, {} running)", s.bound, s.running),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Latency percentiles (ms) of a set of durations.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub(super) fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort();
    let at = |p: f64| {
        let idx = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[idx.clamp(1, v.len()) - 1].as_secs_f64() * 1000.0
    };
    Percentiles {
        p50: at(50.0),
        p90: at(90.0),
        p99: at(99.0),
        max: at(100.0),
    }
}

/// The results of one phase, over the pods named by `names`.
#[derive(Debug, Default)]
struct PhaseResult {
    pods: usize,
    /// Seconds from the first creation to the last binding.
    span_s: f64,
    /// Pods bound per second over `span_s`.
    throughput: f64,
    /// The most pods bound within one second (sliding window over binding times).
    best_window: usize,
    scheduling: Percentiles,
    startup: Percentiles,
}

fn phase_result(times: &[Times]) -> PhaseResult {
    let created: Vec<Instant> = times.iter().filter_map(|t| t.created).collect();
    let mut bound: Vec<Instant> = times.iter().filter_map(|t| t.bound).collect();
    bound.sort();
    let first = created.iter().min().copied();
    let last = bound.last().copied();
    let span_s = match (first, last) {
        (Some(f), Some(l)) if l > f => l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    let mut best_window = 0;
    let mut lo = 0;
    for hi in 0..bound.len() {
        while bound[hi].duration_since(bound[lo]) > Duration::from_secs(1) {
            lo += 1;
        }
        best_window = best_window.max(hi - lo + 1);
    }
    let since_created = |later: fn(&Times) -> Option<Instant>| -> Vec<Duration> {
        times
            .iter()
            .filter_map(|t| Some(later(t)?.saturating_duration_since(t.created?)))
            .collect()
    };
    PhaseResult {
        pods: times.len(),
        span_s,
        throughput: if span_s > 0.0 {
            bound.len() as f64 / span_s
        } else {
            0.0
        },
        best_window,
        scheduling: percentiles(since_created(|t| t.bound)),
        startup: percentiles(since_created(|t| t.running)),
    }
}

pub async fn run(args: DensityArgs) -> Result<()> {
    if args.nodes == 0 || args.pods == 0 || args.clients == 0 {
        return Err(BenchError::InvalidArgs(
            "--nodes, --pods and --clients must be at least 1".into(),
        ));
    }
    if args.latency_pods > 0 && !(args.latency_qps > 0.0 && args.latency_qps.is_finite()) {
        return Err(BenchError::InvalidArgs(
            "--latency-qps must be a positive number".into(),
        ));
    }
    let capacity = args.nodes as u64 * u64::from(args.max_pods);
    if (args.pods + args.latency_pods) as u64 > capacity {
        return Err(BenchError::InvalidArgs(format!(
            "{} pods do not fit on {} nodes of {} pods each",
            args.pods + args.latency_pods,
            args.nodes,
            args.max_pods
        )));
    }
    let mut cluster = None;
    let mut root_to_remove = None;
    let (kubeconfigs, store_endpoints) = match &args.kubeconfig {
        Some(k) => (
            vec![k.clone()],
            args.store_endpoint.iter().cloned().collect(),
        ),
        None => {
            let binary = server_binary(&args.keelson)?;
            let root = match &args.data_root {
                Some(r) => r.clone(),
                None => PathBuf::from(format!(
                    "/var/tmp/keelson-bench-density-{}",
                    std::process::id()
                )),
            };
            if !args.keep {
                root_to_remove = Some(root.clone());
            }
            let c = ServerCluster::start(&binary, &root, "density", 1, &[])?;
            let kcs = c.kubeconfigs();
            let eps = c.client_urls();
            cluster = Some(c);
            (kcs, eps)
        }
    };
    let result = measure(&args, &mut cluster, &kubeconfigs, &store_endpoints).await;
    let rss = cluster
        .as_ref()
        .map(ServerCluster::rss_bytes)
        .unwrap_or_default();
    drop(cluster);
    if let Some(root) = root_to_remove {
        let _ = std::fs::remove_dir_all(root);
    }
    let (baseline, saturation, latency, rest) = result?;
    let results = Results {
        baseline: baseline.as_ref(),
        saturation: &saturation,
        latency: latency.as_ref(),
        rss: &rss,
        rest: rest.as_ref(),
    };
    match args.output {
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&to_json(&args, &results)).unwrap_or_default()
            );
        }
        _ => print_table(&args, &results),
    }
    Ok(())
}

/// What one run measured.
struct Results<'a> {
    baseline: Option<&'a Report>,
    saturation: &'a PhaseResult,
    latency: Option<&'a PhaseResult>,
    rss: &'a [u64],
    rest: Option<&'a Footprint>,
}

/// The store's raw put rate with pod-sized values: how fast this machine writes right now.
async fn raw_put_baseline(args: &DensityArgs, endpoints: &[String]) -> Result<Option<Report>> {
    if endpoints.is_empty() || args.baseline_puts == 0 {
        return Ok(None);
    }
    progress(&format!("baseline: {} raw store puts", args.baseline_puts));
    let value_size = serde_json::to_vec(&plain_pod("pod-000000", "saturation"))
        .map(|v| v.len())
        .unwrap_or(1024)
        .max(1024);
    let common = Common {
        endpoints: endpoints.to_vec(),
        conns: (args.clients / 10).max(1),
        clients: args.clients,
        target_leader: false,
        ..Common::default()
    };
    let put = PutArgs {
        total: args.baseline_puts as u64,
        key_size: 32,
        val_size: value_size,
        key_space_size: args.baseline_puts as u64,
        sequential_keys: true,
        rate: 0,
    };
    Ok(Some(run_workload(&common, &Workload::Put(put)).await?))
}

/// The server at rest after the phases.
struct Footprint {
    window: Duration,
    /// CPU time over the window / the window, in percent of one core.
    cpu_percent: f64,
    rss_bytes: u64,
}

type Measured = (
    Option<Report>,
    PhaseResult,
    Option<PhaseResult>,
    Option<Footprint>,
);

/// The server's steady state: CPU over `window` and RSS at its end.
async fn footprint(cluster: &ServerCluster, window: Duration) -> Option<Footprint> {
    let before = cluster.cpu_seconds().into_iter().sum::<f64>();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = cluster.cpu_seconds().into_iter().sum::<f64>();
    let elapsed = started.elapsed().as_secs_f64();
    Some(Footprint {
        window: started.elapsed(),
        cpu_percent: (after - before) / elapsed.max(1e-9) * 100.0,
        rss_bytes: cluster.rss_bytes().into_iter().max()?,
    })
}

async fn measure(
    args: &DensityArgs,
    cluster: &mut Option<ServerCluster>,
    kubeconfigs: &[PathBuf],
    store_endpoints: &[String],
) -> Result<Measured> {
    let clients = wait_serving(cluster, kubeconfigs, args.start_timeout).await?;
    let client = clients[0].clone();
    // Outside /registry/: the apiserver never sees these keys.
    let baseline = raw_put_baseline(args, store_endpoints).await?;
    ensure_namespace(&client, NAMESPACE).await?;
    progress(&format!("registering {} fake nodes", args.nodes));
    register_nodes(&client, args.nodes, args.max_pods).await?;

    let (stop_tx, stop_rx) = tokio_watch::channel(false);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watch = start_watch(
        client.clone(),
        Arc::clone(&seen),
        args.kubelet_concurrency,
        stop_rx.clone(),
    );
    let beats = start_heartbeats(client.clone(), args.nodes, stop_rx);
    let outcome = phases(args, cluster, &client, &seen).await;
    let rest = match (&outcome, cluster.as_ref()) {
        (Ok(_), Some(c)) if !args.idle.is_zero() => {
            progress(&format!("idle for {:?}: steady-state footprint", args.idle));
            footprint(c, args.idle).await
        }
        _ => None,
    };
    let _ = stop_tx.send(true);
    let _ = watch.await;
    let _ = beats.await;
    let (saturation, latency) = outcome?;
    Ok((baseline, saturation, latency, rest))
}

async fn phases(
    args: &DensityArgs,
    cluster: &mut Option<ServerCluster>,
    client: &Client,
    seen: &Arc<Mutex<Seen>>,
) -> Result<(PhaseResult, Option<PhaseResult>)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    progress(&format!(
        "saturation: {} pods ({:?}) on {} nodes",
        args.pods, args.workload, args.nodes
    ));
    let creators = match args.workload {
        WorkloadKind::Pods => create_pods(&pods, seen, args.pods, args.clients),
        WorkloadKind::Deployment => {
            create_deployment(client, args.pods).await?;
            Vec::new()
        }
    };
    let want = args.pods;
    let waited = wait_phase(seen, cluster, "saturation", args.phase_timeout, |s| {
        s.running >= want
    })
    .await;
    let mut create_errors = Vec::new();
    for c in creators {
        match c.await {
            Ok(errs) => create_errors.extend(errs),
            Err(e) => create_errors.push(format!("creator task: {e}")),
        }
    }
    if !create_errors.is_empty() {
        return Err(BenchError::Failed(format!(
            "{} pod creations failed, first: {}",
            create_errors.len(),
            create_errors[0]
        )));
    }
    waited?;
    let saturation = phase_result(&seen.lock().pods.values().copied().collect::<Vec<_>>());
    if args.latency_pods == 0 {
        return Ok((saturation, None));
    }
    progress(&format!(
        "latency: {} pods at {} pods/s",
        args.latency_pods, args.latency_qps
    ));
    let interval = Duration::from_secs_f64(1.0 / args.latency_qps);
    let mut tick = tokio::time::interval(interval);
    let names: Vec<String> = (0..args.latency_pods)
        .map(|i| format!("latency-{i:05}"))
        .collect();
    for name in &names {
        tick.tick().await;
        seen.lock().created(name, Instant::now());
        pods.create(&PostParams::default(), &plain_pod(name, "latency"))
            .await
            .map_err(|e| BenchError::Failed(format!("creating {name}: {e}")))?;
    }
    let total = args.pods + args.latency_pods;
    wait_phase(seen, cluster, "latency", args.phase_timeout, |s| {
        s.running >= total
    })
    .await?;
    let s = seen.lock();
    let times: Vec<Times> = names
        .iter()
        .filter_map(|n| s.pods.get(n).copied())
        .collect();
    Ok((saturation, Some(phase_result(&times))))
}

/// Starts `clients` creators of `n` plain pods; each returns its error messages.
fn create_pods(
    api: &Api<Pod>,
    seen: &Arc<Mutex<Seen>>,
    n: usize,
    clients: usize,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    let next = Arc::new(AtomicUsize::new(0));
    (0..clients)
        .map(|_| {
            let api = api.clone();
            let seen = Arc::clone(seen);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut errors = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return errors;
                    }
                    let name = format!("pod-{i:06}");
                    seen.lock().created(&name, Instant::now());
                    if let Err(e) = api
                        .create(&PostParams::default(), &plain_pod(&name, "saturation"))
                        .await
                    {
                        errors.push(format!("{name}: {e}"));
                    }
                }
            })
        })
        .collect()
}

async fn create_deployment(client: &Client, replicas: usize) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let replicas = i32::try_from(replicas)
        .map_err(|_| BenchError::InvalidArgs(format!("{replicas} replicas is too many")))?;
    let d = Deployment {
        metadata: ObjectMeta {
            name: Some("saturation".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels("saturation")),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels("saturation")),
                    ..Default::default()
                }),
                spec: Some(pod_spec()),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create(&PostParams::default(), &d)
        .await
        .map_err(|e| BenchError::Failed(format!("creating the deployment: {e}")))?;
    Ok(())
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({"p50_ms": p.p50, "p90_ms": p.p90, "p99_ms": p.p99, "max_ms": p.max})
}

fn phase_json(r: &PhaseResult) -> Value {
    json!({
        "pods": r.pods,
        "span_s": r.span_s,
        "pods_bound_per_s": r.throughput,
        "best_1s_window": r.best_window,
        "created_to_bound": percentiles_json(&r.scheduling),
        "created_to_running": percentiles_json(&r.startup),
    })
}

fn to_json(args: &DensityArgs, r: &Results) -> Value {
    let mut v = json!({
        "nodes": args.nodes,
        "workload": format!("{:?}", args.workload).to_lowercase(),
        "saturation": phase_json(r.saturation),
        "latency": r.latency.map(phase_json),
        "latency_qps": args.latency_qps,
        "server_rss_bytes": r.rss,
    });
    if let Some(f) = r.rest {
        v["idle"] = json!({
            "window_s": f.window.as_secs_f64(),
            "server_cpu_percent_of_one_core": f.cpu_percent,
            "server_rss_bytes": f.rss_bytes,
        });
    }
    if let Some(b) = r.baseline {
        v["raw_store_put"] = b.to_json();
        v["pods_bound_vs_raw_put"] = json!(r.saturation.throughput / b.throughput().max(1e-9));
    }
    v
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn print_table(args: &DensityArgs, r: &Results) {
    let (saturation, latency, rss) = (r.saturation, r.latency, r.rss);
    println!(
        "keelson bench density: {} fake nodes, {} saturation pods ({:?})\n",
        args.nodes, saturation.pods, args.workload
    );
    println!(
        "saturation: {} pods bound in {:.2} s = {:.0} pods/s (best 1-s window {}); goal ≥ {:.0} pods/s {}",
        saturation.pods,
        saturation.span_s,
        saturation.throughput,
        saturation.best_window,
        GOAL_PODS_PER_S,
        verdict(saturation.throughput >= GOAL_PODS_PER_S)
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}",
        "", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let row = |name: &str, p: &Percentiles| {
        println!(
            "{:<34} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            name, p.p50, p.p90, p.p99, p.max
        );
    };
    row("saturation created → bound", &saturation.scheduling);
    row("saturation created → Running", &saturation.startup);
    if let Some(l) = latency {
        row(
            &format!("latency ({}/s) created → Running", args.latency_qps),
            &l.startup,
        );
        println!(
            "\npod startup p99 {:.1} ms: SLO ≤ {:.0} ms {}; goal ≤ {:.0} ms {}",
            l.startup.p99,
            SLO_STARTUP_MS,
            verdict(l.startup.p99 <= SLO_STARTUP_MS),
            GOAL_STARTUP_P99_MS,
            verdict(l.startup.p99 <= GOAL_STARTUP_P99_MS)
        );
    }
    if let Some(b) = r.baseline {
        println!(
            "\nraw store put ({} clients, pod-sized values, same server, before the phases): {:.0}/s; pods bound / raw put: {:.3}",
            args.clients,
            b.throughput(),
            saturation.throughput / b.throughput().max(1e-9)
        );
    }
    if !rss.is_empty() {
        let mb: Vec<String> = rss
            .iter()
            .map(|b| format!("{:.0} MiB", *b as f64 / (1 << 20) as f64))
            .collect();
        println!("server RSS after the run: {}", mb.join(", "));
    }
    if let Some(f) = r.rest {
        let mib = f.rss_bytes as f64 / (1 << 20) as f64;
        println!(
            "idle {:.0} s after the phases ({} pods stored, {} nodes renewing leases): server CPU {:.1} % of one core, RSS {mib:.0} MiB; goal ≤ 150 MB {}",
            f.window.as_secs_f64(),
            saturation.pods + latency.map_or(0, |l| l.pods),
            args.nodes,
            f.cpu_percent,
            verdict(f.rss_bytes as f64 <= 150e6)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(v);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p90, 90.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        assert_eq!(percentiles(Vec::new()).p99, 0.0);
    }

    #[test]
    fn phase_result_counts_throughput_and_the_best_window() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 4 pods created at 0, bound at 100, 200, 300 and 1900 ms, running 50 ms later.
        let times: Vec<Times> = [100, 200, 300, 1900]
            .iter()
            .map(|&b| Times {
                created: Some(t0),
                bound: Some(ms(b)),
                running: Some(ms(b + 50)),
            })
            .collect();
        let r = phase_result(&times);
        assert_eq!(r.pods, 4);
        assert!((r.span_s - 1.9).abs() < 1e-9);
        assert!((r.throughput - 4.0 / 1.9).abs() < 1e-9);
        assert_eq!(r.best_window, 3);
        assert_eq!(r.scheduling.p50, 200.0);
        assert_eq!(r.startup.max, 1950.0);
    }

    #[test]
    fn fake_pod_ips_are_valid_addresses() {
        for n in ["pod-000000", "pod-000001", "latency-00099"] {
            let ip: std::net::Ipv4Addr = pod_ip(n).parse().expect("an IPv4 address");
            assert_eq!(ip.octets()[0], 10);
            assert_ne!(ip.octets()[3], 0);
        }
    }
}
