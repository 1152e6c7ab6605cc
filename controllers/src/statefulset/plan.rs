//! What a StatefulSet needs done: a pure function of the set, the pods and
//! ControllerRevisions of its namespace and the current time.
//!
//! [`plan`] is one pass of the StatefulSet controller:
//!
//! 1. **Claim** pods and revisions. A pod is a member when its name is `<set>-<ordinal>`;
//!    orphan members matching the selector are adopted, owned pods that stop matching are
//!    released (never while the set is being deleted). Revisions are claimed by selector.
//! 2. **Revisions.** The update revision is the owned ControllerRevision whose template equals
//!    the set's (the newest such one; an older one is renumbered to the next revision number,
//!    which is how `kubectl rollout undo` rolls back), else a new one named
//!    `<set>-<hash>` (hash of the template and `status.collisionCount`). A name taken by
//!    another object is a hash collision: the pass only bumps `collisionCount`. The current
//!    revision is the one `status.currentRevision` names, else the update revision.
//! 3. **Replicas** `0..replicas` (offset by `spec.ordinals.start`), in ordinal order: a missing
//!    pod is created (below the partition from the current revision, else from the update
//!    revision); a Failed or Succeeded pod is deleted (the next pass recreates it under the
//!    same name); a pod whose identity labels are wrong is relabeled. With
//!    `podManagementPolicy: OrderedReady` the pass stops at the first pod it created, deleted,
//!    or that is terminating, not Running and Ready, or not yet available.
//! 4. **Scale down**: pods with an ordinal outside the range, highest first. OrderedReady
//!    deletes one and waits until it is gone (and does nothing while any pod is unhealthy);
//!    Parallel deletes them all.
//! 5. **Rolling update** (RollingUpdate only): from the highest ordinal down to the partition,
//!    the first pod not at the update revision is deleted (it comes back at the update
//!    revision), one at a time, waiting for each replacement to be Running and Ready.
//!    OnDelete never deletes for an update.
//! 6. **History**: revisions used by neither the current nor the update revision nor any pod
//!    are pruned, oldest first, down to `revisionHistoryLimit`.
//!
//! The status is computed from the claimed pods before this pass's actions, as Kubernetes
//! does; once every pod is at the update revision and Ready the current revision becomes the
//! update revision.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{json, Value};

use crate::deployment::plan::pod_template_hash;
use crate::replicaset::diff::{
    controller_ref, is_pod_available, is_pod_ready, selector_matches, BURST_REPLICAS,
};

/// The pod label holding the pod's name (what a per-pod Service selects).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The pod label holding the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The pod label naming the ControllerRevision the pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The ControllerRevision label holding its hash.
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// Not copied from the set onto its revisions (large, and not history).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What to do about the update revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RevisionStep {
    /// It exists and is the newest.
    #[default]
    None,
    /// Create it (before any pod is created from it).
    Create(Box<ControllerRevision>),
    /// An older revision has the set's template: give it the next revision number.
    Renumber { name: String, revision: i64 },
    /// The new revision's name is held by an object that is not an equal revision of this
    /// set: write `status` (with `collisionCount` incremented) and do nothing else.
    Collision,
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    /// It is Failed or Succeeded: it will be recreated with the same name.
    Finished,
    /// Its ordinal is beyond the replicas.
    ScaleDown,
    /// It is not at the update revision.
    Update,
}

/// A pod to delete (with its uid, for a precondition).
#[derive(Debug, Clone, PartialEq)]
pub struct PodDelete {
    pub name: String,
    pub uid: Option<String>,
    pub reason: DeleteReason,
}

/// The decisions of one StatefulSet sync pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Orphan member pods to take a controller ownerReference to the set.
    pub adopt: Vec<String>,
    /// Owned pods that no longer match the selector (drop the ownerReference).
    pub release: Vec<String>,
    /// Orphan revisions matching the selector, to adopt.
    pub adopt_revisions: Vec<String>,
    /// Owned revisions that no longer match the selector, to release.
    pub release_revisions: Vec<String>,
    /// What to do about the update revision (applied before any pod action).
    pub revision: RevisionStep,
    /// Complete pods to create (names `<set>-<ordinal>`), in ordinal order.
    pub create: Vec<Pod>,
    /// Pods to delete.
    pub delete: Vec<PodDelete>,
    /// Pods whose identity labels are wrong: name → labels to merge in.
    pub relabel: Vec<(String, BTreeMap<String, String>)>,
    /// Revisions to delete (history beyond `revisionHistoryLimit`).
    pub prune: Vec<String>,
    /// The status the set should carry.
    pub status: StatefulSetStatus,
    /// When to look again because a ready pod becomes available by `minReadySeconds`.
    pub requeue_after: Option<Duration>,
}

/// The ordinal of `pod_name` if it is `<set_name>-<ordinal>` (canonical decimal, no sign or
/// leading zeros).
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    let rest = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ord: i32 = rest.parse().ok()?;
    (ord.to_string() == rest).then_some(ord)
}

