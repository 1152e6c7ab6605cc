//! What a Deployment needs done (a pure function of the deployment and its replica sets).
//!
//! [`plan`] mirrors one sync pass of Kubernetes' deployment controller
//! (`pkg/controller/deployment`: `sync.go`, `rolling.go`, `recreate.go`, `progress.go`):
//! find the new replica set (the one whose template equals the deployment's, ignoring the
//! `pod-template-hash` label), sync revisions, then either scale (paused deployments and
//! scaling events, including proportional scaling during a rollout) or take one rollout step
//! (RollingUpdate or Recreate), clean up old replica sets beyond `revisionHistoryLimit`, and
//! compute the new status with its Available/Progressing conditions.
//!
//! The caller applies the plan through the API and re-plans whenever a replica set or pod
//! changes (and after `requeue_after`). Every replica set named in [`Plan::scale`] must also
//! get the annotations of [`rs_annotations`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The revision annotation carried by a Deployment and its replica sets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The earlier revisions of a replica set that was reused (comma separated).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the deployment when the replica set was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the deployment when the replica set was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that tells the replica sets of one deployment apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// `spec.revisionHistoryLimit` when unset.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// `spec.progressDeadlineSeconds` when unset.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// Condition type: the deployment has minimum availability.
pub const AVAILABLE: &str = "Available";
/// Condition type: the rollout is progressing (or done, or stuck).
pub const PROGRESSING: &str = "Progressing";
/// Condition type: a replica set failed to create or delete pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
/// Progressing reason: the new replica set was created.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// Progressing reason: an existing new replica set was found.
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// Progressing reason: progress was made.
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing reason: the rollout is complete.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing reason: no progress within `progressDeadlineSeconds`.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Progressing reason: the deployment is paused.
pub const PAUSED: &str = "DeploymentPaused";
/// Progressing reason: the deployment was resumed.
pub const RESUMED: &str = "DeploymentResumed";
/// Available reason: enough replicas are available.
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available reason: too few replicas are available.
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// Deployment annotations never copied onto a replica set.
const SKIP_COPY: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// Longest revision-history annotation kept (Kubernetes' default).
const MAX_REV_HISTORY_CHARS: usize = 2000;

/// The decisions of one deployment sync pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// A new replica set to create (complete object: name `"<deploy>-<hash>"`, labels,
    /// selector and template labels with `pod-template-hash`, controller ownerReference,
    /// revision and replica annotations, initial `spec.replicas`).
    pub create: Option<ReplicaSet>,
    /// Replica set name → new `spec.replicas`. The caller also sets [`rs_annotations`] on each.
    /// An entry may repeat the current size when only those annotations are stale.
    pub scale: Vec<(String, i32)>,
    /// Replica set name → annotations to set (merge) on the existing new replica set: a
    /// revision bump (and revision history) when an older template is reused, and the
    /// deployment's own annotations copied over.
    pub annotate: Vec<(String, BTreeMap<String, String>)>,
    /// Old replica sets to delete (beyond `revisionHistoryLimit`, fully scaled down), oldest
    /// revision first. Never while paused.
    pub delete: Vec<String>,
    /// Annotations the Deployment itself should carry (merge): its revision.
    pub deployment_annotations: BTreeMap<String, String>,
    /// The status the Deployment should carry.
    pub status: DeploymentStatus,
    /// When to plan again even if nothing changes (the progress deadline; zero right after a
    /// hash collision was recorded in `status.collisionCount`).
    pub requeue_after: Option<Duration>,
    /// Replica set name → `spec.minReadySeconds` when the existing new replica set's value
    /// differs from the deployment's (Kubernetes keeps them in sync).
    pub rs_min_ready_seconds: Option<(String, i32)>,
}

// ---------------------------------------------------------------------------------------
// Hashing and template comparison
// ---------------------------------------------------------------------------------------

fn fnv1a32(h: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u32::from(*b)).wrapping_mul(16_777_619))
}

/// Kubernetes' `rand.SafeEncodeString`: each byte mapped into an alphabet without vowels
/// (and without confusable characters).
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The `pod-template-hash` of a template: FNV-1a 32 over the template's JSON (serde_json;
/// map keys are sorted), followed, when `collision_count` is set, by its value as a
/// little-endian `u32` padded to 8 bytes (as Kubernetes writes it), printed in decimal and
/// encoded with Kubernetes' safe alphabet.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json =
        serde_json::to_vec(template).unwrap_or_else(|_| format!("{template:?}").into_bytes());
    let mut h = fnv1a32(2_166_136_261, &json);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv1a32(h, &bytes);
    }
    safe_encode(&h.to_string())
}

/// A template with the `pod-template-hash` label removed and empty maps normalized away.
fn normalized(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove(POD_TEMPLATE_HASH);
        }
        if m.labels.as_ref().is_some_and(|l| l.is_empty()) {
            m.labels = None;
        }
        if m.annotations.as_ref().is_some_and(|a| a.is_empty()) {
            m.annotations = None;
        }
    }
    if t.metadata.as_ref() == Some(&ObjectMeta::default()) {
        t.metadata = None;
    }
    t
}

fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

fn templates_equal(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized(a) == normalized(b)
}

/// Whether `existing`, which has the name the deployment's new replica set would get, is
/// a hash collision: it is not controlled by this deployment or its template differs from
/// the deployment's (ignoring `pod-template-hash`). The caller then increments
/// `status.collisionCount` and plans again.
pub fn hash_collision(d: &Deployment, existing: &ReplicaSet) -> bool {
    let ours = match (
        crate::replicaset::diff::controller_ref(&existing.metadata),
        d.metadata.uid.as_deref(),
    ) {
        (Some(r), Some(uid)) => r.uid == uid,
        _ => false,
    };
    let Some(spec) = d.spec.as_ref() else {
        return true;
    };
    !(ours && templates_equal(&spec.template, &rs_template(existing)))
}

// ---------------------------------------------------------------------------------------
// Strategy parameters
// ---------------------------------------------------------------------------------------

fn desired_replicas(spec: &DeploymentSpec) -> i32 {
    spec.replicas.unwrap_or(1).max(0)
}

fn is_recreate(spec: &DeploymentSpec) -> bool {
    spec.strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "Recreate")
}

/// `IntOrString` scaled against `total`: an int as is, `"N%"` as N% of total rounded up or
/// down. Invalid values (validation rejects them) count as 0; negative values as 0.
fn scaled_value(v: Option<&IntOrString>, default_percent: i64, total: i32, round_up: bool) -> i32 {
    let total = i64::from(total.max(0));
    let percent = |p: i64| -> i64 {
        let n = p * total;
        if round_up {
            (n + 99).div_euclid(100)
        } else {
            n.div_euclid(100)
        }
    };
    let value = match v {
        None => percent(default_percent),
        Some(IntOrString::Int(i)) => i64::from(*i),
        Some(IntOrString::String(s)) => {
            match s.strip_suffix('%').map(|p| p.trim().parse::<i64>()) {
                Some(Ok(p)) => percent(p.clamp(0, 1_000_000)),
                _ => 0,
            }
        }
    };
    i32::try_from(value.max(0)).unwrap_or(i32::MAX)
}

/// `(maxSurge, maxUnavailable)` resolved against `spec.replicas` (Kubernetes'
/// `ResolveFenceposts`, `MaxSurge`, `MaxUnavailable`): both 0 for Recreate; if both would be
/// 0, maxUnavailable is 1; maxUnavailable never exceeds replicas.
fn fenceposts(spec: &DeploymentSpec) -> (i32, i32) {
    if is_recreate(spec) {
        return (0, 0);
    }
    let replicas = desired_replicas(spec);
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled_value(ru.and_then(|r| r.max_surge.as_ref()), 25, replicas, true);
    let mut unavailable = scaled_value(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        25,
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    if replicas == 0 {
        unavailable = 0;
    }
    (surge, unavailable.min(replicas))
}

/// The replica annotations a replica set gets whenever the controller scales it:
/// `desired-replicas` = `spec.replicas`, `max-replicas` = `spec.replicas + maxSurge`.
pub fn rs_annotations(d: &Deployment) -> BTreeMap<String, String> {
    let (replicas, surge) = d
        .spec
        .as_ref()
        .map_or((1, 0), |s| (desired_replicas(s), fenceposts(s).0));
    BTreeMap::from([
        (DESIRED_REPLICAS.to_string(), replicas.to_string()),
        (
            MAX_REPLICAS.to_string(),
            replicas.saturating_add(surge).to_string(),
        ),
    ])
}

// ---------------------------------------------------------------------------------------
// Working model
// ---------------------------------------------------------------------------------------

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn revision_of(meta: &ObjectMeta) -> i64 {
    annotation(meta, REVISION)
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0)
}

fn ts_key(t: Option<&Time>) -> Option<i128> {
    t.map(|t| t.0.as_nanosecond())
}

/// One replica set as the plan sees it; `spec` is what the plan decided.
#[derive(Debug, Clone)]
struct Rs {
    name: String,
    uid: String,
    created: Option<i128>,
    spec: i64,
    orig_spec: i64,
    status_replicas: i64,
    ready: i64,
    available: i64,
    desired_ann: Option<i64>,
    max_ann: Option<i64>,
    /// Emit a scale entry even with an unchanged size (its replica annotations are stale).
    refresh: bool,
    /// The replica set this plan creates.
    creating: bool,
}

