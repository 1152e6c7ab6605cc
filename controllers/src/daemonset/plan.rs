//! What a DaemonSet needs done: a pure function of the daemon set, the nodes, the pods of its
//! namespace, the current revision's hash, the failed-pod back-offs and the time.
//!
//! [`plan`] mirrors one pass of Kubernetes' DaemonSet controller (`pkg/controller/daemon`):
//!
//! 1. Claim pods: adopt orphans the selector matches (not terminating), release owned pods
//!    it no longer matches.
//! 2. Group the claimed pods by the node they are meant for (`spec.nodeName`, or the
//!    `metadata.name` of the node affinity the controller gave them while they wait for the
//!    scheduler). Pods that are both terminal and terminating are ignored.
//! 3. "manage": per node, by [`node_should_run`]: create a pod on an eligible node without
//!    one; delete every pod of a node it may not stay on; delete Failed pods (at most once
//!    per back-off period per node) and Succeeded ones; of several running pods keep the
//!    oldest (with maxSurge, an old and a new pod may coexist while the new one is not
//!    available yet). Pods meant for nodes that no longer exist are deleted at once (grace
//!    period 0: no kubelet will ever confirm; keelson has no pod GC doing it for us).
//! 4. Only when manage has nothing to do: the rolling update (updateStrategy
//!    `RollingUpdate`): without surge, delete old pods while the unavailable count (nodes
//!    without an available pod, old or new) stays within maxUnavailable, an unavailable old
//!    pod always being replaceable; with surge, create new pods next to old ones up to
//!    maxSurge and delete an old pod once its replacement is available. `OnDelete` only
//!    replaces pods somebody else deleted.
//! 5. Status from the grouped pods before this pass's actions.
//!
//! Creations and deletions are capped at [`BURST_REPLICAS`] per pass. The caller applies the
//! plan, keeps the expectations (no acting on a cache that lags its own writes) and the
//! failed-pod back-off state.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::eligibility::{
    add_daemon_tolerations, affinity_for_node, node_should_run, target_node, Fit,
};
use super::history::{owner_ref, HASH_LABEL};
use crate::replicaset::diff::{controller_ref, is_pod_available, is_pod_ready, selector_matches};

/// The most pods created or deleted in one pass (Kubernetes' DaemonSet `BurstReplicas`).
pub const BURST_REPLICAS: usize = 250;
/// The (deprecated) label with the template generation a pod was made from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The annotation the template generation is read from when set (older apiservers);
/// otherwise `metadata.generation` is used.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// What to feed [`plan`].
pub struct Input<'a> {
    pub ds: &'a DaemonSet,
    pub nodes: &'a [Arc<Node>],
    /// The pods of the daemon set's namespace (others are ignored).
    pub pods: &'a [Arc<Pod>],
    /// The hash of the current revision.
    pub hash: &'a str,
    /// Per node, how long deleting another failed pod there must still wait.
    pub backoff: &'a HashMap<String, Duration>,
    pub now: jiff::Timestamp,
}

/// A pod to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub pod: String,
    pub uid: Option<String>,
    /// The node it was meant for.
    pub node: String,
    /// Delete with grace period 0 (its node is gone).
    pub force: bool,
    /// Count it in the expectations (false for a pod already terminating, whose deletion was
    /// observed when it was marked).
    pub expected: bool,
}

/// A Failed pod being deleted (an event and a back-off step for its node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedPod {
    pub pod: String,
    pub node: String,
}

