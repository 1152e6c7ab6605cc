//! What a CronJob needs done: a pure function of the cron job, the jobs it controls and the
//! current time.
//!
//! One pass of [`cronjob_plan`] follows Kubernetes' CronJob controller (v2):
//!
//! - `status.active` holds the unfinished jobs the cron job controls (references to jobs that
//!   are gone or finished are dropped; an unfinished controlled job missing from the list,
//!   e.g. after a crash between creating it and writing the status, is added back);
//!   `lastSuccessfulTime` is the latest `completionTime` of a Complete job;
//! - finished jobs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` are
//!   deleted, oldest first (also while suspended);
//! - unless suspended, the most recent schedule time after `lastScheduleTime` (or the
//!   creation time, and no earlier than `startingDeadlineSeconds` ago) runs, once: earlier
//!   missed times are skipped (more than 100 of them → a TooManyMissedTimes warning), a time
//!   whose job exists is not run again, `Forbid` waits while a job is active, `Replace`
//!   deletes the active jobs first. The job is named `<cronjob>-<minutes since the epoch>`;
//! - the next look is at the next schedule time (+100 ms).
//!
//! The schedule is evaluated in `spec.timeZone` (or the zone of a `TZ=`/`CRON_TZ=` prefix),
//! else in UTC. An unknown zone or an unparseable schedule is reported as a warning event
//! (UnknownTimeZone, UnparseableSchedule) and nothing is scheduled.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::schedule;
use crate::job::plan::{condition_true, Note};
use crate::replicaset::diff::controller_ref;

/// The annotation with the time a job was scheduled for (RFC 3339 in the cron job's zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed schedule times than this are warned about.
pub const MAX_MISSED: usize = 100;
/// How long after a schedule time the controller looks (so it is not a hair early).
pub const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// A job to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub name: String,
    pub uid: Option<String>,
}

/// The decisions of one CronJob sync pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CronPlan {
    /// The status after this pass, not counting `create` (see [`record_created`]).
    pub status: CronJobStatus,
    /// A job to create, and the schedule time it is for.
    pub create: Option<(Job, Timestamp)>,
    /// Jobs to delete (Replace, history limits), with propagation Background.
    pub delete: Vec<Doomed>,
    /// Events to record.
    pub notes: Vec<Note>,
    /// When to look again (the next schedule time).
    pub requeue_after: Option<Duration>,
}

fn job_finished(job: &Job) -> Option<&'static str> {
    let st = job.status.as_ref()?;
    if condition_true(st, "Complete").is_some() {
        Some("Complete")
    } else if condition_true(st, "Failed").is_some() {
        Some("Failed")
    } else {
        None
    }
}

/// The name of the job for a schedule time: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// A reference to a job for `status.active`.
pub fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Records a job created (or found already created) for `scheduled` in the status.
pub fn record_created(status: &mut CronJobStatus, job: &Job, scheduled: Timestamp) {
    let active = status.active.get_or_insert_with(Vec::new);
    if job_finished(job).is_none() && !active.iter().any(|r| r.uid == job.metadata.uid) {
        active.push(job_ref(job));
    }
    status.last_schedule_time = Some(Time(scheduled));
}

/// The zone a schedule is evaluated in.
pub fn time_zone(cj: &CronJob, prefix: Option<&str>) -> Result<TimeZone, String> {
    let field = cj.spec.as_ref().and_then(|s| s.time_zone.as_deref());
    let name = match (field, prefix) {
        (Some(_), Some(_)) => {
            return Err(
                "TZ or CRON_TZ in the schedule cannot be combined with spec.timeZone".into(),
            )
        }
        (Some(n), None) | (None, Some(n)) => n,
        (None, None) => return Ok(TimeZone::UTC),
    };
    if matches!(name, "UTC" | "Etc/UTC") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|e| format!("invalid timeZone: {name:?}: {e}"))
}

/// RFC 3339 in `tz` (`Z` for a zero offset, as Go formats it).
pub fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The job to create for `scheduled`: the template's labels and annotations (with the
/// scheduled-timestamp annotation), a controller ownerReference and the template's spec.
pub fn job_from_template(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let name = cj.metadata.name.clone().unwrap_or_default();
    let template = cj.spec.as_ref().map(|s| &s.job_template);
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let mut annotations = tmeta
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name,
                uid: cj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    }
}

fn until(t: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
}

