//! The node lifecycle controller: notices nodes whose kubelet stopped heartbeating, marks
//! them `Ready=Unknown` with the `node.kubernetes.io/unreachable:NoExecute` taint (or
//! `not-ready` for a kubelet reporting `Ready=False`), and evicts the pods there that do not
//! tolerate the taint, once their `tolerationSeconds` have run out.
//!
//! A heartbeat is a change of the node's Lease in `kube-node-lease` or of its Ready
//! condition's `lastHeartbeatTime`, timed by this controller's own clock when it sees the
//! change (clocks of nodes and servers never have to agree).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::watch;

use crate::events::{Kind, Recorder};
use crate::informer::{Change, Informer, Shared};
use crate::queue::{run_workers, Next, Queue, Reconcile};

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The namespace kubelets renew their Leases in.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// What a node's heartbeat looked like last time, and when it changed.
#[derive(Clone)]
struct Beat {
    lease_renew: Option<String>,
    status_heartbeat: Option<String>,
    at: Instant,
}

pub struct NodeLifecycle {
    client: Client,
    grace: Duration,
    nodes: Arc<Informer<Node>>,
    leases: Arc<Informer<Lease>>,
    pods: Arc<Informer<Pod>>,
    beats: Mutex<HashMap<String, Beat>>,
    queue: Queue,
    events: Recorder,
}

