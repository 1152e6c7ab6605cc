//! The default roles and bindings every cluster starts with (Kubernetes' bootstrap policy,
//! trimmed to the resources keelson serves), and their reconciliation at every start.
//!
//! Each is labelled `kubernetes.io/bootstrapping: rbac-defaults` and annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "true"`: a server adds the rules and
//! subjects a newer keelson defines to an existing default object, and leaves alone one whose
//! annotation an operator set to `"false"`.

use serde_json::{json, Value};

use crate::error::{ApiError, Result};
use crate::rest::{self, Change, Via, WriteCtx};
use crate::Api;

const RBAC: &str = "rbac.authorization.k8s.io";
const AGG_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGG_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGG_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
/// Every verb of a resource: the ones discovery lists.
const ALL_RW: &[&str] = crate::registry::ALL_VERBS;

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn meta(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (k, v) in labels {
        l.insert(k.to_string(), json!(v));
    }
    json!({"name": name, "labels": l, "annotations": {AUTOUPDATE: "true"}})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": meta(name, labels), "rules": rules})
}

fn aggregated(name: &str, labels: &[(&str, &str)], to: &str) -> Value {
    let mut r = cluster_role(name, labels, Vec::new());
    r["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {to: "true"}}]});
    r
}

fn binding(name: &str, role: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(kind, n)| json!({"kind": kind, "apiGroup": RBAC, "name": n}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": meta(name, &[]),
           "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
           "subjects": subjects})
}

/// The rules of the `view` role: read access to a namespace's objects, secrets excepted.
fn view_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
        ),
        rule(READ, &[""], &["namespaces"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        rule(
            READ,
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        ),
        rule(
            READ,
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
        ),
        rule(READ, &["events.k8s.io"], &["events"]),
        rule(READ, &["metrics.k8s.io"], &["pods", "nodes"]),
    ]
}

/// The rules `edit` adds to `view`: writing a namespace's workloads, secrets included; not
/// roles, bindings or quotas.
fn edit_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
        ),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(
            WRITE,
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
        ),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(
            WRITE,
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
        rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
        rule(
            WRITE,
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
        ),
        rule(WRITE, &["discovery.k8s.io"], &["endpointslices"]),
    ]
}

/// The rules `admin` adds to `edit`: a namespace's roles and bindings, access reviews.
fn admin_rules() -> Vec<Value> {
    vec![
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
        ),
        rule(ALL_RW, &[RBAC], &["rolebindings", "roles"]),
    ]
}

/// What a kubelet may do (Kubernetes' `system:node`): the Node authorizer grants these to
/// kubelets, narrowed to their own node's objects; the role's binding has no subjects.
pub(crate) fn node_rules() -> Vec<Value> {
    vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews", "subjectaccessreviews"],
        ),
        rule(READ, &[""], &["services", "endpoints"]),
        rule(
            &[
                "create", "get", "list", "watch", "delete", "patch", "update",
            ],
            &[""],
            &["nodes"],
        ),
        rule(&["patch", "update"], &[""], &["nodes/status"]),
        rule(
            &["create", "patch", "update"],
            &["", "events.k8s.io"],
            &["events"],
        ),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["patch", "update"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(
            READ,
            &[""],
            &[
                "configmaps",
                "secrets",
                "persistentvolumeclaims",
                "persistentvolumes",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            &[
                "create", "delete", "get", "patch", "update", "list", "watch",
            ],
            &["coordination.k8s.io"],
            &["leases"],
        ),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// What the scheduler does (Kubernetes' `system:kube-scheduler`, trimmed to what keelson
/// serves): watch pods, nodes and namespaces, bind pods, report why a pod is unschedulable,
/// record events and hold its leader Lease.
fn scheduler_rules() -> Vec<Value> {
    let mut lease = rule(
        &["get", "update", "patch"],
        &["coordination.k8s.io"],
        &["leases"],
    );
    lease["resourceNames"] = json!(["kube-scheduler"]);
    vec![
        rule(
            &["create", "patch", "update"],
            &["", "events.k8s.io"],
            &["events"],
        ),
        rule(&["create"], &["coordination.k8s.io"], &["leases"]),
        lease,
        rule(READ, &[""], &["nodes", "namespaces"]),
        rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
        rule(&["create"], &[""], &["bindings", "pods/binding"]),
        rule(&["patch", "update"], &[""], &["pods/status"]),
        rule(
            READ,
            &[""],
            &[
                "replicationcontrollers",
                "services",
                "persistentvolumeclaims",
                "persistentvolumes",
            ],
        ),
        rule(READ, &["apps"], &["replicasets", "statefulsets"]),
        rule(READ, &["policy"], &["poddisruptionbudgets"]),
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
        ),
    ]
}

/// The rule every controller role has: it records events (Kubernetes' `eventsRule`).
fn events_rule() -> Vec<Value> {
    vec![rule(
        &["create", "patch", "update"],
        &["", "events.k8s.io"],
        &["events"],
    )]
}

/// `system:kube-controller-manager`: the controller manager's own identity, which holds its
/// leader Lease and runs the informers controllers share (so it may list and watch
/// everything, and change nothing else but its Lease and events; Kubernetes' role of that
/// name, trimmed to what keelson serves).
fn controller_manager_rules() -> Vec<Value> {
    let mut lease = rule(
        &["get", "update", "patch"],
        &["coordination.k8s.io"],
        &["leases"],
    );
    lease["resourceNames"] = json!(["kube-controller-manager"]);
    let mut rules = events_rule();
    rules.extend([
        rule(&["create"], &["coordination.k8s.io"], &["leases"]),
        lease,
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
        ),
        rule(&["list", "watch"], &["*"], &["*"]),
    ]);
    rules
}