/// The revision a pod was made from (its `controller-revision-hash` label).
pub fn pod_revision(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

/// A revision's `data`: the template as a strategic-merge patch that replaces the set's
/// template (what `kubectl rollout undo` applies and `rollout history --revision` shows).
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template a revision holds (`None` if its data is not one of ours).
pub fn revision_template(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// A controller ownerReference to the set.
pub fn owner_ref(sts: &StatefulSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: sts.metadata.name.clone().unwrap_or_default(),
        uid: sts.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The ControllerRevision named `name` holding `template` as revision number `number`.
pub fn new_revision(
    sts: &StatefulSet,
    template: &PodTemplateSpec,
    name: &str,
    hash: &str,
    number: i64,
) -> ControllerRevision {
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    let annotations: BTreeMap<String, String> = sts
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: sts.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner_ref(sts)]),
            ..Default::default()
        },
        data: Some(RawExtension(revision_data(template))),
        revision: number,
    }
}

/// The pod with ordinal `ordinal` made from `template` at revision `revision`: name
/// `<set>-<ordinal>`, the template's labels plus the identity and revision labels, its
/// annotations and finalizers, a controller ownerReference, `hostname` = the pod's name and
/// `subdomain` = `spec.serviceName`.
pub fn new_pod(sts: &StatefulSet, template: &PodTemplateSpec, ordinal: i64, revision: &str) -> Pod {
    let set = sts.metadata.name.clone().unwrap_or_default();
    let name = format!("{set}-{ordinal}");
    let tmeta = template.metadata.as_ref();
    let mut labels = tmeta.and_then(|m| m.labels.clone()).unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = sts
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: sts.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.and_then(|m| m.annotations.clone()),
            finalizers: tmeta.and_then(|m| m.finalizers.clone()),
            owner_references: Some(vec![owner_ref(sts)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Failed" | "Succeeded")
}

fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_pod_ready(pod)
}

/// Running, Ready, available for `min_ready` seconds and not terminating.
fn is_healthy(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> bool {
    !is_terminating(pod) && is_running_and_ready(pod) && is_pod_available(pod, min_ready, now)
}

/// How long until a running, ready pod becomes available (`None` if it is not ready, already
/// available, or its Ready transition time is unknown).
fn available_in(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> Option<Duration> {
    if min_ready <= 0 || !is_running_and_ready(pod) {
        return None;
    }
    let since = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()?
        .0;
    let at = since.as_nanosecond() + i128::from(min_ready) * 1_000_000_000;
    let left = at - now.as_nanosecond();
    (left > 0).then(|| Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX)))
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn name_of(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn same_namespace(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    match (&a.namespace, &b.namespace) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Revisions in history order: revision number, then creation time, then name.
fn sort_revisions(revs: &mut [&ControllerRevision]) {
    revs.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let t =
                    |r: &ControllerRevision| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The identity labels a member pod must carry.
fn identity_labels(pod_name: &str, ordinal: i64) -> BTreeMap<String, String> {
    BTreeMap::from([
        (POD_NAME_LABEL.to_string(), pod_name.to_string()),
        (POD_INDEX_LABEL.to_string(), ordinal.to_string()),
    ])
}

/// One pass of the StatefulSet controller over `sts` and the pods and ControllerRevisions of
/// its namespace (objects of other namespaces and objects controlled by something else are
/// ignored). While the set is being deleted only the status is computed. A set without a uid
/// owns nothing.
pub fn plan(
    sts: &StatefulSet,
    pods: &[Pod],
    revisions: &[ControllerRevision],
    now: jiff::Timestamp,
) -> Plan {
    let set_name = name_of(&sts.metadata);
    let spec = sts.spec.as_ref();
    let empty_selector = LabelSelector::default();
    let selector = spec.map_or(&empty_selector, |s| &s.selector);
    let deleting = sts.metadata.deletion_timestamp.is_some();
    let old_status = sts.status.clone().unwrap_or_default();
    let no_labels = BTreeMap::new();
    let mut plan = Plan {
        status: old_status.clone(),
        ..Default::default()
    };
    let Some(uid) = sts.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
        return plan;
    };

    // 1. Claim pods and revisions.
    let mut owned: Vec<(i64, &Pod)> = Vec::new();
    for pod in pods {
        if !same_namespace(&sts.metadata, &pod.metadata) {
            continue;
        }
        let name = name_of(&pod.metadata);
        let ordinal = ordinal_of(&set_name, &name);
        let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
        let matches = ordinal.is_some() && selector_matches(selector, labels);
        match (controller_ref(&pod.metadata), ordinal) {
            (Some(r), Some(ord)) if r.uid == uid && matches => owned.push((i64::from(ord), pod)),
            (Some(r), _) if r.uid == uid => {
                if !deleting {
                    plan.release.push(name);
                }
            }
            (Some(_), _) => {}
            (None, Some(ord)) => {
                if matches && !deleting && !is_terminating(pod) {
                    plan.adopt.push(name);
                    owned.push((i64::from(ord), pod));
                }
            }
            (None, None) => {}
        }
    }
    let mut history: Vec<&ControllerRevision> = Vec::new();
    for rev in revisions {
        if !same_namespace(&sts.metadata, &rev.metadata) {
            continue;
        }
        let labels = rev.metadata.labels.as_ref().unwrap_or(&no_labels);
        let matches = selector_matches(selector, labels);
        match controller_ref(&rev.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    history.push(rev);
                } else if !deleting {
                    plan.release_revisions.push(name_of(&rev.metadata));
                }
            }
            Some(_) => {}
            None => {
                if matches && !deleting && rev.metadata.deletion_timestamp.is_none() {
                    plan.adopt_revisions.push(name_of(&rev.metadata));
                    history.push(rev);
                }
            }
        }
    }
    sort_revisions(&mut history);

    // 2. The update and current revisions.
    let template = spec.map(|s| s.template.clone()).unwrap_or_default();
    let collision_count = old_status.collision_count;
    let next_number = history
        .iter()
        .map(|r| r.revision)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let equal = history
        .iter()
        .rev()
        .find(|r| revision_template(r).as_ref() == Some(&template));
    let update_name = match equal {
        Some(eq) => {
            let name = name_of(&eq.metadata);
            let newest = history.last().map(|r| name_of(&r.metadata));
            if newest.as_deref() != Some(name.as_str()) && !deleting {
                plan.revision = RevisionStep::Renumber {
                    name: name.clone(),
                    revision: next_number,
                };
            }
            name
        }
        None => {
            let hash = pod_template_hash(&template, collision_count);
            let name = format!("{set_name}-{hash}");
            let taken = revisions.iter().any(|r| {
                same_namespace(&sts.metadata, &r.metadata)
                    && r.metadata.name.as_deref() == Some(name.as_str())
            });
            if !deleting {
                if taken {
                    plan.revision = RevisionStep::Collision;
                    plan.status.collision_count =
                        Some(collision_count.unwrap_or(0).saturating_add(1));
                    return plan;
                }
                plan.revision = RevisionStep::Create(Box::new(new_revision(
                    sts,
                    &template,
                    &name,
                    &hash,
                    next_number,
                )));
            }
            name
        }
    };
    let (current_name, current_template) = old_status
        .current_revision
        .as_deref()
        .and_then(|c| {
            history
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(c))
        })
        .map(|r| {
            (
                name_of(&r.metadata),
                revision_template(r).unwrap_or_else(|| template.clone()),
            )
        })
        .unwrap_or_else(|| (update_name.clone(), template.clone()));

    // Status, from the claimed pods.
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let (mut ready, mut available, mut current, mut updated) = (0usize, 0usize, 0usize, 0usize);
    let mut requeue: Option<Duration> = None;
    for (_, p) in &owned {
        if is_running_and_ready(p) {
            ready += 1;
            if is_pod_available(p, min_ready, now) {
                available += 1;
            } else if let Some(d) = available_in(p, min_ready, now) {
                requeue = Some(requeue.map_or(d, |r| r.min(d)));
            }
        }
        if !is_terminating(p) {
            let rev = pod_revision(p);
            if rev == Some(current_name.as_str()) {
                current += 1;
            }
            if rev == Some(update_name.as_str()) {
                updated += 1;
            }
        }
    }
    plan.requeue_after = requeue;
    let mut status = StatefulSetStatus {
        observed_generation: sts.metadata.generation,
        replicas: to_i32(owned.len()),
        ready_replicas: Some(to_i32(ready)),
        available_replicas: Some(to_i32(available)),
        current_replicas: Some(to_i32(current)),
        updated_replicas: Some(to_i32(updated)),
        current_revision: Some(current_name.clone()),
        update_revision: Some(update_name.clone()),
        collision_count,
        conditions: old_status.conditions.clone(),
    };
    // The rollout is complete once every pod is at the update revision and Ready.
    if updated == owned.len() && ready == owned.len() {
        status.current_revision = Some(update_name.clone());
        status.current_replicas = Some(to_i32(updated));
    }
    plan.status = status;

    if deleting {
        return plan;
    }

    // 3. Replicas in ordinal order.
    let replicas = i64::from(spec.and_then(|s| s.replicas).unwrap_or(1).max(0));
    let start = i64::from(
        spec.and_then(|s| s.ordinals.as_ref())
            .and_then(|o| o.start)
            .unwrap_or(0)
            .max(0),
    );
    let monotonic = spec.and_then(|s| s.pod_management_policy.as_deref()) != Some("Parallel");
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    let on_delete = strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete");
    let partition = if on_delete {
        0
    } else {
        i64::from(
            strategy
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0)
                .max(0),
        )
    };
    let mut slots: BTreeMap<i64, &Pod> = BTreeMap::new();
    let mut condemned: Vec<(i64, &Pod)> = Vec::new();
    for &(ord, p) in &owned {
        let idx = ord - start;
        if (0..replicas).contains(&idx) {
            slots.insert(idx, p);
        } else {
            condemned.push((ord, p));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));

    let mut touched: HashSet<i64> = HashSet::new();
    let mut blocked = false;
    let mut idx = 0i64;
    while idx < replicas {
        let ordinal = start + idx;
        match slots.get(&idx) {
            None => {
                if plan.create.len() >= BURST_REPLICAS {
                    blocked = true;
                    break;
                }
                let (rev, tmpl) = if !on_delete && idx < partition {
                    (&current_name, &current_template)
                } else {
                    (&update_name, &template)
                };
                plan.create.push(new_pod(sts, tmpl, ordinal, rev));
                touched.insert(idx);
                if monotonic {
                    blocked = true;
                    break;
                }
            }
            Some(p) => {
                let name = name_of(&p.metadata);
                if is_finished(p) {
                    if !is_terminating(p) {
                        plan.delete.push(PodDelete {
                            name,
                            uid: p.metadata.uid.clone(),
                            reason: DeleteReason::Finished,
                        });
                        touched.insert(idx);
                    }
                    if monotonic {
                        blocked = true;
                        break;
                    }
                } else if is_terminating(p) {
                    if monotonic {
                        blocked = true;
                        break;
                    }
                } else {
                    let want = identity_labels(&name, ordinal);
                    let labels = p.metadata.labels.as_ref().unwrap_or(&no_labels);
                    if want.iter().any(|(k, v)| labels.get(k) != Some(v)) {
                        plan.relabel.push((name, want));
                    }
                    if monotonic && !is_healthy(p, min_ready, now) {
                        blocked = true;
                        break;
                    }
                }
            }
        }
        idx += 1;
    }

    // 4. Scale down, highest ordinal first.
    if !blocked && !condemned.is_empty() {
        if monotonic {
            blocked = true;
            if !condemned.iter().any(|(_, p)| is_terminating(p)) {
                let p = condemned[0].1;
                plan.delete.push(PodDelete {
                    name: name_of(&p.metadata),
                    uid: p.metadata.uid.clone(),
                    reason: DeleteReason::ScaleDown,
                });
            }
        } else {
            for (_, p) in condemned
                .iter()
                .filter(|(_, p)| !is_terminating(p))
                .take(BURST_REPLICAS)
            {
                plan.delete.push(PodDelete {
                    name: name_of(&p.metadata),
                    uid: p.metadata.uid.clone(),
                    reason: DeleteReason::ScaleDown,
                });
            }
        }
    }

    // 5. Rolling update, from the highest ordinal down to the partition, one pod at a time.
    if !blocked && !on_delete {
        let mut idx = replicas - 1;
        while idx >= partition {
            let Some(p) = slots.get(&idx) else { break };
            if touched.contains(&idx) {
                break;
            }
            if pod_revision(p) != Some(update_name.as_str()) && !is_terminating(p) {
                plan.delete.push(PodDelete {
                    name: name_of(&p.metadata),
                    uid: p.metadata.uid.clone(),
                    reason: DeleteReason::Update,
                });
                break;
            }
            if !is_healthy(p, min_ready, now) {
                break;
            }
            idx -= 1;
        }
    }

    // 6. History beyond the limit, oldest first.
    let mut live: HashSet<&str> = HashSet::new();
    live.insert(current_name.as_str());
    live.insert(update_name.as_str());
    if let Some(c) = plan.status.current_revision.as_deref() {
        live.insert(c);
    }
    for (_, p) in &owned {
        if let Some(r) = pod_revision(p) {
            live.insert(r);
        }
    }
    let old: Vec<&ControllerRevision> = history
        .iter()
        .copied()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    let limit = usize::try_from(
        spec.and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0),
    )
    .unwrap_or(0);
    if old.len() > limit {
        plan.prune = old[..old.len() - limit]
            .iter()
            .map(|r| name_of(&r.metadata))
            .collect();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        RollingUpdateStatefulSetStrategy, StatefulSetOrdinals, StatefulSetSpec,
        StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const UID: &str = "sts-uid";

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(map(&[("app", "web")])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn sts(replicas: i32, image: &str) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some(UID.into()),
                generation: Some(2),
                annotations: Some(map(&[
                    ("kubernetes.io/change-cause", "because"),
                    (LAST_APPLIED, "{}"),
                ])),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(map(&[("app", "web")])),
                    match_expressions: None,
                },
                service_name: Some("web-svc".into()),
                template: template(image),
                pod_management_policy: Some("OrderedReady".into()),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateStatefulSetStrategy {
                        partition: Some(0),
                        max_unavailable: None,
                    }),
                }),
                revision_history_limit: Some(10),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn spec_mut(s: &mut StatefulSet) -> &mut StatefulSetSpec {
        s.spec.as_mut().unwrap()
    }

    fn parallel(mut s: StatefulSet) -> StatefulSet {
        spec_mut(&mut s).pod_management_policy = Some("Parallel".into());
        s
    }

    fn partition(mut s: StatefulSet, p: i32) -> StatefulSet {
        spec_mut(&mut s).update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(p),
                max_unavailable: None,
            }),
        });
        s
    }

    fn with_current(mut s: StatefulSet, rev: &str) -> StatefulSet {
        s.status = Some(StatefulSetStatus {
            current_revision: Some(rev.into()),
            ..Default::default()
        });
        s
    }

    /// The revision the controller makes for `image` (number `n`), as stored.
    fn rev(image: &str, n: i64) -> ControllerRevision {
        let s = sts(1, image);
        let t = template(image);
        let hash = pod_template_hash(&t, None);
        new_revision(&s, &t, &format!("web-{hash}"), &hash, n)
    }

    fn rev_name(image: &str) -> String {
        name_of(&rev(image, 1).metadata)
    }

    /// A Running and Ready pod made by the controller at `image`'s revision.
    fn pod(ord: i64, image: &str) -> Pod {
        let mut p = new_pod(&sts(1, image), &template(image), ord, &rev_name(image));
        p.metadata.uid = Some(format!("pod-uid-{ord}"));
        p.metadata.creation_timestamp = Some(Time(ts(0)));
        p.spec.as_mut().unwrap().node_name = Some("n1".into());
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(0))),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    fn pending(mut p: Pod) -> Pod {
        p.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
        p
    }

    fn with_phase(mut p: Pod, phase: &str) -> Pod {
        p.status.as_mut().unwrap().phase = Some(phase.into());
        p
    }

    fn terminating(mut p: Pod) -> Pod {
        p.metadata.deletion_timestamp = Some(Time(ts(1)));
        p
    }

    fn created(p: &Plan) -> Vec<String> {
        p.create.iter().map(|p| name_of(&p.metadata)).collect()
    }

    fn deleted(p: &Plan) -> Vec<(String, DeleteReason)> {
        p.delete
            .iter()
            .map(|d| (d.name.clone(), d.reason))
            .collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn label<'a>(p: &'a Pod, k: &str) -> Option<&'a str> {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .map(String::as_str)
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-"), None);
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "web-+1"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web-99999999999"), None);
        assert_eq!(ordinal_of("web-a", "web-a-3"), Some(3));
    }

    #[test]
    fn first_pass_creates_the_revision_and_pod_zero_only() {
        let p = plan(&sts(3, "v1"), &[], &[], ts(0));
        let RevisionStep::Create(r) = &p.revision else {
            panic!("{:?}", p.revision)
        };
        assert_eq!(r.revision, 1);
        assert_eq!(name_of(&r.metadata), rev_name("v1"));
        assert!(name_of(&r.metadata).starts_with("web-"));
        let labels = r.metadata.labels.clone().unwrap();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert!(labels.contains_key(REVISION_HASH_LABEL));
        assert_eq!(
            r.metadata.annotations,
            Some(map(&[("kubernetes.io/change-cause", "because")]))
        );
        assert_eq!(
            r.metadata.owner_references,
            Some(vec![owner_ref(&sts(1, "v1"))])
        );
        assert_eq!(revision_template(r), Some(template("v1")));
        assert_eq!(
            r.data.as_ref().unwrap().0["spec"]["template"]["$patch"],
            json!("replace")
        );
        assert_eq!(created(&p), names(&["web-0"]));
        let pod = &p.create[0];
        assert_eq!(label(pod, POD_NAME_LABEL), Some("web-0"));
        assert_eq!(label(pod, POD_INDEX_LABEL), Some("0"));
        assert_eq!(label(pod, REVISION_LABEL), Some(rev_name("v1").as_str()));
        assert_eq!(label(pod, "app"), Some("web"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-0"));
        assert_eq!(spec.subdomain.as_deref(), Some("web-svc"));
        let o = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((o.kind.as_str(), o.uid.as_str()), ("StatefulSet", UID));
        assert_eq!(
            (o.controller, o.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(p.status.current_revision, Some(rev_name("v1")));
        assert_eq!(p.status.update_revision, Some(rev_name("v1")));
        assert_eq!(p.status.observed_generation, Some(2));
        assert_eq!(p.status.replicas, 0);
    }

    #[test]
    fn ordered_ready_waits_for_each_pod() {
        let revs = [rev("v1", 1)];
        let s = sts(3, "v1");
        // web-0 exists but is Pending: nothing new.
        let p = plan(&s, &[pending(pod(0, "v1"))], &revs, ts(0));
        assert_eq!(p.revision, RevisionStep::None);
        assert!(p.create.is_empty() && p.delete.is_empty());
        // Ready: web-1 next, and only web-1.
        let p = plan(&s, &[pod(0, "v1")], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-1"]));
        // A gap below is filled first.
        let p = plan(&s, &[pod(0, "v1"), pod(2, "v1")], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-1"]));
        // Running but not Ready blocks.
        let mut nr = pod(0, "v1");
        nr.status.as_mut().unwrap().conditions = None;
        assert!(plan(&s, &[nr], &revs, ts(0)).create.is_empty());
        // Terminating blocks.
        assert!(plan(&s, &[terminating(pod(0, "v1"))], &revs, ts(0))
            .create
            .is_empty());
        let all = [pod(0, "v1"), pod(1, "v1"), pod(2, "v1")];
        let p = plan(&s, &all, &revs, ts(0));
        assert!(p.create.is_empty() && p.delete.is_empty() && p.relabel.is_empty());
        assert_eq!(p.status.replicas, 3);
        assert_eq!(p.status.ready_replicas, Some(3));
        assert_eq!(p.status.available_replicas, Some(3));
        assert_eq!(p.status.current_replicas, Some(3));
        assert_eq!(p.status.updated_replicas, Some(3));
    }

    #[test]
    fn min_ready_seconds_gates_progress_and_requeues() {
        let revs = [rev("v1", 1)];
        let mut s = sts(2, "v1");
        spec_mut(&mut s).min_ready_seconds = Some(30);
        let p = plan(&s, &[pod(0, "v1")], &revs, ts(10));
        assert!(p.create.is_empty());
        assert_eq!(p.status.ready_replicas, Some(1));
        assert_eq!(p.status.available_replicas, Some(0));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));
        let p = plan(&s, &[pod(0, "v1")], &revs, ts(30));
        assert_eq!(created(&p), names(&["web-1"]));
        assert_eq!(p.requeue_after, None);
    }

    #[test]
    fn parallel_creates_and_deletes_at_once() {
        let revs = [rev("v1", 1)];
        let s = parallel(sts(3, "v1"));
        let p = plan(&s, &[pending(pod(1, "v1"))], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-0", "web-2"]));
        let mut s = parallel(sts(1, "v1"));
        let pods = [pod(0, "v1"), pending(pod(1, "v1")), pod(2, "v1")];
        let p = plan(&s, &pods, &revs, ts(0));
        assert_eq!(
            deleted(&p),
            vec![
                ("web-2".into(), DeleteReason::ScaleDown),
                ("web-1".into(), DeleteReason::ScaleDown)
            ]
        );
        spec_mut(&mut s).replicas = Some(0);
        let pods = [pod(0, "v1"), terminating(pod(1, "v1"))];
        assert_eq!(
            deleted(&plan(&s, &pods, &revs, ts(0))),
            vec![("web-0".into(), DeleteReason::ScaleDown)]
        );
    }

    #[test]
    fn ordered_scale_down_is_highest_first_one_at_a_time() {
        let revs = [rev("v1", 1)];
        let s = sts(1, "v1");
        let three = [pod(0, "v1"), pod(1, "v1"), pod(2, "v1")];
        let p = plan(&s, &three, &revs, ts(0));
        assert_eq!(deleted(&p), vec![("web-2".into(), DeleteReason::ScaleDown)]);
        // Waits while web-2 terminates.
        let dying = [pod(0, "v1"), pod(1, "v1"), terminating(pod(2, "v1"))];
        assert!(plan(&s, &dying, &revs, ts(0)).delete.is_empty());
        // Nothing while a kept pod is unhealthy.
        let sick = [pending(pod(0, "v1")), pod(1, "v1")];
        assert!(plan(&s, &sick, &revs, ts(0)).delete.is_empty());
        // An unhealthy condemned pod may go (it is the highest).
        let p = plan(&s, &[pod(0, "v1"), pending(pod(1, "v1"))], &revs, ts(0));
        assert_eq!(deleted(&p), vec![("web-1".into(), DeleteReason::ScaleDown)]);
        // Scale to zero.
        let s = sts(0, "v1");
        let p = plan(&s, &[pod(0, "v1")], &revs, ts(0));
        assert_eq!(deleted(&p), vec![("web-0".into(), DeleteReason::ScaleDown)]);
        assert_eq!(p.status.replicas, 1);
    }

    #[test]
    fn finished_pods_are_deleted_then_recreated_with_the_same_name() {
        let revs = [rev("v1", 1)];
        let s = sts(3, "v1");
        let pods = [
            pod(0, "v1"),
            with_phase(pod(1, "v1"), "Failed"),
            pod(2, "v1"),
        ];
        let p = plan(&s, &pods, &revs, ts(0));
        assert_eq!(deleted(&p), vec![("web-1".into(), DeleteReason::Finished)]);
        assert_eq!(p.delete[0].uid.as_deref(), Some("pod-uid-1"));
        assert!(p.create.is_empty());
        // Gone: recreated as web-1.
        let p = plan(&s, &[pod(0, "v1"), pod(2, "v1")], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-1"]));
        // Succeeded counts too; already terminating is not deleted again.
        let pods = [with_phase(pod(0, "v1"), "Succeeded")];
        assert_eq!(
            deleted(&plan(&s, &pods, &revs, ts(0))),
            vec![("web-0".into(), DeleteReason::Finished)]
        );
        let pods = [terminating(with_phase(pod(0, "v1"), "Failed"))];
        assert!(plan(&s, &pods, &revs, ts(0)).delete.is_empty());
        // Parallel: the failed one goes and the others are still made.
        let s = parallel(sts(3, "v1"));
        let p = plan(&s, &[with_phase(pod(1, "v1"), "Failed")], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-0", "web-2"]));
        assert_eq!(deleted(&p), vec![("web-1".into(), DeleteReason::Finished)]);
    }

    #[test]
    fn rolling_update_highest_first_down_to_the_partition() {
        let revs = [rev("v1", 1), rev("v2", 2)];
        let s = with_current(partition(sts(3, "v2"), 1), &rev_name("v1"));
        let old = [pod(0, "v1"), pod(1, "v1"), pod(2, "v1")];
        let p = plan(&s, &old, &revs, ts(0));
        assert_eq!(p.revision, RevisionStep::None);
        assert_eq!(deleted(&p), vec![("web-2".into(), DeleteReason::Update)]);
        assert_eq!(p.status.current_revision, Some(rev_name("v1")));
        assert_eq!(p.status.update_revision, Some(rev_name("v2")));
        assert_eq!(p.status.current_replicas, Some(3));
        assert_eq!(p.status.updated_replicas, Some(0));
        // web-2 gone: recreated at v2 (above the partition).
        let p = plan(&s, &old[..2], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-2"]));
        assert_eq!(
            label(&p.create[0], REVISION_LABEL),
            Some(rev_name("v2").as_str())
        );
        let image = p.create[0].spec.as_ref().unwrap().containers[0]
            .image
            .clone();
        assert_eq!(image.as_deref(), Some("v2"));
        // web-2 at v2 but not Ready: wait.
        let pods = [pod(0, "v1"), pod(1, "v1"), pending(pod(2, "v2"))];
        assert!(plan(&s, &pods, &revs, ts(0)).delete.is_empty());
        // Ready: web-1 next.
        let pods = [pod(0, "v1"), pod(1, "v1"), pod(2, "v2")];
        let p = plan(&s, &pods, &revs, ts(0));
        assert_eq!(deleted(&p), vec![("web-1".into(), DeleteReason::Update)]);
        // Done down to the partition: web-0 stays at v1, and the current revision too.
        let pods = [pod(0, "v1"), pod(1, "v2"), pod(2, "v2")];
        let p = plan(&s, &pods, &revs, ts(0));
        assert!(p.delete.is_empty() && p.create.is_empty());
        assert_eq!(p.status.current_revision, Some(rev_name("v1")));
        assert_eq!(p.status.current_replicas, Some(1));
        assert_eq!(p.status.updated_replicas, Some(2));
        // web-0 deleted below the partition comes back at the current revision.
        let p = plan(&s, &pods[1..], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-0"]));
        assert_eq!(
            label(&p.create[0], REVISION_LABEL),
            Some(rev_name("v1").as_str())
        );
        let image = p.create[0].spec.as_ref().unwrap().containers[0]
            .image
            .clone();
        assert_eq!(image.as_deref(), Some("v1"));
        // Partition 0: web-0 goes, then the rollout completes.
        let s = with_current(partition(sts(3, "v2"), 0), &rev_name("v1"));
        let p = plan(&s, &pods, &revs, ts(0));
        assert_eq!(deleted(&p), vec![("web-0".into(), DeleteReason::Update)]);
        let all = [pod(0, "v2"), pod(1, "v2"), pod(2, "v2")];
        let p = plan(&s, &all, &revs, ts(0));
        assert!(p.delete.is_empty());
        assert_eq!(p.status.current_revision, Some(rev_name("v2")));
        assert_eq!(p.status.current_replicas, Some(3));
    }

    #[test]
    fn parallel_rolling_update_is_still_one_at_a_time() {
        let revs = [rev("v1", 1), rev("v2", 2)];
        let s = with_current(parallel(sts(3, "v2")), &rev_name("v1"));
        let old = [pod(0, "v1"), pod(1, "v1"), pod(2, "v1")];
        assert_eq!(
            deleted(&plan(&s, &old, &revs, ts(0))),
            vec![("web-2".into(), DeleteReason::Update)]
        );
        // The just-recreated web-2 is not touched again in the same pass.
        let p = plan(&s, &old[..2], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-2"]));
        assert!(p.delete.is_empty());
    }

    #[test]
    fn on_delete_only_recreates_at_the_update_revision() {
        let revs = [rev("v1", 1), rev("v2", 2)];
        let mut s = with_current(sts(3, "v2"), &rev_name("v1"));
        spec_mut(&mut s).update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
        let old = [pod(0, "v1"), pod(1, "v1"), pod(2, "v1")];
        let p = plan(&s, &old, &revs, ts(0));
        assert!(p.delete.is_empty() && p.create.is_empty());
        let p = plan(&s, &[pod(1, "v1"), pod(2, "v1")], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-0"]));
        assert_eq!(
            label(&p.create[0], REVISION_LABEL),
            Some(rev_name("v2").as_str())
        );
    }

    #[test]
    fn scale_down_comes_before_updates() {
        let revs = [rev("v1", 1), rev("v2", 2)];
        let s = with_current(sts(2, "v2"), &rev_name("v1"));
        let old = [pod(0, "v1"), pod(1, "v1"), pod(2, "v1")];
        assert_eq!(
            deleted(&plan(&s, &old, &revs, ts(0))),
            vec![("web-2".into(), DeleteReason::ScaleDown)]
        );
    }

    #[test]
    fn rollback_renumbers_the_equal_revision() {
        let revs = [rev("v1", 1), rev("v2", 2)];
        let s = with_current(sts(1, "v1"), &rev_name("v2"));
        let p = plan(&s, &[pod(0, "v2")], &revs, ts(0));
        assert_eq!(
            p.revision,
            RevisionStep::Renumber {
                name: rev_name("v1"),
                revision: 3
            }
        );
        assert_eq!(p.status.update_revision, Some(rev_name("v1")));
        assert_eq!(deleted(&p), vec![("web-0".into(), DeleteReason::Update)]);
        // The newest equal revision is used as is.
        let s = with_current(sts(1, "v2"), &rev_name("v2"));
        assert_eq!(
            plan(&s, &[pod(0, "v2")], &revs, ts(0)).revision,
            RevisionStep::None
        );
    }

    #[test]
    fn a_new_template_gets_the_next_revision_number() {
        let revs = [rev("v1", 4), rev("v2", 7)];
        let s = with_current(sts(1, "v3"), &rev_name("v2"));
        let p = plan(&s, &[pod(0, "v2")], &revs, ts(0));
        let RevisionStep::Create(r) = &p.revision else {
            panic!("{:?}", p.revision)
        };
        assert_eq!(r.revision, 8);
        assert_eq!(p.status.update_revision, Some(rev_name("v3")));
        assert_eq!(p.status.current_revision, Some(rev_name("v2")));
    }

    #[test]
    fn a_taken_name_is_a_collision() {
        // Someone else's revision holds the name.
        let mut foreign = rev("v1", 1);
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "other".into();
        let p = plan(&sts(1, "v1"), &[], &[foreign.clone()], ts(0));
        assert_eq!(p.revision, RevisionStep::Collision);
        assert_eq!(p.status.collision_count, Some(1));
        assert!(p.create.is_empty());
        // With the count bumped the name differs.
        let mut s = sts(1, "v1");
        s.status = Some(StatefulSetStatus {
            collision_count: Some(1),
            ..Default::default()
        });
        let p = plan(&s, &[], &[foreign], ts(0));
        let RevisionStep::Create(r) = &p.revision else {
            panic!("{:?}", p.revision)
        };
        assert_ne!(name_of(&r.metadata), rev_name("v1"));
        assert_eq!(created(&p).len(), 1);
        assert_eq!(p.status.collision_count, Some(1));
    }

    #[test]
    fn history_is_pruned_oldest_first_but_never_live_revisions() {
        let revs: Vec<ControllerRevision> = (1..=5).map(|i| rev(&format!("v{i}"), i)).collect();
        let mut s = with_current(sts(2, "v5"), &rev_name("v4"));
        spec_mut(&mut s).revision_history_limit = Some(1);
        // v1 is used by a pod; v4 is current; v5 is the update revision.
        let pods = [pod(0, "v1"), pod(1, "v4")];
        let p = plan(&s, &pods, &revs, ts(0));
        // History is v2, v3: keep one (v3).
        assert_eq!(p.prune, vec![rev_name("v2")]);
        spec_mut(&mut s).revision_history_limit = Some(0);
        let p = plan(&s, &pods, &revs, ts(0));
        assert_eq!(p.prune, vec![rev_name("v2"), rev_name("v3")]);
    }

    #[test]
    fn adopts_and_releases_pods_and_revisions() {
        let revs = [rev("v1", 1)];
        let s = sts(2, "v1");
        let mut orphan = pod(0, "v1");
        orphan.metadata.owner_references = None;
        orphan.metadata.labels = Some(map(&[("app", "web")]));
        let mut relabeled = pod(1, "v1");
        relabeled.metadata.labels = Some(map(&[("app", "other")]));
        let mut other_owner = pod(3, "v1");
        other_owner.metadata.owner_references.as_mut().unwrap()[0].uid = "x".into();
        let mut not_member = pod(4, "v1");
        not_member.metadata.name = Some("webby-4".into());
        not_member.metadata.owner_references = None;
        let mut dying_orphan = terminating(pod(5, "v1"));
        dying_orphan.metadata.owner_references = None;
        let p = plan(
            &s,
            &[orphan, relabeled, other_owner, not_member, dying_orphan],
            &revs,
            ts(0),
        );
        assert_eq!(p.adopt, names(&["web-0"]));
        assert_eq!(p.release, names(&["web-1"]));
        // The adopted pod's identity labels are fixed; it is at no known revision.
        assert_eq!(p.relabel.len(), 1);
        assert_eq!(p.relabel[0].0, "web-0");
        assert_eq!(
            p.relabel[0].1.get(POD_INDEX_LABEL).map(String::as_str),
            Some("0")
        );
        assert_eq!(p.status.replicas, 1);
        // Revisions.
        let mut orphan_rev = rev("v0", 1);
        orphan_rev.metadata.owner_references = None;
        let mut mismatched = rev("v1", 2);
        mismatched.metadata.labels = Some(map(&[("app", "db")]));
        let p = plan(&s, &[], &[orphan_rev, mismatched], ts(0));
        assert_eq!(p.adopt_revisions, vec![rev_name("v0")]);
        assert_eq!(p.release_revisions, vec![rev_name("v1")]);
    }

    #[test]
    fn a_deleting_set_only_reports_status() {
        let revs = [rev("v1", 1)];
        let mut s = sts(3, "v1");
        s.metadata.deletion_timestamp = Some(Time(ts(0)));
        let mut orphan = pod(2, "v1");
        orphan.metadata.owner_references = None;
        let p = plan(&s, &[pod(0, "v1"), orphan], &revs, ts(0));
        assert!(p.create.is_empty() && p.delete.is_empty() && p.adopt.is_empty());
        assert_eq!(p.revision, RevisionStep::None);
        assert_eq!(p.status.replicas, 1);
        let p = plan(&sts(0, "v2"), &[], &[], ts(0));
        assert!(matches!(p.revision, RevisionStep::Create(_)));
    }

    #[test]
    fn start_ordinal_shifts_the_range() {
        let revs = [rev("v1", 1)];
        let mut s = sts(2, "v1");
        spec_mut(&mut s).ordinals = Some(StatefulSetOrdinals { start: Some(5) });
        let p = plan(&s, &[], &revs, ts(0));
        assert_eq!(created(&p), names(&["web-5"]));
        let p = plan(
            &s,
            &[pod(0, "v1"), pod(5, "v1"), pod(6, "v1")],
            &revs,
            ts(0),
        );
        assert_eq!(deleted(&p), vec![("web-0".into(), DeleteReason::ScaleDown)]);
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let revs = [rev("v1", i64::MAX)];
        let mut s = parallel(sts(i32::MAX, "v1"));
        spec_mut(&mut s).min_ready_seconds = Some(i32::MAX);
        spec_mut(&mut s).revision_history_limit = Some(i32::MIN);
        let p = plan(&s, &[pod(0, "v1")], &revs, ts(0));
        assert_eq!(p.create.len(), BURST_REPLICAS);
        assert!(p.requeue_after.is_some());
        spec_mut(&mut s).replicas = Some(i32::MIN);
        spec_mut(&mut s).ordinals = Some(StatefulSetOrdinals {
            start: Some(i32::MAX),
        });
        let s = partition(s, i32::MIN);
        let p = plan(&s, &[pod(0, "v1")], &revs, ts(0));
        assert_eq!(deleted(&p).len(), 1);
        let _ = plan(&StatefulSet::default(), &[Pod::default()], &[], ts(0));
        let mut bare = StatefulSet::default();
        bare.metadata.uid = Some("u".into());
        let _ = plan(
            &bare,
            &[Pod::default()],
            &[ControllerRevision::default()],
            ts(0),
        );
    }
}