impl Rs {
    fn from(rs: &ReplicaSet) -> Rs {
        let spec = i64::from(
            rs.spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1)
                .max(0),
        );
        let st = rs.status.as_ref();
        let ann = |k: &str| annotation(&rs.metadata, k).and_then(|v| v.parse::<i64>().ok());
        Rs {
            name: rs.metadata.name.clone().unwrap_or_default(),
            uid: rs.metadata.uid.clone().unwrap_or_default(),
            created: ts_key(rs.metadata.creation_timestamp.as_ref()),
            spec,
            orig_spec: spec,
            status_replicas: i64::from(st.map_or(0, |s| s.replicas)),
            ready: i64::from(st.and_then(|s| s.ready_replicas).unwrap_or(0)),
            available: i64::from(st.and_then(|s| s.available_replicas).unwrap_or(0)),
            desired_ann: ann(DESIRED_REPLICAS),
            max_ann: ann(MAX_REPLICAS),
            refresh: false,
            creating: false,
        }
    }
}

fn by_creation(a: &Rs, b: &Rs) -> Ordering {
    a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name))
}

/// Everything one pass works with.
struct Ctx<'a> {
    d: &'a Deployment,
    spec: &'a DeploymentSpec,
    replicas: i64,
    surge: i64,
    unavailable: i64,
    /// All replica sets; `new` indexes the new one.
    all: Vec<Rs>,
    new: Option<usize>,
    /// Working copy of the deployment's conditions (Kubernetes mutates `d.Status` in place).
    conditions: Vec<DeploymentCondition>,
    now: jiff::Timestamp,
}

