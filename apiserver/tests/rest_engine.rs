//! The REST engine end to end, in process: CRUD, concurrency, selectors, pagination, watch,
//! subresources, patches, deletion, services, custom resources.

mod support;

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{json, Value};
use support::TestApi;

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_namespaces_and_the_kubernetes_service_exist() {
    let t = TestApi::start().await;
    let r = t.req("GET", "/api/v1/namespaces", None).await;
    assert_eq!(r.status, 200);
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(&ns), "{names:?}");
    }
    let svc = t
        .req(
            "GET",
            "/api/v1/namespaces/default/services/kubernetes",
            None,
        )
        .await;
    assert_eq!(svc.status, 200, "{}", svc.body);
    assert_eq!(svc.body["spec"]["clusterIP"], "10.96.0.1");
    let ns = t.req("GET", "/api/v1/namespaces/default", None).await;
    assert_eq!(ns.body["status"]["phase"], "Active");
    assert_eq!(
        ns.body["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_update_delete_with_kubernetes_metadata() {
    let t = TestApi::start().await;
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let r = t.req("POST", base, Some(&deployment("web", 2))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = r.body;
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(d["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(d["metadata"]["creationTimestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        d["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults applied"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(d["metadata"]["managedFields"][0]["operation"], "Update");
    let rv: i64 = d["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("number");

    let again = t.req("POST", base, Some(&deployment("web", 2))).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["reason"], "AlreadyExists");

    let got = t.req("GET", &format!("{base}/web"), None).await;
    assert_eq!(
        got.body["metadata"]["resourceVersion"],
        d["metadata"]["resourceVersion"]
    );

    // An update that only touches metadata keeps the generation; a spec change bumps it.
    let mut u = got.body.clone();
    u["metadata"]["labels"]["tier"] = json!("front");
    let r = t.req("PUT", &format!("{base}/web"), Some(&u)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["metadata"]["generation"], 1);
    let mut u = r.body.clone();
    u["spec"]["replicas"] = json!(5);
    let r = t.req("PUT", &format!("{base}/web"), Some(&u)).await;
    assert_eq!(r.body["metadata"]["generation"], 2);
    let rv2: i64 = r.body["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("number");
    assert!(rv2 > rv);

    // A no-op update writes nothing.
    let same = t.req("PUT", &format!("{base}/web"), Some(&r.body)).await;
    assert_eq!(
        same.body["metadata"]["resourceVersion"],
        r.body["metadata"]["resourceVersion"]
    );

    // Status is not changed through the main resource, only through /status.
    let mut s = same.body.clone();
    s["status"] = json!({"replicas": 5, "readyReplicas": 5});
    let r = t.req("PUT", &format!("{base}/web"), Some(&s)).await;
    assert!(
        r.body.get("status").is_none() || r.body["status"].get("readyReplicas").is_none(),
        "{}",
        r.body
    );
    let r = t.req("PUT", &format!("{base}/web/status"), Some(&s)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"]["readyReplicas"], 5);
    assert_eq!(
        r.body["metadata"]["generation"], 2,
        "status writes keep the generation"
    );

    // Scale.
    let sc = t.req("GET", &format!("{base}/web/scale"), None).await;
    assert_eq!(sc.body["kind"], "Scale");
    assert_eq!(sc.body["spec"]["replicas"], 5);
    assert_eq!(sc.body["status"]["selector"], "app=web");
    let r = t
        .send(
            "PATCH",
            &format!("{base}/web/scale"),
            Some(br#"{"spec":{"replicas":1}}"#.to_vec()),
            "application/merge-patch+json",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["spec"]["replicas"], 1);
    let got = t.req("GET", &format!("{base}/web"), None).await;
    assert_eq!(got.body["spec"]["replicas"], 1);

    let del = t.req("DELETE", &format!("{base}/web"), None).await;
    assert_eq!(del.status, 200, "{}", del.body);
    assert_eq!(t.req("GET", &format!("{base}/web"), None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_name_selectors_and_pagination() {
    let t = TestApi::start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        let body = json!({"metadata": {"generateName": "cm-", "labels": {"tier": tier, "i": i.to_string()}}, "data": {}});
        let r = t.req("POST", base, Some(&body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(r.body["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("cm-") && n.len() == 8));
    }
    let r = t
        .req("GET", &format!("{base}?labelSelector=tier%3Deven"), None)
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(4));
    let r = t
        .req(
            "GET",
            &format!("{base}?labelSelector=tier%20in%20(odd),i!%3D1"),
            None,
        )
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(2));
    let r = t
        .req("GET", &format!("{base}?labelSelector=a%20in%20("), None)
        .await;
    assert_eq!(r.status, 400);
    let r = t
        .req(
            "GET",
            &format!("{base}?fieldSelector=spec.nodeName%3Dx"),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "unsupported field");
    let first = t
        .req("GET", "/api/v1/namespaces/default/configmaps?limit=1", None)
        .await;
    let name = first.body["items"][0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let r = t
        .req(
            "GET",
            &format!("{base}?fieldSelector=metadata.name%3D{name}"),
            None,
        )
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));

    // Pages of 3 at one revision, even while writes go on.
    let mut seen = Vec::new();
    let mut cont: Option<String> = None;
    let mut rvs = Vec::new();
    for page in 0.. {
        let url = match &cont {
            Some(c) => format!("{base}?limit=3&continue={c}"),
            None => format!("{base}?limit=3"),
        };
        let r = t.req("GET", &url, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        rvs.push(r.body["metadata"]["resourceVersion"].clone());
        for it in r.body["items"].as_array().expect("items") {
            seen.push(it["metadata"]["name"].as_str().expect("name").to_string());
        }
        if page == 0 {
            let r = t
                .req(
                    "POST",
                    base,
                    Some(&json!({"metadata": {"name": "zzz-late"}})),
                )
                .await;
            assert_eq!(r.status, 201);
        }
        cont = r.body["metadata"]["continue"].as_str().map(str::to_string);
        if cont.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(
        !seen.contains(&"zzz-late".to_string()),
        "pages are one snapshot"
    );
    assert!(rvs.windows(2).all(|w| w[0] == w[1]), "{rvs:?}");
    let r = t
        .req("GET", &format!("{base}?limit=2&continue=garbage"), None)
        .await;
    assert_eq!(r.status, 400);
}

/// Reads watch events (one JSON object per line) until `n` arrived or `timeout`.
async fn read_events(resp: axum::response::Response, n: usize, timeout: Duration) -> Vec<Value> {
    let mut body = resp.into_body().into_data_stream();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < n {
        let chunk = match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(c))) => c,
            _ => break,
        };
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                out.push(v);
            }
        }
    }
    out
}

async fn watch(t: &TestApi, path: &str) -> axum::response::Response {
    use axum::body::Body;
    use axum::http::Request;
    let mut req = Request::builder()
        .uri(path)
        .body(Body::empty())
        .expect("request");
    req.extensions_mut()
        .insert(keelson_apiserver::server::Identity(Some(TestApi::admin())));
    keelson_apiserver::server::handle(std::sync::Arc::clone(&t.api), req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_now_from_a_revision_and_too_old() {
    let t = TestApi::start_with(|c| c.watch_cache_size = 16).await;
    let base = "/api/v1/namespaces/default/configmaps";
    let r = t
        .req(
            "POST",
            base,
            Some(&json!({"metadata": {"name": "a", "labels": {"x": "1"}}})),
        )
        .await;
    let rv_a = r.body["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();

    // No resourceVersion: synthetic ADDED for what exists, then changes.
    let w = watch(&t, &format!("{base}?watch=true&labelSelector=x")).await;
    assert_eq!(w.status(), 200);
    let t2 = &t;
    let writer = async move {
        t2.req(
            "POST",
            base,
            Some(&json!({"metadata": {"name": "b", "labels": {"x": "2"}}})),
        )
        .await;
        t2.req("POST", base, Some(&json!({"metadata": {"name": "c"}})))
            .await;
        let mut a = t2.req("GET", &format!("{base}/a"), None).await.body;
        a["metadata"]["labels"] = json!({});
        t2.req("PUT", &format!("{base}/a"), Some(&a)).await;
    };
    let (events, ()) = tokio::join!(read_events(w, 3, Duration::from_secs(10)), writer);
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("ADDED".into(), "a".into()),
            ("ADDED".into(), "b".into()),
            ("DELETED".into(), "a".into())
        ],
        "label selector transitions"
    );

    // From a resourceVersion: replay from the window.
    let w = watch(&t, &format!("{base}?watch=1&resourceVersion={rv_a}")).await;
    let events = read_events(w, 3, Duration::from_secs(10)).await;
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["object"]["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["b", "c", "a"]);

    // Push the window past rv_a: a watch from it gets 410 Expired in-stream.
    for i in 0..40 {
        t.req(
            "POST",
            base,
            Some(&json!({"metadata": {"name": format!("f{i}")}})),
        )
        .await;
    }
    let w = watch(&t, &format!("{base}?watch=1&resourceVersion={rv_a}")).await;
    let events = read_events(w, 1, Duration::from_secs(10)).await;
    assert_eq!(events[0]["type"], "ERROR", "{events:?}");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");

    // sendInitialEvents ends the initial list with the initial-events-end bookmark.
    let w = watch(&t, &format!("{base}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=x")).await;
    let events = read_events(w, 2, Duration::from_secs(10)).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

/// Regression: a patch without a resourceVersion inherited the current one from the object it
/// was applied to, so a concurrent write turned it into 409 Conflict instead of a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_without_a_resource_version_all_apply() {
    let t = TestApi::start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let created = t
        .req("POST", base, Some(&json!({"metadata": {"name": "hot"}})))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let stale_rv = created.body["metadata"]["resourceVersion"].clone();
    let patches = (0..16).map(|i| {
        let body = json!({"metadata": {"labels": {format!("l{i}"): "x"}}}).to_string();
        let t = &t;
        async move {
            t.send(
                "PATCH",
                &format!("{base}/hot"),
                Some(body.into_bytes()),
                "application/merge-patch+json",
                None,
            )
            .await
        }
    });
    for r in futures::future::join_all(patches).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let cm = t.req("GET", &format!("{base}/hot"), None).await.body;
    let labels = cm["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(labels.len(), 16, "every patch applied: {labels:?}");
    // A patch naming the version it read still fails once that version is gone.
    let pinned = json!({"metadata": {"resourceVersion": stale_rv, "labels": {"late": "x"}}});
    let r = t
        .send(
            "PATCH",
            &format!("{base}/hot"),
            Some(pinned.to_string().into_bytes()),
            "application/merge-patch+json",
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["reason"], "Conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_of_every_kind() {
    let t = TestApi::start().await;
    let base = "/apis/apps/v1/namespaces/default/deployments";
    t.req("POST", base, Some(&deployment("web", 1))).await;
    let p = |body: &str, ct: &str| (body.as_bytes().to_vec(), ct.to_string());
    let cases = [
        p(r#"{"spec":{"replicas":3}}"#, "application/merge-patch+json"),
        p(
            r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
            "application/json-patch+json",
        ),
        p(
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#,
            "application/strategic-merge-patch+json",
        ),
    ];
    for (body, ct) in cases {
        let r = t
            .send("PATCH", &format!("{base}/web"), Some(body), &ct, None)
            .await;
        assert_eq!(r.status, 200, "{ct}: {}", r.body);
    }
    let d = t.req("GET", &format!("{base}/web"), None).await.body;
    assert_eq!(d["spec"]["replicas"], 4);
    let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    // Kubernetes puts elements a strategic merge patch adds before the existing ones.
    assert_eq!(
        names,
        vec!["sidecar", "web"],
        "strategic merge merged by name"
    );
    let r = t
        .send(
            "PATCH",
            &format!("{base}/web"),
            Some(br#"[{"op":"test","path":"/spec/replicas","value":9}]"#.to_vec()),
            "application/json-patch+json",
            None,
        )
        .await;
    assert!(r.status == 422 || r.status == 409, "{}", r.body);
    let r = t
        .send(
            "PATCH",
            &format!("{base}/nope"),
            Some(b"{}".to_vec()),
            "application/merge-patch+json",
            None,
        )
        .await;
    assert_eq!(r.status, 404);

    // Server-side apply: conflicts with another manager, force takes over.
    let apply = |replicas: i64| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n")
    };
    let r = t
        .send(
            "PATCH",
            &format!("{base}/web?fieldManager=ops"),
            Some(apply(7).into_bytes()),
            "application/apply-patch+yaml",
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.body["details"]["causes"][0]["reason"], "FieldManagerConflict",
        "{}",
        r.body
    );
    assert_eq!(r.body["details"]["causes"][0]["field"], ".spec.replicas");
    let r = t
        .send(
            "PATCH",
            &format!("{base}/web?fieldManager=ops&force=true"),
            Some(apply(7).into_bytes()),
            "application/apply-patch+yaml",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["spec"]["replicas"], 7);
    let managers: Vec<&str> = r.body["metadata"]["managedFields"]
        .as_array()
        .expect("managed")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"ops"), "{managers:?}");
    let r = t
        .send(
            "PATCH",
            &format!("{base}/web"),
            Some(apply(7).into_bytes()),
            "application/apply-patch+yaml",
            None,
        )
        .await;
    assert!(
        r.status == 400 || r.status == 422,
        "apply needs a field manager: {}",
        r.body
    );
    // Apply creates a missing object.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: b\n";
    let r = t
        .send(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/applied?fieldManager=ops",
            Some(cm.as_bytes().to_vec()),
            "application/apply-patch+yaml",
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["a"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_dry_run_and_preconditions() {
    let t = TestApi::start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    t.req(
        "POST",
        base,
        Some(&json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}})),
    )
    .await;
    let r = t.req("DELETE", &format!("{base}/f"), None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["metadata"]["deletionTimestamp"].is_string(),
        "{}",
        r.body
    );
    let got = t.req("GET", &format!("{base}/f"), None).await;
    assert_eq!(got.status, 200, "held by its finalizer");
    let r = t
        .send(
            "PATCH",
            &format!("{base}/f"),
            Some(br#"{"metadata":{"finalizers":null}}"#.to_vec()),
            "application/merge-patch+json",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        t.req("GET", &format!("{base}/f"), None).await.status,
        404,
        "gone with its last finalizer"
    );

    // Foreground and orphan propagation add their finalizers.
    t.req("POST", base, Some(&json!({"metadata": {"name": "fg"}})))
        .await;
    let r = t
        .req(
            "DELETE",
            &format!("{base}/fg"),
            Some(&json!({"propagationPolicy": "Foreground"})),
        )
        .await;
    assert_eq!(
        r.body["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    t.req("POST", base, Some(&json!({"metadata": {"name": "or"}})))
        .await;
    let r = t
        .req(
            "DELETE",
            &format!("{base}/or?propagationPolicy=Orphan"),
            None,
        )
        .await;
    assert_eq!(r.body["metadata"]["finalizers"], json!(["orphan"]));

    // dryRun writes nothing.
    let r = t
        .req(
            "POST",
            &format!("{base}?dryRun=All"),
            Some(&json!({"metadata": {"name": "dry"}})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(t.req("GET", &format!("{base}/dry"), None).await.status, 404);
    t.req("POST", base, Some(&json!({"metadata": {"name": "keep"}})))
        .await;
    let r = t
        .req("DELETE", &format!("{base}/keep?dryRun=All"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        t.req("GET", &format!("{base}/keep"), None).await.status,
        200
    );

    // Preconditions.
    let r = t
        .req(
            "DELETE",
            &format!("{base}/keep"),
            Some(&json!({"preconditions": {"uid": "not-it"}})),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        t.req("GET", &format!("{base}/keep"), None).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_unique_addresses_and_release_them() {
    let t = TestApi::start_with(|c| {
        c.service_cidr = keelson_apiserver::alloc::Cidr::parse("10.0.0.0/29").expect("cidr")
    })
    .await;
    let base = "/api/v1/namespaces/default/services";
    let svc = |name: &str, ty: &str| json!({"metadata": {"name": name}, "spec": {"type": ty, "ports": [{"port": 80}], "selector": {"app": name}}});
    let mut ips = Vec::new();
    // /29: 6 usable addresses, one taken by `kubernetes`.
    for i in 0..5 {
        let r = t
            .req("POST", base, Some(&svc(&format!("s{i}"), "ClusterIP")))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ips.push(
            r.body["spec"]["clusterIP"]
                .as_str()
                .expect("ip")
                .to_string(),
        );
    }
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "{ips:?}");
    assert!(!ips.contains(&"10.0.0.1".to_string()));
    let full = t.req("POST", base, Some(&svc("s5", "ClusterIP"))).await;
    assert!(full.status >= 400, "range exhausted: {}", full.body);
    t.req("DELETE", &format!("{base}/s0"), None).await;
    let r = t.req("POST", base, Some(&svc("s5", "ClusterIP"))).await;
    assert_eq!(r.status, 201, "the released address is reused: {}", r.body);
    assert_eq!(r.body["spec"]["clusterIP"], ips[0]);

    let r = t.req("POST", base, Some(&svc("np", "NodePort"))).await;
    // The range is full of ClusterIPs; free one first.
    let np = if r.status == 201 {
        r
    } else {
        t.req("DELETE", &format!("{base}/s1"), None).await;
        t.req("POST", base, Some(&svc("np", "NodePort"))).await
    };
    assert_eq!(np.status, 201, "{}", np.body);
    let port = np.body["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("nodePort");
    assert!((30000..=32767).contains(&port));
    let mut dup = svc("np2", "NodePort");
    dup["spec"]["ports"][0]["nodePort"] = json!(port);
    t.req("DELETE", &format!("{base}/s2"), None).await;
    let r = t.req("POST", base, Some(&dup)).await;
    assert_eq!(r.status, 422, "a node port is not given twice: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_are_served_once_their_crd_is_created() {
    let t = TestApi::start().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {"size": {"type": "integer", "minimum": 1}, "color": {"type": "string", "default": "blue"}}},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
                }}},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]
            }]
        }
    });
    let r = t
        .req(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some(&crd),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let base = "/apis/example.com/v1/namespaces/default/widgets";
    let r = t.req("POST", base, Some(&json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3, "extra": true}}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["spec"]["color"], "blue", "schema defaults");
    assert!(
        r.body["spec"].get("extra").is_none(),
        "unknown fields pruned"
    );
    assert_eq!(r.body["metadata"]["generation"], 1);
    let r = t.req("POST", base, Some(&json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": "big"}}))).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = t.req("POST", base, Some(&json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w3"}, "spec": {}}))).await;
    assert_eq!(r.status, 422, "required: {}", r.body);

    let table = t
        .send(
            "GET",
            base,
            None,
            "application/json",
            Some("application/json;as=Table;v=v1;g=meta.k8s.io"),
        )
        .await;
    assert_eq!(table.body["kind"], "Table", "{}", table.body);
    let cols: Vec<&str> = table.body["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(cols.contains(&"Size"), "{cols:?}");
    let sc = t.req("GET", &format!("{base}/w1/scale"), None).await;
    assert_eq!(sc.body["spec"]["replicas"], 3);
    let mut st = t.req("GET", &format!("{base}/w1"), None).await.body;
    st["status"] = json!({"ready": true});
    let r = t.req("PUT", &format!("{base}/w1/status"), Some(&st)).await;
    assert_eq!(r.body["status"]["ready"], true, "{}", r.body);

    let disc = t.req("GET", "/apis/example.com/v1", None).await;
    assert_eq!(
        disc.body["resources"][0]["name"], "widgets",
        "{}",
        disc.body
    );
    let crd_now = t
        .req(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            None,
        )
        .await;
    let established = crd_now.body["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{}", crd_now.body);

    let r = t
        .req(
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        t.req("GET", base, None).await.status,
        404,
        "no longer served"
    );
}

const ENDPOINTS: &str = "/api/v1/namespaces/default/endpoints/kubernetes";
const SLICE: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes";

#[tokio::test]
async fn the_kubernetes_service_has_this_servers_address_as_its_endpoint() {
    let t = TestApi::start_with(|c| c.advertise = "192.0.2.10:6443".into()).await;
    // Bootstrapping again (a restart) adds nothing.
    t.api.bootstrap().await.expect("bootstrap again");
    let ep = t.req("GET", ENDPOINTS, None).await;
    assert_eq!(ep.status, 200, "{}", ep.body);
    assert_eq!(
        ep.body["subsets"][0]["addresses"],
        serde_json::json!([{"ip": "192.0.2.10"}])
    );
    assert_eq!(ep.body["subsets"][0]["ports"][0]["port"], 6443);
    let slice = t.req("GET", SLICE, None).await;
    assert_eq!(slice.status, 200, "{}", slice.body);
    assert_eq!(
        slice.body["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );
    assert_eq!(
        slice.body["endpoints"].as_array().map(Vec::len),
        Some(1),
        "{}",
        slice.body
    );
    assert_eq!(slice.body["endpoints"][0]["addresses"][0], "192.0.2.10");
    assert_eq!(slice.body["ports"][0]["port"], 6443);
    // A server that leaves takes its address out.
    t.api.unpublish_endpoints().await.expect("unpublish");
    let ep = t.req("GET", ENDPOINTS, None).await;
    assert_eq!(ep.body["subsets"], serde_json::json!([]), "{}", ep.body);
    let slice = t.req("GET", SLICE, None).await;
    assert_eq!(
        slice.body["endpoints"],
        serde_json::json!([]),
        "{}",
        slice.body
    );
    // A loopback address is not published (the default test server's 127.0.0.1).
    let local = TestApi::start().await;
    let r = local
        .req(
            "GET",
            "/api/v1/namespaces/default/endpoints/kubernetes",
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}
