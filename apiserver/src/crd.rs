//! CustomResourceDefinitions: an established CRD adds registry rows at run time, so its custom
//! resources are served (CRUD, watch, status/scale, tables) without a restart.
//!
//! The apiserver that writes a CRD registers it before answering; every apiserver also follows
//! CRD changes through its watch cache, so all members serve the same resources.

use std::sync::Arc;

use serde_json::{json, Value};

pub use crate::crdschema::CustomTypeInfo;
use crate::error::Cause;
use crate::registry::{custom_prefix, CustomInfo, ResourceDef, ScalePaths, Sub, ALL_VERBS};
use crate::storage::Outcome;
use crate::strategy::Generic;
use crate::validation::NameRule;
use crate::watchcache::{EventKind, Start};
use crate::{meta, Api};

pub const CRD_PREFIX: &str = "/registry/customresourcedefinitions/";

fn is_crd(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions"
}

pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<String> {
    crate::crdschema::unknown_fields(schema, obj)
}

pub fn validate_custom(schema: &Value, obj: &Value) -> Vec<Cause> {
    crate::crdschema::validate(schema, obj)
}

pub fn prune_and_default(schema: &Value, obj: &mut Value) {
    crate::crdschema::prune_and_default(schema, obj);
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The registry rows a CRD stands for (one per served version).
pub fn rows_of(crd: &Value) -> Vec<ResourceDef> {
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let Some(group) = str_at(&spec, &["group"]) else {
        return Vec::new();
    };
    let Some(plural) = str_at(&spec, &["names", "plural"]) else {
        return Vec::new();
    };
    let Some(kind) = str_at(&spec, &["names", "kind"]) else {
        return Vec::new();
    };
    let singular = str_at(&spec, &["names", "singular"])
        .map_or_else(|| kind.to_ascii_lowercase(), str::to_string);
    let namespaced = str_at(&spec, &["scope"]) != Some("Cluster");
    let crd_name = meta::name(crd).unwrap_or("").to_string();
    let mut out = Vec::new();
    for v in spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let Some(version) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        let mut subs = Vec::new();
        let sr = v.get("subresources");
        if sr.and_then(|s| s.get("status")).is_some() {
            subs.push(Sub::Status);
        }
        let scale = sr.and_then(|s| s.get("scale")).map(|s| ScalePaths {
            spec_replicas: s
                .get("specReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas: s
                .get("statusReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
        if scale.is_some() {
            subs.push(Sub::Scale);
        }
        out.push(ResourceDef {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            kind: kind.to_string(),
            namespaced,
            short_names: strings(spec.get("names").and_then(|n| n.get("shortNames"))),
            categories: strings(spec.get("names").and_then(|n| n.get("categories"))),
            verbs: ALL_VERBS.to_vec(),
            subresources: subs,
            schema: None,
            prefix: custom_prefix(group, plural),
            strategy: Arc::new(Generic {
                names: NameRule::Subdomain,
                generation: true,
            }),
            custom: Some(CustomInfo {
                schema: v
                    .get("schema")
                    .and_then(|s| s.get("openAPIV3Schema"))
                    .cloned(),
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .cloned()
                    .unwrap_or(json!([])),
                scale,
                crd_name: crd_name.clone(),
                storage: v.get("storage").and_then(Value::as_bool) == Some(true),
            }),
        });
    }
    out
}

/// The status an established CRD has.
fn established_status(crd: &Value) -> Value {
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let mut names = spec.get("names").cloned().unwrap_or(json!({}));
    if let (Some(m), Some(kind)) = (names.as_object_mut(), str_at(&spec, &["names", "kind"])) {
        m.entry("singular")
            .or_insert_with(|| json!(kind.to_ascii_lowercase()));
        m.entry("listKind")
            .or_insert_with(|| json!(format!("{kind}List")));
    }
    let old = crd.get("status").cloned().unwrap_or(json!({}));
    let cond_time = |ty: &str| -> Value {
        old.get("conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
            })
            .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(meta::now()))
    };
    let mut stored: Vec<String> = strings(old.get("storedVersions"));
    for v in spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            if let Some(n) = v.get("name").and_then(Value::as_str) {
                if !stored.iter().any(|s| s == n) {
                    stored.push(n.to_string());
                }
            }
        }
    }
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": cond_time("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": cond_time("Established")},
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    })
}