/// The decisions of one pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Orphan pods to adopt.
    pub adopt: Vec<String>,
    /// Owned pods the selector no longer matches, to release.
    pub release: Vec<String>,
    /// Nodes to create a pod for.
    pub create: Vec<String>,
    pub delete: Vec<Deletion>,
    pub failed: Vec<FailedPod>,
    /// The status (observedGeneration = the daemon set's generation; the caller keeps the
    /// old one when it did not act).
    pub status: DaemonSetStatus,
    /// Revision hashes claimed pods carry (their revisions must not be cleaned up).
    pub live_hashes: BTreeSet<String>,
    /// When to look again even if nothing changes (a pod becoming available, a back-off
    /// running out).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |a| a.min(after)));
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn scheduled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Kubernetes' `podByCreationTimestampAndPhase`: scheduled pods first, then oldest first,
/// then by name.
fn oldest_first(a: &&Pod, b: &&Pod) -> Ordering {
    scheduled(b)
        .cmp(&scheduled(a))
        .then_with(|| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            match (t(a), t(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The template generation pods are labelled with: the deprecated annotation when an
/// apiserver sets it, else `metadata.generation`.
pub fn template_generation(ds: &DaemonSet) -> Option<String> {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .cloned()
        .or_else(|| ds.metadata.generation.map(|g| g.to_string()))
}

/// Whether a pod is of the current revision (Kubernetes' `IsPodUpdated`): its hash label
/// is the current hash, or it carries the template generation of the deprecated annotation.
/// `metadata.generation` is not used for this: it also moves when only the update strategy
/// changes.
pub fn is_updated(ds: &DaemonSet, pod: &Pod, hash: &str) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let hash_matches = !hash.is_empty() && label(HASH_LABEL) == Some(hash);
    let annotated = ds
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION));
    let generation_matches =
        annotated.is_some_and(|g| label(TEMPLATE_GENERATION_LABEL) == Some(g.as_str()));
    hash_matches || generation_matches
}

/// An `IntOrString` scaled against `total` (Kubernetes' `GetScaledValueFromIntOrPercent`
/// rounding up): an int as is, `"N%"` as N% of total. Anything else is 0.
fn scaled(v: &IntOrString, total: usize) -> usize {
    match v {
        IntOrString::Int(i) => usize::try_from(*i).unwrap_or(0),
        IntOrString::String(s) => match s.strip_suffix('%').map(|p| p.trim().parse::<u64>()) {
            Some(Ok(p)) => {
                let n = u128::from(p.min(1_000_000)) * total as u128;
                usize::try_from(n.div_ceil(100)).unwrap_or(usize::MAX)
            }
            _ => 0,
        },
    }
}

/// Whether the daemon set is updated by the controller (`RollingUpdate`, the default) rather
/// than `OnDelete`.
pub fn is_rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t != "OnDelete")
}

fn rolling_param(ds: &DaemonSet, surge: bool) -> Option<IntOrString> {
    let ru = ds
        .spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()?;
    if surge {
        ru.max_surge.clone()
    } else {
        Some(ru.max_unavailable.clone().unwrap_or(IntOrString::Int(1)))
    }
}

/// maxSurge against `desired` nodes (0 for OnDelete or when unset).
fn surge_count(ds: &DaemonSet, desired: usize) -> usize {
    if !is_rolling(ds) {
        return 0;
    }
    rolling_param(ds, true).map_or(0, |v| scaled(&v, desired))
}

/// maxUnavailable against `desired` nodes (0 for OnDelete; 1 when unset).
fn unavailable_count(ds: &DaemonSet, desired: usize) -> usize {
    if !is_rolling(ds) {
        return 0;
    }
    match rolling_param(ds, false) {
        Some(v) => scaled(&v, desired),
        None => 1,
    }
}

/// Whether maxSurge allows an extra pod per node (Kubernetes' `AllowsSurge`).
fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1) != 0
}

