//! OpenAPI v3: `/openapi/v3` (the index of group versions) and `/openapi/v3/<gv path>`
//! documents generated from the k8s-openapi schemas and, for custom resources, from their
//! CRDs. Operations carry `x-kubernetes-group-version-kind` and `x-kubernetes-action`, and
//! PATCH operations list the `fieldValidation` parameter (kubectl checks it before it uses
//! server-side field validation); root schemas carry their GVKs for `kubectl explain`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use sha2::Digest as _;

use crate::registry::{ResourceDef, Sub};
use crate::Api;

const REF_PREFIX: &str = "#/components/schemas/";

/// Generated documents, rebuilt when the set of resources changes.
#[derive(Default)]
pub struct OpenApiCache {
    inner: Mutex<Option<(String, Arc<Docs>)>>,
}

pub struct Docs {
    /// gv path ("api/v1", "apis/apps/v1") → (hash, document bytes).
    pub docs: BTreeMap<String, (String, Vec<u8>)>,
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn fingerprint(api: &Api) -> String {
    let mut s = String::new();
    for d in api.registry.all() {
        s.push_str(&format!("{d:?};"));
        if let Some(c) = &d.custom {
            s.push_str(&c.schema.as_ref().map(Value::to_string).unwrap_or_default());
        }
    }
    s
}

impl OpenApiCache {
    pub fn docs(&self, api: &Api) -> Arc<Docs> {
        let fp = fingerprint(api);
        let mut inner = self.inner.lock();
        if let Some((f, d)) = inner.as_ref() {
            if *f == fp {
                return Arc::clone(d);
            }
        }
        let d = Arc::new(build(api));
        *inner = Some((fp, Arc::clone(&d)));
        d
    }
}

/// `/openapi/v3`.
pub fn index(docs: &Docs) -> Value {
    let mut paths = Map::new();
    for (p, (hash, _)) in &docs.docs {
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(r) = x.as_str().and_then(|s| s.strip_prefix(REF_PREFIX)) {
                        out.push(r.to_string());
                    }
                } else {
                    refs_in(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs_in(x, out)),
        _ => {}
    }
}

/// kube-openapi publishes `$ref`s with siblings (descriptions, defaults) as `allOf: [{$ref}]`.
fn normalize_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("$ref") && m.len() > 1 {
                if let Some(r) = m.remove("$ref") {
                    m.insert("allOf".into(), json!([{"$ref": r}]));
                }
            }
            for x in m.values_mut() {
                normalize_refs(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize_refs),
        _ => {}
    }
}

fn param(name: &str, location: &str, description: &str, required: bool) -> Value {
    let mut p = json!({"name": name, "in": location, "description": description, "schema": {"type": "string", "uniqueItems": true}});
    if required {
        p["required"] = json!(true);
    }
    p
}

fn query_bool(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "boolean", "uniqueItems": true}})
}

fn query_int(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "integer", "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        param("dryRun", "query", "When present, indicates that modifications should not be persisted. Valid values: All.", false),
        param("fieldManager", "query", "fieldManager is a name associated with the actor or entity that is making these changes.", false),
        param("fieldValidation", "query", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.", false),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        query_bool("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        param("continue", "query", "The continue option should be set when retrieving more results from the server.", false),
        param("fieldSelector", "query", "A selector to restrict the list of returned objects by their fields. Defaults to everything.", false),
        param("labelSelector", "query", "A selector to restrict the list of returned objects by their labels. Defaults to everything.", false),
        query_int("limit", "limit is a maximum number of responses to return for a list call."),
        param("resourceVersion", "query", "resourceVersion sets a constraint on what resource versions a request may be served from.", false),
        param("resourceVersionMatch", "query", "resourceVersionMatch determines how resourceVersion is applied to list calls.", false),
        query_bool("sendInitialEvents", "`sendInitialEvents=true` may be set together with `watch=true`."),
        query_int("timeoutSeconds", "Timeout for the list/watch call."),
        query_bool("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
    ]
}

fn content(schema_ref: &str) -> Value {
    let s = json!({"$ref": format!("{REF_PREFIX}{schema_ref}")});
    json!({
        "application/json": {"schema": s},
        "application/yaml": {"schema": s},
        "application/vnd.kubernetes.protobuf": {"schema": s},
    })
}

fn op(
    action: &str,
    id: &str,
    def: &ResourceDef,
    kind_group: (&str, &str, &str),
    params: Vec<Value>,
    response: &str,
    body: Option<Value>,
) -> Value {
    let (g, v, k) = kind_group;
    let mut o = json!({
        "tags": [tag(def)],
        "description": format!("{action} {}", def.kind),
        "operationId": id,
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": content(response)},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": g, "version": v, "kind": k},
    });
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    o
}

