//! The table of resources the apiserver serves.
//!
//! Every resource is one [`ResourceDef`] row: its group/version/kind, naming, scope, verbs,
//! subresources, schema and [`Strategy`]. The REST engine (`rest.rs`) is generic over rows; adding
//! a built-in resource is adding a row here (and, when it needs one, a strategy in `strategy/`).
//! Custom resources add rows at run time when their CustomResourceDefinition is established.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::strategy::{self, Strategy};

/// The verbs Kubernetes discovery lists.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A subresource of a resource (`pods/status`, `deployments/scale`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sub {
    Status,
    Scale,
    Binding,
    Eviction,
    Log,
    Exec,
    Attach,
    PortForward,
    Proxy,
    Finalize,
    Ephemeral,
    /// `serviceaccounts/<name>/token` (TokenRequest).
    Token,
}

impl Sub {
    pub fn name(self) -> &'static str {
        match self {
            Sub::Status => "status",
            Sub::Scale => "scale",
            Sub::Binding => "binding",
            Sub::Eviction => "eviction",
            Sub::Log => "log",
            Sub::Exec => "exec",
            Sub::Attach => "attach",
            Sub::PortForward => "portforward",
            Sub::Proxy => "proxy",
            Sub::Finalize => "finalize",
            Sub::Ephemeral => "ephemeralcontainers",
            Sub::Token => "token",
        }
    }

    pub fn parse(s: &str) -> Option<Sub> {
        Some(match s {
            "status" => Sub::Status,
            "scale" => Sub::Scale,
            "binding" => Sub::Binding,
            "eviction" => Sub::Eviction,
            "log" => Sub::Log,
            "exec" => Sub::Exec,
            "attach" => Sub::Attach,
            "portforward" => Sub::PortForward,
            "proxy" => Sub::Proxy,
            "finalize" => Sub::Finalize,
            "ephemeralcontainers" => Sub::Ephemeral,
            "token" => Sub::Token,
            _ => return None,
        })
    }

    /// (group, version, kind) of the subresource's object, the verbs, as discovery lists them.
    pub fn discovery(
        self,
        def: &ResourceDef,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    ) {
        match self {
            Sub::Status => ("", "", "", &["get", "patch", "update"]),
            Sub::Scale => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
            Sub::Binding => ("", "v1", "Binding", &["create"]),
            Sub::Eviction => ("policy", "v1", "Eviction", &["create"]),
            Sub::Log => ("", "v1", "Pod", &["get"]),
            Sub::Exec | Sub::Attach | Sub::PortForward => {
                ("", "v1", "PodExecOptions", &["create", "get"])
            }
            Sub::Proxy => (
                "",
                "v1",
                "",
                &["create", "delete", "get", "patch", "update"],
            ),
            Sub::Finalize => {
                let _ = def;
                ("", "", "", &["update"])
            }
            Sub::Ephemeral => ("", "", "", &["get", "patch", "update"]),
            Sub::Token => ("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
        }
    }
}

/// What the apiserver knows about a custom resource's version.
#[derive(Clone, Debug, Default)]
pub struct CustomInfo {
    /// The version's `schema.openAPIV3Schema`, if any.
    pub schema: Option<Value>,
    /// The version's `additionalPrinterColumns`.
    pub printer_columns: Value,
    /// `subresources.scale` paths.
    pub scale: Option<ScalePaths>,
    /// The CRD's name, e.g. `widgets.example.com`.
    pub crd_name: String,
    /// Whether this version is the storage version.
    pub storage: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One served resource.
#[derive(Clone)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<&'static str>,
    pub subresources: Vec<Sub>,
    /// OpenAPI component name of the type (built-in types).
    pub schema: Option<String>,
    /// Store key prefix, with the trailing slash: `/registry/pods/`.
    pub prefix: String,
    pub strategy: Arc<dyn Strategy>,
    pub custom: Option<CustomInfo>,
}

impl std::fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} {}", self.api_version(), self.plural, self.kind)
    }
}

