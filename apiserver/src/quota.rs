//! ResourceQuota: admission refuses a new object that would take a namespace past a quota's
//! `spec.hard`, with Kubernetes' message, and a task keeps every quota's `status.hard` and
//! `status.used` current from the watch cache (Kubernetes' quota controller).
//!
//! Tracked: object counts (`pods`, `services`, `secrets`, `configmaps`,
//! `persistentvolumeclaims`, `replicationcontrollers`, `resourcequotas`, and
//! `count/<resource>[.<group>]` for any resource) and the compute resources of pods that have
//! not ended (`requests.cpu`/`cpu`, `requests.memory`/`memory`, `limits.cpu`,
//! `limits.memory`, and the same for `ephemeral-storage`). Usage is counted from the watch
//! cache at admission, so two creates that race may both pass a quota's last unit
//! (Kubernetes serialises them through the quota's status).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use keelson_proto::quantity::milli_value;
use serde_json::{json, Value};

use crate::error::{ApiError, Result, Subject};
use crate::meta;
use crate::registry::ResourceDef;
use crate::Api;

/// The `(group, resource)` a count key counts.
fn counted(key: &str) -> Option<(String, String)> {
    if let Some(rest) = key.strip_prefix("count/") {
        return Some(match rest.split_once('.') {
            Some((res, group)) => (group.to_string(), res.to_string()),
            None => (String::new(), rest.to_string()),
        });
    }
    match key {
        "pods"
        | "services"
        | "secrets"
        | "configmaps"
        | "persistentvolumeclaims"
        | "replicationcontrollers"
        | "resourcequotas" => Some((String::new(), key.to_string())),
        _ => None,
    }
}

/// The container field and resource a compute key sums: `requests.cpu` → (requests, cpu).
fn compute(key: &str) -> Option<(&'static str, &str)> {
    match key {
        "cpu" | "memory" | "ephemeral-storage" => Some(("requests", key)),
        _ => {
            let (field, res) = key.split_once('.')?;
            let field = match field {
                "requests" => "requests",
                "limits" => "limits",
                _ => return None,
            };
            matches!(res, "cpu" | "memory" | "ephemeral-storage").then_some((field, res))
        }
    }
}

fn is_pods(group: &str, plural: &str) -> bool {
    group.is_empty() && plural == "pods"
}