fn tag(def: &ResourceDef) -> String {
    let g = if def.group.is_empty() {
        "core".to_string()
    } else {
        def.group.replace(".k8s.io", "").replace('.', "")
    };
    format!("{g}_{}", def.version)
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    let mut up = true;
    for c in s.chars() {
        if c == '.' || c == '-' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn body(schema_ref: &str) -> Value {
    json!({"content": {"*/*": {"schema": {"$ref": format!("{REF_PREFIX}{schema_ref}")}}}, "required": true})
}

fn patch_body() -> Value {
    let s = json!({"$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.Patch")});
    json!({"content": {
        "application/apply-patch+yaml": {"schema": s},
        "application/json-patch+json": {"schema": s},
        "application/merge-patch+json": {"schema": s},
        "application/strategic-merge-patch+json": {"schema": s},
    }, "required": true})
}

/// Paths of one resource.
fn resource_paths(
    def: &ResourceDef,
    schema: &str,
    list_schema: &str,
    paths: &mut Map<String, Value>,
) {
    let base = format!("/{}", gv_path(&def.group, &def.version));
    let gvk = (def.group.as_str(), def.version.as_str(), def.kind.as_str());
    let id = format!("{}{}", camel(&tag(def)).replace('_', ""), def.kind);
    let (coll, item) = if def.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", def.plural),
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", def.plural),
        )
    } else {
        (
            format!("{base}/{}", def.plural),
            format!("{base}/{}/{{name}}", def.plural),
        )
    };
    let ns_param = || {
        param(
            "namespace",
            "path",
            "object name and auth scope, such as for teams and projects",
            true,
        )
    };
    let name_param = || param("name", "path", &format!("name of the {}", def.kind), true);
    let mut coll_params = Vec::new();
    if def.namespaced {
        coll_params.push(ns_param());
    }
    coll_params.push(param(
        "pretty",
        "query",
        "If 'true', then the output is pretty printed.",
        false,
    ));
    let mut item_params = coll_params.clone();
    item_params.insert(0, name_param());

    let mut coll_ops = Map::new();
    coll_ops.insert(
        "get".into(),
        op(
            "list",
            &format!("list{id}"),
            def,
            gvk,
            list_params(),
            list_schema,
            None,
        ),
    );
    coll_ops.insert(
        "post".into(),
        op(
            "post",
            &format!("create{id}"),
            def,
            gvk,
            write_params(),
            schema,
            Some(body(schema)),
        ),
    );
    coll_ops.insert(
        "delete".into(),
        op(
            "deletecollection",
            &format!("deleteCollection{id}"),
            def,
            gvk,
            list_params(),
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")),
        ),
    );
    coll_ops.insert("parameters".into(), json!(coll_params));
    paths.insert(coll, Value::Object(coll_ops));

    let mut patch_params = write_params();
    patch_params.push(query_bool(
        "force",
        "Force is going to \"force\" Apply requests.",
    ));
    let mut item_ops = Map::new();
    item_ops.insert(
        "get".into(),
        op("get", &format!("read{id}"), def, gvk, vec![], schema, None),
    );
    item_ops.insert(
        "put".into(),
        op(
            "put",
            &format!("replace{id}"),
            def,
            gvk,
            write_params(),
            schema,
            Some(body(schema)),
        ),
    );
    item_ops.insert(
        "patch".into(),
        op(
            "patch",
            &format!("patch{id}"),
            def,
            gvk,
            patch_params.clone(),
            schema,
            Some(patch_body()),
        ),
    );
    item_ops.insert(
        "delete".into(),
        op(
            "delete",
            &format!("delete{id}"),
            def,
            gvk,
            vec![
                query_int(
                    "gracePeriodSeconds",
                    "The duration in seconds before the object should be deleted.",
                ),
                param(
                    "propagationPolicy",
                    "query",
                    "Whether and how garbage collection will be performed.",
                    false,
                ),
                param(
                    "dryRun",
                    "query",
                    "When present, indicates that modifications should not be persisted.",
                    false,
                ),
            ],
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")),
        ),
    );
    item_ops.insert("parameters".into(), json!(item_params));
    paths.insert(item.clone(), Value::Object(item_ops));

    if def.namespaced {
        let all = format!("{base}/{}", def.plural);
        let mut ops = Map::new();
        ops.insert(
            "get".into(),
            op(
                "list",
                &format!("list{id}ForAllNamespaces"),
                def,
                gvk,
                list_params(),
                list_schema,
                None,
            ),
        );
        paths.insert(all, Value::Object(ops));
    }
    for sub in &def.subresources {
        let (schema_ref, sgvk) = match sub {
            Sub::Status => (schema.to_string(), gvk),
            Sub::Scale => (
                "io.k8s.api.autoscaling.v1.Scale".to_string(),
                ("autoscaling", "v1", "Scale"),
            ),
            _ => continue,
        };
        let path = format!("{item}/{}", sub.name());
        let sid = format!("{id}{}", camel(sub.name()));
        let mut ops = Map::new();
        ops.insert(
            "get".into(),
            op(
                "get",
                &format!("read{sid}"),
                def,
                sgvk,
                vec![],
                &schema_ref,
                None,
            ),
        );
        ops.insert(
            "put".into(),
            op(
                "put",
                &format!("replace{sid}"),
                def,
                sgvk,
                write_params(),
                &schema_ref,
                Some(body(&schema_ref)),
            ),
        );
        ops.insert(
            "patch".into(),
            op(
                "patch",
                &format!("patch{sid}"),
                def,
                sgvk,
                patch_params.clone(),
                &schema_ref,
                Some(patch_body()),
            ),
        );
        ops.insert("parameters".into(), json!(item_params));
        paths.insert(path, Value::Object(ops));
    }
}