impl ResourceDef {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn has(&self, sub: Sub) -> bool {
        self.subresources.contains(&sub)
    }

    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// The store key of an object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.prefix),
            _ => format!("{}{name}", self.prefix),
        }
    }

    /// The store key prefix of a list (all namespaces, or one).
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.prefix),
            _ => self.prefix.clone(),
        }
    }

    /// The URL path of the collection, for `selfLink`-like messages.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }
}

struct Row {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    subs: &'static [Sub],
    schema: &'static str,
    /// Store prefix override (events.k8s.io shares core events' storage).
    prefix: Option<&'static str>,
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

fn rows() -> Vec<Row> {
    use Sub::*;
    let r = |group, version, plural, kind, namespaced, short, categories, subs, schema| Row {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        categories,
        subs,
        schema,
        prefix: None,
    };
    vec![
        // core/v1
        r(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            NONE,
            &[Status, Finalize],
            "io.k8s.api.core.v1.Namespace",
        ),
        r(
            "",
            "v1",
            "pods",
            "Pod",
            true,
            &["po"],
            ALL,
            &[
                Status,
                Binding,
                Eviction,
                Log,
                Exec,
                Attach,
                PortForward,
                Proxy,
                Ephemeral,
            ],
            "io.k8s.api.core.v1.Pod",
        ),
        r(
            "",
            "v1",
            "services",
            "Service",
            true,
            &["svc"],
            ALL,
            &[Status, Proxy],
            "io.k8s.api.core.v1.Service",
        ),
        r(
            "",
            "v1",
            "endpoints",
            "Endpoints",
            true,
            &["ep"],
            NONE,
            &[],
            "io.k8s.api.core.v1.Endpoints",
        ),
        r(
            "",
            "v1",
            "nodes",
            "Node",
            false,
            &["no"],
            NONE,
            &[Status, Proxy],
            "io.k8s.api.core.v1.Node",
        ),
        r(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            NONE,
            &[],
            "io.k8s.api.core.v1.ConfigMap",
        ),
        r(
            "",
            "v1",
            "secrets",
            "Secret",
            true,
            NONE,
            NONE,
            &[],
            "io.k8s.api.core.v1.Secret",
        ),
        r(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            NONE,
            &[Token],
            "io.k8s.api.core.v1.ServiceAccount",
        ),
        r(
            "",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            NONE,
            &[],
            "io.k8s.api.core.v1.Event",
        ),
        r(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            NONE,
            &[Status],
            "io.k8s.api.core.v1.PersistentVolumeClaim",
        ),
        r(
            "",
            "v1",
            "persistentvolumes",
            "PersistentVolume",
            false,
            &["pv"],
            NONE,
            &[Status],
            "io.k8s.api.core.v1.PersistentVolume",
        ),
        r(
            "",
            "v1",
            "resourcequotas",
            "ResourceQuota",
            true,
            &["quota"],
            NONE,
            &[Status],
            "io.k8s.api.core.v1.ResourceQuota",
        ),
        r(
            "",
            "v1",
            "limitranges",
            "LimitRange",
            true,
            &["limits"],
            NONE,
            &[],
            "io.k8s.api.core.v1.LimitRange",
        ),
        r(
            "",
            "v1",
            "podtemplates",
            "PodTemplate",
            true,
            NONE,
            NONE,
            &[],
            "io.k8s.api.core.v1.PodTemplate",
        ),
        r(
            "",
            "v1",
            "replicationcontrollers",
            "ReplicationController",
            true,
            &["rc"],
            ALL,
            &[Status, Scale],
            "io.k8s.api.core.v1.ReplicationController",
        ),
        // apps/v1
        r(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            ALL,
            &[Status, Scale],
            "io.k8s.api.apps.v1.Deployment",
        ),
        r(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            true,
            &["rs"],
            ALL,
            &[Status, Scale],
            "io.k8s.api.apps.v1.ReplicaSet",
        ),
        r(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            ALL,
            &[Status, Scale],
            "io.k8s.api.apps.v1.StatefulSet",
        ),
        r(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            true,
            &["ds"],
            ALL,
            &[Status],
            "io.k8s.api.apps.v1.DaemonSet",
        ),
        r(
            "apps",
            "v1",
            "controllerrevisions",
            "ControllerRevision",
            true,
            NONE,
            NONE,
            &[],
            "io.k8s.api.apps.v1.ControllerRevision",
        ),
        // batch/v1
        r(
            "batch",
            "v1",
            "jobs",
            "Job",
            true,
            NONE,
            ALL,
            &[Status],
            "io.k8s.api.batch.v1.Job",
        ),
        r(
            "batch",
            "v1",
            "cronjobs",
            "CronJob",
            true,
            &["cj"],
            ALL,
            &[Status],
            "io.k8s.api.batch.v1.CronJob",
        ),
        // coordination.k8s.io/v1
        r(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            NONE,
            NONE,
            &[],
            "io.k8s.api.coordination.v1.Lease",
        ),
        // discovery.k8s.io/v1
        r(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            NONE,
            NONE,
            &[],
            "io.k8s.api.discovery.v1.EndpointSlice",
        ),
        // events.k8s.io/v1: the same objects as core/v1 events, converted.
        Row {
            prefix: Some("/registry/events/"),
            ..r(
                "events.k8s.io",
                "v1",
                "events",
                "Event",
                true,
                &["ev"],
                NONE,
                &[],
                "io.k8s.api.events.v1.Event",
            )
        },
        // policy/v1
        r(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
            NONE,
            &[Status],
            "io.k8s.api.policy.v1.PodDisruptionBudget",
        ),
        // rbac.authorization.k8s.io/v1
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            NONE,
            NONE,
            &[],
            "io.k8s.api.rbac.v1.Role",
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            NONE,
            NONE,
            &[],
            "io.k8s.api.rbac.v1.RoleBinding",
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            NONE,
            NONE,
            &[],
            "io.k8s.api.rbac.v1.ClusterRole",
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            NONE,
            NONE,
            &[],
            "io.k8s.api.rbac.v1.ClusterRoleBinding",
        ),
        // apiextensions.k8s.io/v1
        r(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            &["api-extensions"],
            &[Status],
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        ),
    ]
}

