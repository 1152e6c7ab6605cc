//! The DaemonSet controller inside `keelson server`: one Ready pod per eligible node as nodes
//! come, change and go, failed pods replaced, and a rolling update that never has more than
//! maxUnavailable nodes without an available pod (checked on the pod watch, not on timing)
//! and that `kubectl rollout status` follows.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::ResourceExt as _;
use parking_lot::Mutex;
use serde_json::json;

use crate::common::server::KeelsonServer;
use crate::harness::*;

const HASH: &str = "controller-revision-hash";
const LONG: Duration = Duration::from_secs(60);

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// The current revision of the daemon set `agent`: (hash, revision number, count of all).
async fn current_revision(revs: &Api<ControllerRevision>) -> Option<(String, i64, usize)> {
    let l = revs
        .list(&ListParams::default().labels("app=agent"))
        .await
        .ok()?
        .items;
    let newest = l.iter().max_by_key(|r| r.revision)?;
    let hash = newest.labels().get(HASH)?.clone();
    assert_eq!(newest.name_any(), format!("agent-{hash}"));
    Some((hash, newest.revision, l.len()))
}

/// The pods of `agent` once there is exactly one per node of `nodes`, Ready, not
/// terminating, all of revision `hash`, and the status says so for this generation.
async fn settled(
    pods: &Api<Pod>,
    sets: &Api<DaemonSet>,
    nodes: &[&str],
    hash: &str,
) -> Option<Vec<Pod>> {
    let l = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .ok()?
        .items;
    let mut on: Vec<String> = l.iter().filter_map(node_of).collect();
    on.sort();
    let mut want: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    want.sort();
    if l.len() != want.len() || on != want {
        return None;
    }
    let all_good = l.iter().all(|p| {
        is_ready(p)
            && p.metadata.deletion_timestamp.is_none()
            && p.labels().get(HASH).map(String::as_str) == Some(hash)
    });
    if !all_good {
        return None;
    }
    let ds = sets.get("agent").await.ok()?;
    let st = ds.status?;
    let n = i32::try_from(nodes.len()).ok()?;
    let ok = st.observed_generation == ds.metadata.generation
        && st.desired_number_scheduled == n
        && st.current_number_scheduled == n
        && st.number_ready == n
        && st.number_available == Some(n)
        && st.updated_number_scheduled == Some(n)
        && st.number_unavailable.unwrap_or(0) == 0
        && st.number_misscheduled == 0;
    ok.then_some(l)
}

async fn wait_settled(
    s: &KeelsonServer,
    what: &str,
    pods: &Api<Pod>,
    sets: &Api<DaemonSet>,
    revs: &Api<ControllerRevision>,
    nodes: &[&str],
) -> (Vec<Pod>, String) {
    eventually(s, what, LONG, || async {
        let (hash, _, _) = current_revision(revs).await?;
        let l = settled(pods, sets, nodes, &hash).await?;
        Some((l, hash))
    })
    .await
}

/// The most nodes of `eligible` seen at once without an available (Ready, not terminating)
/// pod of `agent`, over a pod watch, from its first full list on.
fn watch_unavailability(
    pods: Api<Pod>,
    eligible: BTreeSet<String>,
) -> (Arc<Mutex<Option<usize>>>, tokio::task::JoinHandle<()>) {
    let worst = Arc::new(Mutex::new(None::<usize>));
    let w = Arc::clone(&worst);
    let task = tokio::spawn(async move {
        // pod name -> (node, available)
        let mut state: HashMap<String, (Option<String>, bool)> = HashMap::new();
        let mut synced = false;
        let mut stream = watcher::watcher(pods, watcher::Config::default().labels("app=agent"))
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitApply(p)) | Ok(watcher::Event::Apply(p)) => {
                    let up = is_ready(&p) && p.metadata.deletion_timestamp.is_none();
                    state.insert(p.name_any(), (node_of(&p), up));
                }
                Ok(watcher::Event::Delete(p)) => {
                    state.remove(&p.name_any());
                }
                Ok(watcher::Event::InitDone) => synced = true,
                _ => {}
            }
            if synced {
                let up: BTreeSet<&String> = state
                    .values()
                    .filter(|(_, a)| *a)
                    .filter_map(|(n, _)| n.as_ref())
                    .collect();
                let down = eligible.iter().filter(|n| !up.contains(n)).count();
                let mut m = w.lock();
                *m = Some(m.map_or(down, |x| x.max(down)));
            }
        }
    });
    (worst, task)
}