/// Registers a CRD's resources and marks it established.
async fn establish(api: &Api, crd: &Value) {
    let name = meta::name(crd).unwrap_or("").to_string();
    if meta::is_deleting(crd) {
        return;
    }
    api.registry.set_custom(&name, rows_of(crd));
    let status = established_status(crd);
    if crd.get("status") == Some(&status) {
        return;
    }
    let key = format!("{CRD_PREFIX}{name}");
    for _ in 0..8 {
        let cur = match api.storage.get(&key, None, false).await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(crd = %name, error = %e, "reading CRD to establish it");
                return;
            }
        };
        let status = established_status(&cur.obj);
        if cur.obj.get("status") == Some(&status) {
            return;
        }
        let mut next = cur.obj.clone();
        if let Some(m) = next.as_object_mut() {
            m.insert("status".into(), status);
        }
        match api.storage.update(&key, cur.rv, &next, &[]).await {
            Ok(Outcome::Done(_)) => return,
            Ok(Outcome::Failed(_)) => continue,
            Err(e) => {
                tracing::warn!(crd = %name, error = %e, "writing CRD status");
                return;
            }
        }
    }
}

/// After a write through the REST engine: CRDs are (re)established at once.
pub async fn after_write(api: &Api, def: &ResourceDef, obj: &Value) {
    if is_crd(def) {
        establish(api, obj).await;
    }
}

/// After a delete: a CRD's resources stop being served and its objects are removed.
pub async fn after_delete(api: &Api, def: &ResourceDef, obj: &Value) {
    if !is_crd(def) {
        return;
    }
    let name = meta::name(obj).unwrap_or("").to_string();
    let rows = rows_of(obj);
    api.registry.set_custom(&name, Vec::new());
    if let Some(row) = rows.first() {
        if let Err(e) = api.storage.delete_prefix(&row.prefix).await {
            tracing::warn!(crd = %name, error = %e, "deleting the custom resources of a deleted CRD");
        }
    }
}

/// Follows CRDs through the watch cache (writes made by other apiservers, and start-up).
pub async fn sync(api: Arc<Api>) {
    loop {
        let mut sub = api.cache.subscribe_snapshot(CRD_PREFIX);
        if let Start::Snapshot(snap) = std::mem::replace(
            &mut sub.start,
            Start::After {
                backlog: Vec::new(),
            },
        ) {
            for (_, e) in snap.items {
                establish(&api, &e.obj()).await;
            }
        }
        let epoch = sub.epoch;
        loop {
            match sub.rx.recv().await {
                Ok(ev) => {
                    if ev.seq <= sub.seq || !ev.key.starts_with(CRD_PREFIX) {
                        continue;
                    }
                    match ev.kind {
                        EventKind::Deleted => {
                            let name = meta::name(&ev.obj()).unwrap_or("").to_string();
                            api.registry.set_custom(&name, Vec::new());
                        }
                        _ => establish(&api, &ev.obj()).await,
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            if api.cache.epoch() != epoch {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_crd() -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                     "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
                    {"name": "v1beta1", "served": false, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            }
        })
    }

    #[test]
    fn served_versions_become_rows() {
        let rows = rows_of(&widget_crd());
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (
                r.group.as_str(),
                r.version.as_str(),
                r.plural.as_str(),
                r.kind.as_str()
            ),
            ("example.com", "v1", "widgets", "Widget")
        );
        assert_eq!(r.singular, "widget");
        assert!(r.namespaced);
        assert!(r.has(Sub::Status) && r.has(Sub::Scale));
        assert_eq!(r.prefix, "/registry/example.com/widgets/");
        assert_eq!(
            r.custom
                .as_ref()
                .and_then(|c| c.scale.as_ref())
                .map(|s| s.spec_replicas.as_str()),
            Some(".spec.size")
        );
    }

    #[test]
    fn established_status_names_and_conditions() {
        let s = established_status(&widget_crd());
        assert_eq!(s["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(s["conditions"][1]["type"], "Established");
        assert_eq!(s["storedVersions"], json!(["v1"]));
    }
}
