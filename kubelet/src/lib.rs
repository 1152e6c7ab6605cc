//! keelson's node agent (`keelson agent`): registers its Node, renews its Lease, and runs the
//! pods bound to it through a container runtime.
//!
//! This first step has the fake runtime only (`--runtime fake`, a "hollow node" like kwok's):
//! pods "start" without containers, so one process can be many nodes for scale and
//! controller tests. The Podman runtime, probes, restarts and the streaming endpoints come
//! next (see the README's compatibility table).

pub mod error;
pub mod node;
pub mod runtime;
pub mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::Client;
use tokio::sync::{watch, Semaphore};

pub use error::{KubeletError, Result};
pub use node::NodeSpec;
pub use runtime::{FakeRuntime, Runtime};

/// Status writes in flight at once, over all the nodes of one process.
pub const STATUS_WRITES_IN_FLIGHT: usize = 64;
/// How often registration is retried while the apiserver does not answer.
const REGISTER_RETRY: Duration = Duration::from_secs(1);

/// Resolves once `stop` is true (or its sender is gone), holding no borrow of it after.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Runs one node until `stop`: registers it (retrying while the apiserver is not there),
/// then renews its Lease every 10 s, reports its status every 5 minutes, and runs its pods.
pub async fn run_node(
    client: Client,
    spec: NodeSpec,
    runtime: Arc<dyn Runtime>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        match node::register(&client, &spec).await {
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
        spec.name.clone(),
        spec.address.clone(),
        runtime,
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
            }
            _ = status.tick() => {
                if let Err(e) = node::report_status(&client, &spec).await {
                    tracing::warn!(node = %spec.name, error = %e, "node status");
                }
            }
            _ = stopped(&mut stop) => break,
        }
    }
    let _ = pods.await;
    Ok(())
}

/// Watches the pods bound to `node` and drives them: start what is new, stop and finally
/// delete what is being deleted.
async fn sync_pods(
    client: Client,
    node: String,
    host_ip: String,
    runtime: Arc<dyn Runtime>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let all: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher::watcher(all, config).default_backoff().boxed();
    let mut started: HashSet<String> = HashSet::new();
    let mut deleting: HashSet<String> = HashSet::new();
    loop {
        let ev = tokio::select! {
            ev = stream.next() => ev,
            _ = stopped(&mut stop) => return,
        };
        let pod = match ev {
            None => return,
            Some(Ok(Event::Apply(p))) | Some(Ok(Event::InitApply(p))) => p,
            Some(Ok(Event::Delete(p))) => {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                started.remove(&uid);
                deleting.remove(&uid);
                if let Err(e) = runtime.stop_pod(&uid, Duration::ZERO).await {
                    tracing::warn!(node = %node, error = %e, "removing a deleted pod");
                }
                continue;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::debug!(node = %node, error = %e, "pod watch; retrying");
                continue;
            }
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        if pod.metadata.deletion_timestamp.is_some() {
            if !deleting.insert(uid.clone()) {
                continue;
            }
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0);
            let runtime = Arc::clone(&runtime);
            tokio::spawn(async move {
                if let Err(e) = runtime.stop_pod(&uid, Duration::from_secs(grace)).await {
                    tracing::warn!(pod = %name, error = %e, "stopping");
                }
                // The final delete: the pod's containers are gone.
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => tracing::warn!(pod = %name, error = %e, "final delete"),
                }
            });
            continue;
        }
        // Already started by us, or by an earlier run of this agent (adopted as it is).
        if !started.insert(uid.clone()) || phase(&pod) != "Pending" {
            continue;
        }
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let runtime = Arc::clone(&runtime);
        let host_ip = host_ip.clone();
        tokio::spawn(async move {
            let state = match runtime.start_pod(&pod).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "starting");
                    return;
                }
            };
            let status = status::pod_status(&pod, &state, &host_ip, Timestamp::now());
            let patch = serde_json::json!({"status": status});
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(pod = %name, error = %e, "status");
            }
            drop(slot);
        });
    }
}
