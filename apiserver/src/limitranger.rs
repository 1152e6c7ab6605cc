//! LimitRanger admission: a namespace's LimitRanges fill in a new pod's missing container
//! requests and limits (`defaultRequest`, `default`) and bound them (`min`, `max`,
//! `maxLimitRequestRatio`) per container (`type: Container`) and per pod (`type: Pod`), with
//! Kubernetes' messages. The defaults Kubernetes writes into a LimitRange when it is created
//! (a missing `default` from `max`, a missing `defaultRequest` from `default`, then `min`) are
//! applied here, when a pod is admitted.

use std::collections::BTreeMap;

use keelson_proto::quantity::milli_value;
use serde_json::{json, Map, Value};

/// The annotation that says what LimitRanger set.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

type Resources = BTreeMap<String, String>;

fn resources(v: &Value) -> Resources {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// One `spec.limits` item, with Kubernetes' defaulting applied.
struct Item {
    kind: String,
    min: Resources,
    max: Resources,
    default: Resources,
    default_request: Resources,
    ratio: Resources,
}

fn items(ranges: &[Value]) -> Vec<Item> {
    let mut out = Vec::new();
    for r in ranges {
        for l in r["spec"]["limits"].as_array().into_iter().flatten() {
            let mut it = Item {
                kind: l["type"].as_str().unwrap_or("").to_string(),
                min: resources(&l["min"]),
                max: resources(&l["max"]),
                default: resources(&l["default"]),
                default_request: resources(&l["defaultRequest"]),
                ratio: resources(&l["maxLimitRequestRatio"]),
            };
            if it.kind == "Container" {
                for (k, v) in &it.max {
                    it.default.entry(k.clone()).or_insert_with(|| v.clone());
                }
                for (k, v) in it.default.clone().into_iter().chain(it.min.clone()) {
                    it.default_request.entry(k).or_insert(v);
                }
            }
            out.push(it);
        }
    }
    out
}

/// Sets missing requests and limits of every container from the `Container` items' defaults;
/// returns the annotation text, if anything was set.
fn set_defaults(items: &[Item], spec: &mut Value) -> Option<String> {
    let mut notes = Vec::new();
    for (field, prefix) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        let Some(list) = spec.get_mut(field).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in list {
            let name = c["name"].as_str().unwrap_or("").to_string();
            let mut set_req = Vec::new();
            let mut set_lim = Vec::new();
            for it in items.iter().filter(|i| i.kind == "Container") {
                let Some(cm) = c.as_object_mut() else {
                    continue;
                };
                let res = cm
                    .entry("resources")
                    .or_insert_with(|| json!({}))
                    .as_object_mut();
                let Some(res) = res else { continue };
                for (which, defaults, set) in [
                    ("limits", &it.default, &mut set_lim),
                    ("requests", &it.default_request, &mut set_req),
                ] {
                    for (k, v) in defaults {
                        let m = res
                            .entry(which)
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Some(m) = m.as_object_mut() {
                            if !m.contains_key(k) {
                                m.insert(k.clone(), json!(v));
                                set.push(k.clone());
                            }
                        }
                    }
                }
            }
            for (set, what) in [(&mut set_req, "request"), (&mut set_lim, "limit")] {
                if !set.is_empty() {
                    set.sort();
                    set.dedup();
                    notes.push(format!("{} {what} for {prefix} {name}", set.join(", ")));
                }
            }
        }
    }
    (!notes.is_empty()).then(|| format!("LimitRanger plugin set: {}", notes.join("; ")))
}

fn check(
    kind: &str,
    it: &Item,
    requests: &Resources,
    limits: &Resources,
    errors: &mut Vec<String>,
) {
    let milli = |s: &str| milli_value(s).unwrap_or(0);
    for (r, min) in &it.min {
        match (requests.get(r), limits.get(r)) {
            (None, _) => errors.push(format!(
                "minimum {r} usage per {kind} is {min}.  No request is specified"
            )),
            (Some(q), _) if milli(q) < milli(min) => errors.push(format!(
                "minimum {r} usage per {kind} is {min}, but request is {q}"
            )),
            (_, Some(l)) if milli(l) < milli(min) => errors.push(format!(
                "minimum {r} usage per {kind} is {min}, but limit is {l}"
            )),
            _ => {}
        }
    }
    for (r, max) in &it.max {
        match limits.get(r) {
            None => errors.push(format!(
                "maximum {r} usage per {kind} is {max}.  No limit is specified"
            )),
            Some(l) if milli(l) > milli(max) => errors.push(format!(
                "maximum {r} usage per {kind} is {max}, but limit is {l}"
            )),
            _ => {}
        }
    }
    for (r, ratio) in &it.ratio {
        let (Some(l), Some(q)) = (limits.get(r), requests.get(r).filter(|q| milli(q) > 0)) else {
            errors.push(format!(
                "{r} max limit to request ratio per {kind} is {ratio}, but no request is specified or request is 0"
            ));
            continue;
        };
        let provided = milli(l) as f64 / milli(q) as f64;
        if provided > milli(ratio) as f64 / 1000.0 {
            errors.push(format!(
                "{r} max limit to request ratio per {kind} is {ratio}, but provided ratio is {provided:.6}"
            ));
        }
    }
}

