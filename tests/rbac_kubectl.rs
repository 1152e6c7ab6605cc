//! Authentication and RBAC as kubectl 1.32 sees them: users from a `--token-auth-file`,
//! roles and bindings applied with kubectl, and a users × verbs × resources matrix where
//! `kubectl auth can-i` (through impersonation) and the real request with the user's own
//! token agree with what Kubernetes would decide.

mod common;

use std::time::Duration;

use common::server::{KeelsonServer, Out};
use common::wait_until;

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

const TOKENS: &str = "\
# token,user,uid,groups
tok-alice,alice,uid-alice
tok-bob,bob,uid-bob,\"devs\"
tok-carol,carol,uid-carol
tok-dave,dave,uid-dave
tok-eve,eve,uid-eve
tok-prom,prom,uid-prom,\"system:monitoring\"
";

const POLICY: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-view, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-edit, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects: [{kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: carol-admin, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects: [{kind: User, name: carol, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: settings-reader, namespace: team}
rules:
- {apiGroups: [''], resources: [configmaps], resourceNames: [settings], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dave-settings, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: settings-reader}
subjects: [{kind: User, name: dave, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-reader}
rules:
- {apiGroups: [''], resources: [nodes], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: carol-nodes}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-reader}
subjects: [{kind: User, name: carol, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team}
data: {mode: fast}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, namespace: team}
data: {mode: slow}
";

/// (user, groups, verb, resource, name, allowed in namespace `team`). What Kubernetes'
/// default `view` / `edit` / `admin` roles and the policy above grant.
const MATRIX: &[(&str, &str, &str, &str, &str, bool)] = &[
    ("alice", "", "get", "pods", "", true),
    ("alice", "", "list", "pods", "", true),
    ("alice", "", "list", "configmaps", "", true),
    ("alice", "", "create", "configmaps", "", false),
    ("alice", "", "get", "secrets", "", false),
    ("alice", "", "list", "deployments.apps", "", true),
    ("alice", "", "delete", "deployments.apps", "", false),
    ("alice", "", "get", "pods/log", "", true),
    ("alice", "", "create", "pods/exec", "", false),
    (
        "alice",
        "",
        "list",
        "roles.rbac.authorization.k8s.io",
        "",
        false,
    ),
    ("bob", "devs", "create", "configmaps", "", true),
    ("bob", "devs", "get", "secrets", "", true),
    ("bob", "devs", "delete", "deployments.apps", "", true),
    ("bob", "devs", "create", "pods/exec", "", true),
    (
        "bob",
        "devs",
        "list",
        "roles.rbac.authorization.k8s.io",
        "",
        false,
    ),
    (
        "bob",
        "devs",
        "create",
        "rolebindings.rbac.authorization.k8s.io",
        "",
        false,
    ),
    ("bob", "", "create", "configmaps", "", false),
    (
        "carol",
        "",
        "create",
        "rolebindings.rbac.authorization.k8s.io",
        "",
        true,
    ),
    ("carol", "", "delete", "secrets", "", true),
    ("carol", "", "list", "resourcequotas", "", true),
    ("carol", "", "create", "resourcequotas", "", false),
    ("dave", "", "get", "configmaps", "settings", true),
    ("dave", "", "get", "configmaps", "other", false),
    ("dave", "", "list", "configmaps", "", false),
    ("dave", "", "update", "configmaps", "settings", false),
    ("eve", "", "list", "pods", "", false),
    ("eve", "", "get", "configmaps", "settings", false),
];

/// A kubeconfig with the cluster CA and a bearer token, and no client certificate.
fn token_kubeconfig(s: &KeelsonServer, token: &str) -> String {
    let ca = s.kubectl_ok(&[
        "config",
        "view",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    let server = s.kubectl_ok(&[
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\ncurrent-context: c\n"
    );
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut h);
    s.file(&format!("kubeconfig-{:x}", h.finish()), &text)
}

fn as_token(s: &KeelsonServer, token: &str, args: &[&str]) -> Out {
    let kc = token_kubeconfig(s, token);
    let mut all = vec!["--kubeconfig", kc.as_str()];
    all.extend_from_slice(args);
    // The later --kubeconfig wins over the admin one `kubectl()` passes first.
    s.kubectl(&all)
}

fn can_i(
    s: &KeelsonServer,
    user: &str,
    groups: &str,
    verb: &str,
    resource: &str,
    name: &str,
) -> bool {
    let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
    let target = if name.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{name}")
    };
    let mut args = vec![
        "auth",
        "can-i",
        verb,
        target.as_str(),
        "-n",
        "team",
        "--as",
        user,
    ];
    if !sub.is_empty() {
        args.extend_from_slice(&["--subresource", sub]);
    }
    if !groups.is_empty() {
        args.extend_from_slice(&["--as-group", groups]);
    }
    let out = s.kubectl(&args);
    match out.stdout.trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "kubectl auth can-i {args:?} printed {other:?}; stderr: {}",
            out.stderr
        ),
    }
}

fn wait_rbac(s: &KeelsonServer, user: &str, verb: &str, resource: &str, name: &str, want: bool) {
    wait_until(
        Duration::from_secs(20),
        "the authorizer sees the applied roles",
        || can_i(s, user, "", verb, resource, name) == want,
    );
}

#[test]
fn kubectl_auth_can_i_and_real_requests_agree_with_kubernetes_rbac() {
    let tokens_dir = tempfile::tempdir().expect("temp dir");
    let tokens = tokens_dir.path().join("tokens.csv");
    std::fs::write(&tokens, TOKENS).expect("write tokens");
    let tokens = tokens.display().to_string();
    let s = KeelsonServer::start(keelson(), &["--token-auth-file", &tokens]);
    let policy = s.file("policy.yaml", POLICY);
    s.kubectl_ok(&["apply", "-f", &policy]);
    wait_rbac(&s, "dave", "get", "configmaps", "settings", true);

    // whoami: the token's user and groups; the admin's certificate identity.
    let who = as_token(&s, "tok-bob", &["auth", "whoami", "-o", "json"]);
    assert!(who.ok, "whoami: {}", who.stderr);
    let v: serde_json::Value = serde_json::from_str(&who.stdout).expect("whoami json");
    assert_eq!(v["status"]["userInfo"]["username"], "bob");
    assert_eq!(v["status"]["userInfo"]["uid"], "uid-bob");
    assert_eq!(
        v["status"]["userInfo"]["groups"],
        serde_json::json!(["devs", "system:authenticated"])
    );
    let admin = s.kubectl_ok(&["auth", "whoami"]);
    assert!(
        admin.contains("kubernetes-admin") && admin.contains("system:masters"),
        "{admin}"
    );

    let mut disagreements = Vec::new();
    for &(user, groups, verb, resource, name, want) in MATRIX {
        let got = can_i(&s, user, groups, verb, resource, name);
        if got != want {
            disagreements.push(format!(
                "can-i {verb} {resource}/{name} as {user} ({groups}): got {got}, want {want}"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));

    // The real requests with each user's own token decide the same way.
    let real = |token: &str, args: &[&str]| as_token(&s, token, args);
    assert!(real("tok-alice", &["get", "pods", "-n", "team"]).ok);
    let denied = real("tok-alice", &["get", "secrets", "-n", "team"]);
    assert!(!denied.ok);
    assert!(
        denied.stderr.contains(
            "Error from server (Forbidden): secrets is forbidden: User \"alice\" cannot list resource \"secrets\" in API group \"\" in the namespace \"team\""
        ),
        "{}",
        denied.stderr
    );
    let denied = real("tok-alice", &["delete", "configmap", "other", "-n", "team"]);
    assert!(
        denied.stderr.contains(
            "configmaps \"other\" is forbidden: User \"alice\" cannot delete resource \"configmaps\" in API group \"\" in the namespace \"team\""
        ),
        "{}",
        denied.stderr
    );
    assert!(
        real(
            "tok-bob",
            &["create", "configmap", "made-by-bob", "-n", "team"]
        )
        .ok
    );
    assert!(real("tok-bob", &["get", "secrets", "-n", "team"]).ok);
    assert!(!real("tok-bob", &["get", "secrets", "-n", "default"]).ok);
    assert!(real("tok-dave", &["get", "configmap", "settings", "-n", "team"]).ok);
    assert!(!real("tok-dave", &["get", "configmap", "other", "-n", "team"]).ok);
    assert!(!real("tok-dave", &["get", "configmaps", "-n", "team"]).ok);
    // Cluster scope: only carol's ClusterRoleBinding grants nodes.
    assert!(real("tok-carol", &["get", "nodes"]).ok);
    let denied = real("tok-alice", &["get", "nodes"]);
    assert!(
        denied
            .stderr
            .contains("cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "{}",
        denied.stderr
    );
    // Non-resource URLs: discovery for everyone, /metrics for system:monitoring.
    assert!(real("tok-eve", &["get", "--raw", "/version"]).ok);
    assert!(real("tok-eve", &["api-resources"]).ok);
    assert!(!real("tok-eve", &["get", "--raw", "/metrics"]).ok);
    let metrics = real("tok-prom", &["get", "--raw", "/metrics"]);
    assert!(
        metrics.ok && metrics.stdout.contains("apiserver_request_total"),
        "{}",
        metrics.stderr
    );

    // `can-i --list`: alice's rules in team include view's pods rule.
    let list = as_token(&s, "tok-alice", &["auth", "can-i", "--list", "-n", "team"]);
    assert!(list.ok, "{}", list.stderr);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{}",
        list.stdout
    );

    // Impersonation needs the `impersonate` verb.
    let imp = real("tok-bob", &["get", "pods", "-n", "team", "--as", "carol"]);
    assert!(!imp.ok);
    assert!(
        imp.stderr.contains(
            "users \"carol\" is forbidden: User \"bob\" cannot impersonate resource \"users\""
        ),
        "{}",
        imp.stderr
    );

    // A binding removed takes its grant away.
    s.kubectl_ok(&["delete", "rolebinding", "alice-view", "-n", "team"]);
    wait_rbac(&s, "alice", "list", "pods", "", false);
    assert!(!real("tok-alice", &["get", "pods", "-n", "team"]).ok);

    // `kubectl create token`: a ServiceAccount token kubectl can use, with RBAC applied.
    s.kubectl_ok(&["create", "serviceaccount", "ci", "-n", "team"]);
    let sa_token = s
        .kubectl_ok(&["create", "token", "ci", "-n", "team"])
        .trim()
        .to_string();
    let who = as_token(
        &s,
        &sa_token,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(
        who.stdout.trim(),
        "system:serviceaccount:team:ci",
        "{}",
        who.stderr
    );
    assert!(!as_token(&s, &sa_token, &["get", "pods", "-n", "team"]).ok);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "ci-view",
        "--clusterrole=view",
        "--serviceaccount=team:ci",
        "-n",
        "team",
    ]);
    wait_until(Duration::from_secs(20), "the ci binding is seen", || {
        as_token(&s, &sa_token, &["get", "pods", "-n", "team"]).ok
    });

    // Unknown tokens and missing credentials are 401, never anonymous.
    for token in ["tok-mallory", "tok-alice-forged"] {
        let out = real(token, &["get", "pods"]);
        assert!(!out.ok);
        assert!(out.stderr.contains("Unauthorized"), "{}", out.stderr);
    }
}

/// `scheduler_schedule_attempts_total{result="<result>"}` from `/metrics`.
fn attempts(s: &KeelsonServer, result: &str) -> f64 {
    let m = s.kubectl(&["get", "--raw", "/metrics"]).stdout;
    let want = format!("scheduler_schedule_attempts_total{{result=\"{result}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(want.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn the_scheduler_runs_as_system_kube_scheduler_and_only_its_role_lets_it_bind() {
    let s = KeelsonServer::start(keelson(), &[]);
    let log = std::fs::File::create(s.dir.path().join("agent.log")).expect("agent log");
    let mut agent = std::process::Command::new(keelson());
    agent
        .arg("agent")
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .args(["--runtime", "fake", "--node-name", "hollow", "--port", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(log);
    let _agent = common::ChildGuard::spawn("keelson agent", &mut agent).expect("agent");
    wait_until(Duration::from_secs(30), "the hollow node is Ready", || {
        s.kubectl(&[
            "get",
            "node",
            "hollow",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .stdout
        .trim()
            == "True"
    });
    // Take pods/binding away from the scheduler's role (pinned, so no restart puts it back).
    let role = s.kubectl_ok(&["get", "clusterrole", "system:kube-scheduler", "-o", "json"]);
    let mut role: serde_json::Value = serde_json::from_str(&role).expect("role json");
    let full = role["rules"].clone();
    let rules: Vec<serde_json::Value> = full
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| {
            !r["resources"]
                .as_array()
                .is_some_and(|a| a.contains(&serde_json::json!("pods/binding")))
        })
        .cloned()
        .collect();
    assert!(rules.len() < full.as_array().map_or(0, Vec::len));
    role["rules"] = serde_json::json!(rules);
    role["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
        serde_json::json!("false");
    if let Some(m) = role["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let f = s.file("role.json", &role.to_string());
    s.kubectl_ok(&["replace", "-f", &f]);
    wait_until(
        Duration::from_secs(20),
        "the scheduler may no longer bind",
        || {
            s.kubectl(&[
                "auth",
                "can-i",
                "create",
                "pods",
                "--subresource=binding",
                "--as",
                "system:kube-scheduler",
            ])
            .stdout
            .trim()
                == "no"
        },
    );
    let errors_before = attempts(&s, "error");
    s.kubectl_ok(&["run", "p1", "--image=registry.invalid/x:1"]);
    wait_until(Duration::from_secs(30), "a binding refused by RBAC", || {
        attempts(&s, "error") > errors_before
    });
    assert_eq!(
        s.kubectl_ok(&["get", "pod", "p1", "-o", "jsonpath={.spec.nodeName}"])
            .trim(),
        ""
    );
    // Its rules back: the pod is bound.
    role["rules"] = full;
    let f = s.file("role.json", &role.to_string());
    s.kubectl_ok(&["replace", "-f", &f]);
    wait_until(
        Duration::from_secs(60),
        "the pod is scheduled once the role allows it",
        || {
            s.kubectl(&["get", "pod", "p1", "-o", "jsonpath={.spec.nodeName}"])
                .stdout
                .trim()
                == "hollow"
        },
    );
}

#[test]
fn each_controller_runs_as_its_own_service_account_with_only_its_role() {
    let s = KeelsonServer::start(keelson(), &[]);
    let rs_sa = "system:serviceaccount:kube-system:replicaset-controller";
    // Each identity may do its controller's work and nothing else.
    assert!(can_i(&s, rs_sa, "", "create", "pods", ""));
    assert!(can_i(&s, rs_sa, "", "patch", "replicasets/status", ""));
    assert!(!can_i(&s, rs_sa, "", "get", "secrets", ""));
    assert!(!can_i(&s, rs_sa, "", "create", "deployments", ""));
    let gc = "system:serviceaccount:kube-system:generic-garbage-collector";
    assert!(can_i(&s, gc, "", "delete", "secrets", ""));
    assert!(!can_i(&s, gc, "", "create", "pods", ""));
    let kcm = "system:kube-controller-manager";
    assert!(can_i(&s, kcm, "", "watch", "pods", ""));
    assert!(!can_i(&s, kcm, "", "create", "pods", ""));
    assert!(!can_i(&s, kcm, "", "get", "secrets", ""));

    // Take `create pods` away from the ReplicaSet controller's role (pinned, so no restart
    // puts it back): a ReplicaSet gets no pods, and says why.
    let name = "system:controller:replicaset-controller";
    let role = s.kubectl_ok(&["get", "clusterrole", name, "-o", "json"]);
    let mut role: serde_json::Value = serde_json::from_str(&role).expect("role json");
    let full = role["rules"].clone();
    let mut cut = full.clone();
    let mut removed = false;
    for r in cut.as_array_mut().expect("rules") {
        if r["resources"] == serde_json::json!(["pods"]) {
            if let Some(verbs) = r["verbs"].as_array_mut() {
                let before = verbs.len();
                verbs.retain(|v| v != "create");
                removed |= verbs.len() < before;
            }
        }
    }
    assert!(removed, "the role lets the controller create pods: {full}");
    role["rules"] = cut;
    role["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
        serde_json::json!("false");
    if let Some(m) = role["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    s.kubectl_ok(&["replace", "-f", &s.file("role.json", &role.to_string())]);
    wait_rbac(&s, rs_sa, "create", "pods", "", false);
    let rs = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: registry.invalid/x:1}]}\n";
    s.kubectl_ok(&["create", "-f", &s.file("rs.yaml", rs)]);
    wait_until(
        Duration::from_secs(30),
        "a FailedCreate event that names the controller's identity",
        || {
            let out = s.kubectl(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=web,reason=FailedCreate",
                "-o",
                "jsonpath={.items[*].message}",
            ]);
            out.stdout.contains("forbidden") && out.stdout.contains(rs_sa)
        },
    );
    assert_eq!(
        s.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"])
            .trim(),
        ""
    );
    // Its rules back: the ReplicaSet gets its pods.
    role["rules"] = full;
    s.kubectl_ok(&["replace", "-f", &s.file("role.json", &role.to_string())]);
    wait_until(
        Duration::from_secs(60),
        "the ReplicaSet's pods, once the role allows them",
        || {
            s.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])
                .stdout
                .lines()
                .count()
                == 2
        },
    );
}

#[test]
fn node_restriction_keeps_a_kubelet_off_its_nodes_taints_and_protected_labels() {
    let s = KeelsonServer::start(keelson(), &[]);
    let f = s.file(
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {kubernetes.io/hostname: n1}\n",
    );
    s.kubectl_ok(&["create", "-f", &f]);
    let as_kubelet = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--as", "system:node:n1", "--as-group", "system:nodes"]);
        s.kubectl(&a)
    };
    // Labels outside Kubernetes' domains, and the kubelet's own, are its to set.
    let ok = as_kubelet(&[
        "label",
        "node",
        "n1",
        "pool=blue",
        "node.kubernetes.io/instance-type=m1",
    ]);
    assert!(ok.ok, "{}", ok.stderr);
    let bad = as_kubelet(&[
        "label",
        "node",
        "n1",
        "node-restriction.kubernetes.io/trusted=yes",
    ]);
    assert!(
        !bad.ok
            && bad.stderr.contains(
                "node \"n1\" is not allowed to modify labels: node-restriction.kubernetes.io/trusted"
            ),
        "{}",
        bad.stderr
    );
    let bad = as_kubelet(&[
        "label",
        "node",
        "n1",
        "node-role.kubernetes.io/control-plane=",
    ]);
    assert!(
        !bad.ok && bad.stderr.contains("not allowed to modify labels"),
        "{}",
        bad.stderr
    );
    let taint = as_kubelet(&["taint", "node", "n1", "dedicated=me:NoSchedule"]);
    assert!(
        !taint.ok
            && taint
                .stderr
                .contains("node \"n1\" is not allowed to modify taints"),
        "{}",
        taint.stderr
    );
    // The admin may do both.
    s.kubectl_ok(&["taint", "node", "n1", "dedicated=me:NoSchedule"]);
    s.kubectl_ok(&[
        "label",
        "node",
        "n1",
        "node-restriction.kubernetes.io/trusted=yes",
    ]);
    // And a kubelet cannot register a node with such a label.
    let f = s.file(
        "node2.yaml",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n2\n  labels: {node-restriction.kubernetes.io/x: \"v1\"}\n",
    );
    let out = s.kubectl(&[
        "create",
        "-f",
        &f,
        "--as",
        "system:node:n2",
        "--as-group",
        "system:nodes",
    ]);
    assert!(
        !out.ok
            && out.stderr.contains(
                "is not allowed to set the following labels: node-restriction.kubernetes.io/x"
            ),
        "{}",
        out.stderr
    );
}
