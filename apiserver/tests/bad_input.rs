//! Bad input gets the Kubernetes Status Kubernetes would send, and nothing is written.

mod support;

use serde_json::{json, Value};
use support::TestApi;

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

async fn count_configmaps(t: &TestApi) -> usize {
    let r = t
        .req("GET", "/api/v1/namespaces/default/configmaps", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().map_or(0, Vec::len)
}

async fn revision(t: &TestApi) -> i64 {
    t.node.linearize().await.expect("linearize");
    t.node.mvcc().current_rev()
}

fn assert_status(r: &support::Resp, code: u16, reason: &str) {
    assert_eq!(r.status, code, "{}", r.body);
    assert_eq!(r.body["kind"], "Status", "{}", r.body);
    assert_eq!(r.body["status"], "Failure", "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
    assert_eq!(r.body["reason"], reason, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_is_refused_and_writes_nothing() {
    let t = TestApi::start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let created = t.req("POST", base, Some(&cm("keep"))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let rv_before = revision(&t).await;

    // Malformed JSON, YAML and protobuf.
    let r = t
        .send(
            "POST",
            base,
            Some(b"{\"kind\": ".to_vec()),
            "application/json",
            None,
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    let r = t
        .send(
            "POST",
            base,
            Some(b"kind: [ConfigMap".to_vec()),
            "application/yaml",
            None,
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    let r = t
        .send(
            "POST",
            base,
            Some(b"k8s\x00\x0a\xff\xff".to_vec()),
            "application/vnd.kubernetes.protobuf",
            None,
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    let r = t
        .send(
            "POST",
            base,
            Some(b"not protobuf at all".to_vec()),
            "application/vnd.kubernetes.protobuf",
            None,
        )
        .await;
    assert_status(&r, 400, "BadRequest");

    // Invalid names and missing required fields: 422 naming the field.
    let r = t.req("POST", base, Some(&cm("Bad_Name"))).await;
    assert_status(&r, 422, "Invalid");
    assert_eq!(
        r.body["details"]["causes"][0]["field"], "metadata.name",
        "{}",
        r.body
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
    let r = t
        .req("POST", "/api/v1/namespaces/default/pods", Some(&pod))
        .await;
    assert_status(&r, 422, "Invalid");
    let fields: Vec<&str> = r.body["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert!(fields.contains(&"spec.containers[0].image"), "{fields:?}");
    let r = t
        .req(
            "POST",
            base,
            Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})),
        )
        .await;
    assert_status(&r, 422, "Invalid");
    assert_eq!(r.body["details"]["causes"][0]["field"], "metadata.name");

    // Kind / apiVersion not matching the URL.
    let r = t
        .req(
            "POST",
            base,
            Some(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})),
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    let r = t
        .req(
            "POST",
            base,
            Some(&json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
        )
        .await;
    assert_status(&r, 400, "BadRequest");

    // Namespace in the body different from the URL.
    let r = t.req("POST", base, Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}}))).await;
    assert_status(&r, 400, "BadRequest");

    // A body over 3 MiB.
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 10)}});
    let r = t.req("POST", base, Some(&big)).await;
    assert_status(&r, 413, "RequestEntityTooLarge");

    // Unknown fields: Strict refuses, Warn warns (and writes).
    let with_unknown = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}, "data": {}, "bogus": 1});
    let r = t
        .req(
            "POST",
            &format!("{base}?fieldValidation=Strict"),
            Some(&with_unknown),
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown field \"bogus\""),
        "{}",
        r.body
    );

    // A stale resourceVersion.
    let mut stale = created.body.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["data"]["k"] = json!("changed");
    let r = t.req("PUT", &format!("{base}/keep"), Some(&stale)).await;
    assert_status(&r, 409, "Conflict");

    // Unknown resource and wrong verb.
    let r = t
        .req("GET", "/api/v1/namespaces/default/widgets", None)
        .await;
    assert_status(&r, 404, "NotFound");
    let r = t.req("GET", "/apis/nope.example.com/v1/things", None).await;
    assert_status(&r, 404, "NotFound");
    let r = t
        .req("POST", &format!("{base}/keep"), Some(&cm("keep")))
        .await;
    assert_status(&r, 405, "MethodNotAllowed");
    let r = t.req("PUT", base, Some(&cm("keep"))).await;
    assert_status(&r, 405, "MethodNotAllowed");

    // Nothing was written by any of the above.
    assert_eq!(
        revision(&t).await,
        rv_before,
        "a refused request wrote something"
    );
    assert_eq!(count_configmaps(&t).await, 1);

    // Warn: accepted, with a Warning header.
    let r = t
        .req(
            "POST",
            &format!("{base}?fieldValidation=Warn"),
            Some(&with_unknown),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let warning = r
        .headers
        .get("warning")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        warning.starts_with("299 - ") && warning.contains("unknown field \\\"bogus\\\""),
        "{warning:?}"
    );
    assert!(r.body.get("bogus").is_none(), "unknown fields are dropped");

    // Requests without credentials.
    let r = t
        .send_as(None, "GET", base, None, "application/json", None)
        .await;
    assert_status(&r, 401, "Unauthorized");
}

