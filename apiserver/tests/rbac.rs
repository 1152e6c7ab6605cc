//! RBAC enforcement and the review APIs, in process: default roles, a matrix of users ×
//! verbs × resources decided as Kubernetes decides it, the 403 Status, access reviews,
//! aggregation, impersonation, a node's identity, and reconciliation of the defaults.

mod support;

use std::time::Duration;

use keelson_apiserver::rest::User;
use serde_json::{json, Value};
use support::{wait_until, Resp, TestApi};

fn user(name: &str, groups: &[&str]) -> User {
    let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    groups.push("system:authenticated".into());
    User {
        name: name.into(),
        uid: String::new(),
        groups,
    }
}

async fn send(t: &TestApi, u: &User, method: &str, path: &str, body: Option<Value>) -> Resp {
    t.send_as(
        Some(u.clone()),
        method,
        path,
        body.map(|b| b.to_string().into_bytes()),
        "application/json",
        None,
    )
    .await
}

#[track_caller]
fn created(r: &Resp) {
    assert!(
        r.status == 201 || r.status == 200,
        "{} {}",
        r.status,
        r.body
    );
}

async fn apply_policy(t: &TestApi) {
    for (path, body) in [
        ("/api/v1/namespaces", json!({"metadata": {"name": "team"}})),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings",
            json!({"metadata": {"name": "alice-view"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                   "subjects": [{"kind": "User", "name": "alice"}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings",
            json!({"metadata": {"name": "bots-edit"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                   "subjects": [{"kind": "ServiceAccount", "name": "bot"}]}),
        ),
        (
            "/api/v1/namespaces/team/configmaps",
            json!({"metadata": {"name": "settings"}, "data": {"a": "1"}}),
        ),
        // What the namespace controller would create.
        (
            "/api/v1/namespaces/team/serviceaccounts",
            json!({"metadata": {"name": "default"}}),
        ),
    ] {
        created(&t.req("POST", path, Some(&body)).await);
    }
}

async fn status_of(t: &TestApi, u: &User, method: &str, path: &str, body: Option<Value>) -> u16 {
    send(t, u, method, path, body).await.status
}

#[tokio::test]
async fn default_roles_and_a_matrix_of_requests() {
    let t = TestApi::start().await;
    for name in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:node",
    ] {
        let r = t
            .req(
                "GET",
                &format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(
            r.body["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
            "true"
        );
    }
    apply_policy(&t).await;
    let alice = user("alice", &[]);
    let bot = User {
        name: "system:serviceaccount:team:bot".into(),
        uid: String::new(),
        groups: vec![
            "system:serviceaccounts".into(),
            "system:serviceaccounts:team".into(),
            "system:authenticated".into(),
        ],
    };
    let eve = user("eve", &[]);
    wait_until(
        Duration::from_secs(10),
        "alice's binding is seen",
        || async {
            status_of(&t, &alice, "GET", "/api/v1/namespaces/team/pods", None).await == 200
        },
    )
    .await;
    let cm = json!({"metadata": {"name": "x"}});
    let cases: Vec<(&User, &str, &str, Option<Value>, u16)> = vec![
        (
            &alice,
            "GET",
            "/api/v1/namespaces/team/configmaps/settings",
            None,
            200,
        ),
        (
            &alice,
            "GET",
            "/api/v1/namespaces/team/configmaps?watch=true&timeoutSeconds=1",
            None,
            200,
        ),
        (
            &alice,
            "POST",
            "/api/v1/namespaces/team/configmaps",
            Some(cm.clone()),
            403,
        ),
        (&alice, "GET", "/api/v1/namespaces/team/secrets", None, 403),
        (&alice, "GET", "/api/v1/namespaces/default/pods", None, 403),
        (&alice, "GET", "/api/v1/pods", None, 403),
        (
            &alice,
            "GET",
            "/apis/apps/v1/namespaces/team/deployments",
            None,
            200,
        ),
        (&alice, "GET", "/api/v1/namespaces/team", None, 200),
        (&alice, "GET", "/api/v1/namespaces/other", None, 403),
        (
            &alice,
            "DELETE",
            "/api/v1/namespaces/team/configmaps/settings",
            None,
            403,
        ),
        (
            &bot,
            "POST",
            "/api/v1/namespaces/team/configmaps",
            Some(cm.clone()),
            201,
        ),
        (&bot, "GET", "/api/v1/namespaces/team/secrets", None, 200),
        (
            &bot,
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles",
            None,
            403,
        ),
        (
            &bot,
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(cm.clone()),
            403,
        ),
        (
            &eve,
            "GET",
            "/api/v1/namespaces/team/configmaps/settings",
            None,
            403,
        ),
        // Discovery and version for every authenticated user; /metrics not.
        (&eve, "GET", "/api", None, 200),
        (&eve, "GET", "/apis/apps/v1", None, 200),
        (&eve, "GET", "/version", None, 200),
        (&eve, "GET", "/metrics", None, 403),
        // A resource that does not exist is still forbidden first, as in Kubernetes.
        (&eve, "GET", "/apis/nope.example.com/v1/widgets", None, 403),
    ];
    let mut wrong = Vec::new();
    for (u, method, path, body, want) in cases {
        let got = status_of(&t, u, method, path, body).await;
        if got != want {
            wrong.push(format!("{} {method} {path}: {got}, want {want}", u.name));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The 403 is a Status saying who cannot do what.
    let r = send(
        &t,
        &alice,
        "GET",
        "/api/v1/namespaces/team/secrets/s1",
        None,
    )
    .await;
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["reason"], "Forbidden");
    assert_eq!(r.body["code"], 403);
    assert_eq!(
        r.body["message"],
        "secrets \"s1\" is forbidden: User \"alice\" cannot get resource \"secrets\" in API group \"\" in the namespace \"team\""
    );
    assert_eq!(r.body["details"], json!({"name": "s1", "kind": "secrets"}));
    let r = send(&t, &eve, "GET", "/metrics", None).await;
    assert_eq!(
        r.body["message"],
        "forbidden: User \"eve\" cannot get path \"/metrics\""
    );
    // No credentials at all: 401.
    let r = t
        .send_as(
            None,
            "GET",
            "/api/v1/namespaces",
            None,
            "application/json",
            None,
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn access_reviews_answer_what_can_i_asks() {
    let t = TestApi::start().await;
    apply_policy(&t).await;
    let alice = user("alice", &[]);
    let ssar = |verb: &str, resource: &str, ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": ns}}})
    };
    wait_until(
        Duration::from_secs(10),
        "alice's binding is seen",
        || async {
            let r = send(
                &t,
                &alice,
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                Some(ssar("list", "pods", "team")),
            )
            .await;
            r.body["status"]["allowed"] == true
        },
    )
    .await;
    let r = send(
        &t,
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(ssar("list", "pods", "team")),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["kind"], "SelfSubjectAccessReview");
    assert_eq!(
        r.body["status"]["reason"],
        "RBAC: allowed by RoleBinding \"alice-view\" of ClusterRole \"view\" to User \"alice\" in namespace \"team\""
    );
    let r = send(
        &t,
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(ssar("delete", "pods", "team")),
    )
    .await;
    assert_eq!(r.body["status"]["allowed"], false);
    // Non-resource attributes.
    let nr = json!({"spec": {"nonResourceAttributes": {"verb": "get", "path": "/apis"}}});
    let r = send(
        &t,
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(nr),
    )
    .await;
    assert_eq!(r.body["status"]["allowed"], true, "{}", r.body);
    // Both or neither attribute kind: 422.
    let r = send(
        &t,
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(json!({"spec": {}})),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    // Only create: a GET is authorized as a list first (403 for alice), then refused (405).
    let r = send(
        &t,
        &alice,
        "GET",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = t
        .req(
            "GET",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            None,
        )
        .await;
    assert_eq!(r.status, 405);

    // SubjectAccessReview: the admin may ask about others; alice may not.
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                     "spec": {"user": "system:serviceaccount:team:bot",
                              "resourceAttributes": {"verb": "create", "resource": "secrets", "namespace": "team"}}});
    let r = t
        .req(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            Some(&sar),
        )
        .await;
    assert_eq!(r.body["status"]["allowed"], true, "{}", r.body);
    let r = send(
        &t,
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        Some(sar),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = t
        .req(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            Some(&json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);

    // LocalSubjectAccessReview: the namespace must be the path's.
    let lsar = |ns: &str| json!({"spec": {"user": "alice", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": ns}}});
    let r = t
        .req(
            "POST",
            "/apis/authorization.k8s.io/v1/namespaces/team/localsubjectaccessreviews",
            Some(&lsar("team")),
        )
        .await;
    assert_eq!(r.body["status"]["allowed"], true, "{}", r.body);
    assert_eq!(r.body["metadata"]["namespace"], "team");
    let r = t
        .req(
            "POST",
            "/apis/authorization.k8s.io/v1/namespaces/team/localsubjectaccessreviews",
            Some(&lsar("other")),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);

    // SelfSubjectRulesReview.
    let r = send(
        &t,
        &alice,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        Some(json!({"spec": {"namespace": "team"}})),
    )
    .await;
    assert_eq!(r.status, 201);
    let rules = r.body["status"]["resourceRules"]
        .as_array()
        .expect("rules")
        .clone();
    assert!(
        rules.iter().any(|r| r["resources"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("pods")))
            && r["verbs"] == json!(["get", "list", "watch"])),
        "{rules:?}"
    );
    assert!(r.body["status"]["nonResourceRules"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert_eq!(r.body["status"]["incomplete"], false);

    // SelfSubjectReview.
    let r = send(
        &t,
        &alice,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body["status"]["userInfo"],
        json!({"username": "alice", "groups": ["system:authenticated"]})
    );

    // Discovery lists both groups.
    let r = t.req("GET", "/apis", None).await;
    let names: Vec<&str> = r.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(
        names.contains(&"authorization.k8s.io") && names.contains(&"authentication.k8s.io"),
        "{names:?}"
    );
    let r = t.req("GET", "/apis/authorization.k8s.io/v1", None).await;
    assert_eq!(
        r.body["resources"].as_array().map(Vec::len),
        Some(4),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn aggregation_impersonation_and_nodes() {
    let t = TestApi::start().await;
    apply_policy(&t).await;
    let alice = user("alice", &[]);
    // A ClusterRole labelled aggregate-to-view extends `view` (and so `edit` and `admin`).
    let role = json!({"metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                      "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["public"], "verbs": ["get"]}]});
    created(
        &t.req(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            Some(&role),
        )
        .await,
    );
    wait_until(
        Duration::from_secs(10),
        "view aggregates widgets-view",
        || async {
            status_of(
                &t,
                &alice,
                "GET",
                "/api/v1/namespaces/team/secrets/public",
                None,
            )
            .await
                == 404
        },
    )
    .await;
    assert_eq!(
        status_of(
            &t,
            &alice,
            "GET",
            "/api/v1/namespaces/team/secrets/private",
            None
        )
        .await,
        403
    );

    // Impersonation: allowed only with the impersonate verb on that user / group.
    let imp = json!({"metadata": {"name": "imp-alice"},
                     "rules": [{"apiGroups": [""], "resources": ["users"], "resourceNames": ["alice"], "verbs": ["impersonate"]}]});
    created(
        &t.req(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            Some(&imp),
        )
        .await,
    );
    let b = json!({"metadata": {"name": "helpdesk-imp"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "imp-alice"},
                   "subjects": [{"kind": "User", "name": "helpdesk"}]});
    created(
        &t.req(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            Some(&b),
        )
        .await,
    );
    let helpdesk = user("helpdesk", &[]);
    let as_user = |who: &'static str, groups: &'static [&'static str]| {
        let helpdesk = helpdesk.clone();
        let t = &t;
        async move {
            let mut headers = vec![("impersonate-user", who)];
            headers.extend(groups.iter().map(|g| ("impersonate-group", *g)));
            let r = t
                .send_with(
                    Some(helpdesk),
                    "GET",
                    "/api/v1/namespaces/team/pods",
                    None,
                    "application/json",
                    &headers,
                )
                .await;
            (r.status, String::from_utf8_lossy(&r.raw).into_owned())
        }
    };
    wait_until(
        Duration::from_secs(10),
        "helpdesk may impersonate alice",
        || async { as_user("alice", &[]).await.0 == 200 },
    )
    .await;
    let (code, body) = as_user("bob", &[]).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("users \\\"bob\\\" is forbidden: User \\\"helpdesk\\\" cannot impersonate resource \\\"users\\\""), "{body}");
    let (code, _) = as_user("alice", &["system:masters"]).await;
    assert_eq!(
        code, 403,
        "impersonating system:masters needs the groups grant"
    );

    // A kubelet's identity: its node, pods' status, leases — not RBAC objects or secrets lists elsewhere.
    let node = User {
        name: "system:node:n1".into(),
        uid: String::new(),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    };
    let n = json!({"metadata": {"name": "n1"}});
    assert_eq!(
        status_of(&t, &node, "POST", "/api/v1/nodes", Some(n)).await,
        201
    );
    assert_eq!(
        status_of(
            &t,
            &node,
            "GET",
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1",
            None
        )
        .await,
        200
    );
    let lease = json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}});
    assert_eq!(
        status_of(
            &t,
            &node,
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            Some(lease)
        )
        .await,
        201
    );
    assert_eq!(
        status_of(
            &t,
            &node,
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            None
        )
        .await,
        403
    );
    assert_eq!(
        status_of(&t, &node, "DELETE", "/api/v1/namespaces/team", None).await,
        403
    );
}

#[tokio::test]
async fn defaults_are_reconciled_unless_pinned() {
    let t = TestApi::start().await;
    let path = "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:basic-user";
    let mut role = t.req("GET", path, None).await.body;
    let full = role["rules"].clone();
    role["rules"] = json!([]);
    assert_eq!(t.req("PUT", path, Some(&role)).await.status, 200);
    t.api.bootstrap().await.expect("bootstrap");
    let r = t.req("GET", path, None).await;
    assert_eq!(r.body["rules"], full, "a default role gets its rules back");
    let rv = r.body["metadata"]["resourceVersion"].clone();
    t.api.bootstrap().await.expect("bootstrap");
    assert_eq!(
        t.req("GET", path, None).await.body["metadata"]["resourceVersion"],
        rv,
        "nothing to add writes nothing"
    );

    let mut role = t.req("GET", path, None).await.body;
    role["rules"] = json!([]);
    role["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = json!("false");
    assert_eq!(t.req("PUT", path, Some(&role)).await.status, 200);
    t.api.bootstrap().await.expect("bootstrap");
    assert_eq!(
        t.req("GET", path, None).await.body["rules"],
        json!([]),
        "a pinned role is left alone"
    );

    // Deleting cluster-admin does not lock system:masters out.
    assert_eq!(
        t.req(
            "DELETE",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cluster-admin",
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(t.req("GET", "/api/v1/namespaces", None).await.status, 200);
}

/// A name suffix unique within the test process.
fn rand_suffix() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A request with a bearer token and no client certificate.
async fn with_token(
    t: &TestApi,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let auth = format!("Bearer {token}");
    t.send_with(
        None,
        method,
        path,
        body.map(|b| b.to_string().into_bytes()),
        "application/json",
        &[("authorization", &auth)],
    )
    .await
}

#[tokio::test]
async fn service_account_tokens_are_issued_bound_reviewed_and_revoked() {
    let t = TestApi::start().await;
    apply_policy(&t).await;
    created(
        &t.req(
            "POST",
            "/api/v1/namespaces/team/serviceaccounts",
            Some(&json!({"metadata": {"name": "bot"}})),
        )
        .await,
    );
    let pod = t
        .req("POST", "/api/v1/namespaces/team/pods", Some(&json!({"metadata": {"name": "p"},
            "spec": {"serviceAccountName": "bot", "containers": [{"name": "c", "image": "busybox"}]}})))
        .await;
    created(&pod);
    // ServiceAccount admission: a pod of an account that does not exist is refused.
    let r = t
        .req("POST", "/api/v1/namespaces/team/pods", Some(&json!({"metadata": {"name": "lost"},
            "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "busybox"}]}})))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body["message"],
        "pods \"lost\" is forbidden: error looking up service account team/ghost: serviceaccount \"ghost\" not found"
    );
    assert_eq!(
        t.req("GET", "/api/v1/namespaces/team/pods/lost", None)
            .await
            .status,
        404
    );
    // ServiceAccount admission: the projected volume, mounted in the container.
    let vol = &pod.body["spec"]["volumes"][0];
    assert!(
        vol["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-")),
        "{}",
        pod.body
    );
    assert_eq!(
        pod.body["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    let pod_uid = pod.body["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    // An account that opts out of automounting: its pods get no token volume.
    created(
        &t.req(
            "POST",
            "/api/v1/namespaces/team/serviceaccounts",
            Some(&json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false})),
        )
        .await,
    );
    wait_until(Duration::from_secs(10), "the quiet account's pods mount nothing", || async {
        let name = format!("q-{}", rand_suffix());
        let r = t
            .req("POST", "/api/v1/namespaces/team/pods", Some(&json!({"metadata": {"name": name},
                "spec": {"serviceAccountName": "quiet", "containers": [{"name": "c", "image": "busybox"}]}})))
            .await;
        r.status == 201 && r.body["spec"].get("volumes").is_none()
    })
    .await;

    let request = |spec: Value| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    let path = "/api/v1/namespaces/team/serviceaccounts/bot/token";
    let r = t
        .req(
            "POST",
            path,
            Some(&request(
                json!({"boundObjectRef": {"kind": "Pod", "name": "p", "uid": pod_uid}}),
            )),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        r.body["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let token = r.body["status"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert!(r.body["status"]["expirationTimestamp"].is_string());

    // The token authenticates as the account, and RBAC applies to it (edit in team).
    let who = with_token(
        &t,
        &token,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(json!({})),
    )
    .await;
    assert_eq!(who.status, 201, "{}", who.body);
    assert_eq!(
        who.body["status"]["userInfo"]["username"],
        "system:serviceaccount:team:bot"
    );
    assert_eq!(
        who.body["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:team",
            "system:authenticated"
        ])
    );
    wait_until(
        Duration::from_secs(10),
        "the bot's binding is seen",
        || async {
            with_token(&t, &token, "GET", "/api/v1/namespaces/team/secrets", None)
                .await
                .status
                == 200
        },
    )
    .await;
    assert_eq!(
        with_token(
            &t,
            &token,
            "GET",
            "/api/v1/namespaces/default/secrets",
            None
        )
        .await
        .status,
        403
    );

    // TokenReview, as the admin asks it.
    let review = |token: &str, audiences: Value| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token, "audiences": audiences}});
    let r = t
        .req(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            Some(&review(&token, json!([]))),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"]["authenticated"], true);
    assert_eq!(
        r.body["status"]["user"]["username"],
        "system:serviceaccount:team:bot"
    );
    let r = t
        .req(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            Some(&review("not-a-token", json!([]))),
        )
        .await;
    assert_eq!(r.body["status"]["authenticated"], false);
    assert!(r.body["status"]["error"].is_string());
    // A token for another audience is good for that audience, not for the API.
    let r = t
        .req(
            "POST",
            path,
            Some(&request(
                json!({"audiences": ["vault"], "expirationSeconds": 600}),
            )),
        )
        .await;
    let vault = r.body["status"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(
        with_token(
            &t,
            &vault,
            "GET",
            "/api/v1/namespaces/team/configmaps",
            None
        )
        .await
        .status,
        401
    );
    let r = t
        .req(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            Some(&review(&vault, json!(["vault"]))),
        )
        .await;
    assert_eq!(r.body["status"]["authenticated"], true, "{}", r.body);
    assert_eq!(r.body["status"]["audiences"], json!(["vault"]));

    // Bad requests.
    let r = t
        .req(
            "POST",
            path,
            Some(&request(json!({"expirationSeconds": 10}))),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = t
        .req(
            "POST",
            "/api/v1/namespaces/team/serviceaccounts/ghost/token",
            Some(&request(json!({}))),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = t
        .req(
            "POST",
            path,
            Some(&request(
                json!({"boundObjectRef": {"kind": "Pod", "name": "p", "uid": "someone-else"}}),
            )),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = t
        .req(
            "POST",
            path,
            Some(&request(
                json!({"boundObjectRef": {"kind": "Node", "name": "n"}}),
            )),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    // Only those allowed to create serviceaccounts/token get tokens.
    let eve = user("eve", &[]);
    assert_eq!(
        send(&t, &eve, "POST", path, Some(request(json!({}))))
            .await
            .status,
        403
    );
    // A forged token (the signature of another key) is refused.
    let mut parts: Vec<&str> = token.split('.').collect();
    let other = keelson_apiserver::auth::token::Signer::from_pem(
        &keelson_apiserver::auth::token::new_key_pem().unwrap(),
    )
    .unwrap();
    let claims = keelson_apiserver::auth::token::Claims {
        namespace: "team".into(),
        service_account: "bot".into(),
        service_account_uid: String::new(),
        pod: None,
        audiences: vec![keelson_apiserver::auth::token::ISSUER.into()],
        expires: jiff::Timestamp::now().as_second() + 600,
    };
    let forged = other
        .issue(&claims, jiff::Timestamp::now().as_second())
        .unwrap();
    assert_eq!(
        with_token(
            &t,
            &forged,
            "GET",
            "/api/v1/namespaces/team/configmaps",
            None
        )
        .await
        .status,
        401
    );
    parts[2] = "AAAA";
    assert_eq!(
        with_token(
            &t,
            &parts.join("."),
            "GET",
            "/api/v1/namespaces/team/configmaps",
            None
        )
        .await
        .status,
        401
    );

    // Deleting the pod the token is bound to revokes it.
    assert!(
        t.req(
            "DELETE",
            "/api/v1/namespaces/team/pods/p?gracePeriodSeconds=0",
            None
        )
        .await
        .status
            < 300
    );
    wait_until(
        Duration::from_secs(10),
        "the pod's token is revoked",
        || async {
            with_token(
                &t,
                &token,
                "GET",
                "/api/v1/namespaces/team/configmaps",
                None,
            )
            .await
            .status
                == 401
        },
    )
    .await;
}

#[tokio::test]
async fn the_node_authorizer_limits_a_kubelet_to_its_own_pods_objects() {
    let t = TestApi::start().await;
    apply_policy(&t).await;
    for (name, data) in [("tls", "a"), ("n2-only", "b")] {
        created(
            &t.req(
                "POST",
                "/api/v1/namespaces/team/secrets",
                Some(&json!({"metadata": {"name": name}, "stringData": {"k": data}})),
            )
            .await,
        );
    }
    for (pod, node, secret) in [("web", "n1", "tls"), ("other", "n2", "n2-only")] {
        created(
            &t.req(
                "POST",
                "/api/v1/namespaces/team/pods",
                Some(&json!({"metadata": {"name": pod},
            "spec": {"nodeName": node, "volumes": [{"name": "s", "secret": {"secretName": secret}}],
                     "containers": [{"name": "c", "image": "busybox",
                                     "envFrom": [{"configMapRef": {"name": "settings"}}]}]}})),
            )
            .await,
        );
    }
    let kubelet = |n: &str| User {
        name: format!("system:node:{n}"),
        uid: String::new(),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    };
    let n1 = kubelet("n1");
    wait_until(
        Duration::from_secs(10),
        "the graph has n1's pod",
        || async {
            status_of(&t, &n1, "GET", "/api/v1/namespaces/team/secrets/tls", None).await == 200
        },
    )
    .await;
    let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("GET", "/api/v1/namespaces/team/configmaps/settings".into(), None, 200),
        ("GET", "/api/v1/namespaces/team/secrets/n2-only".into(), None, 403),
        ("GET", "/api/v1/namespaces/team/secrets".into(), None, 403),
        ("GET", "/api/v1/namespaces/team/secrets?fieldSelector=metadata.name%3Dtls&watch=true&timeoutSeconds=1".into(), None, 200),
        ("GET", "/api/v1/namespaces/team/configmaps/other".into(), None, 403),
        ("GET", "/api/v1/namespaces/team/pods/web".into(), None, 200),
        ("GET", "/api/v1/namespaces/team/pods/other".into(), None, 403),
        ("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1".into(), None, 200),
        ("GET", "/api/v1/pods".into(), None, 403),
        ("PATCH", "/api/v1/namespaces/team/pods/other/status".into(), Some(json!({})), 403),
        ("POST", "/api/v1/namespaces/team/serviceaccounts/default/token".into(), Some(json!({"spec": {}})), 201),
        ("POST", "/api/v1/namespaces/team/serviceaccounts/bot/token".into(), Some(json!({"spec": {}})), 403),
        ("GET", "/api/v1/nodes/n2".into(), None, 404),
        ("PATCH", "/api/v1/nodes/n2/status".into(), Some(json!({})), 403),
        ("DELETE", "/api/v1/namespaces/team/pods/other".into(), None, 403),
        ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles".into(), None, 403),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, want) in cases {
        let r = t
            .send_as(
                Some(n1.clone()),
                method,
                &path,
                body.map(|b| b.to_string().into_bytes()),
                if method == "PATCH" {
                    "application/merge-patch+json"
                } else {
                    "application/json"
                },
                None,
            )
            .await;
        if r.status != want {
            wrong.push(format!(
                "{method} {path}: {} ({}), want {want}",
                r.status, r.body["message"]
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // NodeRestriction: its own Node and Lease, not another's.
    assert_eq!(
        status_of(
            &t,
            &n1,
            "POST",
            "/api/v1/nodes",
            Some(json!({"metadata": {"name": "n2"}}))
        )
        .await,
        403
    );
    let lease = |n: &str| json!({"metadata": {"name": n}, "spec": {"holderIdentity": n}});
    assert_eq!(
        status_of(
            &t,
            &n1,
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            Some(lease("n2"))
        )
        .await,
        403
    );
    assert_eq!(
        status_of(
            &t,
            &n1,
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            Some(lease("n1"))
        )
        .await,
        201
    );
    // n2's kubelet reads n2's secret, not n1's... until a pod on n2 uses it too.
    let n2 = kubelet("n2");
    assert_eq!(
        status_of(&t, &n2, "GET", "/api/v1/namespaces/team/secrets/tls", None).await,
        403
    );
    created(
        &t.req(
            "POST",
            "/api/v1/namespaces/team/pods",
            Some(&json!({"metadata": {"name": "third"},
        "spec": {"nodeName": "n2", "volumes": [{"name": "s", "secret": {"secretName": "tls"}}],
                 "containers": [{"name": "c", "image": "busybox"}]}})),
        )
        .await,
    );
    wait_until(
        Duration::from_secs(10),
        "n2 may read tls once its pod uses it",
        || async {
            status_of(&t, &n2, "GET", "/api/v1/namespaces/team/secrets/tls", None).await == 200
        },
    )
    .await;
    // Deleting n1's pod takes n1's access away.
    assert!(
        t.req(
            "DELETE",
            "/api/v1/namespaces/team/pods/web?gracePeriodSeconds=0",
            None
        )
        .await
        .status
            < 300
    );
    wait_until(
        Duration::from_secs(10),
        "n1 loses tls with its pod",
        || async {
            status_of(&t, &n1, "GET", "/api/v1/namespaces/team/secrets/tls", None).await == 403
        },
    )
    .await;
}

#[tokio::test]
async fn a_kubelet_creates_only_mirror_pods_of_its_own_node() {
    let t = TestApi::start().await;
    apply_policy(&t).await;
    let mut uids = std::collections::HashMap::new();
    for n in ["n1", "n2"] {
        let r = t
            .req(
                "POST",
                "/api/v1/nodes",
                Some(&json!({"metadata": {"name": n}})),
            )
            .await;
        created(&r);
        uids.insert(
            n,
            r.body["metadata"]["uid"].as_str().unwrap_or("").to_string(),
        );
    }
    let n1 = User {
        name: "system:node:n1".into(),
        uid: String::new(),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    };
    let mirror = |name: &str, node: &str, owner: Value, spec_extra: Value| {
        let mut spec = json!({"nodeName": node,
            "containers": [{"name": "c", "image": "busybox"}]});
        for (k, v) in spec_extra.as_object().into_iter().flatten() {
            spec[k] = v.clone();
        }
        json!({"metadata": {"name": name,
                "annotations": {"kubernetes.io/config.mirror": "hash"},
                "ownerReferences": owner},
               "spec": spec})
    };
    let own = |n: &str| json!([{"apiVersion": "v1", "kind": "Node", "name": n, "uid": uids[n], "controller": true}]);
    let path = "/api/v1/namespaces/team/pods";
    wait_until(Duration::from_secs(10), "the nodes are cached", || async {
        send(
            &t,
            &n1,
            "POST",
            path,
            Some(mirror("ok", "n1", own("n1"), json!({}))),
        )
        .await
        .status
            == 201
    })
    .await;
    let pod = t.req("GET", &format!("{path}/ok"), None).await;
    assert_eq!(pod.status, 200, "{}", pod.body);
    assert!(
        pod.body["spec"].get("serviceAccountName").is_none()
            && pod.body["spec"].get("volumes").is_none(),
        "a mirror pod gets no account and no token: {}",
        pod.body
    );
    let mut plain = mirror("plain", "n1", own("n1"), json!({}));
    plain["metadata"]
        .as_object_mut()
        .map(|m| m.remove("annotations"));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("plain", plain, "can only create mirror pods"),
        (
            "elsewhere",
            mirror("elsewhere", "n2", own("n1"), json!({})),
            "spec.nodeName set to itself",
        ),
        (
            "orphan",
            mirror("orphan", "n1", json!([]), json!({})),
            "an owner reference set to itself",
        ),
        (
            "n2-owned",
            mirror("n2-owned", "n1", own("n2"), json!({})),
            "an owner reference set to itself",
        ),
        (
            "stale-uid",
            mirror(
                "stale-uid",
                "n1",
                json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "0000", "controller": true}]),
                json!({}),
            ),
            "UID mismatch",
        ),
        (
            "account",
            mirror(
                "account",
                "n1",
                own("n1"),
                json!({"serviceAccountName": "bot"}),
            ),
            "reference a service account",
        ),
        (
            "secret",
            mirror(
                "secret",
                "n1",
                own("n1"),
                json!({"volumes": [{"name": "s", "secret": {"secretName": "tls"}}]}),
            ),
            "reference secrets",
        ),
        (
            "config",
            mirror(
                "config",
                "n1",
                own("n1"),
                json!({"containers": [{"name": "c", "image": "busybox",
                        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}]}),
            ),
            "reference configmaps",
        ),
    ];
    for (name, body, want) in cases {
        let r = send(&t, &n1, "POST", path, Some(body)).await;
        assert_eq!(r.status, 403, "{name}: {}", r.body);
        let msg = r.body["message"].as_str().unwrap_or("");
        assert!(msg.contains(want), "{name}: {msg}");
        assert_eq!(
            t.req("GET", &format!("{path}/{name}"), None).await.status,
            404,
            "{name} was not written"
        );
    }
    // Its own mirror pod it reads and deletes, once the graph has it.
    wait_until(
        Duration::from_secs(10),
        "the graph has the mirror pod",
        || async {
            send(&t, &n1, "GET", &format!("{path}/ok"), None)
                .await
                .status
                == 200
        },
    )
    .await;
    let r = send(&t, &n1, "DELETE", &format!("{path}/ok"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
