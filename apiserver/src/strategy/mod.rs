//! Per-resource behaviour: defaulting, validation, and what each write path may change
//! (Kubernetes' `RESTCreateStrategy` / `RESTUpdateStrategy` and its defaulting functions).
//!
//! The REST engine calls these hooks in a fixed order: decode → [`Strategy::default`] →
//! [`Strategy::prepare_create`] / [`Strategy::prepare_update`] → [`Strategy::validate`].

mod apps;
mod core;
mod other;
pub mod pod;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::Cause;
use crate::validation::{self, NameRule};

/// Behaviour of one resource.
pub trait Strategy: Send + Sync {
    /// How names are validated.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }
    /// Whether `metadata.generation` is kept (1 on create, +1 when anything but metadata and
    /// status changes).
    fn has_generation(&self) -> bool {
        false
    }
    /// Kubernetes' defaulting (applied on every write, idempotent).
    fn default(&self, _obj: &mut Value) {}
    /// On create: clear or initialize what a client may not set (e.g. status).
    fn prepare_create(&self, _obj: &mut Value) {}
    /// On update through the main resource (status already carried over by the engine when
    /// the resource has a status subresource).
    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}
    /// Type-specific validation. `old` is set on updates.
    fn validate(&self, _obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        Vec::new()
    }
    /// Whether a PUT of a missing object creates it.
    fn allow_create_on_update(&self) -> bool {
        false
    }
    /// Whether DELETE answers with the deleted object (else a `Status`).
    fn return_deleted_object(&self) -> bool {
        false
    }
}

/// A resource without special behaviour.
pub struct Generic {
    pub names: NameRule,
    pub generation: bool,
}

impl Strategy for Generic {
    fn name_rule(&self) -> NameRule {
        self.names
    }
    fn has_generation(&self) -> bool {
        self.generation
    }
}

/// The strategy of a built-in resource.
pub fn for_builtin(group: &str, plural: &str) -> Arc<dyn Strategy> {
    match (group, plural) {
        ("", "namespaces") => Arc::new(core::Namespaces),
        ("", "pods") => Arc::new(pod::Pods),
        ("", "services") => Arc::new(core::Services),
        ("", "configmaps") => Arc::new(core::ConfigMaps),
        ("", "secrets") => Arc::new(core::Secrets),
        ("", "nodes") => Arc::new(core::Nodes),
        ("", "events") | ("events.k8s.io", "events") => Arc::new(Generic {
            names: NameRule::Subdomain,
            generation: false,
        }),
        ("", "persistentvolumeclaims") => Arc::new(core::Pvcs),
        ("", "persistentvolumes") => Arc::new(core::Pvs),
        ("", "replicationcontrollers") => Arc::new(apps::ReplicationControllers),
        ("", "podtemplates") => Arc::new(apps::PodTemplates),
        ("apps", "deployments") => Arc::new(apps::Deployments),
        ("apps", "replicasets") => Arc::new(apps::ReplicaSets),
        ("apps", "statefulsets") => Arc::new(apps::StatefulSets),
        ("apps", "daemonsets") => Arc::new(apps::DaemonSets),
        ("batch", "jobs") => Arc::new(apps::Jobs),
        ("batch", "cronjobs") => Arc::new(apps::CronJobs),
        ("rbac.authorization.k8s.io", _) => Arc::new(Generic {
            names: NameRule::PathSegment,
            generation: false,
        }),
        ("policy", "poddisruptionbudgets") => Arc::new(Generic {
            names: NameRule::Subdomain,
            generation: true,
        }),
        ("apiextensions.k8s.io", "customresourcedefinitions") => Arc::new(other::Crds),
        ("coordination.k8s.io", "leases") => Arc::new(Generic {
            names: NameRule::Subdomain,
            generation: false,
        }),
        ("discovery.k8s.io", "endpointslices") => Arc::new(other::EndpointSlices),
        _ => Arc::new(Generic {
            names: NameRule::Subdomain,
            generation: false,
        }),
    }
}

// ------------------------------------------------------------------ shared helpers

/// Sets `obj[path...] = value` if it is missing or null.
pub(crate) fn default_at(obj: &mut Value, path: &[&str], value: Value) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in init {
        if !cur.is_object() {
            return;
        }
        let Some(next) = cur.get_mut(*p) else { return };
        cur = next;
    }
    if let Some(m) = cur.as_object_mut() {
        match m.get(*last) {
            Some(v) if !v.is_null() => {}
            _ => {
                m.insert(last.to_string(), value);
            }
        }
    }
}

/// Ensures `obj[path...]` is an object (creating intermediate objects), returning it.
pub(crate) fn ensure_obj<'a>(
    obj: &'a mut Value,
    path: &[&str],
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let mut cur = obj;
    for p in path {
        let m = cur.as_object_mut()?;
        let e = m.entry(p.to_string()).or_insert_with(|| json!({}));
        if e.is_null() {
            *e = json!({});
        }
        cur = e;
    }
    cur.as_object_mut()
}

pub(crate) fn get<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = obj;
    for p in path {
        cur = cur.get(*p)?;
    }
    Some(cur)
}

/// Validates a metav1.LabelSelector at `field` and that `labels` (a template's labels) match
/// it; `required` when the selector may not be empty.
pub(crate) fn validate_selector_matches(
    selector: Option<&Value>,
    labels: Option<&Value>,
    field: &str,
    labels_field: &str,
    causes: &mut Vec<Cause>,
) {
    let Some(sel) = selector.filter(|s| !s.is_null()) else {
        causes.push(Cause::required(field));
        return;
    };
    let empty = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.is_empty())
        && sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
    if empty {
        causes.push(Cause::invalid(
            field,
            sel,
            "empty selector is invalid for deployment",
        ));
        return;
    }
    match crate::selectors::LabelSelector::from_object(sel) {
        Ok(s) => {
            if !s.matches(labels.and_then(Value::as_object)) {
                causes.push(Cause::invalid(
                    labels_field,
                    labels.unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                ));
            }
        }
        Err(e) => causes.push(Cause::invalid(field, sel, e.to_string())),
    }
}

/// Validates a non-negative integer field if present.
pub(crate) fn non_negative(obj: &Value, path: &[&str], field: &str, causes: &mut Vec<Cause>) {
    if let Some(v) = get(obj, path) {
        match v.as_i64() {
            Some(n) if n < 0 => causes.push(Cause::invalid(
                field,
                v,
                "must be greater than or equal to 0",
            )),
            _ => {}
        }
    }
}

/// Labels and annotations of the object's metadata at `path`.
pub(crate) fn validate_template_meta(
    obj: &Value,
    path: &[&str],
    field: &str,
    causes: &mut Vec<Cause>,
) {
    let m = get(obj, path);
    validation::labels(
        m.and_then(|m| m.get("labels")),
        &format!("{field}.labels"),
        causes,
    );
    validation::annotations(
        m.and_then(|m| m.get("annotations")),
        &format!("{field}.annotations"),
        causes,
    );
}