impl Ctx<'_> {
    fn olds(&self) -> Vec<usize> {
        (0..self.all.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    fn sorted_by_creation(&self, mut idx: Vec<usize>) -> Vec<usize> {
        idx.sort_by(|a, b| by_creation(&self.all[*a], &self.all[*b]));
        idx
    }

    fn annotations_stale(&self, rs: &Rs) -> bool {
        rs.desired_ann != Some(self.replicas) || rs.max_ann != Some(self.replicas + self.surge)
    }

    /// Kubernetes' `scaleReplicaSetAndRecordEvent`: a no-op when the size is unchanged.
    fn scale_to(&mut self, i: usize, n: i64) -> bool {
        let Some(rs) = self.all.get_mut(i) else {
            return false;
        };
        if rs.spec == n {
            return false;
        }
        rs.spec = n.max(0);
        true
    }

    /// Kubernetes' `scaleReplicaSet`: also refreshes stale replica annotations.
    fn scale_and_refresh(&mut self, i: usize, n: i64) {
        self.scale_to(i, n);
        let stale = self.all.get(i).is_some_and(|rs| self.annotations_stale(rs));
        if let Some(rs) = self.all.get_mut(i) {
            rs.refresh |= stale;
        }
    }

    fn total_spec(&self, idx: &[usize]) -> i64 {
        idx.iter().map(|i| self.all[*i].spec).sum()
    }

    fn is_scaling_event(&self) -> bool {
        self.all
            .iter()
            .filter(|rs| rs.spec > 0)
            .any(|rs| rs.desired_ann.is_some_and(|v| v != self.replicas))
    }

    // -- sync / scale --------------------------------------------------------------------

    /// Kubernetes' `scale`: one active replica set takes the whole size; a saturated new
    /// replica set turns the old ones off; otherwise spread the difference proportionally.
    fn scale(&mut self) {
        if self.all.is_empty() {
            return;
        }
        let active: Vec<usize> = (0..self.all.len())
            .filter(|i| self.all[*i].spec > 0)
            .collect();
        let active_or_latest = match active.len() {
            0 => self.new.or_else(|| {
                let mut olds = self.sorted_by_creation(self.olds());
                olds.reverse();
                olds.first().copied()
            }),
            1 => active.first().copied(),
            _ => None,
        };
        if let Some(i) = active_or_latest {
            self.scale_and_refresh(i, self.replicas);
            return;
        }
        if self.new_is_saturated() {
            for i in self.olds() {
                if self.all[i].spec > 0 {
                    self.scale_and_refresh(i, 0);
                }
            }
            return;
        }
        if is_recreate(self.spec) {
            return;
        }
        let allowed = if self.replicas > 0 {
            self.replicas + self.surge
        } else {
            0
        };
        let to_add = allowed - self.total_spec(&active);
        let mut order = active;
        match to_add.cmp(&0) {
            // larger first; on ties newer first when growing, older first when shrinking
            Ordering::Greater => order.sort_by(|a, b| {
                let (a, b) = (&self.all[*a], &self.all[*b]);
                b.spec.cmp(&a.spec).then_with(|| by_creation(b, a))
            }),
            Ordering::Less => order.sort_by(|a, b| {
                let (a, b) = (&self.all[*a], &self.all[*b]);
                b.spec.cmp(&a.spec).then_with(|| by_creation(a, b))
            }),
            Ordering::Equal => {}
        }
        let mut added = 0i64;
        let mut sizes: Vec<(usize, i64)> = Vec::with_capacity(order.len());
        for &i in &order {
            let rs = &self.all[i];
            if to_add != 0 {
                let p = self.proportion(rs, to_add, added);
                sizes.push((i, rs.spec + p));
                added += p;
            } else {
                sizes.push((i, rs.spec));
            }
        }
        if let Some(first) = sizes.first_mut() {
            // leftovers go to the largest replica set, as in Kubernetes
            first.1 = (first.1 + to_add - added).max(0);
        }
        for (i, n) in sizes {
            self.scale_and_refresh(i, n);
        }
    }

    fn new_is_saturated(&self) -> bool {
        self.new.and_then(|i| self.all.get(i)).is_some_and(|rs| {
            rs.desired_ann == Some(self.replicas)
                && rs.spec == self.replicas
                && rs.available == self.replicas
        })
    }

    /// Kubernetes' `GetReplicaSetProportion`.
    fn proportion(&self, rs: &Rs, to_add: i64, added: i64) -> i64 {
        if rs.spec == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = if self.replicas == 0 {
            -rs.spec
        } else {
            let max_now = self.replicas + self.surge;
            let before = match rs.max_ann {
                Some(v) if v > 0 => v,
                _ => i64::from(status_i32(self.d, |s| s.replicas)),
            };
            if before <= 0 {
                0
            } else {
                // Kubernetes rounds the float (half away from zero)
                let size = (rs.spec as f64 * max_now as f64 / before as f64).round();
                (size as i64).saturating_sub(rs.spec)
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    // -- rolling update ------------------------------------------------------------------

    /// Kubernetes' `NewRSNewReplicas` for RollingUpdate.
    fn rolling_new_replicas(&self, new: usize) -> i64 {
        let current: i64 = self.all.iter().map(|r| r.spec).sum();
        let max_total = self.replicas + self.surge;
        let new_spec = self.all[new].spec;
        if current >= max_total {
            return new_spec;
        }
        let up = (max_total - current).min(self.replicas - new_spec).max(0);
        new_spec + up
    }

    /// Kubernetes' `reconcileNewReplicaSet`.
    fn reconcile_new(&mut self, new: usize) -> bool {
        let spec = self.all[new].spec;
        if spec == self.replicas {
            return false;
        }
        if spec > self.replicas {
            return self.scale_to(new, self.replicas);
        }
        let n = self.rolling_new_replicas(new);
        self.scale_to(new, n)
    }

    /// Kubernetes' `reconcileOldReplicaSets`: clean up unhealthy old replicas, then scale old
    /// replica sets down as far as availability allows.
    fn reconcile_old(&mut self, new: usize) -> bool {
        let olds = self.sorted_by_creation(self.olds());
        if self.total_spec(&olds) == 0 {
            return false;
        }
        let all_pods: i64 = self.all.iter().map(|r| r.spec).sum();
        let min_available = self.replicas - self.unavailable;
        let new_unavailable = self.all[new].spec - self.all[new].available;
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let mut cleaned = 0;
        for &i in &olds {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &self.all[i];
            let unhealthy = rs.spec - rs.available;
            if rs.spec == 0 || unhealthy <= 0 {
                continue;
            }
            let n = (max_scaled_down - cleaned).min(unhealthy);
            let target = rs.spec - n;
            self.scale_to(i, target);
            cleaned += n;
        }
        let available: i64 = self.all.iter().map(|r| r.available).sum();
        let mut scaled = 0;
        if available > min_available {
            let budget = available - min_available;
            for &i in &olds {
                if scaled >= budget {
                    break;
                }
                let spec = self.all[i].spec;
                if spec == 0 {
                    continue;
                }
                let n = spec.min(budget - scaled);
                self.scale_to(i, spec - n);
                scaled += n;
            }
        }
        cleaned + scaled > 0
    }

    // -- recreate ------------------------------------------------------------------------

    fn old_pods_running(&self, pods: &[Pod]) -> bool {
        let olds = self.olds();
        if olds
            .iter()
            .map(|i| self.all[*i].status_replicas)
            .sum::<i64>()
            > 0
        {
            return true;
        }
        let uids: BTreeSet<&str> = olds
            .iter()
            .map(|i| self.all[*i].uid.as_str())
            .filter(|u| !u.is_empty())
            .collect();
        pods.iter().any(|p| {
            let owned = crate::replicaset::diff::controller_ref(&p.metadata)
                .is_some_and(|r| uids.contains(r.uid.as_str()));
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            // terminating pods still count: Recreate waits until they are gone
            owned && !matches!(phase, Some("Succeeded") | Some("Failed"))
        })
    }

    // -- conditions ----------------------------------------------------------------------

    fn has_progress_deadline(&self) -> bool {
        self.spec.progress_deadline_seconds != Some(i32::MAX)
    }

    fn progress_deadline(&self) -> i64 {
        i64::from(
            self.spec
                .progress_deadline_seconds
                .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS),
        )
    }

    fn cond(
        &self,
        status: &str,
        reason: &str,
        message: String,
        type_: &str,
    ) -> DeploymentCondition {
        DeploymentCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message),
            last_update_time: Some(Time(self.now)),
            last_transition_time: Some(Time(self.now)),
        }
    }

    fn new_name(&self) -> Option<&str> {
        self.new
            .and_then(|i| self.all.get(i))
            .map(|r| r.name.as_str())
    }

    fn subject(&self) -> String {
        match self.new_name() {
            Some(n) => format!("ReplicaSet {n:?}"),
            None => format!(
                "Deployment {:?}",
                self.d.metadata.name.as_deref().unwrap_or_default()
            ),
        }
    }
}

fn get_cond<'a>(conds: &'a [DeploymentCondition], type_: &str) -> Option<&'a DeploymentCondition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Kubernetes' `SetDeploymentCondition`: no change when status and reason are the same;
/// keep lastTransitionTime when only the reason changes.
fn set_cond(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(cur) = get_cond(conds, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

fn remove_cond(conds: &mut Vec<DeploymentCondition>, type_: &str) {
    conds.retain(|x| x.type_ != type_);
}

fn to_i32(v: i64) -> i32 {
    i32::try_from(v.max(0)).unwrap_or(i32::MAX)
}

fn status_i32(d: &Deployment, f: impl Fn(&DeploymentStatus) -> Option<i32>) -> i32 {
    d.status.as_ref().and_then(f).unwrap_or(0)
}

/// Kubernetes' `DeploymentComplete`.
fn complete(d: &Deployment, replicas: i32, st: &DeploymentStatus) -> bool {
    st.updated_replicas.unwrap_or(0) == replicas
        && st.replicas.unwrap_or(0) == replicas
        && st.available_replicas.unwrap_or(0) == replicas
        && st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Kubernetes' `DeploymentProgressing`: any progress compared with the current status.
fn progressed(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let g = |v: Option<i32>| i64::from(v.unwrap_or(0));
    let old_old = g(old.replicas) - g(old.updated_replicas);
    let new_old = g(new.replicas) - g(new.updated_replicas);
    g(new.updated_replicas) > g(old.updated_replicas)
        || new_old < old_old
        || g(new.ready_replicas) > g(old.ready_replicas)
        || g(new.available_replicas) > g(old.available_replicas)
}

// ---------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------

/// One pass of the deployment controller over `d`, the replica sets it controls (`rss`) and
/// the pods those replica sets control (`pods`, needed for Recreate).
///
/// A deployment without a spec or with an empty selector only gets its observedGeneration
/// bumped. A deployment being deleted gets only its status (and revision) synced.
pub fn plan(d: &Deployment, rss: &[ReplicaSet], pods: &[Pod], now: jiff::Timestamp) -> Plan {
    let mut out = Plan::default();
    let old_status = d.status.clone().unwrap_or_default();
    let Some(spec) = d.spec.as_ref() else {
        out.status = DeploymentStatus {
            observed_generation: d.metadata.generation,
            ..old_status
        };
        return out;
    };
    let selector_empty = spec
        .selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.is_empty())
        && spec
            .selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    if selector_empty {
        out.status = DeploymentStatus {
            observed_generation: d.metadata.generation,
            ..old_status
        };
        return out;
    }

    let (surge, unavailable) = fenceposts(spec);
    let replicas = desired_replicas(spec);
    let paused = spec.paused.unwrap_or(false);
    let mut collision_count = old_status.collision_count;

    // New replica set: template equal ignoring the hash label, oldest first.
    let mut order: Vec<usize> = (0..rss.len()).collect();
    order.sort_by(|a, b| by_creation(&Rs::from(&rss[*a]), &Rs::from(&rss[*b])));
    let new_src = order
        .iter()
        .copied()
        .find(|i| templates_equal(&spec.template, &rs_template(&rss[*i])));
    let all: Vec<Rs> = rss.iter().map(Rs::from).collect();
    let max_old_revision = (0..rss.len())
        .filter(|i| Some(*i) != new_src)
        .map(|i| revision_of(&rss[i].metadata))
        .max()
        .unwrap_or(0);
    let new_revision = max_old_revision.saturating_add(1);

    let mut ctx = Ctx {
        d,
        spec,
        replicas: i64::from(replicas),
        surge: i64::from(surge),
        unavailable: i64::from(unavailable),
        all,
        new: new_src,
        conditions: old_status.conditions.clone().unwrap_or_default(),
        now,
    };

    // Paused / resumed (Kubernetes' checkPausedConditions).
    if ctx.has_progress_deadline() {
        let cur = get_cond(&ctx.conditions, PROGRESSING).and_then(|c| c.reason.clone());
        if cur.as_deref() != Some(TIMED_OUT) {
            let paused_cond = cur.as_deref() == Some(PAUSED);
            if paused && !paused_cond {
                let c = ctx.cond(
                    "Unknown",
                    PAUSED,
                    "Deployment is paused".into(),
                    PROGRESSING,
                );
                set_cond(&mut ctx.conditions, c);
            } else if !paused && paused_cond {
                let c = ctx.cond(
                    "Unknown",
                    RESUMED,
                    "Deployment is resumed".into(),
                    PROGRESSING,
                );
                set_cond(&mut ctx.conditions, c);
            }
        }
    }

    // Sync the existing new replica set's annotations and the deployment's revision.
    if let Some(i) = new_src {
        let rs = &rss[i];
        let updates = new_rs_annotation_updates(d, &rs.metadata, new_revision);
        let revision = updates
            .get(REVISION)
            .cloned()
            .or_else(|| annotation(&rs.metadata, REVISION).map(str::to_string));
        if let Some(rev) = revision {
            out.deployment_annotations.insert(REVISION.to_string(), rev);
        }
        if !updates.is_empty() {
            out.annotate.push((ctx.all[i].name.clone(), updates));
        }
        let want_mrs = spec.min_ready_seconds.unwrap_or(0);
        let have_mrs = rs
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if want_mrs != have_mrs {
            out.rs_min_ready_seconds = Some((ctx.all[i].name.clone(), want_mrs));
        }
        if ctx.has_progress_deadline() && get_cond(&ctx.conditions, PROGRESSING).is_none() {
            let msg = format!("Found new replica set {:?}", ctx.all[i].name);
            let c = ctx.cond("True", FOUND_NEW_RS, msg, PROGRESSING);
            set_cond(&mut ctx.conditions, c);
        }
    } else if let Some(rev) = annotation(&d.metadata, REVISION) {
        out.deployment_annotations
            .insert(REVISION.to_string(), rev.to_string());
    }

    let deleting = d.metadata.deletion_timestamp.is_some();
    let mut rollout = false;
    let mut may_clean_up = false;

    if deleting {
        // status only
    } else if paused || ctx.is_scaling_event() {
        ctx.scale();
    } else if is_recreate(spec) {
        rollout = true;
        let mut scaled_down = false;
        for i in ctx.olds() {
            if ctx.all[i].spec > 0 {
                scaled_down |= ctx.scale_to(i, 0);
            }
        }
        if !scaled_down && !ctx.old_pods_running(pods) {
            if ctx.new.is_none() {
                create_new_rs(&mut ctx, &mut out, rss, new_revision, &mut collision_count);
            }
            if let Some(new) = ctx.new {
                if !ctx.all[new].creating {
                    ctx.scale_to(new, i64::from(replicas));
                }
                may_clean_up = true;
            }
        }
    } else {
        rollout = true;
        if ctx.new.is_none() {
            create_new_rs(&mut ctx, &mut out, rss, new_revision, &mut collision_count);
        }
        if let Some(new) = ctx.new {
            let created = ctx.all[new].creating;
            if (created || !ctx.reconcile_new(new)) && !ctx.reconcile_old(new) {
                may_clean_up = true;
            }
        }
    }

    if may_clean_up && !paused && complete(d, replicas, &old_status) {
        out.delete = cleanup(spec, rss, new_src);
    }

    // Scale entries, in input order.
    for rs in &ctx.all {
        if !rs.creating && (rs.spec != rs.orig_spec || rs.refresh) {
            out.scale.push((rs.name.clone(), to_i32(rs.spec)));
        }
    }

    // Status.
    let sum = |f: fn(&Rs) -> i64| ctx.all.iter().map(f).sum::<i64>();
    let available = sum(|r| r.available);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(to_i32(sum(|r| r.status_replicas))),
        updated_replicas: Some(to_i32(
            ctx.new
                .and_then(|i| ctx.all.get(i))
                .map_or(0, |r| r.status_replicas),
        )),
        ready_replicas: Some(to_i32(sum(|r| r.ready))),
        available_replicas: Some(to_i32(available)),
        unavailable_replicas: Some(to_i32((i64::from(replicas) - available).max(0))),
        collision_count,
        conditions: None,
        terminating_replicas: None,
    };
    let mut conds = std::mem::take(&mut ctx.conditions);
    let avail_cond = if available >= ctx.replicas - ctx.unavailable {
        ctx.cond(
            "True",
            MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
            AVAILABLE,
        )
    } else {
        ctx.cond(
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            AVAILABLE,
        )
    };
    set_cond(&mut conds, avail_cond);

    if rollout {
        if !ctx.has_progress_deadline() {
            remove_cond(&mut conds, PROGRESSING);
        }
        let current = get_cond(&conds, PROGRESSING).cloned();
        let is_complete_deployment = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
        if ctx.has_progress_deadline() && !is_complete_deployment {
            let subject = ctx.subject();
            if complete(d, replicas, &status) {
                let msg = format!("{subject} has successfully progressed.");
                set_cond(
                    &mut conds,
                    ctx.cond("True", NEW_RS_AVAILABLE, msg, PROGRESSING),
                );
            } else if progressed(d, &status) {
                let msg = format!("{subject} is progressing.");
                let mut c = ctx.cond("True", RS_UPDATED, msg, PROGRESSING);
                if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_cond(&mut conds, PROGRESSING);
                conds.push(c);
            } else if timed_out(&ctx, &conds) {
                let msg = format!("{subject} has timed out progressing.");
                set_cond(&mut conds, ctx.cond("False", TIMED_OUT, msg, PROGRESSING));
            }
        }
        match replica_failure(rss, new_src) {
            Some(c) => set_cond(&mut conds, c),
            None => remove_cond(&mut conds, REPLICA_FAILURE),
        }
        // Requeue to check the progress deadline (Kubernetes' requeueStuckDeployment).
        if ctx.has_progress_deadline() && !complete(d, replicas, &status) {
            if let Some(c) = get_cond(&conds, PROGRESSING) {
                let reason = c.reason.as_deref();
                if reason != Some(TIMED_OUT) && reason != Some(NEW_RS_AVAILABLE) {
                    if let Some(lut) = c.last_update_time.as_ref() {
                        let deadline = lut.0.as_nanosecond()
                            + i128::from(ctx.progress_deadline()) * 1_000_000_000;
                        let after = u64::try_from(deadline - now.as_nanosecond()).unwrap_or(0);
                        out.requeue_after =
                            Some(Duration::from_nanos(after).max(Duration::from_secs(1)));
                    }
                }
            }
        }
    }
    if collision_count != old_status.collision_count {
        out.requeue_after = Some(Duration::ZERO);
    }
    status.conditions = if conds.is_empty() { None } else { Some(conds) };
    out.status = status;
    out
}

/// Kubernetes' `DeploymentTimedOut`, on the conditions about to be written.
fn timed_out(ctx: &Ctx<'_>, conds: &[DeploymentCondition]) -> bool {
    let Some(c) = get_cond(conds, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c.last_update_time.as_ref().is_some_and(|lut| {
            lut.0.as_nanosecond() + i128::from(ctx.progress_deadline()) * 1_000_000_000
                < ctx.now.as_nanosecond()
        }),
    }
}

/// A ReplicaFailure condition of the new replica set (else of an old one), as a deployment
/// condition.
fn replica_failure(rss: &[ReplicaSet], new: Option<usize>) -> Option<DeploymentCondition> {
    let order = new
        .into_iter()
        .chain((0..rss.len()).filter(|i| Some(*i) != new));
    for i in order {
        let conds = rss[i].status.as_ref().and_then(|s| s.conditions.as_ref());
        if let Some(c) = conds.and_then(|cs| cs.iter().find(|c| c.type_ == REPLICA_FAILURE)) {
            return Some(DeploymentCondition {
                type_: REPLICA_FAILURE.to_string(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            });
        }
    }
    None
}

/// The annotations to merge into an existing new replica set: the deployment's own
/// annotations that differ, and a revision bump (with history) when its revision is below
/// `new_revision`.
fn new_rs_annotation_updates(
    d: &Deployment,
    meta: &ObjectMeta,
    new_revision: i64,
) -> BTreeMap<String, String> {
    let mut updates = BTreeMap::new();
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if SKIP_COPY.contains(&k.as_str()) {
            continue;
        }
        if annotation(meta, k) != Some(v.as_str()) {
            updates.insert(k.clone(), v.clone());
        }
    }
    let old = annotation(meta, REVISION);
    let old_int = match old {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(v) => v,
            Err(_) => return updates, // not an integer: leave the revision alone
        },
    };
    if old_int < new_revision {
        updates.insert(REVISION.to_string(), new_revision.to_string());
        if let Some(old) = old.filter(|s| !s.is_empty()) {
            let history = annotation(meta, REVISION_HISTORY).unwrap_or("");
            let mut revs: Vec<&str> = history.split(',').filter(|s| !s.is_empty()).collect();
            revs.push(old);
            while revs.len() > 1 && revs.join(",").len() > MAX_REV_HISTORY_CHARS {
                revs.remove(0);
            }
            updates.insert(REVISION_HISTORY.to_string(), revs.join(","));
        }
    }
    updates
}

