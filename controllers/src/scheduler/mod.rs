//! The scheduler: binds pending pods to nodes through `pods/binding`.
//!
//! One loop takes every pending pod queued since its last round, builds one snapshot of
//! nodes and bound pods, and decides pod by pod with [`decide::schedule`], adding each
//! decision to the snapshot (and to the assumed-pod cache) before the next, so a burst is
//! spread instead of piling onto the node that looked emptiest. Bindings are written
//! concurrently; a pod stays assumed until the informer shows it bound (or the binding
//! failed). Pods that fit nowhere get `PodScheduled=False/Unschedulable` and a
//! `FailedScheduling` event, and are retried whenever a node changes or a pod goes away.

pub mod decide;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, Namespace, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{watch, Notify, Semaphore};

use crate::events::{Kind, Recorder};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::metrics::Attempt;
use decide::{Decision, Snapshot};

/// The scheduler name pods ask for by default.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Bindings in flight at once.
const MAX_BINDS_IN_FLIGHT: usize = 64;
/// How long a pod whose binding failed waits before it is tried again.
const BIND_RETRY: Duration = Duration::from_secs(1);
/// How often unschedulable pods are tried again even if nothing seemed to change.
const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(15);

/// Whether this scheduler should place `pod`.
pub fn wants(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let unbound = spec
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty);
    let ours = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n.is_empty() || n == DEFAULT_SCHEDULER);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    unbound
        && ours
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

#[derive(Default)]
struct Queues {
    /// Pods to try in the next round.
    pending: BTreeSet<String>,
    /// Pods that fit nowhere last time, with the message they were given.
    unschedulable: HashMap<String, String>,
    /// Pods decided but not yet seen bound: key → node.
    assumed: HashMap<String, (String, Arc<Pod>)>,
}

pub struct Scheduler {
    client: Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    namespaces: Arc<Informer<Namespace>>,
    queues: Mutex<Queues>,
    wake: Notify,
    tie: AtomicU64,
    events: Recorder,
    binds: Arc<Semaphore>,
}

impl Scheduler {
    pub fn new(client: Client) -> Arc<Scheduler> {
        let me = Arc::new(Scheduler {
            events: Recorder::new(client.clone(), DEFAULT_SCHEDULER),
            client,
            pods: Informer::new(),
            nodes: Informer::new(),
            namespaces: Informer::new(),
            queues: Mutex::new(Queues::default()),
            wake: Notify::new(),
            tie: AtomicU64::new(0),
            binds: Arc::new(Semaphore::new(MAX_BINDS_IN_FLIGHT)),
        });
        let weak = Arc::downgrade(&me);
        me.pods.on_change(move |c| {
            let Some(me) = weak.upgrade() else { return };
            match c {
                Change::Applied { old, new } => {
                    let key = key_of(new);
                    let mut q = me.queues.lock();
                    if wants(new) {
                        if !q.unschedulable.contains_key(&key) || old.is_none() {
                            q.pending.insert(key);
                        }
                    } else {
                        q.pending.remove(&key);
                        q.unschedulable.remove(&key);
                        q.assumed.remove(&key);
                        // A pod finishing frees room.
                        let finished = old.is_some_and(|o| !is_terminal(o)) && is_terminal(new);
                        if finished {
                            retry_unschedulable(&mut q);
                        }
                    }
                    drop(q);
                    me.wake.notify_one();
                }
                Change::Deleted(pod) => {
                    let key = key_of(pod);
                    let mut q = me.queues.lock();
                    q.pending.remove(&key);
                    q.unschedulable.remove(&key);
                    q.assumed.remove(&key);
                    if bound_node(pod).is_some() {
                        retry_unschedulable(&mut q);
                    }
                    drop(q);
                    me.wake.notify_one();
                }
            }
        });
        let weak = Arc::downgrade(&me);
        me.nodes.on_change(move |_| {
            let Some(me) = weak.upgrade() else { return };
            retry_unschedulable(&mut me.queues.lock());
            me.wake.notify_one();
        });
        me
    }

