//! Workload strategies: apps/v1 and batch/v1 (and core/v1 replication controllers and pod
//! templates), with Kubernetes' defaults.

use serde_json::{json, Value};

use super::pod::{default_template, validate_template};
use super::{default_at, get, non_negative, validate_selector_matches, Strategy};
use crate::error::Cause;

/// `spec.selector` must select `spec.template.metadata.labels` (every pod controller).
fn selector_matches_template(obj: &Value, causes: &mut Vec<Cause>) {
    validate_selector_matches(
        get(obj, &["spec", "selector"]),
        get(obj, &["spec", "template", "metadata", "labels"]),
        "spec.selector",
        "spec.template.metadata.labels",
        causes,
    );
}

fn clear_status(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
}

pub struct Deployments;

impl Strategy for Deployments {
    fn has_generation(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec") else {
            return;
        };
        if !spec.is_object() {
            return;
        }
        default_at(spec, &["replicas"], json!(1));
        default_at(spec, &["revisionHistoryLimit"], json!(10));
        default_at(spec, &["progressDeadlineSeconds"], json!(600));
        default_at(spec, &["strategy"], json!({}));
        if let Some(st) = spec.get_mut("strategy") {
            default_at(st, &["type"], json!("RollingUpdate"));
            if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                default_at(st, &["rollingUpdate"], json!({}));
                if let Some(ru) = st.get_mut("rollingUpdate") {
                    default_at(ru, &["maxUnavailable"], json!("25%"));
                    default_at(ru, &["maxSurge"], json!("25%"));
                }
            }
        }
        default_template(obj, &["spec", "template"]);
    }

    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        selector_matches_template(obj, &mut causes);
        validate_template(obj, &["spec", "template"], "spec.template", &mut causes);
        non_negative(obj, &["spec", "replicas"], "spec.replicas", &mut causes);
        non_negative(
            obj,
            &["spec", "minReadySeconds"],
            "spec.minReadySeconds",
            &mut causes,
        );
        non_negative(
            obj,
            &["spec", "revisionHistoryLimit"],
            "spec.revisionHistoryLimit",
            &mut causes,
        );
        if let Some(t) = get(obj, &["spec", "strategy", "type"]) {
            if !matches!(t.as_str(), Some("RollingUpdate" | "Recreate")) {
                causes.push(Cause::not_supported(
                    "spec.strategy.type",
                    t,
                    &["Recreate", "RollingUpdate"],
                ));
            }
        }
        if let Some(p) = get(obj, &["spec", "template", "spec", "restartPolicy"]) {
            if p.as_str() != Some("Always") {
                causes.push(Cause::not_supported(
                    "spec.template.spec.restartPolicy",
                    p,
                    &["Always"],
                ));
            }
        }
        selector_immutable(obj, old, &mut causes);
        causes
    }
}

/// apps/v1 selectors are immutable.
fn selector_immutable(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    if let Some(old) = old {
        let (n, o) = (
            get(obj, &["spec", "selector"]),
            get(old, &["spec", "selector"]),
        );
        if n != o {
            causes.push(Cause::invalid(
                "spec.selector",
                n.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
}

pub struct ReplicaSets;

impl Strategy for ReplicaSets {
    fn has_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_at(spec, &["replicas"], json!(1));
        }
        default_template(obj, &["spec", "template"]);
    }
    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        selector_matches_template(obj, &mut causes);
        if get(obj, &["spec", "template"]).is_some() {
            validate_template(obj, &["spec", "template"], "spec.template", &mut causes);
        }
        non_negative(obj, &["spec", "replicas"], "spec.replicas", &mut causes);
        selector_immutable(obj, old, &mut causes);
        causes
    }
}

pub struct ReplicationControllers;

impl Strategy for ReplicationControllers {
    fn has_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        // An empty selector defaults to the template's labels.
        let tl = get(obj, &["spec", "template", "metadata", "labels"]).cloned();
        if let Some(spec) = obj.get_mut("spec") {
            default_at(spec, &["replicas"], json!(1));
            if let Some(l) = tl {
                default_at(spec, &["selector"], l);
            }
        }
        default_template(obj, &["spec", "template"]);
    }
    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }
}

