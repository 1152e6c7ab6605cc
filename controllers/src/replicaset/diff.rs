//! What a ReplicaSet needs done: a pure function of the replica set, the pods in its
//! namespace and the current time.
//!
//! [`replicaset_diff`] mirrors one pass of Kubernetes' ReplicaSet controller
//! (`pkg/controller/replicaset`): claim pods (adopt orphans that match the selector, release
//! owned pods that no longer match), compare the number of active owned pods with
//! `spec.replicas`, pick how many pods to create or which ones to delete (at most
//! [`BURST_REPLICAS`] per pass), and compute the new status. The caller applies the result
//! through the API (adopt/release by patching ownerReferences, create with
//! [`pod_from_template`] in [`slow_start_batches`], delete by name) and is responsible for
//! "expectations" (not re-planning on a stale cache after creating/deleting pods).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

/// The most pods created or deleted in one pass (Kubernetes' `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The decisions of one ReplicaSet sync pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// Names of orphan pods (no controller ownerReference) that match the selector and are not
    /// terminating; the caller adds a controller ownerReference to the RS. Empty while the RS
    /// is being deleted.
    pub adopt: Vec<String>,
    /// Names of pods controlled by this RS that no longer match its selector; the caller
    /// removes the ownerReference. Empty while the RS is being deleted.
    pub release: Vec<String>,
    /// How many pods to create now (at most [`BURST_REPLICAS`]).
    pub create: usize,
    /// Names of owned pods to delete now, best victims first (at most [`BURST_REPLICAS`]).
    pub delete: Vec<String>,
    /// The status the RS should carry (computed from the claimed pods before this pass's
    /// creations/deletions, as Kubernetes does).
    pub status: ReplicaSetStatus,
    /// When to look again because a ready pod will become available by `minReadySeconds`.
    pub requeue_after: Option<Duration>,
}

/// The controller ownerReference of an object, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `labels` satisfy `sel` (`matchLabels` and `matchExpressions` with the operators
/// In, NotIn, Exists, DoesNotExist). An empty selector matches nothing (Kubernetes rejects
/// empty selectors on a ReplicaSet); an unknown operator matches nothing.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    !crate::labels::is_empty(sel) && crate::labels::selector_matches(sel, labels)
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// The instant a ready pod becomes available (`None` if it is not ready, or ready with an
/// unknown transition time while `min_ready_seconds > 0`). Nanoseconds since the epoch.
fn available_at_ns(pod: &Pod, min_ready_seconds: i32) -> Option<i128> {
    if !is_pod_ready(pod) {
        return None;
    }
    let since = ready_since(pod);
    if min_ready_seconds <= 0 {
        return Some(since.map_or(i128::MIN, |t| t.as_nanosecond()));
    }
    let since = since?;
    Some(since.as_nanosecond() + i128::from(min_ready_seconds) * 1_000_000_000)
}

/// Whether the pod is available: ready, and ready for at least `min_ready_seconds`
/// (the Ready condition's lastTransitionTime + minReadySeconds <= now).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    available_at_ns(pod, min_ready_seconds).is_some_and(|at| at <= now.as_nanosecond())
}

/// Whether the pod counts toward replicas: not terminating and not Succeeded/Failed.
pub fn is_active(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    !matches!(phase(pod), "Succeeded" | "Failed")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Batch sizes 1, 2, 4, ... whose sum is `n` (the last batch is what is left). The caller
/// issues each batch in parallel and stops after a batch in which a creation failed.
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = n;
    let mut size = 1usize;
    while remaining > 0 {
        let batch = size.min(remaining);
        out.push(batch);
        remaining -= batch;
        size = size.saturating_mul(2);
    }
    out
}

/// A pod to create for the RS: `generateName` `"<rs-name>-"`, the RS's namespace, labels,
/// annotations and finalizers from the template, a controller ownerReference to the RS and
/// the template's spec.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.and_then(|m| m.labels.clone()),
            annotations: tmeta.and_then(|m| m.annotations.clone()),
            finalizers: tmeta.and_then(|m| m.finalizers.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_string(),
                kind: "ReplicaSet".to_string(),
                name,
                uid: rs.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    }
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0, // Pending (and an unset phase) first
    }
}

