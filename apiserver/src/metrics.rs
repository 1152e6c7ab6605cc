//! `metrics.k8s.io/v1beta1` (what `kubectl top` reads): NodeMetrics and PodMetrics made at
//! request time from each node's kubelet Summary (`/stats/summary`), as metrics-server
//! would; read-only (get, list).

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::codec::Output;
use crate::error::{ApiError, Result, Subject};
use crate::rest::{self, kubelet};
use crate::selectors::LabelSelector;
use crate::{meta, Api};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
/// The window the kubelet's CPU rates are measured over.
const WINDOW: &str = "10s";

fn group_version() -> String {
    format!("{GROUP}/{VERSION}")
}

/// The group's entry in `/apis`.
pub fn group_entry() -> Value {
    let v = json!({"groupVersion": group_version(), "version": VERSION});
    json!({"name": GROUP, "versions": [v], "preferredVersion": v})
}

/// `/apis/metrics.k8s.io`.
pub fn api_group() -> Value {
    let mut g = group_entry();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    g
}

/// The group in aggregated discovery.
pub fn aggregated_entry() -> Value {
    let res = |plural: &str, kind: &str, scope: &str| {
        json!({"resource": plural, "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
               "scope": scope, "singularResource": "", "verbs": ["get", "list"]})
    };
    json!({"metadata": {"name": GROUP}, "versions": [{"version": VERSION,
        "resources": [res("nodes", "NodeMetrics", "Cluster"), res("pods", "PodMetrics", "Namespaced")],
        "freshness": "Current"}]})
}

/// `/apis/metrics.k8s.io/v1beta1`.
pub fn resource_list() -> Value {
    let res = |plural: &str, kind: &str, namespaced: bool| json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get", "list"]});
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(),
           "resources": [res("nodes", "NodeMetrics", false), res("pods", "PodMetrics", true)]})
}

/// Whole quantities as Kubernetes prints usage: CPU in nanocores (`n`), memory in KiB.
fn cpu(nanocores: u64) -> String {
    format!("{nanocores}n")
}