/// When a ready pod becomes available (Ready since its transition + minReadySeconds), as a
/// delay from `now`; None if it is not ready or already available.
fn until_available(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> Option<Duration> {
    if !is_pod_ready(pod) || is_pod_available(pod, min_ready, now) {
        return None;
    }
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let min = Duration::from_secs(u64::try_from(min_ready.max(0)).unwrap_or(0));
    let Some(since) = since else {
        return Some(min);
    };
    let at = since.as_nanosecond() + min.as_nanos() as i128;
    let wait = u64::try_from(at - now.as_nanosecond()).unwrap_or(0);
    Some(Duration::from_nanos(wait).max(Duration::from_millis(1)))
}

fn deletion(pod: &Pod, node: &str, force: bool) -> Deletion {
    Deletion {
        pod: name(pod),
        uid: pod.metadata.uid.clone(),
        node: node.to_string(),
        force,
        expected: !terminating(pod),
    }
}

/// The pod to create for `ds` on `node`: `generateName` `<ds>-`, the template's labels plus
/// `controller-revision-hash` and `pod-template-generation`, its annotations and finalizers,
/// a controller ownerReference, the template's spec with the DaemonSet tolerations and a
/// required node affinity naming the node (the scheduler binds it; `spec.nodeName` is not
/// set).
pub fn pod_for_node(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds.spec.as_ref().map(|s| &s.template);
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let mut labels = tmeta.and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    if let Some(g) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g);
    }
    let mut spec = template.and_then(|t| t.spec.clone()).unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec.affinity = Some(affinity_for_node(spec.affinity.as_ref(), node));
    let name = ds.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.and_then(|m| m.annotations.clone()),
            finalizers: tmeta.and_then(|m| m.finalizers.clone()),
            owner_references: Some(vec![owner_ref(ds)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// One pass over the daemon set (see the module documentation).
pub fn plan(input: &Input<'_>) -> Plan {
    let ds = input.ds;
    let mut out = Plan::default();
    let empty_sel = LabelSelector::default();
    let spec = ds.spec.as_ref();
    let selector = spec.map_or(&empty_sel, |s| &s.selector);
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let uid = ds.metadata.uid.as_deref().filter(|u| !u.is_empty());
    // A daemon set without a template, uid or selector, or being deleted, gets a status but
    // no actions (Kubernetes does not even write the status of one being deleted; the
    // caller does not call us then).
    let acting = spec.is_some()
        && uid.is_some()
        && ds.metadata.deletion_timestamp.is_none()
        && !crate::labels::is_empty(selector);
    let no_labels = BTreeMap::new();

    // 1. Claim.
    let mut claimed: Vec<&Pod> = Vec::new();
    if let Some(uid) = uid {
        for pod in input.pods {
            if pod.metadata.namespace != ds.metadata.namespace {
                continue;
            }
            let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
            let selected = selector_matches(selector, labels);
            match controller_ref(&pod.metadata) {
                Some(r) if r.uid == uid => {
                    if selected {
                        claimed.push(pod);
                    } else if acting {
                        out.release.push(name(pod));
                    }
                }
                Some(_) => {}
                None => {
                    if selected && acting && !terminating(pod) {
                        out.adopt.push(name(pod));
                        claimed.push(pod);
                    }
                }
            }
        }
    }

    // 2. By node.
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in claimed {
        let terminal = matches!(phase(pod), "Succeeded" | "Failed");
        if terminal && terminating(pod) {
            continue;
        }
        let Some(node) = target_node(pod.spec.as_ref()) else {
            continue;
        };
        if let Some(h) = pod.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)) {
            out.live_hashes.insert(h.clone());
        }
        by_node.entry(node).or_default().push(pod);
    }
    for pods in by_node.values_mut() {
        pods.sort_by(oldest_first);
    }
    let template = spec.map(|s| s.template.clone()).unwrap_or_default();
    let mut nodes: Vec<&Node> = input.nodes.iter().map(|n| &**n).collect();
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let fits: BTreeMap<&str, Fit> = nodes
        .iter()
        .map(|n| {
            (
                n.metadata.name.as_deref().unwrap_or(""),
                node_should_run(&template, n),
            )
        })
        .collect();

    // 5. Status (from the state before this pass's actions).
    let mut status = DaemonSetStatus {
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        observed_generation: ds.metadata.generation,
        ..Default::default()
    };
    let (mut desired, mut current, mut misscheduled) = (0usize, 0usize, 0usize);
    let (mut ready, mut available, mut updated) = (0usize, 0usize, 0usize);
    for (node, fit) in &fits {
        let first = by_node.get(node).and_then(|p| p.first());
        if fit.should_run {
            desired += 1;
            let Some(pod) = first else { continue };
            current += 1;
            if is_pod_ready(pod) {
                ready += 1;
                if is_pod_available(pod, min_ready, input.now) {
                    available += 1;
                }
            }
            if is_updated(ds, pod, input.hash) {
                updated += 1;
            }
        } else if first.is_some() {
            misscheduled += 1;
        }
    }
    let i32_of = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    status.desired_number_scheduled = i32_of(desired);
    status.current_number_scheduled = i32_of(current);
    status.number_misscheduled = i32_of(misscheduled);
    status.number_ready = i32_of(ready);
    status.number_available = Some(i32_of(available));
    status.updated_number_scheduled = Some(i32_of(updated));
    status.number_unavailable = Some(i32_of(desired.saturating_sub(available)));
    out.status = status;
    for pods in by_node.values() {
        for p in pods {
            if !terminating(p) {
                if let Some(d) = until_available(p, min_ready, input.now) {
                    out.requeue(d);
                }
            }
        }
    }
    if !acting {
        return out;
    }

    // 3. Manage.
    let surge = allows_surge(ds);
    for (node, fit) in &fits {
        let pods = by_node.get(node);
        if fit.should_run && pods.is_none() {
            out.create.push(node.to_string());
            continue;
        }
        let Some(pods) = pods else { continue };
        if !fit.should_continue {
            for p in pods.iter().filter(|p| !terminating(p)) {
                out.delete.push(deletion(p, node, false));
            }
            continue;
        }
        let mut running: Vec<&Pod> = Vec::new();
        for p in pods.iter().filter(|p| !terminating(p)) {
            match phase(p) {
                "Failed" => {
                    if let Some(wait) = input.backoff.get(*node).filter(|d| !d.is_zero()) {
                        out.requeue(*wait);
                        continue;
                    }
                    out.failed.push(FailedPod {
                        pod: name(p),
                        node: node.to_string(),
                    });
                    out.delete.push(deletion(p, node, false));
                }
                "Succeeded" => out.delete.push(deletion(p, node, false)),
                _ => running.push(p),
            }
        }
        // `running` is oldest first.
        if !surge {
            for p in running.iter().skip(1) {
                out.delete.push(deletion(p, node, false));
            }
            continue;
        }
        // With surge, an old and a new pod may coexist: keep the oldest of each; the old one
        // goes once it is not ready or the new one is available.
        let mut oldest_new: Option<&Pod> = None;
        let mut oldest_old: Option<&Pod> = None;
        for p in running {
            let slot = if is_updated(ds, p, input.hash) {
                &mut oldest_new
            } else {
                &mut oldest_old
            };
            if slot.is_none() {
                *slot = Some(p);
            } else {
                out.delete.push(deletion(p, node, false));
            }
        }
        if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
            if !is_pod_ready(old) || is_pod_available(new, min_ready, input.now) {
                out.delete.push(deletion(old, node, false));
            }
        }
    }
    // Pods meant for nodes that are gone.
    for (node, pods) in &by_node {
        if fits.contains_key(node) {
            continue;
        }
        for p in pods {
            // A terminating pod is force-deleted once (not again if finalizers hold it).
            let forced = p.metadata.deletion_grace_period_seconds == Some(0);
            if !terminating(p) || (scheduled(p) && !forced) {
                out.delete.push(deletion(p, node, true));
            }
        }
    }
    out.create.truncate(BURST_REPLICAS);
    out.delete.truncate(BURST_REPLICAS);
    let deleted: BTreeSet<&str> = out.delete.iter().map(|d| d.pod.as_str()).collect();
    out.failed.retain(|f| deleted.contains(f.pod.as_str()));
    if !out.create.is_empty() || !out.delete.is_empty() || !is_rolling(ds) {
        return out;
    }

    // 4. Rolling update.
    let mut rolling: BTreeMap<&str, Vec<&Pod>> = by_node.clone();
    for (node, fit) in &fits {
        if fit.should_run {
            rolling.entry(node).or_default();
        }
    }
    let max_surge = surge_count(ds, desired);
    let mut max_unavailable = unavailable_count(ds, desired);
    if desired > 0 && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let available = |p: &Pod| is_pod_available(p, min_ready, input.now);
    if max_surge == 0 {
        let mut unavailable = 0usize;
        let mut replace_now: Vec<(&str, &Pod)> = Vec::new();
        let mut candidates: Vec<(&str, &Pod)> = Vec::new();
        for (node, pods) in &rolling {
            let Some((new, old)) = new_and_old(ds, pods, input.hash) else {
                // Excess pods: manage cleans the node up; count it unavailable meanwhile.
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !available(old) {
                        // Down anyway: replace it now, and count it as unavailable.
                        replace_now.push((node, old));
                        unavailable += 1;
                    } else if unavailable < max_unavailable {
                        candidates.push((node, old));
                    }
                }
            }
        }
        let room = max_unavailable
            .saturating_sub(unavailable)
            .min(candidates.len());
        for (node, p) in replace_now
            .into_iter()
            .chain(candidates.into_iter().take(room))
        {
            out.delete.push(deletion(p, node, false));
        }
    } else {
        let mut surged = 0usize;
        let mut available_nodes = 0usize;
        let mut allowed_new: Vec<&str> = Vec::new();
        let mut candidate_new: Vec<&str> = Vec::new();
        let mut sunset: Vec<(&str, &Pod)> = Vec::new();
        for (node, pods) in &rolling {
            let Some((new, old)) = new_and_old(ds, pods, input.hash) else {
                surged += 1;
                continue;
            };
            let should_run = fits.get(node).is_some_and(|f| f.should_run);
            if old.or(new).is_some_and(available) {
                available_nodes += 1;
            }
            match (new, old) {
                (_, None) => {}
                (None, Some(old)) => {
                    if !available(old) {
                        if should_run {
                            allowed_new.push(node);
                        } else {
                            out.delete.push(deletion(old, node, false));
                        }
                    } else if !should_run {
                        sunset.push((node, old));
                    } else if surged < max_surge {
                        candidate_new.push(node);
                    }
                }
                (Some(new), Some(old)) => {
                    if available(new) {
                        out.delete.push(deletion(old, node, false));
                    } else {
                        surged += 1;
                    }
                }
            }
        }
        // Old available pods on nodes they must leave go only while the rest keeps every
        // desired node available.
        let deletable = available_nodes.saturating_sub(desired).min(sunset.len());
        for (node, p) in sunset.into_iter().take(deletable) {
            out.delete.push(deletion(p, node, false));
        }
        let room = max_surge.saturating_sub(surged).min(candidate_new.len());
        for node in allowed_new
            .into_iter()
            .chain(candidate_new.into_iter().take(room))
        {
            out.create.push(node.to_string());
        }
    }
    out.create.truncate(BURST_REPLICAS);
    out.delete.truncate(BURST_REPLICAS);
    out
}

/// The one up-to-date and the one old pod on a node, ignoring terminating pods (Kubernetes'
/// `findUpdatedPodsOnNode`); None if there are two of either.
fn new_and_old<'p>(
    ds: &DaemonSet,
    pods: &[&'p Pod],
    hash: &str,
) -> Option<(Option<&'p Pod>, Option<&'p Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods.iter().copied().filter(|p| !terminating(p)) {
        let slot = if is_updated(ds, p, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p);
    }
    Some((new, old))
}

#[cfg(test)]
mod tests;
