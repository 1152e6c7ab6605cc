//! The Node authorizer (with NodeRestriction's limits folded in): a kubelet, user
//! `system:node:<name>` in `system:nodes`, may read the Secrets, ConfigMaps, claims and
//! ServiceAccount tokens only of pods bound to its node, write only its own Node, Lease and
//! pods, and otherwise do what Kubernetes' `system:node` rules allow. Everything else gets no
//! opinion here (RBAC decides; the default `system:node` binding has no subjects).
//!
//! Which objects a node may read comes from a graph of the pods bound to nodes, kept current
//! from the watch cache's pod events.

use std::collections::HashMap;

use serde_json::Value;

use super::rbac::Rule;
use super::request::RequestInfo;
use crate::rest::User;

/// The group of kubelets.
pub const NODES_GROUP: &str = "system:nodes";

/// The node a user is the kubelet of.
pub fn node_of(user: &User) -> Option<&str> {
    if !user.groups.iter().any(|g| g == NODES_GROUP) {
        return None;
    }
    user.name
        .strip_prefix("system:node:")
        .filter(|n| !n.is_empty())
}

/// What one pod bound to a node uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PodRefs {
    node: String,
    namespace: String,
    /// (resource, name): secrets, configmaps, persistentvolumeclaims, serviceaccounts.
    uses: Vec<(&'static str, String)>,
}

fn push(uses: &mut Vec<(&'static str, String)>, kind: &'static str, name: Option<&str>) {
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        if !uses.iter().any(|(k, have)| *k == kind && have == n) {
            uses.push((kind, n.to_string()));
        }
    }
}

fn refs_of(pod: &Value) -> Option<PodRefs> {
    let spec = pod.get("spec")?;
    let node = spec.get("nodeName")?.as_str().filter(|n| !n.is_empty())?;
    let namespace = crate::meta::namespace(pod)?.to_string();
    let account = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let mut uses = objects_used(spec);
    if !account.is_empty() {
        uses.insert(0, ("serviceaccounts", account.to_string()));
    }
    Some(PodRefs {
        node: node.to_string(),
        namespace,
        uses,
    })
}

/// The Secrets, ConfigMaps and claims a pod spec uses, as (resource, name).
fn objects_used(spec: &Value) -> Vec<(&'static str, String)> {
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let mut uses = Vec::new();
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(&mut uses, "secrets", s(v, "/secret/secretName").as_deref());
        push(&mut uses, "configmaps", s(v, "/configMap/name").as_deref());
        push(
            &mut uses,
            "persistentvolumeclaims",
            s(v, "/persistentVolumeClaim/claimName").as_deref(),
        );
        for src in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push(&mut uses, "secrets", s(src, "/secret/name").as_deref());
            push(
                &mut uses,
                "configmaps",
                s(src, "/configMap/name").as_deref(),
            );
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                push(
                    &mut uses,
                    "secrets",
                    s(e, "/valueFrom/secretKeyRef/name").as_deref(),
                );
                push(
                    &mut uses,
                    "configmaps",
                    s(e, "/valueFrom/configMapKeyRef/name").as_deref(),
                );
            }
            for e in c
                .get("envFrom")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                push(&mut uses, "secrets", s(e, "/secretRef/name").as_deref());
                push(
                    &mut uses,
                    "configmaps",
                    s(e, "/configMapRef/name").as_deref(),
                );
            }
        }
    }
    for p in spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(&mut uses, "secrets", s(p, "/name").as_deref());
    }
    uses
}

/// Which node each pod is bound to and which objects the pods of each node use.
#[derive(Debug, Default)]
pub struct Graph {
    /// By pod key `<ns>/<name>`.
    pods: HashMap<String, PodRefs>,
    /// (node, resource, namespace, name) → how many of the node's pods use it.
    used: HashMap<(String, &'static str, String, String), usize>,
}

impl Graph {
    /// Records a pod's current state (`None`: deleted).
    pub fn apply(&mut self, key: &str, pod: Option<&Value>) {
        let new = pod.and_then(refs_of);
        let old = match &new {
            Some(n) => self.pods.insert(key.to_string(), n.clone()),
            None => self.pods.remove(key),
        };
        if old == new {
            return;
        }
        if let Some(o) = old {
            for (kind, name) in o.uses {
                let k = (o.node.clone(), kind, o.namespace.clone(), name);
                if let Some(n) = self.used.get_mut(&k) {
                    *n -= 1;
                    if *n == 0 {
                        self.used.remove(&k);
                    }
                }
            }
        }
        if let Some(n) = new {
            for (kind, name) in n.uses {
                *self
                    .used
                    .entry((n.node.clone(), kind, n.namespace.clone(), name))
                    .or_default() += 1;
            }
        }
    }