fn memory(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

async fn objects(api: &Api, plural: &str, namespace: Option<&str>) -> Result<Vec<Value>> {
    let def = api
        .registry
        .get("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("no {plural} resource")))?;
    api.cache.wait_fresh().await?;
    let snap = api.cache.snapshot(&def.list_prefix(namespace));
    Ok(snap
        .items
        .into_iter()
        .map(|(_, e)| std::sync::Arc::unwrap_or_clone(e.obj()))
        .collect())
}

/// The Summary of every node that answers (a node whose kubelet does not is left out, as
/// metrics-server does).
async fn summaries(api: &Api, nodes: &[Value]) -> Vec<(String, Value)> {
    let calls = nodes
        .iter()
        .filter_map(|n| meta::name(n).map(str::to_string))
        .map(|name| async move {
            match kubelet::get_json(api, &name, "/stats/summary").await {
                Ok(v) => Some((name, v)),
                Err(e) => {
                    tracing::debug!(node = %name, error = %e, "kubelet summary");
                    None
                }
            }
        });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn selector(req: &rest::Req) -> Result<Option<LabelSelector>> {
    req.q("labelSelector")
        .filter(|s| !s.is_empty())
        .map(LabelSelector::parse)
        .transpose()
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": format!("{kind}List"), "apiVersion": group_version(), "metadata": {}, "items": items})
}

/// Serves `/apis/metrics.k8s.io/v1beta1/<rest>`.
pub async fn serve(api: &Api, rest_segs: &[&str], req: &rest::Req) -> Result<Response> {
    if req.method != axum::http::Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    let sel = selector(req)?;
    let ok = |v: Value| Ok(rest::respond(StatusCode::OK, Output::Json, &v, &[]));
    match rest_segs {
        ["nodes"] | ["nodes", _] => {
            let nodes = objects(api, "nodes", None).await?;
            let wanted = rest_segs.get(1).copied();
            let nodes: Vec<Value> = nodes
                .into_iter()
                .filter(|n| wanted.is_none_or(|w| meta::name(n) == Some(w)))
                .filter(|n| {
                    sel.as_ref()
                        .is_none_or(|s| s.matches(n["metadata"]["labels"].as_object()))
                })
                .collect();
            let mut items = Vec::new();
            for (name, s) in summaries(api, &nodes).await {
                let node = &s["node"];
                let (Some(c), Some(m)) = (
                    node["cpu"]["usageNanoCores"].as_u64(),
                    node["memory"]["workingSetBytes"].as_u64(),
                ) else {
                    continue;
                };
                let labels = nodes
                    .iter()
                    .find(|n| meta::name(n) == Some(name.as_str()))
                    .map(|n| n["metadata"]["labels"].clone())
                    .unwrap_or(json!({}));
                items.push(json!({"kind": "NodeMetrics", "apiVersion": group_version(),
                    "metadata": {"name": name, "labels": labels, "creationTimestamp": jiff::Timestamp::now().to_string()},
                    "timestamp": node["cpu"]["time"], "window": WINDOW,
                    "usage": {"cpu": cpu(c), "memory": memory(m)}}));
            }
            match wanted {
                Some(w) => match items.into_iter().next() {
                    Some(i) => ok(i),
                    None => Err(ApiError::NotFound(Subject::new(GROUP, "nodes", w))),
                },
                None => ok(list("NodeMetrics", items)),
            }
        }
        ["pods"] | ["namespaces", _, "pods"] | ["namespaces", _, "pods", _] => {
            let ns = match rest_segs {
                ["namespaces", ns, ..] => Some(*ns),
                _ => None,
            };
            let wanted = rest_segs.get(3).copied();
            let pods = objects(api, "pods", ns).await?;
            let pods: HashMap<(String, String), Value> = pods
                .into_iter()
                .filter(|p| wanted.is_none_or(|w| meta::name(p) == Some(w)))
                .filter(|p| {
                    sel.as_ref()
                        .is_none_or(|s| s.matches(p["metadata"]["labels"].as_object()))
                })
                .map(|p| {
                    (
                        (
                            meta::namespace(&p).unwrap_or("").to_string(),
                            meta::name(&p).unwrap_or("").to_string(),
                        ),
                        p,
                    )
                })
                .collect();
            let node_names: Vec<String> = pods
                .values()
                .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let nodes: Vec<Value> = node_names
                .iter()
                .map(|n| json!({"metadata": {"name": n}}))
                .collect();
            let mut items = Vec::new();
            for (_, s) in summaries(api, &nodes).await {
                for p in s["pods"].as_array().into_iter().flatten() {
                    let key = (
                        p["podRef"]["namespace"].as_str().unwrap_or("").to_string(),
                        p["podRef"]["name"].as_str().unwrap_or("").to_string(),
                    );
                    let Some(pod) = pods.get(&key) else { continue };
                    let containers: Vec<Value> = p["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| json!({"name": c["name"], "usage": {
                            "cpu": cpu(c["cpu"]["usageNanoCores"].as_u64().unwrap_or(0)),
                            "memory": memory(c["memory"]["workingSetBytes"].as_u64().unwrap_or(0))}}))
                        .collect();
                    let timestamp = p["containers"][0]["cpu"]["time"].clone();
                    items.push(json!({"kind": "PodMetrics", "apiVersion": group_version(),
                        "metadata": {"name": key.1, "namespace": key.0, "labels": pod["metadata"]["labels"].clone(),
                                     "creationTimestamp": jiff::Timestamp::now().to_string()},
                        "timestamp": timestamp, "window": WINDOW, "containers": containers}));
                }
            }
            match wanted {
                Some(w) => match items.into_iter().next() {
                    Some(i) => ok(i),
                    None => Err(ApiError::NotFound(Subject::new(GROUP, "pods", w))),
                },
                None => ok(list("PodMetrics", items)),
            }
        }
        _ => Err(ApiError::NoSuchResource),
    }
}