pub struct PodTemplates;

impl Strategy for PodTemplates {
    fn default(&self, obj: &mut Value) {
        default_template(obj, &["template"]);
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_template(obj, &["template"], "template", &mut causes);
        causes
    }
}

pub struct StatefulSets;

impl Strategy for StatefulSets {
    fn has_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec") else {
            return;
        };
        if !spec.is_object() {
            return;
        }
        default_at(spec, &["replicas"], json!(1));
        default_at(spec, &["podManagementPolicy"], json!("OrderedReady"));
        default_at(spec, &["revisionHistoryLimit"], json!(10));
        default_at(spec, &["updateStrategy"], json!({"type": "RollingUpdate"}));
        if let Some(us) = spec.get_mut("updateStrategy") {
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                default_at(us, &["rollingUpdate"], json!({}));
                if let Some(ru) = us.get_mut("rollingUpdate") {
                    default_at(ru, &["partition"], json!(0));
                }
            }
        }
        default_at(
            spec,
            &["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        );
        if let Some(Value::Array(vcts)) = spec.get_mut("volumeClaimTemplates") {
            for t in vcts {
                if let Some(s) = t.get_mut("spec") {
                    default_at(s, &["volumeMode"], json!("Filesystem"));
                }
                default_at(t, &["status"], json!({"phase": "Pending"}));
                default_at(t, &["apiVersion"], json!("v1"));
                default_at(t, &["kind"], json!("PersistentVolumeClaim"));
            }
        }
        default_template(obj, &["spec", "template"]);
    }
    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        selector_matches_template(obj, &mut causes);
        validate_template(obj, &["spec", "template"], "spec.template", &mut causes);
        non_negative(obj, &["spec", "replicas"], "spec.replicas", &mut causes);
        if let Some(p) = get(obj, &["spec", "podManagementPolicy"]) {
            if !matches!(p.as_str(), Some("OrderedReady" | "Parallel")) {
                causes.push(Cause::not_supported(
                    "spec.podManagementPolicy",
                    p,
                    &["OrderedReady", "Parallel"],
                ));
            }
        }
        if let Some(old) = old {
            // Only replicas, template, updateStrategy, persistentVolumeClaimRetentionPolicy,
            // minReadySeconds, ordinals and revisionHistoryLimit may change.
            let strip = |o: &Value| {
                let mut s = o.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(m) = s.as_object_mut() {
                    for f in [
                        "replicas",
                        "template",
                        "updateStrategy",
                        "persistentVolumeClaimRetentionPolicy",
                        "minReadySeconds",
                        "ordinals",
                        "revisionHistoryLimit",
                    ] {
                        m.remove(f);
                    }
                }
                s
            };
            if strip(obj) != strip(old) {
                causes.push(Cause::forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
            }
        }
        causes
    }
}

pub struct DaemonSets;

impl Strategy for DaemonSets {
    fn has_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec") else {
            return;
        };
        if !spec.is_object() {
            return;
        }
        default_at(spec, &["revisionHistoryLimit"], json!(10));
        default_at(spec, &["updateStrategy"], json!({"type": "RollingUpdate"}));
        if let Some(us) = spec.get_mut("updateStrategy") {
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                default_at(us, &["rollingUpdate"], json!({}));
                if let Some(ru) = us.get_mut("rollingUpdate") {
                    default_at(ru, &["maxUnavailable"], json!(1));
                    default_at(ru, &["maxSurge"], json!(0));
                }
            }
        }
        default_template(obj, &["spec", "template"]);
    }
    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        selector_matches_template(obj, &mut causes);
        validate_template(obj, &["spec", "template"], "spec.template", &mut causes);
        selector_immutable(obj, old, &mut causes);
        causes
    }
}

pub struct Jobs;