fn ended(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// What one object of `(group, plural)` adds to `key`, in milli-units; `None` if it is not
/// counted there.
fn charge(key: &str, group: &str, plural: &str, obj: &Value) -> Option<i128> {
    if let Some((g, r)) = counted(key) {
        if g != group || r != plural || (is_pods(group, plural) && ended(obj)) {
            return None;
        }
        return Some(1000);
    }
    let (field, res) = compute(key)?;
    if !is_pods(group, plural) || ended(obj) {
        return None;
    }
    let sum = |list: &str| -> Vec<Option<i128>> {
        obj["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["resources"][field][res].as_str().and_then(milli_value))
            .collect()
    };
    let containers: i128 = sum("containers").into_iter().flatten().sum();
    let init = sum("initContainers")
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
    Some(containers.max(init))
}

/// Containers of a pod that do not say `field.res` (a compute quota needs every one to).
fn unspecified(key: &str, pod: &Value) -> Vec<String> {
    let Some((field, res)) = compute(key) else {
        return Vec::new();
    };
    ["initContainers", "containers"]
        .iter()
        .filter_map(|l| pod["spec"][*l].as_array())
        .flatten()
        .filter(|c| c["resources"][field][res].is_null())
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// A milli-unit amount as Kubernetes prints a quantity of `key`.
fn show(key: &str, m: i128) -> String {
    if key.ends_with("memory") || key.ends_with("ephemeral-storage") {
        let bytes = m / 1000;
        for (suffix, unit) in [("Gi", 1i128 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if bytes != 0 && bytes % unit == 0 {
                return format!("{}{suffix}", bytes / unit);
            }
        }
        return bytes.to_string();
    }
    if m % 1000 == 0 {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

/// The namespace's quotas, from the watch cache.
fn quotas(api: &Api, ns: &str) -> Vec<Value> {
    let Some(def) = api.registry.get("", "v1", "resourcequotas") else {
        return Vec::new();
    };
    api.cache
        .snapshot(&format!("{}{ns}/", def.prefix))
        .items
        .into_iter()
        .map(|(_, e)| (*e.obj()).clone())
        .collect()
}

/// What a namespace uses of `key` now.
fn used(api: &Api, ns: &str, key: &str) -> i128 {
    let (group, plural) = match counted(key) {
        Some(gp) => gp,
        None if compute(key).is_some() => (String::new(), "pods".to_string()),
        None => return 0,
    };
    let Some(def) = api
        .registry
        .all()
        .into_iter()
        .find(|d| d.group == group && d.plural == plural && d.namespaced)
    else {
        return 0;
    };
    api.cache
        .snapshot(&format!("{}{ns}/", def.prefix))
        .items
        .iter()
        .filter_map(|(_, e)| charge(key, &group, &plural, &e.obj()))
        .sum()
}

fn hard(quota: &Value) -> BTreeMap<String, String> {
    quota["spec"]["hard"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Admits a new object of `def` in `ns` against the namespace's quotas.
pub fn admit(api: &Api, def: &ResourceDef, ns: &str, obj: &Value) -> Result<()> {
    let name = meta::name(obj).unwrap_or("");
    let forbidden = |message: String| ApiError::Forbidden {
        subject: Subject::new(&def.group, &def.plural, name),
        message: format!("{} {name:?} is forbidden: {message}", def.plural),
    };
    for q in quotas(api, ns) {
        let qname = meta::name(&q).unwrap_or("").to_string();
        let mut missing: Vec<String> = Vec::new();
        let (mut requested, mut using, mut limited) = (Vec::new(), Vec::new(), Vec::new());
        for (key, limit) in hard(&q) {
            let Some(add) = charge(&key, &def.group, &def.plural, obj) else {
                continue;
            };
            let unset = unspecified(&key, obj);
            if !unset.is_empty() {
                missing.push(format!("{key} for: {}", unset.join(",")));
                continue;
            }
            let now = used(api, ns, &key);
            let Some(max) = milli_value(&limit) else {
                continue;
            };
            if now + add > max {
                requested.push(format!("{key}={}", show(&key, add)));
                using.push(format!("{key}={}", show(&key, now)));
                limited.push(format!("{key}={limit}"));
            }
        }
        if !missing.is_empty() {
            missing.sort();
            return Err(forbidden(format!(
                "failed quota: {qname}: must specify {}",
                missing.join("; ")
            )));
        }
        if !requested.is_empty() {
            return Err(forbidden(format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                requested.join(","),
                using.join(","),
                limited.join(",")
            )));
        }
    }
    Ok(())
}

/// The status a quota should have now.
fn status_of(api: &Api, quota: &Value) -> Value {
    let ns = meta::namespace(quota).unwrap_or("");
    let hard = hard(quota);
    let used: serde_json::Map<String, Value> = hard
        .keys()
        .map(|k| (k.clone(), json!(show(k, used(api, ns, k)))))
        .collect();
    json!({"hard": hard, "used": used})
}

/// Keeps every quota's status current: after each burst of changes in a namespace that has
/// quotas, writes the status of those whose usage moved.
pub async fn sync(api: Arc<Api>) {
    let Some(def) = api.registry.get("", "v1", "resourcequotas") else {
        return;
    };
    loop {
        // The subscription sees every change; its snapshot is only of the quotas (small).
        let sub = api.cache.subscribe_snapshot(&def.prefix);
        let (epoch, mut rx) = (sub.epoch, sub.rx);
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        // Every quota once at the start.
        for (_, e) in api.cache.snapshot(&def.prefix).items {
            if let Some(ns) = meta::namespace(&e.obj()) {
                dirty.insert(ns.to_string());
            }
        }
        loop {
            for ns in std::mem::take(&mut dirty) {
                refresh(&api, &def, &ns).await;
            }
            use tokio::sync::broadcast::error::RecvError;
            let first = match rx.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            };
            // Namespaces with quotas now; a change in one of them makes its quotas dirty.
            let with_quotas: BTreeSet<String> = api
                .cache
                .snapshot(&def.prefix)
                .items
                .iter()
                .filter_map(|(_, e)| meta::namespace(&e.obj()).map(str::to_string))
                .collect();
            let mut mark = |key: &str| {
                if let Some(ns) = with_quotas
                    .iter()
                    .find(|ns| key.contains(&format!("/{ns}/")))
                {
                    dirty.insert(ns.clone());
                }
            };
            mark(&first.key);
            let lagged = match crate::watchcache::drain(&mut rx, |ev| mark(&ev.key)) {
                crate::watchcache::Drained::Closed => return,
                crate::watchcache::Drained::Lagged => true,
                crate::watchcache::Drained::Empty => false,
            };
            if lagged || api.cache.epoch() != epoch {
                break;
            }
        }
    }
}

async fn refresh(api: &Arc<Api>, def: &ResourceDef, ns: &str) {
    for q in quotas(api, ns) {
        let want = status_of(api, &q);
        if q.get("status") == Some(&want) {
            continue;
        }
        let Some(name) = meta::name(&q).map(str::to_string) else {
            continue;
        };
        let set = move |cur: &Value| -> Result<Value> {
            let mut next = cur.clone();
            if let Some(m) = next.as_object_mut() {
                m.insert("status".into(), want.clone());
            }
            Ok(next)
        };
        let mut ctx = crate::rest::WriteCtx::internal("resourcequota-controller");
        let via = crate::rest::Via {
            sub: Some(crate::registry::Sub::Status),
            applied: false,
        };
        if let Err(e) = crate::rest::update_object(
            api,
            def,
            Some(ns),
            &name,
            crate::rest::Change::With(&set),
            via,
            &mut ctx,
        )
        .await
        {
            tracing::debug!(%ns, %name, "quota status: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_charge_the_right_objects() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}}}
        ]}});
        assert_eq!(charge("pods", "", "pods", &pod), Some(1000));
        assert_eq!(charge("count/pods", "", "pods", &pod), Some(1000));
        assert_eq!(charge("requests.cpu", "", "pods", &pod), Some(500));
        assert_eq!(charge("cpu", "", "pods", &pod), Some(500));
        assert_eq!(charge("limits.cpu", "", "pods", &pod), Some(1000));
        assert_eq!(unspecified("limits.cpu", &pod), vec!["b".to_string()]);
        assert_eq!(
            charge("count/deployments.apps", "apps", "deployments", &json!({})),
            Some(1000)
        );
        assert_eq!(charge("pods", "", "services", &json!({})), None);
        let done = json!({"status": {"phase": "Succeeded"}, "spec": {}});
        assert_eq!(
            charge("pods", "", "pods", &done),
            None,
            "ended pods do not count"
        );
        assert_eq!(show("requests.memory", 64 * (1 << 20) * 1000), "64Mi");
        assert_eq!(show("requests.cpu", 500), "500m");
        assert_eq!(show("pods", 3000), "3");
    }
}