impl NodeLifecycle {
    pub fn new(client: Client, grace: Duration, shared: &Shared) -> Arc<NodeLifecycle> {
        let me = Arc::new(NodeLifecycle {
            events: Recorder::new(client.clone(), "node-controller"),
            client,
            grace,
            nodes: Arc::clone(&shared.nodes),
            leases: Informer::new(),
            pods: Arc::clone(&shared.pods),
            beats: Mutex::new(HashMap::new()),
            queue: Queue::new(),
        });
        let q = me.queue.clone();
        me.nodes.on_change(move |c| {
            if let Change::Applied { new, .. } = c {
                q.add(new.name_any());
            }
        });
        let q = me.queue.clone();
        me.leases.on_change(move |c| {
            if let Change::Applied { new, .. } = c {
                q.add(new.name_any());
            }
        });
        // A pod landing on a tainted node is evicted like the ones already there.
        let q = me.queue.clone();
        me.pods.on_change(move |c| {
            if let Change::Applied { new, .. } = c {
                if let Some(n) = new.spec.as_ref().and_then(|s| s.node_name.clone()) {
                    q.add(n);
                }
            }
        });
        me
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let c = &self.client;
        self.nodes.start_all(c, &stop);
        self.leases.start(
            Api::namespaced(c.clone(), LEASE_NAMESPACE),
            watcher::Config::default(),
            stop.clone(),
        );
        self.pods.start_all(c, &stop);
        self.nodes.wait_synced(stop.clone()).await;
        self.leases.wait_synced(stop.clone()).await;
        self.pods.wait_synced(stop.clone()).await;
        // Every node is looked at periodically: silence is what this controller detects.
        let ticker = {
            let me = Arc::clone(&self);
            let mut stop = stop.clone();
            let period = (self.grace / 5).clamp(Duration::from_millis(200), Duration::from_secs(5));
            tokio::spawn(async move {
                loop {
                    for k in me.nodes.keys() {
                        me.queue.add(k);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(period) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            })
        };
        let keys = self.nodes.keys();
        run_workers(
            "node-lifecycle",
            Arc::clone(&self),
            self.queue.clone(),
            2,
            keys,
            stop,
        )
        .await;
        ticker.abort();
    }

    /// How long ago this node last showed a sign of life (by our clock).
    fn silence(&self, node: &Node) -> Duration {
        let name = node.name_any();
        let lease_renew = self
            .leases
            .get(LEASE_NAMESPACE, &name)
            .and_then(|l| l.spec.as_ref().and_then(|s| s.renew_time.clone()))
            .map(|t| t.0.to_string());
        let status_heartbeat = ready_condition(node)
            .and_then(|c| c.last_heartbeat_time.clone())
            .map(|t| t.0.to_string());
        let mut beats = self.beats.lock();
        let beat = beats.entry(name).or_insert_with(|| Beat {
            lease_renew: lease_renew.clone(),
            status_heartbeat: status_heartbeat.clone(),
            at: Instant::now(),
        });
        if beat.lease_renew != lease_renew || beat.status_heartbeat != status_heartbeat {
            beat.lease_renew = lease_renew;
            beat.status_heartbeat = status_heartbeat;
            beat.at = Instant::now();
        }
        beat.at.elapsed()
    }

    async fn sync(&self, name: &str) -> Result<Next, kube::Error> {
        let Some(node) = self.nodes.get("", name) else {
            self.beats.lock().remove(name);
            return Ok(Next::Done);
        };
        let silent = self.silence(&node) >= self.grace;
        let api: Api<Node> = Api::all(self.client.clone());
        let ready = ready_condition(&node).map(|c| c.status.clone());
        if silent && ready.as_deref() != Some("Unknown") {
            self.mark_unknown(&api, &node).await?;
            return Ok(Next::Done); // the update comes back through the informer
        }
        // The taints follow the Ready condition: NoSchedule keeps new pods away (the default
        // tolerations only cover NoExecute), NoExecute evicts the pods there.
        // A node that has not reported Ready yet (just registered) is left alone until the
        // grace period makes it Unknown; the scheduler already skips it as not ready.
        let want = match ready.as_deref() {
            None | Some("True") => None,
            Some("False") => Some(NOT_READY),
            _ => Some(UNREACHABLE),
        };
        let ours = |t: &Taint| t.key == UNREACHABLE || t.key == NOT_READY;
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let mut next: Vec<Taint> = taints
            .iter()
            .filter(|t| !ours(t) || Some(t.key.as_str()) == want)
            .cloned()
            .collect();
        if let Some(key) = want {
            for effect in ["NoSchedule", "NoExecute"] {
                if !next.iter().any(|t| t.key == key && t.effect == effect) {
                    next.push(Taint {
                        key: key.into(),
                        effect: effect.into(),
                        time_added: Some(Time(jiff::Timestamp::now())),
                        value: None,
                    });
                }
            }
        }
        if next != taints {
            let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": next}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            return Ok(Next::Done);
        }
        self.evict(&node, &taints).await
    }

    async fn mark_unknown(&self, api: &Api<Node>, node: &Node) -> Result<(), kube::Error> {
        let now = Time(jiff::Timestamp::now());
        let conditions: Vec<NodeCondition> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                if c.status != "Unknown" {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(now.clone());
                }
                c
            })
            .collect();
        let conditions = if conditions.iter().any(|c| c.type_ == "Ready") {
            conditions
        } else {
            let mut c = conditions;
            c.push(NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_transition_time: Some(now),
                ..Default::default()
            });
            c
        };
        let patch = json!({"status": {"conditions": conditions}});
        api.patch_status(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        tracing::info!(node = %node.name_any(), "node stopped heartbeating; Ready=Unknown");
        self.events
            .record(
                node,
                Kind::Normal,
                "NodeNotReady",
                &format!("Node {} status is now: NodeNotReady", node.name_any()),
            )
            .await;
        Ok(())
    }