#[test]
fn daemonset_covers_every_eligible_node() {
    let started = Instant::now();
    let s = KeelsonServer::start(keelson(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let c = client(&s).await;
        let nodes: Api<Node> = Api::all(c.clone());
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let sets: Api<DaemonSet> = Api::namespaced(c.clone(), "default");
        let revs: Api<ControllerRevision> = Api::namespaced(c.clone(), "default");
        for n in ["node-a", "node-b", "node-c", "node-t"] {
            add_node(&c, n, "4", &[("role", "worker")]).await;
        }
        // A worker whose taint the daemon does not tolerate, and a node of another role.
        let taint = json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}});
        nodes
            .patch("node-t", &PatchParams::default(), &Patch::Merge(&taint))
            .await
            .expect("taint node-t");
        add_node(&c, "node-x", "4", &[("role", "db")]).await;
        let alive = alive(&["node-a", "node-b", "node-c", "node-t", "node-x"]);
        let kubelet = fake_kubelet(c.clone(), Arc::clone(&alive));

        let ds: DaemonSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {
                        "nodeSelector": {"role": "worker"},
                        "containers": [{"name": "agent", "image": "registry.invalid/agent:1"}],
                    },
                },
            },
        }))
        .expect("daemon set");
        sets.create(&PostParams::default(), &ds)
            .await
            .expect("create daemon set");

        // 1. One Ready pod on each of the three eligible nodes.
        let (listed, hash1) = wait_settled(
            &s,
            "one Ready agent pod on each of node-a, node-b, node-c",
            &pods,
            &sets,
            &revs,
            &["node-a", "node-b", "node-c"],
        )
        .await;
        let (_, rev1, count) = current_revision(&revs).await.expect("revision");
        assert_eq!((rev1, count), (1, 1));
        for p in &listed {
            let spec = p.spec.clone().unwrap_or_default();
            // Placed by the scheduler through node affinity, with the daemon tolerations.
            let fields = spec
                .affinity
                .and_then(|a| a.node_affinity)
                .and_then(|na| na.required_during_scheduling_ignored_during_execution)
                .map(|r| r.node_selector_terms)
                .unwrap_or_default();
            assert_eq!(fields.len(), 1, "{p:?}");
            let f = fields[0].match_fields.clone().unwrap_or_default();
            assert_eq!(f[0].key, "metadata.name");
            assert_eq!(f[0].values, node_of(p).map(|n| vec![n]));
            assert!(spec.tolerations.iter().flatten().any(|t| {
                t.key.as_deref() == Some("node.kubernetes.io/unreachable")
                    && t.effect.as_deref() == Some("NoExecute")
                    && t.toleration_seconds.is_none()
            }));
            assert!(p.labels().contains_key("pod-template-generation"));
            let owner = p.owner_references().first().map(|r| r.kind.clone());
            assert_eq!(owner.as_deref(), Some("DaemonSet"));
        }
        let status = kubectl_ok(&s, &["rollout", "status", "daemonset/agent", "--timeout=60s"]);
        assert!(status.contains("successfully rolled out"), "{status}");

        // 2. A new worker gets a pod.
        alive.lock().insert("node-d".into());
        add_node(&c, "node-d", "4", &[("role", "worker")]).await;
        let four = ["node-a", "node-b", "node-c", "node-d"];
        let (listed, _) = wait_settled(&s, "a pod on node-d too", &pods, &sets, &revs, &four).await;

        // 3. A failed pod is replaced.
        let victim = listed
            .iter()
            .find(|p| node_of(p).as_deref() == Some("node-a"))
            .map(|p| p.name_any())
            .expect("pod on node-a");
        let failed = json!({"status": {"phase": "Failed", "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        pods.patch_status(&victim, &PatchParams::default(), &Patch::Merge(&failed))
            .await
            .expect("fail a pod");
        let listed = eventually(&s, "the failed pod replaced", LONG, || async {
            let (hash, _, _) = current_revision(&revs).await?;
            let l = settled(&pods, &sets, &four, &hash).await?;
            (!l.iter().any(|p| p.name_any() == victim)).then_some(l)
        })
        .await;
        assert_eq!(pods_by_node(&listed).len(), 4);

        // 4. A template change rolls every node, at most one (maxUnavailable) down at once.
        let eligible: BTreeSet<String> = four.iter().map(|n| n.to_string()).collect();
        let (worst, watch_task) = watch_unavailability(pods.clone(), eligible);
        eventually(&s, "the pod watch has listed", LONG, || async {
            worst.lock().map(|_| ())
        })
        .await;
        kubectl_ok(
            &s,
            &["set", "image", "daemonset/agent", "agent=registry.invalid/agent:2"],
        );
        let status = kubectl_ok(&s, &["rollout", "status", "daemonset/agent", "--timeout=90s"]);
        assert!(status.contains("successfully rolled out"), "{status}");
        let (listed, _) = eventually(&s, "every pod of the new revision", LONG, || async {
            let (hash, _, _) = current_revision(&revs).await?;
            if hash == hash1 {
                return None;
            }
            let l = settled(&pods, &sets, &four, &hash).await?;
            Some((l, hash))
        })
        .await;
        let images: BTreeSet<String> = listed
            .iter()
            .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
            .collect();
        assert_eq!(images, BTreeSet::from(["registry.invalid/agent:2".to_string()]));
        let (_, rev2, count) = current_revision(&revs).await.expect("revision");
        assert_eq!((rev2, count), (2, 2));
        watch_task.abort();
        let worst = worst.lock().unwrap_or(usize::MAX);
        assert!(
            worst <= 1,
            "{worst} nodes were without an available pod at once (maxUnavailable 1)"
        );
        let history = kubectl_ok(&s, &["rollout", "history", "daemonset/agent"]);
        let revisions: Vec<&str> = history
            .lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        assert_eq!(revisions.len(), 2, "{history}");

        // 5. A worker relabelled out of the node selector loses its pod; the tainted one never
        //    got one (settled checks every pod's node).
        nodes
            .patch(
                "node-b",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"labels": {"role": "db"}}})),
            )
            .await
            .expect("relabel node-b");
        let three = ["node-a", "node-c", "node-d"];
        wait_settled(&s, "node-b's pod gone", &pods, &sets, &revs, &three).await;

        // 6. A node that dies and is deleted loses its pod (no kubelet confirms: deleted
        //    at once).
        alive.lock().remove("node-c");
        nodes
            .delete("node-c", &DeleteParams::default())
            .await
            .expect("delete node-c");
        let two = ["node-a", "node-d"];
        wait_settled(&s, "node-c's pod gone", &pods, &sets, &revs, &two).await;

        let events = kubectl_ok(&s, &["describe", "daemonset", "agent"]);
        assert!(events.contains("Created pod: agent-"), "{events}");
        assert!(events.contains("Deleted pod: agent-"), "{events}");
        kubelet.abort();
    });
    eprintln!(
        "daemonset_covers_every_eligible_node took {:?}",
        started.elapsed()
    );
}