fn is_assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// Kubernetes' `ActivePods` ordering: `Less` means `a` is the better deletion victim.
fn victim_order(a: &Pod, b: &Pod) -> Ordering {
    // 1. unassigned < assigned
    is_assigned(a)
        .cmp(&is_assigned(b))
        // 2. Pending < Unknown < Running
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        // 3. not ready < ready
        .then_with(|| is_pod_ready(a).cmp(&is_pod_ready(b)))
        // 4. ready for less time < ready for longer (an unknown time counts as most recent)
        .then_with(|| {
            if is_pod_ready(a) && is_pod_ready(b) {
                let key = |p: &Pod| ready_since(p).map(|t| t.as_nanosecond());
                match (key(a), key(b)) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => y.cmp(&x),
                }
            } else {
                Ordering::Equal
            }
        })
        // 5. more restarts first
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        // 6. newer first (an unknown creation time counts as newest)
        .then_with(|| {
            let key = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            match (key(a), key(b)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => y.cmp(&x),
            }
        })
        // deterministic tie-break
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// One pass of the ReplicaSet controller over `rs` and the pods of its namespace.
///
/// Pods in another namespace and pods controlled by something else are ignored. Claiming,
/// counting and deletion consider only active pods ([`is_active`]), as Kubernetes does.
/// While the RS is being deleted nothing is adopted, released, created or deleted; the
/// status is still computed. An RS without a uid owns nothing and adopts nothing.
pub fn replicaset_diff(rs: &ReplicaSet, pods: &[Pod], now: jiff::Timestamp) -> Diff {
    let spec = rs.spec.as_ref();
    let empty_selector = LabelSelector::default();
    let selector = spec.map_or(&empty_selector, |s| &s.selector);
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1).max(0);
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let rs_uid = rs.metadata.uid.as_deref().filter(|u| !u.is_empty());
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();
    let no_labels = BTreeMap::new();

    let mut diff = Diff::default();
    let mut owned: Vec<&Pod> = Vec::new();

    for pod in pods {
        if !is_active(pod) {
            continue;
        }
        if let (Some(a), Some(b)) = (&rs.metadata.namespace, &pod.metadata.namespace) {
            if a != b {
                continue;
            }
        }
        let Some(uid) = rs_uid else { continue };
        let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
        let matches = selector_matches(selector, labels);
        let name = pod.metadata.name.clone().unwrap_or_default();
        match controller_ref(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(pod);
                } else if !rs_deleting {
                    diff.release.push(name);
                }
            }
            Some(_) => {}
            None => {
                if matches && !rs_deleting {
                    diff.adopt.push(name);
                    owned.push(pod);
                }
            }
        }
    }

    // Status from the claimed active pods.
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&no_labels);
    let fully_labeled = owned
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref().unwrap_or(&no_labels);
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = owned.iter().filter(|p| is_pod_ready(p)).count();
    let now_ns = now.as_nanosecond();
    let mut available = 0usize;
    let mut next_available: Option<i128> = None;
    for p in &owned {
        match available_at_ns(p, min_ready) {
            Some(at) if at <= now_ns => available += 1,
            Some(at) => {
                next_available = Some(next_available.map_or(at, |n: i128| n.min(at)));
            }
            None => {}
        }
    }
    diff.requeue_after = next_available.map(|at| {
        let nanos = u64::try_from(at - now_ns).unwrap_or(u64::MAX);
        Duration::from_nanos(nanos)
    });
    diff.status = ReplicaSetStatus {
        replicas: to_i32(owned.len()),
        fully_labeled_replicas: Some(to_i32(fully_labeled)),
        ready_replicas: Some(to_i32(ready)),
        available_replicas: Some(to_i32(available)),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };

    if rs_deleting || rs_uid.is_none() {
        return diff;
    }
    let desired = usize::try_from(desired).unwrap_or(0);
    if desired > owned.len() {
        diff.create = (desired - owned.len()).min(BURST_REPLICAS);
    } else if desired < owned.len() {
        let n = (owned.len() - desired).min(BURST_REPLICAS);
        owned.sort_by(|a, b| victim_order(a, b));
        diff.delete = owned
            .iter()
            .take(n)
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{
        ContainerStatus, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};

    const UID: &str = "rs-uid";

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some(UID.into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: None,
                selector: LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    match_expressions: None,
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[("app", "web"), ("tier", "front")])),
                        annotations: Some(labels(&[("note", "x")])),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Default::default()],
                        ..Default::default()
                    }),
                }),
            }),
            status: None,
        }
    }

    fn owner(uid: &str) -> Vec<OwnerReference> {
        vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    }

    /// A running, ready (since t=0), assigned pod owned by the RS, created at t=0.
    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some(labels(&[("app", "web"), ("tier", "front")])),
                owner_references: Some(owner(UID)),
                creation_timestamp: Some(Time(ts(0))),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(0))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn with_phase(mut p: Pod, phase: &str) -> Pod {
        if let Some(s) = p.status.as_mut() {
            s.phase = Some(phase.into());
        }
        p
    }

    fn with_ready(mut p: Pod, status: &str, since: i64) -> Pod {
        if let Some(s) = p.status.as_mut() {
            s.conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: status.into(),
                last_transition_time: Some(Time(ts(since))),
                ..Default::default()
            }]);
        }
        p
    }

    fn unassigned(mut p: Pod) -> Pod {
        if let Some(s) = p.spec.as_mut() {
            s.node_name = None;
        }
        p
    }

    fn with_restarts(mut p: Pod, n: i32) -> Pod {
        if let Some(s) = p.status.as_mut() {
            s.container_statuses = Some(vec![ContainerStatus {
                name: "c".into(),
                restart_count: n,
                ..Default::default()
            }]);
        }
        p
    }

    fn created_at(mut p: Pod, secs: i64) -> Pod {
        p.metadata.creation_timestamp = Some(Time(ts(secs)));
        p
    }

    fn orphan(mut p: Pod) -> Pod {
        p.metadata.owner_references = None;
        p
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn creates_missing_pods() {
        let d = replicaset_diff(&rs(3), &[pod("a")], ts(100));
        assert_eq!(d.create, 2);
        assert!(d.delete.is_empty());
        assert_eq!(d.status.replicas, 1);
        assert_eq!(d.status.observed_generation, Some(3));
    }

    #[test]
    fn default_replicas_is_one() {
        let mut r = rs(0);
        r.spec.as_mut().unwrap().replicas = None;
        assert_eq!(replicaset_diff(&r, &[], ts(0)).create, 1);
    }

    #[test]
    fn burst_cap() {
        let d = replicaset_diff(&rs(1200), &[], ts(0));
        assert_eq!(d.create, 500);
        let pods: Vec<Pod> = (0..700).map(|i| pod(&format!("p{i}"))).collect();
        let d = replicaset_diff(&rs(0), &pods, ts(0));
        assert_eq!(d.delete.len(), 500);
        assert_eq!(d.status.replicas, 700);
    }

    #[test]
    fn adopts_orphans_and_releases_mismatches() {
        let mut mismatched = pod("mine-but-relabeled");
        mismatched.metadata.labels = Some(labels(&[("app", "other")]));
        let mut foreign = orphan(pod("foreign"));
        foreign.metadata.owner_references = Some(owner("other-uid"));
        let mut terminating_orphan = orphan(pod("dying-orphan"));
        terminating_orphan.metadata.deletion_timestamp = Some(Time(ts(1)));
        let mut other_labels = orphan(pod("nomatch"));
        other_labels.metadata.labels = Some(labels(&[("app", "db")]));
        let mut other_ns = orphan(pod("elsewhere"));
        other_ns.metadata.namespace = Some("kube-system".into());
        let pods = vec![
            pod("a"),
            orphan(pod("o1")),
            mismatched,
            foreign,
            terminating_orphan,
            other_labels,
            other_ns,
        ];
        let d = replicaset_diff(&rs(2), &pods, ts(0));
        assert_eq!(d.adopt, names(&["o1"]));
        assert_eq!(d.release, names(&["mine-but-relabeled"]));
        // a + adopted o1 = 2 active owned pods
        assert_eq!(d.status.replicas, 2);
        assert_eq!(d.create, 0);
        assert!(d.delete.is_empty());
    }

    #[test]
    fn deleting_rs_does_not_claim_or_manage() {
        let mut r = rs(5);
        r.metadata.deletion_timestamp = Some(Time(ts(0)));
        let mut mismatched = pod("m");
        mismatched.metadata.labels = Some(labels(&[("app", "other")]));
        let d = replicaset_diff(&r, &[pod("a"), orphan(pod("o")), mismatched], ts(0));
        assert!(d.adopt.is_empty());
        assert!(d.release.is_empty());
        assert_eq!(d.create, 0);
        assert_eq!(d.status.replicas, 1);
    }

    #[test]
    fn terminating_and_finished_pods_not_counted() {
        let mut dying = pod("dying");
        dying.metadata.deletion_timestamp = Some(Time(ts(5)));
        let pods = vec![
            pod("a"),
            dying,
            with_phase(pod("done"), "Succeeded"),
            with_phase(pod("failed"), "Failed"),
        ];
        let d = replicaset_diff(&rs(3), &pods, ts(10));
        assert_eq!(d.status.replicas, 1);
        assert_eq!(d.status.ready_replicas, Some(1));
        assert_eq!(d.create, 2);
        // never selected for deletion either
        let d = replicaset_diff(&rs(0), &pods, ts(10));
        assert_eq!(d.delete, names(&["a"]));
    }

    #[test]
    fn fully_labeled_count() {
        let mut partial = pod("partial");
        partial.metadata.labels = Some(labels(&[("app", "web")]));
        let d = replicaset_diff(&rs(3), &[pod("a"), pod("b"), partial], ts(0));
        assert_eq!(d.status.replicas, 3);
        assert_eq!(d.status.fully_labeled_replicas, Some(2));
    }

    #[test]
    fn min_ready_seconds_availability_and_requeue() {
        let mut r = rs(3);
        r.spec.as_mut().unwrap().min_ready_seconds = Some(30);
        let pods = vec![
            with_ready(pod("old"), "True", 0),    // available at 30
            with_ready(pod("mid"), "True", 80),   // available at 110
            with_ready(pod("young"), "True", 90), // available at 120
        ];
        let d = replicaset_diff(&r, &pods, ts(100));
        assert_eq!(d.status.ready_replicas, Some(3));
        assert_eq!(d.status.available_replicas, Some(1));
        assert_eq!(d.requeue_after, Some(Duration::from_secs(10)));
        // exactly at the boundary counts as available
        let d = replicaset_diff(&r, &pods, ts(110));
        assert_eq!(d.status.available_replicas, Some(2));
        assert_eq!(d.requeue_after, Some(Duration::from_secs(10)));
        let d = replicaset_diff(&r, &pods, ts(500));
        assert_eq!(d.status.available_replicas, Some(3));
        assert_eq!(d.requeue_after, None);
        // without minReadySeconds every ready pod is available, no requeue
        let d = replicaset_diff(&rs(3), &pods, ts(100));
        assert_eq!(d.status.available_replicas, Some(3));
        assert_eq!(d.requeue_after, None);
    }

    #[test]
    fn availability_helpers() {
        let p = with_ready(pod("p"), "True", 10);
        assert!(is_pod_ready(&p));
        assert!(is_pod_available(&p, 0, ts(10)));
        assert!(!is_pod_available(&p, 5, ts(14)));
        assert!(is_pod_available(&p, 5, ts(15)));
        let nr = with_ready(pod("p"), "False", 10);
        assert!(!is_pod_ready(&nr));
        assert!(!is_pod_available(&nr, 0, ts(100)));
        assert!(is_active(&pod("p")));
        assert!(!is_active(&with_phase(pod("p"), "Failed")));
    }

    fn victims(replicas: i32, pods: Vec<Pod>) -> Vec<String> {
        replicaset_diff(&rs(replicas), &pods, ts(1000)).delete
    }

    #[test]
    fn deletion_prefers_unassigned() {
        let v = victims(1, vec![pod("assigned"), unassigned(pod("unassigned"))]);
        assert_eq!(v, names(&["unassigned"]));
    }

    #[test]
    fn deletion_prefers_pending_then_unknown_then_running() {
        let v = victims(
            0,
            vec![
                with_phase(pod("running"), "Running"),
                with_phase(pod("unknown"), "Unknown"),
                with_phase(pod("pending"), "Pending"),
            ],
        );
        assert_eq!(v, names(&["pending", "unknown", "running"]));
    }

    #[test]
    fn deletion_prefers_not_ready() {
        let v = victims(
            1,
            vec![pod("ready"), with_ready(pod("notready"), "False", 0)],
        );
        assert_eq!(v, names(&["notready"]));
    }

    #[test]
    fn deletion_prefers_ready_for_shorter_time() {
        let v = victims(
            1,
            vec![
                with_ready(pod("long"), "True", 10),
                with_ready(pod("short"), "True", 500),
            ],
        );
        assert_eq!(v, names(&["short"]));
    }

    #[test]
    fn deletion_prefers_more_restarts() {
        let v = victims(
            1,
            vec![
                with_restarts(pod("calm"), 1),
                with_restarts(pod("flappy"), 7),
            ],
        );
        assert_eq!(v, names(&["flappy"]));
    }

    #[test]
    fn deletion_prefers_newer() {
        let v = victims(
            1,
            vec![created_at(pod("older"), 10), created_at(pod("newer"), 20)],
        );
        assert_eq!(v, names(&["newer"]));
    }

    #[test]
    fn deletion_rule_precedence() {
        // unassigned beats every later rule: an unassigned running ready pod with no restarts
        // goes before an assigned pending one.
        let v = victims(
            1,
            vec![
                with_phase(pod("pending"), "Pending"),
                unassigned(pod("unassigned")),
            ],
        );
        assert_eq!(v, names(&["unassigned"]));
        // phase beats readiness
        let v = victims(
            1,
            vec![
                with_ready(pod("running-notready"), "False", 0),
                with_phase(pod("pending-ready"), "Pending"),
            ],
        );
        assert_eq!(v, names(&["pending-ready"]));
        // restarts beat age
        let v = victims(
            1,
            vec![
                created_at(pod("newer"), 50),
                with_restarts(created_at(pod("older-restarting"), 1), 3),
            ],
        );
        assert_eq!(v, names(&["older-restarting"]));
    }

    #[test]
    fn slow_start() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15), vec![1, 2, 4, 8]);
        assert_eq!(slow_start_batches(500).iter().sum::<usize>(), 500);
        assert_eq!(
            slow_start_batches(500),
            vec![1, 2, 4, 8, 16, 32, 64, 128, 245]
        );
    }

    #[test]
    fn pod_template() {
        let p = pod_from_template(&rs(1));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(p.metadata.name, None);
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            p.metadata.labels,
            Some(labels(&[("app", "web"), ("tier", "front")]))
        );
        assert_eq!(p.metadata.annotations, Some(labels(&[("note", "x")])));
        assert_eq!(p.metadata.owner_references, Some(owner(UID)));
        assert_eq!(p.spec.map(|s| s.containers.len()), Some(1));
        let cref = controller_ref(&pod("x").metadata).map(|r| r.uid.clone());
        assert_eq!(cref.as_deref(), Some(UID));
    }

    #[test]
    fn selector_semantics() {
        let l = labels(&[("app", "web"), ("env", "prod")]);
        let req = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        };
        let sel = |ml: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Some(labels(ml)),
            match_expressions: Some(exprs),
        };
        assert!(!selector_matches(&LabelSelector::default(), &l));
        assert!(!selector_matches(&sel(&[], vec![]), &l));
        assert!(selector_matches(&sel(&[("app", "web")], vec![]), &l));
        assert!(!selector_matches(&sel(&[("app", "db")], vec![]), &l));
        assert!(selector_matches(
            &sel(&[], vec![req("env", "In", &["prod", "stg"])]),
            &l
        ));
        assert!(!selector_matches(
            &sel(&[], vec![req("env", "In", &["dev"])]),
            &l
        ));
        assert!(!selector_matches(
            &sel(&[], vec![req("env", "NotIn", &["prod"])]),
            &l
        ));
        assert!(selector_matches(
            &sel(&[], vec![req("zone", "NotIn", &["a"])]),
            &l
        ));
        assert!(selector_matches(
            &sel(&[], vec![req("app", "Exists", &[])]),
            &l
        ));
        assert!(!selector_matches(
            &sel(&[], vec![req("app", "DoesNotExist", &[])]),
            &l
        ));
        assert!(selector_matches(
            &sel(&[("app", "web")], vec![req("zone", "DoesNotExist", &[])]),
            &l
        ));
        assert!(!selector_matches(
            &sel(&[], vec![req("app", "Bogus", &[])]),
            &l
        ));
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let mut r = rs(i32::MAX);
        r.spec.as_mut().unwrap().min_ready_seconds = Some(i32::MAX);
        let p = with_restarts(with_ready(pod("p"), "True", 0), i32::MAX);
        let d = replicaset_diff(&r, std::slice::from_ref(&p), ts(0));
        assert_eq!(d.create, BURST_REPLICAS);
        assert!(d.requeue_after.is_some());
        r.spec.as_mut().unwrap().replicas = Some(i32::MIN);
        r.spec.as_mut().unwrap().min_ready_seconds = Some(i32::MIN);
        let d = replicaset_diff(&r, &[p], ts(0));
        assert_eq!(d.delete.len(), 1);
        let _ = replicaset_diff(&ReplicaSet::default(), &[Pod::default()], ts(0));
        let _ = pod_from_template(&ReplicaSet::default());
    }

    #[test]
    fn no_uid_owns_nothing() {
        let mut r = rs(2);
        r.metadata.uid = None;
        let d = replicaset_diff(&r, &[orphan(pod("o"))], ts(0));
        assert!(d.adopt.is_empty());
        assert_eq!(d.create, 0);
        assert_eq!(d.status.replicas, 0);
    }
}