    /// Runs until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let weak = Arc::downgrade(&self);
        crate::metrics::scheduler_queues(move || {
            weak.upgrade().map_or((0, 0), |me| {
                let q = me.queues.lock();
                (q.pending.len(), q.unschedulable.len())
            })
        });
        self.pods.start_all(&self.client, &stop);
        self.nodes.start_all(&self.client, &stop);
        self.namespaces.start_all(&self.client, &stop);
        self.pods.wait_synced(stop.clone()).await;
        self.nodes.wait_synced(stop.clone()).await;
        self.namespaces.wait_synced(stop.clone()).await;
        let mut retry = tokio::time::interval(UNSCHEDULABLE_RETRY);
        loop {
            let notified = self.wake.notified();
            let batch: Vec<String> = std::mem::take(&mut self.queues.lock().pending)
                .into_iter()
                .collect();
            if !batch.is_empty() {
                self.round(batch).await;
                continue;
            }
            tokio::select! {
                _ = notified => {}
                _ = retry.tick() => {
                    retry_unschedulable(&mut self.queues.lock());
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let assumed: Vec<(String, Arc<Pod>)> = {
            let q = self.queues.lock();
            q.assumed.values().cloned().collect()
        };
        // The informers' objects are shared, not copied: a round over 10,000 bound pods
        // must not clone 10,000 pods.
        let pods = self
            .pods
            .list()
            .into_iter()
            .filter(|p| bound_node(p).is_some());
        let labels: BTreeMap<String, BTreeMap<String, String>> = self
            .namespaces
            .list()
            .iter()
            .map(|n| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    n.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .collect();
        let mut snap = Snapshot::new(self.nodes.list(), pods, labels);
        for (node, pod) in assumed {
            snap.assume(pod, &node);
        }
        snap
    }

    async fn round(self: &Arc<Self>, batch: Vec<String>) {
        let mut snap = self.snapshot();
        for key in batch {
            let Some(pod) = self.pods.get_key(&key) else {
                continue;
            };
            if !wants(&pod) || self.queues.lock().assumed.contains_key(&key) {
                continue;
            }
            let tie = self.tie.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            match decide::schedule(&pod, &snap, tie) {
                Decision::Bind { node } => {
                    snap.assume(Arc::clone(&pod), &node);
                    {
                        let mut q = self.queues.lock();
                        q.unschedulable.remove(&key);
                        q.assumed
                            .insert(key.clone(), (node.clone(), Arc::clone(&pod)));
                    }
                    let Ok(permit) = Arc::clone(&self.binds).acquire_owned().await else {
                        return;
                    };
                    let me = Arc::clone(self);
                    tokio::spawn(async move {
                        let bound = me.bind(&key, &pod, &node).await;
                        // The event is not part of the binding: it does not hold a slot.
                        drop(permit);
                        let result = if bound {
                            Attempt::Scheduled
                        } else {
                            Attempt::Error
                        };
                        crate::metrics::scheduling_attempt(result, started.elapsed());
                        if bound {
                            let msg = format!("Successfully assigned {key} to {node}");
                            me.events
                                .record(&*pod, Kind::Normal, "Scheduled", &msg)
                                .await;
                        }
                    });
                }
                Decision::Unschedulable { message, .. } => {
                    crate::metrics::scheduling_attempt(Attempt::Unschedulable, started.elapsed());
                    let changed = {
                        let mut q = self.queues.lock();
                        q.unschedulable.insert(key.clone(), message.clone())
                            != Some(message.clone())
                    };
                    if changed {
                        let me = Arc::clone(self);
                        tokio::spawn(async move { me.report_unschedulable(&pod, &message).await });
                    }
                }
            }
        }
    }

    /// Binds `pod` to `node`; true if the apiserver took it.
    async fn bind(self: &Arc<Self>, key: &str, pod: &Pod, node: &str) -> bool {
        let (ns, name) = split_key(key);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_string()),
                ..Default::default()
            },
        };
        // The apiserver answers a binding with a Status (201 Success), as Kubernetes does.
        let res: Result<kube::core::Status, kube::Error> = api
            .create_subresource("binding", name, &PostParams::default(), &binding)
            .await;
        match res {
            Ok(_) => {
                tracing::debug!(pod = key, node, "bound");
                true
            }
            Err(e) => {
                // Already bound or gone: the informer will tell. Otherwise try again.
                self.queues.lock().assumed.remove(key);
                let settled = matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409);
                if !settled {
                    tracing::warn!(pod = key, node, error = %e, "binding failed; retrying");
                    let me = Arc::clone(self);
                    let key = key.to_string();
                    tokio::spawn(async move {
                        tokio::time::sleep(BIND_RETRY).await;
                        me.queues.lock().pending.insert(key);
                        me.wake.notify_one();
                    });
                }
                false
            }
        }
    }

    async fn report_unschedulable(&self, pod: &Pod, message: &str) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        }]}});
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::debug!(pod = name, error = %e, "setting PodScheduled=False failed");
        }
        self.events
            .record(pod, Kind::Warning, "FailedScheduling", message)
            .await;
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn retry_unschedulable(q: &mut Queues) {
    let keys: Vec<String> = q.unschedulable.keys().cloned().collect();
    q.pending.extend(keys);
}