/// The ServiceAccount `kube-system/<name>` each controller acts as, and the rules of its
/// ClusterRole `system:controller:<name>`: Kubernetes' controller roles for the controllers
/// keelson runs. Where one keelson controller does the work of several of Kubernetes'
/// (the namespace controller also creates `default` ServiceAccounts and publishes
/// `kube-root-ca.crt`; the endpoints controller also writes EndpointSlices; the Job
/// controller also deletes finished Jobs past `ttlSecondsAfterFinished`), its role is the
/// union of theirs. Keelson's controllers write with merge patches where Kubernetes' update,
/// so their `…/status` rules, the Deployment controller's `deployments` and the namespace
/// controller's `configmaps` allow `patch` as well, and the node controller watches the node
/// Leases itself.
pub fn controller_roles() -> Vec<(&'static str, Vec<Value>)> {
    const APPS: &[&str] = &["apps", "extensions"];
    const STATUS: &[&str] = &["update", "patch"];
    let with_events = |mut rules: Vec<Value>| {
        rules.extend(events_rule());
        rules
    };
    vec![
        (
            "replicaset-controller",
            with_events(vec![
                rule(&["get", "list", "watch", "update"], APPS, &["replicasets"]),
                rule(STATUS, APPS, &["replicasets/status"]),
                rule(&["update"], APPS, &["replicasets/finalizers"]),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
            ]),
        ),
        (
            "deployment-controller",
            with_events(vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    APPS,
                    &["deployments"],
                ),
                rule(STATUS, APPS, &["deployments/status"]),
                rule(&["update"], APPS, &["deployments/finalizers"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    APPS,
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], &[""], &["pods"]),
            ]),
        ),
        (
            "generic-garbage-collector",
            with_events(vec![rule(
                &["get", "list", "watch", "patch", "update", "delete"],
                &["*"],
                &["*"],
            )]),
        ),
        (
            "namespace-controller",
            with_events(vec![
                rule(&["get", "list", "watch", "delete"], &[""], &["namespaces"]),
                rule(
                    &["update"],
                    &[""],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                rule(
                    &["get", "list", "watch", "delete", "deletecollection"],
                    &["*"],
                    &["*"],
                ),
                rule(&["create"], &[""], &["serviceaccounts"]),
                rule(&["create", "update", "patch"], &[""], &["configmaps"]),
            ]),
        ),
        (
            "node-controller",
            with_events(vec![
                rule(
                    &["get", "list", "watch", "update", "delete", "patch"],
                    &[""],
                    &["nodes"],
                ),
                rule(STATUS, &[""], &["nodes/status", "pods/status"]),
                rule(&["list", "watch", "get", "delete"], &[""], &["pods"]),
                rule(&["list", "watch"], &["coordination.k8s.io"], &["leases"]),
            ]),
        ),
        (
            "endpoint-controller",
            with_events(vec![
                rule(READ, &[""], &["services", "pods", "nodes"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &[""],
                    &["endpoints"],
                ),
                rule(&["create"], &[""], &["endpoints/restricted"]),
                rule(&["update"], &[""], &["services/finalizers"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ]),
        ),
        (
            "statefulset-controller",
            with_events(vec![
                rule(&["list", "watch"], &[""], &["pods"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(STATUS, &["apps"], &["statefulsets/status"]),
                rule(&["update"], &["apps"], &["statefulsets/finalizers"]),
                rule(
                    &["get", "create", "delete", "update", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(
                    &[
                        "get", "create", "delete", "update", "patch", "list", "watch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                rule(
                    &["get", "create", "list", "watch", "update", "delete"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                rule(&["update"], &[""], &["pods/finalizers"]),
            ]),
        ),
        (
            "daemon-set-controller",
            with_events(vec![
                rule(READ, APPS, &["daemonsets"]),
                rule(STATUS, APPS, &["daemonsets/status"]),
                rule(&["update"], APPS, &["daemonsets/finalizers"]),
                rule(&["list", "watch"], &[""], &["nodes"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(&["create"], &[""], &["pods/binding"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
            ]),
        ),
        (
            "job-controller",
            with_events(vec![
                rule(
                    &["get", "list", "watch", "update", "patch", "delete"],
                    &["batch"],
                    &["jobs"],
                ),
                rule(STATUS, &["batch"], &["jobs/status"]),
                rule(&["update"], &["batch"], &["jobs/finalizers"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
            ]),
        ),
        (
            "service-controller",
            with_events(vec![
                rule(READ, &[""], &["services"]),
                rule(STATUS, &[""], &["services/status"]),
                rule(&["list", "watch"], &[""], &["nodes"]),
            ]),
        ),
        (
            "cronjob-controller",
            with_events(vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &["batch"],
                    &["cronjobs"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                    &["batch"],
                    &["jobs"],
                ),
                rule(STATUS, &["batch"], &["cronjobs/status"]),
                rule(&["update"], &["batch"], &["cronjobs/finalizers"]),
                rule(&["list", "watch", "delete"], &[""], &["pods"]),
            ]),
        ),
    ]
}

/// The prefix of the controllers' ClusterRoles and ClusterRoleBindings.
pub const CONTROLLER_ROLE_PREFIX: &str = "system:controller:";

fn account_binding(name: &str, role: &str, namespace: &str, account: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": meta(name, &[]),
           "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
           "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
}

/// Every default ClusterRole.
pub fn cluster_roles() -> Vec<Value> {
    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", &[], AGG_ADMIN),
        aggregated("edit", &[(AGG_ADMIN, "true")], AGG_EDIT),
        aggregated("view", &[(AGG_EDIT, "true")], AGG_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(AGG_ADMIN, "true")],
            admin_rules(),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(AGG_EDIT, "true")],
            edit_rules(),
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(AGG_VIEW, "true")],
            view_rules(),
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/readyz",
                    "/readyz/*",
                    "/metrics",
                    "/metrics/slis",
                ],
            )],
        ),
        cluster_role("system:node", &[], node_rules()),
        cluster_role("system:kube-scheduler", &[], scheduler_rules()),
        cluster_role(
            "system:kube-controller-manager",
            &[],
            controller_manager_rules(),
        ),
    ]
    .into_iter()
    .chain(
        controller_roles().into_iter().map(|(name, rules)| {
            cluster_role(&format!("{CONTROLLER_ROLE_PREFIX}{name}"), &[], rules)
        }),
    )
    .collect()
}

/// Every default ClusterRoleBinding.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            &[("Group", "system:masters")],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &[("Group", "system:authenticated")],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &[("Group", "system:authenticated")],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        binding(
            "system:monitoring",
            "system:monitoring",
            &[("Group", "system:monitoring")],
        ),
        // Kubernetes keeps this binding without subjects: kubelets get the role's rules from
        // the Node authorizer, limited to their own node.
        binding("system:node", "system:node", &[]),
        binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            &[("User", "system:kube-controller-manager")],
        ),
    ]
    .into_iter()
    .chain(controller_roles().into_iter().map(|(name, _)| {
        let role = format!("{CONTROLLER_ROLE_PREFIX}{name}");
        account_binding(&role, &role, "kube-system", name)
    }))
    .collect()
}

/// `want`'s entries of `field` that `have` lacks, appended to `have`'s (Kubernetes'
/// reconciliation only ever adds).
fn union(have: &Value, want: &Value, field: &str) -> Option<Value> {
    let mut out: Vec<Value> = have
        .get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let missing: Vec<Value> = want
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|w| !out.contains(w))
        .cloned()
        .collect();
    if missing.is_empty() {
        return None;
    }
    out.extend(missing);
    Some(Value::Array(out))
}

async fn reconcile_one(api: &Api, plural: &str, want: Value, field: &'static str) -> Result<()> {
    let def = api
        .registry
        .get(RBAC, "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))?;
    let name = want["metadata"]["name"].as_str().unwrap_or("").to_string();
    let stored = api.storage.get(&def.key(None, &name), None, false).await?;
    let mut ctx = WriteCtx::internal("keelson-apiserver");
    let Some(stored) = stored else {
        return match rest::create_object(api, &def, None, want, &mut ctx).await {
            Ok(_) | Err(ApiError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        };
    };
    let pinned = |cur: &Value| {
        cur.pointer("/metadata/annotations")
            .and_then(|a| a.get(AUTOUPDATE))
            .and_then(Value::as_str)
            == Some("false")
    };
    // Most starts find nothing to add and write nothing.
    if pinned(&stored.obj) || union(&stored.obj, &want, field).is_none() {
        return Ok(());
    }
    let change = move |cur: &Value| -> Result<Value> {
        let mut next = cur.clone();
        if pinned(cur) {
            return Ok(next);
        }
        if let Some(v) = union(cur, &want, field) {
            next[field] = v;
        }
        Ok(next)
    };
    rest::update_object(
        api,
        &def,
        None,
        &name,
        Change::With(&change),
        Via::main(),
        &mut ctx,
    )
    .await
    .map(|_| ())
}

/// Creates the default roles and bindings, or adds to them what they lack.
pub async fn reconcile(api: &Api) -> Result<()> {
    for r in cluster_roles() {
        reconcile_one(api, "clusterroles", r, "rules").await?;
    }
    for b in cluster_role_bindings() {
        reconcile_one(api, "clusterrolebindings", b, "subjects").await?;
    }
    Ok(())
}