/// Admits a new pod (`pod`, mutated) under the namespace's `ranges`; the error is the
/// message after `pods "<name>" is forbidden: `.
pub fn admit(ranges: &[Value], pod: &mut Value) -> Result<(), String> {
    let items = items(ranges);
    if items.is_empty() {
        return Ok(());
    }
    if let Some(note) = set_defaults(&items, &mut pod["spec"]) {
        let md = pod
            .as_object_mut()
            .map(|m| m.entry("metadata").or_insert_with(|| json!({})));
        if let Some(Value::Object(md)) = md {
            let ann = md
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(a) = ann.as_object_mut() {
                a.insert(ANNOTATION.into(), json!(note));
            }
        }
    }
    let mut errors = Vec::new();
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| pod["spec"][*f].as_array())
        .flatten()
        .collect();
    let mut pod_req: BTreeMap<String, i128> = BTreeMap::new();
    let mut pod_lim: BTreeMap<String, i128> = BTreeMap::new();
    for c in &containers {
        let req = resources(&c["resources"]["requests"]);
        let lim = resources(&c["resources"]["limits"]);
        for it in items.iter().filter(|i| i.kind == "Container") {
            check("Container", it, &req, &lim, &mut errors);
        }
        for (sum, of) in [(&mut pod_req, &req), (&mut pod_lim, &lim)] {
            for (k, v) in of {
                *sum.entry(k.clone()).or_insert(0) += milli_value(v).unwrap_or(0);
            }
        }
    }
    // A pod's totals, written as milli-units where they are not whole.
    let show = |m: &BTreeMap<String, i128>| -> Resources {
        m.iter()
            .map(|(k, v)| {
                let s = if v % 1000 == 0 {
                    (v / 1000).to_string()
                } else {
                    format!("{v}m")
                };
                (k.clone(), s)
            })
            .collect()
    };
    let (pr, pl) = (show(&pod_req), show(&pod_lim));
    for it in items.iter().filter(|i| i.kind == "Pod") {
        check("Pod", it, &pr, &pl, &mut errors);
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        json!({"spec": {"limits": limits}})
    }

    #[test]
    fn defaults_fill_what_is_missing_and_say_so() {
        let r = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "128Mi"},
            "defaultRequest": {"cpu": "100m"}}]));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a"},
            {"name": "b", "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}}
        ]}});
        admit(&[r], &mut pod).expect("admitted");
        let a = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(a["limits"], json!({"cpu": "500m", "memory": "128Mi"}));
        assert_eq!(
            a["requests"],
            json!({"cpu": "100m", "memory": "128Mi"}),
            "request defaults to the default limit"
        );
        let b = &pod["spec"]["containers"][1]["resources"];
        assert_eq!(b["limits"]["memory"], "64Mi", "a given limit stays");
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; cpu request for container b; cpu limit for container b"
        );
    }

    #[test]
    fn bounds_are_checked_with_kubernetes_messages() {
        let r = range(json!([
            {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "32Mi"}},
            {"type": "Pod", "max": {"cpu": "1500m"}}
        ]));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "2"}, "requests": {"memory": "16Mi"}}}
        ]}});
        let e = admit(std::slice::from_ref(&r), &mut pod).expect_err("over the max");
        assert_eq!(
            e,
            "[minimum memory usage per Container is 32Mi, but request is 16Mi, maximum cpu usage per Container is 1, but limit is 2, maximum cpu usage per Pod is 1500m, but limit is 2]"
        );
        let mut ok = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"requests": {"memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "700m"}, "requests": {"cpu": "700m", "memory": "64Mi"}}}
        ]}});
        // Both containers get the max as their default cpu limit: 2 cpu in the pod.
        let e = admit(std::slice::from_ref(&r), &mut ok).expect_err("pod total");
        assert_eq!(e, "maximum cpu usage per Pod is 1500m, but limit is 1700m");
        let ratio = range(json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]));
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "250m"}}}]}});
        assert_eq!(
            admit(&[ratio], &mut p).expect_err("ratio"),
            "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
        );
    }
}