    /// Deletes the pods on `node` whose tolerations of its NoExecute taints ran out; asks to be
    /// called again when the next one runs out.
    async fn evict(&self, node: &Node, taints: &[Taint]) -> Result<Next, kube::Error> {
        let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
        if no_execute.is_empty() {
            return Ok(Next::Done);
        }
        let name = node.name_any();
        let now = jiff::Timestamp::now();
        let mut soonest: Option<Duration> = None;
        for pod in self.pods.list() {
            let on_node =
                pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str());
            if !on_node || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            match eviction_delay(&no_execute, &tolerations, now) {
                Some(d) if d.is_zero() => {
                    let api: Api<Pod> =
                        Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
                    let dp = DeleteParams {
                        preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
                            uid: Some(uid),
                            resource_version: None,
                        }),
                        ..Default::default()
                    };
                    match api.delete(&pod.name_any(), &dp).await {
                        Ok(_) => {
                            tracing::info!(pod = %pod.name_any(), node = %name, "evicted from a NoExecute-tainted node");
                            let msg = format!(
                                "Marking for deletion Pod {}/{}",
                                pod.namespace().unwrap_or_default(),
                                pod.name_any()
                            );
                            self.events
                                .record(&*pod, Kind::Normal, "TaintManagerEviction", &msg)
                                .await;
                        }
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(d) => soonest = Some(soonest.map_or(d, |s| s.min(d))),
                None => {}
            }
        }
        Ok(match soonest {
            Some(d) => Next::After(d + Duration::from_millis(50)),
            None => Next::Done,
        })
    }
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref() {
        if !e.is_empty() && e != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    match t.operator.as_deref() {
        Some("Exists") => key.is_empty() || key == taint.key,
        _ => {
            key == taint.key
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

/// When a pod with `tolerations` must leave a node with these NoExecute taints: None if it
/// tolerates them all forever, zero if now, else how long from `now`.
pub fn eviction_delay(
    taints: &[&Taint],
    tolerations: &[Toleration],
    now: jiff::Timestamp,
) -> Option<Duration> {
    let mut delay: Option<Duration> = None;
    for taint in taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(Duration::ZERO);
        }
        // The shortest bounded toleration wins; an unbounded one tolerates forever.
        let bounded = matching.iter().filter_map(|t| t.toleration_seconds).min();
        if matching.iter().any(|t| t.toleration_seconds.is_none()) && bounded.is_none() {
            continue;
        }
        let secs = bounded.unwrap_or(0).max(0) as u64;
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        let elapsed: Duration = now
            .duration_since(added)
            .try_into()
            .unwrap_or(Duration::ZERO);
        let left = Duration::from_secs(secs).saturating_sub(elapsed);
        delay = Some(delay.map_or(left, |d| d.min(left)));
    }
    delay
}

impl Reconcile for NodeLifecycle {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, added_secs_ago: i64, now: jiff::Timestamp) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(now - jiff::SignedDuration::from_secs(added_secs_ago))),
            value: None,
        }
    }

    fn toleration(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn untolerated_taints_evict_at_once() {
        let now = jiff::Timestamp::now();
        let t = taint(UNREACHABLE, 0, now);
        assert_eq!(eviction_delay(&[&t], &[], now), Some(Duration::ZERO));
        let other = toleration(NOT_READY, None);
        assert_eq!(eviction_delay(&[&t], &[other], now), Some(Duration::ZERO));
    }

    #[test]
    fn toleration_seconds_count_from_when_the_taint_was_added() {
        let now = jiff::Timestamp::now();
        let t = taint(UNREACHABLE, 100, now);
        let tol = toleration(UNREACHABLE, Some(300));
        assert_eq!(
            eviction_delay(&[&t], std::slice::from_ref(&tol), now),
            Some(Duration::from_secs(200))
        );
        let old = taint(UNREACHABLE, 400, now);
        assert_eq!(eviction_delay(&[&old], &[tol], now), Some(Duration::ZERO));
    }

    #[test]
    fn an_unbounded_toleration_keeps_the_pod() {
        let now = jiff::Timestamp::now();
        let t = taint(UNREACHABLE, 1000, now);
        assert_eq!(
            eviction_delay(&[&t], &[toleration(UNREACHABLE, None)], now),
            None
        );
        // Tolerate-everything (empty key, Exists).
        let all = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert_eq!(eviction_delay(&[&t], &[all], now), None);
    }
}