/// The storage prefix of a built-in resource: `/registry/<plural>/` (Kubernetes' layout).
fn builtin_prefix(row: &Row) -> String {
    match row.prefix {
        Some(p) => p.to_string(),
        None => format!("/registry/{}/", row.plural),
    }
}

/// The storage prefix of a custom resource: `/registry/<group>/<plural>/`.
pub fn custom_prefix(group: &str, plural: &str) -> String {
    format!("/registry/{group}/{plural}/")
}

/// Lowercase singular name of a kind, as Kubernetes derives it.
pub fn singular_of(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

/// Every served resource, looked up by group/version/plural. Custom resources come and go.
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Default, Clone)]
struct Inner {
    /// (group, version, plural) → def.
    by_path: BTreeMap<(String, String, String), Arc<ResourceDef>>,
    /// Group → its versions, preferred first.
    groups: BTreeMap<String, Vec<String>>,
    /// Order in which groups were registered (discovery lists core first, then groups in order).
    group_order: Vec<String>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    /// The built-in resources.
    pub fn builtin() -> Registry {
        let mut inner = Inner::default();
        for row in rows() {
            let def = ResourceDef {
                group: row.group.to_string(),
                version: row.version.to_string(),
                plural: row.plural.to_string(),
                singular: singular_of(row.kind),
                kind: row.kind.to_string(),
                namespaced: row.namespaced,
                short_names: row.short.iter().map(|s| s.to_string()).collect(),
                categories: row.categories.iter().map(|s| s.to_string()).collect(),
                verbs: ALL_VERBS.to_vec(),
                subresources: row.subs.to_vec(),
                schema: Some(row.schema.to_string()),
                prefix: builtin_prefix(&row),
                strategy: strategy::for_builtin(row.group, row.plural),
                custom: None,
            };
            inner.add(def);
        }
        Registry {
            inner: RwLock::new(inner),
        }
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.inner
            .read()
            .by_path
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// The resource of a group (any served version) by plural, preferring the group's preferred version.
    pub fn get_any_version(&self, group: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        let inner = self.inner.read();
        let versions = inner.groups.get(group)?;
        versions.iter().find_map(|v| {
            inner
                .by_path
                .get(&(group.to_string(), v.clone(), plural.to_string()))
                .cloned()
        })
    }

    /// The resource serving a kind in a group version.
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        self.inner
            .read()
            .by_path
            .values()
            .find(|d| d.group == group && d.version == version && d.kind == kind)
            .cloned()
    }