    fn uses(&self, node: &str, kind: &'static str, ns: &str, name: &str) -> bool {
        self.used
            .contains_key(&(node.to_string(), kind, ns.to_string(), name.to_string()))
    }

    fn pod_on(&self, node: &str, ns: &str, name: &str) -> bool {
        self.pods
            .get(&format!("{ns}/{name}"))
            .is_some_and(|p| p.node == node)
    }
}

/// The pod key of the graph, from a store key `/registry/pods/<ns>/<name>`.
pub fn pod_key(store_key: &str, prefix: &str) -> Option<String> {
    store_key.strip_prefix(prefix).map(str::to_string)
}

const READ: &[&str] = &["get", "list", "watch"];

/// The annotation of a mirror pod: the API's copy of a kubelet's static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Whether `pod` is a mirror pod.
pub fn is_mirror_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_ANNOTATION))
        .is_some()
}

/// NodeRestriction for a pod a kubelet creates: only a mirror pod of a static pod, bound to
/// its node, owned (as controller) by its Node alone, and using no other API object
/// (ServiceAccount, Secret, ConfigMap, claim) — Kubernetes' rules and messages.
/// `node_uid` gives the UID of the Node object of that name, if there is one.
fn admit_pod_create(
    node: &str,
    pod: &Value,
    node_uid: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<(), String> {
    if !is_mirror_pod(pod) {
        return Err(format!(
            "pod does not have {MIRROR_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
        ));
    }
    let spec = pod.get("spec");
    let field = |f: &str| {
        spec.and_then(|s| s.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    if field("nodeName") != node {
        return Err(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let owner = match owners {
        [] => {
            return Err(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ))
        }
        [one] => one,
        _ => {
            return Err(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            ))
        }
    };
    let o = |f: &str| owner.get(f).and_then(Value::as_str).unwrap_or("");
    if o("apiVersion") != "v1" || o("kind") != "Node" || o("name") != node {
        return Err(format!(
            "node {node:?} can only create pods with an owner reference set to itself"
        ));
    }
    if owner.get("controller").and_then(Value::as_bool) != Some(true) {
        return Err(format!(
            "node {node:?} can only create pods with a controller owner reference set to itself"
        ));
    }
    if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
        return Err(format!(
            "node {node:?} must not set blockOwnerDeletion on an owner reference"
        ));
    }
    let uid = node_uid(node).unwrap_or_default();
    if o("uid") != uid {
        return Err(format!(
            "node {node} UID mismatch: expected {uid} got {}",
            o("uid")
        ));
    }
    if !field("serviceAccountName").is_empty() || !field("serviceAccount").is_empty() {
        return Err(format!(
            "node {node:?} can not create pods that reference a service account"
        ));
    }
    let uses = spec.map(objects_used).unwrap_or_default();
    for kind in ["secrets", "configmaps", "persistentvolumeclaims"] {
        if uses.iter().any(|(k, _)| *k == kind) {
            return Err(format!(
                "node {node:?} can not create pods that reference {kind}"
            ));
        }
    }
    let volumes = spec
        .and_then(|s| s.get("volumes"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if volumes.iter().any(|v| {
        v.get("ephemeral").is_some()
            || v.pointer("/projected/sources")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|s| s.get("serviceAccountToken").is_some()))
    }) {
        return Err(format!(
            "node {node:?} can not create pods that reference persistentvolumeclaims or service account tokens"
        ));
    }
    Ok(())
}

/// NodeRestriction for creates: a kubelet may create only its own Node, its own Lease in
/// `kube-node-lease`, and mirror pods (the authorizer cannot see the name of an object being
/// created, nor what a pod holds).
pub fn admit_create(
    user: &User,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    obj: &Value,
    node_uid: &dyn Fn(&str) -> Option<String>,
) -> crate::error::Result<()> {
    let Some(node) = node_of(user) else {
        return Ok(());
    };
    let name = crate::meta::name(obj).unwrap_or("");
    if group.is_empty() && resource == "pods" {
        return admit_pod_create(node, obj, node_uid).map_err(|message| {
            crate::error::ApiError::Forbidden {
                subject: crate::error::Subject::new(group, resource, name),
                message: format!("pods {name:?} is forbidden: {message}"),
            }
        });
    }
    if group.is_empty() && resource == "nodes" && name == node {
        let mut bad: Vec<&str> = obj["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .filter(|k| !kubelet_may_label(k))
            .collect();
        bad.sort();
        if !bad.is_empty() {
            return Err(crate::error::ApiError::Forbidden {
                subject: crate::error::Subject::new(group, resource, name),
                message: format!(
                    "nodes {name:?} is forbidden: node {node:?} is not allowed to set the following labels: {}",
                    bad.join(", ")
                ),
            });
        }
    }
    let own = match (group, resource) {
        ("", "nodes") => name == node,
        ("coordination.k8s.io", "leases") if namespace == Some("kube-node-lease") => name == node,
        _ => return Ok(()),
    };
    if own {
        return Ok(());
    }
    Err(crate::error::ApiError::Forbidden {
        subject: crate::error::Subject::new(group, resource, name),
        message: format!(
            "{resource} {name:?} is forbidden: node {node:?} is not allowed to modify {resource} {name:?}"
        ),
    })
}

/// Whether a kubelet may set a label on its Node (Kubernetes' `IsKubeletLabel`): any label
/// outside the `kubernetes.io` and `k8s.io` domains, the well-known ones, and those under
/// `kubelet.kubernetes.io/` and `node.kubernetes.io/`; never `node-restriction.kubernetes.io/`.
pub fn kubelet_may_label(key: &str) -> bool {
    const WELL_KNOWN: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    let Some((domain, _)) = key.split_once('/') else {
        return true;
    };
    if domain == "node-restriction.kubernetes.io" {
        return false;
    }
    let kubernetes = |d: &str| {
        d == "kubernetes.io"
            || d.ends_with(".kubernetes.io")
            || d == "k8s.io"
            || d.ends_with(".k8s.io")
    };
    !kubernetes(domain)
        || WELL_KNOWN.contains(&key)
        || domain == "kubelet.kubernetes.io"
        || domain == "node.kubernetes.io"
}

/// NodeRestriction on a kubelet's update of its Node: taints stay as they are (the control
/// plane sets them), and so do labels a kubelet may not set.
pub fn admit_update(
    node: Option<&str>,
    def: &crate::registry::ResourceDef,
    old: &Value,
    new: &Value,
) -> crate::error::Result<()> {
    let Some(node) = node else {
        return Ok(());
    };
    if !(def.group.is_empty() && def.plural == "nodes") {
        return Ok(());
    }
    let forbidden = |message: String| crate::error::ApiError::Forbidden {
        subject: crate::error::Subject::new("", "nodes", node),
        message: format!("nodes {node:?} is forbidden: {message}"),
    };
    let taints = |v: &Value| match &v["spec"]["taints"] {
        Value::Array(a) if !a.is_empty() => Some(a.clone()),
        _ => None,
    };
    if taints(old) != taints(new) {
        return Err(forbidden(format!(
            "node {node:?} is not allowed to modify taints"
        )));
    }
    let labels = |v: &Value| {
        v["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let (was, now) = (labels(old), labels(new));
    let mut changed: Vec<&String> = was
        .keys()
        .chain(now.keys())
        .filter(|k| was.get(*k) != now.get(*k) && !kubelet_may_label(k))
        .collect();
    changed.sort();
    changed.dedup();
    if !changed.is_empty() {
        let names: Vec<&str> = changed.iter().map(|k| k.as_str()).collect();
        return Err(forbidden(format!(
            "node {node:?} is not allowed to modify labels: {}",
            names.join(", ")
        )));
    }
    Ok(())
}

/// The Node authorizer's decision: `Some(true)` allowed, `Some(false)` denied, `None` no
/// opinion (RBAC decides).
pub fn decide(graph: &Graph, rules: &[Rule], node: &str, info: &RequestInfo) -> Option<bool> {
    if !info.resource_request {
        return None;
    }
    let verb = info.verb.as_str();
    let (g, res, sub) = (
        info.api_group.as_str(),
        info.resource.as_str(),
        info.subresource.as_str(),
    );
    let ns = info.namespace.as_str();
    let name = info.name.as_str();
    let graph_read = |kind: &'static str| {
        // One object at a time (a list or watch only with a name: a field selector on it).
        READ.contains(&verb) && !name.is_empty() && graph.uses(node, kind, ns, name)
    };
    let allowed = match (g, res, sub) {
        ("", "secrets" | "configmaps" | "persistentvolumeclaims", "") => {
            let kind = match res {
                "secrets" => "secrets",
                "configmaps" => "configmaps",
                _ => "persistentvolumeclaims",
            };
            if graph_read(kind) {
                return Some(true);
            }
            return None;
        }
        ("", "serviceaccounts", "token") => {
            if verb == "create" && graph.uses(node, "serviceaccounts", ns, name) {
                return Some(true);
            }
            return None;
        }
        ("", "nodes", "") if READ.contains(&verb) => true,
        // A create names nothing yet: [`admit_create`] checks the name in the body.
        ("", "nodes", "") if verb == "create" && name.is_empty() => true,
        ("", "nodes", "" | "status") => name == node,
        ("", "pods", "") if verb == "get" => graph.pod_on(node, ns, name),
        // Lists and watches of pods only of its own node (Kubernetes 1.32's
        // AuthorizeNodeWithSelectors).
        ("", "pods", "") if verb == "list" || verb == "watch" => info
            .field_selector
            .split(',')
            .any(|r| r.trim() == format!("spec.nodeName={node}")),
        ("", "pods", "") if verb == "delete" => graph.pod_on(node, ns, name),
        // Mirror pods only: [`admit_create`] checks the pod.
        ("", "pods", "") if verb == "create" => name.is_empty(),
        ("", "pods", "status" | "eviction") => graph.pod_on(node, ns, name),
        ("", "pods", _) => return None,
        ("coordination.k8s.io", "leases", "") => {
            ns == "kube-node-lease" && (name == node || (name.is_empty() && verb == "create"))
        }
        _ => rules.iter().any(|r| r.allows(info)),
    };
    allowed.then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph() -> Graph {
        let mut g = Graph::default();
        g.apply(
            "team/web",
            Some(&json!({"metadata": {"name": "web", "namespace": "team"},
                "spec": {"nodeName": "n1", "serviceAccountName": "bot",
                    "volumes": [{"name": "a", "secret": {"secretName": "tls"}},
                                {"name": "b", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}}],
                    "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}],
                                    "envFrom": [{"configMapRef": {"name": "settings"}}]}]}})),
        );
        g.apply(
            "team/other",
            Some(&json!({"metadata": {"name": "other", "namespace": "team"},
                "spec": {"nodeName": "n2", "volumes": [{"name": "a", "secret": {"secretName": "tls"}},
                                                          {"name": "s", "secret": {"secretName": "n2-only"}}],
                         "containers": [{"name": "c"}]}})),
        );
        g
    }

    fn r(verb: &str, res: &str, sub: &str, ns: &str, name: &str) -> RequestInfo {
        RequestInfo::resource(verb, "", ns, res, sub, name)
    }

    #[test]
    fn a_node_reads_only_what_its_pods_use() {
        let g = graph();
        let d = |info: RequestInfo| decide(&g, &[], "n1", &info);
        assert_eq!(d(r("get", "secrets", "", "team", "tls")), Some(true));
        assert_eq!(d(r("get", "secrets", "", "team", "db")), Some(true));
        assert_eq!(d(r("watch", "secrets", "", "team", "db")), Some(true));
        assert_eq!(
            d(r("get", "configmaps", "", "team", "settings")),
            Some(true)
        );
        assert_eq!(
            d(r("get", "configmaps", "", "team", "kube-root-ca.crt")),
            Some(true)
        );
        assert_eq!(d(r("get", "secrets", "", "team", "n2-only")), None);
        assert_eq!(d(r("list", "secrets", "", "team", "")), None);
        assert_eq!(d(r("update", "secrets", "", "team", "tls")), None);
        assert_eq!(
            d(r("create", "serviceaccounts", "token", "team", "bot")),
            Some(true)
        );
        assert_eq!(
            d(r("create", "serviceaccounts", "token", "team", "default")),
            None
        );
        assert_eq!(d(r("patch", "pods", "status", "team", "web")), Some(true));
        assert_eq!(d(r("patch", "pods", "status", "team", "other")), None);
        assert_eq!(d(r("get", "pods", "", "team", "other")), None);
        assert_eq!(d(r("patch", "nodes", "status", "", "n1")), Some(true));
        assert_eq!(d(r("patch", "nodes", "status", "", "n2")), None);
        assert_eq!(d(r("get", "nodes", "", "", "n2")), Some(true));
        let mut list = r("list", "pods", "", "", "");
        assert_eq!(d(list.clone()), None);
        list.field_selector = "spec.nodeName=n1".into();
        assert_eq!(d(list.clone()), Some(true));
        list.field_selector = "spec.nodeName=n2".into();
        assert_eq!(d(list), None);
        let lease = |name: &str| {
            RequestInfo::resource(
                "update",
                "coordination.k8s.io",
                "kube-node-lease",
                "leases",
                "",
                name,
            )
        };
        assert_eq!(d(lease("n1")), Some(true));
        assert_eq!(d(lease("n2")), None);
    }

    #[test]
    fn the_graph_follows_pods_moving_and_going() {
        let mut g = graph();
        assert!(g.uses("n1", "secrets", "team", "tls") && g.uses("n2", "secrets", "team", "tls"));
        g.apply("team/other", None);
        assert!(!g.uses("n2", "secrets", "team", "tls"));
        assert!(g.uses("n1", "secrets", "team", "tls"));
        g.apply("team/web", Some(&json!({"metadata": {"name": "web", "namespace": "team"}, "spec": {"containers": []}})));
        assert!(!g.uses("n1", "secrets", "team", "tls"));
        assert!(g.used.is_empty() && g.pods.is_empty(), "{g:?}");
    }
}