/// Build the new replica set (Kubernetes' `getNewReplicaSet` with createIfNotExisted), or
/// record a hash collision when an RS with its name already exists.
fn create_new_rs(
    ctx: &mut Ctx<'_>,
    out: &mut Plan,
    rss: &[ReplicaSet],
    revision: i64,
    collision_count: &mut Option<i32>,
) {
    let d = ctx.d;
    let spec = ctx.spec;
    let hash = pod_template_hash(&spec.template, *collision_count);
    let name = format!(
        "{}-{}",
        d.metadata.name.as_deref().unwrap_or_default(),
        hash
    );
    if rss
        .iter()
        .any(|r| r.metadata.name.as_deref() == Some(name.as_str()))
    {
        // The RS with this name has another template (else it would be the new RS).
        *collision_count = Some(collision_count.unwrap_or(0).saturating_add(1));
        return;
    }

    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.to_string(), hash.clone());
    let labels = meta.labels.clone();
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.to_string(), hash);

    let mut annotations: BTreeMap<String, String> = d
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !SKIP_COPY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION.to_string(), revision.to_string());
    annotations.extend(rs_annotations(d));

    ctx.all.push(Rs {
        name: name.clone(),
        uid: String::new(),
        created: Some(ctx.now.as_nanosecond()),
        spec: 0,
        orig_spec: 0,
        status_replicas: 0,
        ready: 0,
        available: 0,
        desired_ann: Some(ctx.replicas),
        max_ann: Some(ctx.replicas.saturating_add(ctx.surge)),
        refresh: false,
        creating: true,
    });
    let idx = ctx.all.len() - 1;
    ctx.new = Some(idx);
    let initial = if is_recreate(spec) {
        ctx.replicas
    } else {
        ctx.rolling_new_replicas(idx)
    };
    ctx.all[idx].spec = initial;
    ctx.all[idx].orig_spec = initial;

    out.create = Some(ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: d.metadata.namespace.clone(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_string(),
                kind: "Deployment".to_string(),
                name: d.metadata.name.clone().unwrap_or_default(),
                uid: d.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(to_i32(initial)),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    });
    out.deployment_annotations
        .insert(REVISION.to_string(), revision.to_string());
    if ctx.has_progress_deadline() {
        let c = ctx.cond(
            "True",
            NEW_RS_CREATED,
            format!("Created new replica set {name:?}"),
            PROGRESSING,
        );
        set_cond(&mut ctx.conditions, c);
    }
}