#[tokio::test]
async fn requests_over_the_in_flight_limit_get_429_with_retry_after() {
    let t = std::sync::Arc::new(
        TestApi::start_with(|c| {
            c.max_requests_inflight = 1;
            c.max_mutating_requests_inflight = 1;
        })
        .await,
    );
    let binding = serde_json::json!({"metadata": {"name": "alice-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}]});
    let r = t
        .req(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            Some(&binding),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let alice = keelson_apiserver::rest::User {
        name: "alice".into(),
        uid: String::new(),
        groups: vec!["system:authenticated".into()],
    };
    let get = |path: &'static str| {
        let t = std::sync::Arc::clone(&t);
        let alice = alice.clone();
        async move {
            t.send_as(Some(alice), "GET", path, None, "application/json", None)
                .await
        }
    };
    support::wait_until(
        std::time::Duration::from_secs(10),
        "alice may list",
        || async { get("/api/v1/namespaces/default/configmaps").await.status == 200 },
    )
    .await;
    // A list waiting for a revision the store has not reached holds the one slot (3 s).
    let holder = tokio::spawn(get(
        "/api/v1/namespaces/default/configmaps?resourceVersion=999999999&resourceVersionMatch=NotOlderThan",
    ));
    support::wait_until(
        std::time::Duration::from_secs(5),
        "the slot is taken",
        || async { t.api.inflight.current().0 == 1 },
    )
    .await;
    let r = get("/api/v1/namespaces/default/configmaps").await;
    assert_status(&r, 429, "TooManyRequests");
    assert_eq!(
        r.headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or("")),
        Some("1")
    );
    // Watches are long-running and the admin is exempt.
    let w = get("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1").await;
    assert_eq!(w.status, 200);
    assert_eq!(
        t.req("GET", "/api/v1/namespaces/default/configmaps", None)
            .await
            .status,
        200
    );
    // Mutating requests have their own limit.
    let r = t
        .send_as(
            Some(alice.clone()),
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(cm("x").to_string().into_bytes()),
            "application/json",
            None,
        )
        .await;
    assert_eq!(r.status, 403, "not limited, only forbidden: {}", r.body);
    let held = holder.await.expect("holder");
    assert_eq!(held.status, 504, "{}", held.body);
    assert_eq!(
        get("/api/v1/namespaces/default/configmaps").await.status,
        200
    );
}

#[tokio::test]
async fn alias_bombs_and_deep_nesting_are_refused_quickly() {
    let t = TestApi::start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    // A billion laughs: nine levels of nine aliases each.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        bomb.push_str(&format!("{next}: &{next} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    bomb.push_str("kind: ConfigMap\napiVersion: v1\nmetadata: {name: bomb}\n");
    let started = std::time::Instant::now();
    let r = t
        .send(
            "POST",
            base,
            Some(bomb.into_bytes()),
            "application/yaml",
            None,
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // JSON nested deeper than the decoder allows.
    let deep = format!(
        "{{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{{\"name\":\"deep\"}},\"data\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let r = t
        .send(
            "POST",
            base,
            Some(deep.into_bytes()),
            "application/json",
            None,
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    let deep_yaml = format!(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {{name: deep}}\ndata: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let started = std::time::Instant::now();
    let r = t
        .send(
            "POST",
            base,
            Some(deep_yaml.into_bytes()),
            "application/yaml",
            None,
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    // The parser is quadratic in the depth: refused before it runs (it took 19 s once).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(count_configmaps(&t).await, 0);
}

#[tokio::test]
async fn a_user_over_the_watch_limit_gets_429_until_one_of_their_watches_ends() {
    let t = TestApi::start_with(|c| c.max_watches_per_user = 2).await;
    let binding = serde_json::json!({"metadata": {"name": "team-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "Group", "name": "team"}]});
    let r = t
        .req(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            Some(&binding),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let user = |name: &str| keelson_apiserver::rest::User {
        name: name.into(),
        uid: String::new(),
        groups: vec!["team".into(), "system:authenticated".into()],
    };
    let (alice, bob) = (user("alice"), user("bob"));
    let list = "/api/v1/namespaces/default/configmaps";
    let watch = "/api/v1/namespaces/default/configmaps?watch=true";
    support::wait_until(
        std::time::Duration::from_secs(10),
        "the team may list",
        || async {
            t.send_as(
                Some(alice.clone()),
                "GET",
                list,
                None,
                "application/json",
                None,
            )
            .await
            .status
                == 200
        },
    )
    .await;
    let w1 = t.open_as(alice.clone(), watch).await;
    let w2 = t.open_as(alice.clone(), watch).await;
    assert_eq!((w1.status().as_u16(), w2.status().as_u16()), (200, 200));
    assert_eq!(t.api.watches.of("alice"), 2);
    let r = t
        .send_as(
            Some(alice.clone()),
            "GET",
            watch,
            None,
            "application/json",
            None,
        )
        .await;
    assert_status(&r, 429, "TooManyRequests");
    assert!(
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("alice") && m.contains("--max-watches-per-user")),
        "{}",
        r.body
    );
    assert_eq!(
        r.headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or("")),
        Some("1")
    );
    assert_eq!(
        t.api.watches.of("alice"),
        2,
        "a refused watch holds no slot"
    );
    // Lists are not watches; other users have their own count; the admin has none.
    let r = t
        .send_as(
            Some(alice.clone()),
            "GET",
            list,
            None,
            "application/json",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = t.open_as(bob.clone(), watch).await;
    assert_eq!(b.status().as_u16(), 200);
    let admin = t
        .req("GET", &format!("{watch}&timeoutSeconds=1"), None)
        .await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    // A watch that ends gives its slot back.
    drop(w1);
    assert_eq!(t.api.watches.of("alice"), 1);
    let w3 = t.open_as(alice.clone(), watch).await;
    assert_eq!(w3.status().as_u16(), 200);
    drop((w2, w3, b));
    assert_eq!((t.api.watches.of("alice"), t.api.watches.of("bob")), (0, 0));
}