/// Common schemas every document references.
const COMMON: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
];

fn build(api: &Api) -> Docs {
    let defs = api.schemas.definitions();
    let mut docs = BTreeMap::new();
    for (group, versions) in api.registry.groups() {
        for version in versions {
            let mut paths = Map::new();
            let mut roots: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
            let mut extra: BTreeMap<String, Value> = BTreeMap::new();
            let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for def in api.registry.resources(&group, &version) {
                let (schema, list_schema) = match (&def.schema, &def.custom) {
                    (Some(s), _) => {
                        let list = format!("{s}List");
                        (s.clone(), list)
                    }
                    (None, Some(c)) => {
                        let base =
                            format!("{}.{}.{}", reverse_group(&def.group), def.version, def.kind);
                        let schema = c.schema.clone().unwrap_or(
                            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                        );
                        let published = crate::crdschema::published_schema(
                            &schema,
                            &def.group,
                            &def.version,
                            &def.kind,
                        );
                        extra.insert(base.clone(), published);
                        let list = format!("{base}List");
                        extra.insert(list.clone(), json!({
                            "type": "object",
                            "required": ["items"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"allOf": [{"$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")}]},
                                "items": {"type": "array", "items": {"$ref": format!("{REF_PREFIX}{base}")}},
                            },
                            "x-kubernetes-group-version-kind": [{"group": def.group, "version": def.version, "kind": format!("{}List", def.kind)}],
                        }));
                        (base, list)
                    }
                    (None, None) => continue,
                };
                gvks.entry(schema.clone())
                    .or_default()
                    .push(json!({"group": def.group, "version": def.version, "kind": def.kind}));
                gvks.entry(list_schema.clone()).or_default().push(
                    json!({"group": def.group, "version": def.version, "kind": def.list_kind()}),
                );
                roots.push(schema.clone());
                roots.push(list_schema.clone());
                if def.has(Sub::Scale) {
                    roots.push("io.k8s.api.autoscaling.v1.Scale".into());
                }
                resource_paths(&def, &schema, &list_schema, &mut paths);
            }
            // Every schema reachable from the roots.
            let mut seen = BTreeSet::new();
            let mut todo = roots;
            let mut schemas = Map::new();
            while let Some(name) = todo.pop() {
                if !seen.insert(name.clone()) {
                    continue;
                }
                let Some(s) = extra.get(&name).or_else(|| defs.get(&name)) else {
                    continue;
                };
                let mut s = s.clone();
                let mut found = Vec::new();
                refs_in(&s, &mut found);
                todo.extend(found);
                if let Some(g) = gvks.get(&name) {
                    if let Some(m) = s.as_object_mut() {
                        m.insert("x-kubernetes-group-version-kind".into(), json!(g));
                    }
                }
                normalize_refs(&mut s);
                schemas.insert(name, s);
            }
            let doc = json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": crate::discovery::KUBE_GIT_VERSION},
                "paths": paths,
                "components": {"schemas": schemas},
            });
            let bytes = serde_json::to_vec(&doc).unwrap_or_default();
            let hash: String = sha2::Sha512::digest(&bytes)[..32]
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            docs.insert(gv_path(&group, &version), (hash, bytes));
        }
    }
    Docs { docs }
}

/// `example.com` → `com.example`, as Kubernetes names custom resource schemas.
fn reverse_group(g: &str) -> String {
    g.split('.').rev().collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_with_siblings_become_all_of() {
        let mut v = json!({"properties": {"m": {"$ref": "#/components/schemas/X", "description": "d"}, "n": {"$ref": "#/components/schemas/Y"}}});
        normalize_refs(&mut v);
        assert_eq!(
            v["properties"]["m"],
            json!({"allOf": [{"$ref": "#/components/schemas/X"}], "description": "d"})
        );
        assert_eq!(
            v["properties"]["n"],
            json!({"$ref": "#/components/schemas/Y"})
        );
        let mut found = Vec::new();
        refs_in(&v, &mut found);
        found.sort();
        assert_eq!(found, vec!["X".to_string(), "Y".to_string()]);
        assert_eq!(reverse_group("stable.example.com"), "com.example.stable");
    }
}