/// Kubernetes' `cleanupDeployment`: of the old replica sets not being deleted, the
/// `len - revisionHistoryLimit` lowest revisions go, skipping any that still has replicas
/// or whose status is behind its generation.
fn cleanup(spec: &DeploymentSpec, rss: &[ReplicaSet], new: Option<usize>) -> Vec<String> {
    let limit = spec
        .revision_history_limit
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT);
    if limit == i32::MAX {
        return Vec::new();
    }
    let mut olds: Vec<&ReplicaSet> = (0..rss.len())
        .filter(|i| Some(*i) != new)
        .map(|i| &rss[i])
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = olds.len() as i64 - i64::from(limit.max(0));
    if excess <= 0 {
        return Vec::new();
    }
    olds.sort_by(|a, b| {
        revision_of(&a.metadata)
            .cmp(&revision_of(&b.metadata))
            .then_with(|| by_creation(&Rs::from(a), &Rs::from(b)))
    });
    olds.iter()
        .take(usize::try_from(excess).unwrap_or(0))
        .filter(|r| {
            let rs = Rs::from(r);
            let behind = r.metadata.generation.unwrap_or(0)
                > r.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .unwrap_or(0);
            rs.spec == 0 && rs.status_replicas == 0 && !behind
        })
        .map(|r| r.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentStrategy, ReplicaSetCondition, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    const D_UID: &str = "d-uid";

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
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn deployment(replicas: i32, image: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some(D_UID.into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(map(&[("app", "web")])),
                    match_expressions: None,
                },
                template: template(image),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn spec_mut(d: &mut Deployment) -> &mut DeploymentSpec {
        d.spec.as_mut().unwrap()
    }

    fn strategy(d: &mut Deployment, surge: IntOrString, unavailable: IntOrString) {
        spec_mut(d).strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(surge),
                max_unavailable: Some(unavailable),
            }),
        });
    }

    /// An RS of deployment `d` as the controller would have created it for `image`, with
    /// `spec` replicas all available.
    fn owned_rs(d: &Deployment, image: &str, revision: i64, spec: i32, created: i64) -> ReplicaSet {
        let mut dd = d.clone();
        spec_mut(&mut dd).template = template(image);
        spec_mut(&mut dd).paused = None;
        dd.metadata.deletion_timestamp = None;
        dd.status = None;
        let p = plan(&dd, &[], &[], ts(created));
        let mut rs = p.create.unwrap();
        rs.metadata.uid = Some(format!("uid-{image}"));
        rs.metadata.creation_timestamp = Some(Time(ts(created)));
        rs.metadata.generation = Some(1);
        rs.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(REVISION.into(), revision.to_string());
        rs.spec.as_mut().unwrap().replicas = Some(spec);
        rs.status = Some(ReplicaSetStatus {
            replicas: spec,
            ready_replicas: Some(spec),
            available_replicas: Some(spec),
            observed_generation: Some(1),
            ..Default::default()
        });
        rs
    }

    fn rs_spec(rs: &ReplicaSet) -> i32 {
        rs.spec.as_ref().unwrap().replicas.unwrap()
    }

    fn rs_avail(rs: &ReplicaSet) -> i32 {
        rs.status.as_ref().unwrap().available_replicas.unwrap()
    }

    fn name(rs: &ReplicaSet) -> String {
        rs.metadata.name.clone().unwrap()
    }

    fn cond<'a>(p: &'a Plan, t: &str) -> &'a DeploymentCondition {
        p.status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    fn reason<'a>(p: &'a Plan, t: &str) -> &'a str {
        cond(p, t).reason.as_deref().unwrap()
    }

    /// Applies plans like the async layer, and plays the ReplicaSet controller: pods appear
    /// at once, become available one step later, and are removed at once on scale-down.
    struct Sim {
        d: Deployment,
        rss: Vec<ReplicaSet>,
        t: i64,
    }

    impl Sim {
        fn apply(&mut self, p: &Plan) {
            if let Some(mut rs) = p.create.clone() {
                rs.metadata.uid = Some(format!("uid-{}", name(&rs)));
                rs.metadata.creation_timestamp = Some(Time(ts(self.t)));
                rs.status = Some(ReplicaSetStatus::default());
                self.rss.push(rs);
            }
            for (n, replicas) in &p.scale {
                let rs = self.rss.iter_mut().find(|r| &name(r) == n).unwrap();
                rs.spec.as_mut().unwrap().replicas = Some(*replicas);
                rs.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .extend(rs_annotations(&self.d));
            }
            for (n, ann) in &p.annotate {
                let rs = self.rss.iter_mut().find(|r| &name(r) == n).unwrap();
                rs.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .extend(ann.clone());
            }
            self.rss.retain(|r| !p.delete.contains(&name(r)));
            self.d
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .extend(p.deployment_annotations.clone());
            self.d.status = Some(p.status.clone());
        }

        fn rs_controller(&mut self) {
            for rs in &mut self.rss {
                let spec = rs_spec(rs);
                let st = rs.status.get_or_insert_with(Default::default);
                let avail = spec.min(st.replicas);
                st.replicas = spec;
                st.ready_replicas = Some(avail);
                st.available_replicas = Some(avail);
            }
        }

        fn step(&mut self) -> Plan {
            self.t += 10;
            let p = plan(&self.d, &self.rss, &[], ts(self.t));
            self.apply(&p);
            p
        }
    }

    #[test]
    fn first_plan_creates_new_rs() {
        let d = deployment(3, "nginx:1");
        let p = plan(&d, &[], &[], ts(0));
        let hash = pod_template_hash(&spec_mut(&mut d.clone()).template, None);
        let rs = p.create.clone().unwrap();
        assert_eq!(name(&rs), format!("web-{hash}"));
        assert_eq!(rs.metadata.namespace.as_deref(), Some("default"));
        let want_labels = map(&[("app", "web"), (POD_TEMPLATE_HASH, &hash)]);
        assert_eq!(rs.metadata.labels.as_ref(), Some(&want_labels));
        let rspec = rs.spec.as_ref().unwrap();
        assert_eq!(rspec.selector.match_labels.as_ref(), Some(&want_labels));
        assert_eq!(
            rspec
                .template
                .as_ref()
                .unwrap()
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref(),
            Some(&want_labels)
        );
        assert_eq!(rspec.replicas, Some(3));
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Deployment", "web", D_UID)
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        let ann = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann.get(REVISION).map(String::as_str), Some("1"));
        assert_eq!(ann.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
        assert_eq!(ann.get(MAX_REPLICAS).map(String::as_str), Some("4"));
        assert_eq!(p.deployment_annotations, map(&[(REVISION, "1")]));
        assert!(p.scale.is_empty());
        let prog = cond(&p, PROGRESSING);
        assert_eq!(prog.status, "True");
        assert_eq!(prog.reason.as_deref(), Some(NEW_RS_CREATED));
        assert_eq!(
            prog.message.clone().unwrap(),
            format!("Created new replica set \"web-{hash}\"")
        );
        // maxUnavailable = floor(25% of 3) = 0, nothing available yet
        assert_eq!(cond(&p, AVAILABLE).status, "False");
        assert_eq!(reason(&p, AVAILABLE), MIN_UNAVAILABLE);
        assert_eq!(p.status.observed_generation, Some(1));
        assert_eq!(p.status.replicas, Some(0));
        assert_eq!(p.status.unavailable_replicas, Some(3));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(600)));
    }

    #[test]
    fn deployment_annotations_copied_to_new_rs() {
        let mut d = deployment(1, "nginx:1");
        d.metadata.annotations = Some(map(&[
            ("team", "a"),
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
            (REVISION, "9"),
        ]));
        let rs = plan(&d, &[], &[], ts(0)).create.unwrap();
        let ann = rs.metadata.annotations.unwrap();
        assert_eq!(ann.get("team").map(String::as_str), Some("a"));
        assert!(!ann.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert_eq!(ann.get(REVISION).map(String::as_str), Some("1"));
    }

    #[test]
    fn fencepost_resolution() {
        let mut d = deployment(4, "a");
        assert_eq!(fenceposts(d.spec.as_ref().unwrap()), (1, 1));
        spec_mut(&mut d).replicas = Some(10);
        assert_eq!(fenceposts(d.spec.as_ref().unwrap()), (3, 2));
        strategy(&mut d, IntOrString::Int(0), IntOrString::Int(0));
        assert_eq!(fenceposts(d.spec.as_ref().unwrap()), (0, 1));
        strategy(
            &mut d,
            IntOrString::String("0%".into()),
            IntOrString::String("0%".into()),
        );
        assert_eq!(fenceposts(d.spec.as_ref().unwrap()), (0, 1));
        strategy(
            &mut d,
            IntOrString::String("50%".into()),
            IntOrString::String("50%".into()),
        );
        spec_mut(&mut d).replicas = Some(5);
        assert_eq!(fenceposts(d.spec.as_ref().unwrap()), (3, 2));
        strategy(&mut d, IntOrString::Int(2), IntOrString::Int(9));
        assert_eq!(fenceposts(d.spec.as_ref().unwrap()), (2, 5));
        spec_mut(&mut d).strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        assert_eq!(fenceposts(d.spec.as_ref().unwrap()), (0, 0));
        assert_eq!(
            rs_annotations(&d),
            map(&[(DESIRED_REPLICAS, "5"), (MAX_REPLICAS, "5")])
        );
    }

    #[test]
    fn max_surge_zero_max_unavailable_zero_means_one_unavailable() {
        let mut d = deployment(4, "v2");
        strategy(&mut d, IntOrString::Int(0), IntOrString::Int(0));
        let old = owned_rs(&d, "v1", 1, 4, 0);
        let p = plan(&d, std::slice::from_ref(&old), &[], ts(10));
        // no surge: the new RS starts at 0, one old replica may go
        let new = p.create.unwrap();
        assert_eq!(rs_spec(&new), 0);
        assert_eq!(
            new.metadata.annotations.unwrap().get(REVISION).unwrap(),
            "2"
        );
        assert_eq!(p.scale, vec![(name(&old), 3)]);
        assert_eq!(p.deployment_annotations, map(&[(REVISION, "2")]));
    }

    #[test]
    fn rolling_update_walk_respects_surge_and_unavailability() {
        let mut d = deployment(4, "v1");
        let old = owned_rs(&d, "v1", 1, 4, 0);
        d.metadata.annotations = Some(map(&[(REVISION, "1")]));
        // settle on v1 first
        let mut sim = Sim {
            d: d.clone(),
            rss: vec![old.clone()],
            t: 0,
        };
        let p = sim.step();
        assert!(p.create.is_none() && p.scale.is_empty());
        // FoundNewReplicaSet, then immediately complete
        assert_eq!(reason(&p, PROGRESSING), NEW_RS_AVAILABLE);
        let settled_ltt = cond(&p, PROGRESSING).last_transition_time.clone();
        assert_eq!(settled_ltt, Some(Time(ts(10))));

        // template change
        spec_mut(&mut sim.d).template = template("v2");
        sim.d.metadata.generation = Some(2);
        let p = sim.step();
        let new = p.create.clone().unwrap();
        assert_eq!(rs_spec(&new), 1, "maxSurge 25% of 4 = 1");
        assert_eq!(
            new.metadata
                .annotations
                .as_ref()
                .unwrap()
                .get(REVISION)
                .unwrap(),
            "2"
        );
        // 4 available > minAvailable 3: one old replica goes in the same pass
        assert_eq!(p.scale, vec![(name(&old), 3)]);
        assert_eq!(p.deployment_annotations, map(&[(REVISION, "2")]));
        assert_eq!(reason(&p, PROGRESSING), NEW_RS_CREATED);
        let created_ltt = cond(&p, PROGRESSING).last_transition_time.clone();

        let mut steps = 0;
        let mut saw_updated = false;
        let mut history = vec![(3, 1)];
        loop {
            steps += 1;
            assert!(steps < 40, "rollout did not finish");
            // invariants after the controller's writes
            let total: i32 = sim.rss.iter().map(rs_spec).sum();
            assert!(total <= 5, "surge exceeded: {total}");
            sim.rs_controller();
            let available: i32 = sim.rss.iter().map(rs_avail).sum();
            assert!(available >= 3, "unavailability exceeded: {available}");
            let p = sim.step();
            let total: i32 = sim.rss.iter().map(rs_spec).sum();
            assert!(total <= 5, "surge exceeded: {total}");
            if !p.scale.is_empty() {
                history.push((rs_spec(&sim.rss[0]), rs_spec(&sim.rss[1])));
            }
            if reason(&p, PROGRESSING) == RS_UPDATED {
                saw_updated = true;
                assert_eq!(
                    cond(&p, PROGRESSING).message.clone().unwrap(),
                    format!("ReplicaSet \"{}\" is progressing.", name(&new))
                );
            }
            if reason(&p, PROGRESSING) == NEW_RS_AVAILABLE {
                let c = cond(&p, PROGRESSING);
                assert_eq!(
                    c.message.clone().unwrap(),
                    format!("ReplicaSet \"{}\" has successfully progressed.", name(&new))
                );
                // True all along since the RS was created: transition time kept
                // Progressing stayed True throughout: transition time never moved
                assert_eq!(c.last_transition_time, created_ltt);
                assert_eq!(created_ltt, settled_ltt);
                assert!(c.last_update_time > c.last_transition_time);
                assert_eq!(p.requeue_after, None);
                break;
            }
        }
        assert!(saw_updated);
        // (old, new) spec.replicas after each step: new grows when a surge slot is free,
        // old shrinks when a new pod became available
        assert_eq!(
            history,
            vec![(3, 1), (3, 2), (2, 2), (2, 3), (1, 3), (1, 4), (0, 4)]
        );
        let specs: Vec<(String, i32)> = sim.rss.iter().map(|r| (name(r), rs_spec(r))).collect();
        assert_eq!(specs, vec![(name(&old), 0), (name(&new), 4)]);
        let st = sim.d.status.clone().unwrap();
        assert_eq!(
            (
                st.replicas,
                st.updated_replicas,
                st.available_replicas,
                st.unavailable_replicas
            ),
            (Some(4), Some(4), Some(4), Some(0))
        );
        assert_eq!(st.observed_generation, Some(2));
        assert_eq!(
            cond(&plan(&sim.d, &sim.rss, &[], ts(1000)), AVAILABLE).status,
            "True"
        );
        // a further plan is a no-op
        let p = plan(&sim.d, &sim.rss, &[], ts(1000));
        assert!(p.create.is_none() && p.scale.is_empty() && p.delete.is_empty());
        assert!(p.annotate.is_empty());
    }

    #[test]
    fn rolling_update_walk_larger_percentages() {
        // 10 replicas, 30% surge (3), 20% unavailable (2)
        let mut d = deployment(10, "v1");
        strategy(
            &mut d,
            IntOrString::String("30%".into()),
            IntOrString::String("20%".into()),
        );
        let old = owned_rs(&d, "v1", 1, 10, 0);
        let mut sim = Sim {
            d,
            rss: vec![old],
            t: 0,
        };
        spec_mut(&mut sim.d).template = template("v2");
        for _ in 0..40 {
            let p = sim.step();
            let total: i32 = sim.rss.iter().map(rs_spec).sum();
            assert!(total <= 13, "surge exceeded: {total}");
            sim.rs_controller();
            let available: i32 = sim.rss.iter().map(rs_avail).sum();
            assert!(available >= 8, "unavailability exceeded: {available}");
            if p.status.conditions.is_some() && reason(&p, PROGRESSING) == NEW_RS_AVAILABLE {
                let specs: Vec<i32> = sim.rss.iter().map(rs_spec).collect();
                assert_eq!(specs, vec![0, 10]);
                return;
            }
        }
        panic!("rollout did not finish");
    }

    #[test]
    fn unhealthy_old_replicas_cleaned_up_first() {
        // old RS wants 4 but only 2 are available; the new RS is fully up at 1
        let mut d = deployment(4, "v2");
        let mut old = owned_rs(&d, "v1", 1, 4, 0);
        old.status.as_mut().unwrap().available_replicas = Some(2);
        let new = owned_rs(&d, "v2", 2, 1, 5);
        d.metadata.annotations = Some(map(&[(REVISION, "2")]));
        let p = plan(&d, &[old.clone(), new.clone()], &[], ts(10));
        // all=5, minAvailable=3, newUnavailable=0 → may scale down 2: both unhealthy ones;
        // then available 3 is not above 3 → no healthy replica goes
        assert_eq!(p.scale, vec![(name(&old), 2)]);
    }

    #[test]
    fn recreate_waits_for_old_pods() {
        let mut d = deployment(3, "v2");
        spec_mut(&mut d).strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        let mut old = owned_rs(&d, "v1", 1, 3, 0);
        let p = plan(&d, std::slice::from_ref(&old), &[], ts(10));
        assert_eq!(p.scale, vec![(name(&old), 0)]);
        assert!(p.create.is_none());

        // scaled to 0 but the RS still reports pods
        old.spec.as_mut().unwrap().replicas = Some(0);
        let p = plan(&d, std::slice::from_ref(&old), &[], ts(20));
        assert!(p.create.is_none() && p.scale.is_empty());

        // status says 0, but a terminating pod of the old RS is still there
        old.status = Some(ReplicaSetStatus::default());
        let mut pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-old-1".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: name(&old),
                    uid: old.metadata.uid.clone().unwrap(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                deletion_timestamp: Some(Time(ts(15))),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
        };
        let p = plan(&d, std::slice::from_ref(&old), &[pod.clone()], ts(30));
        assert!(p.create.is_none());

        // a finished pod does not block
        pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let p = plan(&d, std::slice::from_ref(&old), &[pod], ts(40));
        let new = p.create.unwrap();
        assert_eq!(rs_spec(&new), 3);
        assert_eq!(
            new.metadata
                .annotations
                .as_ref()
                .unwrap()
                .get(MAX_REPLICAS)
                .unwrap(),
            "3"
        );
        assert_eq!(p.deployment_annotations, map(&[(REVISION, "2")]));

        // an existing but scaled-down new RS is scaled up once the old pods are gone
        let mut new_rs = owned_rs(&d, "v2", 2, 0, 35);
        new_rs.status = Some(ReplicaSetStatus::default());
        let p = plan(&d, &[old, new_rs.clone()], &[], ts(50));
        assert!(p.create.is_none());
        assert_eq!(p.scale, vec![(name(&new_rs), 3)]);
    }

    #[test]
    fn rollback_reuses_old_rs_and_bumps_revision() {
        let mut d = deployment(3, "v1");
        let mut v1 = owned_rs(&d, "v1", 1, 0, 0);
        v1.status = Some(ReplicaSetStatus::default());
        let v2 = owned_rs(&d, "v2", 2, 3, 100);
        d.metadata.annotations = Some(map(&[(REVISION, "2")]));
        // `kubectl rollout undo`: the template is v1 again
        let p = plan(&d, &[v1.clone(), v2.clone()], &[], ts(200));
        assert!(p.create.is_none());
        assert_eq!(
            p.annotate,
            vec![(name(&v1), map(&[(REVISION, "3"), (REVISION_HISTORY, "1")]))]
        );
        assert_eq!(p.deployment_annotations, map(&[(REVISION, "3")]));
        // rolling: surge 1 → the reused RS grows by one first
        assert_eq!(p.scale, vec![(name(&v1), 1)]);
        assert_eq!(p.status.updated_replicas, Some(0));

        // already at the max revision: no further bump
        let mut v1b = v1.clone();
        v1b.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(REVISION.into(), "3".into());
        let p = plan(&d, &[v1b, v2], &[], ts(210));
        assert!(p.annotate.is_empty());
        assert_eq!(p.deployment_annotations, map(&[(REVISION, "3")]));
    }

    fn complete_status(replicas: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(replicas),
            updated_replicas: Some(replicas),
            ready_replicas: Some(replicas),
            available_replicas: Some(replicas),
            ..Default::default()
        }
    }

    #[test]
    fn revision_history_cleanup_oldest_revision_first() {
        let mut d = deployment(2, "cur");
        spec_mut(&mut d).revision_history_limit = Some(2);
        d.status = Some(complete_status(2));
        let zero = |image: &str, rev: i64, created: i64| {
            let mut r = owned_rs(&d, image, rev, 0, created);
            r.status = Some(ReplicaSetStatus {
                observed_generation: Some(1),
                ..Default::default()
            });
            r
        };
        let cur = owned_rs(&d, "cur", 6, 2, 600);
        // input order shuffled; revisions 1..5 (creation order differs from revision)
        let r3 = zero("c", 3, 100);
        let r1 = zero("a", 1, 300);
        let r5 = zero("e", 5, 500);
        let r2 = zero("b", 2, 200);
        let r4 = zero("d", 4, 400);
        let all = vec![r3.clone(), cur.clone(), r1.clone(), r5, r2.clone(), r4];
        let p = plan(&d, &all, &[], ts(1000));
        assert!(p.scale.is_empty());
        assert_eq!(p.delete, vec![name(&r1), name(&r2), name(&r3)]);

        // one of the candidates still has pods: it is skipped, not replaced
        let mut busy = all.clone();
        busy[4].status.as_mut().unwrap().replicas = 1; // r2
        let p = plan(&d, &busy, &[], ts(1000));
        assert_eq!(p.delete, vec![name(&r1), name(&r3)]);

        // default limit 10: nothing to delete
        let mut d10 = d.clone();
        spec_mut(&mut d10).revision_history_limit = None;
        assert!(plan(&d10, &all, &[], ts(1000)).delete.is_empty());

        // paused: never
        let mut paused = d.clone();
        spec_mut(&mut paused).paused = Some(true);
        assert!(plan(&paused, &all, &[], ts(1000)).delete.is_empty());

        // rollout not complete: not yet
        let mut incomplete = d.clone();
        incomplete.status.as_mut().unwrap().available_replicas = Some(1);
        assert!(plan(&incomplete, &all, &[], ts(1000)).delete.is_empty());
    }

    #[test]
    fn paused_only_scales() {
        let mut d = deployment(3, "v1");
        let old = owned_rs(&d, "v1", 1, 3, 0);
        spec_mut(&mut d).template = template("v2");
        spec_mut(&mut d).paused = Some(true);
        spec_mut(&mut d).replicas = Some(5);
        d.metadata.annotations = Some(map(&[(REVISION, "1")]));
        let p = plan(&d, std::slice::from_ref(&old), &[], ts(10));
        assert!(p.create.is_none());
        assert_eq!(p.scale, vec![(name(&old), 5)]);
        assert!(p.delete.is_empty());
        let c = cond(&p, PROGRESSING);
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("Unknown", Some(PAUSED))
        );
        assert_eq!(p.deployment_annotations, map(&[(REVISION, "1")]));
        assert_eq!(p.requeue_after, None);

        // resume: the rollout starts
        let mut d2 = d.clone();
        d2.status = Some(p.status.clone());
        spec_mut(&mut d2).paused = None;
        let mut old5 = old.clone();
        old5.spec.as_mut().unwrap().replicas = Some(5);
        old5.metadata
            .annotations
            .as_mut()
            .unwrap()
            .extend(rs_annotations(&d2));
        let p = plan(&d2, &[old5], &[], ts(20));
        assert!(p.create.is_some());
        // a just-created RS makes NewReplicaSetCreated replace the resumed reason
        assert_eq!(reason(&p, PROGRESSING), NEW_RS_CREATED);

        // resume without a rollout to do: DeploymentResumed
        let mut d3 = deployment(3, "v1");
        d3.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(3),
            updated_replicas: Some(3),
            ready_replicas: Some(3),
            available_replicas: Some(2),
            conditions: Some(vec![DeploymentCondition {
                type_: PROGRESSING.into(),
                status: "Unknown".into(),
                reason: Some(PAUSED.into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let mut stable = owned_rs(&d3, "v1", 1, 3, 0);
        stable.status.as_mut().unwrap().available_replicas = Some(2);
        let p = plan(&d3, &[stable], &[], ts(30));
        assert_eq!(reason(&p, PROGRESSING), RESUMED);
        assert_eq!(cond(&p, PROGRESSING).status, "Unknown");
    }

    #[test]
    fn proportional_scaling_up_and_down() {
        // mid-rollout at 10 replicas (surge 3): old 8, new 5
        let mut d = deployment(10, "v2");
        let mut old = owned_rs(&d, "v1", 1, 8, 0);
        let mut new = owned_rs(&d, "v2", 2, 5, 100);
        for rs in [&mut old, &mut new] {
            let ann = rs.metadata.annotations.as_mut().unwrap();
            assert_eq!(ann.get(DESIRED_REPLICAS).unwrap(), "10");
            assert_eq!(ann.get(MAX_REPLICAS).unwrap(), "13");
        }
        spec_mut(&mut d).replicas = Some(15); // surge 4 → 19 allowed, 6 to add
        let p = plan(&d, &[old.clone(), new.clone()], &[], ts(200));
        assert!(p.create.is_none());
        // 8*19/13 = 11.7 → 12 (+4); 5*19/13 = 7.3 → 7 (+2)
        assert_eq!(p.scale, vec![(name(&old), 12), (name(&new), 7)]);

        // and back down to 10 from 12/7 (annotated 15/19): 13 allowed, 6 to remove
        for (rs, n) in [(&mut old, 12), (&mut new, 7)] {
            rs.spec.as_mut().unwrap().replicas = Some(n);
            rs.metadata
                .annotations
                .as_mut()
                .unwrap()
                .extend(rs_annotations(&d));
        }
        spec_mut(&mut d).replicas = Some(10);
        let p = plan(&d, &[old.clone(), new.clone()], &[], ts(300));
        // 12*13/19 = 8.2 → 8 (-4); 7*13/19 = 4.8 → 5 (-2)
        assert_eq!(p.scale, vec![(name(&old), 8), (name(&new), 5)]);
    }

    #[test]
    fn proportional_scaling_leftovers_go_to_largest() {
        // three RSs 4/3/3 annotated for 10 (surge 0 for simplicity)
        let mut d = deployment(10, "v3");
        strategy(&mut d, IntOrString::Int(0), IntOrString::Int(1));
        let mut a = owned_rs(&d, "v1", 1, 4, 0);
        let mut b = owned_rs(&d, "v2", 2, 3, 10);
        let mut c = owned_rs(&d, "v3", 3, 3, 20);
        for rs in [&mut a, &mut b, &mut c] {
            rs.metadata
                .annotations
                .as_mut()
                .unwrap()
                .extend(rs_annotations(&d));
        }
        spec_mut(&mut d).replicas = Some(11); // +1
        let p = plan(&d, &[a.clone(), b.clone(), c.clone()], &[], ts(100));
        // 4*11/10 = 4.4 → +0; 3.3 → +0 each; the leftover 1 goes to the largest (a)
        assert_eq!(
            p.scale,
            vec![(name(&a), 5), (name(&b), 3), (name(&c), 3)],
            "sizes-equal entries refresh annotations"
        );
    }

    #[test]
    fn single_active_rs_scaled_directly() {
        let mut d = deployment(3, "v1");
        let rs = owned_rs(&d, "v1", 1, 3, 0);
        spec_mut(&mut d).replicas = Some(7);
        let p = plan(&d, std::slice::from_ref(&rs), &[], ts(10));
        assert_eq!(p.scale, vec![(name(&rs), 7)]);
        assert!(p.create.is_none());
    }

    #[test]
    fn progress_deadline_exceeded() {
        // stuck mid-rollout: new RS at 2 with nothing available, old at 3, total = 4 + surge
        let mut d = deployment(4, "v2");
        let old = owned_rs(&d, "v1", 1, 3, 0);
        let mut new = owned_rs(&d, "v2", 2, 2, 10);
        new.status = Some(ReplicaSetStatus {
            replicas: 2,
            ready_replicas: Some(0),
            available_replicas: Some(0),
            ..Default::default()
        });
        d.metadata.annotations = Some(map(&[(REVISION, "2")]));
        d.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(5),
            updated_replicas: Some(2),
            ready_replicas: Some(3),
            available_replicas: Some(3),
            conditions: Some(vec![DeploymentCondition {
                type_: PROGRESSING.into(),
                status: "True".into(),
                reason: Some(RS_UPDATED.into()),
                message: Some("x".into()),
                last_update_time: Some(Time(ts(100))),
                last_transition_time: Some(Time(ts(50))),
            }]),
            ..Default::default()
        });
        let rss = [old, new.clone()];
        let p = plan(&d, &rss, &[], ts(400));
        assert!(p.scale.is_empty() && p.create.is_none());
        assert_eq!(reason(&p, PROGRESSING), RS_UPDATED);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(300)));
        // exactly at the deadline: not yet
        let p = plan(&d, &rss, &[], ts(700));
        assert_eq!(reason(&p, PROGRESSING), RS_UPDATED);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));
        let p = plan(&d, &rss, &[], ts(701));
        let c = cond(&p, PROGRESSING);
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some(TIMED_OUT));
        assert_eq!(
            c.message.clone().unwrap(),
            format!("ReplicaSet \"{}\" has timed out progressing.", name(&new))
        );
        assert_eq!(c.last_transition_time, Some(Time(ts(701))));
        assert_eq!(p.requeue_after, None);
        // Available: 3 >= 4 - 1
        assert_eq!(reason(&p, AVAILABLE), MIN_AVAILABLE);

        // custom deadline
        let mut d30 = d.clone();
        spec_mut(&mut d30).progress_deadline_seconds = Some(30);
        assert_eq!(
            reason(&plan(&d30, &rss, &[], ts(131)), PROGRESSING),
            TIMED_OUT
        );

        // progress resets the clock but keeps the transition time
        let mut better = rss.clone();
        better[1].status.as_mut().unwrap().available_replicas = Some(1);
        let p = plan(&d, &better, &[], ts(701));
        let c = cond(&p, PROGRESSING);
        assert_eq!(c.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(c.last_update_time, Some(Time(ts(701))));
        assert_eq!(c.last_transition_time, Some(Time(ts(50))));
    }

    #[test]
    fn conditions_keep_transition_time() {
        let mut d = deployment(2, "v1");
        let rs = owned_rs(&d, "v1", 1, 2, 0);
        d.metadata.annotations = Some(map(&[(REVISION, "1")]));
        let p1 = plan(&d, std::slice::from_ref(&rs), &[], ts(10));
        // no Progressing condition yet and nothing to do: FoundNewReplicaSet, then complete
        assert_eq!(reason(&p1, PROGRESSING), NEW_RS_AVAILABLE);
        assert_eq!(reason(&p1, AVAILABLE), MIN_AVAILABLE);
        assert_eq!(
            cond(&p1, AVAILABLE).last_transition_time,
            Some(Time(ts(10)))
        );
        d.status = Some(p1.status.clone());
        let p2 = plan(&d, std::slice::from_ref(&rs), &[], ts(20));
        assert_eq!(p2.status, p1.status, "steady state is stable");
        // availability drops: status flips, transition time moves
        let mut sick = rs.clone();
        sick.status.as_mut().unwrap().available_replicas = Some(0);
        let p3 = plan(&d, &[sick], &[], ts(30));
        let c = cond(&p3, AVAILABLE);
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some(MIN_UNAVAILABLE))
        );
        assert_eq!(c.last_transition_time, Some(Time(ts(30))));
        assert_eq!(p3.status.unavailable_replicas, Some(2));
        // the completed rollout is not re-estimated
        assert_eq!(reason(&p3, PROGRESSING), NEW_RS_AVAILABLE);
    }

    #[test]
    fn found_new_replica_set() {
        let d = deployment(4, "v1");
        let mut rs = owned_rs(&d, "v1", 1, 4, 0);
        rs.status = Some(ReplicaSetStatus::default());
        let p = plan(&d, std::slice::from_ref(&rs), &[], ts(10));
        let c = cond(&p, PROGRESSING);
        assert_eq!(c.reason.as_deref(), Some(FOUND_NEW_RS));
        assert_eq!(
            c.message.clone().unwrap(),
            format!("Found new replica set \"{}\"", name(&rs))
        );
        assert_eq!(p.deployment_annotations, map(&[(REVISION, "1")]));
    }

    #[test]
    fn replica_failure_condition_copied() {
        let d = deployment(2, "v1");
        let mut rs = owned_rs(&d, "v1", 1, 2, 0);
        rs.status.as_mut().unwrap().conditions = Some(vec![ReplicaSetCondition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some("quota".into()),
            last_transition_time: Some(Time(ts(5))),
        }]);
        let p = plan(&d, &[rs], &[], ts(10));
        assert_eq!(reason(&p, REPLICA_FAILURE), "FailedCreate");
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let t = template("v1");
        let h = pod_template_hash(&t, None);
        assert_eq!(h, pod_template_hash(&t.clone(), None));
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(h, pod_template_hash(&template("v2"), None));
        assert_ne!(h, pod_template_hash(&t, Some(0)));
        assert_ne!(
            pod_template_hash(&t, Some(0)),
            pod_template_hash(&t, Some(1))
        );
        assert_eq!(
            pod_template_hash(&t, Some(1)),
            pod_template_hash(&t, Some(1))
        );
        // FNV-1a reference values
        assert_eq!(fnv1a32(2_166_136_261, b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(2_166_136_261, b"a"), 0xe40c_292c);
        // 48 % 27 = 21 → '4', ...
        assert_eq!(safe_encode("0123"), "4567");
    }

    #[test]
    fn hash_collision_detection() {
        let d = deployment(1, "v1");
        let mine = owned_rs(&d, "v1", 1, 1, 0);
        assert!(!hash_collision(&d, &mine));
        let mut other_template = mine.clone();
        other_template.spec.as_mut().unwrap().template = Some(template("v9"));
        assert!(hash_collision(&d, &other_template));
        let mut not_mine = mine.clone();
        not_mine.metadata.owner_references = None;
        assert!(hash_collision(&d, &not_mine));

        // in plan: an owned RS holds the name with another template → bump, no create
        let mut squatter = owned_rs(&d, "v0", 1, 0, 0);
        squatter.metadata.name = plan(&d, &[], &[], ts(0)).create.unwrap().metadata.name;
        squatter.status = Some(ReplicaSetStatus::default());
        let p = plan(&d, std::slice::from_ref(&squatter), &[], ts(10));
        assert!(p.create.is_none());
        assert_eq!(p.status.collision_count, Some(1));
        assert_eq!(p.requeue_after, Some(Duration::ZERO));
        let mut d2 = d.clone();
        d2.status = Some(p.status);
        let p = plan(&d2, std::slice::from_ref(&squatter), &[], ts(20));
        let created = p.create.unwrap();
        assert_ne!(created.metadata.name, squatter.metadata.name);
        assert_eq!(
            name(&created),
            format!("web-{}", pod_template_hash(&template("v1"), Some(1)))
        );
        assert_eq!(p.status.collision_count, Some(1));
    }

    #[test]
    fn template_equality_ignores_hash_label() {
        let d = deployment(1, "v1");
        let rs = owned_rs(&d, "v1", 1, 1, 0);
        let tpl = rs_template(&rs);
        assert!(tpl
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()
            .contains_key(POD_TEMPLATE_HASH));
        assert!(templates_equal(&tpl, &template("v1")));
        assert!(!templates_equal(&tpl, &template("v2")));
    }

    #[test]
    fn extreme_values_do_not_panic() {
        for replicas in [0, 1, i32::MAX] {
            let mut d = deployment(replicas, "v2");
            strategy(
                &mut d,
                IntOrString::String("100000%".into()),
                IntOrString::String("bogus".into()),
            );
            d.status = Some(DeploymentStatus {
                replicas: Some(i32::MIN),
                updated_replicas: Some(i32::MAX),
                collision_count: Some(i32::MAX),
                ..Default::default()
            });
            let mut a = owned_rs(&deployment(1, "v1"), "v1", i64::MAX, 0, 0);
            a.spec.as_mut().unwrap().replicas = Some(i32::MAX);
            a.status.as_mut().unwrap().available_replicas = Some(i32::MIN);
            a.metadata
                .annotations
                .as_mut()
                .unwrap()
                .extend(map(&[(MAX_REPLICAS, "-5"), (DESIRED_REPLICAS, "x")]));
            let mut b = owned_rs(&deployment(1, "v3"), "v3", -4, 0, 5);
            b.spec.as_mut().unwrap().replicas = Some(i32::MAX);
            b.status.as_mut().unwrap().replicas = i32::MAX;
            for paused in [false, true] {
                spec_mut(&mut d).paused = Some(paused);
                let p = plan(&d, &[a.clone(), b.clone()], &[], ts(0));
                assert!(p.scale.iter().all(|(_, n)| *n >= 0));
            }
            spec_mut(&mut d).strategy = Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            });
            let _ = plan(&d, &[a.clone(), b.clone()], &[], ts(0));
        }
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let mut d = deployment(1, "v1");
        spec_mut(&mut d).selector = LabelSelector::default();
        let p = plan(&d, &[], &[], ts(0));
        assert!(p.create.is_none());
        assert_eq!(p.status.observed_generation, Some(1));
        let p = plan(&Deployment::default(), &[ReplicaSet::default()], &[], ts(0));
        assert!(p.create.is_none());
        // deleting: status only
        let mut d = deployment(2, "v2");
        let old = owned_rs(&d, "v1", 1, 2, 0);
        d.metadata.deletion_timestamp = Some(Time(ts(0)));
        let p = plan(&d, &[old], &[], ts(1));
        assert!(p.create.is_none() && p.scale.is_empty());
        assert_eq!(p.status.replicas, Some(2));
        // zero replicas
        let d = deployment(0, "v1");
        let p = plan(&d, &[], &[], ts(0));
        assert_eq!(p.create.map(|r| rs_spec(&r)), Some(0));
    }
}