impl Strategy for Jobs {
    fn has_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        let uid = crate::meta::uid(obj).map(str::to_string);
        let name = crate::meta::name(obj).map(str::to_string);
        let Some(spec) = obj.get_mut("spec") else {
            return;
        };
        if !spec.is_object() {
            return;
        }
        let has_completions = spec.get("completions").is_some_and(|v| !v.is_null());
        let has_parallelism = spec.get("parallelism").is_some_and(|v| !v.is_null());
        if !has_completions && !has_parallelism {
            default_at(spec, &["completions"], json!(1));
        }
        default_at(spec, &["parallelism"], json!(1));
        default_at(spec, &["backoffLimit"], json!(6));
        default_at(spec, &["completionMode"], json!("NonIndexed"));
        default_at(spec, &["suspend"], json!(false));
        default_at(spec, &["manualSelector"], Value::Null);
        if spec.get("podFailurePolicy").is_none() {
            default_at(
                spec,
                &["podReplacementPolicy"],
                json!("TerminatingOrFailed"),
            );
        }
        if let Some(m) = spec.as_object_mut() {
            if m.get("manualSelector").is_some_and(Value::is_null) {
                m.remove("manualSelector");
            }
        }
        // The job controller's selector: generated from the job's uid (set by the engine
        // before defaulting on create).
        let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
        if let (false, Some(uid), Some(name)) = (manual, uid, name) {
            if spec.get("selector").is_none_or(Value::is_null) {
                spec["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            }
            if let Some(t) = super::ensure_obj(spec, &["template", "metadata"]) {
                let labels = t.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    for (k, v) in [
                        ("batch.kubernetes.io/controller-uid", uid.as_str()),
                        ("batch.kubernetes.io/job-name", name.as_str()),
                        ("controller-uid", uid.as_str()),
                        ("job-name", name.as_str()),
                    ] {
                        l.entry(k).or_insert_with(|| json!(v));
                    }
                }
            }
        }
        default_template(obj, &["spec", "template"]);
    }
    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_template(obj, &["spec", "template"], "spec.template", &mut causes);
        match get(obj, &["spec", "template", "spec", "restartPolicy"]) {
            Some(p) if matches!(p.as_str(), Some("OnFailure" | "Never")) => {}
            Some(p) => causes.push(Cause::not_supported(
                "spec.template.spec.restartPolicy",
                p,
                &["OnFailure", "Never"],
            )),
            None => {}
        }
        for f in [
            "parallelism",
            "completions",
            "backoffLimit",
            "activeDeadlineSeconds",
            "ttlSecondsAfterFinished",
        ] {
            non_negative(obj, &["spec", f], &format!("spec.{f}"), &mut causes);
        }
        // A generated selector always matches; a manual one must select the template.
        if get(obj, &["spec", "selector"]).is_some_and(|s| !s.is_null()) {
            selector_matches_template(obj, &mut causes);
        }
        if let Some(old) = old {
            for f in ["selector", "completions", "completionMode"] {
                let (n, o) = (get(obj, &["spec", f]), get(old, &["spec", f]));
                if n != o {
                    causes.push(Cause::invalid(
                        format!("spec.{f}"),
                        n.unwrap_or(&Value::Null),
                        "field is immutable",
                    ));
                }
            }
            let t = |o: &Value| get(o, &["spec", "template"]).cloned();
            let suspended = get(old, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true);
            if !suspended && t(obj) != t(old) {
                causes.push(Cause::invalid(
                    "spec.template",
                    get(obj, &["spec", "template"]).unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
        causes
    }
}

pub struct CronJobs;

impl Strategy for CronJobs {
    fn has_generation(&self) -> bool {
        true
    }
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            if !spec.is_object() {
                return;
            }
            default_at(spec, &["concurrencyPolicy"], json!("Allow"));
            default_at(spec, &["suspend"], json!(false));
            default_at(spec, &["successfulJobsHistoryLimit"], json!(3));
            default_at(spec, &["failedJobsHistoryLimit"], json!(1));
        }
        default_template(obj, &["spec", "jobTemplate", "spec", "template"]);
    }
    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        // Its jobs are named `<name>-<minutes since the epoch>` (11 more characters), and
        // job names become a label value (at most 63).
        if let Some(name) = get(obj, &["metadata", "name"]).and_then(Value::as_str) {
            if name.len() > MAX_CRONJOB_NAME {
                causes.push(Cause::invalid(
                    "metadata.name",
                    &json!(name),
                    format!("must be no more than {MAX_CRONJOB_NAME} characters"),
                ));
            }
        }
        fn schedule(o: &Value) -> Option<&str> {
            get(o, &["spec", "schedule"]).and_then(Value::as_str)
        }
        match schedule(obj) {
            None | Some("") => causes.push(Cause::required("spec.schedule")),
            Some(s) => {
                if let Err(e) = validate_cron(s) {
                    causes.push(Cause::invalid("spec.schedule", &json!(s), e));
                }
                // As in Kubernetes: kept on an object that already had it, refused otherwise.
                let had_tz = old.and_then(schedule).is_some_and(|o| o.contains("TZ"));
                if s.contains("TZ") && !had_tz {
                    causes.push(Cause::invalid(
                        "spec.schedule",
                        &json!(s),
                        "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                    ));
                }
            }
        }
        if let Some(tz) = get(obj, &["spec", "timeZone"]).filter(|v| !v.is_null()) {
            if let Err(e) = validate_time_zone(tz) {
                causes.push(Cause::invalid("spec.timeZone", tz, e));
            }
        }
        for f in [
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ] {
            non_negative(obj, &["spec", f], &format!("spec.{f}"), &mut causes);
        }
        if let Some(p) = get(obj, &["spec", "concurrencyPolicy"]) {
            if !matches!(p.as_str(), Some("Allow" | "Forbid" | "Replace")) {
                causes.push(Cause::not_supported(
                    "spec.concurrencyPolicy",
                    p,
                    &["Allow", "Forbid", "Replace"],
                ));
            }
        }
        validate_template(
            obj,
            &["spec", "jobTemplate", "spec", "template"],
            "spec.jobTemplate.spec.template",
            &mut causes,
        );
        causes
    }
}

/// The longest CronJob name Kubernetes accepts.
const MAX_CRONJOB_NAME: usize = 52;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// `spec.timeZone`: an explicit IANA zone this machine's time zone database knows.
fn validate_time_zone(tz: &Value) -> Result<(), String> {
    let Some(name) = tz.as_str() else {
        return Err("timeZone must be a string".into());
    };
    if name.is_empty() {
        return Err("timeZone must be nil or non-empty string".into());
    }
    if name.eq_ignore_ascii_case("local") {
        return Err(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .into(),
        );
    }
    jiff::tz::TimeZone::get(name)
        .map(|_| ())
        .map_err(|_| format!("unknown time zone {name}"))
}

/// A standard 5-field cron expression (or a `@hourly`-style macro).
pub fn validate_cron(s: &str) -> Result<(), String> {
    let s = s.trim();
    let s = s
        .strip_prefix("TZ=")
        .or_else(|| s.strip_prefix("CRON_TZ="))
        .map_or(s, |rest| rest.split_once(' ').map_or("", |(_, r)| r));
    if s.starts_with('@') {
        return match s {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s}",
            fields.len()
        ));
    }
    let limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    let names: [&[&str]; 5] = [&[], &[], &[], &MONTHS, &WEEKDAYS];
    for ((f, (lo, hi)), names) in fields.iter().zip(limits).zip(names) {
        for part in f.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            if let Some(st) = step {
                if st.parse::<u32>().map_or(true, |n| n == 0) {
                    return Err(format!("invalid step: {part}"));
                }
            }
            if range == "*" || range == "?" {
                continue;
            }
            let named = |x: &str| names.iter().any(|n| n.eq_ignore_ascii_case(x));
            let check = |x: &str| -> Result<(), String> {
                if named(x) {
                    return Ok(());
                }
                match x.parse::<u32>() {
                    Ok(n) if n >= lo && n <= hi => Ok(()),
                    _ => Err(format!("value out of range ({lo} - {hi}): {x}")),
                }
            };
            match range.split_once('-') {
                Some((a, b)) => {
                    check(a)?;
                    check(b)?;
                }
                None => check(range)?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_get_kubernetes_defaults() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        Deployments.default(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(
            Deployments.validate(&d, None).is_empty(),
            "{:?}",
            Deployments.validate(&d, None)
        );
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        let causes = Deployments.validate(&d, None);
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
        let no_sel =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}}});
        assert!(Deployments
            .validate(&no_sel, None)
            .iter()
            .any(|c| c.field == "spec.selector"));
    }

    #[test]
    fn jobs_get_generated_selectors() {
        let mut j = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}});
        Jobs.default(&mut j);
        assert_eq!(
            j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"]["job-name"],
            "pi"
        );
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert!(
            Jobs.validate(&j, None).is_empty(),
            "{:?}",
            Jobs.validate(&j, None)
        );
    }

    #[test]
    fn cron_expressions() {
        assert!(validate_cron("*/5 * * * *").is_ok());
        assert!(validate_cron("0 3 * * 1-5").is_ok());
        assert!(validate_cron("@hourly").is_ok());
        assert!(validate_cron("TZ=UTC 0 0 * * *").is_ok());
        assert!(validate_cron("61 * * * *").is_err());
        assert!(validate_cron("0 0 * JAN-mar mon-FRI").is_ok());
        assert!(validate_cron("0 0 * * xyz").is_err(), "not a weekday name");
        assert!(
            validate_cron("0 0 * mon *").is_err(),
            "a weekday name in the month field"
        );
        assert!(
            validate_cron("0 jan * * *").is_err(),
            "names only in month and weekday"
        );
        assert!(validate_cron("* * *").is_err());
    }

    fn cronjob(name: &str, spec: Value) -> Value {
        let mut c = json!({"metadata": {"name": name}, "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}},
        }});
        if let (Some(c), Some(extra)) = (c["spec"].as_object_mut(), spec.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        CronJobs.default(&mut c);
        c
    }

    fn fields(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| c.field.clone()).collect()
    }

    #[test]
    fn cronjob_validation_follows_kubernetes() {
        assert!(CronJobs
            .validate(&cronjob("ok", json!({})), None)
            .is_empty());
        let ok_tz = cronjob("ok", json!({"timeZone": "Europe/Berlin"}));
        assert!(CronJobs.validate(&ok_tz, None).is_empty());

        let long = "x".repeat(53);
        assert_eq!(
            fields(&CronJobs.validate(&cronjob(&long, json!({})), None)),
            ["metadata.name"]
        );
        assert!(CronJobs
            .validate(&cronjob(&"x".repeat(52), json!({})), None)
            .is_empty());

        for tz in ["Mars/Olympus_Mons", "", "Local"] {
            let c = cronjob("c", json!({"timeZone": tz}));
            assert_eq!(
                fields(&CronJobs.validate(&c, None)),
                ["spec.timeZone"],
                "{tz:?}"
            );
        }
        for f in [
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ] {
            let c = cronjob("c", json!({ f: -1 }));
            assert_eq!(
                fields(&CronJobs.validate(&c, None)),
                [format!("spec.{f}")],
                "{f}"
            );
        }

        // TZ= in the schedule: refused on create, kept on an object that already had it.
        let tz = cronjob("c", json!({"schedule": "CRON_TZ=UTC 0 0 * * *"}));
        let causes = CronJobs.validate(&tz, None);
        assert_eq!(fields(&causes), ["spec.schedule"]);
        assert!(causes[0].message.contains("use timeZone field instead"));
        assert!(CronJobs.validate(&tz, Some(&tz)).is_empty());
        let plain = cronjob("c", json!({}));
        assert_eq!(
            fields(&CronJobs.validate(&tz, Some(&plain))),
            ["spec.schedule"]
        );
    }

    #[test]
    fn a_manual_job_selector_must_select_the_template() {
        let job = |labels: Value| {
            let mut j = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {
                "manualSelector": true,
                "selector": {"matchLabels": {"app": "pi"}},
                "template": {"metadata": {"labels": labels},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}});
            Jobs.default(&mut j);
            j
        };
        assert!(Jobs.validate(&job(json!({"app": "pi"})), None).is_empty());
        assert_eq!(
            fields(&Jobs.validate(&job(json!({"app": "other"})), None)),
            ["spec.template.metadata.labels"]
        );
    }
}
