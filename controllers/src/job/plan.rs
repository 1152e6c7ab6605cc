//! What a Job needs done: a pure function of the job, the pods of its namespace and the
//! current time.
//!
//! One pass of [`job_plan`] follows the Kubernetes Job controller (`pkg/controller/job`):
//!
//! - claim pods: owned pods that still match the selector; orphans that match are adopted,
//!   owned pods that stopped matching are released;
//! - count: `succeeded` (distinct completed indexes for `Indexed` jobs), `failed` (Failed
//!   pods, and, unless `podReplacementPolicy: Failed`, pods deleted before they finished),
//!   `active`, `ready`, `terminating`. Counts never go down: finished pods are kept until the
//!   garbage collector removes them with the Job, and a count taken from the status is the
//!   floor if one was removed early;
//! - decide the outcome once: `failed > backoffLimit` (for `restartPolicy: OnFailure` also
//!   container restarts) → `FailureTarget` BackoffLimitExceeded; running longer than
//!   `activeDeadlineSeconds` since `startTime` → `FailureTarget` DeadlineExceeded; enough
//!   completions → `SuccessCriteriaMet` CompletionsReached. Then active pods are deleted, and
//!   once none is left running or terminating the terminal condition (`Failed`, or `Complete`
//!   with `completionTime`) follows with the same reason, as Kubernetes 1.31+ does;
//! - otherwise keep `min(parallelism, remaining)` pods active, creating replacements only
//!   after the exponential back-off (10 s doubling per failure since the last success,
//!   capped at 6 min) from the last failure;
//! - `suspend` deletes the active pods (not counted as failures) and sets `Suspended`;
//!   resuming resets `startTime`, so the deadline restarts;
//! - a finished Job with `ttlSecondsAfterFinished` is deleted that long after it finished.
//!
//! Not implemented: `podFailurePolicy` rules, `backoffLimitPerIndex`/`maxFailedIndexes`,
//! `successPolicy`, and the pod finalizers with `uncountedTerminatedPods` (a running pod
//! deleted without the cache ever seeing it terminating is not counted as failed).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};

use crate::replicaset::diff::{controller_ref, is_pod_ready, selector_matches};

pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
pub const LEGACY_JOB_NAME: &str = "job-name";
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The `spec.managedBy` value of jobs this controller handles (also when unset).
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";
/// The first back-off after a failure; doubles per further failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);
/// The most pods created or deleted in one pass.
pub const BURST: usize = 500;

pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const COMPLETIONS_REACHED: &str = "CompletionsReached";
const BACKOFF_MESSAGE: &str = "Job has reached the specified backoff limit";
const DEADLINE_MESSAGE: &str = "Job was active longer than specified deadline";
const COMPLETIONS_MESSAGE: &str = "Reached expected number of succeeded pods";

/// An event to record about the job once the status is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Note {
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: false,
            reason,
            message: message.into(),
        }
    }

    pub fn warning(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: true,
            reason,
            message: message.into(),
        }
    }
}

/// The decisions of one Job sync pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Orphan pods to adopt (add a controller ownerReference to the job).
    pub adopt: Vec<String>,
    /// Owned pods that no longer match the selector (remove the ownerReference).
    pub release: Vec<String>,
    /// Pods to create from the template: `None` for NonIndexed jobs, else the completion
    /// index.
    pub create: Vec<Option<i32>>,
    /// Owned pods to delete, by name.
    pub delete: Vec<String>,
    /// The status the job should carry after this pass (counting the creations and
    /// deletions above as done).
    pub status: JobStatus,
    /// Events to record once the status is written.
    pub notes: Vec<Note>,
    /// When to look again even if nothing changes (deadline, back-off, TTL).
    pub requeue_after: Option<Duration>,
    /// The job finished and its TTL ran out: delete it.
    pub delete_job: bool,
}

impl Plan {
    fn requeue(&mut self, d: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(d, |r| r.min(d)));
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_finished_pod(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !is_finished_pod(pod)
}

fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !is_finished_pod(pod)
}

/// The condition of this type, if it is True.
pub fn condition_true<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the job reached `Complete` or `Failed`.
pub fn is_finished(job: &Job) -> bool {
    job.status.as_ref().is_some_and(|s| {
        condition_true(s, "Complete").is_some() || condition_true(s, "Failed").is_some()
    })
}

