//! Pods and pod templates: Kubernetes' defaults (SetDefaults_PodSpec, _Container, probes,
//! volumes) and the validation clients depend on.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::{default_at, get, Strategy};
use crate::error::Cause;
use crate::validation::{self, NameRule};

pub struct Pods;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

/// `Always` for `:latest` or untagged images, else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.rsplit_once(':') {
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
        None if image.contains('@') => "IfNotPresent",
        None => "Always",
    }
}

fn default_probe(probe: &mut Value) {
    if !probe.is_object() {
        return;
    }
    default_at(probe, &["timeoutSeconds"], json!(1));
    default_at(probe, &["periodSeconds"], json!(10));
    default_at(probe, &["successThreshold"], json!(1));
    default_at(probe, &["failureThreshold"], json!(3));
    if let Some(h) = probe.get_mut("httpGet") {
        default_at(h, &["scheme"], json!("HTTP"));
        default_at(h, &["path"], json!("/"));
    }
}

fn default_container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    default_at(
        c,
        &["terminationMessagePath"],
        json!("/dev/termination-log"),
    );
    default_at(c, &["terminationMessagePolicy"], json!("File"));
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    default_at(c, &["imagePullPolicy"], json!(default_pull_policy(&image)));
    default_at(c, &["resources"], json!({}));
    // A limit without a request requests the limit (Kubernetes' SetDefaults_Pod).
    if let Some(limits) = c["resources"]["limits"].as_object().cloned() {
        if let Some(res) = c["resources"].as_object_mut() {
            let requests = res
                .entry("requests")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(r) = requests.as_object_mut() {
                for (k, v) in limits {
                    r.entry(k).or_insert(v);
                }
            }
        }
    }
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports {
            default_at(p, &["protocol"], json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe) {
            default_probe(p);
        }
    }
    if let Some(Value::Array(env)) = c.get_mut("env") {
        for e in env {
            if let Some(fr) = e.get_mut("valueFrom").and_then(|v| v.get_mut("fieldRef")) {
                default_at(fr, &["apiVersion"], json!("v1"));
            }
        }
    }
}

/// Kubernetes' defaults for a PodSpec (pods and every pod template).
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_at(spec, &["restartPolicy"], json!("Always"));
    default_at(spec, &["terminationGracePeriodSeconds"], json!(30));
    default_at(spec, &["dnsPolicy"], json!("ClusterFirst"));
    default_at(spec, &["securityContext"], json!({}));
    default_at(spec, &["schedulerName"], json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs {
                default_container(c);
            }
        }
    }
    if let Some(Value::Array(vols)) = spec.get_mut("volumes") {
        for v in vols {
            for src in ["configMap", "secret"] {
                if let Some(s) = v.get_mut(src) {
                    default_at(s, &["defaultMode"], json!(420));
                }
            }
            if let Some(p) = v.get_mut("projected") {
                default_at(p, &["defaultMode"], json!(420));
            }
        }
    }
}

