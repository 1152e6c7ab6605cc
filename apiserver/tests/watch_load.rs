//! The watch cache under load: 50 watchers while concurrent writers create, update and delete;
//! every watcher gets every event exactly once, in resourceVersion order.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures::StreamExt as _;
use keelson_apiserver::server::{handle, Identity};
use serde_json::{json, Value};
use support::TestApi;

const WATCHERS: usize = 50;
const WRITERS: usize = 4;
const OBJECTS_PER_WRITER: usize = 40;

type Ev = (String, String, i64);

fn rv_of(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("resourceVersion")
}

async fn collect(resp: axum::response::Response, want: usize) -> Vec<Ev> {
    let mut body = resp.into_body().into_data_stream();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.len() < want {
        let chunk = match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(c))) => c,
            _ => break,
        };
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let v: Value = serde_json::from_slice(&line).expect("event JSON");
            let ty = v["type"].as_str().expect("type").to_string();
            assert_ne!(ty, "ERROR", "watch failed: {v}");
            out.push((
                ty,
                v["object"]["metadata"]["name"]
                    .as_str()
                    .expect("name")
                    .to_string(),
                rv_of(&v["object"]),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_watchers_get_every_event_once_in_order() {
    let t = Arc::new(TestApi::start().await);
    let base = "/api/v1/namespaces/default/configmaps";
    let start = t.req("GET", base, None).await;
    let rv0 = start.body["metadata"]["resourceVersion"]
        .as_str()
        .expect("list rv")
        .to_string();

    // Open every watch before the first write (the subscription exists once `handle` answers).
    let mut streams = Vec::new();
    for _ in 0..WATCHERS {
        let mut req = Request::builder()
            .uri(format!("{base}?watch=true&resourceVersion={rv0}"))
            .body(Body::empty())
            .expect("request");
        req.extensions_mut()
            .insert(Identity(Some(TestApi::admin())));
        let resp = handle(Arc::clone(&t.api), req).await;
        assert_eq!(resp.status(), 200);
        streams.push(resp);
    }

    // Writers: create, update, and delete every third object; record what each write returned.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let t = Arc::clone(&t);
        writers.push(tokio::spawn(async move {
            let mut evs: Vec<Ev> = Vec::new();
            for i in 0..OBJECTS_PER_WRITER {
                let name = format!("w{w}-{i}");
                let r = t
                    .req(
                        "POST",
                        base,
                        Some(&json!({"metadata": {"name": name}, "data": {"n": "0"}})),
                    )
                    .await;
                assert_eq!(r.status, 201, "{}", r.body);
                evs.push(("ADDED".into(), name.clone(), rv_of(&r.body)));
                let mut obj = r.body.clone();
                obj["data"]["n"] = json!("1");
                let r = t.req("PUT", &format!("{base}/{name}"), Some(&obj)).await;
                assert_eq!(r.status, 200, "{}", r.body);
                evs.push(("MODIFIED".into(), name.clone(), rv_of(&r.body)));
                if i % 3 == 0 {
                    let r = t.req("DELETE", &format!("{base}/{name}"), None).await;
                    assert_eq!(r.status, 200, "{}", r.body);
                    evs.push(("DELETED".into(), name.clone(), -1));
                }
            }
            evs
        }));
    }
    let mut expected: Vec<Ev> = Vec::new();
    for w in writers {
        expected.extend(w.await.expect("writer"));
    }
    // A DELETE answers with a Status, not the deletion revision: deletes are checked by name,
    // and each must come after the object's last write.
    let want = expected.len();
    let results = futures::future::join_all(streams.into_iter().map(|s| collect(s, want))).await;
    let mut exp_sorted: Vec<Ev> = expected
        .iter()
        .filter(|e| e.0 != "DELETED")
        .cloned()
        .collect();
    exp_sorted.sort_by_key(|e| e.2);
    for (i, got) in results.iter().enumerate() {
        assert_eq!(
            got.len(),
            want,
            "watcher {i} got {} of {want} events",
            got.len()
        );
        assert!(
            got.windows(2).all(|p| p[0].2 < p[1].2),
            "watcher {i}: resourceVersions not strictly increasing"
        );
        let non_deletes: Vec<Ev> = got.iter().filter(|e| e.0 != "DELETED").cloned().collect();
        assert_eq!(
            non_deletes, exp_sorted,
            "watcher {i}: creates/updates differ"
        );
        let mut deleted: Vec<&str> = got
            .iter()
            .filter(|e| e.0 == "DELETED")
            .map(|e| e.1.as_str())
            .collect();
        let mut want_deleted: Vec<&str> = expected
            .iter()
            .filter(|e| e.0 == "DELETED")
            .map(|e| e.1.as_str())
            .collect();
        deleted.sort();
        want_deleted.sort();
        assert_eq!(deleted, want_deleted, "watcher {i}: deletes differ");
        for (ty, name, rv) in got.iter().filter(|e| e.0 == "DELETED") {
            let last_write = exp_sorted
                .iter()
                .filter(|e| &e.1 == name)
                .map(|e| e.2)
                .max()
                .unwrap_or(0);
            assert!(
                *rv > last_write,
                "watcher {i}: {ty} {name} at {rv} before its last write {last_write}"
            );
        }
    }
}