/// When a finished job finished: `completionTime`, else the terminal condition's transition.
pub fn finished_at(status: &JobStatus) -> Option<Timestamp> {
    if condition_true(status, "Complete").is_some() {
        if let Some(t) = &status.completion_time {
            return Some(t.0);
        }
    }
    condition_true(status, "Complete")
        .or_else(|| condition_true(status, "Failed"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Sets a condition; the transition time changes only when the status does.
fn set_condition(
    conds: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
        {
            return;
        }
        if c.status != status {
            c.last_transition_time = Some(Time(now));
        }
        c.status = status.to_string();
        c.reason = Some(reason.to_string());
        c.message = Some(message.to_string());
        c.last_probe_time = Some(Time(now));
        return;
    }
    conds.push(JobCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

fn add_secs(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs))
        .unwrap_or(if secs < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
}

fn until(t: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn nonzero(n: usize) -> Option<i32> {
    (n > 0).then(|| to_i32(n))
}

/// The selector the job's pods are claimed with: `spec.selector`, or (when the apiserver
/// did not generate one and the selector is not manual) the controller-uid label.
pub fn effective_selector(job: &Job) -> LabelSelector {
    let spec = job.spec.as_ref();
    if let Some(sel) = spec.and_then(|s| s.selector.clone()) {
        return sel;
    }
    if spec.and_then(|s| s.manual_selector) == Some(true) {
        return LabelSelector::default();
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    LabelSelector {
        match_labels: Some(BTreeMap::from([(CONTROLLER_UID.to_string(), uid)])),
        match_expressions: None,
    }
}

/// The completion index of a pod (annotation, else label).
pub fn pod_index(pod: &Pod) -> Option<i32> {
    let from = |m: Option<&BTreeMap<String, String>>| {
        m.and_then(|m| m.get(COMPLETION_INDEX))
            .and_then(|v| v.parse::<i32>().ok())
    };
    from(pod.metadata.annotations.as_ref()).or_else(|| from(pod.metadata.labels.as_ref()))
}

/// Parses `completedIndexes` ("1,3-5,7"); unparseable parts are skipped.
pub fn parse_indexes(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            for i in a.max(0)..=b.min(completions - 1) {
                out.insert(i);
            }
        }
    }
    out
}

/// Formats indexes as `completedIndexes` does: sorted intervals, "1,3-5,7".
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// When a pod finished: the latest container termination, else the Ready=False transition,
/// else its deletion or creation time.
fn finish_time(pod: &Pod) -> Option<Timestamp> {
    let st = pod.status.as_ref();
    let containers = st
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    containers
        .or_else(|| {
            st.and_then(|s| s.conditions.as_ref())
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.type_ == "Ready" && c.status == "False")
                })
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
        })
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The back-off before the next pod may be created: the number of failures since the last
/// success and when the last failure happened.
fn backoff_until(owned: &[&Pod]) -> Option<Timestamp> {
    let last_success = owned
        .iter()
        .filter(|p| phase(p) == "Succeeded")
        .filter_map(|p| finish_time(p))
        .max();
    let failures: Vec<Timestamp> = owned
        .iter()
        .filter(|p| phase(p) == "Failed")
        .filter_map(|p| finish_time(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = failures.iter().max()?;
    let n = failures.len() as u32;
    let delay = BACKOFF_BASE
        .checked_mul(1u32 << (n - 1).min(16))
        .unwrap_or(BACKOFF_MAX)
        .min(BACKOFF_MAX);
    let secs = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    last.checked_add(SignedDuration::from_millis(secs)).ok()
}

fn restarts(pod: &Pod) -> i64 {
    pod.status.as_ref().map_or(0, |s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .map(|c| i64::from(c.restart_count))
            .sum()
    })
}

fn is_assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// Deletion order: unscheduled, not running, not ready, newest first.
fn victim_key(
    pod: &Pod,
) -> (
    bool,
    bool,
    bool,
    std::cmp::Reverse<Option<Timestamp>>,
    String,
) {
    (
        is_assigned(pod),
        phase(pod) == "Running",
        is_pod_ready(pod),
        std::cmp::Reverse(pod.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Which of several active pods with one index to keep: ready, running, oldest.
fn keeper_key(pod: &Pod) -> (bool, bool, std::cmp::Reverse<Option<Timestamp>>, String) {
    let (_, running, ready, created, name) = victim_key(pod);
    (ready, running, created, name)
}

fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

enum Target {
    Failure { reason: String, message: String },
    Success,
}

/// One pass of the Job controller over `job` and the pods of its namespace.
pub fn job_plan(job: &Job, pods: &[Pod], now: Timestamp) -> Plan {
    let old = job.status.clone().unwrap_or_default();
    let mut plan = Plan {
        status: old.clone(),
        ..Plan::default()
    };
    let Some(spec) = job.spec.as_ref() else {
        return plan;
    };
    if job.metadata.deletion_timestamp.is_some()
        || spec.managed_by.as_deref().is_some_and(|m| m != MANAGED_BY)
    {
        return plan;
    }
    let Some(uid) = job.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
        return plan;
    };
    if is_finished(job) {
        if let (Some(ttl), Some(at)) = (spec.ttl_seconds_after_finished, finished_at(&old)) {
            let expires = add_secs(at, i64::from(ttl));
            if now >= expires {
                plan.delete_job = true;
            } else {
                plan.requeue(until(expires, now));
            }
        }
        return plan;
    }

    // Claim.
    let selector = effective_selector(job);
    let no_labels = BTreeMap::new();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods {
        if let (Some(a), Some(b)) = (&job.metadata.namespace, &pod.metadata.namespace) {
            if a != b {
                continue;
            }
        }
        let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
        let matches = selector_matches(&selector, labels);
        match controller_ref(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(pod);
                } else if pod.metadata.deletion_timestamp.is_none() {
                    plan.release.push(name_of(pod));
                }
            }
            Some(_) => {}
            None => {
                if matches && pod.metadata.deletion_timestamp.is_none() {
                    plan.adopt.push(name_of(pod));
                    owned.push(pod);
                }
            }
        }
    }

    let completions = spec.completions.map(|c| c.max(0));
    let indexed = spec.completion_mode.as_deref() == Some("Indexed") && completions.is_some();
    let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
    let backoff_limit = i64::from(spec.backoff_limit.unwrap_or(6).max(0));
    let suspended = spec.suspend == Some(true);
    let replace_terminating = match spec.pod_replacement_policy.as_deref() {
        Some("Failed") => false,
        Some(_) => true,
        None => spec.pod_failure_policy.is_none(),
    };
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");

    let active: Vec<&Pod> = owned.iter().copied().filter(|p| is_active(p)).collect();
    let terminating: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| is_terminating(p))
        .collect();
    let succeeded_pods: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| phase(p) == "Succeeded")
        .collect();
    let failed_pods = owned.iter().filter(|p| phase(p) == "Failed").count();

    let mut conds = old.conditions.clone().unwrap_or_default();
    let mut target = if let Some(c) = condition_true(&old, "FailureTarget") {
        Some(Target::Failure {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        })
    } else if condition_true(&old, "SuccessCriteriaMet").is_some() {
        Some(Target::Success)
    } else {
        None
    };

    // Counts.
    let succeeded_indexes: BTreeSet<i32> = match (indexed, completions) {
        (true, Some(c)) => {
            let mut set = parse_indexes(old.completed_indexes.as_deref().unwrap_or(""), c);
            set.extend(
                succeeded_pods
                    .iter()
                    .filter_map(|p| pod_index(p))
                    .filter(|i| (0..c).contains(i)),
            );
            set
        }
        _ => BTreeSet::new(),
    };
    let old_succeeded = usize::try_from(old.succeeded.unwrap_or(0)).unwrap_or(0);
    let succeeded = if indexed {
        succeeded_indexes.len()
    } else {
        succeeded_pods.len().max(old_succeeded)
    };
    let count_terminating =
        replace_terminating && !suspended && !matches!(target, Some(Target::Success));
    let failed_now = failed_pods
        + if count_terminating {
            terminating.len()
        } else {
            0
        };
    let old_failed = usize::try_from(old.failed.unwrap_or(0)).unwrap_or(0);
    let mut failed = failed_now.max(old_failed);

    // Suspension and start time.
    let mut start_time = old.start_time.clone();
    if suspended {
        if condition_true(&old, "Suspended").is_none() {
            set_condition(
                &mut conds,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            );
            plan.notes.push(Note::normal("Suspended", "Job suspended"));
        }
    } else {
        if condition_true(&old, "Suspended").is_some() {
            set_condition(
                &mut conds,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            );
            plan.notes.push(Note::normal("Resumed", "Job resumed"));
            start_time = Some(Time(now));
        }
        if start_time.is_none() {
            start_time = Some(Time(now));
        }
    }

    // The outcome, decided once.
    if target.is_none() {
        let restart_total: i64 = active.iter().map(|p| restarts(p)).sum();
        let deadline = spec
            .active_deadline_seconds
            .zip(start_time.as_ref())
            .map(|(ads, st)| add_secs(st.0, ads));
        if to_i64(failed) > backoff_limit || (on_failure && restart_total >= backoff_limit.max(1)) {
            target = Some(Target::Failure {
                reason: BACKOFF_LIMIT_EXCEEDED.into(),
                message: BACKOFF_MESSAGE.into(),
            });
        } else if !suspended && deadline.is_some_and(|d| now >= d) {
            target = Some(Target::Failure {
                reason: DEADLINE_EXCEEDED.into(),
                message: DEADLINE_MESSAGE.into(),
            });
        } else {
            let done = match completions {
                Some(c) => succeeded >= usize::try_from(c).unwrap_or(0),
                None => succeeded > 0 && active.is_empty(),
            };
            if done {
                target = Some(Target::Success);
            } else if let Some(d) = deadline.filter(|_| !suspended) {
                plan.requeue(until(d, now));
            }
        }
        match &target {
            Some(Target::Failure { reason, message }) => {
                set_condition(&mut conds, "FailureTarget", "True", reason, message, now);
            }
            Some(Target::Success) => set_condition(
                &mut conds,
                "SuccessCriteriaMet",
                "True",
                COMPLETIONS_REACHED,
                COMPLETIONS_MESSAGE,
                now,
            ),
            None => {}
        }
    }

    let mut completion_time = old.completion_time.clone();
    if let Some(t) = &target {
        // Stop everything still running; the terminal condition follows once nothing runs.
        plan.delete = active.iter().map(|p| name_of(p)).collect();
        if let Target::Failure { .. } = t {
            if replace_terminating {
                failed = failed.max(failed_now + active.len());
            }
        }
        if active.is_empty() && terminating.is_empty() {
            match t {
                Target::Failure { reason, message } => {
                    set_condition(&mut conds, "Failed", "True", reason, message, now);
                    let reason: &'static str = match reason.as_str() {
                        BACKOFF_LIMIT_EXCEEDED => BACKOFF_LIMIT_EXCEEDED,
                        DEADLINE_EXCEEDED => DEADLINE_EXCEEDED,
                        _ => "Failed",
                    };
                    plan.notes.push(Note::warning(reason, message.clone()));
                }
                Target::Success => {
                    set_condition(
                        &mut conds,
                        "Complete",
                        "True",
                        COMPLETIONS_REACHED,
                        COMPLETIONS_MESSAGE,
                        now,
                    );
                    completion_time = Some(Time(now));
                    plan.notes.push(Note::normal("Completed", "Job completed"));
                }
            }
        }
    } else if suspended {
        plan.delete = active.iter().map(|p| name_of(p)).collect();
    } else {
        let backoff = backoff_until(&owned).filter(|t| *t > now);
        let may_create = backoff.is_none();
        if let Some(t) = backoff {
            plan.requeue(until(t, now));
        }
        if indexed {
            let c = completions.unwrap_or(0);
            manage_indexed(
                &mut plan,
                &active,
                &terminating,
                &succeeded_indexes,
                c,
                parallelism,
                replace_terminating,
                may_create,
            );
        } else {
            let want = match completions {
                Some(c) => {
                    parallelism.min(usize::try_from(c).unwrap_or(0).saturating_sub(succeeded))
                }
                None if succeeded > 0 => active.len(),
                None => parallelism,
            };
            let busy = active.len()
                + if replace_terminating {
                    0
                } else {
                    terminating.len()
                };
            if active.len() > want {
                let mut victims = active.clone();
                victims.sort_by_key(|p| victim_key(p));
                plan.delete = victims
                    .iter()
                    .take((active.len() - want).min(BURST))
                    .map(|p| name_of(p))
                    .collect();
            } else if busy < want && may_create {
                plan.create = vec![None; (want - busy).min(BURST)];
            }
        }
    }

    // Status after this pass.
    let deleted: BTreeSet<&str> = plan.delete.iter().map(String::as_str).collect();
    let remaining: Vec<&&Pod> = active
        .iter()
        .filter(|p| !deleted.contains(p.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    let ready = remaining.iter().filter(|p| is_pod_ready(p)).count();
    plan.status = JobStatus {
        active: nonzero(remaining.len() + plan.create.len()),
        ready: Some(to_i32(ready)),
        terminating: Some(to_i32(terminating.len() + deleted.len())),
        succeeded: nonzero(succeeded),
        failed: nonzero(failed),
        completed_indexes: if indexed {
            Some(format_indexes(&succeeded_indexes)).filter(|s| !s.is_empty())
        } else {
            old.completed_indexes.clone()
        },
        start_time,
        completion_time,
        conditions: (!conds.is_empty()).then_some(conds),
        failed_indexes: old.failed_indexes.clone(),
        uncounted_terminated_pods: old.uncounted_terminated_pods.clone(),
    };
    plan
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[allow(clippy::too_many_arguments)]
fn manage_indexed(
    plan: &mut Plan,
    active: &[&Pod],
    terminating: &[&Pod],
    succeeded: &BTreeSet<i32>,
    completions: i32,
    parallelism: usize,
    replace_terminating: bool,
    may_create: bool,
) {
    // One active pod per index still to do; the rest go.
    let mut by_index: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
    for p in active {
        match pod_index(p) {
            Some(i) if (0..completions).contains(&i) && !succeeded.contains(&i) => {
                by_index.entry(i).or_default().push(p);
            }
            _ => plan.delete.push(name_of(p)),
        }
    }
    let mut kept: BTreeMap<i32, &Pod> = BTreeMap::new();
    for (i, mut ps) in by_index {
        ps.sort_by_key(|p| std::cmp::Reverse(keeper_key(p)));
        let mut it = ps.into_iter();
        if let Some(k) = it.next() {
            kept.insert(i, k);
        }
        plan.delete.extend(it.map(name_of));
    }
    let remaining = usize::try_from(completions)
        .unwrap_or(0)
        .saturating_sub(succeeded.len());
    let want = parallelism.min(remaining);
    if kept.len() > want {
        let surplus = kept.len() - want;
        let highest: Vec<i32> = kept
            .keys()
            .rev()
            .take(surplus.min(BURST))
            .copied()
            .collect();
        for i in highest {
            if let Some(p) = kept.remove(&i) {
                plan.delete.push(name_of(p));
            }
        }
        return;
    }
    let blocked: BTreeSet<i32> = if replace_terminating {
        BTreeSet::new()
    } else {
        terminating
            .iter()
            .filter_map(|p| pod_index(p))
            .filter(|i| !kept.contains_key(i) && !succeeded.contains(i))
            .collect()
    };
    let busy = kept.len() + blocked.len();
    if busy >= want || !may_create {
        return;
    }
    plan.create = (0..completions)
        .filter(|i| !succeeded.contains(i) && !kept.contains_key(i) && !blocked.contains(i))
        .take((want - busy).min(BURST))
        .map(Some)
        .collect();
}

/// A pod to create for the job: `generateName` `"<job>-"` (`"<job>-<index>-"` for an
/// index), the template's labels, annotations and finalizers (with the job labels and the
/// completion index), a controller ownerReference, and the template's spec (for an index:
/// hostname `<job>-<index>` and `JOB_COMPLETION_INDEX` in every container's environment).
pub fn pod_from_template(job: &Job, index: Option<i32>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let spec = job.spec.as_ref();
    let template = spec.map(|s| &s.template);
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let mut labels = tmeta.and_then(|m| m.labels.clone()).unwrap_or_default();
    let mut annotations = tmeta
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    if spec.and_then(|s| s.manual_selector) != Some(true) {
        for (k, v) in [
            (CONTROLLER_UID, &uid),
            (JOB_NAME, &name),
            (LEGACY_CONTROLLER_UID, &uid),
            (LEGACY_JOB_NAME, &name),
        ] {
            labels.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
    let mut pod_spec: Option<PodSpec> = template.and_then(|t| t.spec.clone());
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX.into(), i.to_string());
            annotations.insert(COMPLETION_INDEX.into(), i.to_string());
            if let Some(ps) = pod_spec.as_mut() {
                if ps.hostname.is_none() {
                    ps.hostname = Some(format!("{name}-{i}"));
                }
                let env = EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                        }),
                        ..EnvVarSource::default()
                    }),
                };
                let init = ps.init_containers.iter_mut().flatten();
                for c in ps.containers.iter_mut().chain(init) {
                    let envs = c.env.get_or_insert_with(Vec::new);
                    if !envs.iter().any(|e| e.name == env.name) {
                        envs.push(env.clone());
                    }
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: tmeta.and_then(|m| m.finalizers.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name,
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: pod_spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition,
        PodStatus, PodTemplateSpec,
    };

    const UID: &str = "job-uid";

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn now() -> Timestamp {
        t("2024-05-01T10:00:00Z")
    }

    fn job(f: impl FnOnce(&mut JobSpec)) -> Job {
        let mut spec = JobSpec {
            completions: Some(1),
            parallelism: Some(1),
            backoff_limit: Some(6),
            selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(CONTROLLER_UID.into(), UID.into())])),
                match_expressions: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(BTreeMap::from([
                        (CONTROLLER_UID.into(), UID.into()),
                        ("app".into(), "pi".into()),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "pi".into(),
                        image: Some("perl".into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        };
        f(&mut spec);
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                uid: Some(UID.into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn with_status(mut j: Job, f: impl FnOnce(&mut JobStatus)) -> Job {
        let mut st = j.status.take().unwrap_or_default();
        f(&mut st);
        j.status = Some(st);
        j
    }

    /// A pod of the job, created at `created` (seconds before `now()`), in `phase`.
    fn pod(name: &str, phase: &str, created: i64) -> Pod {
        let j = job(|_| {});
        let mut p = pod_from_template(&j, None);
        p.metadata.generate_name = None;
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(add_secs(now(), -created)));
        p.spec.as_mut().expect("spec").node_name = Some("node-a".into());
        let ready = phase == "Running";
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        p
    }

    /// A pod that finished `ago` seconds before `now()`.
    fn finished(name: &str, phase: &str, ago: i64) -> Pod {
        let mut p = pod(name, phase, ago + 5);
        let at = Time(add_secs(now(), -ago));
        p.status.as_mut().expect("status").container_statuses = Some(vec![ContainerStatus {
            name: "pi".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: if phase == "Succeeded" { 0 } else { 1 },
                    finished_at: Some(at),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]);
        p
    }

    fn indexed_pod(i: i32, phase: &str, created: i64) -> Pod {
        let mut p = pod(&format!("pi-{i}-x{created}"), phase, created);
        p.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(COMPLETION_INDEX.into(), i.to_string());
        p
    }

    fn cond<'a>(p: &'a Plan, type_: &str) -> Option<&'a JobCondition> {
        condition_true(&p.status, type_)
    }

    #[test]
    fn a_new_job_starts_parallelism_pods() {
        let j = job(|s| {
            s.completions = Some(5);
            s.parallelism = Some(2);
        });
        let p = job_plan(&j, &[], now());
        assert_eq!(p.create, vec![None, None]);
        assert_eq!(p.status.active, Some(2));
        assert_eq!(p.status.start_time, Some(Time(now())));
        assert!(p.notes.is_empty());
    }

    #[test]
    fn active_never_exceeds_the_remaining_completions() {
        let j = job(|s| {
            s.completions = Some(5);
            s.parallelism = Some(2);
        });
        let pods = [
            finished("a", "Succeeded", 30),
            finished("b", "Succeeded", 30),
            finished("c", "Succeeded", 20),
            finished("d", "Succeeded", 10),
            pod("e", "Running", 5),
        ];
        let p = job_plan(&j, &pods, now());
        assert!(p.create.is_empty(), "{:?}", p.create);
        assert!(p.delete.is_empty());
        assert_eq!(p.status.succeeded, Some(4));
        assert_eq!(p.status.active, Some(1));
        assert_eq!(p.status.ready, Some(1));
        // Three done, one running: one more.
        let p = job_plan(&j, &pods[1..], now());
        assert_eq!(p.create, vec![None]);
    }

    #[test]
    fn enough_completions_complete_the_job_in_one_pass() {
        let j = job(|s| {
            s.completions = Some(2);
            s.parallelism = Some(2);
        });
        let pods = [finished("a", "Succeeded", 3), finished("b", "Succeeded", 1)];
        let p = job_plan(&j, &pods, now());
        assert!(cond(&p, "SuccessCriteriaMet").is_some());
        let c = cond(&p, "Complete").expect("Complete");
        assert_eq!(c.reason.as_deref(), Some(COMPLETIONS_REACHED));
        assert_eq!(p.status.completion_time, Some(Time(now())));
        assert_eq!(p.status.succeeded, Some(2));
        assert_eq!(p.status.active, None);
        assert_eq!(p.notes, vec![Note::normal("Completed", "Job completed")]);
        assert!(p.create.is_empty());
    }

    #[test]
    fn surplus_pods_are_stopped_before_complete() {
        let j = job(|s| {
            s.completions = Some(1);
            s.parallelism = Some(1);
        });
        let pods = [finished("a", "Succeeded", 3), pod("b", "Running", 1)];
        let p = job_plan(&j, &pods, now());
        assert!(cond(&p, "SuccessCriteriaMet").is_some());
        assert!(cond(&p, "Complete").is_none());
        assert_eq!(p.delete, vec!["b".to_string()]);
        // Being deleted is not a failure here.
        let mut b = pods[1].clone();
        b.metadata.deletion_timestamp = Some(Time(now()));
        let j2 = with_status(j.clone(), |s| *s = p.status.clone());
        let p2 = job_plan(&j2, &[pods[0].clone(), b], now());
        assert!(cond(&p2, "Complete").is_none());
        assert_eq!(p2.status.failed, None);
        assert_eq!(p2.status.terminating, Some(1));
        let p3 = job_plan(&j2, &pods[..1], now());
        assert!(cond(&p3, "Complete").is_some());
    }

    #[test]
    fn failures_back_off_exponentially() {
        let j = job(|s| s.backoff_limit = Some(6));
        // One failure 4 s ago: 10 s back-off, 6 s left.
        let p = job_plan(&j, &[finished("a", "Failed", 4)], now());
        assert!(p.create.is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(6)));
        assert_eq!(p.status.failed, Some(1));
        // 11 s ago: go.
        let p = job_plan(&j, &[finished("a", "Failed", 11)], now());
        assert_eq!(p.create, vec![None]);
        // Two failures, the last 11 s ago: 20 s back-off.
        let pods = [finished("a", "Failed", 40), finished("b", "Failed", 11)];
        let p = job_plan(&j, &pods, now());
        assert!(p.create.is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(9)));
        // A success resets the count.
        let pods = [
            finished("a", "Failed", 40),
            finished("s", "Succeeded", 30),
            finished("b", "Failed", 11),
        ];
        let j5 = job(|s| s.completions = Some(5));
        assert_eq!(job_plan(&j5, &pods, now()).create, vec![None]);
    }

    #[test]
    fn back_off_is_capped_at_six_minutes() {
        let j = job(|s| s.backoff_limit = Some(100));
        let pods: Vec<Pod> = (0..20)
            .map(|i| finished(&format!("f{i}"), "Failed", 1000 - i))
            .collect();
        let p = job_plan(&j, &pods, now());
        // The last failure was 981 s ago, beyond the 360 s cap.
        assert_eq!(p.create, vec![None]);
        let mut pods = pods;
        pods.push(finished("late", "Failed", 100));
        let p = job_plan(&j, &pods, now());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(260)));
    }

    #[test]
    fn exceeding_the_backoff_limit_fails_the_job() {
        let j = job(|s| s.backoff_limit = Some(1));
        let pods = [finished("a", "Failed", 20), finished("b", "Failed", 1)];
        let p = job_plan(&j, &pods, now());
        let c = cond(&p, "Failed").expect("Failed");
        assert_eq!(c.reason.as_deref(), Some(BACKOFF_LIMIT_EXCEEDED));
        assert!(cond(&p, "FailureTarget").is_some());
        assert_eq!(p.status.failed, Some(2));
        assert_eq!(p.status.completion_time, None);
        assert!(p.create.is_empty());
        assert_eq!(
            p.notes,
            vec![Note::warning(BACKOFF_LIMIT_EXCEEDED, BACKOFF_MESSAGE)]
        );
        // At the limit it is retried.
        let p = job_plan(&j, &pods[..1], now());
        assert!(cond(&p, "FailureTarget").is_none());
        assert_eq!(p.create, vec![None]);
    }

    #[test]
    fn backoff_limit_zero_fails_at_the_first_failure() {
        let j = job(|s| s.backoff_limit = Some(0));
        let p = job_plan(&j, &[finished("a", "Failed", 1)], now());
        assert!(cond(&p, "Failed").is_some());
    }

    #[test]
    fn on_failure_restarts_count_toward_the_limit() {
        let j = job(|s| {
            s.backoff_limit = Some(2);
            if let Some(ps) = s.template.spec.as_mut() {
                ps.restart_policy = Some("OnFailure".into());
            }
        });
        let mut p0 = pod("a", "Running", 60);
        p0.status.as_mut().expect("status").container_statuses = Some(vec![ContainerStatus {
            name: "pi".into(),
            restart_count: 2,
            ..ContainerStatus::default()
        }]);
        let p = job_plan(&j, &[p0], now());
        assert!(cond(&p, "FailureTarget").is_some());
        assert_eq!(p.delete, vec!["a".to_string()]);
        // Deleted on failure: counted as failed.
        assert_eq!(p.status.failed, Some(1));
    }

    #[test]
    fn the_deadline_fails_the_job_and_stops_its_pods() {
        let j = with_status(job(|s| s.active_deadline_seconds = Some(2)), |st| {
            st.start_time = Some(Time(add_secs(now(), -1)))
        });
        let running = [pod("a", "Running", 1)];
        // Before the deadline: requeue for it.
        let p = job_plan(&j, &running, now());
        assert!(p.delete.is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));
        // At the deadline.
        let later = add_secs(now(), 1);
        let p = job_plan(&j, &running, later);
        let c = cond(&p, "FailureTarget").expect("FailureTarget");
        assert_eq!(c.reason.as_deref(), Some(DEADLINE_EXCEEDED));
        assert!(cond(&p, "Failed").is_none(), "a pod still runs");
        assert_eq!(p.delete, vec!["a".to_string()]);
        assert_eq!(p.status.active, None);
        assert_eq!(p.status.terminating, Some(1));
        assert_eq!(p.status.failed, Some(1));
        // The pod goes: Failed with the same reason.
        let j2 = with_status(j.clone(), |s| *s = p.status.clone());
        let p2 = job_plan(&j2, &[], add_secs(later, 1));
        let c = cond(&p2, "Failed").expect("Failed");
        assert_eq!(c.reason.as_deref(), Some(DEADLINE_EXCEEDED));
        assert_eq!(
            p2.notes,
            vec![Note::warning(DEADLINE_EXCEEDED, DEADLINE_MESSAGE)]
        );
        assert_eq!(p2.status.failed, Some(1));
        assert!(p2.create.is_empty());
    }

    #[test]
    fn a_finished_job_is_deleted_after_its_ttl() {
        let done = |ttl| {
            with_status(job(|s| s.ttl_seconds_after_finished = ttl), |st| {
                st.completion_time = Some(Time(add_secs(now(), -5)));
                st.conditions = Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(add_secs(now(), -5))),
                    ..JobCondition::default()
                }]);
            })
        };
        assert!(job_plan(&done(Some(0)), &[], now()).delete_job);
        assert!(job_plan(&done(Some(5)), &[], now()).delete_job);
        let p = job_plan(&done(Some(60)), &[], now());
        assert!(!p.delete_job);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(55)));
        let p = job_plan(&done(None), &[finished("a", "Succeeded", 9)], now());
        assert_eq!(
            p,
            Plan {
                status: done(None).status.unwrap_or_default(),
                ..Plan::default()
            }
        );
    }

    #[test]
    fn a_failed_job_ttl_counts_from_the_failed_condition() {
        let j = with_status(job(|s| s.ttl_seconds_after_finished = Some(10)), |st| {
            st.conditions = Some(vec![JobCondition {
                type_: "Failed".into(),
                status: "True".into(),
                last_transition_time: Some(Time(add_secs(now(), -4))),
                ..JobCondition::default()
            }]);
        });
        assert_eq!(
            job_plan(&j, &[], now()).requeue_after,
            Some(Duration::from_secs(6))
        );
    }

    #[test]
    fn suspending_stops_pods_without_counting_failures_and_resuming_resets_start() {
        let started = Time(add_secs(now(), -100));
        let j = with_status(
            job(|s| {
                s.suspend = Some(true);
                s.parallelism = Some(2);
                s.completions = Some(4);
            }),
            |st| st.start_time = Some(started.clone()),
        );
        let pods = [pod("a", "Running", 50), pod("b", "Pending", 50)];
        let p = job_plan(&j, &pods, now());
        assert!(cond(&p, "Suspended").is_some());
        assert_eq!(p.delete.len(), 2);
        assert!(p.create.is_empty());
        assert_eq!(p.notes, vec![Note::normal("Suspended", "Job suspended")]);
        let mut gone: Vec<Pod> = pods.to_vec();
        for g in &mut gone {
            g.metadata.deletion_timestamp = Some(Time(now()));
        }
        let j2 = with_status(j.clone(), |s| *s = p.status.clone());
        let p2 = job_plan(&j2, &gone, now());
        assert_eq!(p2.status.failed, None);
        assert!(p2.notes.is_empty());
        // Resume.
        let mut j3 = with_status(j2.clone(), |s| *s = p2.status.clone());
        if let Some(s) = j3.spec.as_mut() {
            s.suspend = Some(false);
        }
        let later = add_secs(now(), 30);
        let p3 = job_plan(&j3, &[], later);
        let c = p3
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Suspended")
            .expect("Suspended");
        assert_eq!(c.status, "False");
        assert_eq!(p3.status.start_time, Some(Time(later)));
        assert_eq!(p3.create.len(), 2);
    }

    #[test]
    fn a_suspended_new_job_has_no_start_time() {
        let j = job(|s| s.suspend = Some(true));
        let p = job_plan(&j, &[], now());
        assert_eq!(p.status.start_time, None);
        assert!(p.create.is_empty());
    }

    #[test]
    fn work_queue_jobs_stop_creating_after_a_success() {
        let j = job(|s| {
            s.completions = None;
            s.parallelism = Some(3);
        });
        assert_eq!(job_plan(&j, &[], now()).create.len(), 3);
        let pods = [finished("a", "Succeeded", 1), pod("b", "Running", 5)];
        let p = job_plan(&j, &pods, now());
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert!(cond(&p, "SuccessCriteriaMet").is_none());
        let p = job_plan(&j, &pods[..1], now());
        assert!(cond(&p, "Complete").is_some());
    }

    #[test]
    fn lowering_parallelism_deletes_the_least_useful_pods() {
        let j = job(|s| {
            s.completions = Some(10);
            s.parallelism = Some(1);
        });
        let mut pending = pod("pending", "Pending", 1);
        pending.spec.as_mut().expect("spec").node_name = None;
        let pods = [
            pod("old", "Running", 100),
            pending,
            pod("new", "Running", 5),
        ];
        let p = job_plan(&j, &pods, now());
        assert_eq!(p.delete, vec!["pending".to_string(), "new".to_string()]);
        assert_eq!(p.status.active, Some(1));
    }

    #[test]
    fn terminating_pods_block_replacement_only_with_policy_failed() {
        let mut gone = pod("a", "Running", 5);
        gone.metadata.deletion_timestamp = Some(Time(now()));
        let j = job(|_| {});
        let p = job_plan(&j, std::slice::from_ref(&gone), now());
        assert_eq!(p.create, vec![None]);
        assert_eq!(p.status.failed, Some(1));
        let j = job(|s| s.pod_replacement_policy = Some("Failed".into()));
        let p = job_plan(&j, std::slice::from_ref(&gone), now());
        assert!(p.create.is_empty());
        assert_eq!(p.status.failed, None);
    }

    #[test]
    fn counts_do_not_drop_when_finished_pods_vanish() {
        let j = with_status(
            job(|s| {
                s.completions = Some(3);
                s.backoff_limit = Some(5);
            }),
            |st| {
                st.succeeded = Some(2);
                st.failed = Some(1);
            },
        );
        let p = job_plan(&j, &[], now());
        assert_eq!(p.status.succeeded, Some(2));
        assert_eq!(p.status.failed, Some(1));
        assert_eq!(p.create, vec![None]);
    }

    #[test]
    fn orphans_are_adopted_and_strays_released() {
        let j = job(|s| s.parallelism = Some(2));
        let mut orphan = pod("orphan", "Running", 5);
        orphan.metadata.owner_references = None;
        let mut stray = pod("stray", "Running", 5);
        stray.metadata.labels = Some(BTreeMap::from([("app".into(), "other".into())]));
        let mut foreign = pod("foreign", "Running", 5);
        if let Some(r) = foreign.metadata.owner_references.as_mut() {
            r[0].uid = "other".into();
        }
        let mut elsewhere = pod("elsewhere", "Running", 5);
        elsewhere.metadata.namespace = Some("other".into());
        let p = job_plan(&j, &[orphan, stray, foreign, elsewhere], now());
        assert_eq!(p.adopt, vec!["orphan".to_string()]);
        assert_eq!(p.release, vec!["stray".to_string()]);
        assert_eq!(p.status.active, Some(1));
        assert!(
            p.create.is_empty(),
            "completions 1 with one adopted active pod"
        );
    }

    #[test]
    fn jobs_managed_elsewhere_or_being_deleted_are_left_alone() {
        let j = job(|s| s.managed_by = Some("example.com/other".into()));
        assert_eq!(job_plan(&j, &[], now()), Plan::default());
        let mut j = job(|_| {});
        j.metadata.deletion_timestamp = Some(Time(now()));
        assert_eq!(job_plan(&j, &[], now()), Plan::default());
        let j = job(|s| s.managed_by = Some(MANAGED_BY.into()));
        assert_eq!(job_plan(&j, &[], now()).create.len(), 1);
    }

    #[test]
    fn a_missing_selector_falls_back_to_the_controller_uid_label() {
        let j = job(|s| s.selector = None);
        let p = job_plan(&j, &[pod("a", "Running", 5)], now());
        assert!(p.create.is_empty());
        assert_eq!(p.status.active, Some(1));
        let created = pod_from_template(&j, None);
        let labels = created.metadata.labels.expect("labels");
        assert_eq!(labels.get(CONTROLLER_UID).map(String::as_str), Some(UID));
        assert_eq!(labels.get(JOB_NAME).map(String::as_str), Some("pi"));
        assert_eq!(labels.get(LEGACY_JOB_NAME).map(String::as_str), Some("pi"));
    }

    #[test]
    fn pods_from_the_template_are_owned_by_the_job() {
        let j = job(|_| {});
        let p = pod_from_template(&j, None);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-"));
        let r = &p.metadata.owner_references.expect("owner")[0];
        assert_eq!((r.kind.as_str(), r.uid.as_str()), ("Job", UID));
        assert_eq!(r.controller, Some(true));
        assert_eq!(
            p.metadata
                .labels
                .expect("labels")
                .get("app")
                .map(String::as_str),
            Some("pi")
        );
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let j = job(|s| {
            s.completion_mode = Some("Indexed".into());
            s.completions = Some(3);
        });
        let p = pod_from_template(&j, Some(2));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-2-"));
        assert_eq!(
            p.metadata
                .annotations
                .expect("annotations")
                .get(COMPLETION_INDEX)
                .map(String::as_str),
            Some("2")
        );
        assert_eq!(
            p.metadata
                .labels
                .expect("labels")
                .get(COMPLETION_INDEX)
                .map(String::as_str),
            Some("2")
        );
        let spec = p.spec.expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
        let env = spec.containers[0].env.as_ref().expect("env");
        assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
    }

    #[test]
    fn indexed_jobs_create_missing_indexes_and_track_completed_ones() {
        let j = job(|s| {
            s.completion_mode = Some("Indexed".into());
            s.completions = Some(5);
            s.parallelism = Some(2);
        });
        let p = job_plan(&j, &[], now());
        assert_eq!(p.create, vec![Some(0), Some(1)]);
        let mut done0 = indexed_pod(0, "Succeeded", 20);
        done0.status.as_mut().expect("status").container_statuses = None;
        let pods = [
            done0,
            indexed_pod(1, "Running", 10),
            indexed_pod(3, "Succeeded", 9),
        ];
        let p = job_plan(&j, &pods, now());
        assert_eq!(p.create, vec![Some(2)]);
        assert_eq!(p.status.completed_indexes.as_deref(), Some("0,3"));
        assert_eq!(p.status.succeeded, Some(2));
        // Completed indexes from the status survive their pods.
        let j2 = with_status(j.clone(), |s| s.completed_indexes = Some("0-2,4".into()));
        let p = job_plan(&j2, &[], now());
        assert_eq!(p.create, vec![Some(3)]);
        assert_eq!(p.status.succeeded, Some(4));
        let j3 = with_status(j.clone(), |s| s.completed_indexes = Some("0-4".into()));
        assert!(cond(&job_plan(&j3, &[], now()), "Complete").is_some());
    }

    #[test]
    fn indexed_duplicates_and_stray_indexes_are_deleted() {
        let j = job(|s| {
            s.completion_mode = Some("Indexed".into());
            s.completions = Some(3);
            s.parallelism = Some(3);
        });
        let pods = [
            indexed_pod(0, "Running", 50),
            indexed_pod(0, "Running", 10),
            indexed_pod(7, "Running", 10),
            indexed_pod(1, "Succeeded", 10),
            indexed_pod(1, "Running", 5),
        ];
        let p = job_plan(&j, &pods, now());
        let mut deleted = p.delete.clone();
        deleted.sort();
        assert_eq!(deleted, vec!["pi-0-x10", "pi-1-x5", "pi-7-x10"]);
        assert_eq!(p.create, vec![Some(2)]);
    }

    #[test]
    fn index_sets_round_trip() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7", 10), set);
        assert_eq!(parse_indexes("0-9", 3), [0, 1, 2].into_iter().collect());
        assert_eq!(parse_indexes("x,1", 3), [1].into_iter().collect());
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }
}