/// Validates a PodSpec at `field` (e.g. `spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        causes.push(Cause::required(format!("{field}.containers")));
        return;
    };
    let mut volume_names = HashSet::new();
    if let Some(vols) = spec.get("volumes").and_then(Value::as_array) {
        for (i, v) in vols.iter().enumerate() {
            let f = format!("{field}.volumes[{i}].name");
            match v.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(f)),
                Some(n) => {
                    for e in validation::dns1123_label(n) {
                        causes.push(Cause::invalid(&f, &json!(n), e));
                    }
                    if !volume_names.insert(n.to_string()) {
                        causes.push(Cause::duplicate(&f, &json!(n)));
                    }
                }
            }
        }
    }
    let mut names = HashSet::new();
    for list in ["initContainers", "containers"] {
        let cs = spec.get(list).and_then(Value::as_array);
        if list == "containers" && cs.is_none_or(|c| c.is_empty()) {
            causes.push(Cause::required(format!("{field}.containers")));
        }
        for (i, c) in cs.into_iter().flatten().enumerate() {
            let cf = format!("{field}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(format!("{cf}.name"))),
                Some(n) => {
                    for e in validation::dns1123_label(n) {
                        causes.push(Cause::invalid(format!("{cf}.name"), &json!(n), e));
                    }
                    if !names.insert(n.to_string()) {
                        causes.push(Cause::duplicate(format!("{cf}.name"), &json!(n)));
                    }
                }
            }
            match c.get("image").and_then(Value::as_str) {
                None => causes.push(Cause::required(format!("{cf}.image"))),
                Some(img) if img.trim() != img || img.is_empty() => causes.push(Cause::invalid(
                    format!("{cf}.image"),
                    &json!(img),
                    "must not have leading or trailing whitespace",
                )),
                _ => {}
            }
            if let Some(p) = c.get("imagePullPolicy") {
                if !p.as_str().is_some_and(|s| PULL_POLICIES.contains(&s)) {
                    causes.push(Cause::not_supported(
                        format!("{cf}.imagePullPolicy"),
                        p,
                        PULL_POLICIES,
                    ));
                }
            }
            for (j, p) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let pf = format!("{cf}.ports[{j}]");
                match p.get("containerPort").and_then(Value::as_i64) {
                    Some(n) if (1..=65535).contains(&n) => {}
                    Some(n) => causes.push(Cause::invalid(
                        format!("{pf}.containerPort"),
                        &json!(n),
                        "must be between 1 and 65535, inclusive",
                    )),
                    None => causes.push(Cause::required(format!("{pf}.containerPort"))),
                }
                if let Some(proto) = p.get("protocol") {
                    if !proto.as_str().is_some_and(|s| PROTOCOLS.contains(&s)) {
                        causes.push(Cause::not_supported(
                            format!("{pf}.protocol"),
                            proto,
                            PROTOCOLS,
                        ));
                    }
                }
            }
            for (j, m) in c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let mf = format!("{cf}.volumeMounts[{j}]");
                match m.get("name").and_then(Value::as_str) {
                    Some(n) if volume_names.contains(n) => {}
                    Some(n) => causes.push(Cause::new(
                        "FieldValueNotFound",
                        format!("{mf}.name"),
                        format!("Not found: {n:?}"),
                    )),
                    None => causes.push(Cause::required(format!("{mf}.name"))),
                }
                if m.get("mountPath")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::required(format!("{mf}.mountPath")));
                }
            }
            for (j, e) in c
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if e.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::required(format!("{cf}.env[{j}].name")));
                }
            }
        }
    }
    if let Some(p) = spec.get("restartPolicy") {
        if !p.as_str().is_some_and(|s| RESTART_POLICIES.contains(&s)) {
            causes.push(Cause::not_supported(
                format!("{field}.restartPolicy"),
                p,
                RESTART_POLICIES,
            ));
        }
    }
    if let Some(p) = spec.get("dnsPolicy") {
        if !p.as_str().is_some_and(|s| DNS_POLICIES.contains(&s)) {
            causes.push(Cause::not_supported(
                format!("{field}.dnsPolicy"),
                p,
                DNS_POLICIES,
            ));
        }
    }
    if let Some(g) = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
    {
        if g < 0 {
            causes.push(Cause::invalid(
                format!("{field}.terminationGracePeriodSeconds"),
                &json!(g),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for list in ["containers", "initContainers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = c
                .get("resources")
                .and_then(|r| r.get("requests"))
                .and_then(Value::as_object);
            let lim = c
                .get("resources")
                .and_then(|r| r.get("limits"))
                .and_then(Value::as_object);
            if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
                any = true;
            }
            for res in ["cpu", "memory"] {
                let l = lim.and_then(|m| m.get(res));
                let r = req.and_then(|m| m.get(res)).or(l);
                if l.is_none() || r != l {
                    guaranteed = false;
                }
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

impl Strategy for Pods {
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    fn default(&self, obj: &mut Value) {
        // A mirror pod has no ServiceAccount (ServiceAccount admission leaves it alone).
        let mirror = crate::auth::node::is_mirror_pod(obj);
        if let Some(spec) = obj.get_mut("spec") {
            default_pod_spec(spec);
            default_at(spec, &["enableServiceLinks"], json!(true));
            if !mirror {
                default_at(spec, &["serviceAccountName"], json!("default"));
                let sa = spec
                    .get("serviceAccountName")
                    .cloned()
                    .unwrap_or(json!("default"));
                default_at(spec, &["serviceAccount"], sa);
            }
            default_at(spec, &["priority"], json!(0));
            default_at(spec, &["preemptionPolicy"], json!("PreemptLowerPriority"));
            // DefaultTolerationSeconds admission: tolerate not-ready/unreachable for 300 s.
            let tol = spec
                .as_object_mut()
                .map(|m| m.entry("tolerations").or_insert_with(|| json!([])));
            if let Some(Value::Array(t)) = tol {
                for key in [
                    "node.kubernetes.io/not-ready",
                    "node.kubernetes.io/unreachable",
                ] {
                    let has = t.iter().any(|x| {
                        x.get("key").and_then(Value::as_str) == Some(key)
                            || (x.get("operator").and_then(Value::as_str) == Some("Exists")
                                && x.get("key").is_none())
                    });
                    if !has {
                        t.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                    }
                }
            }
        }
    }

    fn prepare_create(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_toleration_seconds(spec);
        }
        let qos = obj.get("spec").map(qos_class).unwrap_or("BestEffort");
        if let Some(m) = obj.as_object_mut() {
            m.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_pod_spec(obj.get("spec"), "spec", &mut causes);
        if let Some(old) = old {
            let strip = |spec: Option<&Value>| -> Value {
                let mut s = spec.cloned().unwrap_or(Value::Null);
                for list in ["containers", "initContainers"] {
                    if let Some(Value::Array(cs)) = s.get_mut(list) {
                        for c in cs {
                            if let Some(m) = c.as_object_mut() {
                                m.remove("image");
                            }
                        }
                    }
                }
                if let Some(m) = s.as_object_mut() {
                    m.remove("activeDeadlineSeconds");
                    m.remove("tolerations");
                    m.remove("terminationGracePeriodSeconds");
                }
                s
            };
            if strip(obj.get("spec")) != strip(old.get("spec")) {
                causes.push(Cause::forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,\
                     `spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
                     `spec.tolerations` (only additions to existing tolerations),\
                     `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was \
                     previously negative)",
                ));
            }
        }
        causes
    }

    fn return_deleted_object(&self) -> bool {
        true
    }
}

/// Defaults of a pod template at `path` (its `spec`).
/// Seconds a pod stays on a node that became not-ready or unreachable (the
/// DefaultTolerationSeconds admission plugin's default).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// DefaultTolerationSeconds: a pod that does not say how long it tolerates its node being
/// not-ready or unreachable tolerates it for [`DEFAULT_TOLERATION_SECONDS`], after which the
/// node lifecycle controller evicts it.
pub fn default_toleration_seconds(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    let list = m.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let covered = list.iter().any(|t| {
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let tkey = t.get("key").and_then(Value::as_str).unwrap_or("");
            let exists = t.get("operator").and_then(Value::as_str) == Some("Exists");
            (effect.is_empty() || effect == "NoExecute")
                && (tkey == key || (tkey.is_empty() && exists))
        });
        if !covered {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

pub fn default_template(obj: &mut Value, path: &[&str]) {
    let mut cur = obj;
    for p in path {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(spec) = cur.get_mut("spec") {
        default_pod_spec(spec);
    }
    if let Some(m) = cur.as_object_mut() {
        m.entry("metadata").or_insert_with(|| json!({}));
    }
}

/// Validates a pod template at `path` / `field`.
pub fn validate_template(obj: &Value, path: &[&str], field: &str, causes: &mut Vec<Cause>) {
    let t = get(obj, path);
    if t.is_none() {
        causes.push(Cause::required(field));
        return;
    }
    let mut mp: Vec<&str> = path.to_vec();
    mp.push("metadata");
    super::validate_template_meta(obj, &mp, &format!("{field}.metadata"), causes);
    validate_pod_spec(
        t.and_then(|t| t.get("spec")),
        &format!("{field}.spec"),
        causes,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/nginx:2"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn default_toleration_seconds_fill_in_only_what_the_pod_leaves_open() {
        let mut spec = json!({"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
        ]});
        default_toleration_seconds(&mut spec);
        let t = spec["tolerations"].as_array().cloned().unwrap_or_default();
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(
            t[0]["tolerationSeconds"], 5,
            "the pod's own toleration is kept"
        );
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(t[1]["tolerationSeconds"], DEFAULT_TOLERATION_SECONDS);
        // Tolerating everything leaves nothing to add.
        let mut all = json!({"tolerations": [{"operator": "Exists"}]});
        default_toleration_seconds(&mut all);
        assert_eq!(all["tolerations"].as_array().map(Vec::len), Some(1));
        let mut none = json!({});
        default_toleration_seconds(&mut none);
        assert_eq!(none["tolerations"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn pods_get_kubernetes_defaults_and_status() {
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1", "ports": [{"containerPort": 80}]}]}});
        Pods.default(&mut p);
        Pods.prepare_create(&mut p);
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(p["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(p["spec"]["schedulerName"], "default-scheduler");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(
            p["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(p["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(p["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
        let before = p.clone();
        Pods.default(&mut p);
        assert_eq!(p, before, "defaulting is idempotent");
    }

    #[test]
    fn invalid_pods_name_their_fields() {
        let p = json!({"spec": {"containers": [{"name": "Bad_Name"}, {"name": "x", "image": "i", "ports": [{"containerPort": 70000}]}], "restartPolicy": "Sometimes"}});
        let causes = Pods.validate(&p, None);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.containers[0].name"), "{fields:?}");
        assert!(fields.contains(&"spec.containers[0].image"), "{fields:?}");
        assert!(
            fields.contains(&"spec.containers[1].ports[0].containerPort"),
            "{fields:?}"
        );
        assert!(fields.contains(&"spec.restartPolicy"), "{fields:?}");
        assert!(Pods
            .validate(&json!({"spec": {}}), None)
            .iter()
            .any(|c| c.field == "spec.containers"));
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(&json!({"containers": [{}]})), "BestEffort");
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
    }
}
