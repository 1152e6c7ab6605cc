//! The harness shared by the controller tests (tests/controllers.rs, tests/workloads/):
//! a kube client for a `KeelsonServer`, bounded polling, fake nodes and a kubelet stand-in.
//!
//! There is no kubelet here: the tests create Node objects and run a stand-in (a task) that
//! marks bound pods Running and Ready and finishes graceful deletions, which is all the
//! controllers see of a kubelet. A pod annotated `fake-kubelet.keelson.io/exit-code: "N"`
//! instead runs to completion: phase Succeeded for 0, Failed otherwise, with its containers
//! terminated with that exit code (what Jobs need).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::{Client, Config, ResourceExt as _};
use parking_lot::Mutex;
use serde_json::json;

use crate::common::server::KeelsonServer;

/// The annotation that makes the kubelet stand-in run a pod to completion.
pub const EXIT_CODE: &str = "fake-kubelet.keelson.io/exit-code";

pub fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub async fn client(s: &KeelsonServer) -> Client {
    let kc = Kubeconfig::read_from(s.kubeconfig()).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// Polls `f` every 50 ms until it returns Some, failing with the server log after `timeout`.
pub async fn eventually<T, F, Fut>(s: &KeelsonServer, what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}\nserver log:\n{}",
            s.server_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[track_caller]
pub fn kubectl_ok(s: &KeelsonServer, args: &[&str]) -> String {
    s.kubectl_ok(args)
}

/// A Ready node with the given allocatable cpu (cores) and labels.
pub async fn add_node(c: &Client, name: &str, cpu: &str, labels: &[(&str, &str)]) {
    let nodes: Api<Node> = Api::all(c.clone());
    let mut l: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.insert("kubernetes.io/hostname".into(), name.into());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(l),
            ..Default::default()
        },
        ..Default::default()
    };
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": "16Gi", "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": "16Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("node status");
}

/// The kubelet stand-in for the nodes in `alive`: renews their Leases, makes pods bound to
/// them Running and Ready, and finishes their pods' graceful deletions. A node taken out of
/// `alive` falls silent, like a machine that died.
pub fn fake_kubelet(c: Client, alive: Arc<Mutex<HashSet<String>>>) -> tokio::task::JoinHandle<()> {
    let heartbeat = {
        let c = c.clone();
        let alive = Arc::clone(&alive);
        tokio::spawn(async move {
            let leases: Api<Lease> = Api::namespaced(c, "kube-node-lease");
            loop {
                let nodes: Vec<String> = alive.lock().iter().cloned().collect();
                for n in nodes {
                    let lease = json!({
                        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": n, "namespace": "kube-node-lease"},
                        "spec": {"holderIdentity": n, "leaseDurationSeconds": 40,
                                 "renewTime": MicroTime(jiff::Timestamp::now())},
                    });
                    let _ = leases
                        .patch(
                            &n,
                            &PatchParams::apply("fake-kubelet").force(),
                            &Patch::Apply(&lease),
                        )
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(c.clone());
        let mut stream = watcher::watcher(pods, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(ev) = stream.next().await {
            let Ok(pod) = ev else { continue };
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            if !alive.lock().contains(&node) {
                continue;
            }
            let ns = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(c.clone(), &ns);
            let name = pod.name_any();
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                continue;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Running" | "Succeeded" | "Failed")) {
                continue;
            }
            let now = "2026-01-01T00:00:00Z";
            let exit = pod
                .annotations()
                .get(EXIT_CODE)
                .and_then(|v| v.parse::<i32>().ok());
            if let Some(code) = exit {
                let _ = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&completed_status(&pod, code)),
                    )
                    .await;
                continue;
            }
            let status = json!({"status": {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "podIP": next_pod_ip(),
                "startTime": now,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                ],
            }});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
        }
        heartbeat.abort();
    })
}

/// The status of a pod whose containers all exited with `code`.
fn completed_status(pod: &Pod, code: i32) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    let reason = if code == 0 { "Completed" } else { "Error" };
    let containers: Vec<serde_json::Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "ready": false, "restartCount": 0, "started": false,
                "state": {"terminated": {"exitCode": code, "reason": reason,
                                         "startedAt": now, "finishedAt": now}},
            })
        })
        .collect();
    json!({"status": {
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "hostIP": "127.0.0.1",
        "startTime": now,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
            {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
        ],
        "containerStatuses": containers,
    }})
}

/// A pod IP no other pod of this test binary got.
pub fn next_pod_ip() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 1)
}

pub fn alive(nodes: &[&str]) -> Arc<Mutex<HashSet<String>>> {
    Arc::new(Mutex::new(nodes.iter().map(|n| n.to_string()).collect()))
}

pub fn pods_by_node(pods: &[Pod]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for p in pods {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            *m.entry(n).or_insert(0) += 1;
        }
    }
    m
}

pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