    /// Is `version` served for `group`?
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.inner
            .read()
            .groups
            .get(group)
            .is_some_and(|vs| vs.iter().any(|v| v == version))
    }

    /// Groups in discovery order ("" = core first) with their versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let inner = self.inner.read();
        inner
            .group_order
            .iter()
            .filter_map(|g| inner.groups.get(g).map(|v| (g.clone(), v.clone())))
            .collect()
    }

    /// The resources of one group version, in registration order of plurals (sorted).
    pub fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.inner
            .read()
            .by_path
            .values()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// Every resource.
    pub fn all(&self) -> Vec<Arc<ResourceDef>> {
        self.inner.read().by_path.values().cloned().collect()
    }

    /// Replaces every custom resource row of one CRD (`crd_name`) by `defs` (empty = removes it).
    pub fn set_custom(&self, crd_name: &str, defs: Vec<ResourceDef>) {
        let mut inner = self.inner.write();
        let mut next = Inner::default();
        for def in inner.by_path.values() {
            let theirs = def.custom.as_ref().is_some_and(|c| c.crd_name == crd_name);
            if !theirs {
                next.add((**def).clone());
            }
        }
        for def in defs {
            next.add(def);
        }
        // Keep the group order stable: existing groups first, new ones appended.
        let mut order: Vec<String> = inner
            .group_order
            .iter()
            .filter(|g| next.groups.contains_key(*g))
            .cloned()
            .collect();
        for g in &next.group_order {
            if !order.contains(g) {
                order.push(g.clone());
            }
        }
        next.group_order = order;
        *inner = next;
    }
}

impl Inner {
    fn add(&mut self, def: ResourceDef) {
        let versions = self.groups.entry(def.group.clone()).or_default();
        if !versions.contains(&def.version) {
            versions.push(def.version.clone());
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        if !self.group_order.contains(&def.group) {
            self.group_order.push(def.group.clone());
        }
        self.by_path.insert(
            (def.group.clone(), def.version.clone(), def.plural.clone()),
            Arc::new(def),
        );
    }
}

/// Kubernetes' version priority: GA > beta > alpha, higher numbers first (v2 > v1 > v1beta2 > v1beta1 > v1alpha1),
/// versions that do not look like Kubernetes versions last.
pub fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(major) = digits.parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match num.parse::<u64>() {
        Ok(n) => (level, major, n),
        Err(_) => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rows_are_found_by_path_and_kind() {
        let r = Registry::builtin();
        let d = r.get("apps", "v1", "deployments").expect("deployments");
        assert_eq!(d.kind, "Deployment");
        assert_eq!(
            d.key(Some("default"), "web"),
            "/registry/deployments/default/web"
        );
        assert!(d.has(Sub::Scale));
        let ns = r.get("", "v1", "namespaces").expect("namespaces");
        assert!(!ns.namespaced);
        assert_eq!(
            ns.key(Some("ignored"), "kube-system"),
            "/registry/namespaces/kube-system"
        );
        assert_eq!(
            r.by_kind("", "v1", "Pod").map(|d| d.plural.clone()),
            Some("pods".into())
        );
        let ev = r.get("events.k8s.io", "v1", "events").expect("events");
        assert_eq!(ev.prefix, "/registry/events/");
        assert_eq!(r.groups()[0].0, "");
    }

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "v2", "foo"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }
}
