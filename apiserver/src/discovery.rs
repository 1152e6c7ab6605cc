//! API discovery: `/api`, `/apis`, `/api/v1`, `/apis/<group>[/<version>]` (legacy), the
//! aggregated form (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, which kubectl 1.32 asks
//! for first), and `/version`.

use serde_json::{json, Value};
use sha2::Digest as _;

use crate::registry::{ResourceDef, Sub};
use crate::Api;

/// The Kubernetes version keelson's API corresponds to.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "32";
pub const KUBE_GIT_VERSION: &str = "v1.32.0-keelson";

/// The content type of an aggregated discovery response (client-go checks it).
pub fn aggregated_content_type(v: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
}

/// Which aggregated discovery version the Accept header asks for, if any.
pub fn wants_aggregated(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    for entry in accept.split(',') {
        let e = entry.replace(' ', "");
        if e.contains("as=APIGroupDiscoveryList") && e.contains("g=apidiscovery.k8s.io") {
            if e.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if e.contains("v=v2") {
                return Some("v2");
            }
        }
        if e.starts_with("application/json") && !e.contains("as=") {
            return None;
        }
    }
    None
}

pub fn version_info() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": KUBE_GIT_VERSION,
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "keelson (rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, arch()),
    })
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(json!({}));
    json!({"name": group, "versions": vs, "preferredVersion": preferred})
}

/// `/apis`.
pub fn api_group_list(api: &Api) -> Value {
    let groups: Vec<Value> = api
        .registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(&g, &vs))
        .chain(std::iter::once(crate::metrics::group_entry()))
        .chain(crate::auth::review::group_entries())
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn api_group(api: &Api, group: &str) -> Option<Value> {
    let (_, vs) = api
        .registry
        .groups()
        .into_iter()
        .find(|(g, _)| g == group)?;
    let mut g = group_entry(group, &vs);
    if let Some(m) = g.as_object_mut() {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    Some(g)
}

fn storage_version_hash(def: &ResourceDef) -> String {
    let h = sha2::Sha256::digest(format!("{}/{}/{}", def.group, def.version, def.kind));
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &h[..8])
}

fn sub_kind(def: &ResourceDef, sub: Sub) -> (String, String, String) {
    let (g, v, k, _) = sub.discovery(def);
    match sub {
        Sub::Status | Sub::Finalize | Sub::Ephemeral => {
            (String::new(), String::new(), def.kind.clone())
        }
        Sub::Proxy => {
            let k = match def.plural.as_str() {
                "pods" => "PodProxyOptions",
                "nodes" => "NodeProxyOptions",
                _ => "ServiceProxyOptions",
            };
            (String::new(), String::new(), k.to_string())
        }
        Sub::Attach => (String::new(), String::new(), "PodAttachOptions".into()),
        Sub::PortForward => (String::new(), String::new(), "PodPortForwardOptions".into()),
        _ => (g.to_string(), v.to_string(), k.to_string()),
    }
}

/// `/api/v1`, `/apis/<group>/<version>`: the legacy APIResourceList.
pub fn resource_list(api: &Api, group: &str, version: &str) -> Option<Value> {
    if !api.registry.serves(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for def in api.registry.resources(group, version) {
        let mut r = json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": def.verbs,
            "storageVersionHash": storage_version_hash(&def),
        });
        if !def.short_names.is_empty() {
            r["shortNames"] = json!(def.short_names);
        }
        if !def.categories.is_empty() {
            r["categories"] = json!(def.categories);
        }
        resources.push(r);
        for sub in &def.subresources {
            let (g, v, k) = sub_kind(&def, *sub);
            let (_, _, _, verbs) = sub.discovery(&def);
            let mut s = json!({
                "name": format!("{}/{}", def.plural, sub.name()),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": k,
                "verbs": verbs,
            });
            if !g.is_empty() {
                s["group"] = json!(g);
            }
            if !v.is_empty() {
                s["version"] = json!(v);
            }
            resources.push(s);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

fn aggregated_group(api: &Api, group: &str, versions: &[String]) -> Value {
    let mut vs = Vec::new();
    for v in versions {
        let mut resources = Vec::new();
        for def in api.registry.resources(group, v) {
            let subs: Vec<Value> = def
                .subresources
                .iter()
                .map(|sub| {
                    let (g, sv, k) = sub_kind(&def, *sub);
                    let (_, _, _, verbs) = sub.discovery(&def);
                    let (g, sv) = if k == def.kind && g.is_empty() {
                        (def.group.clone(), def.version.clone())
                    } else if g.is_empty() {
                        (String::new(), "v1".to_string())
                    } else {
                        (g, sv)
                    };
                    json!({
                        "subresource": sub.name(),
                        "responseKind": {"group": g, "version": sv, "kind": k},
                        "verbs": verbs,
                    })
                })
                .collect();
            let mut r = json!({
                "resource": def.plural,
                "responseKind": {"group": def.group, "version": def.version, "kind": def.kind},
                "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": def.singular,
                "verbs": def.verbs,
            });
            if !def.short_names.is_empty() {
                r["shortNames"] = json!(def.short_names);
            }
            if !def.categories.is_empty() {
                r["categories"] = json!(def.categories);
            }
            if !subs.is_empty() {
                r["subresources"] = json!(subs);
            }
            resources.push(r);
        }
        vs.push(json!({"version": v, "resources": resources, "freshness": "Current"}));
    }
    json!({"metadata": {"name": group}, "versions": vs})
}

/// Aggregated discovery: the core group for `/api`, every other group for `/apis`.
pub fn aggregated(api: &Api, core: bool, version: &str) -> Value {
    let items: Vec<Value> = api
        .registry
        .groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, vs)| aggregated_group(api, &g, &vs))
        .chain((!core).then(crate::metrics::aggregated_entry))
        .chain(
            (!core)
                .then(crate::auth::review::aggregated_entries)
                .into_iter()
                .flatten(),
        )
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_asks_for_aggregated_v2() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(Some(kubectl)), Some("v2"));
        assert_eq!(wants_aggregated(Some("application/json")), None);
        assert_eq!(wants_aggregated(None), None);
        assert_eq!(
            wants_aggregated(Some(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            )),
            Some("v2beta1")
        );
    }
}