fn sub_secs(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_sub(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MIN)
}

/// Finished jobs beyond `limit`, oldest (by start time) first.
fn over_limit(mut jobs: Vec<&Job>, limit: Option<i32>) -> Vec<&Job> {
    let Some(limit) = limit else {
        return Vec::new();
    };
    let limit = usize::try_from(limit).unwrap_or(0);
    if jobs.len() <= limit {
        return Vec::new();
    }
    jobs.sort_by_key(|j| {
        (
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(j.metadata.creation_timestamp.as_ref())
                .map(|t| t.0),
            j.metadata.name.clone(),
        )
    });
    let n = jobs.len() - limit;
    jobs.truncate(n);
    jobs
}

/// One pass of the CronJob controller over `cj` and the jobs it controls.
pub fn cronjob_plan(cj: &CronJob, jobs: &[Job], now: Timestamp) -> CronPlan {
    let old = cj.status.clone().unwrap_or_default();
    let mut plan = CronPlan {
        status: old.clone(),
        ..CronPlan::default()
    };
    let Some(spec) = cj.spec.as_ref() else {
        return plan;
    };
    if cj.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let Some(uid) = cj.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
        return plan;
    };
    let cj_name = cj.metadata.name.clone().unwrap_or_default();
    let owned: Vec<&Job> = jobs
        .iter()
        .filter(|j| controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();

    // Active jobs, keeping the order of the list.
    let mut active: Vec<ObjectReference> = Vec::new();
    for r in old.active.iter().flatten() {
        // A job that is gone just leaves the list.
        if let Some(j) = owned.iter().find(|j| j.metadata.uid == r.uid) {
            match job_finished(j) {
                None => active.push(r.clone()),
                Some(how) => plan.notes.push(Note::normal(
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, status: {how}",
                        j.metadata.name.as_deref().unwrap_or_default()
                    ),
                )),
            }
        }
    }
    let mut unlisted: Vec<&&Job> = owned
        .iter()
        .filter(|j| job_finished(j).is_none() && !active.iter().any(|r| r.uid == j.metadata.uid))
        .collect();
    unlisted.sort_by_key(|j| j.metadata.name.clone());
    active.extend(unlisted.into_iter().map(|j| job_ref(j)));

    let mut last_successful = old.last_successful_time.clone();
    for j in &owned {
        if job_finished(j) == Some("Complete") {
            if let Some(t) = j.status.as_ref().and_then(|s| s.completion_time.as_ref()) {
                if last_successful.as_ref().is_none_or(|l| t.0 > l.0) {
                    last_successful = Some(t.clone());
                }
            }
        }
    }

    // History.
    let finished_with = |how: &str| -> Vec<&Job> {
        owned
            .iter()
            .copied()
            .filter(|j| j.metadata.deletion_timestamp.is_none() && job_finished(j) == Some(how))
            .collect()
    };
    let mut doomed: Vec<&Job> = over_limit(
        finished_with("Complete"),
        spec.successful_jobs_history_limit,
    );
    doomed.extend(over_limit(
        finished_with("Failed"),
        spec.failed_jobs_history_limit,
    ));
    plan.delete = doomed
        .iter()
        .map(|j| Doomed {
            name: j.metadata.name.clone().unwrap_or_default(),
            uid: j.metadata.uid.clone(),
        })
        .collect();

    let finish = |plan: &mut CronPlan, active: Vec<ObjectReference>| {
        plan.status.active = (!active.is_empty()).then_some(active);
        plan.status.last_successful_time = last_successful.clone();
    };

    // The schedule.
    let parsed = match schedule::parse(&spec.schedule) {
        Ok(p) => p,
        Err(e) => {
            plan.notes.push(Note::warning(
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            ));
            finish(&mut plan, active);
            return plan;
        }
    };
    let tz = match time_zone(cj, parsed.time_zone.as_deref()) {
        Ok(tz) => tz,
        Err(e) => {
            plan.notes.push(Note::warning("UnknownTimeZone", e));
            finish(&mut plan, active);
            return plan;
        }
    };
    if spec.suspend == Some(true) {
        finish(&mut plan, active);
        return plan;
    }
    let sched = &parsed.schedule;
    if let Some(next) = sched.next_after(now, &tz) {
        plan.requeue_after = Some(until(next, now) + NEXT_SCHEDULE_DELTA);
    }
    let mut earliest = old
        .last_schedule_time
        .as_ref()
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0);
    if let Some(sds) = spec.starting_deadline_seconds {
        earliest = earliest.max(sub_secs(now, sds));
    }
    let Some(scheduled) = sched.last_at_or_before(now, &tz).filter(|t| *t > earliest) else {
        finish(&mut plan, active);
        return plan;
    };
    let mut missed = 0usize;
    let mut t = earliest;
    while missed <= MAX_MISSED {
        match sched.next_after(t, &tz) {
            Some(n) if n <= now => {
                missed += 1;
                t = n;
            }
            _ => break,
        }
    }
    if missed > MAX_MISSED {
        plan.notes.push(Note::warning(
            "TooManyMissedTimes",
            format!(
                "too many missed start times: more than {MAX_MISSED}. Set or decrease \
                 .spec.startingDeadlineSeconds or check clock skew"
            ),
        ));
    }
    if let Some(sds) = spec.starting_deadline_seconds {
        if scheduled < sub_secs(now, sds) {
            plan.notes.push(Note::warning(
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    rfc3339_in(scheduled, &tz)
                ),
            ));
            finish(&mut plan, active);
            return plan;
        }
    }
    let name = job_name(&cj_name, scheduled);
    let exists = owned
        .iter()
        .any(|j| j.metadata.name.as_deref() == Some(&name))
        || active.iter().any(|r| r.name.as_deref() == Some(&name));
    if exists {
        // Already run (the status write after creating it may have been lost).
        if old
            .last_schedule_time
            .as_ref()
            .is_none_or(|l| l.0 < scheduled)
        {
            plan.status.last_schedule_time = Some(Time(scheduled));
        }
        finish(&mut plan, active);
        return plan;
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            // Runs when the active job finishes, if still within the starting deadline.
            finish(&mut plan, active);
            return plan;
        }
        Some("Replace") => {
            for r in active.drain(..) {
                plan.delete.push(Doomed {
                    name: r.name.clone().unwrap_or_default(),
                    uid: r.uid.clone(),
                });
            }
        }
        _ => {}
    }
    plan.create = Some((job_from_template(cj, scheduled, &tz), scheduled));
    finish(&mut plan, active);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        CronJobSpec, JobCondition, JobSpec, JobStatus, JobTemplateSpec,
    };
    use std::collections::BTreeMap;

    const UID: &str = "cj-uid";

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn cronjob(schedule: &str, f: impl FnOnce(&mut CronJobSpec)) -> CronJob {
        let mut spec = CronJobSpec {
            schedule: schedule.into(),
            concurrency_policy: Some("Allow".into()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(1),
            suspend: Some(false),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(BTreeMap::from([("app".into(), "backup".into())])),
                    annotations: Some(BTreeMap::from([("note".into(), "x".into())])),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        };
        f(&mut spec);
        CronJob {
            metadata: ObjectMeta {
                name: Some("backup".into()),
                namespace: Some("default".into()),
                uid: Some(UID.into()),
                creation_timestamp: Some(Time(t("2024-05-01T09:58:30Z"))),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn with_status(mut cj: CronJob, f: impl FnOnce(&mut CronJobStatus)) -> CronJob {
        let mut st = cj.status.take().unwrap_or_default();
        f(&mut st);
        cj.status = Some(st);
        cj
    }

    /// A job of the cron job for `scheduled`, finished as `how` ("", "Complete", "Failed").
    fn job(cj: &CronJob, scheduled: &str, how: &str) -> Job {
        let at = t(scheduled);
        let mut j = job_from_template(cj, at, &TimeZone::UTC);
        j.metadata.uid = Some(format!("uid-{}", at.as_second()));
        j.metadata.creation_timestamp = Some(Time(at));
        let mut st = JobStatus {
            start_time: Some(Time(at)),
            ..JobStatus::default()
        };
        if !how.is_empty() {
            st.conditions = Some(vec![JobCondition {
                type_: how.into(),
                status: "True".into(),
                ..JobCondition::default()
            }]);
            if how == "Complete" {
                st.completion_time = Some(Time(
                    at.checked_add(SignedDuration::from_secs(5)).expect("time"),
                ));
            }
        }
        j.status = Some(st);
        j
    }

    #[test]
    fn the_first_schedule_time_after_creation_runs() {
        let cj = cronjob("* * * * *", |_| {});
        // Created 09:58:30; at 09:59:10 the 09:59 run is due.
        let now = t("2024-05-01T09:59:10Z");
        let p = cronjob_plan(&cj, &[], now);
        let (j, at) = p.create.expect("a job");
        assert_eq!(at, t("2024-05-01T09:59:00Z"));
        assert_eq!(j.metadata.name.as_deref(), Some("backup-28575959"));
        assert_eq!(28575959 * 60, t("2024-05-01T09:59:00Z").as_second());
        let ann = j.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(
            ann.get(SCHEDULED_TIMESTAMP).map(String::as_str),
            Some("2024-05-01T09:59:00Z")
        );
        assert_eq!(ann.get("note").map(String::as_str), Some("x"));
        assert_eq!(
            j.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str),
            Some("backup")
        );
        let r = &j.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (r.kind.as_str(), r.uid.as_str(), r.controller),
            ("CronJob", UID, Some(true))
        );
        assert_eq!(j.spec.and_then(|s| s.backoff_limit), Some(2));
        // Next look at 10:00:00.1.
        assert_eq!(p.requeue_after, Some(Duration::from_millis(50_100)));
        assert!(p.notes.is_empty());
    }

    #[test]
    fn nothing_runs_before_the_first_schedule_time() {
        let cj = cronjob("* * * * *", |_| {});
        let p = cronjob_plan(&cj, &[], t("2024-05-01T09:58:40Z"));
        assert!(p.create.is_none());
        assert_eq!(p.requeue_after, Some(Duration::from_millis(20_100)));
    }

    #[test]
    fn a_time_already_run_is_not_run_again() {
        let cj = with_status(cronjob("* * * * *", |_| {}), |s| {
            s.last_schedule_time = Some(Time(t("2024-05-01T09:59:00Z")));
        });
        let p = cronjob_plan(&cj, &[], t("2024-05-01T09:59:30Z"));
        assert!(p.create.is_none());
        // Its job exists but the status write was lost.
        let cj0 = cronjob("* * * * *", |_| {});
        let j = job(&cj0, "2024-05-01T09:59:00Z", "");
        let p = cronjob_plan(&cj0, std::slice::from_ref(&j), t("2024-05-01T09:59:30Z"));
        assert!(p.create.is_none());
        assert_eq!(
            p.status.last_schedule_time,
            Some(Time(t("2024-05-01T09:59:00Z")))
        );
        assert_eq!(p.status.active, Some(vec![job_ref(&j)]));
    }

    #[test]
    fn only_the_most_recent_missed_time_runs() {
        let cj = with_status(cronjob("*/5 * * * *", |_| {}), |s| {
            s.last_schedule_time = Some(Time(t("2024-05-01T08:00:00Z")));
        });
        let p = cronjob_plan(&cj, &[], t("2024-05-01T10:07:00Z"));
        assert_eq!(p.create.map(|c| c.1), Some(t("2024-05-01T10:05:00Z")));
        assert!(
            p.notes.is_empty(),
            "25 missed is not too many: {:?}",
            p.notes
        );
    }

    #[test]
    fn more_than_100_missed_times_are_warned_about() {
        let cj = with_status(cronjob("* * * * *", |_| {}), |s| {
            s.last_schedule_time = Some(Time(t("2024-05-01T08:00:00Z")));
        });
        let p = cronjob_plan(&cj, &[], t("2024-05-01T10:00:30Z"));
        assert_eq!(p.create.map(|c| c.1), Some(t("2024-05-01T10:00:00Z")));
        assert_eq!(p.notes.len(), 1);
        assert_eq!(p.notes[0].reason, "TooManyMissedTimes");
        assert!(p.notes[0].warning);
        // A starting deadline bounds how far back is looked.
        let cj = with_status(
            cronjob("* * * * *", |s| s.starting_deadline_seconds = Some(200)),
            |s| s.last_schedule_time = Some(Time(t("2024-05-01T08:00:00Z"))),
        );
        let p = cronjob_plan(&cj, &[], t("2024-05-01T10:00:30Z"));
        assert_eq!(p.create.map(|c| c.1), Some(t("2024-05-01T10:00:00Z")));
        assert!(p.notes.is_empty());
    }

    #[test]
    fn a_time_past_the_starting_deadline_is_skipped() {
        let cj = with_status(
            cronjob("0 * * * *", |s| s.starting_deadline_seconds = Some(60)),
            |s| s.last_schedule_time = Some(Time(t("2024-05-01T09:00:00Z"))),
        );
        let p = cronjob_plan(&cj, &[], t("2024-05-01T10:02:00Z"));
        assert!(p.create.is_none());
        assert_eq!(
            p.requeue_after,
            Some(Duration::from_millis(58 * 60_000 + 100))
        );
        let p = cronjob_plan(&cj, &[], t("2024-05-01T10:00:59Z"));
        assert!(p.create.is_some());
    }

    #[test]
    fn forbid_waits_for_the_active_job() {
        let cj0 = cronjob("* * * * *", |s| {
            s.concurrency_policy = Some("Forbid".into())
        });
        let running = job(&cj0, "2024-05-01T09:59:00Z", "");
        let cj = with_status(cj0.clone(), |s| {
            s.last_schedule_time = Some(Time(t("2024-05-01T09:59:00Z")));
            s.active = Some(vec![job_ref(&running)]);
        });
        let now = t("2024-05-01T10:00:10Z");
        let p = cronjob_plan(&cj, std::slice::from_ref(&running), now);
        assert!(p.create.is_none());
        assert!(p.delete.is_empty());
        // Once it finished, the waiting time runs.
        let done = job(&cj0, "2024-05-01T09:59:00Z", "Complete");
        let p = cronjob_plan(&cj, std::slice::from_ref(&done), now);
        assert_eq!(p.create.map(|c| c.1), Some(t("2024-05-01T10:00:00Z")));
        assert_eq!(p.status.active, None);
        assert_eq!(
            p.status.last_successful_time,
            Some(Time(t("2024-05-01T09:59:05Z")))
        );
        assert_eq!(p.notes[0].reason, "SawCompletedJob");
    }

    #[test]
    fn replace_deletes_the_active_job_first() {
        let cj0 = cronjob("* * * * *", |s| {
            s.concurrency_policy = Some("Replace".into())
        });
        let running = job(&cj0, "2024-05-01T09:59:00Z", "");
        let cj = with_status(cj0, |s| {
            s.last_schedule_time = Some(Time(t("2024-05-01T09:59:00Z")));
            s.active = Some(vec![job_ref(&running)]);
        });
        let p = cronjob_plan(
            &cj,
            std::slice::from_ref(&running),
            t("2024-05-01T10:00:10Z"),
        );
        assert_eq!(
            p.delete,
            vec![Doomed {
                name: "backup-28575959".into(),
                uid: running.metadata.uid.clone()
            }]
        );
        assert!(p.create.is_some());
        assert_eq!(p.status.active, None);
    }

    #[test]
    fn allow_runs_next_to_the_active_job() {
        let cj0 = cronjob("* * * * *", |_| {});
        let running = job(&cj0, "2024-05-01T09:59:00Z", "");
        let cj = with_status(cj0, |s| {
            s.last_schedule_time = Some(Time(t("2024-05-01T09:59:00Z")));
            s.active = Some(vec![job_ref(&running)]);
        });
        let p = cronjob_plan(
            &cj,
            std::slice::from_ref(&running),
            t("2024-05-01T10:00:10Z"),
        );
        assert!(p.create.is_some());
        assert!(p.delete.is_empty());
        assert_eq!(p.status.active.as_ref().map(Vec::len), Some(1));
        let mut st = p.status.clone();
        let (j, at) = p.create.expect("job");
        let mut j = j;
        j.metadata.uid = Some("new".into());
        record_created(&mut st, &j, at);
        assert_eq!(st.active.as_ref().map(Vec::len), Some(2));
        assert_eq!(st.last_schedule_time, Some(Time(at)));
    }

    #[test]
    fn gone_jobs_leave_the_active_list() {
        let cj0 = cronjob("0 0 1 1 *", |_| {});
        let gone = job(&cj0, "2024-05-01T09:59:00Z", "");
        let cj = with_status(cj0, |s| s.active = Some(vec![job_ref(&gone)]));
        let p = cronjob_plan(&cj, &[], t("2024-05-01T10:00:10Z"));
        assert_eq!(p.status.active, None);
    }

    #[test]
    fn finished_jobs_beyond_the_history_limits_are_deleted_oldest_first() {
        let cj = cronjob("0 0 1 1 *", |_| {});
        let jobs = [
            job(&cj, "2024-05-01T09:50:00Z", "Complete"),
            job(&cj, "2024-05-01T09:51:00Z", "Failed"),
            job(&cj, "2024-05-01T09:52:00Z", "Complete"),
            job(&cj, "2024-05-01T09:53:00Z", "Failed"),
            job(&cj, "2024-05-01T09:54:00Z", "Complete"),
            job(&cj, "2024-05-01T09:55:00Z", "Complete"),
            job(&cj, "2024-05-01T09:56:00Z", ""),
        ];
        let p = cronjob_plan(&cj, &jobs, t("2024-05-01T10:00:00Z"));
        let names: Vec<&str> = p.delete.iter().map(|d| d.name.as_str()).collect();
        let n = |s: &str| job_name("backup", t(s));
        assert_eq!(
            names,
            vec![n("2024-05-01T09:50:00Z"), n("2024-05-01T09:51:00Z")]
        );
        assert_eq!(p.status.active.map(|a| a.len()), Some(1));
        assert_eq!(
            p.status.last_successful_time,
            Some(Time(t("2024-05-01T09:55:05Z")))
        );
        // Also while suspended.
        let cj = cronjob("0 0 1 1 *", |s| s.suspend = Some(true));
        assert_eq!(
            cronjob_plan(&cj, &jobs, t("2024-05-01T10:00:00Z"))
                .delete
                .len(),
            2
        );
    }

    #[test]
    fn suspended_cron_jobs_do_not_schedule() {
        let cj = cronjob("* * * * *", |s| s.suspend = Some(true));
        let p = cronjob_plan(&cj, &[], t("2024-05-01T10:00:10Z"));
        assert!(p.create.is_none());
        assert_eq!(p.requeue_after, None);
    }

    #[test]
    fn bad_schedules_and_zones_are_reported() {
        let cj = cronjob("61 * * * *", |_| {});
        let p = cronjob_plan(&cj, &[], t("2024-05-01T10:00:10Z"));
        assert!(p.create.is_none());
        assert_eq!(p.notes[0].reason, "UnparseableSchedule");
        let cj = cronjob("* * * * *", |s| {
            s.time_zone = Some("Mars/Olympus_Mons".into())
        });
        let p = cronjob_plan(&cj, &[], t("2024-05-01T10:00:10Z"));
        assert!(p.create.is_none());
        assert_eq!(p.notes[0].reason, "UnknownTimeZone");
        let cj = cronjob("TZ=UTC * * * * *", |s| s.time_zone = Some("UTC".into()));
        assert_eq!(
            cronjob_plan(&cj, &[], t("2024-05-01T10:00:10Z")).notes[0].reason,
            "UnknownTimeZone"
        );
    }

    #[test]
    fn a_time_zone_moves_the_schedule_and_the_annotation() {
        let cj = cronjob("0 12 * * *", |s| s.time_zone = Some("Asia/Tokyo".into()));
        if time_zone(&cj, None).is_err() {
            eprintln!("no time zone database here; skipping");
            return;
        }
        // 12:00 in Tokyo is 03:00Z.
        let p = cronjob_plan(&cj, &[], t("2024-05-02T03:00:30Z"));
        let (j, at) = p.create.expect("a job");
        assert_eq!(at, t("2024-05-02T03:00:00Z"));
        assert_eq!(
            j.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SCHEDULED_TIMESTAMP))
                .map(String::as_str),
            Some("2024-05-02T12:00:00+09:00")
        );
    }

    #[test]
    fn jobs_of_other_owners_are_ignored() {
        let cj = cronjob("0 0 1 1 *", |_| {});
        let mut other = job(&cj, "2024-05-01T09:56:00Z", "");
        if let Some(r) = other.metadata.owner_references.as_mut() {
            r[0].uid = "someone-else".into();
        }
        let p = cronjob_plan(&cj, &[other], t("2024-05-01T10:00:00Z"));
        assert_eq!(p.status.active, None);
    }

    #[test]
    fn a_cron_job_being_deleted_is_left_alone() {
        let mut cj = cronjob("* * * * *", |_| {});
        cj.metadata.deletion_timestamp = Some(Time(t("2024-05-01T10:00:00Z")));
        assert_eq!(
            cronjob_plan(&cj, &[], t("2024-05-01T10:00:10Z")),
            CronPlan::default()
        );
    }
}
